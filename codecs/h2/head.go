// SPDX-License-Identifier: GPL-3.0-only

package h2

import "github.com/expressgateway/expressgateway/codecs/msg"

// Field is one regular header field, the neutral msg.Field, so that heads
// cross into the pipeline without copying. Name is lower case on the wire.
type Field = msg.Field

// HeadKind says what a decoded header block is.
type HeadKind uint8

// Kinds of header blocks.
const (
	KindRequest       HeadKind = iota + 1 // a request head (server role)
	KindResponse                          // a final response head (client role)
	KindInformational                     // a 1xx response head, more heads follow (client role)
	KindTrailers                          // trailers; they always end the stream
)

// Head is a validated message head (RFC 9113 sections 8.2, 8.3). Requests
// carry Method, Scheme, Authority, Path and Protocol (extended CONNECT,
// RFC 8441); responses carry Status; trailers only Fields. Absent
// pseudo-headers are nil.
//
// A Head delivered to Handler.OnHeaders points into the Conn's buffers and
// is valid only during the callback: copy what you keep. A Head given to a
// Write method is read during the call only.
type Head struct {
	Kind                                      HeadKind
	Method, Scheme, Authority, Path, Protocol []byte
	Status                                    int
	// ContentLength is the value of the content-length field, or -1 without
	// one. It is filled on receipt and ignored on send (send the field).
	ContentLength int64
	Fields        []Field
}

// Get returns the value of the first regular field named name (lower case),
// or nil.
func (h *Head) Get(name string) []byte {
	for i := range h.Fields {
		if string(h.Fields[i].Name) == name {
			return h.Fields[i].Value
		}
	}
	return nil
}

// IsConnect reports whether the head is a CONNECT request, classic or
// extended (with :protocol).
func (h *Head) IsConnect() bool { return string(h.Method) == "CONNECT" }

// HostConflict reports whether a request carries both :authority and a host
// field with different values (ASCII case ignored). RFC 9113 section 8.3.1
// makes such a request malformed for a proxy that routes on either; the
// translation layer decides, since it owns routing.
func (h *Head) HostConflict() bool {
	host := h.Get("host")
	if host == nil || h.Authority == nil {
		return false
	}
	if len(host) != len(h.Authority) {
		return true
	}
	for i := range host {
		if lower(host[i]) != lower(h.Authority[i]) {
			return true
		}
	}
	return false
}

// blockMode is what the Conn expects a header block to be.
type blockMode uint8

const (
	modeDiscard  blockMode = iota // decode for HPACK state only
	modeRequest                   // first block of a peer-initiated stream
	modeResponse                  // 1xx or final response on our stream
	modeTrailers                  // a block after the head
)

// pseudo-header slots.
const (
	psMethod = iota
	psScheme
	psAuthority
	psPath
	psProtocol
	psStatus
	numPseudo
)

// span locates bytes in headBuilder.buf.
type span struct{ off, n uint32 }

type fieldSpan struct{ name, value span }

// headBuilder collects decoded fields into one reusable buffer and
// validates them as they arrive; the first violation is kept and the rest
// of the block is still decoded (HPACK state must stay in sync).
type headBuilder struct {
	mode          blockMode
	allowProtocol bool // we advertised SETTINGS_ENABLE_CONNECT_PROTOCOL

	buf    []byte
	fields []fieldSpan
	pseudo [numPseudo]span
	seen   uint8 // bit per pseudo slot
	err    *StreamError

	sawRegular    bool
	contentLength int64

	out []Field // backing array for Head.Fields
}

func (b *headBuilder) reset(mode blockMode, allowProtocol bool) {
	b.mode, b.allowProtocol = mode, allowProtocol
	b.buf = b.buf[:0]
	b.fields = b.fields[:0]
	b.seen = 0
	b.err = nil
	b.sawRegular = false
	b.contentLength = -1
}

func (b *headBuilder) fail(e *StreamError) {
	if b.err == nil {
		b.err = e
	}
}

func (b *headBuilder) store(s string) span {
	off := len(b.buf)
	b.buf = append(b.buf, s...)
	return span{uint32(off), uint32(len(s))}
}

