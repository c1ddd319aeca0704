package h1

// Error is a protocol violation found while parsing. Status is the response
// status the peer deserves (400, 413, 414, 431, 501 or 505 for a request; 502
// when the message came from an upstream), Token a stable short name fit for a
// metric label, Msg a human readable explanation.
type Error struct {
	Status int
	Token  string
	Msg    string
}

// Error implements error.
func (e *Error) Error() string { return "h1: " + e.Token + ": " + e.Msg }

// Is reports whether target is an *Error with the same Token, so that
// errors.Is(err, ErrBareLF) matches both the request and the response variant.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Token == e.Token
}

func newErr(status int, token, msg string) *Error {
	e := &Error{Status: status, Token: token, Msg: msg}
	allErrors = append(allErrors, e)
	return e
}

var allErrors []*Error

// Errors for the request line and the head as a whole.
var (
	ErrBareLF             = newErr(400, "bare_lf", "line terminated by LF without CR")
	ErrBadRequestLine     = newErr(400, "bad_request_line", "malformed request line")
	ErrBadMethod          = newErr(400, "bad_method", "method is not a token")
	ErrBadTarget          = newErr(400, "bad_target", "invalid request target")
	ErrBadVersion         = newErr(400, "bad_version", "malformed HTTP version")
	ErrVersionUnsupported = newErr(505, "version_unsupported", "HTTP version other than 1.0 and 1.1")
	ErrRequestLineTooLong = newErr(414, "request_line_too_long", "request line exceeds the limit")
	ErrHeadersTooLarge    = newErr(431, "headers_too_large", "header section exceeds the limit")
	ErrTooManyHeaders     = newErr(431, "too_many_headers", "too many header fields")
	ErrBadStatusLine      = newErr(502, "bad_status_line", "malformed status line")
	ErrBadStatus          = newErr(502, "bad_status", "status code outside 100-599")
	ErrStatusLineTooLong  = newErr(502, "status_line_too_long", "status line exceeds the limit")
)

// Errors for individual field lines (headers and trailers).
var (
	ErrObsFold                 = newErr(400, "obs_fold", "obsolete line folding")
	ErrEmptyHeaderName         = newErr(400, "empty_header_name", "empty field name")
	ErrSpaceBeforeColon        = newErr(400, "space_before_colon", "whitespace between field name and colon")
	ErrBadHeaderName           = newErr(400, "bad_header_name", "field name is not a token or colon is missing")
	ErrBadHeaderValue          = newErr(400, "bad_header_value", "control character in field value")
	ErrSuspiciousFramingHeader = newErr(400, "suspicious_framing_header", "field name imitates Content-Length or Transfer-Encoding")
)

// Errors for Host and message framing.
var (
	ErrMissingHost           = newErr(400, "missing_host", "HTTP/1.1 request without Host")
	ErrDuplicateHost         = newErr(400, "duplicate_host", "more than one Host field")
	ErrBadHost               = newErr(400, "bad_host", "invalid Host value")
	ErrBadContentLength      = newErr(400, "bad_content_length", "Content-Length is not a single decimal number")
	ErrMultipleContentLength = newErr(400, "multiple_content_length", "more than one Content-Length field")
	ErrContentLengthAndTE    = newErr(400, "cl_and_te", "both Content-Length and Transfer-Encoding")
	ErrTEInHTTP10            = newErr(400, "te_http10", "Transfer-Encoding in an HTTP/1.0 message")
	ErrUnknownTE             = newErr(501, "te_unknown", "unknown transfer coding")
	ErrTENotChunked          = newErr(400, "te_not_chunked", "final transfer coding is not chunked")
	ErrTEChunkedTwice        = newErr(400, "te_chunked_twice", "chunked applied more than once")
	ErrBadTransferEncoding   = newErr(400, "bad_transfer_encoding", "malformed Transfer-Encoding")
	ErrUnexpectedBody        = newErr(400, "unexpected_body", "GET, HEAD or TRACE request with a body")
	ErrBodyTooLarge          = newErr(413, "body_too_large", "body exceeds the limit")
)

// Errors for chunked bodies and trailers.
var (
	ErrBadChunkSize     = newErr(400, "bad_chunk_size", "malformed chunk size")
	ErrBadChunkExt      = newErr(400, "bad_chunk_ext", "control character in chunk extension")
	ErrChunkExtTooLong  = newErr(400, "chunk_ext_too_long", "chunk extensions exceed the limit")
	ErrBadChunkCRLF     = newErr(400, "bad_chunk_crlf", "chunk data not followed by CRLF")
	ErrTrailersTooLarge = newErr(431, "trailers_too_large", "trailer section exceeds the limit")
	ErrForbiddenTrailer = newErr(400, "forbidden_trailer", "framing or routing field in trailers")
)

// responseVariant maps each error to its copy with Status 502, the status a
// proxy answers with when the upstream's message is malformed.
var responseVariant = func() map[*Error]*Error {
	m := make(map[*Error]*Error, len(allErrors))
	for _, e := range allErrors {
		m[e] = &Error{Status: 502, Token: e.Token, Msg: e.Msg}
	}
	return m
}()

// forResponse returns the 502 variant of e.
func forResponse(e *Error) *Error {
	if v, ok := responseVariant[e]; ok {
		return v
	}
	return e
}
