// SPDX-License-Identifier: GPL-3.0-only

package engine

import (
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/expressgateway/expressgateway/codecs/h1"
	"github.com/expressgateway/expressgateway/codecs/msg"
	"github.com/expressgateway/expressgateway/stages"
)

type clientState uint8

const (
	csHead     clientState = iota // reading (or waiting for) a request head
	csUpstream                    // an exchange is in flight on the loop
	csDetached                    // the exchange runs in pump goroutines
	csClosing                     // flushing the last response, then close
	csClosed
)

// clientConn is the actor of one client connection. While attached it is
// owned by its event loop; while detached (csDetached) it is owned by the
// pump goroutines, and the loop does not touch it until they hand it back.
type clientConn struct {
	lp *loop
	l  *listenerRT
	c  gnet.Conn
	ip []byte // textual client IP for X-Forwarded-For

	state    clientState
	parser   h1.RequestParser
	req      h1.Request  // the wire head; Target and Host replaced by their normal forms
	mreq     msg.Request // the neutral head the pipeline reads (x.Req)
	norm     []byte      // the normalised path and authority mreq points into
	perr     msg.Error   // the codec's verdict on a malformed head
	x        stages.Exchange
	requests int

	headStart int64 // first byte of the current head, 0 while idle
	idleSince int64
	closeBy   int64 // csClosing: give up flushing after this

	// current exchange
	up           *upstream
	started      time.Time
	attempts     int
	epBegun      bool
	counted      bool // holds a slot of lp.pending
	closeAfter   bool
	reqBody      h1.BodyDecoder
	reqBodyDone  bool
	bodySent     bool // some body bytes went upstream: never retry
	bodyStart    int64
	bodyBytes    int64
	lastBodyAt   int64
	reqSentAt    int64
	respHead     bool
	respStatus   int
	respOut      h1.BodyKind
	respKeep     bool
	respBytes    int64
	lastRespAt   int64
	respPumping  bool // the response body is pumped off-loop
	buffering    bool // reading a small body in full before going upstream
	largeBody    bool // the body streams: the exchange leaves the loop
	sent100      bool // we answered Expect: 100-continue ourselves
	valOff       int
	processing   bool // inside readHeads: don't recurse
	upstreamAddr string
	attemptStart int64
	pending      *pendingDetach // a long exchange waiting to leave the loop
}

func newClientConn(lp *loop, l *listenerRT, c gnet.Conn, ip interface{ String() string }) *clientConn {
	cc := &clientConn{lp: lp, l: l, c: c, ip: []byte(ip.String())}
	cc.parser.Limits = l.limits
	cc.x.Req = &cc.mreq
	cc.x.Owner = cc
	cc.x.Forwarder = cc
	cc.x.Listener = l.view
	cc.x.ClientIP = addrIP(c.RemoteAddr())
	cc.idleSince = time.Now().UnixNano()
	// The first request's header_read starts at accept: a connection that
	// sends nothing is held for header_read, not for idle_keepalive.
	cc.headStart = cc.idleSince
	lp.clients[cc] = struct{}{}
	return cc
}

// onTraffic runs when the client sent bytes.
func (cc *clientConn) onTraffic() {
	switch cc.state {
	case csHead:
		cc.readHeads()
	case csUpstream:
		if cc.buffering {
			cc.checkBuffered()
			return
		}
		if cc.pending != nil {
			// The body waits in gnet's inbound buffer until the exchange can
			// leave the loop; a client that sends far more meanwhile is cut.
			if cc.c.InboundBuffered() > cc.l.limits.MaxHeaderBytes+cc.l.inflight {
				cc.lp.e.guardHit(&cc.x, "detach_wait_overflow")
				cc.abort()
			}
			return
		}
		if !cc.reqBodyDone && cc.up != nil && cc.up.state == upActive {
			cc.forwardReqBody()
			return
		}
		if cc.largeBody && !cc.reqBodyDone {
			// A long body arriving while its upstream is being dialed
			// (at most upstream_connect): gnet keeps reading it, so it is
			// bounded here and the exchange leaves the loop once connected.
			if cc.c.InboundBuffered() > cc.l.limits.MaxHeaderBytes+dialWaitFactor*cc.l.inflight {
				cc.lp.e.guardHit(&cc.x, "dial_wait_overflow")
				cc.abort()
			}
			return
		}
		// Pipelined bytes wait until the current response is done; a client
		// that floods them is cut off rather than buffered without bound.
		if cc.c.InboundBuffered() > cc.l.limits.MaxHeaderBytes+cc.l.inflight {
			cc.lp.e.guardHit(&cc.x, "pipeline_flood")
			cc.abort()
		}
	case csClosing, csClosed:
		_, _ = cc.c.Discard(-1)
	}
}

