// SPDX-License-Identifier: GPL-3.0-only

package h2

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// knownError reports whether err is one of the package's error values.
func knownError(err error) bool {
	var ce *ConnError
	if errors.As(err, &ce) {
		return slices.Contains(allConnErrors, ce)
	}
	var se *StreamError
	if errors.As(err, &se) {
		return slices.Contains(allStreamErrors, se)
	}
	return false
}

func FuzzFrameParse(f *testing.F) {
	d := [8]byte{1, 2, 3, 4, 5, 6, 7, 8}
	for _, fr := range []appender{
		&DataFrame{StreamID: 1, EndStream: true, Data: []byte("hello")},
		&DataFrame{StreamID: 3, Data: []byte("hi"), Padded: true, PadLength: 3},
		&HeadersFrame{StreamID: 5, EndHeaders: true, HasPriority: true, Priority: PriorityParam{StreamDep: 3, Exclusive: true, Weight: 15},
			Fragment: []byte{0x82}, Padded: true, PadLength: 2},
		&PriorityFrame{StreamID: 7, PriorityParam: PriorityParam{StreamDep: 5, Weight: 255}},
		&RSTStreamFrame{StreamID: 1, Code: ErrCodeCancel},
		&PushPromiseFrame{StreamID: 3, PromisedID: 4, Fragment: []byte{0x82, 0x84}, Padded: true, PadLength: 1},
		&PingFrame{Ack: true, Data: d},
		&GoAwayFrame{LastStreamID: 7, Code: ErrCodeProtocol, Debug: []byte("hi")},
		&WindowUpdateFrame{StreamID: 3, Increment: 1000},
		&ContinuationFrame{StreamID: 1, EndHeaders: true, Fragment: []byte{0x82, 0x86}},
	} {
		f.Add(fr.Append(nil))
	}
	f.Add(AppendSettings(nil, Setting{SettingMaxConcurrentStreams, 100}, Setting{SettingInitialWindowSize, 1 << 20}))
	f.Add(AppendSettingsAck(nil))
	f.Add(AppendFrameHeader(nil, FrameHeader{Type: 0xfa, Length: 2}))
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, n, err := parseFrame(data, defaultMaxFrame)
		if n < 0 || n > len(data) {
			t.Fatalf("n=%d of %d", n, len(data))
		}
		if err != nil {
			if !knownError(err) {
				t.Fatalf("unknown error %T %v", err, err)
			}
			return
		}
		if fr == nil {
			if n != 0 {
				t.Fatal("n without a frame")
			}
			return
		}
		h, _ := parseFrameHeader(data)
		if n != frameHeaderLen+int(h.Length) {
			t.Fatalf("n=%d for length %d", n, h.Length)
		}
		// Re-encoding what we parsed gives a frame that parses the same.
		var again []byte
		switch v := fr.(type) {
		case DataFrame:
			again = v.Append(nil)
		case HeadersFrame:
			again = v.Append(nil)
		case PriorityFrame:
			again = v.Append(nil)
		case RSTStreamFrame:
			again = v.Append(nil)
		case PushPromiseFrame:
			again = v.Append(nil)
		case PingFrame:
			again = v.Append(nil)
		case GoAwayFrame:
			again = v.Append(nil)
		case WindowUpdateFrame:
			again = v.Append(nil)
		case ContinuationFrame:
			again = v.Append(nil)
		case SettingsFrame:
			if v.Ack {
				again = AppendSettingsAck(nil)
			} else {
				s := make([]Setting, v.Len())
				for i := range s {
					s[i] = v.At(i)
				}
				again = AppendSettings(nil, s...)
			}
		case UnknownFrame:
			return
		default:
			t.Fatalf("unexpected %T", fr)
		}
		fr2, n2, err := parseFrame(again, maxFrameSizeLimit)
		if err != nil || n2 != len(again) || !reflect.DeepEqual(normalize(fr), normalize(fr2)) {
			t.Fatalf("round trip: %v\n%#v\n%#v", err, fr, fr2)
		}
	})
}

// normalize makes empty and nil byte slices compare equal.
func normalize(f Frame) Frame {
	switch v := f.(type) {
	case DataFrame:
		v.Data = append([]byte{}, v.Data...)
		return v
	case HeadersFrame:
		v.Fragment = append([]byte{}, v.Fragment...)
		return v
	case PushPromiseFrame:
		v.Fragment = append([]byte{}, v.Fragment...)
		return v
	case ContinuationFrame:
		v.Fragment = append([]byte{}, v.Fragment...)
		return v
	case GoAwayFrame:
		v.Debug = append([]byte{}, v.Debug...)
		return v
	case SettingsFrame:
		v.raw = append([]byte{}, v.raw...)
		return v
	}
	return f
}

