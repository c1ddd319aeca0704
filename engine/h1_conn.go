// SPDX-License-Identifier: GPL-3.0-only

package engine

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/expressgateway/expressgateway/codecs/h1"
	"github.com/expressgateway/expressgateway/codecs/msg"
	"github.com/expressgateway/expressgateway/codecs/proxyproto"
	"github.com/expressgateway/expressgateway/guards"
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

	// The client's address (from a PROXY header when a trusted balancer
	// sent one) and the one it reached; identity is the verified TLS client
	// certificate as client_identity_header carries it (nil: none).
	clientIP    netip.Addr
	peer, local netip.AddrPort
	identity    []byte

	state    clientState
	r        *h1Exchange // the current request's state; nil while idle (h1_exchange.go)
	requests int

	headStart int64 // first byte of the current head, 0 while idle
	idleSince int64
	closeBy   int64 // csClosing: give up flushing after this

	// current exchange
	closeAfter bool
	bodyStart  int64
	lastBodyAt int64
	respOut    h1.BodyKind
	respKeep   bool
	buffering  bool // reading a small body in full before going upstream
	largeBody  bool // the body streams: the exchange leaves the loop
	valOff     int
	processing bool           // inside readHeads: don't recurse
	pending    *pendingDetach // a long exchange waiting to leave the loop

	// A WebSocket tunnel waiting to leave the loop (h1_tunnel.go): the
	// upstream that answered 101, the 101 for the client, since when.
	tunUp    *upstream
	tunHead  []byte
	tunSince int64

	tls *tlsInfo // the TLS connection this session runs over; nil for cleartext

	// PROXY protocol (proxy_accept.go): proxyWait while a trusted
	// balancer's header is awaited; proxyCheck until the first bytes of
	// an untrusted peer showed no header.
	proxyWait, proxyCheck bool
	accepted              int64
	released              bool // the admission slots went back
}