// readHeads parses and dispatches request heads while the connection is idle.
func (cc *clientConn) readHeads() {
	if cc.processing {
		return
	}
	cc.processing = true
	defer func() { cc.processing = false }()
	for cc.state == csHead {
		buf, _ := cc.c.Peek(-1)
		if len(buf) == 0 {
			return
		}
		if cc.headStart == 0 {
			cc.headStart = cc.lp.nowNano()
		}
		n, done, err := cc.parser.Parse(buf, &cc.req)
		if err != nil {
			cc.beginExchange()
			cc.perr = msg.Error{Status: 400, Token: "bad_request", Msg: err.Error()}
			if he, ok := err.(*h1.Error); ok {
				cc.perr = msg.Error{Status: he.Status, Token: he.Token, Msg: he.Msg}
			}
			cc.x.ParseErr = &cc.perr
			_, _ = cc.c.Discard(-1)
			cc.submit()
			return
		}
		if !done {
			return
		}
		_, _ = cc.c.Discard(n)
		cc.beginExchange()
		var merr *msg.Error
		if cc.norm, merr = cc.req.Neutral(&cc.mreq, cc.norm[:0], &cc.l.pathOpts); merr != nil {
			// No single normal form (a fragment, bad percent-encoding, a
			// backslash, a bad host or port): routing and forwarding could
			// disagree, so the request is refused.
			cc.x.ParseErr = merr
		} else {
			// Forward exactly what the pipeline routed on.
			cc.req.Target, cc.req.Host = cc.mreq.Path, cc.mreq.Authority
		}
		cc.submit()
	}
}

func (cc *clientConn) beginExchange() {
	cc.refresh() // the listener's current view (reload)
	cc.requests++
	cc.x.Reset()
	cc.x.ConnRequests = cc.requests
	cc.started = cc.lp.now()
	cc.headStart = 0
	cc.attempts = 0
	cc.epBegun, cc.counted, cc.closeAfter = false, false, false
	cc.reqBodyDone, cc.bodySent = false, false
	cc.bodyBytes, cc.respBytes = 0, 0
	cc.respHead, cc.respPumping = false, false
	cc.buffering, cc.largeBody, cc.sent100 = false, false, false
	cc.valOff = 0
	cc.pending = nil
	cc.reqSentAt, cc.lastRespAt = 0, 0
	cc.respStatus = 0
	cc.upstreamAddr = ""
	cc.state = csUpstream
}

func (cc *clientConn) submit() {
	if !cc.lp.pipeline.SubmitAndDrain(&cc.x) {
		cc.lp.e.m.GuardHit("ring_full_guard").Inc()
		cc.x.Status, cc.x.Reason, cc.x.RetryAfter = 503, "ring_full", true
		cc.respondLocal(&cc.x)
	}
}

