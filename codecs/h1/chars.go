package h1

// Byte classes from RFC 9110 and RFC 9112.
var (
	isToken  [256]bool // tchar
	isValue  [256]bool // field-vchar, SP, HTAB (obs-text included)
	isTarget [256]bool // request-target bytes: VCHAR and obs-text, no SP or CTL
	isHost   [256]bool // uri-host and port: unreserved, sub-delims, ':', '[', ']' (no pct-encoding)
)

func init() {
	for c := 0; c < 256; c++ {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
			isToken[c], isHost[c] = true, true
		}
		switch c {
		case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
			isToken[c] = true
		}
		switch c {
		case '-', '.', '_', '~', '!', '$', '&', '\'', '(', ')', '*', '+', ',', ';', '=', ':', '[', ']':
			isHost[c] = true
		}
		isValue[c] = c == '\t' || (c >= 0x20 && c != 0x7f)
		isTarget[c] = c > 0x20 && c != 0x7f
	}
}

func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + ('a' - 'A')
	}
	return c
}

// equalFold compares b with an ASCII string, ignoring ASCII case.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		if lower(b[i]) != lower(s[i]) {
			return false
		}
	}
	return true
}

func isOWS(c byte) bool { return c == ' ' || c == '\t' }

func trimOWS(b []byte) []byte {
	for len(b) > 0 && isOWS(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isOWS(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

func allToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !isToken[c] {
			return false
		}
	}
	return true
}

// nextListElem splits a comma-separated field value: it returns the first
// element, OWS-trimmed (possibly empty), and the rest after the comma.
func nextListElem(v []byte) (elem, rest []byte) {
	for i, c := range v {
		if c == ',' {
			return trimOWS(v[:i]), v[i+1:]
		}
	}
	return trimOWS(v), nil
}

// parseDecimal parses 1*DIGIT of at most 18 digits (so it fits int64).
func parseDecimal(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}