func newClientConn(lp *loop, l *listenerRT, c gnet.Conn, ip netip.Addr) *clientConn {
	cc := &clientConn{lp: lp, l: l, c: c, ip: []byte(ip.String()), clientIP: ip, peer: addrPort(c.RemoteAddr()), local: addrPort(c.LocalAddr())}
	cc.idleSince = time.Now().UnixNano()
	cc.accepted = cc.idleSince
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
				cc.lp.e.guardHit(&cc.r.x, guards.DetachWaitOverflow, guards.Connection)
				cc.abort()
			}
			return
		}
		if !cc.r.lg.reqBodyDone && cc.r.lg.bodyWritable() {
			cc.forwardReqBody()
			if !cc.r.lg.reqBodyDone && cc.c.InboundBuffered() > cc.l.limits.MaxHeaderBytes+dialWaitFactor*cc.l.inflight {
				// The upstream's window holds the body back (HTTP/2,
				// HTTP/3) and the client keeps sending: its socket
				// leaves gnet for a reader that TCP can pace, or,
				// when that cannot be, the connection is cut.
				if cc.paced() || cc.bridgeClient() {
					return
				}
				cc.lp.e.guardHit(&cc.r.x, guards.UpstreamWindowOverflow, guards.Connection)
				cc.abort()
			}
			return
		}
		if cc.largeBody && !cc.r.lg.reqBodyDone {
			// A long body arriving while its upstream is being dialed
			// (at most upstream_connect): gnet keeps reading it, so it is
			// bounded here and the exchange leaves the loop once connected.
			if cc.c.InboundBuffered() > cc.l.limits.MaxHeaderBytes+dialWaitFactor*cc.l.inflight {
				if cc.paced() || cc.bridgeClient() {
					return
				}
				cc.lp.e.guardHit(&cc.r.x, guards.DialWaitOverflow, guards.Connection)
				cc.abort()
			}
			return
		}
		// Pipelined bytes wait until the current response is done; a client
		// that floods them is cut off rather than buffered without bound.
		if cc.c.InboundBuffered() > cc.l.limits.MaxHeaderBytes+cc.l.inflight {
			cc.lp.e.guardHit(&cc.r.x, guards.PipelineFlood, guards.Connection)
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
			cc.putExchange()
			return
		}
		cc.take()
		if cc.proxyWait || cc.proxyCheck {
			if !cc.proxyHeader(buf) {
				return
			}
			continue
		}
		if cc.requests == 0 {
			// HTTP/2 with prior knowledge shares the port: the client
			// preface decides.
			h1ok, h2ok := cc.l.h1, cc.l.h2
			if cc.tls != nil {
				// ALPN decided: h2, or HTTP/1.1 (also without ALPN).
				h2ok = cc.tls.alpn == "h2"
				h1ok = !h2ok
			}
			if isH2, decided := looksLikeH2(buf); isH2 && h2ok {
				if decided {
					cc.upgradeToH2()
				}
				return
			} else if !h1ok {
				// An HTTP/2-only listener: whatever this is, it gets no
				// HTTP/1 answer.
				cc.lp.e.guardHit(&cc.r.x, guards.H2BadPreface, guards.Connection)
				cc.abort()
				return
			}
		}
		if cc.headStart == 0 {
			cc.headStart = cc.lp.nowNano()
		}
		n, done, err := cc.r.parser.Parse(buf, &cc.r.req)
		if err != nil {
			cc.beginExchange()
			cc.r.perr = msg.Error{Status: 400, Token: "bad_request", Msg: err.Error()}
			if he, ok := err.(*h1.Error); ok {
				cc.r.perr = msg.Error{Status: he.Status, Token: he.Token, Msg: he.Msg}
			}
			cc.r.x.ParseErr = &cc.r.perr
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
		if cc.r.norm, merr = cc.r.req.Neutral(&cc.r.mreq, cc.r.norm[:0], &cc.l.pathOpts); merr != nil {
			// No single normal form (a fragment, bad percent-encoding, a
			// backslash, a bad host or port): routing and forwarding could
			// disagree, so the request is refused.
			cc.r.x.ParseErr = merr
		} else {
			// Forward exactly what the pipeline routed on.
			cc.r.req.Target, cc.r.req.Host = cc.r.mreq.Path, cc.r.mreq.Authority
		}
		cc.submit()
	}
}

// proxyHeader handles the PROXY protocol at the start of the connection:
// a trusted balancer's header is read and its client address adopted; an
// untrusted peer's header is refused. It reports whether the connection
// goes on (false: wait for more bytes, or closed).
func (cc *clientConn) proxyHeader(buf []byte) bool {
	p := cc.l.proxy
	if p == nil { // a reload turned it off: the connection goes on as it came
		cc.proxyWait, cc.proxyCheck = false, false
		return true
	}
	if cc.proxyCheck {
		if proxyproto.Looks(buf) {
			if len(buf) < 12 && !bytes.HasPrefix(buf, []byte("PROXY ")) {
				return false // could still be one
			}
			p.count("untrusted")
			cc.lp.e.guardHit(&cc.r.x, guards.ProxyProtocolUntrusted, guards.Connection)
			cc.abort()
			return false
		}
		cc.proxyCheck = false
		return true
	}
	h, n, err := proxyproto.Parse(buf)
	if errors.Is(err, proxyproto.ErrNeedMore) {
		return false
	}
	if err != nil {
		p.count(refuseReason(err))
		cc.lp.e.guardHit(&cc.r.x, guards.ProxyProtocol(refuseReason(err)), guards.Connection)
		cc.abort()
		return false
	}
	_, _ = cc.c.Discard(n)
	cc.proxyWait = false
	if h.Local {
		p.count("local")
		return true
	}
	ip := h.Src.Addr().Unmap()
	if ok, lim := cc.lp.e.readmit(cc.l, cc.clientIP, ip); !ok {
		p.count("over_limit")
		cc.lp.e.guardHit(&cc.r.x, lim, guards.Connection)
		cc.released = true // readmit holds nothing now
		cc.abort()
		return false
	}
	p.count("accepted")
	cc.clientIP, cc.r.x.ClientIP = ip, ip
	cc.ip = append(cc.ip[:0], ip.String()...)
	cc.r.lg.ip = cc.ip
	cc.peer, cc.local = h.Src, h.Dst
	cc.r.lg.peer, cc.r.lg.local = h.Src, h.Dst
	return true
}

