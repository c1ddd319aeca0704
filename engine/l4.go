// SPDX-License-Identifier: GPL-3.0-only

package engine

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/panjf2000/gnet/v2"

	"github.com/expressgateway/expressgateway/conf"
	"github.com/expressgateway/expressgateway/guards"
	"github.com/expressgateway/expressgateway/stages"
)

// The userspace L4 path: listeners with protocol = "tcp" relay byte streams
// and listeners with protocol = "udp" relay datagrams to one cluster, on the
// same gnet event loops as the L7 path and with the same load balancers;
// protocol = "quic-passthrough" relays QUIC datagrams routed by connection
// ID. l4_tcp.go has the stream relay, l4_udp.go the datagram session table,
// l4_quic.go the connection ID table.

// l4Engine is the engine's L4 part. loops and off are safe from any
// goroutine.
type l4Engine struct {
	e *Engine

	loops     sync.Map // gnet.EventLoop → *l4Loop
	loopsMu   sync.Mutex
	loopsList []*l4Loop

	offMu sync.Mutex
	off   map[*relay]*tcpSession // pairs relayed off the loops; Stop closes them

	sweepEvery atomic.Int64 // nanoseconds; the shortest idle timeout / 8, at most 1s
}

// l4Listener is the compiled, immutable view of one tcp or udp listener
// for one config generation. A session keeps the view it started with; the
// limiter belongs to the listener (its slot) and is shared by its views.
type l4Listener struct {
	slot     *listenerSlot
	cfg      *conf.Listener
	name     string
	udp      bool
	quic     bool // quic-passthrough (its datagrams go to l4_quic.go)
	cluster  *stages.Cluster
	limiter  *guards.ConnLimiter
	idle     time.Duration // tcp_idle, udp_session_timeout or quic_passthrough.idle_timeout
	connect  time.Duration // upstream_connect
	inflight int           // max_inflight_bytes
	log      bool          // access log: one line per session
	proxy    *proxyAccept  // PROXY protocol from trusted balancers; nil: off

	active *metrics.Gauge
	total  *metrics.Counter
	rx, tx *metrics.Counter // bytes from clients, bytes to clients

	// the cluster's upstream families, looked up once
	upActive   *atomic.Int64
	upConnects *metrics.Counter

	// udp datagrams dropped, by reason
	dropFull, dropPerIP, dropNoEndpoint, dropQueue, dropSend, dropReply *metrics.Counter

	qm *quicMetrics // quic-passthrough listeners
}

// l4Loop is the L4 state one event loop owns.
type l4Loop struct {
	l4    *l4Engine
	lp    *loop
	tcp   map[*tcpSession]struct{} // sessions relayed on this loop
	udp   map[*listenerSlot]*udpTable
	quic  map[*quicFlow]struct{} // QUIC connections whose upstream socket is on this loop
	sweep gnet.RunnableFunc
}

// l4Actor is the context of every gnet conn the L4 path owns. The handler
// dispatches to it; each method runs on the conn's loop.
type l4Actor interface {
	onOpen(c gnet.Conn) gnet.Action
	onTraffic(c gnet.Conn) gnet.Action
	onClose(c gnet.Conn, err error)
	// abort closes the actor's session after a recovered panic.
	abort(c gnet.Conn)
}

// newL4 builds the (empty) L4 part; buildListener adds views.
func newL4(e *Engine) *l4Engine {
	l4 := &l4Engine{e: e, off: map[*relay]*tcpSession{}}
	l4.sweepEvery.Store(int64(time.Second))
	return l4
}

// buildListener compiles the view of a tcp or udp listener; get resolves
// its cluster.
func (l4 *l4Engine) buildListener(slot *listenerSlot, lc *conf.Listener, get func(string) *stages.Cluster) (*l4Listener, error) {
	e := l4.e
	cl := get(lc.Cluster)
	if cl == nil {
		return nil, fmt.Errorf("listener %s: unknown cluster %q", lc.Name, lc.Cluster)
	}
	set := e.m.Set
	l := &l4Listener{
		slot:     slot,
		cfg:      lc,
		name:     lc.Name,
		udp:      lc.Protocol == conf.ProtocolUDP,
		quic:     lc.Protocol == conf.ProtocolQUICPassthrough,
		cluster:  cl,
		limiter:  slot.limiter,
		idle:     lc.Timeouts.TCPIdle.Std(),
		connect:  lc.Timeouts.UpstreamConnect.Std(),
		inflight: int(lc.Limits.MaxInflightBytes),
		log:      lc.AccessLog != nil && *lc.AccessLog,
		active:   set.GetOrCreateGauge(fmt.Sprintf(`expressgateway_l4_sessions_active{listener=%q}`, lc.Name), nil),
		total:    set.GetOrCreateCounter(fmt.Sprintf(`expressgateway_l4_sessions_total{listener=%q}`, lc.Name)),
		rx:       set.GetOrCreateCounter(fmt.Sprintf(`expressgateway_l4_bytes_total{listener=%q,direction="rx"}`, lc.Name)),
		tx:       set.GetOrCreateCounter(fmt.Sprintf(`expressgateway_l4_bytes_total{listener=%q,direction="tx"}`, lc.Name)),

		upActive:   e.m.UpstreamActive(cl.Name),
		upConnects: e.m.UpstreamConnect(cl.Name),
		proxy:      e.newProxyAccept(lc),
	}
	if l.quic {
		l.idle = lc.QUICPassthrough.IdleTimeout.Std()
		l.qm = newQUICMetrics(set, lc.Name)
	}
	if l.udp {
		l.idle = lc.UDPSessionTimeout.Std()
		drop := func(reason string) *metrics.Counter {
			return set.GetOrCreateCounter(fmt.Sprintf(`expressgateway_l4_udp_drops_total{listener=%q,reason=%q}`, lc.Name, reason))
		}
		l.dropFull, l.dropPerIP, l.dropNoEndpoint = drop("sessions_full"), drop("sessions_per_ip"), drop("no_endpoint")
		l.dropQueue, l.dropSend, l.dropReply = drop("queue_full"), drop("send_failed"), drop("reply_failed")
	}
	// Deadlines are checked by a sweep; a few sweeps per timeout keep
	// them accurate to about an eighth.
	sweep := max(l.idle/8, 10*time.Millisecond)
	for {
		cur := l4.sweepEvery.Load()
		if int64(sweep) >= cur || l4.sweepEvery.CompareAndSwap(cur, int64(sweep)) {
			break
		}
	}
	return l, nil
}

