package h1

// ResponseParser parses response heads from an upstream incrementally. The
// zero value is ready to use (see RequestParser for Limits). Every error it
// returns has Status 502.
type ResponseParser struct {
	Limits Limits

	scan headScanner
	buf  []byte
	hdrs []Header
	f    fields
}

// Reset forgets a partially scanned head.
func (p *ResponseParser) Reset() { p.scan.reset() }

// Parse works like RequestParser.Parse on a response. method is the method of
// the request this response answers: a HEAD request, like a 1xx, 204 or 304
// status, means no body, and a 2xx answer to CONNECT starts a tunnel (no
// body). Without Content-Length or chunked framing the body runs until the
// upstream closes (BodyUntilClose, KeepAlive false). For a 1xx other than 101
// the caller parses again for the final response.
func (p *ResponseParser) Parse(b []byte, method []byte, r *Response) (n int, done bool, err error) {
	lim := p.Limits.orDefault()
	end, e := p.scan.scan(b, &lim, false)
	if e != nil {
		p.scan.reset()
		switch e {
		case ErrRequestLineTooLong:
			e = ErrStatusLineTooLong
		case ErrBadRequestLine:
			e = ErrBadStatusLine
		}
		return 0, false, forResponse(e)
	}
	if end == 0 {
		return 0, false, nil
	}
	p.scan.reset()
	p.buf = append(p.buf[:0], b[:end]...)
	if e := p.parse(p.buf, method, r, &lim); e != nil {
		return 0, false, forResponse(e)
	}
	return end, true, nil
}

func (p *ResponseParser) parse(head []byte, method []byte, r *Response, lim *Limits) *Error {
	line, off := firstLine(head)
	// status-line = HTTP-version SP 3DIGIT SP [ reason-phrase ]; a missing
	// "SP reason" after the code is tolerated, as most clients do.
	if len(line) < 12 || line[8] != ' ' {
		return ErrBadStatusLine
	}
	v, e := parseVersion(line[:8])
	if e != nil {
		return e
	}
	status := 0
	for _, c := range line[9:12] {
		if c < '0' || c > '9' {
			return ErrBadStatusLine
		}
		status = status*10 + int(c-'0')
	}
	if status < 100 || status > 599 {
		return ErrBadStatus
	}
	var reason []byte
	if len(line) > 12 {
		if line[12] != ' ' {
			return ErrBadStatusLine
		}
		reason = line[13:]
		for _, c := range reason {
			if !isValue[c] {
				return ErrBadStatusLine
			}
		}
	}

	f := &p.f
	hs, e := parseFields(head, off, p.hdrs[:0], f)
	p.hdrs = hs[:0]
	if e != nil {
		return e
	}
	body, e := responseFraming(f, v, status, method, lim)
	if e != nil {
		return e
	}
	*r = Response{
		Version:       v,
		Status:        status,
		Reason:        reason,
		Headers:       hs,
		Body:          body,
		ContentLength: f.contentLength,
		KeepAlive:     body != BodyUntilClose && !f.connClose && (v == Version11 || f.connKeepAlive),
	}
	return nil
}

// responseFraming applies RFC 9112 section 6.3 to a response. Conflicting or
// malformed framing is refused even where the status means no body, since it
// shows an upstream we cannot trust to delimit its messages.
func responseFraming(f *fields, v Version, status int, method []byte, lim *Limits) (BodyKind, *Error) {
	if f.te {
		switch {
		case f.contentLength >= 0:
			return 0, ErrContentLengthAndTE
		case v == Version10:
			return 0, ErrTEInHTTP10
		case f.teChunked > 1:
			return 0, ErrTEChunkedTwice
		case f.teChunked == 1 && !f.teLastChunked:
			return 0, ErrTENotChunked
		}
	}
	if status < 200 || status == 204 || status == 304 || string(method) == "HEAD" ||
		(string(method) == "CONNECT" && status < 300) {
		return BodyNone, nil
	}
	switch {
	case f.te && f.teLastChunked:
		return BodyChunked, nil
	case f.te:
		return BodyUntilClose, nil // codings without chunked: read until close
	case f.contentLength >= 0:
		if lim.MaxBodyBytes > 0 && f.contentLength > lim.MaxBodyBytes {
			return 0, ErrBodyTooLarge
		}
		return BodyLength, nil
	}
	return BodyUntilClose, nil
}
