// SPDX-License-Identifier: GPL-3.0-only

package engine

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"

	"github.com/expressgateway/expressgateway/codecs/proxyproto"
	"github.com/expressgateway/expressgateway/guards"
	"github.com/expressgateway/expressgateway/lb"
)

// The TCP relay. A client connection accepted by gnet gets an upstream
// connection to a picked endpoint, dialed off the loop and enrolled on the
// same loop. Bytes are relayed on the loop with one direct write(2) to the
// peer's socket per read, straight from gnet's read buffer: no copy, and
// nothing ever enters gnet's unbounded outbound buffer. That invariant is
// what makes the rest simple and lossless:
//
//   - Backpressure: when the peer's socket does not take a whole read
//     (EAGAIN or a short write), the pair leaves the loop at once. Both
//     sockets are dup'd and handed to two goroutines doing blocking reads and
//     writes, where the kernel's TCP flow control paces the sender. The
//     unwritten remainder (at most one read, 64 KiB) goes with them; gnet's
//     outbound buffers are empty, so closing gnet's fds loses nothing.
//   - Half-close: gnet closes a connection as soon as it reads EOF. In
//     OnClose the socket is still open, so we dup it and keep the dup as a
//     write-only end, propagate the FIN with shutdown(SHUT_WR) to the peer,
//     and keep relaying the other direction on the loop, writing to the dup.
//   - Memory per pair on the loop: none beyond gnet's own conns. Off the
//     loop: two goroutines, and a pooled 64 KiB buffer per direction only
//     while bytes are in flight (reads wait for readability first).
//   - Cost: connection setup pays gnet's Enroll (a dial goroutine, a worker
//     pool hop, a dup); a pair that left the loop stays off it until EOF.

type tcpState uint8

const (
	tcpDialing  tcpState = iota // upstream dial in flight
	tcpRelaying                 // both ends on the loop (or half-closed)
	tcpOffloop                  // owned by the relay goroutines
	tcpClosed
	tcpProxy // waiting for a trusted balancer's PROXY header; nothing dialed
)

const (
	endClient   = 0
	endUpstream = 1
)

// tcpSession is one proxied connection pair. Owned by its loop until it goes
// off the loop, then by its tcpRelay.
type tcpSession struct {
	ll    *l4Loop
	l     *l4Listener
	ends  [2]tcpEnd
	state tcpState
	ip    netip.Addr

	ep        *lb.Endpoint
	epBegun   bool
	attempts  int
	connected bool // holds the endpoint's and cluster's connection counts
	started   time.Time
	last      int64 // UnixNano of the last relayed byte
	rx, tx    int64 // bytes from and to the client

	// peer and local are the client's address and the one it reached
	// (from a PROXY header when a trusted balancer sent one).
	peer, local netip.AddrPort
	checkProxy  bool // an untrusted peer: its first bytes must not be a PROXY header
	released    bool // the admission slots went back
}

// tcpEnd is one side of a pair; it is the context of that side's gnet conn.
type tcpEnd struct {
	s    *tcpSession
	side int
	c    gnet.Conn // while gnet owns the socket
	fd   int       // our write-only dup once this side sent EOF; -1 otherwise
	eof  bool      // this side's read direction has ended
	shut bool      // we sent FIN to this side

	// A client moved off the loop before its upstream was connected
	// (it sent more than max_inflight_bytes while we dialed).
	off       net.Conn
	offPrefix []byte
}

func (x *tcpEnd) peer() *tcpEnd { return &x.s.ends[1-x.side] }

// writeFD is the fd to write to this side, or -1.
func (x *tcpEnd) writeFD() int {
	if x.c != nil {
		return x.c.Fd()
	}
	return x.fd
}