// fuzzSeeds are frame sequences a client might send after its preface.
func fuzzSeeds() [][]byte {
	e := newEnc()
	big := strings.Repeat("v", 300)
	b3 := e.block(req("cookie", "a=b")...)
	return [][]byte{
		cat(settingsFrame(Setting{SettingInitialWindowSize, 1 << 20}), AppendSettingsAck(nil),
			headersFrame(1, e.block(post("content-length", "5")...), false), dataFrame(1, "he", false),
			(&DataFrame{StreamID: 1, Data: []byte("llo"), EndStream: true, Padded: true, PadLength: 4}).Append(nil),
			AppendPing(nil, false, [8]byte{1}),
			(&HeadersFrame{StreamID: 3, EndStream: true, Fragment: b3[:2]}).Append(nil),
			(&ContinuationFrame{StreamID: 3, EndHeaders: true, Fragment: b3[2:]}).Append(nil)),
		cat(settingsFrame(), headersFrame(1, e.block(req("te", "trailers", "x-big", big)...), false),
			headersFrame(1, e.block("grpc-status", "0"), true), AppendRSTStream(nil, 1, ErrCodeCancel),
			AppendWindowUpdate(nil, 0, 1000), AppendGoAway(nil, 0, ErrCodeNo, []byte("x"))),
		cat(settingsFrame(Setting{SettingHeaderTableSize, 0}, Setting{SettingMaxFrameSize, 1 << 20}),
			headersFrame(1, e.block(":method", "CONNECT", ":authority", "h:443"), false), dataFrame(1, "tunnel", false),
			(&PriorityFrame{StreamID: 5, PriorityParam: PriorityParam{StreamDep: 1}}).Append(nil),
			headersFrame(5, e.block(req()...), true), AppendWindowUpdate(nil, 5, 10), dataFrame(5, "x", true)),
	}
}

// FuzzConnServer feeds a server-role Conn the client preface and the fuzzed
// bytes, once at a time and split at a fuzzed point; both must agree.
// Errors are known connection errors with a GOAWAY last in the output,
// all output parses as frames, and the bounds hold.
func FuzzConnServer(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s, uint16(len(s)/2))
	}
	f.Fuzz(func(t *testing.T, data []byte, split uint16) {
		in := cat([]byte(ClientPreface), data)
		lim := Limits{MaxConcurrentStreams: 4, MaxQueuedControlFrames: 50, ClosedStreams: 8}

		run := func(parts ...[]byte) ([]string, []string, error) {
			r := &recorder{}
			c := NewConn(RoleServer, lim, r, t0)
			r.consume = c
			var outs []string
			var buf []byte
			var err error
			for _, p := range parts {
				buf = append(buf, p...)
				var n int
				n, err = c.Feed(buf, t0)
				if n < 0 || n > len(buf) {
					t.Fatalf("n=%d of %d", n, len(buf))
				}
				buf = buf[n:]
				outs = append(outs, frameStrings(outFrames(t, c))...)
				if err != nil {
					break
				}
				checkInvariants(t, c)
			}
			if err != nil {
				var ce *ConnError
				if !errors.As(err, &ce) || !knownError(err) {
					t.Fatalf("error %T %v", err, err)
				}
				if len(outs) == 0 || !strings.HasPrefix(outs[len(outs)-1], "GOAWAY ") || !strings.HasSuffix(outs[len(outs)-1], `"`+ce.Token+`"`) {
					t.Fatalf("no GOAWAY for %v: %q", err, outs)
				}
			}
			return r.strings(), outs, err
		}
		ev1, out1, err1 := run(in)
		k := int(split) % (len(in) + 1)
		ev2, out2, err2 := run(in[:k], in[k:])
		if err1 != err2 || !equalStrings(ev1, ev2) {
			t.Fatalf("split at %d changes the outcome:\n%v %q\n%v %q", k, err1, ev1, err2, ev2)
		}
		// Output may be batched differently but says the same frames.
		if !equalStrings(out1, out2) {
			t.Fatalf("split at %d changes the output:\n%q\n%q", k, out1, out2)
		}
	})
}

func checkInvariants(t *testing.T, c *Conn) {
	t.Helper()
	if c.peerActive > int(c.lim.MaxConcurrentStreams) {
		t.Fatalf("%d peer streams open", c.peerActive)
	}
	if c.connRecv < 0 || c.connRecv+c.connUnacked > int64(c.lim.ConnWindow) {
		t.Fatalf("connection receive window %d + %d", c.connRecv, c.connUnacked)
	}
	if c.connSend > maxWindow {
		t.Fatalf("send window %d", c.connSend)
	}
	for id, s := range c.streams {
		if s.id != id || s.state == stateClosed || s.state == stateIdle {
			t.Fatalf("stream %d in map as %d %v", id, s.id, s.state)
		}
		if s.recvWindow > max(c.recvInitial, int64(c.lim.InitialStreamWindow)) || s.sendWindow > maxWindow {
			t.Fatalf("stream %d windows recv %d send %d", id, s.recvWindow, s.sendWindow)
		}
	}
	if len(c.closed.ents) > c.closed.size || len(c.hbBuf) > c.lim.MaxHeaderBlockBytes {
		t.Fatal("a bound is exceeded")
	}
	if c.pending() < 0 || c.ctrlQueued > c.lim.MaxQueuedControlFrames {
		t.Fatal("output accounting")
	}
}
