// SPDX-License-Identifier: GPL-3.0-only

package engine

import (
	"errors"
	"io"
	"time"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"

	"github.com/expressgateway/expressgateway/codecs/h1"
	"github.com/expressgateway/expressgateway/codecs/msg"
)

// The HTTP/1.1 side of a WebSocket tunnel (ARCHITECTURE.md, "WebSocket
// tunnels"). Once the upstream answered 101, the client connection and the
// upstream connection become a byte relay on the event loop (wsPair), as
// the L4 tcp relay does: each read is written straight to the peer's
// socket with one write(2) from gnet's read buffer, so nothing enters
// gnet's unbounded outbound buffer and an idle tunnel costs its two gnet
// connections and this struct, no goroutine and no buffer. When a peer's
// socket does not take a whole read (backpressure), the pair leaves the
// loop for good into the off-loop relay (tunnel.go), where kernel flow
// control paces the sender; a client connection over TLS starts there.

var wsToken = []byte("websocket")

// openTunnel implements tunnelOpener: the upstream's 101 (headLen bytes at
// the start of u's inbound buffer) completed the handshake. The 101 goes to
// the client as the tunnel's first bytes.
func (cc *clientConn) openTunnel(lg *leg, u *upstream, headLen int) {
	_, _ = u.c.Discard(headLen)
	fs, arena, added := msg.ForwardResponse(cc.lp.fwd.Fields[:0], cc.lp.fwd.Arena[:0], lg.resp.Fields, lg.respOpts())
	cc.lp.fwd.Fields, cc.lp.fwd.Arena = fs[:0], arena[:0]
	cc.tunHead = h1.AppendResponseHead(nil, 101, lg.resp.Reason, fs, added, h1.Version11, h1.BodyNone, -1, true, nil, wsToken)
	// The endpoint served the handshake: its request is done (a tunnel's
	// lifetime is not a latency sample, nor a request in flight).
	lg.endpointDone(101, false)
	cc.tunUp = u
	cc.tunSince = cc.lp.nowNano()
	cc.startTunnel()
}

// startTunnel turns the pair into a tunnel once gnet holds no output for
// either connection (the relay writes to the sockets directly, and a detach
// would drop it); until then the sweep calls it again.
func (cc *clientConn) startTunnel() {
	lp, u := cc.lp, cc.tunUp
	lp.flushOut()
	if cc.c.OutboundBuffered() > 0 || u.c.OutboundBuffered() > 0 {
		return
	}
	gc, gu := cc.c, u.c
	// What the client sent after its upgrade request (frames sent before
	// the 101) waited in gnet's inbound buffer: it goes upstream first.
	clientEarly, upEarly := takeInbound(gc), takeInbound(gu)
	head := cc.tunHead
	cc.tunUp, cc.tunHead = nil, nil
	cc.state = csDetached
	cc.c = nil
	u.state = upDetached
	u.c = nil
	u.owner = nil
	cc.r.lg.up = nil
	delete(lp.clients, cc)
	lp.e.m.WSActive.Add(1)
	now := lp.nowNano()
	p := &wsPair{lp: lp, cc: cc, u: u, opened: now, last: now, log: cc.tunnelLog()}
	// The request state is not needed any more: the access-log line has
	// what it needs, the leg holds no upstream. Back to the pool, so that an
	// idle tunnel costs only its connections and this pair.
	cc.putExchange()
	p.ends[tunClient] = wsEnd{p: p, side: tunClient, c: gc, fd: -1}
	p.ends[tunUpstream] = wsEnd{p: p, side: tunUpstream, c: gu, fd: -1}
	if _, isTLS := gc.(*tlsConn); isTLS {
		// The client's bytes are decrypted by the TLS actor: no socket to
		// write to on the loop.
		p.offloop(head, [2][]byte{tunClient: clientEarly, tunUpstream: upEarly})
		return
	}
	gc.SetContext(&p.ends[tunClient])
	gu.SetContext(&p.ends[tunUpstream])
	lp.wsPairs[p] = struct{}{}
	if n, err := writeFD(gc.Fd(), head); err != nil {
		p.writeFailed(err, head[n:], [2][]byte{tunClient: clientEarly, tunUpstream: upEarly})
		return
	}
	if p.push(tunUpstream, upEarly) {
		p.push(tunClient, clientEarly)
	}
}

// wsState is where a tunnel's bytes move.
type wsState uint8

const (
	wsOnLoop  wsState = iota // relayed by the loop
	wsOffLoop                // handed to an off-loop relay
	wsClosed
)

