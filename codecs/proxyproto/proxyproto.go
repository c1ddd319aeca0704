// SPDX-License-Identifier: GPL-3.0-only

// Package proxyproto reads and writes the PROXY protocol header (HAProxy's
// specification, versions 1 and 2) that an L4 balancer puts in front of a
// connection to tell the real client's address. It is sans-IO: Parse looks
// at the first bytes of a connection and says how many the header took.
package proxyproto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"strconv"
)

// Header is what a PROXY header says of a connection.
type Header struct {
	Version int // 1 or 2
	// Local is a v2 LOCAL command (a health check by the balancer itself)
	// or a v1 "UNKNOWN": the connection's own addresses stand.
	Local bool
	// Src is the client, Dst the address it connected to; zero when Local.
	Src, Dst netip.AddrPort
}

// v2Sig is the 12-byte signature of a version 2 header.
var v2Sig = []byte("\r\n\r\n\x00\r\nQUIT\n")

// Errors. ErrNeedMore means the bytes so far are a valid prefix.
var (
	ErrNeedMore = errors.New("proxyproto: incomplete header")
	ErrNoHeader = errors.New("proxyproto: no PROXY protocol header")
	ErrInvalid  = errors.New("proxyproto: malformed PROXY protocol header")
)

// MaxV1 is the longest version 1 header (the specification's 107 bytes);
// maxV2 caps the TLVs of a version 2 header.
const (
	MaxV1 = 107
	maxV2 = 16 + 2048
)

// Looks reports whether b starts (or could start, when short) with a PROXY
// header of either version.
func Looks(b []byte) bool {
	n := min(len(b), 6)
	if bytes.Equal(b[:n], []byte("PROXY ")[:n]) {
		return true
	}
	n = min(len(b), len(v2Sig))
	return n > 0 && bytes.Equal(b[:n], v2Sig[:n])
}

// Parse reads a header at the start of b. It returns the header and the
// number of bytes it took, ErrNeedMore for a valid but incomplete prefix,
// ErrNoHeader when b does not start with one, or ErrInvalid.
func Parse(b []byte) (Header, int, error) {
	if len(b) == 0 {
		return Header{}, 0, ErrNeedMore
	}
	if b[0] == 'P' {
		return parseV1(b)
	}
	if b[0] == '\r' {
		return parseV2(b)
	}
	return Header{}, 0, ErrNoHeader
}

func parseV1(b []byte) (Header, int, error) {
	n := min(len(b), 6)
	if !bytes.Equal(b[:n], []byte("PROXY ")[:n]) {
		return Header{}, 0, ErrNoHeader
	}
	end := bytes.Index(b[:min(len(b), MaxV1)], []byte("\r\n"))
	if end < 0 {
		if len(b) >= MaxV1 {
			return Header{}, 0, ErrInvalid
		}
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			return Header{}, 0, ErrInvalid // a bare LF
		}
		return Header{}, 0, ErrNeedMore
	}
	line := b[6:end]
	h := Header{Version: 1}
	if bytes.HasPrefix(line, []byte("UNKNOWN")) {
		h.Local = true
		return h, end + 2, nil
	}
	f := bytes.Split(line, []byte(" "))
	if len(f) != 5 {
		return Header{}, 0, ErrInvalid
	}
	var want4 bool
	switch string(f[0]) {
	case "TCP4":
		want4 = true
	case "TCP6":
	default:
		return Header{}, 0, ErrInvalid
	}
	src, err1 := netip.ParseAddr(string(f[1]))
	dst, err2 := netip.ParseAddr(string(f[2]))
	sp, err3 := port(f[3])
	dp, err4 := port(f[4])
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil || src.Is4() != want4 || dst.Is4() != want4 || src.Zone() != "" || dst.Zone() != "" {
		return Header{}, 0, ErrInvalid
	}
	h.Src, h.Dst = netip.AddrPortFrom(src, sp), netip.AddrPortFrom(dst, dp)
	return h, end + 2, nil
}

// port parses a decimal port without sign, leading zeros or spaces.
func port(b []byte) (uint16, error) {
	if len(b) == 0 || len(b) > 5 || (len(b) > 1 && b[0] == '0') {
		return 0, ErrInvalid
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, ErrInvalid
		}
	}
	n, err := strconv.Atoi(string(b))
	if err != nil || n > 65535 {
		return 0, ErrInvalid
	}
	return uint16(n), nil
}