func (cc *clientConn) beginExchange() {
	cc.refresh() // the listener's current view (reload)
	cc.take()
	cc.requests++
	cc.r.x.Reset()
	cc.r.x.ConnRequests = cc.requests
	cc.r.lg.reset()
	cc.headStart = 0
	cc.closeAfter = false
	cc.buffering, cc.largeBody = false, false
	cc.valOff = 0
	cc.pending = nil
	cc.tunUp, cc.tunHead = nil, nil
	cc.state = csUpstream
}

func (cc *clientConn) submit() {
	if !cc.lp.pipeline.SubmitAndDrain(&cc.r.x) {
		cc.lp.e.guardHit(&cc.r.x, guards.RingFull("guard"), guards.Stream)
		cc.r.x.Status, cc.r.x.Reason, cc.r.x.RetryAfter = 503, "ring_full", true
		cc.respondLocal(&cc.r.x)
	}
}

// Forward implements stages.Forwarder: the exchange goes upstream.
func (cc *clientConn) Forward(x *stages.Exchange) {
	if h := cc.lp.e.hook; h != nil {
		h(x)
	}
	l := cc.l
	if isGRPCNative(cc.r.req.Header("content-type")) {
		// gRPC needs HTTP/2 (trailers, full duplex): a clear gRPC error
		// rather than a broken exchange (CONFIG.md, gRPC).
		x.Status, x.Reason = 503, "grpc_needs_http2"
		cc.respondLocal(x)
		return
	}
	if x.Cluster.H2 {
		if ct := grpcWebNative(cc.r.req.Header("content-type")); ct != nil {
			// gRPC-Web to a native gRPC endpoint (grpc.go).
			cc.r.lg.grpcWeb, cc.r.lg.grpc = ct, true
		}
	}
	if !cc.r.lg.admit() {
		x.Status, x.Reason, x.RetryAfter = 503, "queue_full", true
		cc.respondLocal(x)
		return
	}
	cc.r.lg.setDeadline()
	if x.CloseConn || !cc.r.req.KeepAlive || cc.draining() {
		cc.closeAfter = true
	}
	if wsRequested(&cc.r.req) && !x.Cluster.H2 && !x.Cluster.H3 {
		// A WebSocket upgrade: forwarded as one (the only upgrade that
		// is). Whatever the upstream answers, the connection ends with
		// this exchange: what the client sends after its request is not
		// HTTP.
		cc.r.lg.ws = true
		cc.r.lg.wsKey = cc.r.req.Header("sec-websocket-key")
		cc.closeAfter = true
	}
	bodyless := cc.r.req.Body.Empty(cc.r.req.ContentLength)
	if !bodyless && cc.r.req.ExpectContinue && cc.r.req.Version == h1.Version11 {
		// One rule for every body size: the request was routed and
		// admitted, so the gateway asks for the body itself (as nginx
		// does) and does not forward Expect; an upstream's own 100 is
		// not relayed a second time.
		cc.r.lg.sent100 = true
		cc.lp.queue(cc.c, continue100)
	}
	switch {
	case bodyless:
		cc.r.lg.reqBodyDone = true
	case cc.r.req.Body == h1.BodyLength && cc.r.req.ContentLength > int64(l.inflight):
		cc.largeBody = true
	default:
		// A body that fits in max_inflight_bytes is read and validated in
		// full before anything goes upstream, so a malformed chunked body
		// never reaches an upstream at all.
		cc.buffering = true
		now := cc.lp.nowNano()
		cc.bodyStart, cc.lastBodyAt = now, now
		// reqBody validates now; onUpstreamReady resets it to forward.
		cc.r.reqBody.Reset(cc.r.req.Body, cc.r.req.ContentLength, l.limits)
		cc.checkBuffered()
		return
	}
	cc.r.lg.acquire()
}

