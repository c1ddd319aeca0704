// SPDX-License-Identifier: GPL-3.0-only

package h3

import (
	"strconv"

	"github.com/expressgateway/expressgateway/codecs/msg"
)

// Response is a decoded response (or trailer) field section, as an HTTP/3
// client reads it. Its byte slices point into Arena.
type Response struct {
	Status        int // 0 in a trailer section
	Fields        []msg.Field
	ContentLength int64 // -1: none
	Arena         []byte
	w             appendWriter // the arena while DecodeResponse appends to it
}

// DecodeResponse decodes a response field section (trailers: a trailer
// section), at most max bytes as RFC 9114 section 4.2.2 counts them; 0 is
// no limit. A response has exactly one pseudo-header, :status, first; a
// trailer section none. Upper-case names, connection-specific fields and
// a bad or repeated content-length are malformed (RFC 9114 section 4.1.2).
func DecodeResponse(block []byte, max int, trailers bool, r *Response) error {
	*r = Response{Fields: r.Fields[:0], Arena: r.Arena[:0], ContentLength: -1}
	lines, err := startFieldLines(block)
	if err != nil {
		return &Error{Code: ErrCodeQPACKDecompression, Token: "qpack"}
	}
	w := &r.w
	w.b = r.Arena
	// On every return the arena is r's again (and keeps its capacity).
	defer func() { r.Arena, w.b = w.b, nil }()
	size := 0
	var fs []fieldSpan
	regular, seenStatus := false, false
	for lines.more() {
		ns, vs, err := lines.next(w)
		if err != nil {
			return &Error{Code: ErrCodeQPACKDecompression, Token: "qpack"}
		}
		name, value := transient(w.b[ns.start:ns.end]), transient(w.b[vs.start:vs.end])
		size += len(name) + len(value) + 32
		if max > 0 && size > max {
			return &Error{Code: ErrCodeExcessiveLoad, Token: "field_section_too_large"}
		}
		if name == "" {
			return malformed("empty_name")
		}
		for i := 0; i < len(name); i++ {
			if c := name[i]; c >= 'A' && c <= 'Z' {
				return malformed("uppercase_name")
			}
		}
		if err := checkField(name, value); err != nil {
			return err
		}
		if name[0] == ':' {
			if trailers || regular || seenStatus || name != ":status" {
				return malformed("bad_pseudo_header")
			}
			seenStatus = true
			n, err := strconv.Atoi(value)
			if err != nil || len(value) != 3 || n < 100 || n > 599 {
				return malformed("bad_status")
			}
			r.Status = n
			continue
		}
		regular = true
		if connectionSpecific[name] || name == "te" {
			return malformed("connection_specific_field")
		}
		if name == "content-length" && !trailers {
			n, err := strconv.ParseInt(value, 10, 64)
			if err != nil || n < 0 || (r.ContentLength >= 0 && n != r.ContentLength) {
				return malformed("bad_content_length")
			}
			r.ContentLength = n
		}
		fs = append(fs, fieldSpan{ns, vs})
	}
	a := w.b
	for _, f := range fs {
		r.Fields = append(r.Fields, msg.Field{Name: a[f.n.start:f.n.end:f.n.end], Value: a[f.v.start:f.v.end:f.v.end]})
	}
	if !trailers && !seenStatus {
		return malformed("missing_status")
	}
	return nil
}

// RequestHead is what AppendRequestHeaders encodes: the pseudo-headers of
// a request and its fields (names are lower-cased on the way out).
type RequestHead struct {
	Method, Scheme, Authority, Path []byte
	Fields                          []msg.Field
}

// AppendRequestHeaders appends a HEADERS frame carrying the request head.
func AppendRequestHeaders(b []byte, h *RequestHead) []byte {
	e := getEncoder()
	e.pseudo(":method", h.Method)
	if string(h.Method) != "CONNECT" {
		e.pseudo(":scheme", h.Scheme)
	}
	if len(h.Authority) > 0 {
		e.pseudo(":authority", h.Authority)
	}
	if string(h.Method) != "CONNECT" {
		e.pseudo(":path", h.Path)
	}
	e.fields(h.Fields)
	return e.finish(b)
}