// wsPair is an HTTP/1.1 WebSocket tunnel relayed on its loop. Owned by the
// loop until it goes off the loop; then the relay owns the sockets and the
// pair's fields are only read again when the relay ended.
type wsPair struct {
	lp     *loop
	cc     *clientConn
	u      *upstream
	ends   [2]wsEnd
	state  wsState
	opened int64    // UnixNano of the 101
	last   int64    // UnixNano of the last byte relayed either way
	bytes  [2]int64 // relayed, by the side read
	log    tunnelLog
}

// tunnelLog is what a tunnel's accounting and access-log line need once
// its request state went back to the loop's pool.
type tunnelLog struct {
	l       *listenerRT // the view the request started with
	rc      *requestCounters
	started time.Time
	a       accessEntry
}

// tunnelLog takes what the tunnel's access-log line needs from the
// request state (the method and target copied).
func (cc *clientConn) tunnelLog() tunnelLog {
	lg, x := &cc.r.lg, &cc.r.x
	t := tunnelLog{l: lg.l, rc: lg.l.noRoute, started: lg.started}
	if x.Route != nil {
		if rc := lg.l.routes[x.Route]; rc != nil {
			t.rc = rc
		}
	}
	t.a = accessEntry{
		proto: lg.proto, ip: cc.ip, method: append([]byte(nil), x.Req.Method...), target: append([]byte(nil), x.Req.Path...),
		upstream: lg.upstreamAddr, grpcStatus: -1,
	}
	if x.Route != nil {
		t.a.routed, t.a.route, t.a.cluster = true, x.Route.Name, x.Cluster.Name
	}
	return t
}

// wsEnd is one side of a wsPair: the context of that side's gnet conn.
type wsEnd struct {
	p    *wsPair
	side int
	c    gnet.Conn // while gnet owns the socket
	fd   int       // our write-only dup once this side sent EOF; -1 otherwise
	eof  bool      // this side's read direction ended
	shut bool      // we sent FIN to this side
}

func (x *wsEnd) peer() *wsEnd { return &x.p.ends[1-x.side] }

// writeFD is the fd to write to this side, or -1.
func (x *wsEnd) writeFD() int {
	if x.c != nil {
		return x.c.Fd()
	}
	return x.fd
}

// push writes b, read from side, to its peer; a peer that does not take it
// all moves the pair off the loop with the rest. False when the pair is no
// longer relayed on the loop.
func (p *wsPair) push(side int, b []byte) bool {
	if len(b) == 0 {
		return p.state == wsOnLoop
	}
	x := &p.ends[side]
	n, err := writeFD(x.peer().writeFD(), b)
	if n > 0 {
		p.count(side, n)
	}
	if err != nil {
		var pre [2][]byte
		pre[side] = b[n:]
		p.writeFailed(err, nil, pre)
		return false
	}
	return true
}

// writeFailed handles a write to a peer that did not take everything:
// EAGAIN is backpressure (off the loop with what is left), anything else
// ends the tunnel.
func (p *wsPair) writeFailed(err error, head []byte, pre [2][]byte) {
	if errors.Is(err, unix.EAGAIN) {
		p.offloop(head, pre)
		return
	}
	p.close("write_" + errToken(err))
}

func (p *wsPair) count(side, n int) {
	p.bytes[side] += int64(n)
	p.last = p.lp.nowNano()
	p.lp.e.m.WSBytes[side].Add(n)
}

func (x *wsEnd) onOpen(gnet.Conn) gnet.Action { return gnet.None }

func (x *wsEnd) onTraffic(c gnet.Conn) gnet.Action {
	p := x.p
	lp := p.lp
	lp.enter(c)
	if c != x.c || p.state != wsOnLoop {
		_, _ = c.Discard(-1)
		lp.closeNow(c)
		return lp.leave()
	}
	buf, _ := c.Peek(-1)
	if len(buf) > 0 {
		n, err := writeFD(x.peer().writeFD(), buf)
		if n > 0 {
			_, _ = c.Discard(n)
			p.count(x.side, n)
		}
		if err != nil {
			p.writeFailed(err, nil, [2][]byte{})
		}
	}
	return lp.leave()
}

func (x *wsEnd) onClose(c gnet.Conn, err error) {
	p := x.p
	if c != x.c || p.state != wsOnLoop {
		return
	}
	lp := p.lp
	lp.tick()
	x.c = nil
	y := x.peer()
	if errors.Is(err, io.EOF) && !y.eof {
		// Half-close: gnet is done with this socket, but its peer may still
		// send to it. Keep a dup as our write-only end and pass the FIN on.
		setPairIdle(c, p.cc.l.wsIdle)
		if fd, derr := c.Dup(); derr == nil {
			x.fd, x.eof = fd, true
			if yfd := y.writeFD(); yfd >= 0 {
				_ = unix.Shutdown(yfd, unix.SHUT_WR)
				y.shut = true
			}
			p.last = lp.nowNano()
			return
		}
	}
	reason := "closed"
	switch {
	case err == nil:
		reason = "engine_stop" // gnet closed it: the engine stopped
	case !errors.Is(err, io.EOF):
		reason = errToken(err)
	}
	p.close(reason)
}

