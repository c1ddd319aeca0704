// SPDX-License-Identifier: GPL-3.0-only

package msg

// Byte classes from RFC 3986 section 2 and appendix A.
var (
	unreserved [256]bool // ALPHA / DIGIT / "-" / "." / "_" / "~"
	regName    [256]bool // unreserved / sub-delims; '%' is handled apart
	pathPlain  [256]bool // path bytes the fast path copies without a second look
)

func init() {
	for c := 0; c < 256; c++ {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
			unreserved[c] = true
		}
		switch c {
		case '-', '.', '_', '~':
			unreserved[c] = true
		}
		regName[c] = unreserved[c]
		switch c {
		case '!', '$', '&', '\'', '(', ')', '*', '+', ',', ';', '=':
			regName[c] = true
		}
		pathPlain[c] = !isCTLOrSP(byte(c))
		switch c {
		case '/', '?', '#', '%', '\\':
			pathPlain[c] = false
		}
	}
}

// isCTLOrSP reports the bytes that would end or split a request line if
// forwarded raw (and that no URI contains): controls, space and DEL.
func isCTLOrSP(c byte) bool { return c <= ' ' || c == 0x7f }

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// unhex is the value of a hex digit; c must satisfy isHex.
func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

func upper(c byte) byte {
	if c >= 'a' && c <= 'z' {
		return c - ('a' - 'A')
	}
	return c
}
