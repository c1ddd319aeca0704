// SPDX-License-Identifier: GPL-3.0-only

package h2

// RSTStreamFrame is a RST_STREAM frame (RFC 9113 section 6.4).
type RSTStreamFrame struct {
	StreamID uint32
	Code     ErrCode
}

// Header returns the frame header the frame has on the wire.
func (f RSTStreamFrame) Header() FrameHeader {
	return FrameHeader{Length: 4, Type: FrameRSTStream, StreamID: f.StreamID}
}

// Append appends the frame's encoding to b.
func (f *RSTStreamFrame) Append(b []byte) []byte { return AppendRSTStream(b, f.StreamID, f.Code) }

// AppendRSTStream appends a RST_STREAM frame.
func AppendRSTStream(b []byte, streamID uint32, code ErrCode) []byte {
	b = AppendFrameHeader(b, FrameHeader{Length: 4, Type: FrameRSTStream, StreamID: streamID})
	return appendUint32(b, uint32(code))
}

func parseRSTStreamFrame(h FrameHeader, p []byte) (RSTStreamFrame, error) {
	if len(p) != 4 {
		return RSTStreamFrame{}, ErrRSTStreamBadLength
	}
	if h.StreamID == 0 {
		return RSTStreamFrame{}, ErrRSTStreamZero
	}
	return RSTStreamFrame{StreamID: h.StreamID, Code: ErrCode(readUint32(p))}, nil
}
