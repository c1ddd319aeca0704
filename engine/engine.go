// SPDX-License-Identifier: GPL-3.0-only

// Package engine runs the data plane: gnet event loops, one actor per client
// connection, per-loop upstream pools, timers, and the off-loop pumps that
// give long streams kernel backpressure.
//
// Thread-safety: unless a method says otherwise, engine types are owned by one
// event loop and must only be touched from its callbacks.
package engine

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/panjf2000/gnet/v2"
	"github.com/rs/zerolog"

	"github.com/expressgateway/expressgateway/codecs/h1"
	"github.com/expressgateway/expressgateway/codecs/h2"
	"github.com/expressgateway/expressgateway/codecs/msg"
	"github.com/expressgateway/expressgateway/conf"
	"github.com/expressgateway/expressgateway/engine/accesslog"
	"github.com/expressgateway/expressgateway/stages"
)

// Options are the engine's dependencies.
type Options struct {
	Snapshot *conf.Snapshot
	Log      zerolog.Logger
	Metrics  *Metrics
	Clusters *Clusters
	// TestHook, when set, runs on the loop for every exchange before it is
	// forwarded. Tests use it to inject panics; production leaves it nil.
	TestHook func(x *stages.Exchange)
	// AccessLog receives the access-log lines (a Buffer per loop); nil
	// writes none.
	AccessLog *accesslog.Log
}

// Engine is the L7 data plane for the snapshot's http listeners.
type Engine struct {
	opts     Options
	log      zerolog.Logger
	m        *Metrics
	clusters *Clusters

	listeners  []*listenerRT
	byBind     map[bindKey]*listenerRT // bind.go
	global     *stages.ConnLimiter
	loops      sync.Map // gnet.EventLoop → *loop
	loopsList  []*loop
	loopsMu    sync.Mutex
	stages     []stages.Stage
	ringSize   int
	gnetEngine gnet.Engine
	booted     chan struct{}
	bootOnce   sync.Once
	bootErr    error // why binding failed; set before booted is closed
	stopped    atomic.Bool
	draining   atomic.Bool
	eventLoops int
	runErr     chan error
	hook       func(x *stages.Exchange)
	l4         *l4Engine // tcp and udp listeners (l4.go); nil when none
}

// listenerRT is the runtime state of one http listener.
type listenerRT struct {
	cfg       *conf.Listener
	view      *stages.Listener
	limiter   *stages.ConnLimiter
	limits    h1.Limits
	inflight  int // max_inflight_bytes
	accessLog bool
	active    *atomic.Int64
	routes    map[*stages.Route]*requestCounters
	noRoute   *requestCounters
	addr      string
	proxyOpts h1.ProxyOptions
	// proxyOpts2 is proxyOpts for a message received over HTTP/2: Via
	// names the protocol version the message came in with (RFC 9110
	// section 7.6.3).
	proxyOpts2 h1.ProxyOptions
	pathOpts   msg.PathOptions
	h2Limits   h2.Limits
	h1, h2     bool // the HTTP versions spoken (http_versions)

	h2SettingsTimeout time.Duration
	duration          *metrics.PrometheusHistogram

	headerRead, bodyIdle, bodyGrace, idleKeepalive time.Duration
	upConnect, upRespHeader, upIdle                time.Duration
	minRate                                        int64
}

