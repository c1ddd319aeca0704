// SPDX-License-Identifier: GPL-3.0-only

package h2

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// badCase is a sequence of frames after a completed handshake and the one
// error it must produce: a connection error (Feed returns it, GOAWAY with
// its code is the last output frame) or a stream error (reported, its
// RST_STREAM queued, and the connection still serves a new stream).
type badCase struct {
	name   string
	lim    Limits
	client bool                // client role; setup has opened stream 1
	frames func(e *enc) []byte // what the peer sends
	conn   *ConnError
	stream *StreamError
	id     uint32 // stream of the stream error
}

func runBadCases(t *testing.T, cases []badCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var c *Conn
			var r *recorder
			if tc.client {
				c, r = newClient(t, tc.lim)
				if id, err := c.WriteRequest(&Head{Method: []byte("GET"), Scheme: []byte("https"), Path: []byte("/")}, true); err != nil || id != 1 {
					t.Fatalf("WriteRequest: %d %v", id, err)
				}
				outFrames(t, c)
			} else {
				c, r = newServer(t, tc.lim)
			}
			e := newEnc()
			in := tc.frames(e)
			n, err := c.Feed(in, t0)
			if tc.conn != nil {
				var ce *ConnError
				if !errors.As(err, &ce) || ce.Token != tc.conn.Token || ce.Code != tc.conn.Code {
					t.Fatalf("err = %v, want %v", err, tc.conn)
				}
				out := frameStrings(outFrames(t, c))
				last := fmt.Sprintf("GOAWAY %d %v %q", c.lastPeerStream, tc.conn.Code, tc.conn.Token)
				if len(out) == 0 || out[len(out)-1] != last {
					t.Fatalf("output %q, want it to end with %q", out, last)
				}
				if c.Err() != ce {
					t.Fatal("Err() is not the returned error")
				}
				return
			}
			if err != nil || n != len(in) {
				t.Fatalf("Feed: n=%d of %d err=%v", n, len(in), err)
			}
			var got []string
			for _, ev := range r.take() {
				if ev.kind == "streamerr" {
					got = append(got, ev.String())
				}
			}
			want := fmt.Sprintf("streamerr %d %v %s", tc.id, tc.stream.Code, tc.stream.Token)
			if len(got) != 1 || got[0] != want {
				t.Fatalf("stream errors %q, want %q", got, want)
			}
			rst := fmt.Sprintf("RST_STREAM %d %v", tc.id, tc.stream.Code)
			if out := frameStrings(outFrames(t, c)); !slices.Contains(out, rst) {
				t.Fatalf("output %q lacks %q", out, rst)
			}
			if tc.client {
				return
			}
			// The connection goes on: a new request is served.
			for id := range c.streams {
				_ = c.WriteRST(id, ErrCodeCancel)
			}
			feedAll(t, c, headersFrame(201, e.block(req()...), true))
			if ev := r.strings(); len(ev) != 1 || !strings.HasPrefix(ev[0], "headers 201 req GET") {
				t.Fatalf("after the stream error: %q", ev)
			}
		})
	}
}

func frames(fs ...[]byte) []byte { return cat(fs...) }

