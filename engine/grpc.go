// SPDX-License-Identifier: GPL-3.0-only

package engine

import (
	"bytes"
	"strconv"
	"time"

	"github.com/expressgateway/expressgateway/codecs/msg"
)

// gRPC over HTTP/2 (the gRPC "PROTOCOL-HTTP2" spec). The gateway forwards
// gRPC like any HTTP/2 exchange (per-stream load balancing, flow control
// end to end, trailers carried as they are); what is gRPC-specific is here:
// which requests are gRPC, the deadline from grpc-timeout, the gRPC status
// of the errors the gateway makes itself (HTTP 200, trailers-only, never a
// text body), and the status token for metrics and the access log.

// gRPC status codes (the ones the gateway produces, and the names of all
// for the metric label).
const (
	grpcOK                = 0
	grpcCancelled         = 1
	grpcUnknown           = 2
	grpcDeadlineExceeded  = 4
	grpcResourceExhausted = 8
	grpcUnimplemented     = 12
	grpcInternal          = 13
	grpcUnavailable       = 14
	grpcPermissionDenied  = 7
	grpcUnauthenticated   = 16
)

var grpcCodeNames = [...]string{
	"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
	"ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
	"ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
	"UNAUTHENTICATED",
}

// grpcCodeName is the metric label for a grpc-status value: the code's
// name, "none" when the exchange ended without one (reset, cut), "other"
// for a value outside the 17 codes.
func grpcCodeName(code int) string {
	switch {
	case code < 0:
		return "none"
	case code < len(grpcCodeNames):
		return grpcCodeNames[code]
	}
	return "other"
}

// grpcLabelCode is the code counted at index i of listenerRT.grpcCounters.
func grpcLabelCode(i int) int {
	if i == len(grpcCodeNames)+1 {
		return -1
	}
	return i
}

// isGRPC reports whether a request's content-type makes it gRPC
// ("application/grpc", "application/grpc+proto", "application/grpc-web…").
func isGRPC(ct []byte) bool {
	const p = "application/grpc"
	return len(ct) >= len(p) && msg.EqualFold(ct[:len(p)], p) &&
		(len(ct) == len(p) || ct[len(p)] == '+' || ct[len(p)] == ';' || ct[len(p)] == '-')
}

// isGRPCNative is isGRPC without gRPC-Web, which is plain HTTP and works
// over HTTP/1.1: native gRPC needs HTTP/2 (trailers, full-duplex streams).
func isGRPCNative(ct []byte) bool {
	const p = "application/grpc"
	return isGRPC(ct) && (len(ct) == len(p) || ct[len(p)] != '-')
}

// parseGRPCTimeout reads a grpc-timeout value: up to 8 digits and a unit
// (H, M, S, m, u, n). ok is false for anything else (the field is then
// ignored, as the spec leaves it to the server).
func parseGRPCTimeout(v []byte) (d time.Duration, ok bool) {
	if len(v) < 2 || len(v) > 9 {
		return 0, false
	}
	n, err := strconv.ParseUint(string(v[:len(v)-1]), 10, 64)
	if err != nil {
		return 0, false
	}
	var unit time.Duration
	switch v[len(v)-1] {
	case 'H':
		unit = time.Hour
	case 'M':
		unit = time.Minute
	case 'S':
		unit = time.Second
	case 'm':
		unit = time.Millisecond
	case 'u':
		unit = time.Microsecond
	case 'n':
		unit = time.Nanosecond
	default:
		return 0, false
	}
	return time.Duration(n) * unit, true
}

// grpcCodeFor maps an error the gateway answers itself (HTTP status and
// reason token) to its gRPC status. The reason decides where it is
// specific; the HTTP status otherwise, as the gRPC spec maps HTTP statuses.
func grpcCodeFor(status int, reason string) int {
	switch reason {
	case "no_route":
		return grpcUnimplemented
	case "queue_full", "ring_full", "h2_stream_buffer_overflow", "upstream_window_overflow":
		return grpcResourceExhausted
	case "deadline_exceeded", "upstream_per_try_timeout", "upstream_response_header_timeout", "upstream_connect_timeout":
		return grpcDeadlineExceeded
	case "no_healthy_endpoint", "pick_failed", "upstream_connect_failed", "upstream_reset",
		"upstream_refused_stream", "upstream_goaway_unprocessed", "upstream_status_502", "upstream_status_503":
		return grpcUnavailable
	}
	switch {
	case status == 413 || status == 414 || status == 429 || status == 431:
		return grpcResourceExhausted
	case status == 408 || status == 504:
		return grpcDeadlineExceeded
	case status == 401:
		return grpcUnauthenticated
	case status == 403:
		return grpcPermissionDenied
	case status == 404 || status == 501:
		return grpcUnimplemented
	case status == 503:
		return grpcUnavailable
	case status == 502 && len(reason) > len("upstream_") && reason[:len("upstream_")] == "upstream_":
		// The upstream broke the protocol (a bad head, a stream error).
		return grpcInternal
	}
	return grpcInternal
}