func (b *headBuilder) bytes(s span) []byte {
	return b.buf[s.off : s.off+s.n : s.off+s.n]
}

// add takes one decoded field.
func (b *headBuilder) add(name, value string) {
	if b.err != nil || b.mode == modeDiscard {
		return
	}
	if e := checkValue(value); e != nil {
		b.fail(e)
		return
	}
	if len(name) == 0 {
		b.fail(ErrEmptyHeaderName)
		return
	}
	if name[0] == ':' {
		b.addPseudo(name, value)
		return
	}
	b.sawRegular = true
	if e := checkName(name); e != nil {
		b.fail(e)
		return
	}
	switch name {
	case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
		b.fail(ErrConnectionHeader)
		return
	case "te":
		if !equalFoldString(value, "trailers") {
			b.fail(ErrTENotTrailers)
			return
		}
	case "content-length":
		if b.contentLength >= 0 {
			b.fail(ErrMultipleContentLength)
			return
		}
		n, ok := parseDecimal(value)
		if !ok {
			b.fail(ErrBadContentLength)
			return
		}
		b.contentLength = n
	}
	b.fields = append(b.fields, fieldSpan{b.store(name), b.store(value)})
}

func (b *headBuilder) addPseudo(name, value string) {
	if b.sawRegular {
		b.fail(ErrPseudoAfterRegular)
		return
	}
	slot := -1
	switch b.mode {
	case modeTrailers:
		b.fail(ErrPseudoInTrailers)
		return
	case modeRequest:
		switch name {
		case ":method":
			slot = psMethod
		case ":scheme":
			slot = psScheme
		case ":authority":
			slot = psAuthority
		case ":path":
			slot = psPath
		case ":protocol":
			slot = psProtocol
		}
	case modeResponse:
		if name == ":status" {
			slot = psStatus
		}
	}
	if slot < 0 {
		b.fail(ErrUnknownPseudo)
		return
	}
	if b.seen&(1<<slot) != 0 {
		b.fail(ErrDuplicatePseudo)
		return
	}
	b.seen |= 1 << slot
	b.pseudo[slot] = b.store(value)
}

// finish checks the block as a whole and fills h. endStream is the END_STREAM
// flag of the HEADERS frame.
func (b *headBuilder) finish(h *Head, endStream bool) *StreamError {
	if b.err != nil {
		return b.err
	}
	*h = Head{ContentLength: b.contentLength, Fields: b.out[:0]}
	for _, f := range b.fields {
		h.Fields = append(h.Fields, Field{Name: b.bytes(f.name), Value: b.bytes(f.value)})
	}
	b.out = h.Fields[:0]
	get := func(slot int) []byte {
		if b.seen&(1<<slot) == 0 {
			return nil
		}
		return b.bytes(b.pseudo[slot])
	}
	switch b.mode {
	case modeTrailers:
		h.Kind = KindTrailers
		if !endStream {
			return ErrTrailersNoEndStream
		}
		return nil
	case modeResponse:
		status := get(psStatus)
		if status == nil {
			return ErrMissingStatus
		}
		code, ok := parseStatus(status)
		if !ok {
			return ErrBadStatus
		}
		h.Status = code
		h.Kind = KindResponse
		if code < 200 {
			h.Kind = KindInformational
			if endStream {
				return ErrInformationalEndStream
			}
		}
		return nil
	}
	h.Kind = KindRequest
	h.Method, h.Scheme, h.Authority, h.Path, h.Protocol =
		get(psMethod), get(psScheme), get(psAuthority), get(psPath), get(psProtocol)
	return checkRequestPseudo(h, b.allowProtocol)
}

