// SPDX-License-Identifier: GPL-3.0-only

package h2

import (
	"errors"
	"strconv"
)

// ErrCode is an HTTP/2 error code (RFC 9113 section 7), carried by
// RST_STREAM and GOAWAY.
type ErrCode uint32

// Error codes from RFC 9113 section 7.
const (
	ErrCodeNo                 ErrCode = 0x0
	ErrCodeProtocol           ErrCode = 0x1
	ErrCodeInternal           ErrCode = 0x2
	ErrCodeFlowControl        ErrCode = 0x3
	ErrCodeSettingsTimeout    ErrCode = 0x4
	ErrCodeStreamClosed       ErrCode = 0x5
	ErrCodeFrameSize          ErrCode = 0x6
	ErrCodeRefusedStream      ErrCode = 0x7
	ErrCodeCancel             ErrCode = 0x8
	ErrCodeCompression        ErrCode = 0x9
	ErrCodeConnect            ErrCode = 0xa
	ErrCodeEnhanceYourCalm    ErrCode = 0xb
	ErrCodeInadequateSecurity ErrCode = 0xc
	ErrCodeHTTP11Required     ErrCode = 0xd
)

var errCodeNames = [...]string{
	ErrCodeNo:                 "NO_ERROR",
	ErrCodeProtocol:           "PROTOCOL_ERROR",
	ErrCodeInternal:           "INTERNAL_ERROR",
	ErrCodeFlowControl:        "FLOW_CONTROL_ERROR",
	ErrCodeSettingsTimeout:    "SETTINGS_TIMEOUT",
	ErrCodeStreamClosed:       "STREAM_CLOSED",
	ErrCodeFrameSize:          "FRAME_SIZE_ERROR",
	ErrCodeRefusedStream:      "REFUSED_STREAM",
	ErrCodeCancel:             "CANCEL",
	ErrCodeCompression:        "COMPRESSION_ERROR",
	ErrCodeConnect:            "CONNECT_ERROR",
	ErrCodeEnhanceYourCalm:    "ENHANCE_YOUR_CALM",
	ErrCodeInadequateSecurity: "INADEQUATE_SECURITY",
	ErrCodeHTTP11Required:     "HTTP_1_1_REQUIRED",
}

// String returns the RFC name of the code, or "ERR_0x.." for codes the RFC
// does not define (a peer may send any value; it is treated as INTERNAL_ERROR
// in meaning but reported as received).
func (c ErrCode) String() string {
	if int(c) < len(errCodeNames) {
		return errCodeNames[c]
	}
	return "ERR_0x" + strconv.FormatUint(uint64(c), 16)
}

// ConnError is a connection error (RFC 9113 section 5.4.1): the connection
// cannot continue. When Feed returns one, a GOAWAY with Code is already
// queued in the output; the owner flushes it and closes the socket.
type ConnError struct {
	Code  ErrCode
	Token string // stable short name, fit for a metric label
	Msg   string // human readable explanation
}

// Error implements error.
func (e *ConnError) Error() string {
	return "h2: connection error " + e.Code.String() + ": " + e.Token + ": " + e.Msg
}

// Is reports whether target is a *ConnError with the same Token.
func (e *ConnError) Is(target error) bool {
	t, ok := target.(*ConnError)
	return ok && t.Token == e.Token
}

// StreamError is a stream error (RFC 9113 section 5.4.2): one stream is
// reset with RST_STREAM(Code), the connection and its other streams go on.
type StreamError struct {
	StreamID uint32
	Code     ErrCode
	Token    string // stable short name, fit for a metric label
	Msg      string
}

// Error implements error.
func (e *StreamError) Error() string {
	return "h2: stream " + strconv.FormatUint(uint64(e.StreamID), 10) + " error " +
		e.Code.String() + ": " + e.Token + ": " + e.Msg
}

// Is reports whether target is a *StreamError with the same Token
// (whatever the stream).
func (e *StreamError) Is(target error) bool {
	t, ok := target.(*StreamError)
	return ok && t.Token == e.Token
}

func connErr(code ErrCode, token, msg string) *ConnError {
	e := &ConnError{Code: code, Token: token, Msg: msg}
	allConnErrors = append(allConnErrors, e)
	return e
}

