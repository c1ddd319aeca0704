// SPDX-License-Identifier: GPL-3.0-only

// Package quicinv reads the version-independent properties of QUIC packets
// (RFC 8999): the header form, and the version and connection IDs a long
// header carries in the clear. It is what a load balancer that does not
// decrypt QUIC can know about a datagram. It is sans-IO and does not
// allocate: the connection IDs it returns alias the datagram.
//
// A short header does not say how long its destination connection ID is
// (only the endpoint that chose it knows), so ShortDCID takes the length
// from the caller.
package quicinv

import (
	"encoding/binary"
	"errors"
)

// Errors. Both mean the datagram is not a QUIC packet the balancer can
// route; they are told apart for the metrics.
var (
	// ErrTruncated: the datagram ends before the header does (or, for a
	// short header, before the smallest packet that header protection
	// allows).
	ErrTruncated = errors.New("quicinv: truncated packet")
	// ErrGarbage: the header is complete but cannot be a packet a client
	// or server sends: a connection ID longer than MaxCIDLen, or a version
	// negotiation packet where none belongs (ParseLong reports the version
	// and the caller decides).
	ErrGarbage = errors.New("quicinv: not a QUIC packet")
)

// MaxCIDLen is the longest connection ID QUIC version 1 and 2 allow (RFC
// 9000 §17.2). The invariants allow 255; a version with longer IDs is not
// one the backends speak, so the balancer treats them as garbage.
const MaxCIDLen = 20

// MinInitialDatagram is the smallest UDP payload that may carry a client's
// Initial packet (RFC 9000 §14.1): servers drop smaller ones, so a
// balancer need not create state for them.
const MinInitialDatagram = 1200

// minShortAfterCID is the fewest bytes a short-header packet has after its
// destination connection ID: header protection samples 16 bytes starting
// 4 bytes after the start of the packet number (RFC 9001 §5.4.2).
const minShortAfterCID = 4 + 16

// VersionNegotiation is the version field of a Version Negotiation packet.
const VersionNegotiation = 0

// Header is what a long header says in the clear.
type Header struct {
	Version uint32
	DCID    []byte // aliases the datagram
	SCID    []byte // aliases the datagram
}

// IsLong reports whether the packet at the start of b has a long header
// (the first bit set). An empty b is not long.
func IsLong(b []byte) bool { return len(b) > 0 && b[0]&0x80 != 0 }

// ParseLong reads the long header at the start of b: first byte, 32-bit
// version, DCID length and DCID, SCID length and SCID (RFC 8999 §5.1).
// Packets coalesced after the first (RFC 9000 §12.2) share its DCID, so
// the first header is all a balancer needs.
func ParseLong(b []byte) (Header, error) {
	switch {
	case len(b) == 0:
		return Header{}, ErrTruncated
	case !IsLong(b):
		return Header{}, ErrGarbage
	case len(b) < 6:
		return Header{}, ErrTruncated
	}
	h := Header{Version: binary.BigEndian.Uint32(b[1:5])}
	dl := int(b[5])
	if dl > MaxCIDLen {
		return Header{}, ErrGarbage
	}
	off := 6
	if len(b) < off+dl+1 {
		return Header{}, ErrTruncated
	}
	h.DCID = b[off : off+dl : off+dl]
	off += dl
	sl := int(b[off])
	if sl > MaxCIDLen {
		return Header{}, ErrGarbage
	}
	off++
	if len(b) < off+sl {
		return Header{}, ErrTruncated
	}
	h.SCID = b[off : off+sl : off+sl]
	return h, nil
}

// ShortDCID returns the destination connection ID of the short-header
// packet b, assuming its length is n (0 to MaxCIDLen). It fails with
// ErrTruncated when b is too short to be a short-header packet with such
// an ID, and with ErrGarbage when b has a long header or n is out of range.
func ShortDCID(b []byte, n int) ([]byte, error) {
	if n < 0 || n > MaxCIDLen || IsLong(b) {
		return nil, ErrGarbage
	}
	if len(b) < 1+n+minShortAfterCID {
		return nil, ErrTruncated
	}
	return b[1 : 1+n : 1+n], nil
}

// The versions whose long-header layout beyond the invariants NextLong
// knows: QUIC version 1 (RFC 9000) and version 2 (RFC 9369).
const (
	Version1 = 0x00000001
	Version2 = 0x6b3343cf
)

// NextLong parses the long-header packet at the start of b like ParseLong
// and, for QUIC versions 1 and 2, also finds where it ends (RFC 9000
// §17.2: a token for an Initial, then the Length field), returning the
// bytes after it: the next packet coalesced into the datagram (RFC 9000
// §12.2), empty when there is none. Coalesced packets may carry other
// source connection IDs (a server may choose a new one for its Handshake
// packets). For a Retry or another version, rest is empty: the packet runs
// to the end of the datagram as far as the balancer can tell.
func NextLong(b []byte) (h Header, rest []byte, err error) {
	if h, err = ParseLong(b); err != nil {
		return h, nil, err
	}
	off := 7 + len(h.DCID) + len(h.SCID)
	typ := (b[0] >> 4) & 3
	var initial bool
	switch h.Version {
	case Version1:
		if typ == 3 {
			return h, nil, nil // Retry
		}
		initial = typ == 0
	case Version2:
		if typ == 0 {
			return h, nil, nil // Retry
		}
		initial = typ == 1
	default:
		return h, nil, nil
	}
	if initial {
		n, w := varint(b[off:])
		if w == 0 || uint64(len(b)-off-w) < n {
			return h, nil, ErrTruncated
		}
		off += w + int(n)
	}
	n, w := varint(b[off:])
	if w == 0 || uint64(len(b)-off-w) < n {
		return h, nil, ErrTruncated
	}
	off += w + int(n)
	return h, b[off:], nil
}

// varint reads a QUIC variable-length integer (RFC 9000 §16); w is 0 when
// b is too short.
func varint(b []byte) (v uint64, w int) {
	if len(b) == 0 {
		return 0, 0
	}
	w = 1 << (b[0] >> 6)
	if len(b) < w {
		return 0, 0
	}
	v = uint64(b[0] & 0x3f)
	for _, c := range b[1:w] {
		v = v<<8 | uint64(c)
	}
	return v, w
}

// AppendLong appends a long header with the given first byte, version and
// connection IDs to b (tests and tools build packets with it). It fails
// with ErrGarbage when a connection ID is longer than MaxCIDLen or first
// lacks the long-header bit.
func AppendLong(b []byte, first byte, version uint32, dcid, scid []byte) ([]byte, error) {
	if first&0x80 == 0 || len(dcid) > MaxCIDLen || len(scid) > MaxCIDLen {
		return b, ErrGarbage
	}
	b = append(b, first)
	b = binary.BigEndian.AppendUint32(b, version)
	b = append(b, byte(len(dcid)))
	b = append(b, dcid...)
	b = append(b, byte(len(scid)))
	return append(b, scid...), nil
}