// New builds an engine for the http listeners of opts.Snapshot.
func New(opts Options) (*Engine, error) {
	cfg := &opts.Snapshot.Config
	e := &Engine{
		opts:     opts,
		log:      opts.Log,
		m:        opts.Metrics,
		clusters: opts.Clusters,
		byBind:   map[bindKey]*listenerRT{},
		global:   &stages.ConnLimiter{MaxTotal: cfg.Engine.MaxConnections},
		ringSize: cfg.Engine.RingSize,
		booted:   make(chan struct{}),
		runErr:   make(chan error, 1),
		hook:     opts.TestHook,
	}
	e.eventLoops = cfg.Engine.EventLoops
	if e.eventLoops <= 0 {
		e.eventLoops = runtime.NumCPU()
	}
	guard := &stages.Guard{Hit: func(x *stages.Exchange, g string) { e.guardHit(x, g) }}
	e.stages = stages.Order(guard, stages.RouteStage{}, &stages.Pick{}, &stages.Forward{})

	for i := range cfg.Listeners {
		lc := &cfg.Listeners[i]
		if lc.Protocol != conf.ProtocolHTTP {
			continue
		}
		l, err := e.buildListener(lc)
		if err != nil {
			return nil, err
		}
		key, addr, err := resolveBind(false, lc.Listen)
		if err != nil {
			return nil, fmt.Errorf("listener %s: %w", lc.Name, err)
		}
		l.addr = addr
		e.byBind[key] = l
		e.listeners = append(e.listeners, l)
	}
	// L4: tcp and udp listeners (l4.go).
	l4, err := newL4(e, cfg)
	if err != nil {
		return nil, err
	}
	e.l4 = l4
	return e, nil
}

func (e *Engine) buildListener(lc *conf.Listener) (*listenerRT, error) {
	var specs []stages.RouteSpec
	for i, r := range lc.Routes {
		cl := e.clusters.Get(r.Cluster)
		if cl == nil {
			return nil, fmt.Errorf("listener %s: route %d: unknown cluster %q", lc.Name, i, r.Cluster)
		}
		specs = append(specs, stages.RouteSpec{
			Name: strconv.Itoa(i), Host: r.Host, Path: r.Path, PathPrefix: r.PathPrefix,
			Methods: r.Methods, Headers: r.Headers, Cluster: cl,
		})
	}
	router := stages.NewRouter(specs)
	t := lc.Timeouts
	lim := lc.Limits
	escaped, err := msg.ParseEscapedSlashes(lc.EscapedSlashes)
	if err != nil {
		return nil, fmt.Errorf("listener %s: %w", lc.Name, err)
	}
	hc := lc.HTTP2
	h2lim := h2.DefaultLimits()
	h2lim.MaxConcurrentStreams = uint32(hc.MaxConcurrentStreams)
	h2lim.InitialStreamWindow = uint32(hc.StreamWindow)
	h2lim.ConnWindow = uint32(hc.ConnectionWindow)
	h2lim.MaxFrameSize = uint32(hc.MaxFrameSize)
	h2lim.MaxHeaderListSize = uint32(hc.MaxHeaderListSize)
	h2lim.MaxContinuationFrames = hc.MaxContinuationFrames
	h2lim.MaxHeaderBlockBytes = int(hc.MaxHeaderListSize) + 16<<10
	l := &listenerRT{
		h1:                slices.Contains(lc.HTTPVersions, "1.1"),
		h2:                slices.Contains(lc.HTTPVersions, "2"),
		h2Limits:          h2lim,
		h2SettingsTimeout: hc.SettingsTimeout.Std(),
		pathOpts:          msg.PathOptions{MergeSlashes: lc.MergeSlashes, EscapedSlashes: escaped},
		cfg:               lc,
		view:              &stages.Listener{Name: lc.Name, Router: router, MaxRequestsPerConn: lc.MaxRequestsPerConnection},
		limiter: &stages.ConnLimiter{
			MaxTotal: lc.MaxConnections, MaxPerIP: lc.MaxConnectionsPerIP,
		},
		limits: h1.Limits{
			MaxRequestLine: int(lim.MaxRequestLine), MaxHeaderBytes: int(lim.MaxHeaderBytes),
			MaxHeaderCount: lim.MaxHeaderCount, MaxBodyBytes: int64(lim.MaxBodyBytes),
			MaxChunkExtension: int(lim.MaxChunkExtension), MaxTrailerBytes: int(lim.MaxTrailerBytes),
			AllowGetBody: lc.AllowGetBody,
		},
		inflight:      int(lim.MaxInflightBytes),
		accessLog:     lc.AccessLog == nil || *lc.AccessLog,
		active:        e.m.ClientActive(lc.Name),
		routes:        map[*stages.Route]*requestCounters{},
		noRoute:       newRequestCounters(e.m.Set, lc.Name, "none"),
		duration:      e.m.Set.GetOrCreatePrometheusHistogram(fmt.Sprintf(`expressgateway_request_duration_seconds{listener=%q}`, lc.Name)),
		addr:          lc.Listen,
		proxyOpts:     h1.ProxyOptions{Proto: "http", Via: "1.1 expressgateway"},
		proxyOpts2:    h1.ProxyOptions{Proto: "http", Via: "2 expressgateway"},
		headerRead:    t.HeaderRead.Std(),
		bodyIdle:      t.BodyIdle.Std(),
		bodyGrace:     t.BodyMinRateGrace.Std(),
		idleKeepalive: t.IdleKeepalive.Std(),
		upConnect:     t.UpstreamConnect.Std(),
		upRespHeader:  t.UpstreamResponseHeader.Std(),
		upIdle:        t.UpstreamIdle.Std(),
		minRate:       int64(t.BodyMinRate),
	}
	for _, rt := range router.Routes() {
		l.routes[rt] = newRequestCounters(e.m.Set, lc.Name, rt.Name)
	}
	return l, nil
}