// grpcStatusField finds grpc-status in fs: its value, or -1.
func grpcStatusField(fs []msg.Field) int {
	for _, f := range fs {
		if string(f.Name) == "grpc-status" || msg.EqualFold(f.Name, "grpc-status") {
			n, err := strconv.Atoi(string(f.Value))
			if err != nil || n < 0 {
				return len(grpcCodeNames) // counted as "other"
			}
			return n
		}
	}
	return -1
}

// setField replaces the value of the field called name (lower case) in fs,
// or appends the field.
func setField(fs []msg.Field, name []byte, value []byte) []msg.Field {
	for i := range fs {
		if bytes.EqualFold(fs[i].Name, name) {
			fs[i].Value = value
			return fs
		}
	}
	return append(fs, msg.Field{Name: name, Value: value})
}

// appendGRPCTimeout appends d as a grpc-timeout value (at most 8 digits).
func appendGRPCTimeout(dst []byte, d time.Duration) []byte {
	if ms := int64(d / time.Millisecond); ms <= 99_999_999 {
		return append(strconv.AppendInt(dst, max(ms, 1), 10), 'm')
	}
	return append(strconv.AppendInt(dst, min(int64(d/time.Second), 99_999_999), 10), 'S')
}

var (
	nameGRPCTimeout = []byte("grpc-timeout")
	nameGRPCStatus  = []byte("grpc-status")
	nameGRPCMessage = []byte("grpc-message")
	valueGRPC       = []byte("application/grpc")
)

// gRPC-Web (https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-WEB.md)
// from an HTTP/1.1 client to a native gRPC upstream (an h2c or h2 cluster),
// as Envoy's grpc_web filter does: the request's content-type loses its
// "-web" and gains "te: trailers"; the message framing of the body is the
// same both ways; the response's content-type gets its "-web" back and the
// upstream's trailers travel as one last length-prefixed frame of the body
// with the flag byte 0x80, "name: value\r\n" each. Only the binary variants
// are translated: "application/grpc-web-text" (base64) is forwarded as it
// came, for an upstream that speaks it. To an HTTP/1 cluster gRPC-Web is
// plain HTTP and is forwarded untouched.

// grpcWebNative maps a binary gRPC-Web content-type to the native one
// ("application/grpc-web" → "application/grpc", "…-web+proto" →
// "…+proto"); nil when ct is not binary gRPC-Web.
func grpcWebNative(ct []byte) []byte {
	const p = "application/grpc-web"
	if len(ct) < len(p) || !msg.EqualFold(ct[:len(p)], p) {
		return nil
	}
	rest := ct[len(p):]
	if len(rest) > 0 && rest[0] != '+' && rest[0] != ';' {
		return nil // "-text" and anything else
	}
	return append([]byte("application/grpc"), rest...)
}

// grpcWebCT maps a native gRPC content-type of a response back to its
// gRPC-Web form.
func grpcWebCT(ct []byte) []byte {
	const p = "application/grpc"
	if len(ct) < len(p) || !msg.EqualFold(ct[:len(p)], p) {
		return []byte("application/grpc-web+proto")
	}
	return append([]byte("application/grpc-web"), ct[len(p):]...)
}

// appendGRPCWebTrailers appends the trailer frame of a gRPC-Web response.
func appendGRPCWebTrailers(dst []byte, trailers []msg.Field) []byte {
	start := len(dst)
	dst = append(dst, 0x80, 0, 0, 0, 0)
	for _, f := range trailers {
		for _, c := range f.Name {
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			dst = append(dst, c)
		}
		dst = append(dst, ':', ' ')
		dst = append(dst, f.Value...)
		dst = append(dst, '\r', '\n')
	}
	n := len(dst) - start - 5
	dst[start+1], dst[start+2], dst[start+3], dst[start+4] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
	return dst
}
