// SPDX-License-Identifier: GPL-3.0-only

package h3

import (
	"errors"
)

// QPACK field-section decoding (RFC 9204 section 4.5) without a dynamic
// table: the gateway advertises SETTINGS_QPACK_MAX_TABLE_CAPACITY 0, so a
// peer may use only the static table and literals, and any reference to
// the dynamic table is a decompression error. Names and values are
// appended straight to the caller's arena (Huffman decoded there), so a
// section decodes without allocating; quic-go's qpack decoder made a Go
// string per literal (bench h3 profile: 3.4% of the gateway's CPU, the
// largest share of it bytes.Buffer.String).

// errQPACK is any malformed field section or a dynamic-table reference.
var errQPACK = errors.New("qpack: bad field section")

// fieldLines walks the field lines of one section.
type fieldLines struct{ p []byte }

// startFieldLines reads the section's prefix: the Required Insert Count
// must be 0 (no dynamic table), and so must the Base.
func startFieldLines(block []byte) (fieldLines, error) {
	ric, p, ok := prefixInt(block, 8)
	if !ok || ric != 0 {
		return fieldLines{}, errQPACK
	}
	base, p, ok := prefixInt(p, 7)
	if !ok || base != 0 {
		return fieldLines{}, errQPACK
	}
	return fieldLines{p: p}, nil
}

// more reports whether a field line is left.
func (r *fieldLines) more() bool { return len(r.p) > 0 }

// next decodes one field line, appending its name and then its value to
// a (the arena) and returning their spans there.
func (r *fieldLines) next(a *appendWriter) (name, value span, err error) {
	p := r.p
	b := p[0]
	switch {
	case b&0xc0 == 0xc0: // 11xxxxxx: indexed field line, static table
		i, rest, ok := prefixInt(p, 6)
		if !ok || i >= uint64(len(staticTable)) {
			return span{}, span{}, errQPACK
		}
		e := &staticTable[i]
		name = a.appendString(e.name)
		value = a.appendString(e.value)
		r.p = rest
		return name, value, nil
	case b&0xd0 == 0x50: // 01N1xxxx: literal value, static name reference
		i, rest, ok := prefixInt(p, 4)
		if !ok || i >= uint64(len(staticTable)) {
			return span{}, span{}, errQPACK
		}
		name = a.appendString(staticTable[i].name)
		value, rest, err = a.literal(rest, 7)
		r.p = rest
		return name, value, err
	case b&0xe0 == 0x20: // 001NHxxx: literal name and value
		name, rest, err := a.literal(p, 3)
		if err != nil {
			return span{}, span{}, err
		}
		value, rest, err = a.literal(rest, 7)
		r.p = rest
		return name, value, err
	}
	// 10xxxxxx, 01N0xxxx: the dynamic table; 0001xxxx, 0000xxxx: post-base
	// references into it.
	return span{}, span{}, errQPACK
}

// literal decodes a string literal whose length has an n-bit prefix and
// whose Huffman flag is the bit above it, appending it to a.
func (a *appendWriter) literal(p []byte, n uint8) (span, []byte, error) {
	if len(p) == 0 {
		return span{}, nil, errQPACK
	}
	huff := p[0]&(1<<n) != 0
	l, p, ok := prefixInt(p, n)
	if !ok || l > uint64(len(p)) {
		return span{}, nil, errQPACK
	}
	s := p[:l]
	start := len(a.b)
	if !huff {
		a.b = append(a.b, s...)
	} else if b, err := appendHuffman(a.b, s); err != nil {
		a.b = a.b[:start]
		return span{}, nil, errQPACK
	} else {
		a.b = b
	}
	return span{start, len(a.b)}, p[l:], nil
}

func (a *appendWriter) appendString(s string) span {
	start := len(a.b)
	a.b = append(a.b, s...)
	return span{start, len(a.b)}
}

// prefixInt reads an integer with an n-bit prefix (RFC 9204 section
// 4.1.1, as HPACK's). Values past 2^32 are refused: no length or index
// of a section the gateway accepts comes near that.
func prefixInt(p []byte, n uint8) (uint64, []byte, bool) {
	if len(p) == 0 {
		return 0, p, false
	}
	mask := uint64(1)<<n - 1
	v := uint64(p[0]) & mask
	p = p[1:]
	if v < mask {
		return v, p, true
	}
	for shift := uint(0); len(p) > 0; shift += 7 {
		c := p[0]
		p = p[1:]
		v += uint64(c&0x7f) << shift
		if v > 1<<32 {
			return 0, p, false
		}
		if c&0x80 == 0 {
			return v, p, true
		}
	}
	return 0, p, false
}