// drainFirstByteGrace is how long a fresh connection may stay silent while
// the gateway (or its listener) drains before it is closed.
const drainFirstByteGrace = time.Second

// dialWaitFactor × max_inflight_bytes of a long request body may arrive
// while its upstream connection is being dialed.
const dialWaitFactor = 4

var continue100 = []byte("HTTP/1.1 100 Continue\r\n\r\n")

// checkBuffered validates the buffered body; once it is complete the
// exchange goes upstream; past max_inflight_bytes it streams instead.
func (cc *clientConn) checkBuffered() {
	buf, _ := cc.c.Peek(-1)
	for cc.valOff < len(buf) {
		n, _, done, err := cc.r.reqBody.Decode(buf[cc.valOff:])
		if err != nil {
			cc.buffering = false
			cc.failRequestBody(err)
			return
		}
		cc.valOff += n
		cc.lastBodyAt = cc.lp.nowNano()
		if done {
			cc.buffering = false
			cc.r.lg.acquire()
			return
		}
		if n == 0 {
			break
		}
	}
	if cc.valOff > cc.l.inflight {
		cc.buffering = false
		cc.largeBody = true
		cc.r.lg.acquire()
	}
}

// upstreamReady implements downstream: send the request head, then the
// body as far as the client sent it; a long body takes the whole exchange
// off the loop instead.
func (cc *clientConn) upstreamReady(lg *leg, u *upstream, head []byte) {
	if u == nil {
		// An HTTP/2 upstream: the leg sent the head on its stream; the body
		// streams on the loop as the stream's window allows.
		if !lg.reqBodyDone {
			cc.r.reqBody.Reset(cc.r.req.Body, cc.r.req.ContentLength, cc.l.limits)
			now := cc.lp.nowNano()
			cc.bodyStart, cc.lastBodyAt = now, now
			cc.forwardReqBody()
		}
		return
	}
	switch {
	case lg.reqBodyDone:
		cc.lp.queue(u.c, head)
		lg.reqSentAt = cc.lp.nowNano()
	case cc.largeBody:
		// A long body: move the whole exchange off the loop so both sockets
		// get kernel backpressure.
		cc.detachExchange(u, append([]byte(nil), head...))
	default:
		cc.lp.queue(u.c, head)
		cc.r.reqBody.Reset(cc.r.req.Body, cc.r.req.ContentLength, cc.l.limits)
		now := cc.lp.nowNano()
		cc.bodyStart, cc.lastBodyAt = now, now
		cc.forwardReqBody()
	}
}

// paced reports whether the client's input is read by a tlsConn's reader,
// which stops reading while the loop holds its bound (TLS clients and
// bridged ones): what it holds beyond the cut-off above was read before
// the bridge, and TCP holds back the rest.
func (cc *clientConn) paced() bool {
	_, ok := cc.c.(*tlsConn)
	return ok
}

