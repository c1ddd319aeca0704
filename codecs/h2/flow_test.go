// SPDX-License-Identifier: GPL-3.0-only

package h2

import (
	"strings"
	"testing"
)

// TestConsumedReturnsCredit: no credit goes back until the owner consumes;
// then one WINDOW_UPDATE per half window, for the stream and the connection.
func TestConsumedReturnsCredit(t *testing.T) {
	c, r := newServer(t, Limits{})
	e := newEnc()
	feedAll(t, c, headersFrame(1, e.block(post()...), false))
	chunk := strings.Repeat("x", 16384)
	for range 2 {
		feedAll(t, c, dataFrame(1, chunk, false))
	}
	if len(c.Output()) != 0 {
		t.Fatalf("credit without consumption: %v", frameStrings(outFrames(t, c)))
	}
	c.Consumed(1, 16384)
	if len(c.Output()) != 0 {
		t.Fatal("credit before half a window")
	}
	c.Consumed(1, 16384)
	wantStrings(t, "output", frameStrings(outFrames(t, c)), "WINDOW_UPDATE 1 +32768")
	// The connection window is 1 MiB: its update comes at 512 KiB, after
	// 30 more frames; the stream's every second frame.
	for range 30 {
		feedAll(t, c, dataFrame(1, chunk, false))
		c.Consumed(1, len(chunk))
	}
	counts := map[string]int{}
	for _, f := range frameStrings(outFrames(t, c)) {
		counts[f]++
	}
	if len(counts) != 2 || counts["WINDOW_UPDATE 1 +32768"] != 15 || counts["WINDOW_UPDATE 0 +524288"] != 1 {
		t.Fatalf("output %v", counts)
	}
	r.take()
	// Over-crediting is clamped to what the peer used.
	c.Consumed(1, 1<<30)
	c.Consumed(99, 1<<30)
	if c.connRecv+c.connUnacked > int64(c.lim.ConnWindow) || c.streams[1].recvWindow+c.streams[1].recvUnacked > int64(c.lim.InitialStreamWindow) {
		t.Fatalf("over-credited: conn %d+%d stream %d+%d", c.connRecv, c.connUnacked, c.streams[1].recvWindow, c.streams[1].recvUnacked)
	}
}

// TestPaddingCredit: padding counts against the windows and comes back
// without the owner.
func TestPaddingCredit(t *testing.T) {
	c, r := newServer(t, Limits{InitialStreamWindow: defaultWindow, ConnWindow: defaultWindow})
	e := newEnc()
	feedAll(t, c, headersFrame(1, e.block(post()...), false))
	for range 200 {
		feedAll(t, c, (&DataFrame{StreamID: 1, Data: []byte("x"), Padded: true, PadLength: 255}).Append(nil))
	}
	var got []string
	for _, ev := range r.take()[1:] {
		if ev.kind != "data" || string(ev.data) != "x" {
			t.Fatalf("event %v", ev)
		}
	}
	got = frameStrings(outFrames(t, c))
	// 256 octets of padding per frame: the stream and the connection get
	// 32768 back after 128 frames; the 200 data octets are not consumed.
	wantStrings(t, "output", got, "WINDOW_UPDATE 0 +32768", "WINDOW_UPDATE 1 +32768")
}

// TestWriteDataFlowControl: WriteData stops at the windows and resumes when
// the peer grants more.
func TestWriteDataFlowControl(t *testing.T) {
	c, r := newServer(t, Limits{})
	e := newEnc()
	feedAll(t, c, headersFrame(1, e.block(req()...), true))
	r.take()
	if _, err := c.WriteData(1, []byte("x"), false); err != ErrStreamNotWritable {
		t.Fatalf("DATA before the head: %v", err)
	}
	if err := c.WriteHeaders(1, &Head{Status: 200}, false); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, 100000)
	n, err := c.WriteData(1, body, true)
	if err != nil || n != defaultWindow {
		t.Fatalf("n=%d err=%v", n, err)
	}
	out := frameStrings(outFrames(t, c))
	wantStrings(t, "output", out, "HEADERS 1 end=false endh=true",
		"DATA 1 len=16384 end=false", "DATA 1 len=16384 end=false", "DATA 1 len=16384 end=false", "DATA 1 len=16383 end=false")
	if c.SendWindow(1) != 0 {
		t.Fatal("window left")
	}
	if n, _ := c.WriteData(1, body[n:], true); n != 0 {
		t.Fatalf("wrote %d without a window", n)
	}
	// The stream window grows; the connection's is still empty.
	feedAll(t, c, AppendWindowUpdate(nil, 1, 50000))
	wantStrings(t, "events", r.strings(), "window 1")
	if c.SendWindow(1) != 0 {
		t.Fatal("connection window ignored")
	}
	feedAll(t, c, AppendWindowUpdate(nil, 0, 1<<20))
	wantStrings(t, "events", r.strings(), "window 0")
	if n, err := c.WriteData(1, body[defaultWindow:], true); err != nil || n != 100000-defaultWindow {
		t.Fatalf("n=%d err=%v", n, err)
	}
	out = frameStrings(outFrames(t, c))
	if out[len(out)-1] != "DATA 1 len=1697 end=true" || c.ActiveStreams() != 0 {
		t.Fatalf("output %q", out)
	}
}