// staticTable is the QPACK static table, RFC 9204 Appendix A.
var staticTable = [...]struct{ name, value string }{
	{":authority", ""},
	{":path", "/"},
	{"age", "0"},
	{"content-disposition", ""},
	{"content-length", "0"},
	{"cookie", ""},
	{"date", ""},
	{"etag", ""},
	{"if-modified-since", ""},
	{"if-none-match", ""},
	{"last-modified", ""},
	{"link", ""},
	{"location", ""},
	{"referer", ""},
	{"set-cookie", ""},
	{":method", "CONNECT"},
	{":method", "DELETE"},
	{":method", "GET"},
	{":method", "HEAD"},
	{":method", "OPTIONS"},
	{":method", "POST"},
	{":method", "PUT"},
	{":scheme", "http"},
	{":scheme", "https"},
	{":status", "103"},
	{":status", "200"},
	{":status", "304"},
	{":status", "404"},
	{":status", "503"},
	{"accept", "*/*"},
	{"accept", "application/dns-message"},
	{"accept-encoding", "gzip, deflate, br"},
	{"accept-ranges", "bytes"},
	{"access-control-allow-headers", "cache-control"},
	{"access-control-allow-headers", "content-type"},
	{"access-control-allow-origin", "*"},
	{"cache-control", "max-age=0"},
	{"cache-control", "max-age=2592000"},
	{"cache-control", "max-age=604800"},
	{"cache-control", "no-cache"},
	{"cache-control", "no-store"},
	{"cache-control", "public, max-age=31536000"},
	{"content-encoding", "br"},
	{"content-encoding", "gzip"},
	{"content-type", "application/dns-message"},
	{"content-type", "application/javascript"},
	{"content-type", "application/json"},
	{"content-type", "application/x-www-form-urlencoded"},
	{"content-type", "image/gif"},
	{"content-type", "image/jpeg"},
	{"content-type", "image/png"},
	{"content-type", "text/css"},
	{"content-type", "text/html; charset=utf-8"},
	{"content-type", "text/plain"},
	{"content-type", "text/plain;charset=utf-8"},
	{"range", "bytes=0-"},
	{"strict-transport-security", "max-age=31536000"},
	{"strict-transport-security", "max-age=31536000; includesubdomains"},
	{"strict-transport-security", "max-age=31536000; includesubdomains; preload"},
	{"vary", "accept-encoding"},
	{"vary", "origin"},
	{"x-content-type-options", "nosniff"},
	{"x-xss-protection", "1; mode=block"},
	{":status", "100"},
	{":status", "204"},
	{":status", "206"},
	{":status", "302"},
	{":status", "400"},
	{":status", "403"},
	{":status", "421"},
	{":status", "425"},
	{":status", "500"},
	{"accept-language", ""},
	{"access-control-allow-credentials", "FALSE"},
	{"access-control-allow-credentials", "TRUE"},
	{"access-control-allow-headers", "*"},
	{"access-control-allow-methods", "get"},
	{"access-control-allow-methods", "get, post, options"},
	{"access-control-allow-methods", "options"},
	{"access-control-expose-headers", "content-length"},
	{"access-control-request-headers", "content-type"},
	{"access-control-request-method", "get"},
	{"access-control-request-method", "post"},
	{"alt-svc", "clear"},
	{"authorization", ""},
	{"content-security-policy", "script-src 'none'; object-src 'none'; base-uri 'none'"},
	{"early-data", "1"},
	{"expect-ct", ""},
	{"forwarded", ""},
	{"if-range", ""},
	{"origin", ""},
	{"purpose", "prefetch"},
	{"server", ""},
	{"timing-allow-origin", "*"},
	{"upgrade-insecure-requests", "1"},
	{"user-agent", ""},
	{"x-forwarded-for", ""},
	{"x-frame-options", "deny"},
	{"x-frame-options", "sameorigin"},
}
