package h1

import "bytes"

// Chunked decoding states.
const (
	stSize    uint8 = iota // hex digits of a chunk size
	stSizeBWS              // whitespace after the digits; only ";" may follow
	stExt                  // chunk extensions, up to CR
	stSizeLF               // LF ending the chunk-size line
	stData                 // chunk payload
	stDataCR               // CR after the payload
	stDataLF               // LF after the payload
	stTrailer              // trailer section, collected until the blank line
	stDone
)

// BodyDecoder removes the framing of one message body, zero copy. The zero
// value is an empty body (BodyNone) until Reset. It is owned by one
// connection.
type BodyDecoder struct {
	kind      BodyKind
	lim       Limits
	response  bool
	state     uint8
	remaining int64 // bytes left of the body (BodyLength) or the chunk (chunked)
	total     int64 // payload bytes so far
	extTotal  int64 // chunk-extension bytes so far
	digits    int   // hex digits of the current chunk size
	ext       int   // extension bytes on the current chunk-size line
	tbuf      []byte
	trailers  []Header
	err       *Error
}

// Reset prepares d for a request body of the given framing; length is the
// Content-Length for BodyLength. Errors carry request statuses (400, 413,
// 431).
func (d *BodyDecoder) Reset(kind BodyKind, length int64, lim Limits) {
	d.reset(kind, length, lim, false)
}

// ResetResponse is Reset for a response body: every error has Status 502.
func (d *BodyDecoder) ResetResponse(kind BodyKind, length int64, lim Limits) {
	d.reset(kind, length, lim, true)
}

func (d *BodyDecoder) reset(kind BodyKind, length int64, lim Limits, response bool) {
	*d = BodyDecoder{
		kind:      kind,
		lim:       lim.orDefault(),
		response:  response,
		remaining: length,
		tbuf:      d.tbuf[:0],
		trailers:  d.trailers[:0],
	}
	switch {
	case kind == BodyChunked:
		d.remaining = 0
	case kind == BodyNone, kind == BodyLength && length <= 0:
		d.state = stDone
	case kind == BodyLength && lim.MaxBodyBytes > 0 && length > lim.MaxBodyBytes:
		d.err = ErrBodyTooLarge
	}
}

// Done reports whether the body (and its trailers) is complete.
func (d *BodyDecoder) Done() bool { return d.state == stDone && d.err == nil }

// Trailers returns the trailer fields of a completed chunked body. They
// point into d's own buffer and stay valid until the next Reset.
func (d *BodyDecoder) Trailers() []Header { return d.trailers }

func (d *BodyDecoder) fail(e *Error) (int, []byte, bool, error) {
	d.err = e
	if d.response {
		e = forResponse(e)
	}
	return 0, nil, false, e
}

// Decode consumes body framing and payload from in, the unconsumed inbound
// bytes. data is a sub-slice of in holding payload; there is at most one
// data segment per call, and the framing after it is consumed in the same
// call when present. The caller forwards data and discards consumed bytes.
// done turns true once the body and any trailers are complete; bytes after
// that belong to the next message. With BodyUntilClose the body ends only
// when the peer closes. After an error the decoder stays failed and nothing
// of the call is valid.
func (d *BodyDecoder) Decode(in []byte) (consumed int, data []byte, done bool, err error) {
	if d.err != nil {
		return d.fail(d.err)
	}
	switch d.kind {
	case BodyNone:
		return 0, nil, true, nil
	case BodyLength:
		if d.state == stDone {
			return 0, nil, true, nil
		}
		n := int64(len(in))
		if n > d.remaining {
			n = d.remaining
		}
		d.remaining -= n
		d.total += n
		if d.remaining == 0 {
			d.state = stDone
		}
		return int(n), in[:n], d.state == stDone, nil
	case BodyUntilClose:
		d.total += int64(len(in))
		if d.lim.MaxBodyBytes > 0 && d.total > d.lim.MaxBodyBytes {
			return d.fail(ErrBodyTooLarge)
		}
		return len(in), in, false, nil
	}
	return d.decodeChunked(in)
}

