// SPDX-License-Identifier: GPL-3.0-only

package engine

import (
	"strconv"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/expressgateway/expressgateway/codecs/h2"
	"github.com/expressgateway/expressgateway/codecs/msg"
	"github.com/expressgateway/expressgateway/lb"
	"github.com/expressgateway/expressgateway/stages"
)

// h2Upstream is one HTTP/2 (h2c, prior knowledge) connection to an
// endpoint, carrying the streams of many legs at once. It lives on the
// event loop of the sessions that use it and is pooled per loop, endpoint
// and protocol (lp.h2pools). Flow control is the backpressure in both
// directions: request DATA goes out as the endpoint's windows allow (the
// rest waits on the leg and the downstream is not credited meanwhile), and
// response DATA is credited back to the endpoint only as the downstream
// takes it.
type h2Upstream struct {
	lp      *loop
	c       gnet.Conn
	cluster *stages.Cluster
	ep      *lb.Endpoint
	codec   *h2.Conn
	state   upState
	streams map[uint32]*leg
	tls     bool   // spoken over TLS (h2); a reload that turns TLS off or on leaves it be
	pending []*leg // waiting for the connection to come up
	goaway  bool   // the endpoint said GOAWAY: no new streams
	retired bool   // a reload removed the endpoint: out of the pool, closes once its streams end
	idle    int64  // when the last stream ended
	counted bool
	dirty   bool // queued in lp.h2dirty
	// batch are the legs whose small request DATA chunks wait in upPend
	// for the end of the round (leg.upBatch).
	batch   []*leg
	settled bool // the endpoint's first SETTINGS arrived
	active  *atomic.Int64
}

// h2UpLimits are the limits the gateway advertises to its h2c upstreams:
// a large receive window, since what bounds memory is the credit the
// gateway holds back, not the window it advertises.
func h2UpLimits() h2.Limits {
	l := h2.DefaultLimits()
	l.InitialStreamWindow = 256 << 10
	l.ConnWindow = 4 << 20
	return l
}

// h2For returns a connection to ep that can take one more stream,
// creating (and dialing) one when none can.
func (lp *loop) h2For(cl *stages.Cluster, ep *lb.Endpoint, connect time.Duration) *h2Upstream {
	wantTLS := lp.e.clusters.TLS(cl) != nil
	for _, hu := range lp.h2pools[ep] {
		if hu.tls == wantTLS && hu.canTake() {
			return hu
		}
	}
	hu := &h2Upstream{lp: lp, cluster: cl, ep: ep, state: upDialing, streams: map[uint32]*leg{},
		active: lp.e.m.UpstreamActive(cl.Name)}
	lp.h2pools[ep] = append(lp.h2pools[ep], hu)
	lp.e.clusters.countConnect(cl)
	d := lp.e.clusters.TLS(cl).dial(ep)
	hu.tls = d != nil
	lp.dialEnrollTLS("tcp", ep.Address(), connect, d, hu, hu.onDialFailed)
	return hu
}

// canTake reports whether a new stream may go on this connection now or
// once it is up.
func (hu *h2Upstream) canTake() bool {
	switch {
	case hu.goaway || hu.retired || hu.state == upClosed:
		return false
	case hu.state == upDialing:
		return len(hu.pending) < hu.cluster.MaxStreams
	}
	limit := hu.cluster.MaxStreams
	if p := int(hu.codec.PeerSettings().MaxConcurrentStreams); p < limit {
		limit = p
	}
	return len(hu.streams)+len(hu.pending) < limit
}

// attach gives lg a stream on this connection, now or once it is up.
func (hu *h2Upstream) attach(lg *leg) {
	lg.h2u = hu
	if hu.state != upActive || (lg.ws && !hu.settled) {
		// A WebSocket stream needs to know whether the endpoint takes
		// extended CONNECT (its SETTINGS) before it opens.
		hu.pending = append(hu.pending, lg)
		return
	}
	hu.lp.e.clusters.countReuse(hu.cluster)
	hu.open(lg)
}

func (hu *h2Upstream) onDialFailed(reason string) {
	hu.state = upClosed
	hu.forget()
	legs := hu.pending
	hu.pending = nil
	for _, lg := range legs {
		if lg.h2u == hu {
			lg.h2u = nil
			lg.failed(reason, 502, true)
		}
	}
}