func parseV2(b []byte) (Header, int, error) {
	n := min(len(b), len(v2Sig))
	if !bytes.Equal(b[:n], v2Sig[:n]) {
		return Header{}, 0, ErrNoHeader
	}
	if len(b) < 16 {
		return Header{}, 0, ErrNeedMore
	}
	verCmd, fam := b[12], b[13]
	length := int(binary.BigEndian.Uint16(b[14:16]))
	if verCmd>>4 != 2 || 16+length > maxV2 {
		return Header{}, 0, ErrInvalid
	}
	if len(b) < 16+length {
		return Header{}, 0, ErrNeedMore
	}
	total := 16 + length
	h := Header{Version: 2}
	switch verCmd & 0xf {
	case 0: // LOCAL
		h.Local = true
		return h, total, nil
	case 1: // PROXY
	default:
		return Header{}, 0, ErrInvalid
	}
	body := b[16:total]
	switch fam {
	case 0x11: // TCP over IPv4
		if len(body) < 12 {
			return Header{}, 0, ErrInvalid
		}
		src := netip.AddrFrom4([4]byte(body[0:4]))
		dst := netip.AddrFrom4([4]byte(body[4:8]))
		h.Src = netip.AddrPortFrom(src, binary.BigEndian.Uint16(body[8:10]))
		h.Dst = netip.AddrPortFrom(dst, binary.BigEndian.Uint16(body[10:12]))
	case 0x21: // TCP over IPv6
		if len(body) < 36 {
			return Header{}, 0, ErrInvalid
		}
		src := netip.AddrFrom16([16]byte(body[0:16])).Unmap()
		dst := netip.AddrFrom16([16]byte(body[16:32])).Unmap()
		h.Src = netip.AddrPortFrom(src, binary.BigEndian.Uint16(body[32:34]))
		h.Dst = netip.AddrPortFrom(dst, binary.BigEndian.Uint16(body[34:36]))
	case 0x00: // UNSPEC with PROXY: treated as LOCAL, as the spec allows
		h.Local = true
	default:
		// UDP and unix families are not client addresses of a TCP
		// listener.
		return Header{}, 0, ErrInvalid
	}
	return h, total, nil
}

// AppendV1 appends a version 1 header for a connection from src to dst.
func AppendV1(b []byte, src, dst netip.AddrPort) []byte {
	s, d := src.Addr().Unmap(), dst.Addr().Unmap()
	if !s.IsValid() || !d.IsValid() || s.Is4() != d.Is4() {
		return append(b, "PROXY UNKNOWN\r\n"...)
	}
	fam := "TCP6 "
	if s.Is4() {
		fam = "TCP4 "
	}
	b = append(b, "PROXY "...)
	b = append(b, fam...)
	b = s.AppendTo(b)
	b = append(b, ' ')
	b = d.AppendTo(b)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(src.Port()), 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(dst.Port()), 10)
	return append(b, "\r\n"...)
}

// AppendV2 appends a version 2 header (PROXY command, TCP) for a
// connection from src to dst; mixed families are sent as LOCAL.
func AppendV2(b []byte, src, dst netip.AddrPort) []byte {
	b = append(b, v2Sig...)
	s, d := src.Addr().Unmap(), dst.Addr().Unmap()
	switch {
	case s.Is4() && d.Is4():
		b = append(b, 0x21, 0x11, 0, 12)
		s4, d4 := s.As4(), d.As4()
		b = append(b, s4[:]...)
		b = append(b, d4[:]...)
	case s.IsValid() && d.IsValid() && !s.Is4() && !d.Is4():
		b = append(b, 0x21, 0x21, 0, 36)
		s16, d16 := s.As16(), d.As16()
		b = append(b, s16[:]...)
		b = append(b, d16[:]...)
	default:
		return append(b, 0x20, 0x00, 0, 0)
	}
	b = binary.BigEndian.AppendUint16(b, src.Port())
	return binary.BigEndian.AppendUint16(b, dst.Port())
}
