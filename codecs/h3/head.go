// SPDX-License-Identifier: GPL-3.0-only

package h3

import (
	"strconv"
	"sync"
	"unsafe"

	"github.com/quic-go/qpack"

	"github.com/expressgateway/expressgateway/codecs/msg"
)

// Head is a decoded request (or trailer) field section. Its byte slices
// point into Arena.
type Head struct {
	Method, Scheme, Authority, Path, Protocol []byte
	Fields                                    []msg.Field
	ContentLength                             int64 // -1: none
	Arena                                     []byte
	spans                                     []fieldSpan  // DecodeFields' scratch, kept for reuse
	w                                         appendWriter // the arena while DecodeFields appends to it
}

// span is a range of Head.Arena; fieldSpan a field's name and value.
type span struct{ start, end int }

type fieldSpan struct{ n, v span }

// Pseudo-header fields by index, for DecodeFields.
const (
	pseudoMethod = iota
	pseudoScheme
	pseudoAuthority
	pseudoPath
	pseudoProtocol
	pseudoCount
)

// pseudoIndex is the index of a request pseudo-header field, -1 for any
// other name.
func pseudoIndex(name string) int {
	switch name {
	case ":method":
		return pseudoMethod
	case ":scheme":
		return pseudoScheme
	case ":authority":
		return pseudoAuthority
	case ":path":
		return pseudoPath
	case ":protocol":
		return pseudoProtocol
	}
	return -1
}

// IsConnect reports a CONNECT request (classic or extended).
func (h *Head) IsConnect() bool { return string(h.Method) == "CONNECT" }

// Reuse empties h for another head, keeping its buffers unless they grew
// past what a usual head needs (so a burst does not pin memory).
func (h *Head) Reuse() {
	if cap(h.Arena) > 64<<10 || cap(h.Fields) > 512 || cap(h.spans) > 512 {
		*h = Head{ContentLength: -1}
		return
	}
	*h = Head{Fields: h.Fields[:0], Arena: h.Arena[:0], ContentLength: -1, spans: h.spans[:0]}
}

// connectionSpecific are the fields RFC 9114 section 4.2 forbids.
var connectionSpecific = map[string]bool{
	"connection": true, "keep-alive": true, "proxy-connection": true,
	"transfer-encoding": true, "upgrade": true,
}

func malformed(tok string) error { return &Error{Code: ErrCodeMessage, Token: tok} }

// DecodeFields decodes a QPACK field section, at most max bytes as RFC 9114
// section 4.2.2 counts them (name + value + 32 per field); trailers is set
// for a trailer section (no pseudo-headers at all).
func DecodeFields(block []byte, max int, trailers bool, h *Head) error {
	h.Reuse()
	lines, err := startFieldLines(block)
	if err != nil {
		return &Error{Code: ErrCodeQPACKDecompression, Token: "qpack"}
	}
	a := &h.w
	a.b = h.Arena
	// On every return the arena is h's again (and keeps its capacity).
	defer func() { h.Arena, a.b = a.b, nil }()
	size := 0
	regular := false
	var pseudo [pseudoCount]span
	var seen uint8 // bit i: pseudo-header i was present
	fs := h.spans
	for lines.more() {
		ns, vs, err := lines.next(a)
		if err != nil {
			return &Error{Code: ErrCodeQPACKDecompression, Token: "qpack"}
		}
		name, value := transient(a.b[ns.start:ns.end]), transient(a.b[vs.start:vs.end])
		size += len(name) + len(value) + 32
		if max > 0 && size > max {
			return &Error{Code: ErrCodeExcessiveLoad, Token: "field_section_too_large"}
		}
		for i := 0; i < len(name); i++ {
			if c := name[i]; c >= 'A' && c <= 'Z' {
				return malformed("uppercase_name")
			}
		}
		if name == "" {
			return malformed("empty_name")
		}
		if err := checkField(name, value); err != nil {
			return err
		}
		if name[0] == ':' {
			i := pseudoIndex(name)
			if trailers || regular || i < 0 || seen&(1<<i) != 0 {
				return malformed("bad_pseudo_header")
			}
			if i == pseudoMethod && !isToken(value) {
				return malformed("bad_method")
			}
			seen |= 1 << i
			pseudo[i] = vs
			continue
		}
		regular = true
		if connectionSpecific[name] || (name == "te" && value != "trailers") {
			return malformed("connection_specific_field")
		}
		if name == "content-length" && !trailers {
			n, err := strconv.ParseInt(value, 10, 64)
			if err != nil || n < 0 || (h.ContentLength >= 0 && n != h.ContentLength) {
				return malformed("bad_content_length")
			}
			h.ContentLength = n
		}
		fs = append(fs, fieldSpan{ns, vs})
	}
	h.spans = fs
	arena := a.b
	get := func(s span) []byte { return arena[s.start:s.end:s.end] }
	for _, f := range fs {
		h.Fields = append(h.Fields, msg.Field{Name: get(f.n), Value: get(f.v)})
	}
	if trailers {
		return nil
	}
	for i, dst := range [pseudoCount]*[]byte{&h.Method, &h.Scheme, &h.Authority, &h.Path, &h.Protocol} {
		if seen&(1<<i) != 0 {
			*dst = get(pseudo[i])
		}
	}
	switch {
	case len(h.Method) == 0:
		return malformed("missing_method")
	case h.IsConnect() && h.Protocol == nil:
		if h.Scheme != nil || h.Path != nil || len(h.Authority) == 0 {
			return malformed("bad_connect")
		}
	case h.Protocol != nil && !h.IsConnect():
		return malformed("bad_protocol")
	case len(h.Scheme) == 0 || len(h.Path) == 0:
		return malformed("missing_pseudo_header")
	}
	return nil
}

