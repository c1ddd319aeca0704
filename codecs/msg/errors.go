// SPDX-License-Identifier: GPL-3.0-only

package msg

// Error is a request whose path or host has no single normal form. Status is
// the response status the client deserves, Token a stable short name fit for a
// metric label, Msg a human readable explanation.
type Error struct {
	Status int
	Token  string
	Msg    string
}

// Error implements error.
func (e *Error) Error() string { return "msg: " + e.Token + ": " + e.Msg }

// The errors NormalizeTarget and NormalizeHost return. They are returned as
// is, so comparing with == (or errors.Is) identifies them.
var (
	// ErrFragment: a fragment is client-side only (RFC 9110 section 7.1) and
	// must never be forwarded.
	ErrFragment = &Error{Status: 400, Token: "fragment", Msg: "fragment in request target"}
	// ErrBadPercent: a '%' not followed by two hex digits has no decoding,
	// so upstreams would each guess one.
	ErrBadPercent = &Error{Status: 400, Token: "bad_percent_encoding", Msg: "'%' not followed by two hex digits"}
	// ErrEscapedSlash: %2F or %5C in the path under EscapedSlashesReject.
	ErrEscapedSlash = &Error{Status: 400, Token: "escaped_slash", Msg: "escaped '/' or '\\' in path"}
	// ErrBadPath: an empty or non-origin-form target, or a byte that is not a
	// URI character where an upstream could read it as a separator or a line
	// end (backslash, control characters, space).
	ErrBadPath = &Error{Status: 400, Token: "bad_path", Msg: "invalid request path"}
	// ErrBadHost: a host that is not an RFC 3986 reg-name, IPv4 address or
	// bracketed IPv6 address, or that carries userinfo.
	ErrBadHost = &Error{Status: 400, Token: "bad_host", Msg: "invalid host"}
	// ErrBadPort: a port that is empty, not decimal, or outside 1-65535.
	ErrBadPort = &Error{Status: 400, Token: "bad_port", Msg: "invalid port"}
)
