// SPDX-License-Identifier: GPL-3.0-only

package engine

import (
	"net/netip"
	"time"

	"github.com/expressgateway/expressgateway/codecs/h1"
	"github.com/expressgateway/expressgateway/codecs/msg"
	"github.com/expressgateway/expressgateway/guards"
	"github.com/expressgateway/expressgateway/lb"
	"github.com/expressgateway/expressgateway/stages"
)

// downstream is what a leg needs from the session that owns its exchange
// (ARCHITECTURE.md): an HTTP/1 connection, or one stream of an HTTP/2
// connection. Every method runs on the loop that owns both.
type downstream interface {
	// upstreamReady: the leg has a connection and the encoded request head;
	// the session sends it, then the body as it has it (lg.sendBody), or
	// takes the whole exchange off the loop.
	upstreamReady(lg *leg, u *upstream, head []byte)
	// respInterim relays a 1xx (not 101) response.
	respInterim(lg *leg, r *msg.Response)
	// respHead starts the response; untilClose says the upstream delimits
	// the body by closing.
	respHead(lg *leg, r *msg.Response, untilClose bool)
	// respData forwards response body bytes.
	respData(lg *leg, b []byte)
	// respEnd ends the response body, with trailers (already filtered).
	respEnd(lg *leg, trailers []msg.Field)
	// respondLocal answers with a response the gateway makes itself
	// (x.Status, x.Reason); nothing of a response went out yet.
	respondLocal(x *stages.Exchange)
	// respAbort ends an exchange whose response already started: the
	// session resets the stream or closes the connection.
	respAbort(lg *leg)
	// exchangeDone: the leg is finished (upstream released, accounted,
	// logged); the session moves on.
	exchangeDone(lg *leg)
	// slowReader is asked after response bytes were forwarded: whether the
	// client is too slow to keep reading the upstream on the loop; the
	// session may then move the rest of the response off the loop.
	slowReader(lg *leg, u *upstream) bool
	// roomFor reports whether the session can take more response bytes for
	// lg now (a paused upstream is read again when it can).
	roomFor(lg *leg) bool
	// bodyDrained: the upstream took all the request body it was given;
	// the session may send (or credit) more.
	bodyDrained(lg *leg)
}

// maxUnprocessedRetries bounds the retries of streams an h2 endpoint
// refused or did not process (REFUSED_STREAM, GOAWAY).
const maxUnprocessedRetries = 3

// leg is the upstream side of one exchange: acquire a connection for the
// picked endpoint (pool or dial), send, receive, retry, the per-try and
// header timers, endpoint accounting and the access-log line. One leg type
// serves every downstream protocol; the upstream codec (h1 today) sits
// below it in up_h1.go. Owned by the loop of its session.
type leg struct {
	lp *loop
	l  *listenerRT
	x  *stages.Exchange
	ds downstream
	ip []byte // textual client IP for X-Forwarded-For and the access log
	// identity is the verified TLS client certificate as
	// client_identity_header carries it; nil without one.
	identity []byte
	// peer and local are the client's address and the one it connected
	// to (from a PROXY header when a balancer sent one), for a PROXY
	// header to the upstream.
	peer, local netip.AddrPort

	proto    string // the downstream protocol, for the access log: "h1", "h2"
	streamID uint32 // the HTTP/2 stream, 0 for HTTP/1

	up         *upstream   // an HTTP/1 upstream connection (up_h1.go), or
	h2u        *h2Upstream // an HTTP/2 one and the leg's stream on it (up_h2.go)
	h2id       uint32      // 0 until the stream is open
	h3u        *h3Upstream // an HTTP/3 connection (up_h3.go), and
	h3s        *h3UpStream // the leg's stream on it, nil until open
	upPend     []byte      // request DATA the h2 stream's window did not take yet
	upPendEnd  bool        // ... and the end of the request after it
	upPendTrl  []msg.Field // ... with these trailers
	upPendTrlB []byte
	// upBatch is the h2 upstream whose end-of-round flush writes upPend:
	// it holds this round's small request DATA chunks, not DATA the
	// windows refused (h2Upstream.batch).
	upBatch      *h2Upstream
	upHeld       int // response DATA from the h2 upstream not credited back yet
	started      time.Time
	attempts     int
	epBegun      bool
	counted      bool // holds a slot of lp.pending
	attemptStart int64
	upstreamAddr string

	staleRetried bool  // the keep-alive race was retried once already
	gotBytes     bool  // some response byte arrived on the current connection
	reqBodyDone  bool  // the request body went upstream in full (or there is none)
	bodySent     bool  // some body bytes went upstream: never retry
	sent100      bool  // the gateway answered Expect: 100-continue itself
	reqSentAt    int64 // when the request finished going upstream
	bodyBytes    int64

	resp        msg.Response // the neutral view of the upstream's response head
	respHead    bool
	respStatus  int
	respBytes   int64
	lastRespAt  int64
	respPumping bool // the response body is pumped off-loop

	// ws: the exchange asks for a WebSocket upgrade (websocket.go); its
	// upstream connection is a fresh one and never pooled. wsKey is the
	// Sec-WebSocket-Key the upstream's 101 must answer.
	ws    bool
	wsKey []byte
	// tunnel: the upstream answered 101 and the exchange became a tunnel
	// (tunnel.go); it is logged once the tunnel ends.
	tunnel bool

	// grpc: the request is gRPC (grpc.go); grpcStatus is the grpc-status
	// it ended with (-1: none seen). deadline (UnixNano, 0: none) is the
	// route's timeout, shortened by grpc-timeout. upCancel: the upstream
	// reset the stream with CANCEL, which the client gets as CANCEL too.
	grpc       bool
	grpcStatus int
	deadline   int64
	upCancel   bool
	// grpcWeb: a binary gRPC-Web request from an HTTP/1.1 client, sent to
	// an HTTP/2 endpoint as native gRPC with this content-type (grpc.go).
	grpcWeb []byte

	// A WebSocket stream an h2c endpoint accepted (extended CONNECT both
	// ways): it stays an ordinary stream of the leg, counted as a tunnel.
	h2Tunnel  bool
	tunOpened int64
	lastReqAt int64
}

