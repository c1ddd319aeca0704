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
	"github.com/expressgateway/expressgateway/stages"
)

// The userspace L4 path: listeners with protocol = "tcp" relay byte streams
// and listeners with protocol = "udp" relay datagrams to one cluster, on the
// same gnet event loops as the L7 path and with the same load balancers.
// l4_tcp.go has the stream relay, l4_udp.go the datagram session table.

// l4Engine is the engine's L4 part. Its maps are built before Serve and only
// read afterwards; loops and off are safe from any goroutine.
type l4Engine struct {
	e         *Engine
	listeners []*l4Listener
	byBind    map[bindKey]*l4Listener // by the exact bound address (bind.go)

	loops     sync.Map // gnet.EventLoop → *l4Loop
	loopsMu   sync.Mutex
	loopsList []*l4Loop

	offMu sync.Mutex
	off   map[*tcpRelay]struct{} // pairs relayed off the loops; Stop closes them

	sweepEvery time.Duration
}

// l4Listener is the runtime state of one tcp or udp listener.
type l4Listener struct {
	cfg      *conf.Listener
	name     string
	addr     string // the resolved address gnet binds
	udp      bool
	cluster  *stages.Cluster
	limiter  *stages.ConnLimiter
	idle     time.Duration // tcp_idle, or udp_session_timeout
	connect  time.Duration // upstream_connect
	inflight int           // max_inflight_bytes
	log      bool          // access log: one line per session

	active *metrics.Gauge
	total  *metrics.Counter
	rx, tx *metrics.Counter // bytes from clients, bytes to clients

	// the cluster's upstream families, looked up once
	upActive   *atomic.Int64
	upConnects *metrics.Counter

	// udp datagrams dropped, by reason
	dropFull, dropPerIP, dropNoEndpoint, dropQueue, dropSend, dropReply *metrics.Counter
}

// l4Loop is the L4 state one event loop owns.
type l4Loop struct {
	l4    *l4Engine
	lp    *loop
	tcp   map[*tcpSession]struct{} // sessions relayed on this loop
	udp   map[*l4Listener]*udpTable
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

// newL4 builds the L4 part for the snapshot's tcp and udp listeners, or
// returns nil when there are none.
func newL4(e *Engine, cfg *conf.Config) (*l4Engine, error) {
	l4 := &l4Engine{
		e:          e,
		byBind:     map[bindKey]*l4Listener{},
		off:        map[*tcpRelay]struct{}{},
		sweepEvery: time.Second,
	}
	for i := range cfg.Listeners {
		lc := &cfg.Listeners[i]
		if lc.Protocol != conf.ProtocolTCP && lc.Protocol != conf.ProtocolUDP {
			continue
		}
		cl := e.clusters.Get(lc.Cluster)
		if cl == nil {
			return nil, fmt.Errorf("listener %s: unknown cluster %q", lc.Name, lc.Cluster)
		}
		set := e.m.Set
		l := &l4Listener{
			cfg:      lc,
			name:     lc.Name,
			udp:      lc.Protocol == conf.ProtocolUDP,
			cluster:  cl,
			limiter:  &stages.ConnLimiter{MaxTotal: lc.MaxConnections, MaxPerIP: lc.MaxConnectionsPerIP},
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
		}
		if l.udp {
			// One limiter for the listener's sessions on every loop: the
			// kernel spreads one client IP's source ports over all of them.
			l.limiter = &stages.ConnLimiter{MaxTotal: lc.MaxConnections, MaxPerIP: lc.MaxSessionsPerIP}
			l.idle = lc.UDPSessionTimeout.Std()
			drop := func(reason string) *metrics.Counter {
				return set.GetOrCreateCounter(fmt.Sprintf(`expressgateway_l4_udp_drops_total{listener=%q,reason=%q}`, lc.Name, reason))
			}
			l.dropFull, l.dropPerIP, l.dropNoEndpoint = drop("sessions_full"), drop("sessions_per_ip"), drop("no_endpoint")
			l.dropQueue, l.dropSend, l.dropReply = drop("queue_full"), drop("send_failed"), drop("reply_failed")
		}
		// Deadlines are checked by a sweep; a few sweeps per timeout keep
		// them accurate to about an eighth.
		l4.sweepEvery = min(l4.sweepEvery, max(l.idle/8, 10*time.Millisecond))
		key, addr, err := resolveBind(l.udp, lc.Listen)
		if err != nil {
			return nil, fmt.Errorf("listener %s: %w", lc.Name, err)
		}
		l.addr = addr
		l4.byBind[key] = l
		l4.listeners = append(l4.listeners, l)
	}
	if len(l4.listeners) == 0 {
		return nil, nil
	}
	return l4, nil
}

// addrs are the gnet listen addresses of the L4 listeners; reusePort is
// false when one of them asks for a single socket.
func (l4 *l4Engine) addrs() (addrs []string, reusePort bool) {
	reusePort = true
	for _, l := range l4.listeners {
		scheme := "tcp://"
		if l.udp {
			scheme = "udp://"
		}
		addrs = append(addrs, scheme+l.addr)
		reusePort = reusePort && l.cfg.ReusePort
	}
	return addrs, reusePort
}

// listenerOf returns the L4 listener whose socket c came from, or nil.
func (l4 *l4Engine) listenerOf(c gnet.Conn) *l4Listener {
	k, ok := connKey(c)
	if !ok {
		return nil
	}
	return l4.byBind[k]
}

// loopFor returns the L4 state of el, creating it on first use.
func (l4 *l4Engine) loopFor(el gnet.EventLoop) *l4Loop {
	if v, ok := l4.loops.Load(el); ok {
		return v.(*l4Loop)
	}
	ll := &l4Loop{l4: l4, lp: l4.e.loopFor(el), tcp: map[*tcpSession]struct{}{}, udp: map[*l4Listener]*udpTable{}}
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
	t := time.NewTicker(l4.sweepEvery)
	defer t.Stop()
	for range t.C {
		if l4.e.stopped.Load() {
			return
		}
		l4.loopsMu.Lock()
		lls := append([]*l4Loop(nil), l4.loopsList...)
		l4.loopsMu.Unlock()
		for _, ll := range lls {
			_ = ll.lp.el.Execute(context.Background(), ll.sweep)
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
	ll.lp.flushOut()
}

// stop closes the pairs relayed off the loops; the loops close the rest.
func (l4 *l4Engine) stop() {
	l4.offMu.Lock()
	rs := make([]*tcpRelay, 0, len(l4.off))
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
