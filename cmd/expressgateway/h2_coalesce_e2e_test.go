// SPDX-License-Identifier: GPL-3.0-only

package main

import (
	"bytes"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// coalesceUpstream is an h2c upstream that reads two requests whole (heads
// closes when both heads are in),
// reporting each one's DATA frames and bytes, then answers both in one
// write: 200 DATA frames of 50 bytes per stream, the two streams'
// frames alternating, and trailers.
func coalesceUpstream(t *testing.T, heads chan<- struct{}, got chan<- map[uint32][2]int, bodies *sync.Map) string {
	t.Helper()
	ln := localListener(t)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer func() { _ = nc.Close() }()
		fr := acceptH2(nc)
		if fr == nil {
			return
		}
		frames := map[uint32][2]int{}
		body := map[uint32][]byte{}
		var ids []uint32
		ended := 0
		for ended < 2 {
			f, err := fr.ReadFrame()
			if err != nil {
				return
			}
			answerControl(fr, f)
			switch f := f.(type) {
			case *http2.MetaHeadersFrame:
				if ids = append(ids, f.StreamID); len(ids) == 2 {
					close(heads)
				}
			case *http2.DataFrame:
				n := frames[f.StreamID]
				n[0]++
				n[1] += len(f.Data())
				frames[f.StreamID] = n
				body[f.StreamID] = append(body[f.StreamID], f.Data()...)
				if f.StreamEnded() {
					ended++
				}
			}
		}
		for i, id := range ids {
			bodies.Store(fmt.Sprint("up", i), body[id])
		}
		got <- frames
		var out bytes.Buffer
		w := http2.NewFramer(&out, nil)
		var hb bytes.Buffer
		enc := hpack.NewEncoder(&hb)
		for _, id := range ids {
			hb.Reset()
			_ = enc.WriteField(hpack.HeaderField{Name: ":status", Value: "200"})
			_ = enc.WriteField(hpack.HeaderField{Name: "content-type", Value: "application/grpc"})
			_ = w.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hb.Bytes(), EndHeaders: true})
		}
		for m := range 200 {
			for i, id := range ids {
				_ = w.WriteData(id, false, bytes.Repeat([]byte{byte('a' + i), byte(m)}, 25))
			}
		}
		for _, id := range ids {
			hb.Reset()
			_ = enc.WriteField(hpack.HeaderField{Name: "grpc-status", Value: "0"})
			_ = w.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hb.Bytes(), EndHeaders: true, EndStream: true})
		}
		_, _ = nc.Write(out.Bytes())
		_, _ = io.Copy(io.Discard, nc)
	}()
	return ln.Addr().String()
}

// TestH2SmallDataCoalesced: many small DATA frames that arrive in one read
// (a gRPC stream's messages) leave the gateway in few frames, both ways,
// even when two streams' frames alternate, with every byte in order.
// Frame boundaries mean nothing in HTTP/2, and each frame costs the peer
// (grpc-go about 1 µs); HAProxy re-frames the same way.
func TestH2SmallDataCoalesced(t *testing.T) {
	got, heads := make(chan map[uint32][2]int, 1), make(chan struct{})
	var bodies sync.Map
	up := coalesceUpstream(t, heads, got, &bodies)
	gw, _, _ := h2GatewayCluster(t, up, "", `protocol = "h2c"`)
	f := dialH2(t, gw)
	var want [2][]byte
	for _, id := range []uint32{1, 3} {
		f.headers(t, id, false, ":method", "POST", ":scheme", "http", ":authority", "coalesce.test", ":path", "/grpc.testing.TestService/FullDuplexCall",
			"content-type", "application/grpc", "te", "trailers")
	}
	// Once both streams are open upstream (DATA that comes earlier waits
	// on the stream and goes up in one piece anyway): 200 DATA frames of
	// 50 bytes per stream, alternating, in one write.
	select {
	case <-heads:
	case <-time.After(10 * time.Second):
		t.Fatal("the heads never reached the upstream")
	}
	var out bytes.Buffer
	w := http2.NewFramer(&out, nil)
	for m := range 200 {
		for i, id := range []uint32{1, 3} {
			p := bytes.Repeat([]byte{byte('A' + i), byte(m)}, 25)
			want[i] = append(want[i], p...)
			_ = w.WriteData(id, false, p)
		}
	}
	_ = w.WriteData(1, true, nil)
	_ = w.WriteData(3, true, nil)
	if _, err := f.c.Write(out.Bytes()); err != nil {
		t.Fatal(err)
	}
	var upFrames map[uint32][2]int
	select {
	case upFrames = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("the upstream never got both requests whole")
	}
	for i := range 2 {
		b, _ := bodies.Load(fmt.Sprint("up", i))
		if !bytes.Equal(b.([]byte), want[i]) {
			t.Errorf("request %d reached the upstream as %d bytes, not the %d sent (or in another order)", i, len(b.([]byte)), len(want[i]))
		}
	}
	for id, n := range upFrames {
		if n[1] != 10000 || n[0] > 4 {
			t.Errorf("upstream stream %d: %d bytes in %d DATA frames, want 10000 in at most 4 (the client sent 200 and an empty one)", id, n[1], n[0])
		}
	}
	resp := map[uint32][]byte{}
	frames := map[uint32]int{}
	done := 0
	f.until(t, "both responses", func(fr http2.Frame) bool {
		switch fr := fr.(type) {
		case *http2.DataFrame:
			frames[fr.StreamID]++
			resp[fr.StreamID] = append(resp[fr.StreamID], fr.Data()...)
			if fr.StreamEnded() {
				done++
			}
		case *http2.HeadersFrame:
			if fr.StreamEnded() {
				done++
			}
		case *http2.RSTStreamFrame, *http2.GoAwayFrame:
			t.Fatalf("%v", fr)
		}
		return done == 2
	})
	for i, id := range []uint32{1, 3} {
		var w []byte
		for m := range 200 {
			w = append(w, bytes.Repeat([]byte{byte('a' + i), byte(m)}, 25)...)
		}
		if !bytes.Equal(resp[id], w) {
			t.Errorf("response %d: %d bytes, want the upstream's %d in order", id, len(resp[id]), len(w))
		}
		if frames[id] > 4 {
			t.Errorf("response %d came in %d DATA frames, want at most 4 (the upstream sent 200 in one write)", id, frames[id])
		}
	}
}