// openH2Tunnel: the h2c endpoint answered 2xx to the extended CONNECT.
func (lg *leg) openH2Tunnel() {
	lg.tunnel, lg.h2Tunnel = true, true
	lg.tunOpened = lg.lp.nowNano()
	lg.lastReqAt = lg.tunOpened
	lg.lp.e.m.WSActive.Add(1)
}

// grpcEnder is a session that can end a started gRPC response with a
// status of the gateway's own (trailers), as HTTP/2 streams can.
type grpcEnder interface {
	endGRPC(lg *leg, code int, reason string)
}

// tunnelOpener is a session that can carry a WebSocket tunnel: the leg
// hands it the upstream connection whose 101 (head of headLen bytes, still
// in the connection's inbound buffer) completed the handshake.
type tunnelOpener interface {
	openTunnel(lg *leg, u *upstream, headLen int)
}

// reset readies the leg for a new exchange.
func (lg *leg) reset() {
	lg.up = nil
	lg.h2u, lg.h2id, lg.upHeld = nil, 0, 0
	lg.h3u, lg.h3s = nil, nil
	lg.upPend, lg.upPendEnd, lg.upPendTrl = lg.upPend[:0], false, lg.upPendTrl[:0]
	lg.started = lg.lp.now()
	lg.attempts = 0
	lg.epBegun, lg.counted = false, false
	lg.attemptStart = 0
	lg.upstreamAddr = ""
	lg.reqBodyDone, lg.bodySent, lg.sent100, lg.staleRetried, lg.gotBytes = false, false, false, false, false
	lg.reqSentAt, lg.bodyBytes = 0, 0
	lg.respHead, lg.respStatus, lg.respBytes, lg.lastRespAt, lg.respPumping = false, 0, 0, 0, false
	lg.ws, lg.wsKey, lg.tunnel = false, nil, false
	lg.grpc, lg.grpcStatus, lg.deadline, lg.upCancel = false, -1, 0, false
	lg.grpcWeb = nil
	lg.h2Tunnel, lg.tunOpened, lg.lastReqAt = false, 0, 0
}

// setDeadline starts the exchange's deadline: the route's timeout, or a
// gRPC request's grpc-timeout when that is shorter.
func (lg *leg) setDeadline() {
	var d time.Duration
	if x := lg.x; x.Route != nil && lg.l.routeTimeout != nil {
		d = lg.l.routeTimeout[x.Route]
	}
	if lg.grpc {
		if v, ok := parseGRPCTimeout(lg.x.Req.Field("grpc-timeout")); ok && (d == 0 || v < d) {
			d = v
		}
	}
	if d > 0 {
		lg.deadline = lg.lp.nowNano() + int64(d)
	}
}

// deadlineExceeded ends an exchange past its deadline: the upstream stream
// or connection is dropped (RST_STREAM(CANCEL) for HTTP/2); the client gets
// 504 (gRPC: DEADLINE_EXCEEDED) or, mid-response, the end of a gRPC stream
// with that status, or the reset of any other.
func (lg *leg) deadlineExceeded() {
	lg.lp.e.guardHit(lg.x, guards.DeadlineExceeded, guards.Stream)
	x := lg.x
	if !lg.respHead {
		lg.dropUpstream()
		lg.endpointDone(504, false)
		x.Status, x.Reason = 504, "deadline_exceeded"
		lg.ds.respondLocal(x)
		return
	}
	if e, ok := lg.ds.(grpcEnder); ok && lg.grpc {
		lg.dropUpstream()
		lg.endpointDone(504, false)
		lg.grpcStatus = grpcDeadlineExceeded
		e.endGRPC(lg, grpcDeadlineExceeded, "deadline_exceeded")
		lg.record(lg.respStatus, "deadline_exceeded")
		lg.ds.exchangeDone(lg)
		return
	}
	lg.abortMid("deadline_exceeded")
}