// Forward implements stages.Forwarder: the exchange goes upstream.
func (cc *clientConn) Forward(x *stages.Exchange) {
	if h := cc.lp.e.hook; h != nil {
		h(x)
	}
	l := cc.l
	if cc.lp.pending[l] >= l.cfg.QueueSize {
		cc.lp.e.guardHit(x, "queue_full")
		x.Status, x.Reason, x.RetryAfter = 503, "queue_full", true
		cc.respondLocal(x)
		return
	}
	cc.lp.pending[l]++
	cc.counted = true
	x.Cluster.LB.RecordRequest() // the retry budget is a share of these
	if x.CloseConn || !cc.req.KeepAlive || cc.draining() {
		cc.closeAfter = true
	}
	bodyless := cc.req.Body == h1.BodyNone || (cc.req.Body == h1.BodyLength && cc.req.ContentLength == 0)
	if !bodyless && cc.req.ExpectContinue && cc.req.Version == h1.Version11 {
		// One rule for every body size: the request was routed and
		// admitted, so the gateway asks for the body itself (as nginx
		// does) and does not forward Expect; an upstream's own 100 is
		// not relayed a second time.
		cc.sent100 = true
		cc.lp.queue(cc.c, continue100)
	}
	switch {
	case bodyless:
		cc.reqBodyDone = true
	case cc.req.Body == h1.BodyLength && cc.req.ContentLength > int64(l.inflight):
		cc.largeBody = true
	default:
		// A body that fits in max_inflight_bytes is read and validated in
		// full before anything goes upstream, so a malformed chunked body
		// never reaches an upstream at all.
		cc.buffering = true
		now := cc.lp.nowNano()
		cc.bodyStart, cc.lastBodyAt = now, now
		// reqBody validates now; onUpstreamReady resets it to forward.
		cc.reqBody.Reset(cc.req.Body, cc.req.ContentLength, l.limits)
		cc.checkBuffered()
		return
	}
	cc.acquireUpstream()
}

// dialWaitFactor × max_inflight_bytes of a long request body may arrive
// while its upstream connection is being dialed.
const dialWaitFactor = 4

var continue100 = []byte("HTTP/1.1 100 Continue\r\n\r\n")

// checkBuffered validates the buffered body; once it is complete the
// exchange goes upstream; past max_inflight_bytes it streams instead.
func (cc *clientConn) checkBuffered() {
	buf, _ := cc.c.Peek(-1)
	for cc.valOff < len(buf) {
		n, _, done, err := cc.reqBody.Decode(buf[cc.valOff:])
		if err != nil {
			cc.buffering = false
			cc.failRequestBody(err)
			return
		}
		cc.valOff += n
		cc.lastBodyAt = cc.lp.nowNano()
		if done {
			cc.buffering = false
			cc.acquireUpstream()
			return
		}
		if n == 0 {
			break
		}
	}
	if cc.valOff > cc.l.inflight {
		cc.buffering = false
		cc.largeBody = true
		cc.acquireUpstream()
	}
}

// acquireUpstream takes a pooled connection to the picked endpoint or dials.
func (cc *clientConn) acquireUpstream() {
	ep := cc.x.Pick.Endpoint
	cl := cc.x.Cluster
	cc.attempts++
	cc.attemptStart = cc.lp.nowNano()
	ep.Begin()
	cc.epBegun = true
	cc.upstreamAddr = ep.Address()
	p := cc.lp.poolFor(ep, cc.lp.e.clusters.MaxIdle(cl), cc.l.upIdle)
	if u := p.get(); u != nil {
		cc.lp.e.clusters.countReuse(cl)
		u.owner = cc
		u.state = upActive
		u.reused = true
		cc.up = u
		cc.onUpstreamReady(u)
		return
	}
	u := newUpstream(cc.lp, cl, ep)
	u.owner = cc
	cc.up = u
	u.dial(cc.l.upConnect)
}

// onUpstreamReady sends the request head (and a small body) upstream.
func (cc *clientConn) onUpstreamReady(u *upstream) {
	opts := cc.l.proxyOpts
	opts.ClientIP = cc.ip
	opts.DropExpect = cc.sent100
	head := h1.AppendProxyRequestHeadWith(cc.lp.scratch[:0], &cc.req, &opts, &cc.lp.fwd)
	cc.lp.scratch = head[:0]
	lp := cc.lp
	now := cc.lp.nowNano()
	u.beginResponse()
	switch {
	case cc.reqBodyDone:
		lp.queue(u.c, head)
		cc.reqSentAt = now
	case cc.largeBody:
		// A long body: move the whole exchange off the loop so both sockets
		// get kernel backpressure.
		cc.detachExchange(u, append([]byte(nil), head...))
	default:
		lp.queue(u.c, head)
		cc.reqBody.Reset(cc.req.Body, cc.req.ContentLength, cc.l.limits)
		cc.bodyStart, cc.lastBodyAt = now, now
		cc.forwardReqBody()
	}
}