func (hu *h2Upstream) onOpen(c gnet.Conn) {
	hu.c = c
	if hu.state != upDialing {
		_ = c.Close()
		return
	}
	hu.state = upActive
	hu.counted = true
	hu.active.Add(1)
	hu.ep.ConnOpened()
	hu.codec = h2.NewConn(h2.RoleClient, h2UpLimits(), hu, hu.lp.now())
	hu.idle = hu.lp.nowNano()
	hu.openPending()
}

// openPending opens the streams that waited for the connection (and, for
// WebSocket streams, for the endpoint's SETTINGS).
func (hu *h2Upstream) openPending() {
	legs := hu.pending
	hu.pending = nil
	for _, lg := range legs {
		if lg.h2u != hu {
			continue
		}
		if lg.ws && !hu.settled {
			hu.pending = append(hu.pending, lg)
			continue
		}
		hu.open(lg)
	}
	hu.flush()
}

// open sends lg's request head on a new stream.
func (hu *h2Upstream) open(lg *leg) {
	lp := hu.lp
	r := lg.x.Req
	opts := *lg.reqOpts()
	opts.ClientIP = lg.ip
	opts.Identity = lg.identity
	opts.DropExpect = lg.sent100
	fs, arena, _ := msg.ForwardRequest(lp.fwd.Fields[:0], lp.fwd.Arena[:0], r.Fields, &opts)
	if te := r.Field("te"); te != nil && msg.ListHas(te, "trailers") {
		fs = append(fs, msg.Field{Name: nameTE, Value: valueTrailers}) // gRPC needs it end to end
	}
	if lg.grpcWeb != nil {
		fs = setField(fs, nameCT, lg.grpcWeb)
		fs = setField(fs, nameTE, valueTrailers)
	}
	if r.Body == msg.BodyLength {
		start := len(arena)
		arena = strconv.AppendInt(arena, r.ContentLength, 10)
		fs = append(fs, msg.Field{Name: nameCL, Value: arena[start:len(arena):len(arena)]})
	}
	if lg.grpc && lg.deadline != 0 {
		// The endpoint gets the deadline the gateway enforces (the
		// client's grpc-timeout, or the route's timeout when shorter):
		// what is left of it, in milliseconds.
		start := len(arena)
		arena = appendGRPCTimeout(arena, time.Duration(lg.deadline-lp.nowNano()))
		fs = setField(fs, nameGRPCTimeout, arena[start:len(arena):len(arena)])
	}
	lp.fwd.Fields, lp.fwd.Arena = fs[:0], arena[:0]
	scheme := r.Scheme
	if len(scheme) == 0 {
		scheme = schemeHTTP
	}
	head := h2.Head{Method: r.Method, Scheme: scheme, Authority: r.Authority, Path: r.Path, Fields: fs}
	if lg.ws {
		// WebSocket stays an extended CONNECT (RFC 8441) to an endpoint
		// that advertised SETTINGS_ENABLE_CONNECT_PROTOCOL; to one that did
		// not, there is no way to carry it.
		if !hu.codec.PeerSettings().EnableConnectProtocol {
			lg.h2u = nil
			lg.protocolError("no_extended_connect")
			return
		}
		head.Method, head.Protocol = methodCONNECT, r.Protocol
	}
	end := lg.reqBodyDone
	id, err := hu.codec.WriteRequest(&head, end)
	if err != nil {
		lg.h2u = nil
		lg.failed("h2_open_stream", 502, false)
		return
	}
	hu.streams[id] = lg
	lg.h2id = id
	lg.lp.e.m.H2UpStreams.Inc()
	if end {
		lg.reqSentAt = lp.nowNano()
	}
	hu.flush()
	lg.ds.upstreamReady(lg, nil, nil)
}

// flush schedules the codec's output for the end of the event loop's round
// (lp.flushH2), so that the requests of many streams opened in one round
// share one write, as for HTTP/2 sessions.
func (hu *h2Upstream) flush() {
	if hu.c == nil || hu.codec == nil || hu.dirty || len(hu.codec.Output()) == 0 {
		return
	}
	hu.dirty = true
	hu.lp.h2dirty = append(hu.lp.h2dirty, hu)
	hu.lp.scheduleH2Flush()
}

