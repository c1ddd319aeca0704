// SPDX-License-Identifier: GPL-3.0-only

package h3

import (
	"errors"

	"github.com/quic-go/quic-go/quicvarint"
)

// FrameType is an HTTP/3 frame type (RFC 9114 section 7.2).
type FrameType uint64

// Frame types the gateway handles; every other type is skipped (section 9).
const (
	FrameData       FrameType = 0x0
	FrameHeaders    FrameType = 0x1
	FrameCancelPush FrameType = 0x3
	FrameSettings   FrameType = 0x4
	FramePushPromse FrameType = 0x5
	FrameGoAway     FrameType = 0x7
	FrameMaxPushID  FrameType = 0xd
)

// Unidirectional stream types (RFC 9114 section 6.2, RFC 9204 section 4.2).
const (
	StreamControl      = 0x0
	StreamPush         = 0x1
	StreamQPACKEncoder = 0x2
	StreamQPACKDecoder = 0x3
)

// ErrShort says b does not hold a whole frame header yet.
var ErrShort = errors.New("h3: short frame header")

// ParseFrameHeader reads a frame's type and payload length from b; n is
// the header's size.
func ParseFrameHeader(b []byte) (typ FrameType, length uint64, n int, err error) {
	t, n1, err := quicvarint.Parse(b)
	if err != nil {
		return 0, 0, 0, ErrShort
	}
	l, n2, err := quicvarint.Parse(b[n1:])
	if err != nil {
		return 0, 0, 0, ErrShort
	}
	return FrameType(t), l, n1 + n2, nil
}

// AppendFrameHeader appends a frame header for a payload of length bytes.
func AppendFrameHeader(b []byte, typ FrameType, length uint64) []byte {
	b = quicvarint.Append(b, uint64(typ))
	return quicvarint.Append(b, length)
}

// AppendData appends a DATA frame carrying p.
func AppendData(b, p []byte) []byte {
	b = AppendFrameHeader(b, FrameData, uint64(len(p)))
	return append(b, p...)
}

// AppendGoAway appends a GOAWAY frame: streams with an ID at or above id
// will not be processed (section 5.2).
func AppendGoAway(b []byte, id uint64) []byte {
	b = AppendFrameHeader(b, FrameGoAway, uint64(quicvarint.Len(id)))
	return quicvarint.Append(b, id)
}

// ParseGoAway reads a GOAWAY payload.
func ParseGoAway(p []byte) (uint64, error) {
	id, n, err := quicvarint.Parse(p)
	if err != nil || n != len(p) {
		return 0, &Error{Code: ErrCodeFrame, Token: "bad_goaway"}
	}
	return id, nil
}