// forwardReqBody streams the (small) request body from the client's
// inbound buffer to the upstream.
func (cc *clientConn) forwardReqBody() {
	buf, _ := cc.c.Peek(-1)
	total := 0
	u := cc.up
	for !cc.reqBodyDone && len(buf) > 0 {
		n, data, done, err := cc.reqBody.Decode(buf)
		if err != nil {
			if total > 0 {
				_, _ = cc.c.Discard(total)
			}
			cc.failRequestBody(err)
			return
		}
		if len(data) > 0 {
			if cc.req.Body == h1.BodyChunked {
				cc.lp.commitOut(h1.AppendChunk(cc.lp.outFor(u.c), data))
			} else {
				cc.lp.queue(u.c, data)
			}
			cc.bodySent = true
			cc.bodyBytes += int64(len(data))
		}
		buf = buf[n:]
		total += n
		if done {
			if cc.req.Body == h1.BodyChunked {
				cc.lp.commitOut(h1.AppendLastChunk(cc.lp.outFor(u.c), h1.FilterTrailers(cc.reqBody.Trailers())))
			}
			cc.reqBodyDone = true
			cc.reqSentAt = cc.lp.nowNano()
		}
		if n == 0 {
			break
		}
	}
	if total > 0 {
		_, _ = cc.c.Discard(total)
		cc.lastBodyAt = cc.lp.nowNano()
	}
}

// failRequestBody answers a malformed or oversized request body. The
// upstream already has a partial request, so it is closed.
func (cc *clientConn) failRequestBody(err error) {
	status, token := 400, "bad_body"
	if he, ok := err.(*h1.Error); ok {
		status, token = he.Status, he.Token
	}
	if u := cc.up; u != nil {
		cc.up = nil
		u.owner = nil
		u.close()
	}
	cc.endpointDone(0, false)
	cc.lp.e.guardHit(&cc.x, "codec_"+token)
	cc.x.Status, cc.x.Reason, cc.x.CloseConn = status, "codec_"+token, true
	cc.respondLocal(&cc.x)
}

// onUpstreamData parses the response head and forwards the body. What it
// consumes is discarded from the upstream's inbound buffer before the
// exchange finishes, so that the pool sees exactly what is left over.
func (cc *clientConn) onUpstreamData(u *upstream) {
	buf, _ := u.c.Peek(-1)
	total := 0
	cc.lastRespAt = cc.lp.nowNano()
	for !cc.respHead {
		if len(buf) == 0 {
			break
		}
		n, done, err := u.parser.Parse(buf, cc.req.Method, &u.resp)
		if err != nil {
			cc.upstreamFailed("bad_response", 502, false)
			return
		}
		if !done {
			break
		}
		buf = buf[n:]
		total += n
		if u.resp.Status < 200 {
			if u.resp.Status == 101 {
				// Upgrade is never forwarded (it is stripped from every
				// request), so a 101 is the upstream breaking the protocol:
				// the client gets 502, the endpoint's health is not charged.
				cc.upstreamProtocolError("unexpected_upgrade")
				return
			}
			if cc.req.Version == h1.Version11 && !(cc.sent100 && u.resp.Status == 100) {
				cc.lp.commitOut(h1.AppendProxyResponseHeadWith(cc.lp.outFor(cc.c), &u.resp, &cc.l.proxyOpts, cc.req.Version, h1.BodyNone, true, &cc.lp.fwd))
			}
			continue
		}
		if (u.resp.Status == 502 || u.resp.Status == 503) && cc.canRetry("status", u.resp.Status) {
			cc.upstreamFailed("status_"+statusToken(u.resp.Status), u.resp.Status, false)
			return
		}
		cc.writeResponseHead(u)
		if u.resp.Body == h1.BodyNone {
			_, _ = u.c.Discard(total)
			cc.finishExchange(true)
			return
		}
	}
	for cc.respHead && len(buf) > 0 {
		n, data, done, err := u.body.Decode(buf)
		if err != nil {
			cc.abortMidResponse("bad_response_body")
			return
		}
		if len(data) > 0 {
			cc.writeBody(data)
		}
		buf = buf[n:]
		total += n
		if done {
			_, _ = u.c.Discard(total)
			cc.finishBody(u)
			return
		}
		if n == 0 {
			break
		}
	}
	if total > 0 {
		_, _ = u.c.Discard(total)
	}
	if !cc.respHead {
		return
	}
	// A slow client: move the rest of this response off the loop so the
	// upstream socket stops being read and TCP pushes back on it.
	cc.lp.flushOut()
	if cc.c.OutboundBuffered() > cc.l.inflight && cc.reqBodyDone && u.c.OutboundBuffered() == 0 {
		cc.detachResponse(u)
	}
}

