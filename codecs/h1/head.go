package h1

import "bytes"

// headScanner finds the end of a message head incrementally. It remembers
// how far it looked, so feeding a growing buffer costs O(total bytes), and
// enforces the line and section limits before the head is complete.
type headScanner struct {
	pos       int // next byte to look at
	lineStart int // start of the current line
	firstEnd  int // index just past the first line's CRLF, 0 until seen
	lines     int // field lines seen
}

func (s *headScanner) reset() { *s = headScanner{} }

// scan returns the head length (through the blank line) once b holds a
// complete head, else 0. skipEmpty allows empty lines before the first line
// (RFC 9112 section 2.2, requests only); they count against MaxRequestLine.
func (s *headScanner) scan(b []byte, lim *Limits, skipEmpty bool) (int, *Error) {
	if s.pos > len(b) {
		s.reset() // the caller changed the buffer under us; start over
	}
	for {
		i := bytes.IndexByte(b[s.pos:], '\n')
		if i < 0 {
			s.pos = len(b)
			break
		}
		lf := s.pos + i
		s.pos = lf + 1
		if lf == s.lineStart || b[lf-1] != '\r' {
			return 0, ErrBareLF
		}
		if s.firstEnd == 0 {
			if lf+1 > lim.MaxRequestLine {
				return 0, ErrRequestLineTooLong
			}
			if lf-1 == s.lineStart {
				if !skipEmpty {
					return 0, ErrBadRequestLine
				}
				s.lineStart = lf + 1
				continue
			}
			s.firstEnd = lf + 1
			s.lineStart = lf + 1
			continue
		}
		if lf+1-s.firstEnd > lim.MaxHeaderBytes {
			return 0, ErrHeadersTooLarge
		}
		if lf-1 == s.lineStart {
			return lf + 1, nil
		}
		s.lines++
		if s.lines > lim.MaxHeaderCount {
			return 0, ErrTooManyHeaders
		}
		s.lineStart = lf + 1
	}
	if s.firstEnd == 0 && len(b) > lim.MaxRequestLine {
		return 0, ErrRequestLineTooLong
	}
	if s.firstEnd > 0 && len(b)-s.firstEnd > lim.MaxHeaderBytes {
		return 0, ErrHeadersTooLarge
	}
	return 0, nil
}

// firstLine returns the first non-empty line of a scanned head (without
// CRLF) and the offset where the field lines start.
func firstLine(head []byte) (line []byte, rest int) {
	start := 0
	for start+1 < len(head) && head[start] == '\r' && head[start+1] == '\n' {
		start += 2
	}
	end := start + bytes.IndexByte(head[start:], '\n')
	return head[start : end-1], end + 1
}

// parseFieldLine parses one field line (without CRLF).
func parseFieldLine(line []byte) (Header, *Error) {
	if isOWS(line[0]) {
		return Header{}, ErrObsFold
	}
	colon := bytes.IndexByte(line, ':')
	if colon < 0 {
		return Header{}, ErrBadHeaderName
	}
	if colon == 0 {
		return Header{}, ErrEmptyHeaderName
	}
	name := line[:colon]
	for i, c := range name {
		if isToken[c] {
			continue
		}
		if isOWS(c) && len(trimOWS(name[i:])) == 0 {
			return Header{}, ErrSpaceBeforeColon
		}
		return Header{}, ErrBadHeaderName
	}
	if framingLookalike(name) {
		return Header{}, ErrSuspiciousFramingHeader
	}
	value := trimOWS(line[colon+1:])
	for _, c := range value {
		if !isValue[c] {
			return Header{}, ErrBadHeaderValue
		}
	}
	return Header{Name: name, Value: value}, nil
}

// framingLookalike reports whether a token spells Content-Length or
// Transfer-Encoding once case and non-letters are ignored
// (Transfer_Encoding, Content--Length, ...) without being the real name. An
// intermediary that normalises '_' to '-' would see framing we did not.
func framingLookalike(name []byte) bool {
	if len(name) < len("contentlength") || len(name) > 32 {
		return false
	}
	var buf [32]byte
	n := 0
	for _, c := range name {
		c = lower(c)
		if c >= 'a' && c <= 'z' {
			buf[n] = c
			n++
		}
	}
	letters := string(buf[:n]) // no allocation: compared, never stored
	switch letters {
	case "contentlength":
		return !equalFold(name, "content-length")
	case "transferencoding":
		return !equalFold(name, "transfer-encoding")
	}
	return false
}

