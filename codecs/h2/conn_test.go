// SPDX-License-Identifier: GPL-3.0-only

package h2

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"
	"time"
)

func TestServerHandshake(t *testing.T) {
	r := &recorder{}
	c := NewConn(RoleServer, Limits{}, r, t0)
	// Our SETTINGS and the connection window are queued before the client
	// says anything.
	want := unhex(t, "000012 04 00 00000000  0003 00000064  0004 00010000  0006 00010000"+
		"000004 08 00 00000000 000f0001")
	if !bytes.Equal(c.Output(), want) {
		t.Fatalf("initial output\n got %x\nwant %x", c.Output(), want)
	}
	c.Advance(len(want))
	if !c.SettingsAckOverdue(t0.Add(2*time.Second), time.Second) || c.SettingsAckOverdue(t0.Add(time.Second/2), time.Second) {
		t.Fatal("SettingsAckOverdue before the ACK")
	}
	feedAll(t, c, clientStart(Setting{SettingInitialWindowSize, 1 << 20}, Setting{SettingMaxFrameSize, 1 << 15}))
	wantStrings(t, "output", frameStrings(outFrames(t, c)), "SETTINGS ACK")
	wantStrings(t, "events", r.strings(), "settings")
	if p := c.PeerSettings(); p.InitialWindowSize != 1<<20 || p.MaxFrameSize != 1<<15 || p.MaxConcurrentStreams != ^uint32(0) {
		t.Fatalf("peer settings %+v", p)
	}
	feedAll(t, c, AppendSettingsAck(nil))
	if c.SettingsAckOverdue(t0.Add(time.Hour), time.Second) {
		t.Fatal("SettingsAckOverdue after the ACK")
	}
}

func TestClientHandshake(t *testing.T) {
	c := NewConn(RoleClient, Limits{}, nil, t0)
	want := cat([]byte(ClientPreface),
		unhex(t, "000012 04 00 00000000  0002 00000000  0004 00010000  0006 00010000"),
		unhex(t, "000004 08 00 00000000 000f0001"))
	if !bytes.Equal(c.Output(), want) {
		t.Fatalf("initial output\n got %x\nwant %x", c.Output(), want)
	}
	c.Advance(len(want))
	// The server's preface is a SETTINGS frame.
	if _, err := c.Feed(AppendPing(nil, false, [8]byte{}), t0); !errors.Is(err, ErrBadPreface) {
		t.Fatalf("err = %v", err)
	}
}

func TestBadPreface(t *testing.T) {
	for name, in := range map[string]string{
		"http1":              "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"one byte off":       "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\x0b",
		"ping first":         ClientPreface + string(AppendPing(nil, false, [8]byte{})),
		"settings ack first": ClientPreface + string(AppendSettingsAck(nil)),
	} {
		t.Run(name, func(t *testing.T) {
			c := NewConn(RoleServer, Limits{}, nil, t0)
			c.Advance(len(c.Output()))
			n, err := c.Feed([]byte(in), t0)
			var ce *ConnError
			if !errors.As(err, &ce) || ce.Token != "bad_preface" || ce.Code != ErrCodeProtocol || n != 0 {
				t.Fatalf("n=%d err=%v", n, err)
			}
			wantStrings(t, "output", frameStrings(outFrames(t, c)), `GOAWAY 0 PROTOCOL_ERROR "bad_preface"`)
			if _, err2 := c.Feed([]byte(ClientPreface), t0); err2 != err {
				t.Fatalf("a dead conn answers %v", err2)
			}
		})
	}
	// A prefix of the preface is fine, and so is a wrong byte only once seen.
	c := NewConn(RoleServer, Limits{}, nil, t0)
	if n, err := c.Feed([]byte("PRI * HTTP/2"), t0); n != 0 || err != nil {
		t.Fatalf("n=%d err=%v", n, err)
	}
	if _, err := c.Feed([]byte("PRX"), t0); !errors.Is(err, ErrBadPreface) {
		t.Fatalf("err = %v", err)
	}
}

