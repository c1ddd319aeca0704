// SPDX-License-Identifier: GPL-3.0-only

package h2

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// openStreams is a server past the handshake with streams 1 and 3 open and
// their heads sent, the connection window opened wide, output drained.
func openStreams(t *testing.T) *Conn {
	t.Helper()
	c, _ := newServer(t, Limits{})
	e := newEnc()
	feedAll(t, c, cat(settingsFrame(Setting{SettingInitialWindowSize, 1 << 30}), AppendWindowUpdate(nil, 0, 1<<30),
		headersFrame(1, e.block(req()...), false), headersFrame(3, e.block(req()...), false)))
	for _, id := range []uint32{1, 3} {
		if err := c.WriteHeaders(id, &Head{Status: 200}, false); err != nil {
			t.Fatal(err)
		}
	}
	outFrames(t, c)
	return c
}

func writeData(t *testing.T, c *Conn, id uint32, n int, end bool) {
	t.Helper()
	if k, err := c.WriteData(id, bytes.Repeat([]byte{byte(id)}, n), end); err != nil || k != n {
		t.Fatalf("WriteData(%d, %d): %d %v", id, n, k, err)
	}
}

// TestWriteDataCoalesces: DATA of one stream written before the output is
// flushed leaves as one frame up to the peer's maximum frame size,
// END_STREAM folded into it; another frame in between, a flush or a full
// frame starts a new one.
func TestWriteDataCoalesces(t *testing.T) {
	c := openStreams(t)
	for range 100 {
		writeData(t, c, 1, 73, false)
	}
	writeData(t, c, 1, 0, true)
	wantStrings(t, "100 messages", frameStrings(outFrames(t, c)), "DATA 1 len=7300 end=true")
	if st := c.Stats(); st.DataFramesSent != 1 || st.DataBytesSent != 7300 {
		t.Fatalf("stats %+v", st)
	}

	c = openStreams(t)
	writeData(t, c, 1, 10, false)
	writeData(t, c, 3, 10, false) // another stream's frame in between
	writeData(t, c, 1, 10, false)
	if err := c.WriteTrailers(1, []Field{{Name: []byte("grpc-status"), Value: []byte("0")}}); err != nil {
		t.Fatal(err)
	}
	writeData(t, c, 3, 10, false)
	writeData(t, c, 3, 0, true)
	wantStrings(t, "interleaved", frameStrings(outFrames(t, c)),
		"DATA 1 len=10 end=false", "DATA 3 len=10 end=false", "DATA 1 len=10 end=false", "HEADERS 1 end=true endh=true", "DATA 3 len=10 end=true")

	c = openStreams(t)
	writeData(t, c, 1, 10, false)
	writeData(t, c, 1, 16380, false) // grows to the limit, 6 in a frame of its own
	writeData(t, c, 1, 40000, true)
	wantStrings(t, "at the frame limit", frameStrings(outFrames(t, c)),
		"DATA 1 len=16384 end=false", "DATA 1 len=16384 end=false", "DATA 1 len=16384 end=false", "DATA 1 len=7238 end=true")

	// Once any of the frame is written it keeps its length.
	c = openStreams(t)
	writeData(t, c, 1, 10, false)
	c.Advance(3)
	writeData(t, c, 1, 10, false)
	c.Advance(len(c.Output()))
	writeData(t, c, 1, 10, false)
	writeData(t, c, 1, 10, true)
	wantStrings(t, "after a flush", frameStrings(outFrames(t, c)), "DATA 1 len=20 end=true")
}

// TestWriteDataCoalescesUnderCompaction: random writes on two streams and
// random partial flushes (Advance compacts the buffer) deliver every byte
// of each stream in order to a client codec, in well-formed frames no
// longer than the maximum frame size.
func TestWriteDataCoalescesUnderCompaction(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 20 {
		c := openStreams(t)
		var wire []byte
		want := map[uint32][]byte{}
		for range 400 {
			id := uint32(1 + 2*rng.IntN(2))
			p := make([]byte, rng.IntN(3000))
			for i := range p {
				p[i] = byte(rng.Uint32())
			}
			if k, err := c.WriteData(id, p, false); err != nil || k != len(p) {
				t.Fatalf("round %d: %d %v", round, k, err)
			}
			want[id] = append(want[id], p...)
			if rng.IntN(3) == 0 {
				out := c.Output()
				n := rng.IntN(len(out) + 1)
				wire = append(wire, out[:n]...)
				c.Advance(n)
			}
		}
		wire = append(wire, c.Output()...)
		got := map[uint32][]byte{}
		for len(wire) > 0 {
			f, n, err := parseFrame(wire, maxFrameSizeLimit)
			if err != nil || n == 0 {
				t.Fatalf("round %d: output does not parse: %v", round, err)
			}
			d, ok := f.(DataFrame)
			if !ok || n-frameHeaderLen > defaultMaxFrame || d.EndStream {
				t.Fatalf("round %d: frame %T of %d bytes", round, f, n)
			}
			got[d.StreamID] = append(got[d.StreamID], d.Data...)
			wire = wire[n:]
		}
		for id, w := range want {
			if !bytes.Equal(got[id], w) {
				t.Fatalf("round %d: stream %d got %d bytes, want %d (or they differ)", round, id, len(got[id]), len(w))
			}
		}
	}
}