func (cc *clientConn) writeResponseHead(u *upstream) {
	cc.respHead = true
	cc.respStatus = u.resp.Status
	cc.respOut = u.resp.Body
	keep := cc.req.KeepAlive && !cc.closeAfter && u.resp.Body != h1.BodyUntilClose && !cc.draining()
	if u.resp.Body == h1.BodyChunked && cc.req.Version == h1.Version10 {
		cc.respOut = h1.BodyUntilClose
		keep = false
	}
	cc.respKeep = keep
	opts := &cc.l.proxyOpts
	if sc := cc.x.Pick.SetCookie; sc != "" {
		o := *opts
		o.SetCookie = sc
		opts = &o
	}
	cc.lp.commitOut(h1.AppendProxyResponseHeadWith(cc.lp.outFor(cc.c), &u.resp, opts, cc.req.Version, cc.respOut, keep, &cc.lp.fwd))
	u.body.ResetResponse(u.resp.Body, u.resp.ContentLength, h1.Limits{MaxTrailerBytes: cc.l.limits.MaxTrailerBytes, MaxChunkExtension: cc.l.limits.MaxChunkExtension})
}

func (cc *clientConn) writeBody(data []byte) {
	cc.respBytes += int64(len(data))
	if cc.respOut == h1.BodyChunked {
		cc.lp.commitOut(h1.AppendChunk(cc.lp.outFor(cc.c), data))
		return
	}
	cc.lp.queue(cc.c, data)
}

func (cc *clientConn) finishBody(u *upstream) {
	if cc.respOut == h1.BodyChunked {
		cc.lp.commitOut(h1.AppendLastChunk(cc.lp.outFor(cc.c), h1.FilterTrailers(u.body.Trailers())))
	}
	cc.finishExchange(true)
}

// finishExchange completes the current exchange on the loop: the upstream
// goes back to its pool when it is clean, the client reads its next request.
func (cc *clientConn) finishExchange(ok bool) {
	u := cc.up
	cc.up = nil
	if u != nil {
		// A 2xx to CONNECT would have made the connection a tunnel: never
		// pooled (CONNECT is refused before it gets here; this is the
		// second lock on that door).
		reusable := ok && cc.reqBodyDone && u.resp.KeepAlive && u.resp.Body != h1.BodyUntilClose &&
			string(cc.req.Method) != "CONNECT"
		u.owner = nil
		if reusable {
			u.release()
		} else {
			u.close()
		}
	}
	cc.endpointDone(cc.respStatus, false)
	cc.record(cc.respStatus, "")
	if !cc.reqBodyDone {
		// The client's body was not read to its end: the connection cannot
		// carry another request.
		cc.closeAfter = true
	}
	if cc.closeAfter || !cc.respKeep {
		cc.closeGracefully()
		return
	}
	cc.toIdle()
}

func (cc *clientConn) toIdle() {
	cc.refresh() // the listener's current view (reload)
	cc.state = csHead
	cc.idleSince = cc.lp.nowNano()
	cc.parser.Reset()
	if cc.c.InboundBuffered() > 0 {
		cc.readHeads()
	}
}