// conversation is a valid client conversation: preface and SETTINGS,
// a request with a body in two DATA frames (one padded), a PING, and a
// second request whose block is split over HEADERS and CONTINUATION.
// boundaries are the offsets where Feed may stop.
func conversation(t testing.TB) (in []byte, boundaries []int) {
	e := newEnc()
	b1 := e.block(post("content-length", "5")...)
	b3 := e.block(req()...)
	parts := [][]byte{
		clientStart(Setting{SettingInitialWindowSize, 1 << 20}),
		AppendSettingsAck(nil),
		headersFrame(1, b1, false),
		dataFrame(1, "he", false),
		(&DataFrame{StreamID: 1, Data: []byte("llo"), EndStream: true, Padded: true, PadLength: 4}).Append(nil),
		AppendPing(nil, false, [8]byte{1}),
		(&HeadersFrame{StreamID: 3, EndStream: true, Fragment: b3[:2]}).Append(nil),
		(&ContinuationFrame{StreamID: 3, EndHeaders: true, Fragment: b3[2:]}).Append(nil),
	}
	for _, p := range parts {
		in = append(in, p...)
		boundaries = append(boundaries, len(in))
	}
	return in, boundaries
}

var conversationEvents = []string{
	"settings",
	"headers 1 req POST https example.com / content-length=5 end=false",
	`data 1 "he" end=false`,
	`data 1 "llo" end=true`,
	"ping 0100000000000000 ack=false",
	"headers 3 req GET https example.com / end=true",
}

func TestFeedConversation(t *testing.T) {
	in, _ := conversation(t)
	r := &recorder{}
	c := NewConn(RoleServer, Limits{}, r, t0)
	feedAll(t, c, in)
	wantStrings(t, "events", r.strings(), conversationEvents...)
}

// TestFeedTruncations: every prefix consumes exactly the complete frames in
// it (0 for a prefix without one), never fails, and reports only their
// events; feeding the rest afterwards completes the conversation.
func TestFeedTruncations(t *testing.T) {
	in, bounds := conversation(t)
	for i := range len(in) {
		r := &recorder{}
		c := NewConn(RoleServer, Limits{}, r, t0)
		n, err := c.Feed(in[:i], t0)
		want := 0
		for _, b := range bounds {
			if b <= i {
				want = b
			}
		}
		if err != nil || n != want {
			t.Fatalf("prefix %d: n=%d want %d err=%v", i, n, want, err)
		}
		feedAll(t, c, in[n:])
		wantStrings(t, "events", r.strings(), conversationEvents...)
	}
}

// TestFeedRandomSplits feeds the conversation in random pieces the way a
// socket delivers it: the owner keeps the unconsumed tail.
func TestFeedRandomSplits(t *testing.T) {
	in, _ := conversation(t)
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		r := &recorder{}
		c := NewConn(RoleServer, Limits{}, r, t0)
		var buf []byte
		rest := in
		for len(rest) > 0 {
			k := 1 + rng.IntN(min(len(rest), 40))
			buf = append(buf, rest[:k]...)
			rest = rest[k:]
			n, err := c.Feed(buf, t0)
			if err != nil {
				t.Fatal(err)
			}
			buf = append(buf[:0], buf[n:]...)
		}
		if len(buf) != 0 {
			t.Fatalf("%d bytes left", len(buf))
		}
		wantStrings(t, "events", r.strings(), conversationEvents...)
	}
}

// TestFeedTruncationsClient: the same for the client role, on a response
// with an interim head, a body and trailers.
func TestFeedTruncationsClient(t *testing.T) {
	e := newEnc()
	parts := [][]byte{
		settingsFrame(Setting{SettingMaxConcurrentStreams, 10}),
		AppendSettingsAck(nil),
		headersFrame(1, e.block(":status", "103", "link", "</a.css>"), false),
		headersFrame(1, e.block(":status", "200", "content-length", "4"), false),
		(&DataFrame{StreamID: 1, Data: []byte("body"), Padded: true, PadLength: 1}).Append(nil),
		headersFrame(1, e.block("x-sum", "7"), true),
	}
	var in []byte
	var bounds []int
	for _, p := range parts {
		in = append(in, p...)
		bounds = append(bounds, len(in))
	}
	want := []string{"settings", "headers 1 resp 103 link=</a.css> end=false", "headers 1 resp 200 content-length=4 end=false",
		`data 1 "body" end=false`, "headers 1 trailers x-sum=7 end=true"}
	for i := range len(in) + 1 {
		r := &recorder{}
		c := NewConn(RoleClient, Limits{}, r, t0)
		if _, err := c.WriteRequest(&Head{Method: []byte("GET"), Scheme: []byte("https"), Path: []byte("/")}, true); err != nil {
			t.Fatal(err)
		}
		n, err := c.Feed(in[:i], t0)
		wantN := 0
		for _, b := range bounds {
			if b <= i {
				wantN = b
			}
		}
		if err != nil || n != wantN {
			t.Fatalf("prefix %d: n=%d want %d err=%v", i, n, wantN, err)
		}
		feedAll(t, c, in[n:])
		wantStrings(t, "events", r.strings(), want...)
	}
}