// parseWire splits bytes written to the socket into frame strings.
func parseWire(t *testing.T, wire []byte) []string {
	t.Helper()
	var fs []Frame
	for len(wire) > 0 {
		f, n, err := parseFrame(wire, maxFrameSizeLimit)
		if err != nil || n == 0 {
			t.Fatalf("output does not parse: %v in %x", err, wire)
		}
		fs = append(fs, f)
		wire = wire[n:]
	}
	return frameStrings(fs)
}

// TestWriteDataCoalescesAcrossCompaction: the frame that may grow moves
// with the output when a partial flush compacts the buffer.
func TestWriteDataCoalescesAcrossCompaction(t *testing.T) {
	c := openStreams(t)
	writeData(t, c, 3, 5000, false)
	writeData(t, c, 1, 100, false)
	wire := append([]byte(nil), c.Output()[:4600]...)
	c.Advance(4600) // compacts: 4600 of 5118 bytes went out
	writeData(t, c, 1, 100, false)
	wire = append(wire, c.Output()...)
	wantStrings(t, "output", parseWire(t, wire), "DATA 3 len=5000 end=false", "DATA 1 len=200 end=false")
}

// TestWriteDataNeverGrowsAForgedFrame: once the frame that could grow is
// written, bytes at its old offset are someone's payload; a payload that
// looks like a DATA frame header of the stream there is not grown.
func TestWriteDataNeverGrowsAForgedFrame(t *testing.T) {
	c := openStreams(t)
	writeData(t, c, 3, 50, false)
	writeData(t, c, 1, 10, false) // its frame is at offset 59
	c.Advance(len(c.Output()))
	p := make([]byte, 100)
	copy(p[50:], []byte{0, 0, 41, byte(FrameData), 0, 0, 0, 0, 1}) // 59+9+41 = 9+100
	if k, err := c.WriteData(3, p, false); err != nil || k != 100 {
		t.Fatal(k, err)
	}
	writeData(t, c, 1, 1, false)
	wantStrings(t, "output", frameStrings(outFrames(t, c)), "DATA 3 len=100 end=false", "DATA 1 len=1 end=false")
}

// TestWriteDataForgetsAFlushedFrame: a flush that empties the output ends
// the frame's chance to grow, even when what is written next (the ACK of
// a peer's PING here, its payload the peer's choice) holds a DATA frame
// header of the same stream exactly where the flushed frame began.
func TestWriteDataForgetsAFlushedFrame(t *testing.T) {
	trailers := []Field{{Name: []byte("grpc-status"), Value: []byte("0")}}
	c := openStreams(t)
	if err := c.WriteTrailers(3, trailers); err != nil {
		t.Fatal(err)
	}
	s := len(c.Output()) // the trailers' frame

	c = openStreams(t)
	writeData(t, c, 3, s-1, false)
	writeData(t, c, 1, 10, false) // its frame is at s+8
	c.Advance(len(c.Output()))
	if err := c.WriteTrailers(3, trailers); err != nil || len(c.Output()) != s {
		t.Fatal(err, len(c.Output()), s)
	}
	// The ACK's header ends in a zero byte, its payload follows: at s+8
	// they read as an empty DATA frame header of stream 1.
	feedAll(t, c, AppendPing(nil, false, [8]byte{0, 0, 0, 0, 0, 0, 0, 1}))
	writeData(t, c, 1, 1, false)
	wantStrings(t, "output", frameStrings(outFrames(t, c)),
		"HEADERS 3 end=true endh=true", "PING 0000000000000001 ack=true", "DATA 1 len=1 end=false")
}