// endpointDone reports the outcome to the load balancer and releases the
// listener queue slot.
func (cc *clientConn) endpointDone(status int, connectFailed bool) {
	if cc.epBegun {
		cc.epBegun = false
		cc.x.Pick.Endpoint.End(status, cc.lp.since(cc.started), connectFailed)
	}
	if cc.counted {
		cc.counted = false
		cc.lp.pending[cc.l]--
	}
}

// record counts the request and writes its access-log line.
func (cc *clientConn) record(status int, reason string) {
	rc := cc.l.noRoute
	if cc.x.Route != nil {
		if r := cc.l.routes[cc.x.Route]; r != nil {
			rc = r
		}
	}
	rc.inc(status)
	cc.lp.e.observeDuration(cc.l, cc.lp.since(cc.started))
	if !cc.l.accessLog {
		return
	}
	ev := cc.lp.e.log.Info().Str("type", "access").Str("listener", cc.l.cfg.Name).
		Bytes("client", cc.ip).Bytes("method", cc.req.Method).Bytes("target", cc.req.Target).
		Int("status", status).Int64("bytes", cc.respBytes).Dur("duration", cc.lp.since(cc.started))
	if cc.x.Route != nil {
		ev = ev.Str("route", cc.x.Route.Name).Str("cluster", cc.x.Cluster.Name)
	}
	if cc.upstreamAddr != "" {
		ev = ev.Str("upstream", cc.upstreamAddr)
	}
	if reason != "" {
		ev = ev.Str("reason", reason)
	}
	ev.Msg("")
}

// respondLocal writes a response generated by the gateway itself.
func (cc *clientConn) respondLocal(x *stages.Exchange) {
	if cc.state == csClosed || cc.state == csClosing {
		return
	}
	status := x.Status
	if x.CloseConn || status == 400 || status == 408 || status == 413 || status == 414 || status == 431 || status == 505 || status == 501 {
		cc.closeAfter = true
	}
	if cc.req.Body != h1.BodyNone && !cc.reqBodyDone {
		cc.closeAfter = true // the unread body would be taken for the next request
	}
	if !cc.req.KeepAlive || cc.draining() {
		cc.closeAfter = true
	}
	var extra []h1.Header
	if x.RetryAfter {
		extra = retryAfterHeader
	}
	body := append(cc.lp.scratch[:0], h1.StatusText(status)...)
	body = append(body, '\n')
	out := h1.AppendSimpleResponse(body[len(body):], status, extra, body, cc.closeAfter)
	cc.lp.queue(cc.c, out)
	cc.lp.e.m.LocalResponse(cc.l.cfg.Name, x.Reason).Inc()
	cc.endpointDone(status, false)
	cc.respStatus = status
	cc.record(status, x.Reason)
	if cc.closeAfter {
		cc.closeGracefully()
		return
	}
	if cc.processing {
		cc.state = csHead
		cc.idleSince = cc.lp.nowNano()
		cc.parser.Reset()
		return // readHeads loops on
	}
	cc.toIdle()
}

var retryAfterHeader = []h1.Header{{Name: []byte("Retry-After"), Value: []byte("1")}}

// upstreamFailed handles a failure before any response byte reached the
// client: retry on another endpoint when that is safe, else answer status.
func (cc *clientConn) upstreamFailed(reason string, status int, connectFailed bool) {
	u := cc.up
	cc.up = nil
	if u != nil {
		u.owner = nil
		u.close()
	}
	cl := cc.x.Cluster
	cc.lp.e.m.UpstreamFailure(cl.Name, reason).Inc()
	ep := cc.x.Pick.Endpoint
	if cc.epBegun {
		cc.epBegun = false
		ep.End(status, cc.lp.since(cc.started), connectFailed)
	}
	cc.lp.e.log.Warn().Str("cluster", cl.Name).Str("endpoint", ep.Address()).Str("reason", reason).Msg("upstream failure")
	if cc.canRetry(reason, status) {
		cc.x.Exclude = ep
		p, err := cl.LB.Pick(&cc.x, ep)
		if err == nil {
			cc.lp.e.m.UpstreamFailure(cl.Name, "retried").Inc()
			cc.x.Pick = p
			cc.acquireUpstream()
			return
		}
	}
	cc.x.Status, cc.x.Reason = status, "upstream_"+reason
	cc.respondLocal(&cc.x)
}

