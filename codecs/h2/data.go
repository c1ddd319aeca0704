// SPDX-License-Identifier: GPL-3.0-only

package h2

// DataFrame is a DATA frame (RFC 9113 section 6.1).
type DataFrame struct {
	StreamID  uint32
	EndStream bool
	Data      []byte // without padding; aliases the parsed payload
	// Padded and PadLength describe padding. On Append, PadLength zero
	// octets follow Data when Padded is set; the Conn never pads.
	Padded    bool
	PadLength uint8
}

// Header returns the frame header the frame has on the wire.
func (f DataFrame) Header() FrameHeader {
	h := FrameHeader{Type: FrameData, StreamID: f.StreamID, Length: uint32(len(f.Data))}
	if f.EndStream {
		h.Flags |= FlagEndStream
	}
	if f.Padded {
		h.Flags |= FlagPadded
		h.Length += 1 + uint32(f.PadLength)
	}
	return h
}

// Append appends the frame's encoding to b.
func (f *DataFrame) Append(b []byte) []byte {
	b = AppendFrameHeader(b, f.Header())
	if f.Padded {
		b = append(b, f.PadLength)
	}
	b = append(b, f.Data...)
	if f.Padded {
		b = appendPadding(b, f.PadLength)
	}
	return b
}

// AppendData appends an unpadded DATA frame. len(data) must not exceed the
// peer's SETTINGS_MAX_FRAME_SIZE.
func AppendData(b []byte, streamID uint32, data []byte, endStream bool) []byte {
	var flags Flags
	if endStream {
		flags = FlagEndStream
	}
	b = AppendFrameHeader(b, FrameHeader{Length: uint32(len(data)), Type: FrameData, Flags: flags, StreamID: streamID})
	return append(b, data...)
}

// parseDataFrame parses a DATA payload. Flow control counts the whole
// payload, padding included; that is the Conn's business (h.Length).
func parseDataFrame(h FrameHeader, p []byte) (DataFrame, error) {
	data, err := dataPayload(h, p)
	if err != nil {
		return DataFrame{}, err
	}
	f := DataFrame{StreamID: h.StreamID, EndStream: h.Flags.Has(FlagEndStream), Data: data}
	if h.Flags.Has(FlagPadded) {
		f.Padded, f.PadLength = true, p[0]
	}
	return f, nil
}

// dataPayload is parseDataFrame for the Conn: the data without padding,
// and no frame value to build and copy out (that copy was most of a DATA
// frame's parsing on the bench's gRPC streams).
func dataPayload(h FrameHeader, p []byte) ([]byte, error) {
	if h.StreamID == 0 {
		return nil, ErrDataStreamZero
	}
	if h.Flags.Has(FlagPadded) {
		data, _, err := stripPadding(p, 0)
		return data, err
	}
	return p, nil
}