// checkRequestPseudo applies RFC 9113 section 8.3.1 and RFC 8441 section 4.
func checkRequestPseudo(h *Head, allowProtocol bool) *StreamError {
	if h.Method == nil {
		return ErrMissingMethod
	}
	if !allTokenBytes(h.Method) {
		return ErrBadMethod
	}
	connect := h.IsConnect()
	if h.Protocol != nil {
		if !allowProtocol {
			return ErrProtocolNotEnabled
		}
		if !connect {
			return ErrBadConnect
		}
	}
	if h.Authority != nil && !validAuthority(h.Authority) {
		return ErrBadAuthority
	}
	if connect && h.Protocol == nil {
		// Classic CONNECT: :authority only (host:port); no :scheme, :path.
		if h.Scheme != nil || h.Path != nil {
			return ErrBadConnect
		}
		if len(h.Authority) == 0 {
			return ErrMissingAuthority
		}
		return nil
	}
	if h.Scheme == nil {
		return ErrMissingScheme
	}
	if !validScheme(h.Scheme) {
		return ErrBadScheme
	}
	if h.Path == nil {
		return ErrMissingPath
	}
	if len(h.Path) == 0 {
		return ErrBadPath
	}
	if isHTTPScheme(h.Scheme) {
		// origin-form, or asterisk-form for OPTIONS.
		if h.Path[0] != '/' && (string(h.Path) != "*" || string(h.Method) != "OPTIONS") {
			return ErrBadPath
		}
	}
	for _, c := range h.Path {
		if c <= 0x20 || c == 0x7f {
			return ErrBadPath
		}
	}
	return nil
}

// checkValue refuses NUL, CR, LF (RFC 9113 section 8.2.1), the other
// controls and DEL (as codecs/h1 does, so nothing reaches an HTTP/1
// upstream that HTTP/1 would refuse), and leading or trailing SP/HTAB.
func checkValue(v string) *StreamError {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return ErrBadHeaderValue
		}
	}
	if len(v) > 0 && (isOWS(v[0]) || isOWS(v[len(v)-1])) {
		return ErrHeaderValueSpace
	}
	return nil
}

// checkName accepts RFC 9110 tokens in lower case.
func checkName(n string) *StreamError {
	for i := 0; i < len(n); i++ {
		c := n[i]
		if c >= 'A' && c <= 'Z' {
			return ErrUppercaseHeader
		}
		if !isToken[c] {
			return ErrBadHeaderName
		}
	}
	return nil
}

func parseStatus(b []byte) (int, bool) {
	if len(b) != 3 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	// 101 has no meaning in HTTP/2 (RFC 9113 section 8.6); status codes are
	// 100..599 (RFC 9110 section 15).
	if n < 100 || n > 599 || n == 101 {
		return 0, false
	}
	return n, true
}

func validScheme(b []byte) bool {
	if len(b) == 0 || !isAlpha(b[0]) {
		return false
	}
	for _, c := range b[1:] {
		if !isAlpha(c) && !(c >= '0' && c <= '9') && c != '+' && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

func isHTTPScheme(b []byte) bool {
	return equalFoldBytes(b, "http") || equalFoldBytes(b, "https")
}

// validAuthority accepts uri-host[:port] characters and refuses userinfo
// and pct-encoding, as codecs/h1 does for Host.
func validAuthority(b []byte) bool {
	for _, c := range b {
		if !isHost[c] {
			return false
		}
	}
	return true
}

// Byte classes from RFC 9110 and RFC 3986.
var (
	isToken [256]bool // tchar
	isHost  [256]bool // unreserved, sub-delims, ':', '[', ']'
)

func init() {
	for c := 0; c < 256; c++ {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
			isToken[c], isHost[c] = true, true
		}
		switch c {
		case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
			isToken[c] = true
		}
		switch c {
		case '-', '.', '_', '~', '!', '$', '&', '\'', '(', ')', '*', '+', ',', ';', '=', ':', '[', ']':
			isHost[c] = true
		}
	}
}

func isAlpha(c byte) bool { return (c|0x20) >= 'a' && (c|0x20) <= 'z' }

func isOWS(c byte) bool { return c == ' ' || c == '\t' }

func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + ('a' - 'A')
	}
	return c
}

func allTokenBytes(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !isToken[c] {
			return false
		}
	}
	return true
}

func equalFoldString(s, t string) bool {
	if len(s) != len(t) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if lower(s[i]) != lower(t[i]) {
			return false
		}
	}
	return true
}

func equalFoldBytes(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		if lower(b[i]) != lower(s[i]) {
			return false
		}
	}
	return true
}

// parseDecimal parses 1*DIGIT of at most 18 digits (so it fits int64).
func parseDecimal(s string) (int64, bool) {
	if len(s) == 0 || len(s) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}