// acceptTCP admits a client of the L4 tcp listener slot; the pair keeps the
// listener's current view for its whole life.
func (l4 *l4Engine) acceptTCP(c gnet.Conn, slot *listenerSlot) gnet.Action {
	l := slot.l4.Load()
	e := l4.e
	if l == nil {
		return gnet.Close
	}
	ip := addrIP(c.RemoteAddr())
	if ok, g := guards.Admit(e.global, l.limiter, slot.connRate.Load(), slot.penalty, ip, time.Now()); !ok {
		e.guards.Hit(g, guards.Connection, l.name, ip)
		return gnet.Close
	}
	ll := l4.loopFor(c.EventLoop())
	s := &tcpSession{
		ll: ll, l: l, ip: ip, state: tcpDialing, started: time.Now(),
	}
	s.last = s.started.UnixNano()
	s.peer, s.local = addrPort(c.RemoteAddr()), addrPort(c.LocalAddr())
	s.ends[endClient] = tcpEnd{s: s, side: endClient, c: c, fd: -1}
	s.ends[endUpstream] = tcpEnd{s: s, side: endUpstream, fd: -1}
	c.SetContext(&s.ends[endClient])
	ll.tcp[s] = struct{}{}
	l.active.Inc()
	l.total.Inc()
	ll.lp.enter(c)
	if l.proxy != nil {
		if l.proxy.trusts(ip) {
			s.state = tcpProxy // the pick waits for the client's address
			return ll.lp.leave()
		}
		s.checkProxy = true
	}
	s.pickAndDial()
	return ll.lp.leave()
}

// pickAndDial picks the endpoint for the client and dials it.
func (s *tcpSession) pickAndDial() {
	e, l := s.ll.l4.e, s.l
	s.state = tcpDialing
	p, err := l.cluster.LB.Pick(sourceIP(s.ip), nil)
	if err != nil {
		e.m.UpstreamFailure(l.cluster.Name, "no_endpoint").Inc()
		s.close(0, false, "no_endpoint")
	} else {
		s.dial(p.Endpoint)
	}
}

// proxyHeader reads a trusted balancer's PROXY header from the client end,
// adopts the client address in it and picks; false while more is needed or
// when the connection was refused.
func (s *tcpSession) proxyHeader(c gnet.Conn) {
	e, p := s.ll.l4.e, s.l.proxy
	buf, _ := c.Peek(-1)
	h, n, err := proxyproto.Parse(buf)
	if errors.Is(err, proxyproto.ErrNeedMore) {
		return
	}
	if err != nil {
		p.count(refuseReason(err))
		e.guards.Hit(guards.ProxyProtocol(refuseReason(err)), guards.Connection, s.l.name, s.ip)
		s.close(0, false, "proxy_protocol")
		return
	}
	_, _ = c.Discard(n)
	if h.Local {
		p.count("local")
	} else {
		to := h.Src.Addr().Unmap()
		slot := s.l.slot
		if ok, lim := guards.Readmit(e.global, s.l.limiter, slot.connRate.Load(), slot.penalty, s.ip, to, time.Now()); !ok {
			s.released = true
			p.count("over_limit")
			e.guards.Hit(lim, guards.Connection, s.l.name, to)
			s.close(0, false, string(lim))
			return
		}
		p.count("accepted")
		s.ip, s.peer, s.local = to, h.Src, h.Dst
	}
	s.pickAndDial()
	if s.state == tcpDialing && c.InboundBuffered() > s.l.inflight {
		s.detachEarly(&s.ends[endClient])
	}
}

// dial connects to ep in a goroutine with the listener's connect timeout and
// enrolls the socket on the loop; the outcome arrives as OnOpen of the
// upstream end, or through Execute.
func (s *tcpSession) dial(ep *lb.Endpoint) {
	s.ep = ep
	s.attempts++
	ep.Begin()
	s.epBegun = true
	lp := s.ll.lp
	up := &s.ends[endUpstream]
	addr, timeout := ep.Address(), s.l.connect
	s.l.upConnects.Inc()
	lp.dialEnroll("tcp", addr, timeout, up, func(reason string) { s.onDialFailed(ep, reason) })
}