// streamErr makes a prototype: StreamID is 0 and is filled in by the Conn
// (in a copy it owns) when the error is raised on a stream.
func streamErr(code ErrCode, token, msg string) *StreamError {
	e := &StreamError{Code: code, Token: token, Msg: msg}
	allStreamErrors = append(allStreamErrors, e)
	return e
}

var (
	allConnErrors   []*ConnError
	allStreamErrors []*StreamError
)

// Connection errors: framing.
var (
	ErrFrameTooLarge          = connErr(ErrCodeFrameSize, "frame_too_large", "frame exceeds SETTINGS_MAX_FRAME_SIZE")
	ErrFrameTooShort          = connErr(ErrCodeFrameSize, "frame_too_short", "payload too short for its flags")
	ErrBadPadding             = connErr(ErrCodeProtocol, "bad_padding", "padding not shorter than the payload")
	ErrDataStreamZero         = connErr(ErrCodeProtocol, "data_stream_zero", "DATA on stream 0")
	ErrHeadersStreamZero      = connErr(ErrCodeProtocol, "headers_stream_zero", "HEADERS on stream 0")
	ErrPriorityStreamZero     = connErr(ErrCodeProtocol, "priority_stream_zero", "PRIORITY on stream 0")
	ErrRSTStreamZero          = connErr(ErrCodeProtocol, "rst_stream_zero", "RST_STREAM on stream 0")
	ErrPushPromiseStreamZero  = connErr(ErrCodeProtocol, "push_promise_stream_zero", "PUSH_PROMISE on stream 0")
	ErrContinuationStreamZero = connErr(ErrCodeProtocol, "continuation_stream_zero", "CONTINUATION on stream 0")
	ErrSettingsNonZeroStream  = connErr(ErrCodeProtocol, "settings_nonzero_stream", "SETTINGS on a stream other than 0")
	ErrPingNonZeroStream      = connErr(ErrCodeProtocol, "ping_nonzero_stream", "PING on a stream other than 0")
	ErrGoAwayNonZeroStream    = connErr(ErrCodeProtocol, "goaway_nonzero_stream", "GOAWAY on a stream other than 0")
	ErrRSTStreamBadLength     = connErr(ErrCodeFrameSize, "rst_stream_bad_length", "RST_STREAM payload is not 4 octets")
	ErrWindowUpdateBadLength  = connErr(ErrCodeFrameSize, "window_update_bad_length", "WINDOW_UPDATE payload is not 4 octets")
	ErrPingBadLength          = connErr(ErrCodeFrameSize, "ping_bad_length", "PING payload is not 8 octets")
	ErrGoAwayTooShort         = connErr(ErrCodeFrameSize, "goaway_too_short", "GOAWAY payload shorter than 8 octets")
	ErrSettingsBadLength      = connErr(ErrCodeFrameSize, "settings_bad_length", "SETTINGS payload is not a multiple of 6 octets")
	ErrSettingsAckWithPayload = connErr(ErrCodeFrameSize, "settings_ack_with_payload", "SETTINGS ACK with a payload")
	ErrFrameAfterEndStream    = connErr(ErrCodeStreamClosed, "frame_after_end_stream", "HEADERS or DATA on a stream the peer had ended")
	ErrSettingsBadEnablePush  = connErr(ErrCodeProtocol, "settings_bad_enable_push", "SETTINGS_ENABLE_PUSH other than 0 or 1, or 1 from a server")
	ErrSettingsBadWindow      = connErr(ErrCodeFlowControl, "settings_bad_initial_window", "SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1")
	ErrSettingsBadFrameSize   = connErr(ErrCodeProtocol, "settings_bad_max_frame_size", "SETTINGS_MAX_FRAME_SIZE outside 2^14..2^24-1")
	ErrSettingsBadConnect     = connErr(ErrCodeProtocol, "settings_bad_connect_protocol", "SETTINGS_ENABLE_CONNECT_PROTOCOL other than 0 or 1, or revoked")
	ErrSettingsWindowOverflow = connErr(ErrCodeFlowControl, "settings_window_overflow", "SETTINGS_INITIAL_WINDOW_SIZE change overflows a stream window")
	ErrUnexpectedSettingsAck  = connErr(ErrCodeProtocol, "unexpected_settings_ack", "SETTINGS ACK without SETTINGS outstanding")
	ErrWindowUpdateZeroConn   = connErr(ErrCodeProtocol, "window_update_zero", "WINDOW_UPDATE with an increment of 0")
	ErrWindowOverflowConn     = connErr(ErrCodeFlowControl, "window_overflow", "WINDOW_UPDATE makes the window exceed 2^31-1")
	ErrConnFlowControl        = connErr(ErrCodeFlowControl, "conn_flow_control", "DATA exceeds the connection window")
	ErrUnexpectedContinuation = connErr(ErrCodeProtocol, "unexpected_continuation", "CONTINUATION without an open header block")
	ErrInterleavedHeaderBlock = connErr(ErrCodeProtocol, "interleaved_header_block", "other frame inside a header block")
	ErrContinuationFlood      = connErr(ErrCodeEnhanceYourCalm, "continuation_flood", "too many CONTINUATION frames in one header block")
	ErrHeaderBlockTooLarge    = connErr(ErrCodeEnhanceYourCalm, "header_block_too_large", "header block exceeds the byte limit")
	ErrPushPromiseFromClient  = connErr(ErrCodeProtocol, "push_promise_from_client", "PUSH_PROMISE sent by a client")
	ErrPushDisabled           = connErr(ErrCodeProtocol, "push_disabled", "PUSH_PROMISE while push is disabled")
	ErrBadPreface             = connErr(ErrCodeProtocol, "bad_preface", "connection preface missing or not followed by SETTINGS")
	ErrControlFlood           = connErr(ErrCodeEnhanceYourCalm, "control_flood", "too many control frames queued unflushed")
	ErrBadStreamID            = connErr(ErrCodeProtocol, "bad_stream_id", "stream identifier of the wrong parity")
	ErrStreamIDBackwards      = connErr(ErrCodeProtocol, "stream_id_backwards", "new stream with an identifier lower than a previous one")
	ErrFrameOnIdleStream      = connErr(ErrCodeProtocol, "frame_on_idle_stream", "frame other than HEADERS or PRIORITY on an idle stream")
	ErrHPACKDecode            = connErr(ErrCodeCompression, "hpack_decode", "HPACK decoding failed")
	ErrHPACKMissingSizeUpdate = connErr(ErrCodeCompression, "hpack_missing_size_update", "header block after a table size reduction lacks a size update")
	ErrHPACKBomb              = connErr(ErrCodeEnhanceYourCalm, "hpack_bomb", "header block decodes to too many bytes for its size")
	ErrHeaderFieldTooLarge    = connErr(ErrCodeCompression, "header_field_too_large", "single header field above the header list limit")
)