// flushNow moves the codec's output to the socket at once.
func (hu *h2Upstream) outConn() gnet.Conn { return hu.c }

// flushRound is flush for a leg that has DATA in hu.batch and maybe no
// output yet.
func (hu *h2Upstream) flushRound() {
	if hu.c == nil || hu.dirty {
		return
	}
	hu.dirty = true
	hu.lp.h2dirty = append(hu.lp.h2dirty, hu)
	hu.lp.scheduleH2Flush()
}

// pushBatch writes the round's batched request DATA, each leg's in one
// go (what the windows refuse stays in upPend as any refused DATA).
func (hu *h2Upstream) pushBatch() {
	for i := 0; i < len(hu.batch); i++ {
		lg := hu.batch[i]
		hu.batch[i] = nil
		if lg.upBatch != hu {
			continue // reset or moved since
		}
		lg.upBatch = nil
		if lg.h2u == hu && lg.h2id != 0 && hu.streams[lg.h2id] == lg {
			lg.pushUp(false)
		}
	}
	hu.batch = hu.batch[:0]
}

func (hu *h2Upstream) flushNow() {
	if hu.c == nil || hu.codec == nil || hu.state == upClosed {
		hu.dirty = false
		for _, lg := range hu.batch {
			if lg.upBatch == hu {
				lg.upBatch = nil
			}
		}
		clear(hu.batch)
		hu.batch = hu.batch[:0]
		return // close wrote what there was before it closed
	}
	hu.pushBatch() // still dirty: what it writes goes out below
	hu.dirty = false
	if hu.c == nil || hu.codec == nil || hu.state == upClosed {
		return // a push ended the connection
	}
	if out := hu.codec.Output(); len(out) > 0 {
		hu.lp.queue(hu.c, out)
		hu.codec.Advance(len(out))
	}
}

func (hu *h2Upstream) onTraffic() {
	if hu.state != upActive {
		_, _ = hu.c.Discard(-1)
		return
	}
	buf, _ := hu.c.Peek(-1)
	n, err := hu.codec.Feed(buf, hu.lp.now())
	if n > 0 {
		_, _ = hu.c.Discard(n)
	}
	hu.flush()
	if err != nil {
		tok := "h2_connection_error"
		if ce, ok := err.(*h2.ConnError); ok {
			tok = "h2_" + ce.Token
		}
		hu.lp.e.m.UpstreamFailure(hu.cluster.Name, tok).Inc()
		hu.fail()
	}
}

// fail ends every stream of the connection and closes it.
func (hu *h2Upstream) fail() {
	if hu.state == upClosed {
		return
	}
	hu.state = upClosed
	hu.forget()
	hu.dropStreams()
	hu.lp.flushOut()
	if hu.c != nil {
		_ = hu.c.Close()
	}
}

func (hu *h2Upstream) dropStreams() {
	streams := hu.streams
	hu.streams = map[uint32]*leg{}
	for _, lg := range streams {
		lg.h2u, lg.h2id = nil, 0
		if !lg.respHead {
			lg.failed("reset", 502, false)
		} else {
			lg.abortMid("reset_mid_body")
		}
	}
	legs := hu.pending
	hu.pending = nil
	for _, lg := range legs {
		lg.h2u = nil
		lg.failed("reset", 502, false)
	}
}

func (hu *h2Upstream) onClose() {
	if hu.counted {
		hu.counted = false
		hu.active.Add(-1)
		hu.ep.ConnClosed()
	}
	if hu.state == upClosed {
		return
	}
	hu.state = upClosed
	hu.forget()
	hu.dropStreams()
}