// Serve binds every http listener and runs the event loops until Stop. It
// returns once the engine has stopped; Ready is closed once it is serving.
func (e *Engine) Serve() error {
	if len(e.listeners) == 0 && e.l4 == nil {
		close(e.booted)
		return nil
	}
	addrs := make([]string, 0, len(e.listeners))
	reusePort := true
	for _, l := range e.listeners {
		addrs = append(addrs, "tcp://"+l.addr)
		reusePort = reusePort && l.cfg.ReusePort
	}
	// L4: tcp and udp listeners (l4.go).
	if e.l4 != nil {
		l4Addrs, l4Reuse := e.l4.addrs()
		addrs = append(addrs, l4Addrs...)
		reusePort = reusePort && l4Reuse
		go e.l4.ticker()
	}
	go e.ticker()
	err := gnet.Rotate(&handler{e: e}, addrs,
		gnet.WithMulticore(true),
		gnet.WithNumEventLoop(e.eventLoops),
		gnet.WithReusePort(reusePort),
		gnet.WithReuseAddr(true),
		gnet.WithTCPNoDelay(gnet.TCPNoDelay),
		gnet.WithLogger(gnetLogger{e.log}),
		gnet.WithTicker(true), // the first tick says every socket is bound (bind.go)
	)
	e.bootOnce.Do(func() {
		if err != nil {
			err = e.bindError(err, reusePort)
			e.bootErr = err
		}
		close(e.booted)
	})
	return err
}

// Ready is closed once every listening socket of every loop is bound, or
// binding failed (Bound says which).
func (e *Engine) Ready() <-chan struct{} { return e.booted }

// Drain stops taking new connections and lets the open ones finish: an
// exchange in flight completes with "Connection: close", idle keep-alive
// connections are closed by the next sweep, and tcp pairs run until they
// end. It returns when no client connection is left or ctx is done, and
// reports how many were still open; those are counted in
// expressgateway_shutdown_aborted_connections_total. Call Stop afterwards,
// which closes them. Safe from any goroutine.
func (e *Engine) Drain(ctx context.Context) int {
	e.draining.Store(true)
	t := time.NewTicker(sweepEvery)
	defer t.Stop()
	for {
		n := e.global.Count()
		if n == 0 {
			return 0
		}
		select {
		case <-ctx.Done():
			e.m.ShutdownAborted.Add(n)
			return n
		case <-t.C:
		}
	}
}

