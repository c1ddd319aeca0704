// SPDX-License-Identifier: GPL-3.0-only

package msg

// Field is one header or trailer field. Name and Value point into a buffer
// the codec owns (a parser's head copy, a stream's arena) and stay valid
// while the exchange that carries them is current. HTTP/1 keeps the name's
// received case; HTTP/2 and HTTP/3 names are lower case on the wire.
type Field struct{ Name, Value []byte }

// Body says what follows a head.
type Body uint8

// Body kinds.
const (
	// BodyNone: the head ends the message.
	BodyNone Body = iota
	// BodyLength: exactly ContentLength bytes follow.
	BodyLength
	// BodyStream: bytes follow until the message's own end (HTTP/1 chunked,
	// an HTTP/2 stream's END_STREAM, an HTTP/1 response until close).
	BodyStream
)

// Empty reports whether a message with this body kind and Content-Length
// cl carries no body byte: no body, or a length of 0.
func (b Body) Empty(cl int64) bool { return b == BodyNone || (b == BodyLength && cl == 0) }

// Request is a protocol-neutral request head: what every downstream codec
// fills and every stage reads. Authority, Host and Path are normalised
// (NormalizeHost, NormalizeTarget) before the pipeline sees them, so routing
// and forwarding read the same bytes.
type Request struct {
	Method []byte
	// Scheme is "http" or "https" (HTTP/2 :scheme; for HTTP/1 the
	// listener's).
	Scheme []byte
	// Authority is the normalised host[:port] (HTTP/2 :authority, the
	// HTTP/1 absolute-form authority or Host); empty for an HTTP/1.0
	// request without Host.
	Authority []byte
	// Host is Authority without its port.
	Host []byte
	// Path is the normalised origin-form target: path, then "?query" if
	// any; "*" for OPTIONS *. PathLen is the length of the path part.
	Path    []byte
	PathLen int
	// Protocol is the :protocol of an extended CONNECT (RFC 8441), else nil.
	Protocol []byte
	// Fields are the regular fields in received order, pseudo-headers and
	// Host excluded.
	Fields []Field
	// Body and ContentLength describe the request body; ContentLength is -1
	// when unknown.
	Body          Body
	ContentLength int64
}

// Field returns the value of the first field called name (ASCII
// case-insensitive; name given in lower case), or nil.
func (r *Request) Field(name string) []byte { return lookup(r.Fields, name) }

// PathOnly is the path without its query.
func (r *Request) PathOnly() []byte { return r.Path[:r.PathLen] }

// Response is a protocol-neutral response head.
type Response struct {
	Status int
	// Reason is the HTTP/1 reason phrase as received (nil from HTTP/2 and
	// HTTP/3, which have none).
	Reason []byte
	// Fields are the regular fields, :status excluded.
	Fields        []Field
	Body          Body
	ContentLength int64
}

// Field returns the value of the first field called name, or nil.
func (r *Response) Field(name string) []byte { return lookup(r.Fields, name) }

func lookup(fs []Field, name string) []byte {
	for i := range fs {
		if EqualFold(fs[i].Name, name) {
			return fs[i].Value
		}
	}
	return nil
}

// EqualFold reports whether b equals s, ignoring ASCII case; s must be lower
// case.
func EqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// equalFoldBytes reports whether a equals b, ignoring ASCII case.
func equalFoldBytes(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