// admit takes a slot of the listener's queue and counts the request for
// the retry budget; false when the queue is full (the caller answers 503).
func (lg *leg) admit() bool {
	l := lg.l
	if lg.lp.pending[l] >= l.cfg.QueueSize {
		lg.lp.e.guardHit(lg.x, guards.QueueFull, guards.Stream)
		return false
	}
	lg.lp.pending[l]++
	lg.counted = true
	lg.x.Cluster.LB.RecordRequestAt(lg.lp.now().Unix()) // the retry budget is a share of these
	return true
}

// acquire takes a pooled connection to the picked endpoint or dials one.
func (lg *leg) acquire() {
	ep := lg.x.Pick.Endpoint
	cl := lg.x.Cluster
	lg.attempts++
	lg.attemptStart = lg.lp.nowNano()
	lg.gotBytes = false
	ep.Begin()
	lg.epBegun = true
	lg.upstreamAddr = ep.Address()
	if cl.H2 {
		lg.lp.h2For(cl, ep, lg.l.upConnect).attach(lg)
		return
	}
	if cl.H3 {
		lg.lp.h3For(cl, ep, lg.l.upConnect).attach(lg)
		return
	}
	p := lg.lp.poolFor(ep, lg.lp.e.clusters.MaxIdle(cl), lg.l.upIdle)
	var u *upstream
	if !lg.ws { // a connection that may become a tunnel is always a fresh one
		u = p.get(lg.lp.e.clusters.TLS(cl) != nil)
	}
	if u != nil {
		lg.lp.e.clusters.countReuse(cl)
		u.owner = lg
		u.state = upActive
		u.reused = true
		lg.up = u
		lg.onReady(u)
		return
	}
	u = newUpstream(lg.lp, cl, ep)
	u.owner = lg
	lg.up = u
	u.dial(lg.l.upConnect)
}

// onReady encodes the request head for u and hands it to the session.
func (lg *leg) onReady(u *upstream) {
	r := lg.x.Req
	opts := *lg.reqOpts()
	opts.ClientIP = lg.ip
	opts.Identity = lg.identity
	opts.DropExpect = lg.sent100
	fs, arena, added := msg.ForwardRequest(lg.lp.fwd.Fields[:0], lg.lp.fwd.Arena[:0], r.Fields, &opts)
	lg.lp.fwd.Fields, lg.lp.fwd.Arena = fs[:0], arena[:0]
	var body h1.BodyKind
	switch r.Body {
	case msg.BodyLength:
		body = h1.BodyLength
	case msg.BodyStream:
		body = h1.BodyChunked
	}
	if lg.ws && lg.proto == "h2" {
		// An RFC 8441 extended CONNECT: the handshake is a bodyless GET
		// with the key the gateway made (the client sent none, and any it
		// sent is not the one our check expects).
		body = h1.BodyNone
		fs, added = dropField(fs, added, "sec-websocket-key")
	}
	pre := lg.lp.scratch[:0]
	if u.noPool && !u.reused {
		// A fresh connection for this client: the PROXY header first.
		pre = appendProxyHeader(pre, lg.lp.e.clusters.ProxyProtocol(lg.x.Cluster), lg.peer, lg.local)
	}
	head := h1.AppendRequestHead(pre, r.Method, r.Path, r.Authority, fs, added, body, r.ContentLength, r.Fields)
	if lg.ws {
		// The only upgrade ever forwarded (ForwardRequest dropped the
		// client's Upgrade and Connection).
		head = append(head[:len(head)-2], wsUpgradeFields...)
		if lg.proto == "h2" {
			head = append(append(append(head, "Sec-WebSocket-Key: "...), lg.wsKey...), '\r', '\n')
		}
		head = append(head, '\r', '\n')
	}
	lg.lp.scratch = head[:0]
	u.beginResponse()
	lg.ds.upstreamReady(lg, u, head)
}

// reqOpts are the forwarding options for the request, by the protocol it
// was received with.
func (lg *leg) reqOpts() *h1.ProxyOptions {
	switch lg.proto {
	case "h2":
		return &lg.l.proxyOpts2
	case "h3":
		return &lg.l.proxyOpts3
	}
	return &lg.l.proxyOpts
}

// respOpts are the forwarding options for the response, by the protocol
// the upstream answered with.
func (lg *leg) respOpts() *h1.ProxyOptions {
	if lg.h2u != nil {
		return &lg.l.proxyOpts2
	}
	if lg.h3u != nil {
		return &lg.l.proxyOpts3
	}
	return &lg.l.proxyOpts
}