// AppendHeaders appends a HEADERS frame with a response head (status > 0)
// or a trailer section (status 0). Names are lowercased (field names are
// case-insensitive and HTTP/3 requires lowercase).
func AppendHeaders(b []byte, status int, fields []msg.Field) []byte {
	e := getEncoder()
	if status > 0 {
		var num [3]byte
		e.pseudo(":status", strconv.AppendInt(num[:0], int64(status), 10))
	}
	e.fields(fields)
	return e.finish(b)
}

func getEncoder() *fieldEncoder {
	e := encoders.Get().(*fieldEncoder)
	e.w.b = e.w.b[:0]
	return e
}

// pseudo encodes a pseudo-header field. The encoder copies what it is
// given before WriteField returns, so the strings may alias the caller's
// bytes and the scratch name.
func (e *fieldEncoder) pseudo(name string, value []byte) {
	_ = e.enc.WriteField(qpack.HeaderField{Name: name, Value: transient(value)})
}

// fields encodes fields with their names lowercased.
func (e *fieldEncoder) fields(fields []msg.Field) {
	for _, f := range fields {
		e.name = append(e.name[:0], f.Name...)
		for i, c := range e.name {
			if c >= 'A' && c <= 'Z' {
				e.name[i] = c + ('a' - 'A')
			}
		}
		_ = e.enc.WriteField(qpack.HeaderField{Name: transient(e.name), Value: transient(f.Value)})
	}
}

// finish appends the section as a HEADERS frame to b and returns the
// encoder to its pool.
func (e *fieldEncoder) finish(b []byte) []byte {
	_ = e.enc.Close() // the next section starts with its own prefix
	b = AppendFrameHeader(b, FrameHeaders, uint64(len(e.w.b)))
	b = append(b, e.w.b...)
	if cap(e.w.b) <= 64<<10 && cap(e.name) <= 64<<10 { // a rare huge section is not kept
		encoders.Put(e)
	}
	return b
}

// fieldEncoder is a QPACK encoder with its output and scratch, pooled:
// encoding a section allocates nothing.
type fieldEncoder struct {
	w    appendWriter
	enc  *qpack.Encoder
	name []byte
}

var encoders = sync.Pool{New: func() any {
	e := &fieldEncoder{}
	e.enc = qpack.NewEncoder(&e.w)
	return e
}}

// appendWriter is an io.Writer that appends to b.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

// transient is b as a string without a copy, for a callee that does not
// keep it.
func transient(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// checkField refuses what no HTTP version may carry and an HTTP/1
// message would turn into framing (RFC 9114 section 4.2, RFC 9110 section
// 5.5): a name that is not a token (after an optional leading ':' of a
// pseudo-header), a value with NUL, CR, LF, another control character or
// DEL, or one that starts or ends with SP or HTAB. Upper case is refused
// before this, with its own token.
func checkField(name, value string) error {
	n := name
	if len(n) > 0 && n[0] == ':' {
		n = n[1:]
	}
	if !isToken(n) {
		return malformed("bad_field_name")
	}
	for i := 0; i < len(value); i++ {
		if c := value[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return malformed("bad_field_value")
		}
	}
	if len(value) > 0 && (isOWS(value[0]) || isOWS(value[len(value)-1])) {
		return malformed("field_value_whitespace")
	}
	return nil
}

func isOWS(c byte) bool { return c == ' ' || c == '\t' }

// isToken reports an RFC 9110 token: one or more tchar.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '!' || c == '#' || c == '$' || c == '%' || c == '&' || c == '\'' || c == '*' || c == '+' ||
			c == '-' || c == '.' || c == '^' || c == '_' || c == '`' || c == '|' || c == '~':
		default:
			return false
		}
	}
	return true
}