func TestConnErrors(t *testing.T) {
	big := strings.Repeat("x", 300)
	runBadCases(t, []badCase{
		{name: "DATA on stream 0", frames: func(*enc) []byte { return dataFrame(0, "x", false) }, conn: ErrDataStreamZero},
		{name: "HEADERS on an even stream from a client", frames: func(e *enc) []byte { return headersFrame(2, e.block(req()...), true) }, conn: ErrBadStreamID},
		{name: "WINDOW_UPDATE of 0 on the connection", frames: func(*enc) []byte { return AppendWindowUpdate(nil, 0, 0) }, conn: ErrWindowUpdateZeroConn},
		{name: "connection window overflow", frames: func(*enc) []byte { return AppendWindowUpdate(nil, 0, maxWindow) }, conn: ErrWindowOverflowConn},
		{name: "SETTINGS ENABLE_PUSH=2", frames: func(*enc) []byte { return settingsFrame(Setting{SettingEnablePush, 2}) }, conn: ErrSettingsBadEnablePush},
		{name: "SETTINGS INITIAL_WINDOW_SIZE 2^31", frames: func(*enc) []byte { return settingsFrame(Setting{SettingInitialWindowSize, 1 << 31}) }, conn: ErrSettingsBadWindow},
		{name: "SETTINGS MAX_FRAME_SIZE 100", frames: func(*enc) []byte { return settingsFrame(Setting{SettingMaxFrameSize, 100}) }, conn: ErrSettingsBadFrameSize},
		{name: "SETTINGS on stream 1", frames: func(*enc) []byte {
			return AppendFrameHeader(nil, FrameHeader{Type: FrameSettings, StreamID: 1})
		}, conn: ErrSettingsNonZeroStream},
		{name: "SETTINGS length 7", frames: func(*enc) []byte {
			return append(AppendFrameHeader(nil, FrameHeader{Type: FrameSettings, Length: 7}), 0, 3, 0, 0, 0, 1, 0)
		}, conn: ErrSettingsBadLength},
		{name: "SETTINGS ACK with payload", frames: func(*enc) []byte {
			return append(AppendFrameHeader(nil, FrameHeader{Type: FrameSettings, Flags: FlagAck, Length: 6}), 0, 3, 0, 0, 0, 1)
		}, conn: ErrSettingsAckWithPayload},
		{name: "SETTINGS ACK without SETTINGS", frames: func(*enc) []byte { return AppendSettingsAck(nil) }, conn: ErrUnexpectedSettingsAck},
		{name: "ENABLE_CONNECT_PROTOCOL revoked", frames: func(*enc) []byte {
			return frames(settingsFrame(Setting{SettingEnableConnectProtocol, 1}), settingsFrame(Setting{SettingEnableConnectProtocol, 0}))
		}, conn: ErrSettingsBadConnect},
		{name: "PING length 7", frames: func(*enc) []byte {
			return append(AppendFrameHeader(nil, FrameHeader{Type: FramePing, Length: 7}), 1, 2, 3, 4, 5, 6, 7)
		}, conn: ErrPingBadLength},
		{name: "PING on stream 1", frames: func(*enc) []byte {
			return append(AppendFrameHeader(nil, FrameHeader{Type: FramePing, Length: 8, StreamID: 1}), make([]byte, 8)...)
		}, conn: ErrPingNonZeroStream},
		{name: "GOAWAY on stream 1", frames: func(*enc) []byte {
			return append(AppendFrameHeader(nil, FrameHeader{Type: FrameGoAway, Length: 8, StreamID: 1}), make([]byte, 8)...)
		}, conn: ErrGoAwayNonZeroStream},
		{name: "RST_STREAM length 5", frames: func(e *enc) []byte {
			return frames(headersFrame(1, e.block(req()...), false),
				append(AppendFrameHeader(nil, FrameHeader{Type: FrameRSTStream, Length: 5, StreamID: 1}), make([]byte, 5)...))
		}, conn: ErrRSTStreamBadLength},
		{name: "PRIORITY on stream 0", frames: func(*enc) []byte {
			return (&PriorityFrame{StreamID: 0, PriorityParam: PriorityParam{StreamDep: 1}}).Append(nil)
		}, conn: ErrPriorityStreamZero},
		{name: "frame larger than SETTINGS_MAX_FRAME_SIZE", frames: func(*enc) []byte {
			// The header alone is enough to refuse it.
			return AppendFrameHeader(nil, FrameHeader{Type: FrameData, Length: defaultMaxFrame + 1, StreamID: 1})
		}, conn: ErrFrameTooLarge},
		{name: "unknown frame type larger than the max too", frames: func(*enc) []byte {
			return AppendFrameHeader(nil, FrameHeader{Type: 0xfa, Length: 1 << 20})
		}, conn: ErrFrameTooLarge},
		{name: "CONTINUATION without HEADERS", frames: func(e *enc) []byte {
			return (&ContinuationFrame{StreamID: 1, EndHeaders: true, Fragment: e.block(req()...)}).Append(nil)
		}, conn: ErrUnexpectedContinuation},
		{name: "CONTINUATION after a complete block", frames: func(e *enc) []byte {
			return frames(headersFrame(1, e.block(req()...), false), (&ContinuationFrame{StreamID: 1, EndHeaders: true}).Append(nil))
		}, conn: ErrUnexpectedContinuation},
		{name: "PING inside a header block", frames: func(e *enc) []byte {
			b := e.block(req()...)
			return frames((&HeadersFrame{StreamID: 1, Fragment: b[:2]}).Append(nil), AppendPing(nil, false, [8]byte{}),
				(&ContinuationFrame{StreamID: 1, EndHeaders: true, Fragment: b[2:]}).Append(nil))
		}, conn: ErrInterleavedHeaderBlock},
		{name: "unknown frame inside a header block", frames: func(e *enc) []byte {
			b := e.block(req()...)
			return frames((&HeadersFrame{StreamID: 1, Fragment: b[:2]}).Append(nil), AppendFrameHeader(nil, FrameHeader{Type: 0xfa}))
		}, conn: ErrInterleavedHeaderBlock},
		{name: "CONTINUATION on another stream", frames: func(e *enc) []byte {
			b := e.block(req()...)
			return frames((&HeadersFrame{StreamID: 1, Fragment: b[:2]}).Append(nil),
				(&ContinuationFrame{StreamID: 3, EndHeaders: true, Fragment: b[2:]}).Append(nil))
		}, conn: ErrInterleavedHeaderBlock},
		{name: "too many CONTINUATION frames", frames: func(e *enc) []byte {
			b := frames((&HeadersFrame{StreamID: 1, Fragment: e.block(req()...)}).Append(nil))
			for range 33 {
				b = append(b, (&ContinuationFrame{StreamID: 1}).Append(nil)...)
			}
			return b
		}, conn: ErrContinuationFlood},
		{name: "header block too big", lim: Limits{MaxHeaderBlockBytes: 1000}, frames: func(e *enc) []byte {
			b := (&HeadersFrame{StreamID: 1, Fragment: make([]byte, 600)}).Append(nil)
			return frames(b, (&ContinuationFrame{StreamID: 1, Fragment: make([]byte, 600)}).Append(nil))
		}, conn: ErrHeaderBlockTooLarge},
		{name: "stream id going backwards", frames: func(e *enc) []byte {
			return frames(headersFrame(5, e.block(req()...), true), headersFrame(3, e.block(req()...), true))
		}, conn: ErrStreamIDBackwards},
		{name: "DATA on an idle stream", frames: func(*enc) []byte { return dataFrame(1, "x", false) }, conn: ErrFrameOnIdleStream},
		{name: "RST_STREAM on an idle stream", frames: func(*enc) []byte { return AppendRSTStream(nil, 1, ErrCodeCancel) }, conn: ErrFrameOnIdleStream},
		{name: "WINDOW_UPDATE on an idle stream", frames: func(*enc) []byte { return AppendWindowUpdate(nil, 1, 1) }, conn: ErrFrameOnIdleStream},
		{name: "PUSH_PROMISE from a client", frames: func(e *enc) []byte {
			return frames(headersFrame(1, e.block(req()...), false),
				(&PushPromiseFrame{StreamID: 1, PromisedID: 2, EndHeaders: true, Fragment: e.block(req()...)}).Append(nil))
		}, conn: ErrPushPromiseFromClient},
		{name: "DATA beyond the connection window", lim: Limits{ConnWindow: defaultWindow, InitialStreamWindow: 1 << 20}, frames: func(e *enc) []byte {
			b := frames(headersFrame(1, e.block(post()...), false))
			for range 4 {
				b = append(b, dataFrame(1, strings.Repeat("x", defaultMaxFrame), false)...)
			}
			return b
		}, conn: ErrConnFlowControl},
		{name: "INITIAL_WINDOW_SIZE change overflows a stream window", frames: func(e *enc) []byte {
			return frames(headersFrame(1, e.block(req()...), false),
				AppendWindowUpdate(nil, 1, maxWindow-defaultWindow),
				settingsFrame(Setting{SettingInitialWindowSize, defaultWindow + 1}))
		}, conn: ErrSettingsWindowOverflow},
		{name: "HPACK garbage", frames: func(*enc) []byte {
			return headersFrame(1, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, true)
		}, conn: ErrHPACKDecode},
		{name: "HPACK truncated block", frames: func(e *enc) []byte {
			b := e.block(req("x-foo", "bar")...)
			return headersFrame(1, b[:len(b)-1], true)
		}, conn: ErrHPACKDecode},
		{name: "HPACK index out of range", frames: func(*enc) []byte { return headersFrame(1, []byte{0xbf}, true) }, conn: ErrHPACKDecode},
		{name: "HPACK size update above our setting", frames: func(*enc) []byte { return headersFrame(1, []byte{0x3f, 0xe2, 0x1f}, true) }, conn: ErrHPACKDecode},
		{name: "HPACK bomb", lim: Limits{HPACKRatioFloor: 1000, HPACKMaxRatio: 4}, frames: func(e *enc) []byte {
			// One literal of 300 octets indexed, then referenced 20 times:
			// 6000 octets decoded from about 330.
			b := e.block(req("x-big", big)...)
			for range 20 {
				b = append(b, 0xbe) // index 62: the newest dynamic entry
			}
			return headersFrame(1, b, true)
		}, conn: ErrHPACKBomb},
		{name: "header field larger than the list limit", lim: Limits{MaxHeaderListSize: 200}, frames: func(e *enc) []byte {
			return headersFrame(1, e.block(req("x-big", big)...), true)
		}, conn: ErrHeaderFieldTooLarge},
		{name: "control frame flood", lim: Limits{MaxQueuedControlFrames: 10}, frames: func(*enc) []byte {
			var b []byte
			for range 11 {
				b = append(b, AppendPing(nil, false, [8]byte{})...)
			}
			return b
		}, conn: ErrControlFlood},
		{name: "RST_STREAM flood from refused streams", lim: Limits{MaxQueuedControlFrames: 10, MaxConcurrentStreams: 1}, frames: func(e *enc) []byte {
			b := headersFrame(1, e.block(req()...), true)
			for i := range 11 {
				b = append(b, headersFrame(uint32(3+2*i), e.block(req()...), true)...)
			}
			return b
		}, conn: ErrControlFlood},
		{name: "client: PUSH_PROMISE while push is disabled", client: true, frames: func(e *enc) []byte {
			return (&PushPromiseFrame{StreamID: 1, PromisedID: 2, EndHeaders: true, Fragment: e.block(req()...)}).Append(nil)
		}, conn: ErrPushDisabled},
		{name: "client: server enables push", client: true, frames: func(*enc) []byte { return settingsFrame(Setting{SettingEnablePush, 1}) }, conn: ErrSettingsBadEnablePush},
		{name: "client: HEADERS on a stream we did not open", client: true, frames: func(e *enc) []byte {
			return headersFrame(3, e.block(":status", "200"), true)
		}, conn: ErrBadStreamID},
		{name: "client: HEADERS on a server stream", client: true, frames: func(e *enc) []byte {
			return headersFrame(2, e.block(":status", "200"), true)
		}, conn: ErrBadStreamID},
	})
}