// muxed reports whether the leg's upstream is a stream of a multiplexed
// connection (HTTP/2 or HTTP/3), not an HTTP/1 connection of its own.
func (lg *leg) muxed() bool { return lg.h2u != nil || lg.h3u != nil }

// sendBody writes request body bytes upstream in the upstream's framing
// (chunked when the length is unknown); end finishes the body with trailers.
func (lg *leg) sendBody(data []byte, end bool, trailers []msg.Field) {
	if lg.h2u != nil {
		lg.sendBodyH2(data, end, trailers)
		return
	}
	if lg.h3s != nil {
		lg.sendBodyH3(data, end, trailers)
		return
	}
	u := lg.up
	chunked := lg.x.Req.Body == msg.BodyStream
	if len(data) > 0 {
		if chunked {
			lg.lp.commitOut(h1.AppendChunk(lg.lp.outFor(u.c), data))
		} else {
			lg.lp.queue(u.c, data)
		}
		lg.bodySent = true
		lg.bodyBytes += int64(len(data))
	}
	if end {
		if chunked {
			lg.lp.commitOut(h1.AppendLastChunk(lg.lp.outFor(u.c), msg.FilterTrailers(trailers)))
		}
		lg.reqBodyDone = true
		lg.reqSentAt = lg.lp.nowNano()
	}
}

// sendBodyH2 writes request body bytes as DATA on the leg's stream as far
// as the endpoint's windows allow; the rest waits in upPend (bounded by what
// the downstream was credited: it is not credited again meanwhile).
func (lg *leg) sendBodyH2(data []byte, end bool, trailers []msg.Field) {
	if len(data) > 0 {
		lg.bodySent = true
		lg.bodyBytes += int64(len(data))
		if lg.h2Tunnel {
			lg.lastReqAt = lg.lp.nowNano()
			lg.lp.e.m.WSBytes[tunClient].Add(len(data))
		}
	}
	if end {
		lg.upPendEnd = true
		trailers = msg.FilterTrailers(trailers)
		b := lg.upPendTrlB[:0]
		fs := lg.upPendTrl[:0]
		for _, f := range trailers {
			start := len(b)
			b = append(b, f.Name...)
			mid := len(b)
			b = append(b, f.Value...)
			fs = append(fs, msg.Field{Name: b[start:mid:mid], Value: b[mid:len(b):len(b)]})
		}
		lg.upPendTrl, lg.upPendTrlB = fs, b
	}
	if hu := lg.h2u; !end && len(data) > 0 && hu != nil && lg.h2id != 0 &&
		(lg.upBatch == hu || len(lg.upPend) == 0 && len(data) < h2BatchMax) {
		// A small chunk (a gRPC message, one frame as the client sent
		// it) waits for the end of the round with the stream's others and
		// leaves in one frame with them (as response DATA does: respData).
		lg.upPend = append(lg.upPend, data...)
		if lg.upBatch != hu {
			lg.upBatch = hu
			hu.batch = append(hu.batch, lg)
			hu.flushRound()
		}
		return
	}
	if hu := lg.h2u; len(data) > 0 && len(lg.upPend) == 0 && hu != nil && lg.h2id != 0 {
		// Nothing waits before these bytes: they go into the codec's
		// output as far as the windows allow, without a copy into upPend
		// first (a gRPC stream's messages grew a fresh upPend per stream).
		// Only what the windows did not take waits there.
		last := lg.upPendEnd && len(lg.upPendTrl) == 0
		if n, err := hu.codec.WriteData(lg.h2id, data, last); err == nil {
			data = data[n:]
			if len(data) == 0 && last {
				lg.upPendEnd = false
				lg.reqBodyDone = true
				lg.reqSentAt = lg.lp.nowNano()
				hu.flush()
				return
			}
		}
	}
	if len(data) > 0 {
		lg.upPend = append(lg.upPend, data...)
	}
	lg.pushUp(false)
}