// TestPeerInitialWindowDelta: a SETTINGS_INITIAL_WINDOW_SIZE change moves
// every open stream's send window, possibly below zero (RFC 9113 6.9.2).
func TestPeerInitialWindowDelta(t *testing.T) {
	c, r := newServer(t, Limits{})
	e := newEnc()
	feedAll(t, c, cat(AppendWindowUpdate(nil, 0, 1<<20), headersFrame(1, e.block(req()...), true)))
	_ = c.WriteHeaders(1, &Head{Status: 200}, false)
	if n, _ := c.WriteData(1, make([]byte, 60000), false); n != 60000 {
		t.Fatal(n)
	}
	feedAll(t, c, settingsFrame(Setting{SettingInitialWindowSize, 1000}))
	if got := c.streams[1].sendWindow; got != 1000-60000 {
		t.Fatalf("window %d", got)
	}
	if n, _ := c.WriteData(1, []byte("x"), false); n != 0 {
		t.Fatal("sent on a negative window")
	}
	feedAll(t, c, settingsFrame(Setting{SettingInitialWindowSize, 100000}))
	if got := c.SendWindow(1); got != 100000-60000 {
		t.Fatalf("window %d", got)
	}
	r.take()
	// New streams start with the new value.
	feedAll(t, c, headersFrame(3, e.block(req()...), true))
	if c.streams[3].sendWindow != 100000 {
		t.Fatal(c.streams[3].sendWindow)
	}
}

// TestLocalInitialWindowBeforeAck: a window smaller than 65535 of ours binds
// only once the peer acknowledged it; until then the default holds.
func TestLocalInitialWindowBeforeAck(t *testing.T) {
	r := &recorder{}
	c := NewConn(RoleServer, Limits{InitialStreamWindow: 1000}, r, t0)
	e := newEnc()
	feedAll(t, c, cat(clientStart(), headersFrame(1, e.block(post()...), false), dataFrame(1, strings.Repeat("x", 5000), false)))
	if c.streams[1].recvWindow != defaultWindow-5000 {
		t.Fatal(c.streams[1].recvWindow)
	}
	feedAll(t, c, AppendSettingsAck(nil))
	if c.streams[1].recvWindow != 1000-5000 {
		t.Fatal(c.streams[1].recvWindow)
	}
	r.take()
	outFrames(t, c)
	feedAll(t, c, dataFrame(1, "x", false))
	wantStrings(t, "events", r.strings(), "streamerr 1 FLOW_CONTROL_ERROR stream_flow_control")
}

func TestWriteDataOutputBound(t *testing.T) {
	c, _ := newServer(t, Limits{MaxOutputBytes: 20000})
	e := newEnc()
	feedAll(t, c, headersFrame(1, e.block(req()...), true))
	_ = c.WriteHeaders(1, &Head{Status: 200}, false)
	n, _ := c.WriteData(1, make([]byte, 50000), false)
	if n < 19000 || n > 20000 {
		t.Fatalf("took %d", n)
	}
	if m, _ := c.WriteData(1, make([]byte, 50000), false); m != 0 {
		t.Fatalf("took %d more with a full buffer", m)
	}
	c.Advance(len(c.Output()))
	if m, _ := c.WriteData(1, make([]byte, 50000), false); m != 20000 {
		t.Fatalf("took %d after the drain", m)
	}
}

func TestWriteDataSplitsByPeerMaxFrame(t *testing.T) {
	c, _ := newServer(t, Limits{})
	e := newEnc()
	feedAll(t, c, cat(settingsFrame(Setting{SettingMaxFrameSize, 20000}), headersFrame(1, e.block(req()...), true)))
	outFrames(t, c)
	_ = c.WriteHeaders(1, &Head{Status: 200}, false)
	_, _ = c.WriteData(1, make([]byte, 50000), true)
	wantStrings(t, "output", frameStrings(outFrames(t, c)), "HEADERS 1 end=false endh=true",
		"DATA 1 len=20000 end=false", "DATA 1 len=20000 end=false", "DATA 1 len=10000 end=true")
	// An empty DATA with END_STREAM needs no window.
	feedAll(t, c, headersFrame(3, e.block(req()...), true))
	_ = c.WriteHeaders(3, &Head{Status: 200}, false)
	if n, err := c.WriteData(3, nil, true); n != 0 || err != nil {
		t.Fatal(n, err)
	}
	wantStrings(t, "output", frameStrings(outFrames(t, c)), "HEADERS 3 end=false endh=true", "DATA 3 len=0 end=true")
}
