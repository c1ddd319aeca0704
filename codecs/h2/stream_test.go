// SPDX-License-Identifier: GPL-3.0-only

package h2

import (
	"errors"
	"testing"
	"time"
)

func TestStreamStates(t *testing.T) {
	s := &stream{state: stateOpen}
	if !s.canRecv() || !s.canSend() {
		t.Fatal("open")
	}
	if s.recvEnd() || s.state != stateHalfClosedRemote || s.canRecv() || !s.canSend() {
		t.Fatalf("after recvEnd: %v", s.state)
	}
	if !s.sendEnd() || s.state != stateClosed {
		t.Fatalf("after sendEnd: %v", s.state)
	}
	s = &stream{state: stateOpen}
	if s.sendEnd() || s.state != stateHalfClosedLocal || !s.canRecv() || s.canSend() {
		t.Fatalf("after sendEnd: %v", s.state)
	}
	if !s.recvEnd() || s.state != stateClosed {
		t.Fatalf("after recvEnd: %v", s.state)
	}
	if stateHalfClosedRemote.String() != "half_closed_remote" {
		t.Fatal("String")
	}
}

// TestMaxConcurrentStreams: the stream over the limit is refused and the
// others carry on; once one closes, a new one is accepted.
func TestMaxConcurrentStreams(t *testing.T) {
	c, r := newServer(t, Limits{MaxConcurrentStreams: 2})
	e := newEnc()
	feedAll(t, c, cat(headersFrame(1, e.block(post()...), false), headersFrame(3, e.block(post()...), false),
		headersFrame(5, e.block(post()...), false), dataFrame(5, "ignored", true), dataFrame(1, "one", true), dataFrame(3, "three", false)))
	wantStrings(t, "events", r.strings(),
		"headers 1 req POST https example.com / end=false",
		"headers 3 req POST https example.com / end=false",
		"streamerr 5 REFUSED_STREAM refused_stream",
		`data 1 "one" end=true`,
		`data 3 "three" end=false`)
	wantStrings(t, "output", frameStrings(outFrames(t, c)), "RST_STREAM 5 REFUSED_STREAM")
	if c.Stats().StreamsRefused != 1 || c.ActiveStreams() != 2 {
		t.Fatalf("stats %+v active %d", c.Stats(), c.ActiveStreams())
	}
	// Stream 1 is half-closed (remote): it still counts until we end it.
	feedAll(t, c, headersFrame(7, e.block(req()...), true))
	wantStrings(t, "events", r.strings(), "streamerr 7 REFUSED_STREAM refused_stream")
	if err := c.WriteHeaders(1, &Head{Status: 204}, true); err != nil {
		t.Fatal(err)
	}
	feedAll(t, c, headersFrame(9, e.block(req()...), true))
	wantStrings(t, "events", r.strings(), "headers 9 req GET https example.com / end=true")
}

// TestLateFramesOnResetStream: after we reset a stream, the peer's frames
// in flight are ignored, but its DATA still counts for the connection window
// and is credited back at once.
func TestLateFramesOnResetStream(t *testing.T) {
	c, r := newServer(t, Limits{ConnWindow: defaultWindow})
	e := newEnc()
	feedAll(t, c, headersFrame(1, e.block(post()...), false))
	if err := c.WriteRST(1, ErrCodeCancel); err != nil {
		t.Fatal(err)
	}
	wantStrings(t, "output", frameStrings(outFrames(t, c)), "RST_STREAM 1 CANCEL")
	var in []byte
	for range 3 {
		in = append(in, dataFrame(1, string(make([]byte, 16000)), false)...)
	}
	in = append(in, headersFrame(1, e.block("x-trailer", "1"), true)...)
	in = append(in, AppendWindowUpdate(nil, 1, 10)...)
	in = append(in, AppendRSTStream(nil, 1, ErrCodeCancel)...)
	in = append(in, (&PriorityFrame{StreamID: 1, PriorityParam: PriorityParam{StreamDep: 3}}).Append(nil)...)
	feedAll(t, c, in)
	wantStrings(t, "events", r.strings(), "headers 1 req POST https example.com / end=false")
	// 48000 octets: credit returned once half the window was used.
	wantStrings(t, "output", frameStrings(outFrames(t, c)), "WINDOW_UPDATE 0 +48000")
	// The trailers' HPACK state was kept: a new request decodes.
	feedAll(t, c, headersFrame(3, e.block(req("x-trailer", "1")...), true))
	wantStrings(t, "events", r.strings(), "headers 3 req GET https example.com / x-trailer=1 end=true")
}

