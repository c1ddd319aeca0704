// SPDX-License-Identifier: GPL-3.0-only

package h2

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2/hpack"
)

var t0 = time.Unix(1_700_000_000, 0)

// event is one Handler call, deep-copied.
type event struct {
	kind   string
	id     uint32
	head   *Head
	data   []byte
	end    bool
	code   ErrCode
	token  string
	unproc []uint32
	ack    bool
	ping   [8]byte
}

func (e event) String() string {
	switch e.kind {
	case "headers":
		return fmt.Sprintf("headers %d %s end=%v", e.id, headString(e.head), e.end)
	case "data":
		return fmt.Sprintf("data %d %q end=%v", e.id, e.data, e.end)
	case "reset":
		return fmt.Sprintf("reset %d %v", e.id, e.code)
	case "streamerr":
		return fmt.Sprintf("streamerr %d %v %s", e.id, e.code, e.token)
	case "goaway":
		return fmt.Sprintf("goaway %d %v %q %v", e.id, e.code, e.data, e.unproc)
	case "window":
		return fmt.Sprintf("window %d", e.id)
	case "ping":
		return fmt.Sprintf("ping %x ack=%v", e.ping, e.ack)
	}
	return e.kind
}

func cloneHead(h *Head) *Head {
	c := *h
	cp := func(b []byte) []byte {
		if b == nil {
			return nil
		}
		return append([]byte{}, b...)
	}
	c.Method, c.Scheme, c.Authority, c.Path, c.Protocol = cp(h.Method), cp(h.Scheme), cp(h.Authority), cp(h.Path), cp(h.Protocol)
	c.Fields = nil
	for _, f := range h.Fields {
		c.Fields = append(c.Fields, Field{Name: cp(f.Name), Value: cp(f.Value)})
	}
	return &c
}

// recorder is a Handler that keeps every event and optionally reacts.
type recorder struct {
	events    []event
	onHeaders func(id uint32, h *Head, end bool)
	onData    func(id uint32, data []byte, end bool)
	consume   *Conn // when set, OnData consumes at once
}

func (r *recorder) OnHeaders(id uint32, h *Head, end bool) {
	r.events = append(r.events, event{kind: "headers", id: id, head: cloneHead(h), end: end})
	if r.onHeaders != nil {
		r.onHeaders(id, h, end)
	}
}

func (r *recorder) OnData(id uint32, data []byte, end bool) {
	r.events = append(r.events, event{kind: "data", id: id, data: append([]byte{}, data...), end: end})
	if r.consume != nil {
		r.consume.Consumed(id, len(data))
	}
	if r.onData != nil {
		r.onData(id, data, end)
	}
}

func (r *recorder) OnReset(id uint32, code ErrCode) {
	r.events = append(r.events, event{kind: "reset", id: id, code: code})
}

func (r *recorder) OnStreamError(err *StreamError) {
	r.events = append(r.events, event{kind: "streamerr", id: err.StreamID, code: err.Code, token: err.Token})
}

func (r *recorder) OnGoAway(last uint32, code ErrCode, debug []byte, unproc []uint32) {
	r.events = append(r.events, event{kind: "goaway", id: last, code: code, data: append([]byte{}, debug...), unproc: append([]uint32{}, unproc...)})
}

func (r *recorder) OnWindowUpdate(id uint32) {
	r.events = append(r.events, event{kind: "window", id: id})
}

func (r *recorder) OnSettings(Settings) { r.events = append(r.events, event{kind: "settings"}) }

func (r *recorder) OnPing(data [8]byte, ack bool) {
	r.events = append(r.events, event{kind: "ping", ping: data, ack: ack})
}

func (r *recorder) take() []event {
	ev := r.events
	r.events = nil
	return ev
}

func (r *recorder) strings() []string {
	var s []string
	for _, e := range r.take() {
		s = append(s, e.String())
	}
	return s
}

// enc is a peer's HPACK encoder.
type enc struct {
	buf bytes.Buffer
	e   *hpack.Encoder
}

func newEnc() *enc {
	x := &enc{}
	x.e = hpack.NewEncoder(&x.buf)
	return x
}

// block encodes name, value pairs.
func (x *enc) block(kv ...string) []byte {
	x.buf.Reset()
	for i := 0; i+1 < len(kv); i += 2 {
		_ = x.e.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
	}
	return append([]byte{}, x.buf.Bytes()...)
}

func headersFrame(id uint32, block []byte, endStream bool) []byte {
	f := HeadersFrame{StreamID: id, EndStream: endStream, EndHeaders: true, Fragment: block}
	return f.Append(nil)
}

