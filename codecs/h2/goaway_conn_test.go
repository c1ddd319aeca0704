// SPDX-License-Identifier: GPL-3.0-only

package h2

import (
	"testing"
)

// TestGoAwayReceived: our streams above the peer's last stream id are
// reported unprocessed and closed; the ones below go on; no new request.
func TestGoAwayReceived(t *testing.T) {
	c, r := newClient(t, Limits{})
	get := &Head{Method: []byte("GET"), Scheme: []byte("https"), Authority: []byte("up"), Path: []byte("/")}
	for range 3 {
		if _, err := c.WriteRequest(get, true); err != nil {
			t.Fatal(err)
		}
	}
	outFrames(t, c)
	feedAll(t, c, AppendGoAway(nil, 1, ErrCodeNo, []byte("bye")))
	wantStrings(t, "events", r.strings(), `goaway 1 NO_ERROR "bye" [3 5]`)
	if c.ActiveStreams() != 1 {
		t.Fatal(c.ActiveStreams())
	}
	if _, err := c.WriteRequest(get, true); err != ErrConnClosed {
		t.Fatalf("WriteRequest after GOAWAY: %v", err)
	}
	// Stream 1 completes; late frames on 3 are ignored.
	e := newEnc()
	feedAll(t, c, cat(headersFrame(1, e.block(":status", "200"), true), headersFrame(3, e.block(":status", "200"), true)))
	wantStrings(t, "events", r.strings(), "headers 1 resp 200 end=true")
	if last, ok := c.GoAwayReceived(); !ok || last != 1 {
		t.Fatal(last, ok)
	}
	// A second GOAWAY lowers the last id further.
	feedAll(t, c, AppendGoAway(nil, 0, ErrCodeNo, nil))
	if last, _ := c.GoAwayReceived(); last != 0 {
		t.Fatal(last)
	}
}

// TestShutdownTwoStep: GOAWAY(2^31-1) and a PING; streams opened meanwhile
// are served; the PING's ACK sends the real last stream id, after which new
// streams are refused.
func TestShutdownTwoStep(t *testing.T) {
	c, r := newServer(t, Limits{})
	e := newEnc()
	feedAll(t, c, headersFrame(1, e.block(req()...), true))
	if err := c.Shutdown(); err != nil {
		t.Fatal(err)
	}
	wantStrings(t, "output", frameStrings(outFrames(t, c)), `GOAWAY 2147483647 NO_ERROR ""`, "PING 65672d647261696e ack=false")
	feedAll(t, c, headersFrame(3, e.block(req()...), true))
	feedAll(t, c, AppendPing(nil, true, shutdownPing))
	wantStrings(t, "output", frameStrings(outFrames(t, c)), `GOAWAY 3 NO_ERROR ""`)
	feedAll(t, c, headersFrame(5, e.block(req()...), true))
	wantStrings(t, "events", r.strings(),
		"headers 1 req GET https example.com / end=true",
		"headers 3 req GET https example.com / end=true",
		"ping 65672d647261696e ack=true",
		"streamerr 5 REFUSED_STREAM goaway_refused")
	// Both accepted streams are still served.
	for _, id := range []uint32{1, 3} {
		if err := c.WriteHeaders(id, &Head{Status: 200}, true); err != nil {
			t.Fatal(err)
		}
	}
	if c.ActiveStreams() != 0 || !c.GoAwaySent() {
		t.Fatal("not drained")
	}
	// A later WriteGoAway never raises the last stream id.
	_ = c.WriteGoAway(ErrCodeNo, nil)
	fs := outFrames(t, c)
	if g := fs[len(fs)-1].(GoAwayFrame); g.LastStreamID != 3 {
		t.Fatal(g.LastStreamID)
	}
}

