// SPDX-License-Identifier: GPL-3.0-only

package h2

// ContinuationFrame is a CONTINUATION frame (RFC 9113 section 6.10): a
// further fragment of the header block a HEADERS (or PUSH_PROMISE) frame
// began. The Conn assembles the block under a frame count and a byte cap
// checked before anything is decoded.
type ContinuationFrame struct {
	StreamID   uint32
	EndHeaders bool
	Fragment   []byte
}

// Header returns the frame header the frame has on the wire.
func (f ContinuationFrame) Header() FrameHeader {
	h := FrameHeader{Length: uint32(len(f.Fragment)), Type: FrameContinuation, StreamID: f.StreamID}
	if f.EndHeaders {
		h.Flags = FlagEndHeaders
	}
	return h
}

// Append appends the frame's encoding to b.
func (f *ContinuationFrame) Append(b []byte) []byte {
	return append(AppendFrameHeader(b, f.Header()), f.Fragment...)
}

func parseContinuationFrame(h FrameHeader, p []byte) (ContinuationFrame, error) {
	if h.StreamID == 0 {
		return ContinuationFrame{}, ErrContinuationStreamZero
	}
	return ContinuationFrame{StreamID: h.StreamID, EndHeaders: h.Flags.Has(FlagEndHeaders), Fragment: p}, nil
}