// pushUp writes pending request DATA, then the end of the request. When
// the endpoint's window opened (windowOpened) and everything went, the
// downstream may send more; from sendBody it is not told (it is the one
// sending, and would re-read what it has not consumed yet).
func (lg *leg) pushUp(windowOpened bool) {
	hu := lg.h2u
	if hu == nil || lg.h2id == 0 {
		return
	}
	if len(lg.upPend) > 0 {
		last := lg.upPendEnd && len(lg.upPendTrl) == 0
		n, err := hu.codec.WriteData(lg.h2id, lg.upPend, last)
		if err != nil {
			hu.flush()
			return
		}
		all := n == len(lg.upPend)
		lg.upPend = lg.upPend[:copy(lg.upPend, lg.upPend[n:])]
		if all && last {
			lg.upPendEnd = false
			lg.reqBodyDone = true
			lg.reqSentAt = lg.lp.nowNano()
		}
	}
	if len(lg.upPend) == 0 && lg.upPendEnd {
		var err error
		if len(lg.upPendTrl) > 0 {
			err = hu.codec.WriteTrailers(lg.h2id, lg.upPendTrl)
		} else {
			_, err = hu.codec.WriteData(lg.h2id, nil, true)
		}
		if err == nil {
			lg.upPendEnd = false
			lg.upPendTrl = lg.upPendTrl[:0]
			lg.reqBodyDone = true
			lg.reqSentAt = lg.lp.nowNano()
		}
	}
	hu.flush()
	if windowOpened && len(lg.upPend) == 0 {
		lg.ds.bodyDrained(lg)
	}
}

// bodyWritable reports whether request body bytes can go upstream now.
func (lg *leg) bodyWritable() bool {
	if lg.h2u != nil {
		return lg.h2id != 0
	}
	if lg.h3u != nil {
		return lg.h3s != nil
	}
	return lg.up != nil && lg.up.state == upActive
}

// upBacklog is how many request bytes the upstream side holds that the
// endpoint has not taken: the downstream holds its credit while it is large.
func (lg *leg) upBacklog() int {
	if lg.h2u != nil {
		return len(lg.upPend)
	}
	if lg.h3u != nil {
		if lg.h3s != nil {
			return lg.h3s.backlog()
		}
		return 0
	}
	if u := lg.up; u != nil && u.c != nil {
		lg.lp.flushOut()
		return u.c.OutboundBuffered()
	}
	return 0
}

// creditUp returns held response credit to an h2 upstream once the
// downstream has room again.
func (lg *leg) creditUp() {
	if lg.h3s != nil {
		lg.creditH3()
		return
	}
	if lg.upHeld > 0 && lg.h2u != nil && lg.h2id != 0 && lg.ds.roomFor(lg) {
		lg.h2u.codec.Consumed(lg.h2id, lg.upHeld)
		lg.upHeld = 0
		lg.h2u.flush()
	}
}

// onData parses the response head and forwards the body. What it consumes
// is discarded from the upstream's inbound buffer before the exchange
// finishes, so that the pool sees exactly what is left over.
func (lg *leg) onData(u *upstream) {
	buf, _ := u.c.Peek(-1)
	if len(buf) > 0 {
		lg.gotBytes = true
	}
	total := 0
	lg.lastRespAt = lg.lp.nowNano()
	if lg.tunnel {
		// The 101 is in; the session is waiting to move both sockets off
		// the loop. What the upstream sends meanwhile stays buffered for
		// the tunnel, bounded like a pipelined flood.
		if len(buf) > lg.l.limits.MaxHeaderBytes+lg.l.inflight {
			lg.abortMid("tunnel_wait_overflow")
		}
		return
	}
	for !lg.respHead {
		if len(buf) == 0 {
			break
		}
		n, done, err := u.parser.Parse(buf, lg.x.Req.Method, &u.resp)
		if err != nil {
			lg.failed("bad_response", 502, false)
			return
		}
		if !done {
			break
		}
		buf = buf[n:]
		total += n
		if u.resp.Status < 200 {
			if u.resp.Status == 101 {
				t, ok := lg.ds.(tunnelOpener)
				if !lg.ws || !ok {
					// Only a WebSocket upgrade is ever forwarded: a 101 to
					// anything else is the upstream breaking the protocol.
					// The client gets 502, the endpoint's health is not
					// charged.
					lg.protocolError("unexpected_upgrade")
					return
				}
				if !ws101Valid(u.resp.Headers, lg.wsKey) {
					lg.protocolError("bad_upgrade")
					return
				}
				lg.respHead, lg.respStatus, lg.tunnel = true, 101, true
				lg.resp = neutralResponse(&u.resp)
				t.openTunnel(lg, u, total)
				return
			}
			if !(lg.sent100 && u.resp.Status == 100) {
				lg.resp = neutralResponse(&u.resp)
				lg.ds.respInterim(lg, &lg.resp)
			}
			continue
		}
		if (u.resp.Status == 502 || u.resp.Status == 503) && lg.canRetry("status", u.resp.Status) {
			lg.failed("status_"+statusToken(u.resp.Status), u.resp.Status, false)
			return
		}
		lg.respHead = true
		lg.respStatus = u.resp.Status
		lg.resp = neutralResponse(&u.resp)
		lg.ds.respHead(lg, &lg.resp, u.resp.Body == h1.BodyUntilClose)
		u.body.ResetResponse(u.resp.Body, u.resp.ContentLength, h1.Limits{MaxTrailerBytes: lg.l.limits.MaxTrailerBytes, MaxChunkExtension: lg.l.limits.MaxChunkExtension})
		if u.resp.Body.Empty(u.resp.ContentLength) {
			// No body byte to wait for: the exchange is complete with its head.
			_, _ = u.c.Discard(total)
			lg.ds.respEnd(lg, nil)
			lg.finish(true)
			return
		}
	}
	if lg.respHead && len(buf) > 0 {
		n, done, failed := lg.consumeBody(u, buf)
		if failed {
			return
		}
		total += n
		if done {
			_, _ = u.c.Discard(total)
			lg.ds.respEnd(lg, msg.FilterTrailers(u.body.Trailers()))
			lg.finish(true)
			return
		}
	}
	if total > 0 {
		_, _ = u.c.Discard(total)
	}
	if lg.respHead && lg.reqBodyDone && u.c.OutboundBuffered() == 0 {
		lg.ds.slowReader(lg, u)
	}
}

