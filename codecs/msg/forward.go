// SPDX-License-Identifier: GPL-3.0-only

package msg

// The forwarding policy: which received fields a proxy passes on and which it
// adds, decided once on the neutral form for every protocol pair. The wire
// encoders (codecs/h1, codecs/h2) only write the result and their own framing.

// ForwardOptions are the proxy's own additions to forwarded heads.
type ForwardOptions struct {
	// ClientIP is appended to X-Forwarded-For; empty leaves the field alone.
	ClientIP []byte
	// Proto ("http" or "https") replaces X-Forwarded-Proto; empty leaves it.
	Proto string
	// Via (e.g. "1.1 expressgateway") is appended to Via; empty leaves it.
	Via string
	// DropExpect removes Expect: the proxy answered 100-continue itself and
	// sends the body at once.
	DropExpect bool
	// SetCookie, when not empty, is added to a response as one Set-Cookie
	// field (session affinity).
	SetCookie string
	// IdentityHeader, when not empty, names (in lower case) a request field that only the
	// proxy sets: every received field of that name is dropped, and
	// Identity, when not empty, is added under it (the verified TLS client
	// identity).
	IdentityHeader string
	Identity       []byte
	// AltSvc, when not empty, is added to a response as Alt-Svc (unless
	// the upstream sent one): the h3 listener an http or https listener
	// announces.
	AltSvc []byte
}

// Scratch is reusable working memory for ForwardRequest and ForwardResponse
// (the forwarded field list and the bytes of merged values); one per owner
// goroutine, so steady-state forwarding does not allocate.
type Scratch struct {
	Fields []Field
	Arena  []byte
}

// hopByHop are the fields RFC 9110 section 7.6.1 says a proxy must not
// forward, the framing fields each encoder re-emits itself, HTTP2-Settings
// (an h2c upgrade is never forwarded) and Host (carried as the authority).
// Trailer is end to end (RFC 9110 section 6.6.2) and is kept: some
// servers only accept the trailers it announces.
var hopByHop = [...]string{
	"connection", "keep-alive", "te", "proxy-connection", "upgrade",
	"transfer-encoding", "content-length", "http2-settings", "host",
}

// IsHopByHop reports whether name is in the fixed hop-by-hop set.
func IsHopByHop(name []byte) bool {
	for _, s := range hopByHop {
		if EqualFold(name, s) {
			return true
		}
	}
	return false
}

// ForwardRequest appends to dst the fields to send upstream for the received
// fields fs: hop-by-hop fields and those Connection names are dropped, in
// received order; then X-Forwarded-For (received values, then ClientIP),
// X-Forwarded-Proto and Via, merged into one field each. Merged values are
// appended to arena. added is the index in out where the proxy's own fields
// start, so an encoder can put its framing between the two groups.
func ForwardRequest(dst []Field, arena []byte, fs []Field, o *ForwardOptions) (out []Field, arenaOut []byte, added int) {
	conn := lookup(fs, "connection") != nil
	for _, f := range fs {
		if dropOnForward(f.Name, fs, conn, o) {
			continue
		}
		dst = append(dst, f)
	}
	added = len(dst)
	if len(o.ClientIP) > 0 {
		dst, arena = appendMerged(dst, arena, fs, "X-Forwarded-For", "x-forwarded-for", o.ClientIP)
	}
	if o.Proto != "" {
		start := len(arena)
		arena = append(arena, o.Proto...)
		dst = append(dst, Field{Name: nameXFP, Value: arena[start:len(arena):len(arena)]})
	}
	if o.Via != "" {
		dst, arena = appendMerged(dst, arena, fs, "Via", "via", o.Via)
	}
	if o.IdentityHeader != "" && len(o.Identity) > 0 {
		start := len(arena)
		arena = append(arena, o.IdentityHeader...)
		name := arena[start:len(arena):len(arena)]
		start = len(arena)
		arena = append(arena, o.Identity...)
		dst = append(dst, Field{Name: name, Value: arena[start:len(arena):len(arena)]})
	}
	return dst, arena, added
}

// ForwardResponse appends to dst the fields to send to the client for the
// received response fields fs: hop-by-hop fields and those Connection names
// are dropped; then Via (merged) and the affinity Set-Cookie, if any. added
// is the index where the proxy's own fields start.
func ForwardResponse(dst []Field, arena []byte, fs []Field, o *ForwardOptions) (out []Field, arenaOut []byte, added int) {
	conn := lookup(fs, "connection") != nil
	for _, f := range fs {
		if dropOnForward(f.Name, fs, conn, o) {
			continue
		}
		dst = append(dst, f)
	}
	added = len(dst)
	if o.Via != "" {
		dst, arena = appendMerged(dst, arena, fs, "Via", "via", o.Via)
	}
	if len(o.AltSvc) > 0 && lookup(fs, "alt-svc") == nil {
		dst = append(dst, Field{Name: nameAltSvc, Value: o.AltSvc})
	}
	if o.SetCookie != "" {
		start := len(arena)
		arena = append(arena, o.SetCookie...)
		dst = append(dst, Field{Name: nameSetCookie, Value: arena[start:len(arena):len(arena)]})
	}
	return dst, arena, added
}