// Stream errors. Each is a prototype with StreamID 0: the Conn reports a copy
// carrying the stream's identifier.
var (
	ErrPriorityBadLength     = streamErr(ErrCodeFrameSize, "priority_bad_length", "PRIORITY payload is not 5 octets")
	ErrPrioritySelfDep       = streamErr(ErrCodeProtocol, "priority_self_dependency", "stream depends on itself")
	ErrRefusedStream         = streamErr(ErrCodeRefusedStream, "refused_stream", "SETTINGS_MAX_CONCURRENT_STREAMS exceeded")
	ErrGoAwayRefused         = streamErr(ErrCodeRefusedStream, "goaway_refused", "stream above the last stream id of our GOAWAY")
	ErrStreamClosed          = streamErr(ErrCodeStreamClosed, "stream_closed", "frame on a closed or half-closed (remote) stream")
	ErrStreamFlowControl     = streamErr(ErrCodeFlowControl, "stream_flow_control", "DATA exceeds the stream window")
	ErrWindowOverflow        = streamErr(ErrCodeFlowControl, "window_overflow", "WINDOW_UPDATE makes the window exceed 2^31-1")
	ErrWindowUpdateZero      = streamErr(ErrCodeProtocol, "window_update_zero", "WINDOW_UPDATE with an increment of 0")
	ErrHeaderListTooLarge    = streamErr(ErrCodeProtocol, "header_list_too_large", "decoded header list exceeds SETTINGS_MAX_HEADER_LIST_SIZE")
	ErrDataBeforeHeaders     = streamErr(ErrCodeProtocol, "data_before_headers", "DATA before the final response head")
	ErrContentLengthMismatch = streamErr(ErrCodeProtocol, "content_length_mismatch", "DATA length differs from content-length")
)

