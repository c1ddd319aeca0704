// SPDX-License-Identifier: GPL-3.0-only

package h2

import "strconv"

// FrameType is the type octet of a frame header (RFC 9113 section 6).
type FrameType uint8

// Frame types defined by RFC 9113.
const (
	FrameData         FrameType = 0x0
	FrameHeaders      FrameType = 0x1
	FramePriority     FrameType = 0x2
	FrameRSTStream    FrameType = 0x3
	FrameSettings     FrameType = 0x4
	FramePushPromise  FrameType = 0x5
	FramePing         FrameType = 0x6
	FrameGoAway       FrameType = 0x7
	FrameWindowUpdate FrameType = 0x8
	FrameContinuation FrameType = 0x9
)

// numFrameTypes sizes the dispatch tables: types at or above it are unknown
// and ignored (RFC 9113 section 4.1).
const numFrameTypes = 10

var frameTypeNames = [numFrameTypes]string{
	FrameData:         "DATA",
	FrameHeaders:      "HEADERS",
	FramePriority:     "PRIORITY",
	FrameRSTStream:    "RST_STREAM",
	FrameSettings:     "SETTINGS",
	FramePushPromise:  "PUSH_PROMISE",
	FramePing:         "PING",
	FrameGoAway:       "GOAWAY",
	FrameWindowUpdate: "WINDOW_UPDATE",
	FrameContinuation: "CONTINUATION",
}

// String returns the RFC name of the type, or "UNKNOWN_0x..".
func (t FrameType) String() string {
	if t < numFrameTypes {
		return frameTypeNames[t]
	}
	return "UNKNOWN_0x" + strconv.FormatUint(uint64(t), 16)
}

// Flags is the flags octet of a frame header. Its meaning depends on the
// frame type.
type Flags uint8

// Frame flags.
const (
	FlagEndStream  Flags = 0x1  // DATA, HEADERS
	FlagAck        Flags = 0x1  // SETTINGS, PING
	FlagEndHeaders Flags = 0x4  // HEADERS, PUSH_PROMISE, CONTINUATION
	FlagPadded     Flags = 0x8  // DATA, HEADERS, PUSH_PROMISE
	FlagPriority   Flags = 0x20 // HEADERS
)

// Has reports whether all bits of v are set.
func (f Flags) Has(v Flags) bool { return f&v == v }

// Size and window bounds from RFC 9113 sections 4.2, 6.5.2 and 6.9.1.
const (
	frameHeaderLen     = 9
	defaultMaxFrame    = 1 << 14 // also the smallest legal SETTINGS_MAX_FRAME_SIZE
	maxFrameSizeLimit  = 1<<24 - 1
	maxWindow          = 1<<31 - 1
	defaultWindow      = 65535
	maxStreamID        = 1<<31 - 1
	defaultHeaderTable = 4096
)

// FrameHeader is the 9-octet header every frame starts with.
type FrameHeader struct {
	Length   uint32 // payload length, 24 bits
	Type     FrameType
	Flags    Flags
	StreamID uint32 // 31 bits; the reserved bit is dropped on parse
}

// parseFrameHeader reads a header from the first 9 bytes of b. ok is false
// when b is shorter.
func parseFrameHeader(b []byte) (h FrameHeader, ok bool) {
	if len(b) < frameHeaderLen {
		return h, false
	}
	_ = b[8]
	h.Length = uint32(b[0])<<16 | uint32(b[1])<<8 | uint32(b[2])
	h.Type = FrameType(b[3])
	h.Flags = Flags(b[4])
	// The reserved bit MUST be ignored on receipt (RFC 9113 section 4.1).
	h.StreamID = (uint32(b[5])<<24 | uint32(b[6])<<16 | uint32(b[7])<<8 | uint32(b[8])) & maxStreamID
	return h, true
}

// AppendFrameHeader appends the 9-octet encoding of h. The caller keeps
// Length at most 2^24-1 and StreamID at most 2^31-1.
func AppendFrameHeader(b []byte, h FrameHeader) []byte {
	return append(b,
		byte(h.Length>>16), byte(h.Length>>8), byte(h.Length),
		byte(h.Type), byte(h.Flags),
		byte(h.StreamID>>24)&0x7f, byte(h.StreamID>>16), byte(h.StreamID>>8), byte(h.StreamID))
}

