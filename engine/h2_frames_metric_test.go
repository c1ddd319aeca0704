// SPDX-License-Identifier: GPL-3.0-only

package engine

import (
	"testing"

	"github.com/VictoriaMetrics/metrics"

	"github.com/expressgateway/expressgateway/codecs/h2"
)

// TestH2CountFrames: a run of frames is counted by direction and type
// (unknown types together), and a frame cut short at the end of the run is
// counted once, as received so far.
func TestH2CountFrames(t *testing.T) {
	m := NewMetrics(metrics.NewSet())
	var b []byte
	for range 3 {
		b = h2.AppendData(b, 1, []byte("hello"), false)
	}
	b = h2.AppendWindowUpdate(b, 0, 100)
	b = h2.AppendFrameHeader(b, h2.FrameHeader{Length: 2, Type: 0x20, StreamID: 1})
	b = append(b, 0, 0)
	cut := h2.AppendData(nil, 3, make([]byte, 10), true)
	b = append(b, cut[:12]...) // header and 3 of its 10 bytes
	m.h2CountFrames(b, false)
	m.h2CountFrames(h2.AppendData(nil, 1, nil, true), true)
	want := map[string][2]uint64{ // received, sent
		"data": {4, 1}, "window_update": {1, 0}, "unknown": {1, 0}, "headers": {0, 0},
	}
	for i, name := range h2FrameNames {
		w, ok := want[name]
		if !ok {
			w = [2]uint64{}
		}
		if got := [2]uint64{m.h2FramesIn[i].Get(), m.h2FramesOut[i].Get()}; got != w {
			t.Errorf("%s frames: received, sent = %v, want %v", name, got, w)
		}
	}
}
