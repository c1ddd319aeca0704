// SPDX-License-Identifier: GPL-3.0-only

package h2

// GoAwayFrame is a GOAWAY frame (RFC 9113 section 6.8).
type GoAwayFrame struct {
	LastStreamID uint32
	Code         ErrCode
	Debug        []byte // opaque diagnostic data; aliases the parsed payload
}

// Header returns the frame header the frame has on the wire.
func (f GoAwayFrame) Header() FrameHeader {
	return FrameHeader{Length: 8 + uint32(len(f.Debug)), Type: FrameGoAway}
}

// Append appends the frame's encoding to b.
func (f *GoAwayFrame) Append(b []byte) []byte {
	return AppendGoAway(b, f.LastStreamID, f.Code, f.Debug)
}

// AppendGoAway appends a GOAWAY frame. len(debug) must leave the payload
// within the peer's SETTINGS_MAX_FRAME_SIZE.
func AppendGoAway(b []byte, lastStreamID uint32, code ErrCode, debug []byte) []byte {
	b = AppendFrameHeader(b, FrameHeader{Length: 8 + uint32(len(debug)), Type: FrameGoAway})
	b = appendUint32(b, lastStreamID&maxStreamID)
	b = appendUint32(b, uint32(code))
	return append(b, debug...)
}

func parseGoAwayFrame(h FrameHeader, p []byte) (GoAwayFrame, error) {
	if h.StreamID != 0 {
		return GoAwayFrame{}, ErrGoAwayNonZeroStream
	}
	if len(p) < 8 {
		return GoAwayFrame{}, ErrGoAwayTooShort
	}
	return GoAwayFrame{
		LastStreamID: readUint32(p) & maxStreamID,
		Code:         ErrCode(readUint32(p[4:])),
		Debug:        p[8:],
	}, nil
}