var (
	nameXFF       = []byte("X-Forwarded-For")
	nameXFP       = []byte("X-Forwarded-Proto")
	nameVia       = []byte("Via")
	nameSetCookie = []byte("Set-Cookie")
	nameAltSvc    = []byte("Alt-Svc")
)

func dropOnForward(name []byte, fs []Field, conn bool, o *ForwardOptions) bool {
	if IsHopByHop(name) {
		return true
	}
	switch {
	case len(o.ClientIP) > 0 && EqualFold(name, "x-forwarded-for"),
		o.Proto != "" && EqualFold(name, "x-forwarded-proto"),
		o.Via != "" && EqualFold(name, "via"):
		return true // merged or replaced at the end
	case o.DropExpect && EqualFold(name, "expect"):
		return true
	case o.IdentityHeader != "" && EqualFold(name, o.IdentityHeader):
		return true // only the proxy sets it
	}
	if conn {
		for _, f := range fs {
			if EqualFold(f.Name, "connection") && listHas(f.Value, name) {
				return true
			}
		}
	}
	return false
}

// appendMerged appends one field holding every received value of lname,
// comma-joined, followed by add.
func appendMerged[T string | []byte](dst []Field, arena []byte, fs []Field, name, lname string, add T) ([]Field, []byte) {
	start := len(arena)
	for _, f := range fs {
		if EqualFold(f.Name, lname) && len(f.Value) > 0 {
			arena = append(arena, f.Value...)
			arena = append(arena, ',', ' ')
		}
	}
	arena = append(arena, add...)
	return append(dst, Field{Name: fieldName(name), Value: arena[start:len(arena):len(arena)]}), arena
}

func fieldName(name string) []byte {
	switch name {
	case "X-Forwarded-For":
		return nameXFF
	case "Via":
		return nameVia
	}
	return []byte(name)
}

// ListHas reports whether the comma-separated list v holds tok (ASCII
// case-insensitive).
func ListHas(v []byte, tok string) bool {
	for len(v) > 0 {
		i := 0
		for i < len(v) && v[i] != ',' {
			i++
		}
		if EqualFold(trimOWS(v[:i]), tok) {
			return true
		}
		if i == len(v) {
			break
		}
		v = v[i+1:]
	}
	return false
}

// listHas reports whether the comma-separated list v holds tok (ASCII
// case-insensitive, optional whitespace around elements).
func listHas(v, tok []byte) bool {
	for len(v) > 0 {
		i := 0
		for i < len(v) && v[i] != ',' {
			i++
		}
		e := trimOWS(v[:i])
		if equalFoldBytes(e, tok) {
			return true
		}
		if i == len(v) {
			break
		}
		v = v[i+1:]
	}
	return false
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// FilterTrailers removes, in place, the trailer fields a proxy must not
// forward (RFC 9110 section 6.5.1): framing, routing, authentication,
// request modifiers, response control and representation metadata,
// X-Forwarded-* and Forwarded, Via, and the hop-by-hop set. A client must
// not be able to add Authorization or X-Forwarded-For after the head that
// the gateway checked and rewrote.
func FilterTrailers(fs []Field) []Field {
	keep := fs[:0]
	for _, f := range fs {
		if !forbiddenTrailer(f.Name) {
			keep = append(keep, f)
		}
	}
	return keep
}

var forbiddenTrailers = [...]string{
	// framing and hop-by-hop
	"content-length", "transfer-encoding", "trailer", "connection", "keep-alive",
	"te", "upgrade", "proxy-connection", "http2-settings",
	// routing and forwarding
	"host", "via", "forwarded", "max-forwards",
	// authentication and state
	"authorization", "proxy-authorization", "proxy-authenticate", "www-authenticate",
	"cookie", "set-cookie",
	// request modifiers and response control
	"cache-control", "expect", "pragma", "range", "if-match", "if-none-match",
	"if-modified-since", "if-unmodified-since", "if-range", "age", "expires",
	"date", "location", "retry-after", "vary", "warning",
	// representation metadata
	"content-encoding", "content-type", "content-range",
}

func forbiddenTrailer(name []byte) bool {
	if len(name) > 12 && EqualFold(name[:12], "x-forwarded-") {
		return true
	}
	for _, s := range forbiddenTrailers {
		if EqualFold(name, s) {
			return true
		}
	}
	return false
}
