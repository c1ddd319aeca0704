// SPDX-License-Identifier: GPL-3.0-only

package guards

// Request smuggling and malformed messages. The verdicts stay in the codecs
// (codecs/h1, codecs/h2, codecs/msg): they know the syntax. Each verdict has
// a stable token; the guard refuses the message under one name per token,
// so a desync attempt is counted and logged like any other attack.
const (
	// CodecPrefix + token: an HTTP/1 (or neutral) parse verdict, such as
	// codec_te_and_cl (both Transfer-Encoding and Content-Length).
	CodecPrefix = "codec_"
	// H2Prefix + token: an HTTP/2 stream error the codec raised, such as
	// h2_header_list_too_large or h2_bad_pseudo.
	H2Prefix = "h2_"
	// H3Prefix + token: an HTTP/3 request stream refused for a malformed
	// or oversized head, a slow head or a buffer bound, such as
	// h3_field_section_too_large.
	H3Prefix = "h3_"
	// ConnectRefused: CONNECT is refused (501) before routing: no route
	// tunnels.
	ConnectRefused Name = "connect_refused"
	// H2BadPreface: a connection on an HTTP/2-only listener that does not
	// open with the preface.
	H2BadPreface Name = "h2_bad_preface"
	// MaxRequestsPerConnection: the last request a connection may carry.
	MaxRequestsPerConnection Name = "max_requests_per_connection"
)

// Codec is the guard of a codec verdict with the given token.
func Codec(token string) Name { return Name(CodecPrefix + token) }

// H2 is the guard of an HTTP/2 stream or connection error with the given
// codec token.
func H2(token string) Name { return Name(H2Prefix + token) }

// H3 is the guard of an HTTP/3 request stream refusal with the given token.
func H3(token string) Name { return Name(H3Prefix + token) }
