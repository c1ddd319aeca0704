// SPDX-License-Identifier: GPL-3.0-only

package h2

// WindowUpdateFrame is a WINDOW_UPDATE frame (RFC 9113 section 6.9).
// StreamID 0 updates the connection window.
type WindowUpdateFrame struct {
	StreamID  uint32
	Increment uint32 // 1..2^31-1
}

// Header returns the frame header the frame has on the wire.
func (f WindowUpdateFrame) Header() FrameHeader {
	return FrameHeader{Length: 4, Type: FrameWindowUpdate, StreamID: f.StreamID}
}

// Append appends the frame's encoding to b.
func (f *WindowUpdateFrame) Append(b []byte) []byte {
	return AppendWindowUpdate(b, f.StreamID, f.Increment)
}

// AppendWindowUpdate appends a WINDOW_UPDATE frame.
func AppendWindowUpdate(b []byte, streamID, increment uint32) []byte {
	b = AppendFrameHeader(b, FrameHeader{Length: 4, Type: FrameWindowUpdate, StreamID: streamID})
	return appendUint32(b, increment&maxWindow)
}

// parseWindowUpdateFrame parses the frame. An increment of 0 is a
// PROTOCOL_ERROR: a connection error on stream 0, a stream error (prototype)
// otherwise (RFC 9113 section 6.9).
func parseWindowUpdateFrame(h FrameHeader, p []byte) (WindowUpdateFrame, error) {
	if len(p) != 4 {
		return WindowUpdateFrame{}, ErrWindowUpdateBadLength
	}
	f := WindowUpdateFrame{StreamID: h.StreamID, Increment: readUint32(p) & maxWindow}
	if f.Increment == 0 {
		if h.StreamID == 0 {
			return WindowUpdateFrame{}, ErrWindowUpdateZeroConn
		}
		return f, ErrWindowUpdateZero
	}
	return f, nil
}
