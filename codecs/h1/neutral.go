// SPDX-License-Identifier: GPL-3.0-only

package h1

import "github.com/expressgateway/expressgateway/codecs/msg"

var (
	schemeHTTP = []byte("http")
	asterisk   = []byte("*")
)

// Neutral fills m, the protocol-neutral head the pipeline reads, from r. The
// target is reduced to origin-form (an absolute-form authority already is
// r.Host) and normalised with o, the authority normalised too; the
// normalised bytes are appended to buf, which is returned. m's slices point
// into r and into buf. A target or host with no single normal form is an
// *msg.Error (400). CONNECT keeps its authority-form target out of Path.
func (r *Request) Neutral(m *msg.Request, buf []byte, o *msg.PathOptions) ([]byte, *msg.Error) {
	*m = msg.Request{
		Method:        r.Method,
		Scheme:        schemeHTTP,
		Fields:        r.Headers,
		ContentLength: r.ContentLength,
	}
	switch r.Body {
	case BodyLength:
		m.Body = msg.BodyLength // Content-Length: 0 included: it is forwarded
	case BodyChunked:
		m.Body = msg.BodyStream
	}
	start := len(buf)
	pathLen := 0
	switch {
	case string(r.Method) == "CONNECT":
	case string(r.Target) == "*":
		buf = append(buf, asterisk...)
		pathLen = 1
	default:
		var err *msg.Error
		buf, pathLen, err = msg.NormalizeTarget(buf, originForm(r.Method, r.Target), o)
		if err != nil {
			return buf[:start], err
		}
	}
	mid := len(buf)
	buf, hostLen, err := msg.NormalizeHost(buf, r.Host)
	if err != nil {
		return buf[:start], err
	}
	m.Path = buf[start:mid:mid]
	m.PathLen = pathLen
	m.Authority = buf[mid:len(buf):len(buf)]
	m.Host = m.Authority[:hostLen]
	return buf, nil
}