// consumeBody decodes response body bytes of u from buf and forwards the
// payload; it reports how much of buf it used, whether the body ended
// there, and whether the exchange failed (already handled).
func (lg *leg) consumeBody(u *upstream, buf []byte) (used int, done, failed bool) {
	for len(buf) > 0 {
		n, data, end, err := u.body.Decode(buf)
		if err != nil {
			lg.abortMid("bad_response_body")
			return used, false, true
		}
		if len(data) > 0 {
			lg.respBytes += int64(len(data))
			lg.ds.respData(lg, data)
			if lg.up != u {
				return used, false, true // the downstream gave up on it
			}
		}
		buf = buf[n:]
		used += n
		if end {
			return used, true, false
		}
		if n == 0 {
			break
		}
	}
	return used, false, false
}

// neutralResponse is the msg view of an HTTP/1 response head (no copy).
func neutralResponse(r *h1.Response) msg.Response {
	m := msg.Response{Status: r.Status, Reason: r.Reason, Fields: r.Headers, ContentLength: r.ContentLength}
	switch r.Body {
	case h1.BodyLength:
		m.Body = msg.BodyLength
	case h1.BodyChunked, h1.BodyUntilClose:
		m.Body = msg.BodyStream
	}
	return m
}

// finish completes the exchange: the upstream goes back to its pool when it
// is clean, the endpoint and the request are accounted, the access log
// written; then the session moves on.
func (lg *leg) finish(ok bool) {
	if hu := lg.h2u; hu != nil {
		hu.release(lg)
	}
	if hu := lg.h3u; hu != nil {
		hu.release(lg)
	}
	u := lg.up
	lg.up = nil
	if u != nil {
		// A 2xx to CONNECT would have made the connection a tunnel: never
		// pooled (CONNECT is refused before it gets here; this is the
		// second lock on that door).
		reusable := ok && lg.reqBodyDone && u.resp.KeepAlive && u.resp.Body != h1.BodyUntilClose &&
			string(lg.x.Req.Method) != "CONNECT" && !lg.ws
		u.owner = nil
		if reusable {
			u.release()
		} else {
			u.close()
		}
	}
	lg.endpointDone(lg.respStatus, false)
	lg.record(lg.respStatus, "")
	lg.ds.exchangeDone(lg)
}

// endpointDone reports the outcome to the load balancer and releases the
// listener queue slot; each at most once per exchange.
func (lg *leg) endpointDone(status int, connectFailed bool) {
	if lg.epBegun {
		lg.epBegun = false
		lg.x.Pick.Endpoint.End(status, lg.lp.since(lg.started), connectFailed)
	}
	if lg.counted {
		lg.counted = false
		lg.lp.pending[lg.l]--
	}
}

// record counts the request and writes its access-log line.
func (lg *leg) record(status int, reason string) {
	x := lg.x
	rc := lg.l.noRoute
	if x.Route != nil {
		if r := lg.l.routes[x.Route]; r != nil {
			rc = r
		}
	}
	rc.inc(status)
	if lg.h2Tunnel {
		lg.h2Tunnel = false
		lg.lp.e.m.WSActive.Add(-1)
		r := reason
		if r == "" {
			r = "closed"
		}
		lg.lp.e.m.WSClosed(r).Inc()
	}
	if lg.grpc {
		lg.l.grpcCount(lg.grpcStatus).Inc()
	}
	if !lg.tunnel {
		// A tunnel's lifetime is not a request latency.
		lg.lp.e.observeDuration(lg.l, lg.lp.since(lg.started))
	}
	if !lg.l.accessLog || lg.lp.alog == nil {
		return
	}
	a := accessEntry{
		proto: lg.proto, ip: lg.ip, method: x.Req.Method, target: x.Req.Path,
		status: status, bytes: lg.respBytes, dur: lg.lp.since(lg.started),
		upstream: lg.upstreamAddr, reason: reason, stream: lg.streamID, grpcStatus: -1,
	}
	if x.Route != nil {
		a.routed, a.route, a.cluster = true, x.Route.Name, x.Cluster.Name
	}
	if lg.grpc {
		a.grpcStatus = lg.grpcStatus
	}
	lg.lp.logAccess(lg.l, &a)
}