// upstreamProtocolError answers 502 for an upstream that broke the protocol
// before any response byte reached the client. It is counted as the
// upstream's failure but not charged to the endpoint's health: a client can
// provoke it, and must not be able to push endpoints into ejection.
func (cc *clientConn) upstreamProtocolError(reason string) {
	if u := cc.up; u != nil {
		cc.up = nil
		u.owner = nil
		u.close()
	}
	cl := cc.x.Cluster
	cc.lp.e.m.UpstreamFailure(cl.Name, reason).Inc()
	cc.lp.e.log.Warn().Str("cluster", cl.Name).Str("endpoint", cc.x.Pick.Endpoint.Address()).Str("reason", reason).Msg("upstream protocol error")
	cc.endpointDone(0, false)
	cc.x.Status, cc.x.Reason, cc.x.CloseConn = 502, "upstream_"+reason, true
	cc.respondLocal(&cc.x)
}

// canRetry: idempotent method, nothing of the body sent, nothing of the
// response seen, attempts and the cluster's retry budget left.
func (cc *clientConn) canRetry(reason string, status int) bool {
	if cc.bodySent || cc.respHead || cc.req.Body != h1.BodyNone {
		return false
	}
	return cc.lp.e.clusters.AllowRetry(cc.x.Cluster, cc.attempts, cc.req.Method, reason, status)
}

// abortMidResponse ends an exchange whose response head already went out:
// the only honest signal left is closing the client connection.
func (cc *clientConn) abortMidResponse(reason string) {
	cl := cc.x.Cluster
	cc.lp.e.m.UpstreamFailure(cl.Name, reason).Inc()
	cc.closeAfter = true
	if u := cc.up; u != nil {
		cc.up = nil
		u.owner = nil
		u.close()
	}
	cc.endpointDone(502, false)
	cc.record(cc.respStatus, reason)
	cc.abort()
}

// onUpstreamClosed: the upstream went away while it served us.
func (cc *clientConn) onUpstreamClosed(u *upstream) {
	if cc.up != u {
		return
	}
	if !cc.respHead {
		cc.upstreamFailed("reset", 502, false)
		return
	}
	if u.resp.Body == h1.BodyUntilClose {
		cc.up = nil
		cc.closeAfter = true
		cc.finishExchange(true)
		return
	}
	cc.up = nil
	cc.abortMidResponse("reset_mid_body")
}