// onDialFailed runs on the loop: retry another endpoint when the cluster's
// retry policy and budget allow (nothing was sent yet), else close.
func (s *tcpSession) onDialFailed(ep *lb.Endpoint, reason string) {
	if s.state != tcpDialing || s.ep != ep {
		return
	}
	e, cl := s.ll.l4.e, s.l.cluster
	e.m.UpstreamFailure(cl.Name, reason).Inc()
	e.log.Warn().Str("cluster", cl.Name).Str("endpoint", ep.Address()).Str("reason", reason).Msg("upstream failure")
	s.epBegun = false
	ep.End(502, time.Since(s.started), true)
	if s.attempts <= cl.LB.MaxRetries() && cl.LB.AllowRetry() {
		if p, err := cl.LB.Pick(sourceIP(s.ip), ep); err == nil && p.Endpoint != ep {
			e.m.UpstreamFailure(cl.Name, "retried").Inc()
			s.dial(p.Endpoint)
			return
		}
	}
	s.close(0, false, "upstream_"+reason)
}

func (x *tcpEnd) onOpen(c gnet.Conn) gnet.Action {
	s := x.s
	lp := s.ll.lp
	lp.enter(c)
	if x.side != endUpstream || s.state != tcpDialing || x.c != nil {
		// The client left while we dialed.
		lp.closeNow(c)
		return lp.leave()
	}
	x.c = c
	if v := s.ll.l4.e.clusters.ProxyProtocol(s.l.cluster); v != "" {
		// The PROXY header goes first, in one write to a fresh socket.
		hdr := appendProxyHeader(nil, v, s.peer, s.local)
		if n, err := writeFD(c.Fd(), hdr); err != nil || n != len(hdr) {
			s.close(502, false, "proxy_protocol_send")
			lp.closeNow(c)
			return lp.leave()
		}
	}
	s.state = tcpRelaying
	s.connected = true
	s.l.upActive.Add(1)
	s.ep.ConnOpened()
	s.touch()
	cl := &s.ends[endClient]
	switch {
	case cl.c == nil:
		// The client is already off the loop, or sent EOF while we dialed.
		s.goOffloop()
	case cl.c.InboundBuffered() > 0:
		s.relay(cl)
	}
	return lp.leave()
}

func (x *tcpEnd) onTraffic(c gnet.Conn) gnet.Action {
	s := x.s
	lp := s.ll.lp
	lp.enter(c)
	if c != x.c {
		_, _ = c.Discard(-1)
		lp.closeNow(c)
		return lp.leave()
	}
	if h := l4TestHook.Load(); h != nil {
		(*h)(c)
	}
	if s.checkProxy && x.side == endClient {
		buf, _ := c.Peek(-1)
		if proxyproto.Looks(buf) {
			if len(buf) < 12 && !bytes.HasPrefix(buf, []byte("PROXY ")) {
				return lp.leave() // could still be one
			}
			s.l.proxy.count("untrusted")
			s.ll.l4.e.guards.Hit(guards.ProxyProtocolUntrusted, guards.Connection, s.l.name, s.ip)
			s.close(0, false, "proxy_protocol_untrusted")
			return lp.leave()
		}
		s.checkProxy = false
	}
	switch s.state {
	case tcpProxy:
		s.proxyHeader(c)
	case tcpRelaying:
		s.relay(x)
	case tcpDialing:
		// The client talks before the upstream is connected: keep it in
		// gnet's inbound buffer up to max_inflight_bytes, then move the
		// client off the loop so the kernel stops it.
		if c.InboundBuffered() > s.l.inflight {
			s.detachEarly(x)
		}
	default:
		_, _ = c.Discard(-1)
	}
	return lp.leave()
}

// l4TestHook, when set, runs on the loop before bytes of a tcp pair are
// relayed. Tests use it to inject panics; production leaves it nil.
var l4TestHook atomic.Pointer[func(c gnet.Conn)]

// relay writes what x has buffered to its peer's socket. A peer that does
// not take it all moves the pair off the loop.
func (s *tcpSession) relay(x *tcpEnd) {
	buf, _ := x.c.Peek(-1)
	if len(buf) == 0 {
		return
	}
	y := x.peer()
	n, err := writeFD(y.writeFD(), buf)
	if n > 0 {
		_, _ = x.c.Discard(n)
		s.count(x.side, n)
		s.touch()
	}
	switch {
	case err == nil:
	case errors.Is(err, unix.EAGAIN):
		s.goOffloop()
	default:
		s.close(200, false, "write_"+errToken(err))
	}
}

