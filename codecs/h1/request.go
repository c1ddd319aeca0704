package h1

import "bytes"

// RequestParser parses request heads incrementally. The zero value is ready
// to use with DefaultLimits (zero Limits fields take their defaults, except
// MaxBodyBytes where 0 means unlimited). It is owned by one connection.
type RequestParser struct {
	Limits Limits

	scan headScanner
	buf  []byte   // copy of the current head
	hdrs []Header // backing store for Request.Headers
	f    fields
}

// Reset forgets a partially scanned head. Call it when the bytes the parser
// last saw were discarded without a complete head (for example after an
// error answer on a connection you keep).
func (p *RequestParser) Reset() { p.scan.reset() }

// Parse looks at the whole unconsumed inbound buffer b, which must start
// where the previous complete head (or the connection) ended. When b holds a
// complete head it fills r, whose slices then point into p's own buffer, and
// returns the head length n and done=true; the body, if any, starts at b[n].
// When the head is incomplete it returns (0, false, nil) and remembers how far
// it looked. A head that breaks RFC 9112 framing rules or the Limits gives an
// *Error whose Status is 400, 413, 414, 431, 501 or 505; the connection
// should then be answered and closed.
func (p *RequestParser) Parse(b []byte, r *Request) (n int, done bool, err error) {
	lim := p.Limits.orDefault()
	end, e := p.scan.scan(b, &lim, true)
	if e != nil {
		p.scan.reset()
		return 0, false, e
	}
	if end == 0 {
		return 0, false, nil
	}
	p.scan.reset()
	p.buf = append(p.buf[:0], b[:end]...)
	if e := p.parse(p.buf, r, &lim); e != nil {
		return 0, false, e
	}
	return end, true, nil
}

func (p *RequestParser) parse(head []byte, r *Request, lim *Limits) *Error {
	line, off := firstLine(head)
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 < 0 {
		return ErrBadRequestLine
	}
	method := line[:sp1]
	if !allToken(method) {
		return ErrBadMethod
	}
	rest := line[sp1+1:]
	sp2 := bytes.LastIndexByte(rest, ' ') // so a space inside the target is caught as such
	if sp2 < 0 {
		return ErrBadRequestLine // no version: HTTP/0.9 is not spoken
	}
	target, vers := rest[:sp2], rest[sp2+1:]
	authority, e := checkTarget(method, target)
	if e != nil {
		return e
	}
	v, e := parseVersion(vers)
	if e != nil {
		return e
	}

	f := &p.f
	hs, e := parseFields(head, off, p.hdrs[:0], f)
	p.hdrs = hs[:0]
	if e != nil {
		return e
	}

	switch {
	case f.hostCount > 1:
		return ErrDuplicateHost
	case f.hostCount == 0 && v == Version11:
		return ErrMissingHost
	case f.hostCount == 1 && !validHost(f.host):
		return ErrBadHost
	}
	host := f.host
	if authority != nil {
		host = authority // RFC 9112 section 3.2.2: the target wins over Host
	}

	body, e := requestFraming(f, v, method, lim)
	if e != nil {
		return e
	}

	*r = Request{
		Method:         method,
		Target:         target,
		Host:           host,
		Version:        v,
		Headers:        hs,
		Body:           body,
		ContentLength:  f.contentLength,
		KeepAlive:      !f.connClose && (v == Version11 || f.connKeepAlive),
		ExpectContinue: f.expect100 && v == Version11,
	}
	if v == Version11 && f.connUpgrade && f.upgrade != nil {
		r.Upgrade = f.upgrade
	}
	return nil
}

// requestFraming applies RFC 9112 section 6 to a request, refusing every
// shape where two parsers could disagree on the body length.
func requestFraming(f *fields, v Version, method []byte, lim *Limits) (BodyKind, *Error) {
	body := BodyNone
	switch {
	case f.te:
		switch {
		case f.contentLength >= 0:
			return 0, ErrContentLengthAndTE
		case v == Version10:
			return 0, ErrTEInHTTP10
		case f.teUnknown:
			return 0, ErrUnknownTE
		case f.teChunked > 1:
			return 0, ErrTEChunkedTwice
		case !f.teLastChunked:
			return 0, ErrTENotChunked
		}
		body = BodyChunked
	case f.contentLength >= 0:
		if lim.MaxBodyBytes > 0 && f.contentLength > lim.MaxBodyBytes {
			return 0, ErrBodyTooLarge
		}
		body = BodyLength
	}
	// A body on GET or HEAD has no defined meaning (RFC 9110 section 9.3):
	// an upstream that ignores it would read the body as the next request.
	// TRACE must not carry one at all. Content-Length: 0 is harmless.
	if body == BodyChunked || (body == BodyLength && f.contentLength > 0) {
		switch string(method) {
		case "GET", "HEAD":
			if !lim.AllowGetBody {
				return 0, ErrUnexpectedBody
			}
		case "TRACE":
			return 0, ErrUnexpectedBody
		}
	}
	return body, nil
}

// checkTarget validates the request target for the method (RFC 9112 section
// 3.2) and returns the authority of an absolute-form or CONNECT target.
func checkTarget(method, t []byte) (authority []byte, err *Error) {
	if len(t) == 0 {
		return nil, ErrBadTarget
	}
	for _, c := range t {
		if !isTarget[c] {
			return nil, ErrBadTarget
		}
	}
	isConnect := string(method) == "CONNECT"
	switch {
	case isConnect:
		if !validAuthorityForm(t) {
			return nil, ErrBadTarget
		}
		return t, nil
	case t[0] == '/':
		return nil, nil
	case len(t) == 1 && t[0] == '*':
		if string(method) != "OPTIONS" {
			return nil, ErrBadTarget
		}
		return nil, nil
	}
	a, _, ok := splitAbsolute(t)
	if !ok {
		return nil, ErrBadTarget
	}
	return a, nil
}

// splitAbsolute splits an http or https absolute-form target into its
// authority and the origin-form rest ("" when the path is empty).
func splitAbsolute(t []byte) (authority, rest []byte, ok bool) {
	var n int
	switch {
	case len(t) > 7 && equalFold(t[:7], "http://"):
		n = 7
	case len(t) > 8 && equalFold(t[:8], "https://"):
		n = 8
	default:
		return nil, nil, false
	}
	end := n
	for end < len(t) && t[end] != '/' && t[end] != '?' && t[end] != '#' {
		end++
	}
	authority = t[n:end]
	if len(authority) == 0 || !validHost(authority) {
		return nil, nil, false // userinfo ('@') is refused here too
	}
	return authority, t[end:], true
}

// validHost checks a Host value or authority: uri-host [":" port], without
// userinfo. Empty is valid (RFC 9112 section 3.2).
func validHost(h []byte) bool {
	for _, c := range h {
		if !isHost[c] {
			return false
		}
	}
	return true
}

// validAuthorityForm checks a CONNECT target: host ":" port.
func validAuthorityForm(t []byte) bool {
	i := bytes.LastIndexByte(t, ':')
	if i <= 0 || i == len(t)-1 || len(t)-i-1 > 5 || !validHost(t[:i]) {
		return false
	}
	for _, c := range t[i+1:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
