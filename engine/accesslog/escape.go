// SPDX-License-Identifier: GPL-3.0-only

package accesslog

// JSON string escaping for values that come from the request (a target,
// a method, a client's bytes): the line must stay one valid JSON object
// whatever they hold, so that no client can forge or break a log line.

const hexDigits = "0123456789abcdef"

// plain[c] is true for the ASCII bytes written as they are: everything
// from space to '~' except '"' and '\'. Control characters and DEL are
// escaped (a terminal reading the log must not see them raw).
var plain = func() (t [128]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// appendValue appends s as a JSON string body and the closing quote,
// escaping '"', '\' and control characters, replacing each byte that is
// not part of valid UTF-8 with \ufffd (as encoding/json and zerolog do),
// and cutting s at MaxValueBytes with a "..." marker.
func appendValue[T string | []byte](dst []byte, s T) []byte {
	cut := len(s) > MaxValueBytes
	if cut {
		s = s[:MaxValueBytes]
	}
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < 0x80 {
			if plain[c] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		n := runeLen(s[i:])
		if n == 0 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += n
	}
	dst = append(dst, s[start:]...)
	if cut {
		dst = append(dst, "..."...)
	}
	return append(dst, '"')
}

// runeLen is the length of the valid UTF-8 sequence s starts with (RFC
// 3629: no overlong forms, no surrogates, nothing above U+10FFFF), or 0.
func runeLen[T string | []byte](s T) int {
	c := s[0]
	var n int
	lo, hi := byte(0x80), byte(0xbf) // bounds of the second byte
	switch {
	case c < 0xc2:
		return 0 // a continuation byte, or an overlong 2-byte lead
	case c < 0xe0:
		n = 2
	case c < 0xf0:
		n = 3
		if c == 0xe0 {
			lo = 0xa0 // overlong below U+0800
		} else if c == 0xed {
			hi = 0x9f // surrogates U+D800..U+DFFF
		}
	case c < 0xf5:
		n = 4
		if c == 0xf0 {
			lo = 0x90 // overlong below U+10000
		} else if c == 0xf4 {
			hi = 0x8f // above U+10FFFF
		}
	default:
		return 0
	}
	if len(s) < n || s[1] < lo || s[1] > hi {
		return 0
	}
	for i := 2; i < n; i++ {
		if s[i] < 0x80 || s[i] > 0xbf {
			return 0
		}
	}
	return n
}