// loopFor returns the L4 state of el, creating it on first use.
func (l4 *l4Engine) loopFor(el gnet.EventLoop) *l4Loop {
	if v, ok := l4.loops.Load(el); ok {
		return v.(*l4Loop)
	}
	ll := &l4Loop{
		l4: l4, lp: l4.e.loopFor(el), tcp: map[*tcpSession]struct{}{},
		udp: map[*listenerSlot]*udpTable{}, quic: map[*quicFlow]struct{}{},
	}
	ll.sweep = func(context.Context) error {
		ll.onSweep()
		return nil
	}
	v, loaded := l4.loops.LoadOrStore(el, ll)
	if !loaded {
		l4.loopsMu.Lock()
		l4.loopsList = append(l4.loopsList, ll)
		l4.loopsMu.Unlock()
	}
	return v.(*l4Loop)
}

// ticker drives each loop's L4 sweep (idle TCP pairs, UDP session expiry)
// through Execute, until the engine stops.
func (l4 *l4Engine) ticker() {
	every := time.Duration(l4.sweepEvery.Load())
	t := time.NewTicker(every)
	defer t.Stop()
	for range t.C {
		if l4.e.stopped.Load() {
			return
		}
		if d := time.Duration(l4.sweepEvery.Load()); d != every {
			every = d // a reload added a listener with a shorter idle timeout
			t.Reset(every)
		}
		l4.loopsMu.Lock()
		lls := append([]*l4Loop(nil), l4.loopsList...)
		l4.loopsMu.Unlock()
		for _, ll := range lls {
			if err := ll.lp.el.Execute(context.Background(), ll.sweep); err != nil {
				l4.dropLoop(ll) // its gnet engine stopped
			}
		}
	}
}

// dropLoop forgets the L4 state of a loop whose gnet engine stopped.
func (l4 *l4Engine) dropLoop(ll *l4Loop) {
	l4.loops.Delete(ll.lp.el)
	l4.loopsMu.Lock()
	defer l4.loopsMu.Unlock()
	for i, x := range l4.loopsList {
		if x == ll {
			l4.loopsList = append(l4.loopsList[:i], l4.loopsList[i+1:]...)
			return
		}
	}
}

// onSweep runs on the loop.
func (ll *l4Loop) onSweep() {
	now := time.Now().UnixNano()
	for s := range ll.tcp {
		func() {
			defer ll.l4.e.recoverConn(nil, "l4 timer")
			s.onTimer(now)
		}()
	}
	for _, t := range ll.udp {
		func() {
			defer ll.l4.e.recoverConn(nil, "udp timer")
			t.expire(now)
		}()
	}
	for f := range ll.quic {
		func() {
			defer ll.l4.e.recoverConn(nil, "quic timer")
			f.expire(now)
		}()
	}
	ll.lp.flushOut()
}

// stop closes the pairs relayed off the loops; the loops close the rest.
func (l4 *l4Engine) stop() {
	l4.offMu.Lock()
	rs := make([]*relay, 0, len(l4.off))
	for r := range l4.off {
		rs = append(rs, r)
	}
	l4.offMu.Unlock()
	for _, r := range rs {
		r.closeAll()
	}
}

// sourceIP is the lb.RequestInfo of an L4 session: only the client address.
type sourceIP netip.Addr

func (s sourceIP) SourceIP() netip.Addr { return netip.Addr(s) }
func (sourceIP) Header(string) []byte   { return nil }
func (sourceIP) Cookie(string) []byte   { return nil }
func (sourceIP) Path() []byte           { return nil }

// counterAdd adds n bytes to c.
func counterAdd(c *metrics.Counter, n int) {
	if n > 0 {
		c.AddInt64(int64(n))
	}
}