// bridgeClient (loop) takes a plain client socket away from gnet, which
// reads it without pause, and gives it to a tlsConn's reader and writer
// goroutines (tls_conn.go), which stop reading while the loop holds
// max_inflight_bytes of it: an HTTP/1.1 upload to a multiplexed upstream
// whose flow control holds the body back then waits in the client's TCP
// window instead of in gnet's buffer. The session goes on unchanged on the
// new conn, for this request and the connection's next ones, as a TLS
// client's does. The caller checks paced first (a tlsConn is bridged
// already). False, with nothing changed, when gnet still holds output for
// the conn (its close would drop that) or the socket cannot be duplicated:
// the caller then cuts the connection with its guard.
func (cc *clientConn) bridgeClient() bool {
	gc := cc.c
	cc.lp.flushOut()
	if gc.OutboundBuffered() > 0 {
		return false
	}
	nc, err := dupConn(gc)
	if err != nil {
		cc.lp.e.log.Error().Err(err).Msg("a client connection could not be bridged off the event loop")
		return false
	}
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		_ = nc.Close()
		return false
	}
	held := takeInbound(gc)
	cc.c = nil // OnClose of the gnet conn is not this session's
	cc.lp.closeNow(gc)
	t := newTLSConn(cc.lp, tc, gc.LocalAddr(), gc.RemoteAddr(), cc.l.bodyIdle)
	t.inMax = int64(cc.l.inflight)
	t.in = held
	t.inSize.Store(int64(len(held)))
	t.ctx = cc
	cc.c = t
	cc.lp.e.m.Detach("request_bridge").Inc()
	go t.start()
	return true
}