// fields gathers what framing, routing and connection management need from
// the field lines of a head.
type fields struct {
	contentLength int64 // -1 when absent
	te            bool  // Transfer-Encoding present
	teCodings     int   // transfer codings seen
	teChunked     int   // how many of them are chunked
	teLastChunked bool
	teUnknown     bool
	hostCount     int
	host          []byte
	connClose     bool
	connKeepAlive bool
	connUpgrade   bool
	upgrade       []byte
	expect100     bool
}

// parseFields parses the field lines of head starting at off, through the
// blank line, appending to hs. Every line is known to end in CRLF.
func parseFields(head []byte, off int, hs []Header, f *fields) ([]Header, *Error) {
	*f = fields{contentLength: -1}
	for off < len(head) {
		end := off + bytes.IndexByte(head[off:], '\n')
		line := head[off : end-1]
		off = end + 1
		if len(line) == 0 {
			break
		}
		h, err := parseFieldLine(line)
		if err != nil {
			return hs, err
		}
		if err := f.add(h); err != nil {
			return hs, err
		}
		hs = append(hs, h)
	}
	return hs, nil
}

func (f *fields) add(h Header) *Error {
	n, v := h.Name, h.Value
	if len(n) < 4 || len(n) > 17 {
		return nil // no name we look at
	}
	switch lower(n[0]) {
	case 'c':
		if equalFold(n, "content-length") {
			if f.contentLength >= 0 {
				return ErrMultipleContentLength
			}
			cl, ok := parseDecimal(v)
			if !ok {
				return ErrBadContentLength
			}
			f.contentLength = cl
		} else if equalFold(n, "connection") {
			for len(v) > 0 {
				var e []byte
				e, v = nextListElem(v)
				switch {
				case equalFold(e, "close"):
					f.connClose = true
				case equalFold(e, "keep-alive"):
					f.connKeepAlive = true
				case equalFold(e, "upgrade"):
					f.connUpgrade = true
				}
			}
		}
	case 't':
		if equalFold(n, "transfer-encoding") {
			return f.addCodings(v)
		}
	case 'h':
		if equalFold(n, "host") {
			f.hostCount++
			f.host = v
		}
	case 'u':
		if equalFold(n, "upgrade") && f.upgrade == nil && len(v) > 0 {
			f.upgrade = v
		}
	case 'e':
		if equalFold(n, "expect") && equalFold(v, "100-continue") {
			f.expect100 = true
		}
	}
	return nil
}

// addCodings folds one Transfer-Encoding field value into f. Codings are
// tokens, optionally followed by ";" parameters (which carry no framing
// meaning and are dropped on forwarding); empty list elements are ignored.
func (f *fields) addCodings(v []byte) *Error {
	f.te = true
	before := f.teCodings
	for len(v) > 0 {
		var e []byte
		e, v = nextListElem(v)
		if len(e) == 0 {
			continue
		}
		name := codingName(e)
		if !allToken(name) {
			return ErrBadTransferEncoding
		}
		f.teCodings++
		f.teLastChunked = false
		switch {
		case equalFold(name, "chunked"):
			f.teChunked++
			f.teLastChunked = true
		case knownCoding(name):
		default:
			f.teUnknown = true
		}
	}
	if f.teCodings == before {
		return ErrBadTransferEncoding // a field with no coding at all
	}
	return nil
}

// codingName returns the coding token of a list element, without parameters.
func codingName(e []byte) []byte {
	if i := bytes.IndexByte(e, ';'); i >= 0 {
		e = e[:i]
	}
	return trimOWS(e)
}

func knownCoding(name []byte) bool {
	for _, k := range [...]string{"gzip", "x-gzip", "deflate", "compress", "x-compress", "identity"} {
		if equalFold(name, k) {
			return true
		}
	}
	return false
}

// parseVersion parses "HTTP/" DIGIT "." DIGIT.
func parseVersion(b []byte) (Version, *Error) {
	if len(b) != 8 || string(b[:5]) != "HTTP/" || b[6] != '.' ||
		b[5] < '0' || b[5] > '9' || b[7] < '0' || b[7] > '9' {
		return 0, ErrBadVersion
	}
	switch string(b[5:]) {
	case "1.1":
		return Version11, nil
	case "1.0":
		return Version10, nil
	}
	return 0, ErrVersionUnsupported
}