// forget removes the connection from its pool.
func (hu *h2Upstream) forget() {
	list := hu.lp.h2pools[hu.ep]
	for i, v := range list {
		if v == hu {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(hu.lp.h2pools, hu.ep)
		return
	}
	hu.lp.h2pools[hu.ep] = list
}

// release ends lg's stream on a clean finish (the stream is closed both
// ways by then); credit still held goes back to the connection window.
func (hu *h2Upstream) release(lg *leg) {
	if lg.h2id != 0 {
		delete(hu.streams, lg.h2id)
		if lg.upHeld > 0 {
			hu.codec.Consumed(lg.h2id, lg.upHeld)
		}
	}
	lg.h2u, lg.h2id, lg.upHeld = nil, 0, 0
	hu.streamEnded()
}

// cancel resets lg's stream (the client went away, or the leg gave up).
func (hu *h2Upstream) cancel(lg *leg) {
	if lg.h2id != 0 {
		_ = hu.codec.WriteRST(lg.h2id, h2.ErrCodeCancel)
		lg.lp.e.m.H2UpReset("sent", h2.ErrCodeCancel.String()).Inc()
		delete(hu.streams, lg.h2id)
		if lg.upHeld > 0 {
			hu.codec.Consumed(lg.h2id, lg.upHeld)
		}
		hu.flush()
	} else {
		for i, p := range hu.pending {
			if p == lg {
				hu.pending = append(hu.pending[:i], hu.pending[i+1:]...)
				break
			}
		}
	}
	lg.h2u, lg.h2id, lg.upHeld = nil, 0, 0
	hu.streamEnded()
}

func (hu *h2Upstream) streamEnded() {
	if len(hu.streams) == 0 {
		hu.idle = hu.lp.nowNano()
		if (hu.goaway || hu.retired) && hu.state == upActive {
			hu.close()
		}
	}
}

// close ends an idle connection politely.
func (hu *h2Upstream) close() {
	if hu.state == upClosed {
		return
	}
	if hu.codec != nil {
		_ = hu.codec.WriteGoAway(h2.ErrCodeNo, nil)
		hu.flushNow()
	}
	hu.state = upClosed
	hu.forget()
	hu.dropStreams()
	hu.lp.flushOut()
	if hu.c != nil {
		_ = hu.c.Close()
	}
}

// sweep closes the connection after ttl without streams.
func (hu *h2Upstream) sweep(now int64, ttl time.Duration) {
	if hu.state == upActive && len(hu.streams) == 0 && now-hu.idle > int64(ttl) {
		hu.close()
	}
}

// --- h2.Handler: the endpoint's frames ---

// OnHeaders implements h2.Handler.
func (hu *h2Upstream) OnHeaders(id uint32, h *h2.Head, end bool) {
	lg := hu.streams[id]
	if lg == nil {
		return
	}
	lg.lastRespAt = hu.lp.nowNano()
	switch h.Kind {
	case h2.KindInformational:
		if !(lg.sent100 && h.Status == 100) {
			lg.resp = msg.Response{Status: h.Status, Fields: h.Fields, ContentLength: -1}
			lg.ds.respInterim(lg, &lg.resp)
		}
	case h2.KindResponse:
		if (h.Status == 502 || h.Status == 503) && lg.canRetry("status", h.Status) {
			lg.failed("status_"+statusToken(h.Status), h.Status, false)
			return
		}
		lg.respHead = true
		lg.respStatus = h.Status
		if end && lg.grpc {
			lg.grpcStatus = grpcStatusField(h.Fields) // trailers-only
		}
		lg.resp = msg.Response{Status: h.Status, Fields: h.Fields, ContentLength: h.ContentLength}
		switch {
		case end:
			lg.resp.Body = msg.BodyNone
		case h.ContentLength >= 0:
			lg.resp.Body = msg.BodyLength
		default:
			lg.resp.Body = msg.BodyStream
		}
		if end {
			// No body: an HTTP/1 client must be told its length is 0, or it
			// would read until close. A HEAD keeps the length it announced.
			lg.resp.ContentLength = 0
			if string(lg.x.Req.Method) == "HEAD" {
				lg.resp.ContentLength = h.ContentLength
			}
		}
		if lg.ws && !end && h.Status >= 200 && h.Status < 300 {
			lg.openH2Tunnel()
		}
		lg.ds.respHead(lg, &lg.resp, false)
		if end && lg.h2u == hu {
			lg.ds.respEnd(lg, nil)
			lg.finish(true)
		}
	case h2.KindTrailers:
		if lg.grpc {
			lg.grpcStatus = grpcStatusField(h.Fields)
		}
		if lg.respHead {
			lg.ds.respEnd(lg, msg.FilterTrailers(h.Fields))
			lg.finish(true)
		}
	}
}

// OnData implements h2.Handler: response DATA to the downstream; credit back
// to the endpoint only as far as the downstream has room.
func (hu *h2Upstream) OnData(id uint32, data []byte, end bool) {
	lg := hu.streams[id]
	if lg == nil || !lg.respHead {
		hu.codec.Consumed(id, len(data))
		return
	}
	lg.lastRespAt = hu.lp.nowNano()
	if len(data) > 0 {
		if lg.tunnel {
			hu.lp.e.m.WSBytes[tunUpstream].Add(len(data))
		}
		lg.respBytes += int64(len(data))
		lg.ds.respData(lg, data)
		if lg.h2u != hu {
			hu.codec.Consumed(id, len(data)) // the downstream gave up on it
			return
		}
		if lg.ds.roomFor(lg) {
			hu.codec.Consumed(id, len(data)+lg.upHeld)
			lg.upHeld = 0
		} else {
			lg.upHeld += len(data)
			hu.lp.e.m.H2FlowStall("response").Inc()
		}
	}
	if end {
		lg.ds.respEnd(lg, nil)
		lg.finish(true)
	}
}

// OnReset implements h2.Handler: the endpoint reset a stream.
func (hu *h2Upstream) OnReset(id uint32, code h2.ErrCode) {
	hu.lp.e.m.H2UpReset("received", code.String()).Inc()
	lg := hu.streams[id]
	if lg == nil {
		return
	}
	delete(hu.streams, id)
	lg.h2u, lg.h2id = nil, 0
	hu.streamEnded()
	switch {
	case code == h2.ErrCodeCancel:
		// The endpoint cancelled the stream: the client's stream is
		// cancelled too (never retried: the endpoint chose to stop).
		lg.upCancel = true
		lg.abortMid("upstream_cancel")
	case lg.respHead:
		lg.abortMid("reset_mid_body")
	case code == h2.ErrCodeRefusedStream:
		lg.failed("refused_stream", 503, false) // not processed: safe to retry
	default:
		lg.failed("reset", 502, false)
	}
}

// OnStreamError implements h2.Handler: the endpoint's response broke the
// protocol; the codec reset the stream.
func (hu *h2Upstream) OnStreamError(err *h2.StreamError) {
	lg := hu.streams[err.StreamID]
	if lg == nil {
		return
	}
	delete(hu.streams, err.StreamID)
	lg.h2u, lg.h2id = nil, 0
	hu.streamEnded()
	if lg.respHead {
		lg.abortMid("bad_response_body")
		return
	}
	lg.protocolError("h2_" + err.Token)
}

// OnGoAway implements h2.Handler: the endpoint is going away. Streams it
// did not process are retried elsewhere; the others finish; no new stream
// goes on this connection.
func (hu *h2Upstream) OnGoAway(_ uint32, code h2.ErrCode, _ []byte, unprocessed []uint32) {
	hu.lp.e.m.H2UpGoAway(code.String()).Inc()
	hu.goaway = true
	hu.forget()
	for _, id := range unprocessed {
		lg := hu.streams[id]
		if lg == nil {
			continue
		}
		delete(hu.streams, id)
		lg.h2u, lg.h2id = nil, 0
		lg.failed("goaway_unprocessed", 503, false)
	}
	if len(hu.streams) == 0 {
		hu.close()
	}
}

// OnWindowUpdate implements h2.Handler: request DATA that waited for the
// endpoint's window goes now, and the downstreams may send more.
func (hu *h2Upstream) OnWindowUpdate(id uint32) {
	if id != 0 {
		if lg := hu.streams[id]; lg != nil {
			lg.pushUp(true)
		}
		return
	}
	for _, lg := range hu.streams {
		if len(lg.upPend) > 0 || lg.upPendEnd {
			lg.pushUp(true)
		}
	}
}

// OnSettings implements h2.Handler: the endpoint's concurrency may have
// grown; pending streams do not wait (they go at connect), nothing to do.
func (hu *h2Upstream) OnSettings(h2.Settings) {
	hu.settled = true
	if len(hu.pending) > 0 && hu.state == upActive {
		hu.openPending()
	}
}

// OnPing implements h2.Handler.
func (hu *h2Upstream) OnPing([8]byte, bool) {}

var (
	methodCONNECT = []byte("CONNECT")
	nameTE        = []byte("te")
	valueTrailers = []byte("trailers")
)

var _ h2.Handler = (*h2Upstream)(nil)