// Stop closes the listeners and every connection. Safe from any goroutine.
func (e *Engine) Stop(ctx context.Context) error {
	if e.stopped.Swap(true) {
		return nil
	}
	select {
	case <-e.booted:
	case <-ctx.Done():
		return ctx.Err()
	}
	if len(e.listeners) == 0 && e.l4 == nil {
		return nil
	}
	err := e.gnetEngine.Stop(ctx)
	if e.l4 != nil {
		e.l4.stop() // L4 pairs relayed off the loops
	}
	return err
}

func (e *Engine) guardHit(x *stages.Exchange, g string) {
	e.m.GuardHit(g).Inc()
	ev := e.log.Warn().Str("guard", g)
	if x != nil {
		ev = ev.Str("client", x.ClientIP.String())
		if x.Listener != nil {
			ev = ev.Str("listener", x.Listener.Name)
		}
	}
	ev.Msg("limit hit")
}

// loopFor returns the per-loop state of el, creating it on first use.
func (e *Engine) loopFor(el gnet.EventLoop) *loop {
	if v, ok := e.loops.Load(el); ok {
		return v.(*loop)
	}
	lp := newLoop(e, el)
	v, _ := e.loops.LoadOrStore(el, lp)
	lp = v.(*loop)
	e.loopsMu.Lock()
	e.loopsList = append(e.loopsList, lp)
	e.loopsMu.Unlock()
	return lp
}

// ticker drives each loop's timer sweep through Execute.
func (e *Engine) ticker() {
	t := time.NewTicker(sweepEvery)
	defer t.Stop()
	for range t.C {
		if e.stopped.Load() {
			return
		}
		e.loopsMu.Lock()
		lps := append([]*loop(nil), e.loopsList...)
		e.loopsMu.Unlock()
		for _, lp := range lps {
			_ = lp.el.Execute(context.Background(), lp.sweepRunnable)
		}
	}
}

const sweepEvery = 50 * time.Millisecond

// recoverConn is deferred by every callback that handles one connection: a
// panic closes that connection only, is counted and logged with its stack.
func (e *Engine) recoverConn(c gnet.Conn, what string) {
	if r := recover(); r != nil {
		e.m.Panics.Inc()
		e.log.Error().Str("in", what).Interface("panic", r).Bytes("stack", debug.Stack()).Msg("panic recovered; closing the connection")
		if c != nil {
			if cc, ok := c.Context().(*clientConn); ok {
				cc.abort()
			} else if sc, ok := c.Context().(*h2Conn); ok {
				sc.abort()
			} else if hu, ok := c.Context().(*h2Upstream); ok {
				hu.fail()
			} else if u, ok := c.Context().(*upstream); ok {
				u.fail(errPanic)
			} else if a, ok := c.Context().(l4Actor); ok {
				a.abort(c)
			} else {
				_ = c.Close()
			}
		}
	}
}

var errPanic = errors.New("panic while handling the connection")

// handler adapts gnet callbacks to actors.
type handler struct {
	gnet.BuiltinEventEngine
	e *Engine
}

func (h *handler) OnBoot(eng gnet.Engine) gnet.Action {
	h.e.gnetEngine = eng // ready at the first OnTick (bind.go)
	return gnet.None
}

func (h *handler) OnOpen(c gnet.Conn) (out []byte, action gnet.Action) {
	defer h.e.recoverConn(c, "open")
	switch ctx := c.Context().(type) {
	case *upstream:
		lp := ctx.lp
		lp.enter(c)
		ctx.onOpen(c)
		return nil, lp.leave()
	case *h2Upstream:
		lp := ctx.lp
		lp.enter(c)
		ctx.onOpen(c)
		return nil, lp.leave()
	case *clientConn:
		lp := ctx.lp
		lp.enter(c)
		ctx.onReattach(c)
		return nil, lp.leave()
	case l4Actor:
		return nil, ctx.onOpen(c)
	}
	if h.e.l4 != nil {
		if ok, action := h.e.l4.acceptTCP(c); ok {
			return nil, action
		}
	}
	h.e.acceptClient(c)
	return nil, gnet.None
}

