package h1

import "github.com/expressgateway/expressgateway/codecs/msg"

// Version is an HTTP/1.x protocol version.
type Version uint8

// The versions the parsers accept.
const (
	Version10 Version = 10
	Version11 Version = 11
)

// String returns the version as on the wire, e.g. "HTTP/1.1".
func (v Version) String() string {
	switch v {
	case Version10:
		return "HTTP/1.0"
	case Version11:
		return "HTTP/1.1"
	}
	return "HTTP/?"
}

// Header is one field line: the neutral msg.Field, so that parsed heads
// cross into the pipeline without copying. Name and Value point into the
// parser's (or body decoder's) own buffer and stay valid until its next
// Parse, Reset or Decode. Name keeps its received case; Value has
// surrounding whitespace removed.
type Header = msg.Field

// BodyKind says how a message body is delimited.
type BodyKind uint8

// Body framings.
const (
	BodyNone       BodyKind = iota // no body
	BodyLength                     // Content-Length bytes
	BodyChunked                    // chunked transfer coding, then trailers
	BodyUntilClose                 // responses only: everything until the upstream closes
)

// Empty reports whether a message framed as k with Content-Length cl has
// no body byte to read: no body at all, or "Content-Length: 0". A message
// for which it holds is complete with its head; waiting for body bytes
// there waits for bytes that never come.
func (k BodyKind) Empty(cl int64) bool {
	return k == BodyNone || (k == BodyLength && cl == 0)
}

// String names the framing.
func (k BodyKind) String() string {
	switch k {
	case BodyNone:
		return "none"
	case BodyLength:
		return "length"
	case BodyChunked:
		return "chunked"
	case BodyUntilClose:
		return "until-close"
	}
	return "unknown"
}

// Request is a parsed request head. Its slices point into the RequestParser's
// buffer and stay valid until that parser's next Parse or Reset.
type Request struct {
	Method, Target []byte
	// Host is the Host field value, or the authority of an absolute-form or
	// CONNECT target (which overrides Host), or nil when neither is present
	// (HTTP/1.0).
	Host    []byte
	Version Version
	// Headers as received, in order, names case preserved.
	Headers []Header
	Body    BodyKind
	// ContentLength is the Content-Length value, or -1 without one. It
	// delimits the body when Body == BodyLength.
	ContentLength int64
	// KeepAlive is the client's wish from its version and Connection field.
	KeepAlive      bool
	ExpectContinue bool
	// Upgrade is the Upgrade field value when Connection lists "upgrade" in an
	// HTTP/1.1 request, else nil.
	Upgrade []byte
}

// Header returns the value of the first field named name (ASCII
// case-insensitive), or nil.
func (r *Request) Header(name string) []byte { return lookup(r.Headers, name) }

// Response is a parsed response head. Its slices point into the
// ResponseParser's buffer and stay valid until that parser's next Parse or
// Reset.
type Response struct {
	Version Version
	Status  int
	Reason  []byte
	Headers []Header
	Body    BodyKind
	// ContentLength is the Content-Length value, or -1 without one. It
	// delimits the body when Body == BodyLength; for a HEAD or 304 response it
	// describes the representation and is kept for forwarding.
	ContentLength int64
	// KeepAlive is false when the upstream asked to close or the body runs
	// until close.
	KeepAlive bool
}

// Header returns the value of the first field named name (ASCII
// case-insensitive), or nil.
func (r *Response) Header(name string) []byte { return lookup(r.Headers, name) }

func lookup(hs []Header, name string) []byte {
	for i := range hs {
		if equalFold(hs[i].Name, name) {
			return hs[i].Value
		}
	}
	return nil
}

// Limits bound what a parser or body decoder accepts. Each bound, when hit,
// yields an *Error with a distinct token.
type Limits struct {
	// MaxRequestLine bounds the request (or status) line, CRLF included.
	MaxRequestLine int
	// MaxHeaderBytes bounds the header section after the first line.
	MaxHeaderBytes int
	// MaxHeaderCount bounds the number of field lines (also for trailers).
	MaxHeaderCount int
	// MaxBodyBytes bounds the payload of one body; 0 means unlimited.
	MaxBodyBytes int64
	// MaxChunkExtension bounds the extension bytes of one chunk-size line.
	MaxChunkExtension int
	// MaxTrailerBytes bounds the trailer section of a chunked body.
	MaxTrailerBytes int
	// AllowGetBody accepts a body on GET and HEAD requests (search APIs
	// use them). Off by default: an upstream that ignores such a body
	// reads it as the next request. TRACE never takes a body.
	AllowGetBody bool
}

// DefaultLimits returns 8 KiB request line, 64 KiB header section, 100
// fields, unlimited body, 256 B chunk extension, 16 KiB trailers.
func DefaultLimits() Limits {
	return Limits{
		MaxRequestLine:    8 << 10,
		MaxHeaderBytes:    64 << 10,
		MaxHeaderCount:    100,
		MaxBodyBytes:      0,
		MaxChunkExtension: 256,
		MaxTrailerBytes:   16 << 10,
	}
}

// orDefault fills zero fields (except MaxBodyBytes) from DefaultLimits, so the
// zero RequestParser is usable.
func (l Limits) orDefault() Limits {
	d := DefaultLimits()
	if l.MaxRequestLine <= 0 {
		l.MaxRequestLine = d.MaxRequestLine
	}
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = d.MaxHeaderBytes
	}
	if l.MaxHeaderCount <= 0 {
		l.MaxHeaderCount = d.MaxHeaderCount
	}
	if l.MaxChunkExtension <= 0 {
		l.MaxChunkExtension = d.MaxChunkExtension
	}
	if l.MaxTrailerBytes <= 0 {
		l.MaxTrailerBytes = d.MaxTrailerBytes
	}
	return l
}