// accessEntry is one access-log line.
type accessEntry struct {
	proto                            string
	ip, method, target               []byte
	status                           int
	bytes                            int64
	dur                              time.Duration
	route, cluster, upstream, reason string
	stream                           uint32
	grpcStatus                       int  // -1: none
	routed                           bool // route and cluster are set
}

// logAccess formats a on the loop into its bounded buffer; one writer
// goroutine writes the batches (engine/accesslog): the loop never waits on
// I/O.
func (lp *loop) logAccess(l *listenerRT, a *accessEntry) {
	b := lp.alog
	if !l.accessLog || b == nil {
		return
	}
	b.Begin(lp.now())
	b.Str("type", "access")
	b.Str("listener", l.cfg.Name)
	b.Str("proto", a.proto)
	b.Bytes("client", a.ip)
	b.Bytes("method", a.method)
	b.Bytes("target", a.target)
	b.Int("status", int64(a.status))
	b.Int("bytes", a.bytes)
	b.Dur("duration", a.dur)
	if a.routed {
		b.Str("route", a.route)
		b.Str("cluster", a.cluster)
	}
	if a.upstream != "" {
		b.Str("upstream", a.upstream)
	}
	if a.reason != "" {
		b.Str("reason", a.reason)
	}
	if a.stream != 0 {
		b.Int("stream", int64(a.stream))
	}
	if a.grpcStatus >= 0 {
		b.Int("grpc_status", int64(a.grpcStatus))
	}
	b.End()
}

// dropUpstream closes the leg's upstream connection, if any.
func (lg *leg) dropUpstream() {
	if hu := lg.h2u; hu != nil {
		hu.cancel(lg)
	}
	if hu := lg.h3u; hu != nil {
		hu.cancel(lg)
	}
	if u := lg.up; u != nil {
		lg.up = nil
		u.owner = nil
		u.close()
	}
}

// failed handles a failure before any response byte reached the client:
// retry on another endpoint when that is safe, else answer status.
func (lg *leg) failed(reason string, status int, connectFailed bool) {
	lg.dropUpstream()
	x := lg.x
	cl := x.Cluster
	lg.lp.e.m.UpstreamFailure(cl.Name, reason).Inc()
	ep := x.Pick.Endpoint
	if lg.epBegun {
		lg.epBegun = false
		ep.End(status, lg.lp.since(lg.started), connectFailed)
	}
	lg.lp.e.log.Warn().Str("cluster", cl.Name).Str("endpoint", ep.Address()).Str("reason", reason).Msg("upstream failure")
	if lg.canRetry(reason, status) {
		x.Exclude = ep
		p, err := cl.LB.Pick(x, ep)
		if err == nil {
			lg.lp.e.m.UpstreamFailure(cl.Name, "retried").Inc()
			x.Pick = p
			lg.acquire()
			return
		}
	}
	x.Status, x.Reason = status, "upstream_"+reason
	lg.ds.respondLocal(x)
}

// protocolError answers 502 for an upstream that broke the protocol before
// any response byte reached the client. It is counted as the upstream's
// failure but not charged to the endpoint's health: a client can provoke
// it, and must not be able to push endpoints into ejection.
func (lg *leg) protocolError(reason string) {
	lg.dropUpstream()
	x := lg.x
	lg.lp.e.m.UpstreamFailure(x.Cluster.Name, reason).Inc()
	lg.lp.e.log.Warn().Str("cluster", x.Cluster.Name).Str("endpoint", x.Pick.Endpoint.Address()).Str("reason", reason).Msg("upstream protocol error")
	lg.endpointDone(0, false)
	x.Status, x.Reason, x.CloseConn = 502, "upstream_"+reason, true
	lg.ds.respondLocal(x)
}

// canRetry: idempotent method, nothing of the body sent, nothing of the
// response seen, attempts and the cluster's retry budget left.
func (lg *leg) canRetry(reason string, status int) bool {
	if lg.bodySent || lg.respHead {
		return false
	}
	connectFailed := reason == "connect_failed" || reason == "connect_timeout"
	r := lg.x.Req
	if !r.Body.Empty(r.ContentLength) && !connectFailed {
		// A body can go again only when none of it left: after a connect
		// failure it is still whole where the session keeps it (the
		// client's inbound buffer, the stream's held DATA).
		return false
	}
	if reason == "refused_stream" || reason == "goaway_unprocessed" {
		// The endpoint said it did not process the stream: any method may
		// go elsewhere, without spending the retry budget.
		return lg.attempts <= maxUnprocessedRetries
	}
	return lg.lp.e.clusters.AllowRetry(lg.x.Cluster, lg.attempts, lg.x.Req.Method, reason, status)
}