func TestPingAnsweredAndCounted(t *testing.T) {
	c, r := newServer(t, Limits{MaxQueuedControlFrames: 3})
	d := [8]byte{9, 8, 7, 6, 5, 4, 3, 2}
	for range 10 {
		// Each batch is flushed before the next, so no flood.
		feedAll(t, c, cat(AppendPing(nil, false, d), AppendPing(nil, false, d), AppendPing(nil, false, d)))
		wantStrings(t, "output", frameStrings(outFrames(t, c)), "PING 0908070605040302 ack=true", "PING 0908070605040302 ack=true", "PING 0908070605040302 ack=true")
	}
	if c.Stats().PingsReceived != 30 || len(r.take()) != 30 {
		t.Fatal(c.Stats())
	}
	if err := c.WritePing(d); err != nil {
		t.Fatal(err)
	}
	feedAll(t, c, AppendPing(nil, true, d))
	if c.Stats().PingAcksReceived != 1 {
		t.Fatal(c.Stats())
	}
	wantStrings(t, "events", r.strings(), "ping 0908070605040302 ack=true")
	// Unflushed answers add up: the fourth is a flood. A partial flush that
	// stops before the last queued answer does not clear the count.
	feedAll(t, c, cat(AppendPing(nil, false, d), AppendPing(nil, false, d)))
	c.Advance(len(c.Output()) - 1)
	if _, err := c.Feed(cat(AppendPing(nil, false, d), AppendPing(nil, false, d)), t0); err != ErrControlFlood {
		t.Fatalf("err = %v", err)
	}
}

func TestClientRequestResponse(t *testing.T) {
	c, r := newClient(t, Limits{}, Setting{SettingMaxConcurrentStreams, 2})
	r.consume = c
	post := &Head{Method: []byte("POST"), Scheme: []byte("https"), Authority: []byte("up.example"), Path: []byte("/upload"),
		Fields: []Field{{Name: []byte("content-length"), Value: []byte("3")}}}
	id, err := c.WriteRequest(post, false)
	if err != nil || id != 1 {
		t.Fatal(id, err)
	}
	if n, err := c.WriteData(1, []byte("abc"), true); n != 3 || err != nil {
		t.Fatal(n, err)
	}
	head := &Head{Method: []byte("HEAD"), Scheme: []byte("https"), Authority: []byte("up.example"), Path: []byte("/")}
	if id, err = c.WriteRequest(head, true); err != nil || id != 3 {
		t.Fatal(id, err)
	}
	if _, err := c.WriteRequest(head, true); err != ErrTooManyStreams {
		t.Fatalf("third stream: %v", err)
	}
	if err := c.WriteHeaders(1, &Head{Status: 200}, false); err != ErrRole {
		t.Fatal(err)
	}
	fs := outFrames(t, c)
	wantStrings(t, "output", frameStrings(fs), "HEADERS 1 end=false endh=true", "DATA 1 len=3 end=true", "HEADERS 3 end=true endh=true")
	wantStrings(t, "request", decodeBlock(t, hpackDecoderFor(), fs[0].(HeadersFrame).Fragment),
		":method=POST", ":scheme=https", ":authority=up.example", ":path=/upload", "content-length=3")

	e := newEnc()
	feedAll(t, c, cat(
		headersFrame(1, e.block(":status", "100"), false),
		headersFrame(1, e.block(":status", "200", "content-length", "5"), false),
		dataFrame(1, "hello", false),
		headersFrame(1, e.block("x-sum", "1"), true),
		// A HEAD response keeps content-length without content.
		headersFrame(3, e.block(":status", "200", "content-length", "1000"), true),
	))
	wantStrings(t, "events", r.strings(),
		"headers 1 resp 100 end=false",
		"headers 1 resp 200 content-length=5 end=false",
		`data 1 "hello" end=false`,
		"headers 1 trailers x-sum=1 end=true",
		"headers 3 resp 200 content-length=1000 end=true")
	if c.ActiveStreams() != 0 {
		t.Fatal(c.ActiveStreams())
	}
	// Trailers from our side, and extended CONNECT only when the peer allows.
	if _, err := c.WriteRequest(&Head{Method: []byte("CONNECT"), Protocol: []byte("websocket"), Scheme: []byte("https"), Path: []byte("/")}, false); err != ErrInvalidHead {
		t.Fatal(err)
	}
	id, _ = c.WriteRequest(post, false)
	if err := c.WriteTrailers(id, []Field{{Name: []byte("x-sum"), Value: []byte("9")}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WriteData(id, []byte("x"), false); err != ErrStreamNotWritable {
		t.Fatal(err)
	}
}

func TestExtendedConnect(t *testing.T) {
	c, r := newServer(t, Limits{EnableConnectProtocol: true})
	if !c.LocalSettings().EnableConnectProtocol {
		t.Fatal("not advertised")
	}
	e := newEnc()
	feedAll(t, c, headersFrame(1, e.block(":method", "CONNECT", ":protocol", "websocket", ":scheme", "https", ":path", "/chat", ":authority", "h"), false))
	wantStrings(t, "events", r.strings(), "headers 1 req CONNECT https h /chat protocol=websocket end=false")
}
