// SPDX-License-Identifier: GPL-3.0-only

package engine

import (
	"strconv"

	"github.com/expressgateway/expressgateway/codecs/h2"
	"github.com/expressgateway/expressgateway/codecs/msg"
	"github.com/expressgateway/expressgateway/stages"
)

// gRPC errors the gateway makes itself on an HTTP/2 stream (grpc.go): HTTP
// 200 and a trailers-only response, never a text body.

// grpcMessagePrefix starts the grpc-message of the gateway's own errors;
// the reason token follows (printable ASCII: no percent-encoding needed).
const grpcMessagePrefix = "expressgateway: "

// respondGRPC answers a gRPC request the gateway refuses or cannot serve:
// one HEADERS frame with END_STREAM carrying :status 200, content-type,
// grpc-status and grpc-message.
func (s *h2Stream) respondGRPC(x *stages.Exchange) {
	sc := s.sc
	code := grpcCodeFor(x.Status, x.Reason)
	s.lg.grpcStatus = code
	m := append(sc.lp.scratch[:0], grpcMessagePrefix...)
	m = append(m, x.Reason...)
	sc.lp.scratch = m[:0]
	fs := append(s.lfs[:0],
		msg.Field{Name: nameCT, Value: valueGRPC},
		msg.Field{Name: nameGRPCStatus, Value: strconv.AppendInt(s.numb[:0], int64(code), 10)},
		msg.Field{Name: nameGRPCMessage, Value: m})
	s.lfs = fs[:0]
	head := h2.Head{Status: 200, Fields: fs}
	if err := sc.codec.WriteHeaders(s.id, &head, true); err == nil && !s.bodyEnd {
		// The request is still open: the client may stop sending.
		_ = sc.codec.WriteRST(s.id, h2.ErrCodeNo)
	}
	sc.lp.e.m.LocalResponse(sc.l.cfg.Name, x.Reason).Inc()
	s.lg.dropUpstream()
	s.lg.endpointDone(x.Status, false)
	s.lg.respStatus = 200
	s.lg.record(200, x.Reason)
	sc.flush()
	s.finished = true
	s.free()
}

// endGRPC implements grpcEnder: a started gRPC response ends with the
// gateway's status in its trailers (the upstream is already dropped).
func (s *h2Stream) endGRPC(lg *leg, code int, reason string) {
	m := append(s.sc.lp.scratch[:0], grpcMessagePrefix...)
	m = append(m, reason...)
	s.sc.lp.scratch = m[:0]
	trl := [...]msg.Field{
		{Name: nameGRPCStatus, Value: strconv.AppendInt(s.numb[:0], int64(code), 10)},
		{Name: nameGRPCMessage, Value: m},
	}
	s.respEnd(lg, trl[:]) // copies the trailers
}

var _ grpcEnder = (*h2Stream)(nil)

// grpcErrorFields are the header fields of a gRPC error answered on an
// HTTP/1.1 connection (gRPC-Web's trailers-only form, and the refusal of
// native gRPC): content-type as requested, grpc-status, grpc-message.
func (cc *clientConn) grpcErrorFields(x *stages.Exchange) []msg.Field {
	code := grpcCodeFor(x.Status, x.Reason)
	if x.Reason == "grpc_needs_http2" {
		code = grpcUnavailable
	}
	cc.r.lg.grpc, cc.r.lg.grpcStatus = true, code
	return []msg.Field{
		{Name: nameCT, Value: cc.r.req.Header("content-type")},
		{Name: nameGRPCStatus, Value: strconv.AppendInt(nil, int64(code), 10)},
		{Name: nameGRPCMessage, Value: append([]byte(grpcMessagePrefix), x.Reason...)},
	}
}
