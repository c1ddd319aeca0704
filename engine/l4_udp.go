// SPDX-License-Identifier: GPL-3.0-only

package engine

import (
	"errors"
	"net"
	"net/netip"
	"time"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"

	"github.com/expressgateway/expressgateway/guards"
	"github.com/expressgateway/expressgateway/lb"
)

// The UDP relay. A udp listener has one SO_REUSEPORT socket per loop, so the
// kernel steers a client's datagrams to the same loop by their 4-tuple. Each
// loop keeps a session table per listener keyed by client address; a session
// owns a connected UDP socket to its endpoint, enrolled on the same loop so
// that replies arrive as OnTraffic on it, and keeps the listener's view it
// started with. gnet hands out the listening socket only as a per-datagram
// conn that dies with the callback, so replies go out with sendto(2) on our
// own fd of the listening socket (it stays open while sessions drain after
// the listener stopped reading), from the loop, to the client address the
// session remembers. A datagram that does not fit is dropped and counted,
// as UDP would.

// udpTable is one udp listener's sessions on one loop.
type udpTable struct {
	ll       *l4Loop
	slot     *listenerSlot
	fd       int // this loop's listening socket (our fd)
	sessions map[netip.AddrPort]*udpSession
}

type udpState uint8

const (
	udpDialing udpState = iota
	udpOpen
	udpClosed
)

// udpQueueMax caps the datagrams held for a session while its socket is set
// up (as well as max_inflight_bytes).
const udpQueueMax = 64

// udpSession is one client address's flow. Owned by its loop.
type udpSession struct {
	t      *udpTable
	l      *l4Listener // the listener's view when the session opened
	client netip.AddrPort
	sa     unix.Sockaddr
	up     gnet.Conn
	ep     *lb.Endpoint
	state  udpState

	started   time.Time
	last      int64 // UnixNano of the last datagram either way
	queue     [][]byte
	queued    int
	connected bool
	rx, tx    int64
}

// datagram handles a datagram that arrived through graft g of a udp
// listener.
func (l4 *l4Engine) datagram(c gnet.Conn, g *graft) {
	if g.slot.quic != nil {
		l4.quicDatagram(c, g)
		return
	}
	data, _ := c.Next(-1)
	ra, ok := c.RemoteAddr().(*net.UDPAddr)
	if !ok || g.slot.draining.Load() {
		return
	}
	ll := l4.loopFor(c.EventLoop())
	t := ll.udp[g.slot]
	if t == nil {
		t = &udpTable{ll: ll, slot: g.slot, sessions: map[netip.AddrPort]*udpSession{}}
		ll.udp[g.slot] = t
	}
	t.fd = g.sock.fd
	key := ra.AddrPort()
	key = netip.AddrPortFrom(key.Addr().Unmap(), key.Port())
	s := t.sessions[key]
	if s == nil {
		if s = t.open(key, ra); s == nil {
			return
		}
	}
	s.fromClient(data)
}

// open starts a session for a new client address, or returns nil when the
// listener's session cap or the client IP's is reached, or no endpoint can
// take it (the datagram is dropped).
func (t *udpTable) open(key netip.AddrPort, ra *net.UDPAddr) *udpSession {
	l, e := t.slot.l4.Load(), t.ll.l4.e
	ip := key.Addr()
	if ok, lim := l.limiter.Acquire(ip); !ok {
		guard, drop := guards.UDPSessions, l.dropFull
		if lim == guards.MaxConnectionsPerIP {
			guard, drop = guards.UDPSessionsPerIP, l.dropPerIP
		}
		drop.Inc()
		e.guards.Hit(guard, guards.Connection, l.name, ip)
		return nil
	}
	p, err := l.cluster.LB.Pick(sourceIP(ip), nil)
	if err != nil {
		l.limiter.Release(ip)
		e.m.UpstreamFailure(l.cluster.Name, "no_endpoint").Inc()
		l.dropNoEndpoint.Inc()
		return nil
	}
	s := &udpSession{
		t: t, l: l, client: key, sa: udpSockaddr(ra), ep: p.Endpoint, started: time.Now(),
	}
	s.last = s.started.UnixNano()
	t.sessions[key] = s
	l.active.Inc()
	l.total.Inc()
	s.dial()
	return s
}

// udpSockaddr is where replies to ra go. An IPv4 client of a dual-stack
// socket gets an AF_INET address, which Linux accepts on AF_INET6 sockets.
func udpSockaddr(ra *net.UDPAddr) unix.Sockaddr {
	if ip4 := ra.IP.To4(); ip4 != nil {
		sa := &unix.SockaddrInet4{Port: ra.Port}
		copy(sa.Addr[:], ip4)
		return sa
	}
	sa := &unix.SockaddrInet6{Port: ra.Port}
	copy(sa.Addr[:], ra.IP.To16())
	if ra.Zone != "" {
		if ifi, err := net.InterfaceByName(ra.Zone); err == nil {
			sa.ZoneId = uint32(ifi.Index)
		}
	}
	return sa
}