// TestClosedRingEviction: streams older than the ring answer late frames
// leniently with STREAM_CLOSED; identifiers the ring still covers that were
// never opened are a connection error.
func TestClosedRingEviction(t *testing.T) {
	c, r := newServer(t, Limits{ClosedStreams: 2})
	e := newEnc()
	for _, id := range []uint32{1, 3, 5, 9} {
		feedAll(t, c, headersFrame(id, e.block(req()...), true))
		if err := c.WriteHeaders(id, &Head{Status: 200}, true); err != nil {
			t.Fatal(err)
		}
	}
	outFrames(t, c)
	r.take()
	if !c.closed.remembers(7) || c.closed.remembers(3) {
		t.Fatalf("ring %+v", c.closed)
	}
	// Stream 1 was forgotten: its late HEADERS get STREAM_CLOSED.
	feedAll(t, c, headersFrame(1, e.block("x", "1"), true))
	wantStrings(t, "events", r.strings(), "streamerr 1 STREAM_CLOSED stream_closed")
	// Stream 7 was skipped: a HEADERS on it goes backwards.
	if _, err := c.Feed(headersFrame(7, e.block(req()...), true), t0); !errors.Is(err, ErrStreamIDBackwards) {
		t.Fatalf("err = %v", err)
	}
	// Stream 9 is remembered as closed after the peer's own END_STREAM: a
	// frame on it is a connection error (RFC 9113 section 5.1).
	c2, _ := newServer(t, Limits{})
	e2 := newEnc()
	feedAll(t, c2, headersFrame(1, e2.block(req()...), true))
	if err := c2.WriteHeaders(1, &Head{Status: 200}, true); err != nil {
		t.Fatal(err)
	}
	if _, err := c2.Feed(dataFrame(1, "x", true), t0); !errors.Is(err, ErrFrameAfterEndStream) {
		t.Fatalf("DATA after END_STREAM: err = %v", err)
	}
	c3, _ := newServer(t, Limits{})
	e3 := newEnc()
	feedAll(t, c3, headersFrame(1, e3.block(req()...), true))
	if err := c3.WriteHeaders(1, &Head{Status: 200}, true); err != nil {
		t.Fatal(err)
	}
	if _, err := c3.Feed(headersFrame(1, e3.block("x", "1"), true), t0); !errors.Is(err, ErrFrameAfterEndStream) {
		t.Fatalf("HEADERS after END_STREAM: err = %v", err)
	}
}

func TestPeerReset(t *testing.T) {
	c, r := newServer(t, Limits{})
	e := newEnc()
	feedAll(t, c, cat(headersFrame(1, e.block(post()...), false), AppendRSTStream(nil, 1, ErrCodeCancel)))
	wantStrings(t, "events", r.strings(), "headers 1 req POST https example.com / end=false", "reset 1 CANCEL")
	if c.ActiveStreams() != 0 || c.Stats().ResetsReceived != 1 {
		t.Fatal("stream not gone")
	}
	if _, err := c.WriteData(1, []byte("x"), true); err != ErrStreamNotWritable {
		t.Fatalf("WriteData after reset: %v", err)
	}
	// A RST_STREAM on a closed stream is ignored, never answered.
	feedAll(t, c, AppendRSTStream(nil, 1, ErrCodeCancel))
	if len(r.take()) != 0 || len(c.Output()) != 0 {
		t.Fatal("RST_STREAM answered")
	}
}

// TestStreamLookupCache: the last-stream shortcut never answers for a
// stream that was closed, and a recycled stream struct answers only for
// its new id.
func TestStreamLookupCache(t *testing.T) {
	c := NewConn(RoleServer, Limits{}, nil, time.Now())
	a := c.newStream(1)
	if c.stream(1) != a || c.last != a {
		t.Fatal("stream 1 not found or not cached")
	}
	c.closeStream(a, closedResetByUs)
	if c.stream(1) != nil {
		t.Fatal("a closed stream is still found")
	}
	b := c.newStream(3) // takes a's struct from the free list
	if b != a {
		t.Fatal("the free list did not recycle the stream (test premise)")
	}
	if c.stream(1) != nil || c.stream(3) != b {
		t.Fatal("a recycled stream answered for its old id, or not for its new one")
	}
	d := c.newStream(5)
	if c.stream(5) != d || c.stream(3) != b || c.stream(5) != d {
		t.Fatal("lookups across two streams")
	}
}