// abortMid ends an exchange whose response head already went out: the
// only honest signal left is the session's reset or close.
func (lg *leg) abortMid(reason string) {
	lg.lp.e.m.UpstreamFailure(lg.x.Cluster.Name, reason).Inc()
	lg.dropUpstream()
	lg.endpointDone(502, false)
	lg.record(lg.respStatus, reason)
	lg.ds.respAbort(lg)
}

// onUpstreamClosed: the upstream went away while it served us.
func (lg *leg) onUpstreamClosed(u *upstream) {
	if lg.up != u {
		return
	}
	if !lg.respHead {
		if u.reused && !lg.staleRetried && !lg.bodySent && lg.x.Req.Body == msg.BodyNone &&
			lb.IdempotentMethod(string(lg.x.Req.Method)) && !lg.gotBytes {
			// The keep-alive race: the endpoint closed an idle connection
			// as the request went out on it, before any response byte. It
			// is not the endpoint failing: the request goes again once, on a
			// fresh connection to the same endpoint, without spending the
			// retry budget or touching the endpoint's health.
			lg.staleRetried = true
			lg.lp.e.m.UpstreamFailure(lg.x.Cluster.Name, "stale_keepalive").Inc()
			u.owner = nil
			lg.up = nil
			nu := newUpstream(lg.lp, lg.x.Cluster, lg.x.Pick.Endpoint)
			nu.owner = lg
			lg.up = nu
			lg.attemptStart = lg.lp.nowNano()
			nu.dial(lg.l.upConnect)
			return
		}
		lg.failed("reset", 502, false)
		return
	}
	if u.resp.Body == h1.BodyUntilClose {
		lg.up = nil
		lg.ds.respEnd(lg, nil)
		lg.finish(true)
		return
	}
	lg.up = nil
	lg.abortMid("reset_mid_body")
}

// onTimer enforces the upstream side's deadlines; it reports whether it
// ended the exchange.
func (lg *leg) onTimer(now int64) bool {
	u := lg.up
	if (u == nil && !lg.muxed()) || lg.respPumping {
		return false
	}
	lg.creditUp()
	l := lg.l
	if lg.deadline != 0 && now > lg.deadline {
		lg.deadlineExceeded()
		return true
	}
	if pt := lg.lp.e.clusters.PerTryTimeout(lg.x.Cluster); pt > 0 && !lg.respHead && now-lg.attemptStart > int64(pt) {
		lg.lp.e.guardHit(lg.x, guards.PerTryTimeout, guards.Stream)
		lg.failed("per_try_timeout", 504, false)
		return true
	}
	if lg.h2Tunnel {
		// A WebSocket stream: websocket_idle (either direction) and
		// websocket_max_duration instead of the HTTP timeouts.
		last := max(lg.lastRespAt, lg.lastReqAt)
		switch {
		case now-last > int64(l.wsIdle):
			lg.abortMid("idle_timeout")
			return true
		case l.wsMax > 0 && now-lg.tunOpened > int64(l.wsMax):
			lg.abortMid("max_duration")
			return true
		}
		return false
	}
	if lg.grpc {
		// A gRPC stream may be silent for as long as its deadline allows
		// (a server stream that waits for events): it is bounded by its
		// deadline and by the client's cancellation, not by the listener's
		// HTTP timeouts.
		return false
	}
	sent := lg.h2id != 0 || lg.h3s != nil || (u != nil && u.state == upActive)
	if sent && (lg.reqBodyDone || lg.ws) && !lg.respHead && lg.reqSentAt != 0 && now-lg.reqSentAt > int64(l.upRespHeader) {
		lg.lp.e.guardHit(lg.x, guards.UpstreamResponseHeaderTimeout, guards.Stream)
		lg.failed("response_header_timeout", 504, false)
		return true
	}
	if lg.respHead && now-lg.lastRespAt > int64(l.bodyIdle) {
		lg.abortMid("response_body_idle")
		return true
	}
	return false
}

func statusToken(s int) string {
	if s == 502 {
		return "502"
	}
	return "503"
}

// holdsHead reports whether a request head that came without the end of
// its stream (h2, h3) waits for the end or a first body byte before it is
// forwarded: a method whose requests rarely carry a body, with no
// content-length. Forwarded at once it would go to an HTTP/1.1 upstream
// with a chunked body, which strict servers refuse for a GET. Other
// requests (a POST, CONNECT, extended CONNECT, gRPC's streams) go on at
// once: their client may wait for the response before it sends.
func holdsHead(method, protocol []byte, contentLength int64) bool {
	if contentLength >= 0 || protocol != nil {
		return false
	}
	switch string(method) {
	case "GET", "HEAD", "OPTIONS", "DELETE", "TRACE":
		return true
	}
	return false
}
