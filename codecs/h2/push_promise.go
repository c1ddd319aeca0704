// SPDX-License-Identifier: GPL-3.0-only

package h2

// PushPromiseFrame is a PUSH_PROMISE frame (RFC 9113 section 6.6). The
// codec never enables push: a Conn refuses any it receives (a client sending
// one is a PROTOCOL_ERROR, and so is a server that ignores our
// SETTINGS_ENABLE_PUSH=0). The type exists to parse and test the frame.
type PushPromiseFrame struct {
	StreamID   uint32
	PromisedID uint32
	EndHeaders bool
	Fragment   []byte
	Padded     bool
	PadLength  uint8
}

// Header returns the frame header the frame has on the wire.
func (f PushPromiseFrame) Header() FrameHeader {
	h := FrameHeader{Type: FramePushPromise, StreamID: f.StreamID, Length: 4 + uint32(len(f.Fragment))}
	if f.EndHeaders {
		h.Flags |= FlagEndHeaders
	}
	if f.Padded {
		h.Flags |= FlagPadded
		h.Length += 1 + uint32(f.PadLength)
	}
	return h
}

// Append appends the frame's encoding to b.
func (f *PushPromiseFrame) Append(b []byte) []byte {
	b = AppendFrameHeader(b, f.Header())
	if f.Padded {
		b = append(b, f.PadLength)
	}
	b = appendUint32(b, f.PromisedID&maxStreamID)
	b = append(b, f.Fragment...)
	if f.Padded {
		b = appendPadding(b, f.PadLength)
	}
	return b
}

func parsePushPromiseFrame(h FrameHeader, p []byte) (PushPromiseFrame, error) {
	if h.StreamID == 0 {
		return PushPromiseFrame{}, ErrPushPromiseStreamZero
	}
	f := PushPromiseFrame{StreamID: h.StreamID, EndHeaders: h.Flags.Has(FlagEndHeaders)}
	if h.Flags.Has(FlagPadded) {
		rest, padLen, err := stripPadding(p, 4)
		if err != nil {
			return PushPromiseFrame{}, err
		}
		p, f.Padded, f.PadLength = rest, true, padLen
	} else if len(p) < 4 {
		return PushPromiseFrame{}, ErrFrameTooShort
	}
	f.PromisedID = readUint32(p) & maxStreamID
	f.Fragment = p[4:]
	return f, nil
}
