package h1

import "strconv"

// ProxyOptions are the proxy's own additions to forwarded heads.
type ProxyOptions struct {
	// ClientIP is appended to X-Forwarded-For; empty leaves the field alone.
	ClientIP []byte
	// Proto ("http" or "https") replaces X-Forwarded-Proto; empty leaves it.
	Proto string
	// Via (e.g. "1.1 expressgateway") is appended to Via; empty leaves it.
	Via string
	// DropExpect removes Expect: the proxy answered 100-continue itself and
	// sends the body at once.
	DropExpect bool
}

// AppendProxyRequestHead appends the head to send upstream for r: always
// HTTP/1.1 and origin-form (an absolute-form target is reduced to its path
// and its authority becomes Host; CONNECT and "*" targets are kept). Host
// comes first. Hop-by-hop fields are dropped: Connection and the names it
// lists, Keep-Alive, TE, Trailer, Proxy-Connection, Upgrade and
// HTTP2-Settings. Upgrade is never forwarded: the request is served as plain
// HTTP/1.1 (an upgrade to h2c on a pooled connection is a known smuggling
// class, and WebSocket tunnels are not spoken yet).
// Framing is re-emitted canonically: Content-Length, or Transfer-Encoding
// with the codings in lower case, identity and parameters removed, chunked
// last. The upstream connection stays persistent whatever the client asked.
// X-Forwarded-For, X-Forwarded-Proto and Via are merged into one field each
// at the end. o may be nil.
func AppendProxyRequestHead(dst []byte, r *Request, o *ProxyOptions) []byte {
	if o == nil {
		o = &ProxyOptions{}
	}
	dst = append(dst, r.Method...)
	dst = append(dst, ' ')
	dst = appendOriginForm(dst, r.Method, r.Target)
	dst = append(dst, " HTTP/1.1\r\nHost: "...)
	dst = append(dst, r.Host...)
	dst = append(dst, '\r', '\n')
	conn := hasField(r.Headers, "connection")
	for _, h := range r.Headers {
		if dropOnForward(h.Name, r.Headers, conn, o) || equalFold(h.Name, "host") {
			continue
		}
		dst = appendField(dst, h.Name, h.Value)
	}
	switch r.Body {
	case BodyLength:
		dst = append(dst, "Content-Length: "...)
		dst = strconv.AppendInt(dst, r.ContentLength, 10)
		dst = append(dst, '\r', '\n')
	case BodyChunked:
		dst = appendCodings(dst, r.Headers, true)
	}
	dst = appendForwarded(dst, r.Headers, o)
	return append(dst, '\r', '\n')
}

// AppendProxyResponseHead appends the head to send to the client for r. The
// status line is always HTTP/1.1 (RFC 9110 section 2.5), with r's reason or
// the standard one. out is the framing the caller will use towards the
// client: BodyLength sends r.ContentLength, BodyChunked sends
// Transfer-Encoding with r's other codings and chunked last, BodyNone keeps a
// HEAD or 304 Content-Length, BodyUntilClose sends no length and forces
// Connection: close. keepAlive=false sends "Connection: close"; an HTTP/1.0
// client that keeps the connection gets "Connection: keep-alive". A 101
// response keeps its Upgrade field and gets "Connection: upgrade". Hop-by-hop
// fields are dropped as in AppendProxyRequestHead; Via is appended.
func AppendProxyResponseHead(dst []byte, r *Response, o *ProxyOptions, clientVersion Version, out BodyKind, keepAlive bool) []byte {
	if o == nil {
		o = &ProxyOptions{}
	}
	dst = appendStatusLine(dst, r.Status, r.Reason)
	conn := hasField(r.Headers, "connection")
	for _, h := range r.Headers {
		if dropOnForward(h.Name, r.Headers, conn, o) {
			continue
		}
		dst = appendField(dst, h.Name, h.Value)
	}
	switch out {
	case BodyLength:
		dst = append(dst, "Content-Length: "...)
		dst = strconv.AppendInt(dst, r.ContentLength, 10)
		dst = append(dst, '\r', '\n')
	case BodyChunked:
		dst = appendCodings(dst, r.Headers, true)
	case BodyNone:
		if r.ContentLength >= 0 && r.Status >= 200 && r.Status != 204 {
			dst = append(dst, "Content-Length: "...)
			dst = strconv.AppendInt(dst, r.ContentLength, 10)
			dst = append(dst, '\r', '\n')
		}
	case BodyUntilClose:
		keepAlive = false
		if clientVersion == Version11 {
			dst = appendCodings(dst, r.Headers, false)
		}
	}
	if up := r.Header("upgrade"); r.Status == 101 && up != nil {
		dst = append(dst, "Connection: upgrade\r\nUpgrade: "...)
		dst = append(dst, up...)
		dst = append(dst, '\r', '\n')
	} else if !keepAlive {
		dst = append(dst, "Connection: close\r\n"...)
	} else if clientVersion == Version10 {
		dst = append(dst, "Connection: keep-alive\r\n"...)
	}
	if o.Via != "" {
		dst = appendMerged(dst, "Via: ", r.Headers, "via", o.Via, nil)
	}
	return append(dst, '\r', '\n')
}