// dial opens the connected socket to the endpoint in a goroutine (a UDP
// connect does not block on the network, but name resolution might) and
// enrolls it on the loop; it arrives as OnOpen.
func (s *udpSession) dial() {
	s.ep.Begin()
	lp := s.t.ll.lp
	addr, timeout := s.ep.Address(), s.l.connect
	s.l.upConnects.Inc()
	lp.dialEnroll("udp", addr, timeout, s, func(reason string) {
		if s.state == udpDialing {
			lp.e.m.UpstreamFailure(s.l.cluster.Name, reason).Inc()
			s.close(502, true, reason)
		}
	})
}

// fromClient relays one client datagram upstream.
func (s *udpSession) fromClient(data []byte) {
	l := s.l
	s.last = time.Now().UnixNano()
	switch s.state {
	case udpOpen:
		s.send(data)
	case udpDialing:
		if len(s.queue) >= udpQueueMax || s.queued+len(data) > l.inflight {
			l.dropQueue.Inc()
			return
		}
		s.queue = append(s.queue, append([]byte(nil), data...))
		s.queued += len(data)
	}
}

func (s *udpSession) send(data []byte) {
	l := s.l
	if _, err := s.up.Write(data); err != nil {
		l.dropSend.Inc()
		if errors.Is(err, unix.ECONNREFUSED) {
			// An ICMP port unreachable came back for an earlier datagram.
			s.t.ll.l4.e.m.UpstreamFailure(l.cluster.Name, "refused").Inc()
			s.close(502, true, "refused")
		}
		return
	}
	s.rx += int64(len(data))
	counterAdd(l.rx, len(data))
}

func (s *udpSession) onOpen(c gnet.Conn) gnet.Action {
	lp := s.t.ll.lp
	lp.enter(c)
	if s.state != udpDialing {
		lp.closeNow(c)
		return lp.leave()
	}
	s.up = c
	s.state = udpOpen
	s.connected = true
	s.l.upActive.Add(1)
	s.ep.ConnOpened()
	q := s.queue
	s.queue, s.queued = nil, 0
	for _, d := range q {
		if s.state != udpOpen {
			break
		}
		s.send(d)
	}
	return lp.leave()
}

// onTraffic relays one reply datagram to the client through the listener's
// socket on this loop.
func (s *udpSession) onTraffic(c gnet.Conn) gnet.Action {
	data, _ := c.Next(-1)
	if c != s.up || s.state != udpOpen {
		return gnet.None
	}
	l := s.l
	s.last = time.Now().UnixNano()
	for {
		err := unix.Sendto(s.t.fd, data, 0, s.sa)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			l.dropReply.Inc()
			return gnet.None
		}
		break
	}
	s.tx += int64(len(data))
	counterAdd(l.tx, len(data))
	return gnet.None
}

func (s *udpSession) onClose(c gnet.Conn, err error) {
	if c != s.up {
		return
	}
	s.up = nil
	if err != nil && s.state == udpOpen {
		// A read error on a connected UDP socket is an ICMP error from the
		// endpoint (port unreachable, ...).
		s.t.ll.l4.e.m.UpstreamFailure(s.l.cluster.Name, "refused").Inc()
		s.close(502, true, "refused")
		return
	}
	s.close(200, false, "")
}

func (s *udpSession) abort(c gnet.Conn) {
	s.close(0, false, "panic")
	_ = c.Close()
}

// expire ends the sessions idle for the udp_session_timeout they started
// with.
func (t *udpTable) expire(now int64) {
	for _, s := range t.sessions {
		if now-s.last > int64(s.l.idle) {
			s.close(200, false, "expired")
		}
	}
}

// close ends the session on the loop; status goes to the load balancer.
func (s *udpSession) close(status int, connectFailed bool, reason string) {
	if s.state == udpClosed {
		return
	}
	s.state = udpClosed
	s.queue = nil
	t := s.t
	if t.sessions[s.client] == s {
		delete(t.sessions, s.client)
	}
	if c := s.up; c != nil {
		s.up = nil
		t.ll.lp.closeNow(c)
	}
	s.ep.End(status, time.Since(s.started), connectFailed)
	if s.connected {
		s.connected = false
		s.l.upActive.Add(-1)
		s.ep.ConnClosed()
	}
	l := s.l
	l.limiter.Release(s.client.Addr())
	l.active.Dec()
	if !l.log {
		return
	}
	ev := t.ll.l4.e.log.Info().Str("type", "l4").Str("proto", "udp").Str("listener", l.name).
		Str("client", s.client.String()).Str("upstream", s.ep.Address()).
		Int64("rx", s.rx).Int64("tx", s.tx).Dur("duration", time.Since(s.started))
	if reason != "" {
		ev = ev.Str("reason", reason)
	}
	ev.Msg("")
}

var _ l4Actor = (*udpSession)(nil)