func TestStreamErrors(t *testing.T) {
	with := func(kv ...string) func(e *enc) []byte {
		return func(e *enc) []byte { return headersFrame(1, e.block(kv...), true) }
	}
	runBadCases(t, []badCase{
		{name: "uppercase field name", frames: with(req("X-Foo", "1")...), stream: ErrUppercaseHeader, id: 1},
		{name: "te: gzip", frames: with(req("te", "gzip")...), stream: ErrTENotTrailers, id: 1},
		{name: "connection field", frames: with(req("connection", "keep-alive")...), stream: ErrConnectionHeader, id: 1},
		{name: "keep-alive field", frames: with(req("keep-alive", "5")...), stream: ErrConnectionHeader, id: 1},
		{name: "transfer-encoding field", frames: with(req("transfer-encoding", "chunked")...), stream: ErrConnectionHeader, id: 1},
		{name: "upgrade field", frames: with(req("upgrade", "h2c")...), stream: ErrConnectionHeader, id: 1},
		{name: "proxy-connection field", frames: with(req("proxy-connection", "close")...), stream: ErrConnectionHeader, id: 1},
		{name: "pseudo after regular", frames: with(":method", "GET", ":scheme", "https", "x", "1", ":path", "/"), stream: ErrPseudoAfterRegular, id: 1},
		{name: "missing :path", frames: with(":method", "GET", ":scheme", "https"), stream: ErrMissingPath, id: 1},
		{name: "missing :method", frames: with(":scheme", "https", ":path", "/"), stream: ErrMissingMethod, id: 1},
		{name: "missing :scheme", frames: with(":method", "GET", ":path", "/"), stream: ErrMissingScheme, id: 1},
		{name: "empty :path", frames: with(":method", "GET", ":scheme", "https", ":path", ""), stream: ErrBadPath, id: 1},
		{name: "relative :path", frames: with(":method", "GET", ":scheme", "https", ":path", "a/b"), stream: ErrBadPath, id: 1},
		{name: "* for GET", frames: with(":method", "GET", ":scheme", "https", ":path", "*"), stream: ErrBadPath, id: 1},
		{name: "undefined pseudo", frames: with(req(":foo", "1")...), stream: ErrUnknownPseudo, id: 1},
		{name: ":status in a request", frames: with(":status", "200", ":method", "GET", ":scheme", "https", ":path", "/"), stream: ErrUnknownPseudo, id: 1},
		{name: "duplicate :path", frames: with(":method", "GET", ":scheme", "https", ":path", "/", ":path", "/"), stream: ErrDuplicatePseudo, id: 1},
		{name: "bad method", frames: with(":method", "G T", ":scheme", "https", ":path", "/"), stream: ErrBadMethod, id: 1},
		{name: "bad scheme", frames: with(":method", "GET", ":scheme", "1http", ":path", "/"), stream: ErrBadScheme, id: 1},
		{name: "authority with userinfo", frames: with(":method", "GET", ":scheme", "https", ":authority", "u@h", ":path", "/"), stream: ErrBadAuthority, id: 1},
		{name: "CONNECT with :path", frames: with(":method", "CONNECT", ":authority", "h:443", ":path", "/"), stream: ErrBadConnect, id: 1},
		{name: "CONNECT without :authority", frames: with(":method", "CONNECT"), stream: ErrMissingAuthority, id: 1},
		{name: ":protocol not enabled", frames: with(":method", "CONNECT", ":protocol", "websocket", ":scheme", "https", ":path", "/chat", ":authority", "h"), stream: ErrProtocolNotEnabled, id: 1},
		{name: ":protocol on GET", lim: Limits{EnableConnectProtocol: true}, frames: with(req(":protocol", "websocket")...), stream: ErrBadConnect, id: 1},
		{name: "empty field name", frames: with(req("", "x")...), stream: ErrEmptyHeaderName, id: 1},
		{name: "space in a field name", frames: with(req("a b", "x")...), stream: ErrBadHeaderName, id: 1},
		{name: "colon inside a field name", frames: with(req("a:b", "x")...), stream: ErrBadHeaderName, id: 1},
		{name: "CR in a value", frames: with(req("x", "a\rb")...), stream: ErrBadHeaderValue, id: 1},
		{name: "LF in a value", frames: with(req("x", "a\nb")...), stream: ErrBadHeaderValue, id: 1},
		{name: "NUL in a value", frames: with(req("x", "a\x00b")...), stream: ErrBadHeaderValue, id: 1},
		{name: "NUL in a pseudo value", frames: with(":method", "GET", ":scheme", "https", ":path", "/\x00"), stream: ErrBadHeaderValue, id: 1},
		{name: "leading space in a value", frames: with(req("x", " a")...), stream: ErrHeaderValueSpace, id: 1},
		{name: "trailing tab in a value", frames: with(req("x", "a\t")...), stream: ErrHeaderValueSpace, id: 1},
		{name: "content-length not digits", frames: with(req("content-length", "-1")...), stream: ErrBadContentLength, id: 1},
		{name: "content-length twice", frames: with(req("content-length", "0", "content-length", "0")...), stream: ErrMultipleContentLength, id: 1},
		{name: "content-length with END_STREAM on HEADERS", frames: with(req("content-length", "5")...), stream: ErrContentLengthMismatch, id: 1},
		{name: "content-length short at END_STREAM", frames: func(e *enc) []byte {
			return frames(headersFrame(1, e.block(post("content-length", "5")...), false), dataFrame(1, "abc", true))
		}, stream: ErrContentLengthMismatch, id: 1},
		{name: "content-length exceeded", frames: func(e *enc) []byte {
			return frames(headersFrame(1, e.block(post("content-length", "2")...), false), dataFrame(1, "abc", false))
		}, stream: ErrContentLengthMismatch, id: 1},
		{name: "content-length short at trailers", frames: func(e *enc) []byte {
			return frames(headersFrame(1, e.block(post("content-length", "5")...), false), dataFrame(1, "abc", false),
				headersFrame(1, e.block("x-checksum", "1"), true))
		}, stream: ErrContentLengthMismatch, id: 1},
		{name: "trailers without END_STREAM", frames: func(e *enc) []byte {
			return frames(headersFrame(1, e.block(post()...), false), headersFrame(1, e.block("x-checksum", "1"), false))
		}, stream: ErrTrailersNoEndStream, id: 1},
		{name: "pseudo-header in trailers", frames: func(e *enc) []byte {
			return frames(headersFrame(1, e.block(post()...), false), headersFrame(1, e.block(":path", "/"), true))
		}, stream: ErrPseudoInTrailers, id: 1},
		{name: "HEADERS after END_STREAM", frames: func(e *enc) []byte {
			return frames(headersFrame(1, e.block(req()...), true), headersFrame(1, e.block("x", "1"), true))
		}, stream: ErrStreamClosed, id: 1},
		{name: "DATA after END_STREAM", frames: func(e *enc) []byte {
			return frames(headersFrame(1, e.block(req()...), true), dataFrame(1, "x", false))
		}, stream: ErrStreamClosed, id: 1},
		{name: "DATA after the peer's RST_STREAM", frames: func(e *enc) []byte {
			return frames(headersFrame(1, e.block(post()...), false), AppendRSTStream(nil, 1, ErrCodeCancel), dataFrame(1, "x", false))
		}, stream: ErrStreamClosed, id: 1},
		{name: "DATA beyond the stream window", lim: Limits{InitialStreamWindow: 100}, frames: func(e *enc) []byte {
			return frames(headersFrame(1, e.block(post()...), false), dataFrame(1, strings.Repeat("x", 101), false))
		}, stream: ErrStreamFlowControl, id: 1},
		{name: "WINDOW_UPDATE of 0 on a stream", frames: func(e *enc) []byte {
			return frames(headersFrame(1, e.block(post()...), false), AppendWindowUpdate(nil, 1, 0))
		}, stream: ErrWindowUpdateZero, id: 1},
		{name: "stream window overflow", frames: func(e *enc) []byte {
			return frames(headersFrame(1, e.block(post()...), false), AppendWindowUpdate(nil, 1, maxWindow))
		}, stream: ErrWindowOverflow, id: 1},
		{name: "PRIORITY self-dependency", frames: func(*enc) []byte {
			return (&PriorityFrame{StreamID: 1, PriorityParam: PriorityParam{StreamDep: 1}}).Append(nil)
		}, stream: ErrPrioritySelfDep, id: 1},
		{name: "PRIORITY length 4", frames: func(*enc) []byte {
			return append(AppendFrameHeader(nil, FrameHeader{Type: FramePriority, Length: 4, StreamID: 3}), 0, 0, 0, 1)
		}, stream: ErrPriorityBadLength, id: 3},
		{name: "HEADERS self-dependency", frames: func(e *enc) []byte {
			return (&HeadersFrame{StreamID: 1, EndHeaders: true, EndStream: true, HasPriority: true,
				Priority: PriorityParam{StreamDep: 1}, Fragment: e.block(req()...)}).Append(nil)
		}, stream: ErrPrioritySelfDep, id: 1},
		{name: "header list too large", lim: Limits{MaxHeaderListSize: 400}, frames: func(e *enc) []byte {
			return headersFrame(1, e.block(req("a", strings.Repeat("x", 150), "b", strings.Repeat("y", 150))...), true)
		}, stream: ErrHeaderListTooLarge, id: 1},
		{name: "MAX_CONCURRENT_STREAMS exceeded", lim: Limits{MaxConcurrentStreams: 2}, frames: func(e *enc) []byte {
			return frames(headersFrame(1, e.block(post()...), false), headersFrame(3, e.block(post()...), false),
				headersFrame(5, e.block(post()...), false))
		}, stream: ErrRefusedStream, id: 5},
		{name: "client: DATA before the response head", client: true, frames: func(*enc) []byte { return dataFrame(1, "x", false) },
			stream: ErrDataBeforeHeaders, id: 1},
		{name: "client: 1xx ending the stream", client: true, frames: func(e *enc) []byte { return headersFrame(1, e.block(":status", "103"), true) },
			stream: ErrInformationalEndStream, id: 1},
		{name: "client: response without :status", client: true, frames: func(e *enc) []byte { return headersFrame(1, e.block("x", "1"), true) },
			stream: ErrMissingStatus, id: 1},
		{name: "client: :status 101", client: true, frames: func(e *enc) []byte { return headersFrame(1, e.block(":status", "101"), true) },
			stream: ErrBadStatus, id: 1},
		{name: "client: :status 2000", client: true, frames: func(e *enc) []byte { return headersFrame(1, e.block(":status", "2000"), true) },
			stream: ErrBadStatus, id: 1},
		{name: "client: :method in a response", client: true, frames: func(e *enc) []byte {
			return headersFrame(1, e.block(":status", "200", ":method", "GET"), true)
		}, stream: ErrUnknownPseudo, id: 1},
		{name: "client: response content-length short", client: true, frames: func(e *enc) []byte {
			return frames(headersFrame(1, e.block(":status", "200", "content-length", "3"), false), dataFrame(1, "ab", true))
		}, stream: ErrContentLengthMismatch, id: 1},
	})
}
