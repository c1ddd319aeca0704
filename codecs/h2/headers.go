// SPDX-License-Identifier: GPL-3.0-only

package h2

// HeadersFrame is a HEADERS frame (RFC 9113 section 6.2) carrying the first
// fragment of a header block.
type HeadersFrame struct {
	StreamID    uint32
	EndStream   bool
	EndHeaders  bool
	HasPriority bool
	Priority    PriorityParam
	Fragment    []byte // header block fragment; aliases the parsed payload
	Padded      bool
	PadLength   uint8
}

// Header returns the frame header the frame has on the wire.
func (f HeadersFrame) Header() FrameHeader {
	h := FrameHeader{Type: FrameHeaders, StreamID: f.StreamID, Length: uint32(len(f.Fragment))}
	if f.EndStream {
		h.Flags |= FlagEndStream
	}
	if f.EndHeaders {
		h.Flags |= FlagEndHeaders
	}
	if f.HasPriority {
		h.Flags |= FlagPriority
		h.Length += 5
	}
	if f.Padded {
		h.Flags |= FlagPadded
		h.Length += 1 + uint32(f.PadLength)
	}
	return h
}

// Append appends the frame's encoding to b.
func (f *HeadersFrame) Append(b []byte) []byte {
	b = AppendFrameHeader(b, f.Header())
	if f.Padded {
		b = append(b, f.PadLength)
	}
	if f.HasPriority {
		b = f.Priority.append(b)
	}
	b = append(b, f.Fragment...)
	if f.Padded {
		b = appendPadding(b, f.PadLength)
	}
	return b
}

// parseHeadersFrame parses a HEADERS payload. A self-dependency in its
// priority block is a stream error (prototype) returned with the parsed
// frame, since the header block must still be decoded to keep HPACK state.
func parseHeadersFrame(h FrameHeader, p []byte) (HeadersFrame, error) {
	if h.StreamID == 0 {
		return HeadersFrame{}, ErrHeadersStreamZero
	}
	f := HeadersFrame{
		StreamID:    h.StreamID,
		EndStream:   h.Flags.Has(FlagEndStream),
		EndHeaders:  h.Flags.Has(FlagEndHeaders),
		HasPriority: h.Flags.Has(FlagPriority),
	}
	fixed := 0
	if f.HasPriority {
		fixed = 5
	}
	if h.Flags.Has(FlagPadded) {
		rest, padLen, err := stripPadding(p, fixed)
		if err != nil {
			return HeadersFrame{}, err
		}
		p, f.Padded, f.PadLength = rest, true, padLen
	} else if len(p) < fixed {
		return HeadersFrame{}, ErrFrameTooShort
	}
	if f.HasPriority {
		f.Priority = parsePriorityParam(p)
		p = p[5:]
	}
	f.Fragment = p
	if f.HasPriority && f.Priority.StreamDep == h.StreamID {
		return f, ErrPrioritySelfDep
	}
	return f, nil
}