// abort runs after a recovered panic: the callback's return action is lost,
// so the conn is also closed through gnet's queue.
func (x *wsEnd) abort(c gnet.Conn) {
	x.p.close("panic")
	_ = c.Close()
}

// onTimer enforces websocket_idle and websocket_max_duration on the loop.
func (p *wsPair) onTimer(now int64) {
	l := p.cc.l
	switch {
	case now-p.last >= int64(l.wsIdle):
		p.close("idle_timeout")
	case l.wsMax > 0 && now-p.opened >= int64(l.wsMax):
		p.close("max_duration")
	}
}

// close ends a tunnel relayed on the loop.
func (p *wsPair) close(reason string) {
	if p.state != wsOnLoop {
		return
	}
	p.state = wsClosed
	lp := p.lp
	delete(lp.wsPairs, p)
	for i := range p.ends {
		x := &p.ends[i]
		if c := x.c; c != nil {
			x.c = nil
			lp.closeNow(c)
		}
		if x.fd >= 0 {
			_ = unix.Close(x.fd)
			x.fd = -1
		}
	}
	lp.e.m.WSActive.Add(-1)
	lp.e.m.WSClosed(reason).Inc()
	p.finish(reason)
}

// offloop hands both sockets to an off-loop relay (tunnel.go): head still
// goes to the client first, pre[i] are bytes read from side i and not yet
// written to its peer. gnet's outbound buffers of both conns are empty.
func (p *wsPair) offloop(head []byte, pre [2][]byte) {
	lp := p.lp
	delete(lp.wsPairs, p)
	p.state = wsOffLoop
	l := p.cc.l
	r := &relay{what: "websocket tunnel", head: head, prefix: pre, idle: l.wsIdle}
	if l.wsMax > 0 {
		r.max = max(time.Duration(p.opened+int64(l.wsMax)-lp.nowNano()), time.Millisecond)
	}
	var failed error
	for i := range p.ends {
		x := &p.ends[i]
		r.eof[i], r.shut[i] = x.eof, x.shut
		nc, err := lp.offloopConn(&x.c, &x.fd, &r.prefix[i], r.idle)
		r.conns[i], failed = nc, errors.Join(failed, err)
	}
	if failed != nil {
		lp.e.log.Error().Err(failed).Msg("websocket detach failed")
		r.closeAll()
		lp.e.m.WSActive.Add(-1)
		lp.e.m.WSClosed("detach_failed").Inc()
		p.finish("detach_failed")
		return
	}
	lp.e.m.Detach("websocket").Inc()
	m := lp.e.m
	r.count = func(side, n int) {
		p.bytes[side] += int64(n) // one relay goroutine per side
		m.WSBytes[side].Add(n)
	}
	r.done = func(errs [2]error, maxHit bool) {
		lp.e.tunnelClosed(r)
		reason := tunnelReason(errs, maxHit)
		m.WSActive.Add(-1)
		m.WSClosed(reason).Inc()
		p.tunnelDone(reason)
	}
	lp.e.openTunnel(r)
}

// finish does a tunnel's accounting and writes its access-log line, on
// the loop.
func (p *wsPair) finish(reason string) {
	cc, u := p.cc, p.u
	u.state = upClosed
	u.finalClose()
	t := &p.log
	t.rc.inc(101)
	a := t.a
	a.status, a.bytes, a.dur, a.reason = 101, p.bytes[tunUpstream], p.lp.since(t.started), "websocket_"+reason
	p.lp.logAccess(t.l, &a)
	cc.state = csClosed
	cc.release()
}

// tunnelDone runs on a relay goroutine when a tunnel off the loop ended:
// the accounting and the access-log line go back to the loop.
func (p *wsPair) tunnelDone(reason string) {
	lp, cc := p.lp, p.cc
	if !lp.exec("websocket", func() { p.finish(reason) }) {
		// The loop is gone (its listener was removed and drained, or the
		// engine stopped): release what is shared across loops here.
		p.u.finalClose()
		if !cc.released {
			cc.released = true
			cc.l.limiter.Release(cc.clientIP)
			lp.e.global.Release(cc.clientIP)
		}
		cc.l.active.Add(-1)
	}
}

var _ l4Actor = (*wsEnd)(nil)