// appendUint32 appends v big-endian.
func appendUint32(b []byte, v uint32) []byte {
	return append(b, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}

func readUint32(b []byte) uint32 {
	_ = b[3]
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// appendPadding appends n zero octets: padding MUST be zero on send.
func appendPadding(b []byte, n uint8) []byte {
	for range n {
		b = append(b, 0)
	}
	return b
}

// stripPadding removes the Pad Length octet and the padding from a DATA,
// HEADERS or PUSH_PROMISE payload with FlagPadded set. Padding as long as
// the rest of the payload or longer is a PROTOCOL_ERROR (RFC 9113 sections
// 6.1, 6.2, 6.6); the padding's content is not checked ("MAY").
func stripPadding(p []byte, fixed int) (rest []byte, padLen uint8, err error) {
	if len(p) < 1 {
		return nil, 0, ErrFrameTooShort
	}
	padLen = p[0]
	p = p[1:]
	if len(p) < fixed {
		return nil, 0, ErrFrameTooShort
	}
	if int(padLen) > len(p)-fixed {
		return nil, 0, ErrBadPadding
	}
	return p[:len(p)-int(padLen)], padLen, nil
}

// Frame is any parsed frame, for tools and tests; the Conn dispatches on the
// header and parses each type into a value without boxing it.
type Frame interface {
	Header() FrameHeader
}

// frameParsers is the dispatch table used by parseFrame, indexed by frame
// type. The Conn has its own table of handlers (conn.go) with the same
// shape.
var frameParsers = [numFrameTypes]func(FrameHeader, []byte) (Frame, error){
	FrameData:         func(h FrameHeader, p []byte) (Frame, error) { f, err := parseDataFrame(h, p); return f, err },
	FrameHeaders:      func(h FrameHeader, p []byte) (Frame, error) { f, err := parseHeadersFrame(h, p); return f, err },
	FramePriority:     func(h FrameHeader, p []byte) (Frame, error) { f, err := parsePriorityFrame(h, p); return f, err },
	FrameRSTStream:    func(h FrameHeader, p []byte) (Frame, error) { f, err := parseRSTStreamFrame(h, p); return f, err },
	FrameSettings:     func(h FrameHeader, p []byte) (Frame, error) { f, err := parseSettingsFrame(h, p); return f, err },
	FramePushPromise:  func(h FrameHeader, p []byte) (Frame, error) { f, err := parsePushPromiseFrame(h, p); return f, err },
	FramePing:         func(h FrameHeader, p []byte) (Frame, error) { f, err := parsePingFrame(h, p); return f, err },
	FrameGoAway:       func(h FrameHeader, p []byte) (Frame, error) { f, err := parseGoAwayFrame(h, p); return f, err },
	FrameWindowUpdate: func(h FrameHeader, p []byte) (Frame, error) { f, err := parseWindowUpdateFrame(h, p); return f, err },
	FrameContinuation: func(h FrameHeader, p []byte) (Frame, error) { f, err := parseContinuationFrame(h, p); return f, err },
}

// UnknownFrame is a frame of a type this codec does not know; it is ignored.
type UnknownFrame struct {
	FrameHeader
	Payload []byte
}

// Header returns the frame header.
func (f UnknownFrame) Header() FrameHeader { return f.FrameHeader }

// parseFrame parses one whole frame from the start of b with the given
// maximum payload size. n is 0 with a nil error while b holds less than a
// frame.
func parseFrame(b []byte, maxSize uint32) (f Frame, n int, err error) {
	h, ok := parseFrameHeader(b)
	if !ok {
		return nil, 0, nil
	}
	if h.Length > maxSize {
		return nil, 0, ErrFrameTooLarge
	}
	end := frameHeaderLen + int(h.Length)
	if len(b) < end {
		return nil, 0, nil
	}
	p := b[frameHeaderLen:end]
	if h.Type >= numFrameTypes {
		return UnknownFrame{h, p}, end, nil
	}
	f, err = frameParsers[h.Type](h, p)
	return f, end, err
}