func (d *BodyDecoder) decodeChunked(in []byte) (int, []byte, bool, error) {
	var data []byte
	i := 0
	for i < len(in) && d.state != stDone {
		c := in[i]
		switch d.state {
		case stSize:
			if v := unhex(c); v >= 0 {
				d.digits++
				if d.digits > 16 || d.remaining > (1<<59)-1 {
					return d.fail(ErrBadChunkSize)
				}
				d.remaining = d.remaining<<4 | int64(v)
				i++
				continue
			}
			if d.digits == 0 {
				return d.fail(ErrBadChunkSize)
			}
			switch c {
			case '\r':
				d.state = stSizeLF
			case ';':
				d.state = stExt
			case ' ', '\t':
				d.state = stSizeBWS
			default:
				return d.fail(ErrBadChunkSize)
			}
			i++
		case stSizeBWS:
			d.ext++
			d.extTotal++
			switch c {
			case ' ', '\t':
			case ';':
				d.state = stExt
			default:
				return d.fail(ErrBadChunkSize)
			}
			if e := d.countExt(); e != nil {
				return d.fail(e)
			}
			i++
		case stExt:
			// Extensions carry no meaning for us; we bound them and refuse
			// control bytes (a bare CR or LF here is a smuggling vector).
			// Byte by byte, so the verdict does not depend on how the input
			// was split.
			for i < len(in) && in[i] != '\r' {
				if !isValue[in[i]] {
					return d.fail(ErrBadChunkExt)
				}
				d.ext++
				d.extTotal++
				if e := d.countExt(); e != nil {
					return d.fail(e)
				}
				i++
			}
			if i < len(in) {
				d.state = stSizeLF
				i++
			}
		case stSizeLF:
			if c != '\n' {
				return d.fail(ErrBadChunkSize)
			}
			i++
			if d.remaining == 0 {
				d.state = stTrailer
				continue
			}
			if d.lim.MaxBodyBytes > 0 && d.total+d.remaining > d.lim.MaxBodyBytes {
				return d.fail(ErrBodyTooLarge)
			}
			d.state = stData
		case stData:
			if data != nil {
				return i, data, false, nil // one data segment per call
			}
			n := int64(len(in) - i)
			if n > d.remaining {
				n = d.remaining
			}
			data = in[i : i+int(n)]
			d.remaining -= n
			d.total += n
			i += int(n)
			if d.remaining == 0 {
				d.state = stDataCR
			}
		case stDataCR:
			if c != '\r' {
				return d.fail(ErrBadChunkCRLF)
			}
			d.state = stDataLF
			i++
		case stDataLF:
			if c != '\n' {
				return d.fail(ErrBadChunkCRLF)
			}
			d.state = stSize
			d.digits, d.ext = 0, 0
			i++
		case stTrailer:
			n, e := d.collectTrailer(in[i:])
			if e != nil {
				return d.fail(e)
			}
			i += n
		}
	}
	return i, data, d.state == stDone, nil
}

// countExt checks the chunk-extension budget: per line, and over the body no
// more extension bytes than payload bytes plus one line's worth, which stops
// a stream of tiny chunks with large extensions from costing far more work
// than the data it carries.
func (d *BodyDecoder) countExt() *Error {
	if d.ext > d.lim.MaxChunkExtension || d.extTotal > d.total+int64(d.lim.MaxChunkExtension) {
		return ErrChunkExtTooLong
	}
	return nil
}

// collectTrailer copies trailer-section bytes into d.tbuf up to and including
// the blank line, then parses them.
func (d *BodyDecoder) collectTrailer(in []byte) (int, *Error) {
	used := 0
	for used < len(in) {
		j := bytes.IndexByte(in[used:], '\n')
		if j < 0 {
			d.tbuf = append(d.tbuf, in[used:]...)
			used = len(in)
			break
		}
		d.tbuf = append(d.tbuf, in[used:used+j+1]...)
		used += j + 1
		if len(d.tbuf) > d.lim.MaxTrailerBytes {
			return 0, ErrTrailersTooLarge
		}
		end := len(d.tbuf) - 1 // the LF
		if end == 0 || d.tbuf[end-1] != '\r' {
			return 0, ErrBareLF
		}
		start := bytes.LastIndexByte(d.tbuf[:end-1], '\n') + 1
		if end-1 == start { // blank line: the section is complete
			if e := d.parseTrailers(); e != nil {
				return 0, e
			}
			d.state = stDone
			break
		}
	}
	if len(d.tbuf) > d.lim.MaxTrailerBytes {
		return 0, ErrTrailersTooLarge
	}
	return used, nil
}

func (d *BodyDecoder) parseTrailers() *Error {
	var f fields
	hs, e := parseFields(d.tbuf, 0, d.trailers[:0], &f)
	d.trailers = hs
	if e != nil {
		return e
	}
	if len(hs) > d.lim.MaxHeaderCount {
		return ErrTooManyHeaders
	}
	if f.contentLength >= 0 || f.te || f.hostCount > 0 {
		return ErrForbiddenTrailer
	}
	return nil
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}