func (h *handler) OnTraffic(c gnet.Conn) gnet.Action {
	defer h.e.recoverConn(c, "traffic")
	switch ctx := c.Context().(type) {
	case *clientConn:
		if c != ctx.c {
			return gnet.Close // a stale conn of an actor that moved on
		}
		lp := ctx.lp
		lp.enter(c)
		ctx.onTraffic()
		return lp.leave()
	case *h2Conn:
		lp := ctx.lp
		lp.enter(c)
		ctx.onTraffic()
		return lp.leave()
	case *h2Upstream:
		if c != ctx.c {
			return gnet.Close
		}
		lp := ctx.lp
		lp.enter(c)
		ctx.onTraffic()
		return lp.leave()
	case *upstream:
		if c != ctx.c {
			return gnet.Close
		}
		lp := ctx.lp
		lp.enter(c)
		ctx.onTraffic()
		return lp.leave()
	case l4Actor:
		return ctx.onTraffic(c)
	default:
		if h.e.l4 != nil && h.e.l4.datagram(c) {
			return gnet.None
		}
		_, _ = c.Discard(-1)
	}
	return gnet.None
}

func (h *handler) OnClose(c gnet.Conn, err error) gnet.Action {
	defer h.e.recoverConn(nil, "close")
	switch ctx := c.Context().(type) {
	case *clientConn:
		ctx.onClose(c, err)
	case *h2Conn:
		ctx.lp.enter(c)
		ctx.onClose()
		ctx.lp.leave()
	case *h2Upstream:
		if c == ctx.c {
			ctx.lp.enter(c)
			ctx.onClose()
			ctx.lp.leave()
		}
	case *upstream:
		ctx.onClose(c, err)
	case l4Actor:
		ctx.onClose(c, err)
	}
	return gnet.None
}

// acceptClient admits a new client connection and gives it an actor.
func (e *Engine) acceptClient(c gnet.Conn) {
	l := e.listenerOf(c)
	if l == nil {
		_ = c.Close()
		return
	}
	if e.draining.Load() {
		_ = c.Close() // draining: no new connections
		return
	}
	ip := addrIP(c.RemoteAddr())
	if ok, lim := e.global.Acquire(ip); !ok {
		e.guardHit(nil, lim)
		_ = c.Close()
		return
	}
	if ok, lim := l.limiter.Acquire(ip); !ok {
		e.global.Release(ip)
		e.m.GuardHit(lim).Inc()
		e.log.Warn().Str("guard", lim).Str("listener", l.cfg.Name).Str("client", ip.String()).Msg("limit hit")
		_ = c.Close()
		return
	}
	lp := e.loopFor(c.EventLoop())
	cc := newClientConn(lp, l, c, ip)
	c.SetContext(cc)
	l.active.Add(1)
}

func (e *Engine) listenerOf(c gnet.Conn) *listenerRT {
	// By the exact address of the listening socket (bind.go), never by
	// port alone.
	if k, ok := connKey(c); ok && !k.udp {
		return e.byBind[k]
	}
	return nil
}

func addrIP(a net.Addr) netip.Addr {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}

// gnetLogger routes gnet's own logs into zerolog.
type gnetLogger struct{ l zerolog.Logger }

func (g gnetLogger) Debugf(f string, a ...any) { g.l.Debug().Msgf(f, a...) }
func (g gnetLogger) Infof(f string, a ...any)  { g.l.Debug().Msgf(f, a...) }
func (g gnetLogger) Warnf(f string, a ...any) {
	// gnet warns about events still queued for a connection we just closed
	// or moved off the loop in the same epoll batch; that is expected.
	if strings.HasPrefix(f, "received event[") {
		g.l.Debug().Msgf(f, a...)
		return
	}
	g.l.Warn().Msgf(f, a...)
}
func (g gnetLogger) Errorf(f string, a ...any) { g.l.Error().Msgf(f, a...) }
func (g gnetLogger) Fatalf(f string, a ...any) { g.l.Error().Msgf(f, a...) }
