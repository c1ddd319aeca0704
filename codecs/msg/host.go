// SPDX-License-Identifier: GPL-3.0-only

package msg

import (
	"bytes"
	"net/netip"
	"slices"
	"unsafe"
)

// NormalizeHost appends the normalised form of an authority / Host value
// (uri-host [":" port]) to dst;
// hostLen is the length of the host part (without ":port") within the
// appended bytes.
//
// A reg-name or IPv4 address is lower-cased (RFC 3986 section 6.2.2.1), its
// unreserved percent-encodings decoded and the others upper-cased (section
// 6.2.2.2), and one trailing dot removed: "Internal.Example.COM." names the
// same host as "internal.example.com" and must match the same route. An IPv6
// literal is checked with net/netip and written in its RFC 5952 form, still in
// brackets, so that every spelling of one address compares equal. A port
// loses its leading zeros ("080" is "80"); a default port is kept, as the
// scheme is not known here.
//
// Refused with ErrBadHost: userinfo ('@'), an empty host (":80"), a name that
// is only "." or has an empty label ("a..b", ".a"), a byte outside reg-name,
// a bad percent-encoding, an IP literal without ']', that is not IPv6
// (IPvFuture, "[1.2.3.4]") or that has a zone, or anything but a port after
// it. Refused with ErrBadPort: a port that is empty ("a:", which RFC 3986
// allows but no client needs, and which upstreams would read as either no
// port or port 0), not all digits ("a:80:90", "a:x") or outside 1-65535.
// The empty authority is valid and appends nothing: an HTTP/1.0 request may
// come without Host.
//
// On error out is dst unchanged in length, though bytes past len(dst) may
// have been written. dst must not overlap authority. Nothing is allocated when
// dst has room for len(authority)+6 more bytes: the output is never longer
// than the input except for an IPv4-mapped IPv6 address, which RFC 5952 writes
// dotted ("[::ffff:ffff:ffff]" becomes "[::ffff:255.255.255.255]").
func NormalizeHost(dst, authority []byte) (out []byte, hostLen int, err *Error) {
	if len(authority) == 0 {
		return dst, 0, nil
	}
	if bytes.IndexByte(authority, '@') >= 0 {
		return dst, 0, ErrBadHost
	}
	start := len(dst)
	var rest []byte
	if authority[0] == '[' {
		end := bytes.IndexByte(authority, ']')
		if end < 0 {
			return dst, 0, ErrBadHost
		}
		if out, err = appendIPv6(dst, authority[1:end]); err != nil {
			return dst, 0, err
		}
		rest = authority[end+1:]
	} else {
		name := authority
		if i := bytes.IndexByte(authority, ':'); i >= 0 {
			name, rest = authority[:i], authority[i:]
		}
		if out, err = appendRegName(dst, name); err != nil {
			return dst, 0, err
		}
	}
	hostLen = len(out) - start
	if len(rest) == 0 {
		return out, hostLen, nil
	}
	if rest[0] != ':' {
		return dst, 0, ErrBadHost // "[::1]x"
	}
	if out, err = appendPort(out, rest[1:]); err != nil {
		return dst, 0, err
	}
	return out, hostLen, nil
}

// appendIPv6 appends "[" addr "]" for the inside of an IP-literal. A zone
// ("%25eth0", RFC 6874) names an interface of the client's host, which means
// nothing to the gateway or an upstream, so it is refused.
//
// netip parses a string, and converting the bytes would allocate (the string
// escapes into netip's error), so it gets a string that shares inside's
// memory instead. That is safe because nothing outlives the call: the error
// is dropped, and only a zone, refused before, is kept by the Addr. Malformed
// literals still cost one allocation, netip's error.
func appendIPv6(dst, inside []byte) ([]byte, *Error) {
	if len(inside) == 0 || len(inside) > len("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255") ||
		bytes.IndexByte(inside, '%') >= 0 {
		return dst, ErrBadHost
	}
	addr, e := netip.ParseAddr(unsafe.String(unsafe.SliceData(inside), len(inside)))
	if e != nil || !addr.Is6() || addr.Zone() != "" {
		return dst, ErrBadHost
	}
	dst = append(dst, '[')
	dst = addr.AppendTo(dst)
	return append(dst, ']'), nil
}

// appendRegName appends the normal form of a reg-name or IPv4 address.
func appendRegName(dst, name []byte) ([]byte, *Error) {
	start := len(dst)
	out := slices.Grow(dst, len(name))[:start+len(name)]
	w := start
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '%':
			if i+2 >= len(name) || !isHex(name[i+1]) || !isHex(name[i+2]) {
				return dst, ErrBadHost
			}
			v := unhex(name[i+1])<<4 | unhex(name[i+2])
			if unreserved[v] {
				out[w] = lower(v)
				w++
			} else {
				out[w], out[w+1], out[w+2] = '%', upper(name[i+1]), upper(name[i+2])
				w += 3
			}
			i += 2
		case regName[c]:
			out[w] = lower(c)
			w++
		default:
			return dst, ErrBadHost
		}
	}
	h := out[start:w]
	if len(h) > 0 && h[len(h)-1] == '.' {
		h = h[:len(h)-1] // a fully qualified name: the same host
	}
	if len(h) == 0 || h[0] == '.' || h[len(h)-1] == '.' || bytes.Contains(h, []byte("..")) {
		return dst, ErrBadHost
	}
	return out[:start+len(h)], nil
}

// appendPort appends ":" and the decimal port p without leading zeros.
func appendPort(dst, p []byte) ([]byte, *Error) {
	if len(p) == 0 {
		return dst, ErrBadPort
	}
	for _, c := range p {
		if c < '0' || c > '9' {
			return dst, ErrBadPort
		}
	}
	for len(p) > 1 && p[0] == '0' {
		p = p[1:]
	}
	if len(p) > 5 {
		return dst, ErrBadPort
	}
	v := 0
	for _, c := range p {
		v = v*10 + int(c-'0')
	}
	if v < 1 || v > 65535 {
		return dst, ErrBadPort
	}
	dst = append(dst, ':')
	return append(dst, p...), nil
}

func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + ('a' - 'A')
	}
	return c
}