// forwardReqBody streams the (small) request body from the client's
// inbound buffer to the upstream.
func (cc *clientConn) forwardReqBody() {
	buf, _ := cc.c.Peek(-1)
	total := 0
	for !cc.r.lg.reqBodyDone && len(buf) > 0 && (!cc.r.lg.muxed() || cc.r.lg.upBacklog() < cc.l.inflight) {
		n, data, done, err := cc.r.reqBody.Decode(buf)
		if err != nil {
			if total > 0 {
				_, _ = cc.c.Discard(total)
			}
			cc.failRequestBody(err)
			return
		}
		var trailers []h1.Header
		if done {
			trailers = cc.r.reqBody.Trailers()
		}
		cc.r.lg.sendBody(data, done, trailers)
		buf = buf[n:]
		total += n
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
	cc.r.lg.dropUpstream()
	cc.r.lg.endpointDone(0, false)
	cc.lp.e.guardHit(&cc.r.x, guards.Codec(token), guards.Connection)
	cc.r.x.Status, cc.r.x.Reason, cc.r.x.CloseConn = status, "codec_"+token, true
	cc.respondLocal(&cc.r.x)
}

// respInterim implements downstream: a 1xx goes to an HTTP/1.1 client.
func (cc *clientConn) respInterim(_ *leg, r *msg.Response) {
	if cc.r.req.Version != h1.Version11 {
		return
	}
	fs, arena, added := msg.ForwardResponse(cc.lp.fwd.Fields[:0], cc.lp.fwd.Arena[:0], r.Fields, cc.r.lg.respOpts())
	cc.lp.fwd.Fields, cc.lp.fwd.Arena = fs[:0], arena[:0]
	cc.lp.commitOut(h1.AppendResponseHead(cc.lp.outFor(cc.c), r.Status, r.Reason, fs, added, cc.r.req.Version, h1.BodyNone, r.ContentLength, true, r.Fields, nil))
}

// respHead implements downstream: the response head in HTTP/1 framing for
// this client (chunked for a body of unknown length to an HTTP/1.1 client,
// until-close for HTTP/1.0).
func (cc *clientConn) respHead(lg *leg, r *msg.Response, untilClose bool) {
	out := h1.BodyNone
	switch r.Body {
	case msg.BodyLength:
		out = h1.BodyLength
	case msg.BodyStream:
		out = h1.BodyChunked
		if untilClose {
			out = h1.BodyUntilClose
		}
	}
	if lg.grpcWeb != nil && out != h1.BodyNone {
		// The trailers follow the messages in the body: its length is
		// not the upstream's.
		out = h1.BodyChunked
		if untilClose {
			out = h1.BodyUntilClose
		}
	}
	out, keep := cc.responseFraming(out)
	cc.respOut = out
	cc.respKeep = keep
	opts := lg.respOpts()
	if sc := cc.r.x.Pick.SetCookie; sc != "" {
		o := *opts
		o.SetCookie = sc
		opts = &o
	}
	fs, arena, added := msg.ForwardResponse(cc.lp.fwd.Fields[:0], cc.lp.fwd.Arena[:0], r.Fields, opts)
	cc.lp.fwd.Fields, cc.lp.fwd.Arena = fs[:0], arena[:0]
	if lg.grpcWeb != nil {
		fs = setField(fs, nameCT, grpcWebCT(r.Field("content-type")))
	}
	cc.lp.commitOut(h1.AppendResponseHead(cc.lp.outFor(cc.c), r.Status, r.Reason, fs, added, cc.r.req.Version, out, r.ContentLength, keep, r.Fields, nil))
}

// responseFraming decides how a response with upstream framing in goes to
// this client, and whether the connection stays open after it: the one
// rule for the loop and the off-loop pump. Chunked to an HTTP/1.0 client
// becomes until-close.
func (cc *clientConn) responseFraming(in h1.BodyKind) (out h1.BodyKind, keep bool) {
	out = in
	keep = cc.r.req.KeepAlive && !cc.closeAfter && in != h1.BodyUntilClose && !cc.draining()
	if in == h1.BodyChunked && cc.r.req.Version == h1.Version10 {
		out, keep = h1.BodyUntilClose, false
	}
	return out, keep
}

// tooSlow reports whether a request body that moved n bytes since start
// (UnixNano) is below body_min_rate after its grace: the one slow-POST rule
// for the loop and the off-loop pump.
func (l *listenerRT) tooSlow(n, start, now int64) bool {
	return guards.MinRate{PerSecond: l.minRate, Grace: l.bodyGrace}.TooSlow(n, start, now)
}

// respData implements downstream.
func (cc *clientConn) respData(_ *leg, data []byte) {
	if cc.respOut == h1.BodyChunked {
		cc.lp.commitOut(h1.AppendChunk(cc.lp.outFor(cc.c), data))
		return
	}
	cc.lp.queue(cc.c, data)
}

// respEnd implements downstream.
func (cc *clientConn) respEnd(lg *leg, trailers []msg.Field) {
	if lg.grpcWeb != nil && cc.respOut != h1.BodyNone {
		// gRPC-Web: the trailers are the body's last frame.
		frame := appendGRPCWebTrailers(cc.lp.scratch[:0], trailers)
		if cc.respOut == h1.BodyChunked {
			out := h1.AppendChunk(cc.lp.outFor(cc.c), frame)
			cc.lp.commitOut(h1.AppendLastChunk(out, nil))
		} else {
			cc.lp.queue(cc.c, frame)
		}
		return
	}
	if cc.respOut == h1.BodyChunked {
		cc.lp.commitOut(h1.AppendLastChunk(cc.lp.outFor(cc.c), trailers))
	}
}

// respAbort implements downstream: a response that cannot complete is
// signalled the only way HTTP/1 can, by closing.
func (cc *clientConn) respAbort(_ *leg) {
	cc.closeAfter = true
	cc.abort()
}

// slowReader implements downstream: a client slower than its upstream gets
// the rest of the response from an off-loop pump, so the upstream socket
// stops being read and TCP pushes back on it.
func (cc *clientConn) slowReader(lg *leg, u *upstream) bool {
	cc.lp.flushOut()
	if cc.c.OutboundBuffered() > cc.l.inflight {
		cc.detachResponse(u)
		return true
	}
	return false
}

// bodyDrained implements downstream: an HTTP/2 upstream took the body sent
// so far; more may follow from what the client already sent.
func (cc *clientConn) bodyDrained(lg *leg) {
	if cc.state == csUpstream && !lg.reqBodyDone && lg.muxed() && cc.c != nil && cc.c.InboundBuffered() > 0 {
		cc.forwardReqBody()
	}
}

// roomFor implements downstream: the HTTP/1 session pumps slow responses
// its own way (h1_pump.go), so it is only asked for completeness.
func (cc *clientConn) roomFor(*leg) bool {
	return cc.c != nil && cc.c.OutboundBuffered() <= cc.l.inflight
}

// exchangeDone implements downstream: the client reads its next request,
// or the connection closes.
func (cc *clientConn) exchangeDone(lg *leg) {
	if !lg.reqBodyDone {
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
	if cc.c.InboundBuffered() == 0 {
		cc.putExchange() // idle: the request state goes back to the loop
		return
	}
	cc.r.parser.Reset()
	cc.readHeads()
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
	if cc.r.req.Body != h1.BodyNone && !cc.r.lg.reqBodyDone {
		cc.closeAfter = true // the unread body would be taken for the next request
	}
	if !cc.r.req.KeepAlive || cc.draining() {
		cc.closeAfter = true
	}
	var extra []h1.Header
	if x.RetryAfter {
		extra = retryAfterHeader
	}
	body := append(cc.lp.scratch[:0], h1.StatusText(status)...)
	body = append(body, '\n')
	if x.ParseErr == nil && x.Reason != "header_timeout" && isGRPC(cc.r.req.Header("content-type")) {
		// (A header timeout answers a head that never came: cc.r.req is
		// still the previous request's.)
		// gRPC (gRPC-Web over HTTP/1.1, or native gRPC refused): the
		// error is a gRPC status in the header section, no body.
		extra, body, status = cc.grpcErrorFields(x), body[:0], 200
	}
	out := h1.AppendSimpleResponse(body[len(body):], status, extra, body, cc.closeAfter)
	cc.lp.queue(cc.c, out)
	cc.lp.e.m.LocalResponse(cc.l.cfg.Name, x.Reason).Inc()
	cc.r.lg.endpointDone(status, false)
	cc.r.lg.respStatus = status
	cc.r.lg.record(status, x.Reason)
	if cc.closeAfter {
		cc.closeGracefully()
		return
	}
	if cc.processing {
		cc.state = csHead
		cc.idleSince = cc.lp.nowNano()
		cc.r.parser.Reset()
		return // readHeads loops on
	}
	cc.toIdle()
}

var retryAfterHeader = []h1.Header{{Name: []byte("Retry-After"), Value: []byte("1")}}

// onTimer enforces the connection's deadlines; now is UnixNano.
func (cc *clientConn) onTimer(now int64) {
	l := cc.l
	switch cc.state {
	case csHead:
		if cc.proxyWait && now-cc.accepted > int64(l.proxy.timeout) {
			l.proxy.count("timeout")
			cc.lp.e.guardHit(&cc.take().x, guards.ProxyProtocolTimeout, guards.Connection)
			cc.abort()
			return
		}
		if cc.headStart != 0 {
			if cc.draining() && cc.c.InboundBuffered() == 0 && now-cc.headStart > int64(drainFirstByteGrace) {
				// Accepted, nothing sent for a while, and we are draining.
				// A connection accepted just now keeps its grace: its
				// request is most likely on the wire (a reload hands the
				// socket on while clients connect).
				cc.abort()
				return
			}
			if now-cc.headStart > int64(l.headerRead) {
				cc.lp.e.guardHit(&cc.take().x, guards.SlowLoris, guards.Connection)
				cc.beginExchange()
				cc.r.x.Status, cc.r.x.Reason, cc.r.x.CloseConn = 408, "header_timeout", true
				cc.respondLocal(&cc.r.x)
			}
		} else if now-cc.idleSince > int64(l.idleKeepalive) || cc.draining() {
			cc.abort() // idle too long, or idle while draining
		}
	case csUpstream:
		if cc.r.lg.respPumping {
			return
		}
		if cc.tunUp != nil {
			if now-cc.tunSince > int64(l.bodyIdle) {
				cc.lp.e.guardHit(&cc.r.x, guards.TunnelWaitTimeout, guards.Stream)
				cc.r.lg.abortMid("tunnel_wait_timeout")
				return
			}
			cc.startTunnel()
			return
		}
		if p := cc.pending; p != nil {
			if now-p.since > int64(l.bodyIdle) {
				cc.lp.e.guardHit(&cc.r.x, guards.DetachWaitTimeout, guards.Connection)
				cc.abort()
				return
			}
			cc.lp.flushOut()
			cc.detachExchange(p.u, p.head)
			return
		}
		u := cc.r.lg.up
		if cc.buffering {
			if now-cc.lastBodyAt > int64(l.bodyIdle) {
				cc.timeoutBody(guards.BodyIdle)
				return
			}
			if l.tooSlow(int64(cc.valOff), cc.bodyStart, now) {
				cc.timeoutBody(guards.SlowPost)
			}
			return
		}
		if u == nil && !cc.r.lg.muxed() {
			return
		}
		if !cc.r.lg.reqBodyDone && cc.r.lg.bodyWritable() {
			if now-cc.lastBodyAt > int64(l.bodyIdle) {
				cc.timeoutBody(guards.BodyIdle)
				return
			}
			if l.tooSlow(cc.r.lg.bodyBytes, cc.bodyStart, now) {
				cc.timeoutBody(guards.SlowPost)
				return
			}
		}
		cc.r.lg.onTimer(now)
	case csClosing:
		cc.lp.flushOut()
		if cc.c.OutboundBuffered() == 0 || now > cc.closeBy {
			cc.state = csClosed
			_ = cc.c.Close()
		}
	}
}

func (cc *clientConn) timeoutBody(guard guards.Name) {
	cc.lp.e.guardHit(&cc.r.x, guard, guards.Connection)
	cc.r.lg.dropUpstream()
	cc.r.lg.endpointDone(408, false)
	cc.r.x.Status, cc.r.x.Reason, cc.r.x.CloseConn = 408, string(guard), true
	cc.respondLocal(&cc.r.x)
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
		cc.lp.closeSoon(cc.c)
		return
	}
	cc.state = csClosing
	cc.closeBy = cc.lp.nowNano() + int64(cc.l.idleKeepalive)
}

// abort closes the client connection now, and any upstream it holds.
func (cc *clientConn) abort() {
	if r := cc.r; r != nil {
		if !r.lg.respPumping {
			r.lg.dropUpstream() // an HTTP/2 upstream stream gets RST_STREAM(CANCEL)
		}
		r.lg.endpointDone(0, false)
	}
	if cc.state != csDetached && cc.c != nil {
		cc.state = csClosed
		cc.lp.closeSoon(cc.c)
	}
}

// onClose runs when gnet closed the client connection.
func (cc *clientConn) onClose(c gnet.Conn, _ error) {
	if c != cc.c || cc.state == csDetached {
		return // a connection we moved off the loop
	}
	cc.state = csClosed
	if r := cc.r; r != nil {
		if !r.lg.respPumping {
			r.lg.dropUpstream() // an HTTP/2 upstream stream gets RST_STREAM(CANCEL)
		}
		if r.lg.epBegun || r.lg.counted {
			r.lg.endpointDone(499, false)
			r.lg.record(499, "client_closed")
		}
	}
	cc.release()
}

// release returns the connection's admission slots; once per connection.
func (cc *clientConn) release() {
	delete(cc.lp.clients, cc)
	if !cc.released {
		cc.released = true
		cc.l.limiter.Release(cc.clientIP)
		cc.lp.e.global.Release(cc.clientIP)
	}
	cc.l.active.Add(-1)
	cc.putExchange()
}

// onReattach: a connection the pumps hand back to the loop.
func (cc *clientConn) onReattach(c gnet.Conn) {
	cc.c = c
	cc.lp.clients[cc] = struct{}{}
	cc.toIdle()
}
