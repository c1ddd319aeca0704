// Package h1 is a sans-IO HTTP/1.1 codec: an incremental request and response
// head parser, a body decoder (Content-Length, chunked, until-close) and the
// serializers a reverse proxy needs (proxy heads, chunks, small local
// responses).
//
// Nothing here touches a socket. Parsers take the whole unconsumed inbound
// buffer, copy a complete head into their own reusable buffer and return how
// many bytes it used; the caller discards them. In steady state parsing and
// serializing allocate nothing.
//
// The parsers are strict in the sense of RFC 9112 and refuse every shape that
// lets two HTTP implementations disagree on where a message ends (request
// smuggling). Each refusal is an *Error carrying the status to send and a
// stable short token for metrics; README.md lists them.
//
// A parser or decoder belongs to one connection and is not safe for
// concurrent use.
package h1