// hopByHop are the fields RFC 9110 section 7.6.1 says a proxy must not
// forward, plus the framing fields we re-emit ourselves.
var hopByHop = [...]string{
	"connection", "keep-alive", "te", "trailer", "proxy-connection", "upgrade",
	"transfer-encoding", "content-length", "http2-settings",
}

func dropOnForward(name []byte, hs []Header, conn bool, o *ProxyOptions) bool {
	for _, s := range hopByHop {
		if equalFold(name, s) {
			return true
		}
	}
	switch {
	case len(o.ClientIP) > 0 && equalFold(name, "x-forwarded-for"),
		o.Proto != "" && equalFold(name, "x-forwarded-proto"),
		o.Via != "" && equalFold(name, "via"):
		return true // merged or replaced at the end
	case o.DropExpect && equalFold(name, "expect"):
		return true
	}
	if conn {
		for _, h := range hs {
			if equalFold(h.Name, "connection") && listHasBytes(h.Value, name) {
				return true
			}
		}
	}
	return false
}

func hasField(hs []Header, name string) bool {
	for _, h := range hs {
		if equalFold(h.Name, name) {
			return true
		}
	}
	return false
}

func listHasBytes(v, tok []byte) bool {
	for len(v) > 0 {
		var e []byte
		e, v = nextListElem(v)
		if equalFoldBytes(e, tok) {
			return true
		}
	}
	return false
}

// appendCodings appends a canonical Transfer-Encoding field: the received
// codings other than chunked and identity, lower case, without parameters,
// then chunked when withChunked. Without any coding to send it appends
// nothing.
func appendCodings(dst []byte, hs []Header, withChunked bool) []byte {
	start := len(dst)
	dst = append(dst, "Transfer-Encoding: "...)
	n := 0
	for _, h := range hs {
		if !equalFold(h.Name, "transfer-encoding") {
			continue
		}
		for v := h.Value; len(v) > 0; {
			var e []byte
			e, v = nextListElem(v)
			name := codingName(e)
			if len(name) == 0 || equalFold(name, "chunked") || equalFold(name, "identity") {
				continue
			}
			if n > 0 {
				dst = append(dst, ',', ' ')
			}
			for _, c := range name {
				dst = append(dst, lower(c))
			}
			n++
		}
	}
	if withChunked {
		if n > 0 {
			dst = append(dst, ',', ' ')
		}
		dst = append(dst, "chunked"...)
		n++
	}
	if n == 0 {
		return dst[:start]
	}
	return append(dst, '\r', '\n')
}

// appendForwarded appends X-Forwarded-For, X-Forwarded-Proto and Via.
func appendForwarded(dst []byte, hs []Header, o *ProxyOptions) []byte {
	if len(o.ClientIP) > 0 {
		dst = appendMerged(dst, "X-Forwarded-For: ", hs, "x-forwarded-for", "", o.ClientIP)
	}
	if o.Proto != "" {
		dst = append(dst, "X-Forwarded-Proto: "...)
		dst = append(dst, o.Proto...)
		dst = append(dst, '\r', '\n')
	}
	if o.Via != "" {
		dst = appendMerged(dst, "Via: ", hs, "via", o.Via, nil)
	}
	return dst
}

// appendMerged appends one field holding every received value of name,
// comma-joined, followed by add (a string or bytes, whichever is set).
func appendMerged(dst []byte, prefix string, hs []Header, name, add string, addb []byte) []byte {
	dst = append(dst, prefix...)
	for _, h := range hs {
		if equalFold(h.Name, name) && len(h.Value) > 0 {
			dst = append(dst, h.Value...)
			dst = append(dst, ',', ' ')
		}
	}
	dst = append(dst, add...)
	dst = append(dst, addb...)
	return append(dst, '\r', '\n')
}

// appendOriginForm appends the target as the upstream should see it.
func appendOriginForm(dst, method, target []byte) []byte {
	if string(method) == "CONNECT" || len(target) == 0 || target[0] == '/' || string(target) == "*" {
		return append(dst, target...)
	}
	_, rest, ok := splitAbsolute(target)
	if !ok {
		return append(dst, target...)
	}
	if len(rest) == 0 || rest[0] != '/' {
		dst = append(dst, '/')
	}
	return append(dst, rest...)
}

// FilterTrailers removes, in place, the trailer fields a proxy must not
// forward (RFC 9110 section 6.5.1): framing, routing, authentication,
// request modifiers, response control and representation metadata,
// X-Forwarded-* and Forwarded, Via, and the hop-by-hop set. A client must
// not be able to add Authorization or X-Forwarded-For after the head that
// the gateway checked and rewrote.
func FilterTrailers(hs []Header) []Header {
	keep := hs[:0]
	for _, h := range hs {
		if !forbiddenTrailer(h.Name) {
			keep = append(keep, h)
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
	if len(name) > 12 && equalFold(name[:12], "x-forwarded-") {
		return true
	}
	for _, s := range forbiddenTrailers {
		if equalFold(name, s) {
			return true
		}
	}
	return false
}