// count adds n relayed bytes read from side.
func (s *tcpSession) count(side, n int) {
	if side == endClient {
		s.rx += int64(n)
		counterAdd(s.l.rx, n)
	} else {
		s.tx += int64(n)
		counterAdd(s.l.tx, n)
	}
}

func (s *tcpSession) touch() { s.last = time.Now().UnixNano() }

// detachEarly moves a client that floods us during the dial off the loop.
func (s *tcpSession) detachEarly(x *tcpEnd) {
	c := x.c
	x.offPrefix = takeInbound(c)
	x.c = nil
	nc, err := s.ll.lp.detachConn(c)
	if err != nil {
		s.ll.l4.e.log.Error().Err(err).Msg("detach failed")
		s.close(0, false, "detach_failed")
		return
	}
	x.off = nc
	s.ll.l4.e.m.Detach("l4_connect").Inc()
}

func (x *tcpEnd) onClose(c gnet.Conn, err error) {
	s := x.s
	if c != x.c || s.state == tcpOffloop || s.state == tcpClosed {
		return
	}
	x.c = nil
	y := x.peer()
	if s.state == tcpProxy {
		s.close(0, false, "proxy_protocol_missing")
		return
	}
	if errors.Is(err, io.EOF) && !y.eof {
		// Half-close: gnet is done with this socket, but its peer may still
		// have bytes for it. Keep a dup as our write-only end and pass the
		// FIN on.
		if fd, derr := c.Dup(); derr == nil {
			x.fd, x.eof = fd, true
			if c.InboundBuffered() > 0 {
				x.offPrefix = takeInbound(c) // only while dialing: nothing is left unsent otherwise
			}
			if s.state == tcpDialing {
				return // onOpen moves the pair off the loop with the prefix
			}
			if yfd := y.writeFD(); yfd >= 0 {
				_ = unix.Shutdown(yfd, unix.SHUT_WR)
				y.shut = true
			}
			s.touch()
			return
		}
	}
	status := 200
	if s.state == tcpDialing {
		status = 0 // the client left before the upstream answered the dial
	}
	if x.side == endUpstream && err != nil && !errors.Is(err, io.EOF) {
		status = 502
		s.ll.l4.e.m.UpstreamFailure(s.l.cluster.Name, "reset").Inc()
	}
	reason := ""
	if err != nil && !errors.Is(err, io.EOF) {
		reason = errToken(err)
	}
	s.close(status, false, reason)
}

// abort runs after a recovered panic: the callback's return action is lost,
// so the conn is also closed through gnet's queue.
func (x *tcpEnd) abort(c gnet.Conn) {
	x.s.close(0, false, "panic")
	_ = c.Close()
}

// onTimer enforces tcp_idle while the pair is on the loop.
func (s *tcpSession) onTimer(now int64) {
	if s.state == tcpRelaying && now-s.last > int64(s.l.idle) {
		s.close(200, false, "idle_timeout")
	}
	if s.state == tcpProxy && s.l.proxy != nil && now-s.started.UnixNano() > int64(s.l.proxy.timeout) {
		s.l.proxy.count("timeout")
		s.ll.l4.e.guards.Hit(guards.ProxyProtocolTimeout, guards.Connection, s.l.name, s.ip)
		s.close(0, false, "proxy_protocol_timeout")
	}
}

// close ends the session on the loop: both sockets close, the slots and
// counts are released. status goes to the load balancer (0: none).
func (s *tcpSession) close(status int, connectFailed bool, reason string) {
	if s.state == tcpClosed || s.state == tcpOffloop {
		return
	}
	s.state = tcpClosed
	delete(s.ll.tcp, s)
	for i := range s.ends {
		x := &s.ends[i]
		if c := x.c; c != nil {
			x.c = nil
			s.ll.lp.closeNow(c)
		}
		if x.fd >= 0 {
			_ = unix.Close(x.fd)
			x.fd = -1
		}
		if x.off != nil {
			_ = x.off.Close()
			x.off = nil
		}
	}
	s.finish(status, connectFailed, reason)
}