// onTimer enforces the connection's deadlines; now is UnixNano.
func (cc *clientConn) onTimer(now int64) {
	l := cc.l
	switch cc.state {
	case csHead:
		if cc.headStart != 0 {
			if cc.draining() && cc.c.InboundBuffered() == 0 {
				cc.abort() // accepted, nothing sent yet, and we are draining
				return
			}
			if now-cc.headStart > int64(l.headerRead) {
				cc.lp.e.guardHit(&cc.x, "slow_loris")
				cc.beginExchange()
				cc.x.Status, cc.x.Reason, cc.x.CloseConn = 408, "header_timeout", true
				cc.respondLocal(&cc.x)
			}
		} else if now-cc.idleSince > int64(l.idleKeepalive) || cc.draining() {
			cc.abort() // idle too long, or idle while draining
		}
	case csUpstream:
		if cc.respPumping {
			return
		}
		if p := cc.pending; p != nil {
			if now-p.since > int64(l.bodyIdle) {
				cc.lp.e.guardHit(&cc.x, "detach_wait_timeout")
				cc.abort()
				return
			}
			cc.lp.flushOut()
			cc.detachExchange(p.u, p.head)
			return
		}
		u := cc.up
		if cc.buffering {
			if now-cc.lastBodyAt > int64(l.bodyIdle) {
				cc.timeoutBody("body_idle")
				return
			}
			if l.minRate > 0 {
				el := now - cc.bodyStart
				if el > int64(l.bodyGrace) && int64(cc.valOff)*int64(time.Second)/el < l.minRate {
					cc.timeoutBody("slow_post")
				}
			}
			return
		}
		if u == nil {
			return
		}
		if !cc.reqBodyDone && u.state == upActive {
			if now-cc.lastBodyAt > int64(l.bodyIdle) {
				cc.timeoutBody("body_idle")
				return
			}
			if l.minRate > 0 {
				el := now - cc.bodyStart
				if el > int64(l.bodyGrace) && cc.bodyBytes*int64(time.Second)/el < l.minRate {
					cc.timeoutBody("slow_post")
					return
				}
			}
		}
		if pt := cc.lp.e.clusters.PerTryTimeout(cc.x.Cluster); pt > 0 && !cc.respHead && now-cc.attemptStart > int64(pt) {
			cc.lp.e.m.GuardHit("per_try_timeout").Inc()
			cc.upstreamFailed("per_try_timeout", 504, false)
			return
		}
		if u.state == upActive && cc.reqBodyDone && !cc.respHead && cc.reqSentAt != 0 && now-cc.reqSentAt > int64(l.upRespHeader) {
			cc.lp.e.m.GuardHit("upstream_response_header_timeout").Inc()
			cc.upstreamFailed("response_header_timeout", 504, false)
			return
		}
		if cc.respHead && now-cc.lastRespAt > int64(l.bodyIdle) {
			cc.abortMidResponse("response_body_idle")
		}
	case csClosing:
		cc.lp.flushOut()
		if cc.c.OutboundBuffered() == 0 || now > cc.closeBy {
			cc.state = csClosed
			_ = cc.c.Close()
		}
	}
}

func (cc *clientConn) timeoutBody(guard string) {
	cc.lp.e.guardHit(&cc.x, guard)
	if u := cc.up; u != nil {
		cc.up = nil
		u.owner = nil
		u.close()
	}
	cc.endpointDone(408, false)
	cc.x.Status, cc.x.Reason, cc.x.CloseConn = 408, guard, true
	cc.respondLocal(&cc.x)
}

// closeGracefully closes once the pending output is flushed (gnet's own
// close drops what the socket does not take at once).
func (cc *clientConn) closeGracefully() {
	if cc.state == csClosed {
		return
	}
	cc.lp.flushOut()
	if cc.c.OutboundBuffered() == 0 {
		cc.state = csClosed
		_ = cc.c.Close()
		return
	}
	cc.state = csClosing
	cc.closeBy = cc.lp.nowNano() + int64(cc.l.idleKeepalive)
}

// abort closes the client connection now, and any upstream it holds.
func (cc *clientConn) abort() {
	if u := cc.up; u != nil && !cc.respPumping {
		cc.up = nil
		u.owner = nil
		u.close()
	}
	cc.endpointDone(0, false)
	if cc.state != csDetached && cc.c != nil {
		cc.state = csClosed
		_ = cc.c.Close()
	}
}

// onClose runs when gnet closed the client connection.
func (cc *clientConn) onClose(c gnet.Conn, _ error) {
	if c != cc.c || cc.state == csDetached {
		return // a connection we moved off the loop
	}
	cc.state = csClosed
	if u := cc.up; u != nil && !cc.respPumping {
		cc.up = nil
		u.owner = nil
		u.close()
	}
	if cc.epBegun || cc.counted {
		cc.endpointDone(499, false)
		cc.record(499, "client_closed")
	}
	cc.release()
}

// release returns the connection's admission slots; once per connection.
func (cc *clientConn) release() {
	delete(cc.lp.clients, cc)
	cc.l.limiter.Release(cc.x.ClientIP)
	cc.lp.e.global.Release(cc.x.ClientIP)
	cc.l.active.Add(-1)
}

// onReattach: a connection the pumps hand back to the loop.
func (cc *clientConn) onReattach(c gnet.Conn) {
	cc.c = c
	cc.lp.clients[cc] = struct{}{}
	cc.toIdle()
}

func statusToken(s int) string {
	if s == 502 {
		return "502"
	}
	return "503"
}
