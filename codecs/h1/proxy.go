package h1

import (
	"strconv"

	"github.com/expressgateway/expressgateway/codecs/msg"
)

// ProxyOptions are the proxy's own additions to forwarded heads; the policy
// itself lives in codecs/msg, shared by every protocol.
type ProxyOptions = msg.ForwardOptions

var noOptions ProxyOptions

// AppendProxyRequestHead appends the head to send upstream for r: always
// HTTP/1.1 and origin-form (an absolute-form target is reduced to its path
// and its authority becomes Host; CONNECT and "*" targets are kept). Host
// comes first. The fields are msg.ForwardRequest's: hop-by-hop fields
// (Connection and the names it lists, Keep-Alive, TE, Trailer,
// Proxy-Connection, Upgrade, HTTP2-Settings) are dropped. Upgrade is never
// forwarded: the request is served as plain HTTP/1.1 (an upgrade to h2c on a
// pooled connection is a known smuggling class). Framing is re-emitted
// canonically: Content-Length, or Transfer-Encoding with the codings in lower
// case, identity and parameters removed, chunked last. The upstream
// connection stays persistent whatever the client asked. X-Forwarded-For,
// X-Forwarded-Proto and Via are merged into one field each at the end. o may
// be nil.
func AppendProxyRequestHead(dst []byte, r *Request, o *ProxyOptions) []byte {
	return AppendProxyRequestHeadWith(dst, r, o, new(msg.Scratch))
}

// AppendProxyRequestHeadWith is AppendProxyRequestHead with the caller's
// reusable scratch: no allocation in steady state.
func AppendProxyRequestHeadWith(dst []byte, r *Request, o *ProxyOptions, s *msg.Scratch) []byte {
	if o == nil {
		o = &noOptions
	}
	fs, arena, added := msg.ForwardRequest(s.Fields[:0], s.Arena[:0], r.Headers, o)
	s.Fields, s.Arena = fs[:0], arena[:0]
	return AppendRequestHead(dst, r.Method, originForm(r.Method, r.Target), r.Host, fs, added, r.Body, r.ContentLength, r.Headers)
}

// AppendRequestHead writes an HTTP/1.1 request head: the request line, Host,
// fs[:added] (the forwarded fields), the framing for body (codings carries
// the received Transfer-Encoding fields, or nil), then fs[added:] (the
// proxy's own fields).
func AppendRequestHead(dst, method, target, authority []byte, fs []msg.Field, added int, body BodyKind, contentLength int64, codings []Header) []byte {
	dst = append(dst, method...)
	dst = append(dst, ' ')
	dst = append(dst, target...)
	dst = append(dst, " HTTP/1.1\r\nHost: "...)
	dst = append(dst, authority...)
	dst = append(dst, '\r', '\n')
	for _, f := range fs[:added] {
		dst = appendField(dst, f.Name, f.Value)
	}
	switch body {
	case BodyLength:
		dst = append(dst, "Content-Length: "...)
		dst = strconv.AppendInt(dst, contentLength, 10)
		dst = append(dst, '\r', '\n')
	case BodyChunked:
		dst = appendCodings(dst, codings, true)
	}
	for _, f := range fs[added:] {
		dst = appendField(dst, f.Name, f.Value)
	}
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
// response keeps its Upgrade field and gets "Connection: upgrade". The fields
// are msg.ForwardResponse's (hop-by-hop dropped, Via appended, o.SetCookie
// added).
func AppendProxyResponseHead(dst []byte, r *Response, o *ProxyOptions, clientVersion Version, out BodyKind, keepAlive bool) []byte {
	return AppendProxyResponseHeadWith(dst, r, o, clientVersion, out, keepAlive, new(msg.Scratch))
}

// AppendProxyResponseHeadWith is AppendProxyResponseHead with the caller's
// reusable scratch.
func AppendProxyResponseHeadWith(dst []byte, r *Response, o *ProxyOptions, clientVersion Version, out BodyKind, keepAlive bool, s *msg.Scratch) []byte {
	if o == nil {
		o = &noOptions
	}
	fs, arena, added := msg.ForwardResponse(s.Fields[:0], s.Arena[:0], r.Headers, o)
	s.Fields, s.Arena = fs[:0], arena[:0]
	var upgrade []byte
	if r.Status == 101 {
		upgrade = r.Header("upgrade")
	}
	return AppendResponseHead(dst, r.Status, r.Reason, fs, added, clientVersion, out, r.ContentLength, keepAlive, r.Headers, upgrade)
}

// AppendResponseHead writes an HTTP/1.1 response head: the status line,
// fs[:added], the framing for out (see AppendProxyResponseHead), the
// Connection field, then fs[added:]. upgrade, when set on a 101, is sent
// with "Connection: upgrade".
func AppendResponseHead(dst []byte, status int, reason []byte, fs []msg.Field, added int, clientVersion Version, out BodyKind, contentLength int64, keepAlive bool, codings []Header, upgrade []byte) []byte {
	dst = appendStatusLine(dst, status, reason)
	for _, f := range fs[:added] {
		dst = appendField(dst, f.Name, f.Value)
	}
	switch out {
	case BodyLength:
		dst = append(dst, "Content-Length: "...)
		dst = strconv.AppendInt(dst, contentLength, 10)
		dst = append(dst, '\r', '\n')
	case BodyChunked:
		dst = appendCodings(dst, codings, true)
	case BodyNone:
		if contentLength >= 0 && status >= 200 && status != 204 {
			dst = append(dst, "Content-Length: "...)
			dst = strconv.AppendInt(dst, contentLength, 10)
			dst = append(dst, '\r', '\n')
		}
	case BodyUntilClose:
		keepAlive = false
		if clientVersion == Version11 {
			dst = appendCodings(dst, codings, false)
		}
	}
	if status == 101 && upgrade != nil {
		dst = append(dst, "Connection: upgrade\r\nUpgrade: "...)
		dst = append(dst, upgrade...)
		dst = append(dst, '\r', '\n')
	} else if !keepAlive {
		dst = append(dst, "Connection: close\r\n"...)
	} else if clientVersion == Version10 {
		dst = append(dst, "Connection: keep-alive\r\n"...)
	}
	for _, f := range fs[added:] {
		dst = appendField(dst, f.Name, f.Value)
	}
	return append(dst, '\r', '\n')
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

// originForm is the target as the upstream should see it, without copying
// when it already is origin-form; an absolute-form target is sliced to its
// path ("/" when empty).
func originForm(method, target []byte) []byte {
	if string(method) == "CONNECT" || len(target) == 0 || target[0] == '/' || string(target) == "*" {
		return target
	}
	_, rest, ok := splitAbsolute(target)
	if !ok {
		return target
	}
	if len(rest) == 0 || rest[0] != '/' {
		return slashRoot(rest)
	}
	return rest
}

var root = []byte("/")

// slashRoot handles an absolute-form target with an empty path ("http://h"
// or "http://h?q"): the path becomes "/". The query case allocates; it is
// rare, and the engine forwards its own normalised target instead.
func slashRoot(rest []byte) []byte {
	if len(rest) == 0 {
		return root
	}
	return append([]byte("/"), rest...)
}

// FilterTrailers is msg.FilterTrailers: the trailer fields a proxy must not
// forward are removed in place.
func FilterTrailers(hs []Header) []Header { return msg.FilterTrailers(hs) }