func dataFrame(id uint32, data string, endStream bool) []byte {
	return AppendData(nil, id, []byte(data), endStream)
}

func settingsFrame(s ...Setting) []byte { return AppendSettings(nil, s...) }

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// clientStart is what a client sends first.
func clientStart(s ...Setting) []byte {
	return cat([]byte(ClientPreface), settingsFrame(s...))
}

// outFrames parses all of a Conn's output and drains it.
func outFrames(t testing.TB, c *Conn) []Frame {
	t.Helper()
	b := c.Output()
	var fs []Frame
	for len(b) > 0 {
		if bytes.HasPrefix(b, []byte(ClientPreface)) {
			b = b[len(ClientPreface):]
			continue
		}
		f, n, err := parseFrame(b, maxFrameSizeLimit)
		if err != nil || n == 0 {
			t.Fatalf("output does not parse: n=%d err=%v in %x", n, err, b)
		}
		fs = append(fs, f)
		b = b[n:]
	}
	c.Advance(len(c.Output()))
	return fs
}

// frameStrings describes output frames for comparison.
func frameStrings(fs []Frame) []string {
	var s []string
	for _, f := range fs {
		switch f := f.(type) {
		case SettingsFrame:
			if f.Ack {
				s = append(s, "SETTINGS ACK")
				continue
			}
			var p []string
			for i := range f.Len() {
				p = append(p, fmt.Sprintf("%v=%d", f.At(i).ID, f.At(i).Val))
			}
			s = append(s, "SETTINGS "+strings.Join(p, " "))
		case WindowUpdateFrame:
			s = append(s, fmt.Sprintf("WINDOW_UPDATE %d +%d", f.StreamID, f.Increment))
		case RSTStreamFrame:
			s = append(s, fmt.Sprintf("RST_STREAM %d %v", f.StreamID, f.Code))
		case GoAwayFrame:
			s = append(s, fmt.Sprintf("GOAWAY %d %v %q", f.LastStreamID, f.Code, f.Debug))
		case PingFrame:
			s = append(s, fmt.Sprintf("PING %x ack=%v", f.Data, f.Ack))
		case DataFrame:
			s = append(s, fmt.Sprintf("DATA %d len=%d end=%v", f.StreamID, len(f.Data), f.EndStream))
		case HeadersFrame:
			s = append(s, fmt.Sprintf("HEADERS %d end=%v endh=%v", f.StreamID, f.EndStream, f.EndHeaders))
		case ContinuationFrame:
			s = append(s, fmt.Sprintf("CONTINUATION %d endh=%v", f.StreamID, f.EndHeaders))
		default:
			s = append(s, fmt.Sprintf("%T", f))
		}
	}
	return s
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func wantStrings(t testing.TB, what string, got []string, want ...string) {
	t.Helper()
	if !equalStrings(got, want) {
		t.Fatalf("%s:\n got %q\nwant %q", what, got, want)
	}
}

// feedAll feeds b and insists that all of it is consumed without error.
func feedAll(t testing.TB, c *Conn, b []byte) {
	t.Helper()
	n, err := c.Feed(b, t0)
	if err != nil || n != len(b) {
		t.Fatalf("Feed: n=%d of %d, err=%v", n, len(b), err)
	}
}

// newServer returns a server Conn past the handshake (preface, both
// SETTINGS, and the ACK of ours), output drained.
func newServer(t testing.TB, lim Limits) (*Conn, *recorder) {
	t.Helper()
	r := &recorder{}
	c := NewConn(RoleServer, lim, r, t0)
	feedAll(t, c, cat(clientStart(), AppendSettingsAck(nil)))
	outFrames(t, c)
	r.take()
	return c, r
}

// newClient returns a client Conn past the handshake with a server that
// sent the given settings.
func newClient(t testing.TB, lim Limits, s ...Setting) (*Conn, *recorder) {
	t.Helper()
	r := &recorder{}
	c := NewConn(RoleClient, lim, r, t0)
	feedAll(t, c, cat(settingsFrame(s...), AppendSettingsAck(nil)))
	outFrames(t, c)
	r.take()
	return c, r
}

// decodeBlock decodes a header block we sent.
func decodeBlock(t testing.TB, d *hpack.Decoder, block []byte) []string {
	t.Helper()
	fs, err := d.DecodeFull(block)
	if err != nil {
		t.Fatalf("our header block does not decode: %v", err)
	}
	var s []string
	for _, f := range fs {
		s = append(s, f.Name+"="+f.Value)
	}
	return s
}

func hpackDecoderFor() *hpack.Decoder { return hpack.NewDecoder(4096, nil) }