// Stream errors for malformed messages (RFC 9113 section 8.1.1), all
// PROTOCOL_ERROR.
var (
	ErrPseudoAfterRegular     = streamErr(ErrCodeProtocol, "pseudo_after_regular", "pseudo-header after a regular field")
	ErrUnknownPseudo          = streamErr(ErrCodeProtocol, "unknown_pseudo", "undefined pseudo-header, or one of the other message kind")
	ErrDuplicatePseudo        = streamErr(ErrCodeProtocol, "duplicate_pseudo", "pseudo-header repeated")
	ErrMissingMethod          = streamErr(ErrCodeProtocol, "missing_method", "request without :method")
	ErrMissingScheme          = streamErr(ErrCodeProtocol, "missing_scheme", "request without :scheme")
	ErrMissingPath            = streamErr(ErrCodeProtocol, "missing_path", "request without :path")
	ErrMissingAuthority       = streamErr(ErrCodeProtocol, "missing_authority", "CONNECT without :authority")
	ErrMissingStatus          = streamErr(ErrCodeProtocol, "missing_status", "response without :status")
	ErrBadMethod              = streamErr(ErrCodeProtocol, "bad_method", ":method is not a token")
	ErrBadPath                = streamErr(ErrCodeProtocol, "bad_path", ":path empty, or neither origin-form nor * for OPTIONS")
	ErrBadStatus              = streamErr(ErrCodeProtocol, "bad_status", ":status is not three digits in 100..599, or is 101")
	ErrBadScheme              = streamErr(ErrCodeProtocol, "bad_scheme", ":scheme is not a URI scheme")
	ErrBadAuthority           = streamErr(ErrCodeProtocol, "bad_authority", ":authority has userinfo, pct-encoding or characters outside host[:port]")
	ErrBadConnect             = streamErr(ErrCodeProtocol, "bad_connect", "CONNECT with :scheme or :path, or :protocol without CONNECT")
	ErrProtocolNotEnabled     = streamErr(ErrCodeProtocol, "protocol_not_enabled", ":protocol without SETTINGS_ENABLE_CONNECT_PROTOCOL")
	ErrEmptyHeaderName        = streamErr(ErrCodeProtocol, "empty_header_name", "empty field name")
	ErrUppercaseHeader        = streamErr(ErrCodeProtocol, "uppercase_header", "uppercase character in a field name")
	ErrBadHeaderName          = streamErr(ErrCodeProtocol, "bad_header_name", "invalid character in a field name")
	ErrBadHeaderValue         = streamErr(ErrCodeProtocol, "bad_header_value", "NUL, CR, LF or another control character but HTAB in a field value")
	ErrHeaderValueSpace       = streamErr(ErrCodeProtocol, "header_value_whitespace", "field value starts or ends with SP or HTAB")
	ErrConnectionHeader       = streamErr(ErrCodeProtocol, "connection_header", "connection-specific field")
	ErrTENotTrailers          = streamErr(ErrCodeProtocol, "te_not_trailers", "te with a value other than trailers")
	ErrBadContentLength       = streamErr(ErrCodeProtocol, "bad_content_length", "content-length is not a decimal number")
	ErrMultipleContentLength  = streamErr(ErrCodeProtocol, "multiple_content_length", "content-length repeated")
	ErrPseudoInTrailers       = streamErr(ErrCodeProtocol, "pseudo_in_trailers", "pseudo-header in trailers")
	ErrTrailersNoEndStream    = streamErr(ErrCodeProtocol, "trailers_without_end_stream", "trailers that do not end the stream")
	ErrInformationalEndStream = streamErr(ErrCodeProtocol, "informational_end_stream", "1xx response that ends the stream")
)

// Errors the Conn returns to its owner for a request it cannot carry out.
// They describe the owner's call, not the peer, and queue nothing.
var (
	ErrConnClosed         = errors.New("h2: connection closed by a connection error or GOAWAY")
	ErrStreamNotWritable  = errors.New("h2: stream is not open for this write")
	ErrTooManyStreams     = errors.New("h2: peer's SETTINGS_MAX_CONCURRENT_STREAMS reached")
	ErrStreamIDsExhausted = errors.New("h2: stream identifiers exhausted")
	ErrPeerHeaderListSize = errors.New("h2: header list exceeds the peer's SETTINGS_MAX_HEADER_LIST_SIZE")
	ErrInvalidHead        = errors.New("h2: head cannot be sent: missing pseudo-header or invalid field")
	ErrRole               = errors.New("h2: call not valid in this connection role")
)
