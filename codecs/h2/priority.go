// SPDX-License-Identifier: GPL-3.0-only

package h2

// PriorityParam is the RFC 7540 priority information of a PRIORITY frame
// or of a HEADERS frame with FlagPriority. RFC 9113 deprecates the scheme:
// the codec validates and then ignores it.
type PriorityParam struct {
	StreamDep uint32 // 31 bits
	Exclusive bool
	Weight    uint8 // weight minus one, as on the wire
}

func parsePriorityParam(p []byte) PriorityParam {
	v := readUint32(p)
	return PriorityParam{StreamDep: v & maxStreamID, Exclusive: v>>31 == 1, Weight: p[4]}
}

func (pp PriorityParam) append(b []byte) []byte {
	v := pp.StreamDep & maxStreamID
	if pp.Exclusive {
		v |= 1 << 31
	}
	return append(appendUint32(b, v), pp.Weight)
}

// PriorityFrame is a PRIORITY frame (RFC 9113 section 6.3).
type PriorityFrame struct {
	StreamID uint32
	PriorityParam
}

// Header returns the frame header the frame has on the wire.
func (f PriorityFrame) Header() FrameHeader {
	return FrameHeader{Length: 5, Type: FramePriority, StreamID: f.StreamID}
}

// Append appends the frame's encoding to b.
func (f *PriorityFrame) Append(b []byte) []byte {
	return f.PriorityParam.append(AppendFrameHeader(b, f.Header()))
}

// parsePriorityFrame validates a PRIORITY frame. A wrong length and a
// self-dependency are stream errors (prototypes; the Conn fills in the id).
func parsePriorityFrame(h FrameHeader, p []byte) (PriorityFrame, error) {
	if h.StreamID == 0 {
		return PriorityFrame{}, ErrPriorityStreamZero
	}
	if len(p) != 5 {
		return PriorityFrame{}, ErrPriorityBadLength
	}
	f := PriorityFrame{StreamID: h.StreamID, PriorityParam: parsePriorityParam(p)}
	if f.StreamDep == h.StreamID {
		return PriorityFrame{}, ErrPrioritySelfDep
	}
	return f, nil
}