// finish releases what the session holds; once, from the loop or, for a
// pair off the loop, from its relay goroutine (everything here is safe for
// concurrent use).
func (s *tcpSession) finish(status int, connectFailed bool, reason string) {
	if s.epBegun {
		s.epBegun = false
		s.ep.End(status, time.Since(s.started), connectFailed)
	}
	if s.connected {
		s.connected = false
		s.l.upActive.Add(-1)
		s.ep.ConnClosed()
	}
	e := s.ll.l4.e
	if !s.released {
		s.released = true
		s.l.limiter.Release(s.ip)
		e.global.Release(s.ip)
	}
	s.l.active.Dec()
	if !s.l.log {
		return
	}
	ev := e.log.Info().Str("type", "l4").Str("proto", "tcp").Str("listener", s.l.name).
		Str("client", s.ip.String()).Int64("rx", s.rx).Int64("tx", s.tx).Dur("duration", time.Since(s.started))
	if s.ep != nil {
		ev = ev.Str("upstream", s.ep.Address())
	}
	if reason != "" {
		ev = ev.Str("reason", reason)
	}
	ev.Msg("")
}

// goOffloop hands both sockets to an off-loop relay (tunnel.go). Runs on
// the loop; gnet's outbound buffers of both conns are empty (we never write
// through them).
func (s *tcpSession) goOffloop() {
	lp := s.ll.lp
	s.state = tcpOffloop
	delete(s.ll.tcp, s)
	r := &relay{e: lp.e, what: "l4 relay", idle: s.l.idle, count: s.count}
	var failed error
	for i := range s.ends {
		x := &s.ends[i]
		r.eof[i], r.shut[i] = x.eof, x.shut
		r.prefix[i] = x.offPrefix
		x.offPrefix = nil
		if x.off != nil {
			r.conns[i] = x.off
			x.off = nil
			continue
		}
		nc, err := lp.offloopConn(&x.c, &x.fd, &r.prefix[i], r.idle)
		r.conns[i], failed = nc, errors.Join(failed, err)
	}
	if failed != nil {
		lp.e.log.Error().Err(failed).Msg("l4 detach failed")
		r.closeAll()
		s.finish(0, false, "detach_failed")
		return
	}
	lp.e.m.Detach("l4").Inc()
	l4 := s.ll.l4
	r.done = func(errs [2]error, _ bool) { s.offloopDone(r, errs) }
	l4.offMu.Lock()
	l4.off[r] = s
	l4.offMu.Unlock()
	r.start()
}

// offloopDone runs on a relay goroutine once both directions of a pair off
// the loop ended.
func (s *tcpSession) offloopDone(r *relay, errs [2]error) {
	l4 := s.ll.l4
	l4.offMu.Lock()
	delete(l4.off, r)
	l4.offMu.Unlock()
	status, reason := 200, ""
	for i, err := range errs {
		if err == nil || errors.Is(err, net.ErrClosed) {
			continue
		}
		if reason == "" {
			reason = errToken(err)
		}
		if i == endUpstream && !errors.Is(err, errIdle) {
			status = 502
		}
	}
	if errors.Is(errs[0], errIdle) || errors.Is(errs[1], errIdle) {
		reason = "idle_timeout"
	}
	s.finish(status, false, reason)
}

// writeFD writes b to a non-blocking socket without blocking: it returns how
// much the socket took and EAGAIN when that was not all.
func writeFD(fd int, b []byte) (int, error) {
	if fd < 0 {
		return 0, unix.EBADF
	}
	n := 0
	for n < len(b) {
		m, err := unix.Write(fd, b[n:])
		if m > 0 {
			n += m
		}
		switch {
		case err == unix.EINTR:
		case err != nil:
			return n, err
		case m == 0:
			return n, unix.EAGAIN
		}
	}
	return n, nil
}

// errToken is a short stable label for a relay error.
func errToken(err error) string {
	switch {
	case errors.Is(err, errIdle):
		return "idle_timeout"
	case errors.Is(err, unix.ECONNRESET):
		return "reset"
	case errors.Is(err, unix.EPIPE):
		return "broken_pipe"
	case errors.Is(err, errPanic):
		return "panic"
	case isTimeout(err):
		return "timeout"
	}
	return "io_error"
}

var _ l4Actor = (*tcpEnd)(nil)
