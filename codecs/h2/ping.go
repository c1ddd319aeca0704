// SPDX-License-Identifier: GPL-3.0-only

package h2

// PingFrame is a PING frame (RFC 9113 section 6.7).
type PingFrame struct {
	Ack  bool
	Data [8]byte
}

// Header returns the frame header the frame has on the wire.
func (f PingFrame) Header() FrameHeader {
	h := FrameHeader{Length: 8, Type: FramePing}
	if f.Ack {
		h.Flags = FlagAck
	}
	return h
}

// Append appends the frame's encoding to b.
func (f *PingFrame) Append(b []byte) []byte { return AppendPing(b, f.Ack, f.Data) }

// AppendPing appends a PING frame.
func AppendPing(b []byte, ack bool, data [8]byte) []byte {
	var flags Flags
	if ack {
		flags = FlagAck
	}
	b = AppendFrameHeader(b, FrameHeader{Length: 8, Type: FramePing, Flags: flags})
	return append(b, data[:]...)
}

func parsePingFrame(h FrameHeader, p []byte) (PingFrame, error) {
	if len(p) != 8 {
		return PingFrame{}, ErrPingBadLength
	}
	if h.StreamID != 0 {
		return PingFrame{}, ErrPingNonZeroStream
	}
	f := PingFrame{Ack: h.Flags.Has(FlagAck)}
	copy(f.Data[:], p)
	return f, nil
}
