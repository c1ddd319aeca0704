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
	"github.com/quic-go/quic-go"
	"github.com/rs/zerolog"

	"github.com/expressgateway/expressgateway/codecs/h1"
	"github.com/expressgateway/expressgateway/codecs/h2"
	"github.com/expressgateway/expressgateway/codecs/msg"
	"github.com/expressgateway/expressgateway/conf"
	"github.com/expressgateway/expressgateway/engine/accesslog"
	"github.com/expressgateway/expressgateway/guards"
	"github.com/expressgateway/expressgateway/stages"
)

// Options are the engine's dependencies.
type Options struct {
	Snapshot *conf.Snapshot
	Log      zerolog.Logger
	Metrics  *Metrics
	Clusters *Clusters
	// Inherited are listening sockets handed over by the process being
	// upgraded, keyed like Socket.Key ("tcp 127.0.0.1:8080"). A listener
	// with the same protocol family and listen address adopts them instead
	// of binding. The engine owns these fds from New on and closes those no
	// listener adopted.
	Inherited map[string][]int
	// TestHook, when set, runs on the loop for every exchange before it is
	// forwarded. Tests use it to inject panics; production leaves it nil.
	TestHook func(x *stages.Exchange)
	// AccessLog receives the access-log lines (a Buffer per loop); nil
	// writes none.
	AccessLog *accesslog.Log
	// QUICGeneration (0 or 1) is the generation bit in the connection IDs
	// of h3 listeners (h3_steer.go); a process started by an upgrade uses
	// the other value than its predecessor.
	QUICGeneration byte
	// QUICTakeover: this process was started by an upgrade and its h3
	// listeners share their ports with the predecessor's sockets; New
	// steers the predecessor's connections back to them.
	QUICTakeover bool
}

// Engine is the data plane for the snapshot's listeners: http (L7) and
// userspace tcp and udp (L4).
type Engine struct {
	opts     Options
	log      zerolog.Logger
	m        *Metrics
	clusters *Clusters

	global     *guards.ConnLimiter
	guards     *guards.Recorder
	loops      sync.Map // gnet.EventLoop → *loop
	loopsList  []*loop
	loopsMu    sync.Mutex
	stages     []stages.Stage
	ringSize   int
	eventLoops int
	booted     chan struct{}
	bootOnce   sync.Once
	bootErr    error // why binding or starting failed; set before booted is closed
	bindErr    error // why New could not bind every listener; Serve returns it
	stopped    atomic.Bool
	draining   atomic.Bool
	done       chan struct{} // closed by Stop
	goPool     *goPool       // HTTP/3 streams' and dials' goroutines (gopool.go)
	hook       func(x *stages.Exchange)
	l4         *l4Engine // tcp and udp listeners (l4.go)

	// The listener set (listeners.go, reload.go). lmu serialises Serve,
	// Reload, StopAccepting and Stop.
	lmu       sync.Mutex
	snap      atomic.Pointer[conf.Snapshot]
	slots     map[string]*listenerSlot // serving listeners by name
	order     []*listenerSlot          // the initial listeners, in config order, for Serve
	sets      []*loopSet               // running loop sets
	inherited map[string][]int         // not yet adopted
	// quicTakeover: New's h3 binds steer the predecessor's QUIC
	// connections to its sockets (Options.QUICTakeover; false after New).
	quicTakeover bool
	upIdle       atomic.Int64 // the pool idle timeout of connections without a listener at hand
	loopCount    atomic.Int64 // running gnet loops

	tunMu   sync.Mutex
	tunnels map[*relay]struct{} // WebSocket tunnels off the loops (tunnel.go)

	h3upMu sync.Mutex
	h3upTr *quic.Transport // the UDP socket of HTTP/3 upstream connections (up_h3.go); nil until first used
}

// listenerRT is the compiled, immutable view of one http listener for one
// config generation. A connection picks up the listener's current view at
// the start of each request (reload.go); the limiter and the active gauge
// belong to the listener and are shared by its views.
type listenerRT struct {
	slot      *listenerSlot
	cfg       *conf.Listener
	view      *stages.Listener
	limiter   *guards.ConnLimiter
	limits    h1.Limits
	inflight  int // max_inflight_bytes
	accessLog bool
	active    *atomic.Int64
	routes    map[*stages.Route]*requestCounters
	noRoute   *requestCounters
	proxyOpts h1.ProxyOptions
	// proxyOpts2 is proxyOpts for a message received over HTTP/2: Via
	// names the protocol version the message came in with (RFC 9110
	// section 7.6.3).
	proxyOpts2 h1.ProxyOptions
	proxyOpts3 h1.ProxyOptions // ... and over HTTP/3
	pathOpts   msg.PathOptions
	h2Limits   h2.Limits
	h1, h2     bool         // the HTTP versions spoken (http_versions)
	proxy      *proxyAccept // PROXY protocol accepted from trusted balancers; nil: off
	scheme     []byte       // "http" or "https": the :scheme of requests received over HTTP/2

	h2SettingsTimeout time.Duration
	h2Guards          h2GuardLimits
	duration          *metrics.PrometheusHistogram

	headerRead, bodyIdle, bodyGrace, idleKeepalive time.Duration
	upConnect, upRespHeader, upIdle                time.Duration
	wsIdle, wsMax                                  time.Duration // websocket_idle, websocket_max_duration
	minRate                                        int64

	routeTimeout map[*stages.Route]time.Duration // routes with a timeout
	grpcCounters [len(grpcCodeNames) + 2]*metrics.Counter
}

// grpcCount is the counter of gRPC exchanges that ended with code (-1:
// without a grpc-status).
func (l *listenerRT) grpcCount(code int) *metrics.Counter {
	switch {
	case code < 0:
		return l.grpcCounters[len(grpcCodeNames)+1]
	case code >= len(grpcCodeNames):
		return l.grpcCounters[len(grpcCodeNames)]
	}
	return l.grpcCounters[code]
}

// New builds an engine for the listeners of opts.Snapshot and binds (or
// adopts) their sockets; Serve starts the loops.
func New(opts Options) (*Engine, error) {
	cfg := &opts.Snapshot.Config
	e := &Engine{
		opts:      opts,
		log:       opts.Log,
		m:         opts.Metrics,
		clusters:  opts.Clusters,
		global:    &guards.ConnLimiter{MaxTotal: cfg.Engine.MaxConnections},
		guards:    guards.NewRecorder(opts.Metrics.Set, opts.Log),
		ringSize:  cfg.Engine.RingSize,
		booted:    make(chan struct{}),
		done:      make(chan struct{}),
		hook:      opts.TestHook,
		slots:     map[string]*listenerSlot{},
		inherited: map[string][]int{},
		// Only the listeners New binds share a port with the predecessor.
		quicTakeover: opts.QUICTakeover,
	}
	defer func() { e.quicTakeover = false }()
	e.goPool = newGoPool(poolIdleWorkers, e.done, e.m, e.log)
	for k, fds := range opts.Inherited {
		e.inherited[k] = append([]int(nil), fds...)
	}
	defer e.closeInherited()
	e.eventLoops = cfg.Engine.EventLoops
	if e.eventLoops <= 0 {
		e.eventLoops = runtime.NumCPU()
	}
	guard := &stages.Guard{Hit: e.guardHit}
	e.stages = stages.Order(guard, stages.RouteStage{Hit: e.guardHit}, &stages.Pick{}, &stages.Forward{})
	e.l4 = newL4(e)
	e.m.Set.GetOrCreateGauge("expressgateway_event_loops", func() float64 { return float64(e.loopCount.Load()) })

	for i := range cfg.Listeners {
		lc := &cfg.Listeners[i]
		s := e.newSlot(lc)
		if err := e.setView(s, lc); err != nil {
			e.closeSlots()
			return nil, err
		}
		if err := e.bindSlot(s, nil); err != nil {
			// Serve (and Bound) report a bind failure, naming the
			// listener; nothing of the engine serves.
			e.closeSlots()
			e.slots, e.order = map[string]*listenerSlot{}, nil
			e.bindErr = err
			break
		}
		e.slots[s.name] = s
		e.order = append(e.order, s)
	}
	e.snap.Store(opts.Snapshot)
	e.setDefaultUpIdle(cfg)
	return e, nil
}

// newSlot makes the runtime identity of a listener.
func (e *Engine) newSlot(lc *conf.Listener) *listenerSlot {
	s := &listenerSlot{
		name: lc.Name, proto: lc.Protocol, addr: lc.Listen, reuse: lc.ReusePort,
		limiter: &guards.ConnLimiter{MaxTotal: lc.MaxConnections, MaxPerIP: slotPerIP(lc)},
	}
	s.setGuards(&lc.Guards)
	if lc.Protocol == conf.ProtocolHTTPS || lc.Protocol == conf.ProtocolH3 {
		s.tls = e.newTLSFront(lc.Name)
	}
	if lc.Protocol == conf.ProtocolQUICPassthrough {
		s.quic = newQUICTable()
	}
	return s
}

// tlsFronts lists the TLS state of the serving https listeners.
func (e *Engine) tlsFronts() []*tlsFront {
	e.lmu.Lock()
	defer e.lmu.Unlock()
	var out []*tlsFront
	for _, s := range e.slots {
		if s.tls != nil {
			out = append(out, s.tls)
		}
	}
	return out
}

// slotPerIP is a listener's per-client-IP cap: connections, or for a udp
// listener sessions (one limiter for its sessions on every loop, since the
// kernel spreads one client IP's source ports over all of them), or for a
// quic-passthrough listener QUIC connections.
func slotPerIP(lc *conf.Listener) int {
	if lc.Protocol == conf.ProtocolUDP || lc.Protocol == conf.ProtocolQUICPassthrough {
		return lc.MaxSessionsPerIP
	}
	if lc.Protocol == conf.ProtocolH3 {
		return lc.QUIC.MaxConnectionsPerIP
	}
	return lc.MaxConnectionsPerIP
}

// setView compiles lc into a new view of s and publishes it.
func (e *Engine) setView(s *listenerSlot, lc *conf.Listener) error {
	if conf.IsHTTP(lc.Protocol) {
		l, err := e.buildListener(s, lc, e.clusters.Get)
		if err != nil {
			return err
		}
		s.http.Store(l)
		return nil
	}
	l, err := e.l4.buildListener(s, lc, e.clusters.Get)
	if err != nil {
		return err
	}
	s.l4.Store(l)
	return nil
}

// closeSlots closes the sockets of every slot New made (New failed).
func (e *Engine) closeSlots() {
	for _, s := range e.order {
		for _, k := range s.socks {
			k.close()
		}
	}
}

// closeInherited closes the inherited fds no listener adopted.
func (e *Engine) closeInherited() {
	for k, fds := range e.inherited {
		for _, fd := range fds {
			closeFD(fd)
		}
		delete(e.inherited, k)
	}
}

// setDefaultUpIdle is the pool idle timeout for upstream connections parked
// without a client at hand: the first http listener's upstream_idle.
func (e *Engine) setDefaultUpIdle(cfg *conf.Config) {
	d := time.Minute
	for _, l := range cfg.Listeners {
		if conf.IsHTTP(l.Protocol) {
			d = l.Timeouts.UpstreamIdle.Std()
			break
		}
	}
	e.upIdle.Store(int64(d))
}

// defaultUpIdle: see setDefaultUpIdle.
func (e *Engine) defaultUpIdle() time.Duration { return time.Duration(e.upIdle.Load()) }

// buildListener compiles an http listener's view; get resolves cluster
// names (the registry in use, or the one a reload is about to apply).
func (e *Engine) buildListener(slot *listenerSlot, lc *conf.Listener, get func(string) *stages.Cluster) (*listenerRT, error) {
	var specs []stages.RouteSpec
	rates := newRateLimits(slot, lc)
	for i, r := range lc.Routes {
		cl := get(r.Cluster)
		if cl == nil {
			return nil, fmt.Errorf("listener %s: route %d: unknown cluster %q", lc.Name, i, r.Cluster)
		}
		specs = append(specs, stages.RouteSpec{
			Name: strconv.Itoa(i), Host: r.Host, Path: r.Path, PathPrefix: r.PathPrefix,
			Methods: r.Methods, Headers: r.Headers, Cluster: cl, Rate: rates.route(i),
		})
	}
	router := stages.NewRouter(specs)
	if slot.tls != nil && lc.TLS != nil {
		if err := slot.tls.configure(lc.TLS); err != nil {
			return nil, fmt.Errorf("listener %s: tls: %w", lc.Name, err)
		}
	}
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
	h2lim.EnableConnectProtocol = true // RFC 8441: WebSocket over HTTP/2
	l := &listenerRT{
		slot:              slot,
		h1:                slices.Contains(lc.HTTPVersions, "1.1"),
		h2:                slices.Contains(lc.HTTPVersions, "2"),
		h2Limits:          h2lim,
		h2SettingsTimeout: hc.SettingsTimeout.Std(),
		h2Guards:          newH2GuardLimits(&hc),
		pathOpts:          msg.PathOptions{MergeSlashes: lc.MergeSlashes, EscapedSlashes: escaped},
		scheme:            schemeHTTP,
		cfg:               lc,
		view:              &stages.Listener{Name: lc.Name, Router: router, MaxRequestsPerConn: lc.MaxRequestsPerConnection, Rate: rates.listener},
		limiter:           slot.limiter,
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
		proxyOpts:     h1.ProxyOptions{Proto: "http", Via: "1.1 expressgateway"},
		proxyOpts2:    h1.ProxyOptions{Proto: "http", Via: "2 expressgateway"},
		headerRead:    t.HeaderRead.Std(),
		bodyIdle:      t.BodyIdle.Std(),
		bodyGrace:     t.BodyMinRateGrace.Std(),
		idleKeepalive: t.IdleKeepalive.Std(),
		upConnect:     t.UpstreamConnect.Std(),
		upRespHeader:  t.UpstreamResponseHeader.Std(),
		upIdle:        t.UpstreamIdle.Std(),
		wsIdle:        t.WebSocketIdle.Std(),
		wsMax:         t.WebSocketMaxDuration.Std(),
		minRate:       int64(t.BodyMinRate),
	}
	for _, rt := range router.Routes() {
		l.routes[rt] = newRequestCounters(e.m.Set, lc.Name, rt.Name)
		if i, err := strconv.Atoi(rt.Name); err == nil && i < len(lc.Routes) && lc.Routes[i].Timeout > 0 {
			if l.routeTimeout == nil {
				l.routeTimeout = map[*stages.Route]time.Duration{}
			}
			l.routeTimeout[rt] = lc.Routes[i].Timeout.Std()
		}
	}
	for i := range l.grpcCounters {
		l.grpcCounters[i] = e.m.Set.GetOrCreateCounter(fmt.Sprintf(`expressgateway_grpc_requests_total{listener=%q,code=%q}`, lc.Name, grpcCodeName(grpcLabelCode(i))))
	}
	l.proxy = e.newProxyAccept(lc)
	l.proxyOpts3 = h1.ProxyOptions{Proto: "https", Via: "3 expressgateway"}
	if v := lc.AltSvcValue(); v != "" {
		l.proxyOpts.AltSvc, l.proxyOpts2.AltSvc = []byte(v), []byte(v)
	}
	if lc.Protocol == conf.ProtocolHTTPS || lc.Protocol == conf.ProtocolH3 {
		l.proxyOpts.Proto, l.proxyOpts2.Proto = "https", "https"
		l.scheme = schemeHTTPS
		if lc.TLS != nil && lc.TLS.ClientIdentityHeader != "" {
			l.proxyOpts.IdentityHeader = strings.ToLower(lc.TLS.ClientIdentityHeader)
			l.proxyOpts2.IdentityHeader = l.proxyOpts.IdentityHeader
		}
	}
	return l, nil
}

// Serve starts the event loops of the listeners and serves until Stop; it
// returns then, or at once when the loops could not start. Ready is closed
// once they serve (or failed to start).
func (e *Engine) Serve() error {
	e.lmu.Lock()
	if e.stopped.Load() {
		e.lmu.Unlock()
		e.bootOnce.Do(func() { close(e.booted) })
		return nil
	}
	if e.bindErr != nil {
		e.bootErr = e.bindErr
		e.lmu.Unlock()
		e.bootOnce.Do(func() { close(e.booted) })
		return e.bootErr
	}
	if len(e.order) > 0 {
		set, err := e.startSet(e.order)
		if err != nil {
			e.bootErr = err
			e.closeSlots()
			e.lmu.Unlock()
			e.bootOnce.Do(func() { close(e.booted) })
			return err
		}
		e.sets = append(e.sets, set)
		if err := e.serveH3(set, e.order); err != nil {
			e.bootErr = err
			e.lmu.Unlock()
			e.bootOnce.Do(func() { close(e.booted) })
			return err
		}
	}
	e.lmu.Unlock()
	go e.ticker()
	go e.l4.ticker()
	go e.tlsWatch()
	e.bootOnce.Do(func() { close(e.booted) })
	<-e.done
	return nil
}

// Ready is closed once the listeners serve (or starting them failed).
func (e *Engine) Ready() <-chan struct{} { return e.booted }

// StartErr is, once Ready is closed, why the loops could not start; nil
// when they serve.
func (e *Engine) StartErr() error {
	select {
	case <-e.booted:
		return e.bootErr
	default:
		return nil
	}
}

// Loops is the number of gnet event loops running.
func (e *Engine) Loops() int { return int(e.loopCount.Load()) }

// Drain stops taking new connections (StopAccepting: the listening sockets
// close, so connection attempts are refused) and lets the open ones
// finish: an exchange in flight completes with "Connection: close", idle
// keep-alive connections are closed by the next sweep, and tcp pairs run
// until they end. It returns when no client connection is left or ctx is
// done, and reports how many were still open. Call Stop afterwards. Safe
// from any goroutine.
func (e *Engine) Drain(ctx context.Context) int {
	e.StopAccepting()
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
	e.lmu.Lock()
	var wg sync.WaitGroup
	for _, set := range e.sets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			set.stop(ctx)
		}()
	}
	wg.Wait()
	e.sets = nil
	for _, s := range e.slots {
		for _, k := range s.socks {
			k.close()
		}
		if s.h3 != nil {
			s.h3.close()
		}
	}
	e.lmu.Unlock()
	e.l4.stop()      // L4 pairs relayed off the loops
	e.closeTunnels() // WebSocket tunnels
	e.closeH3Transport()
	close(e.done)
	return ctx.Err()
}

// guardHit records a hit of guard g for the exchange x (nil: none at
// hand). On HTTP/2 a guard that would close an HTTP/1 connection refuses
// only its stream (RFC 9113 section 8.1.1).
func (e *Engine) guardHit(x *stages.Exchange, g guards.Name, scope guards.Scope) {
	var listener string
	var ip netip.Addr
	if x != nil {
		ip = x.ClientIP
		if x.Listener != nil {
			listener = x.Listener.Name
		}
		if _, ok := x.Owner.(*h2Stream); ok {
			scope = guards.Stream
		}
	}
	e.guards.Hit(g, scope, listener, ip)
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
			if err := lp.el.Execute(context.Background(), lp.sweepRunnable); err != nil {
				e.dropLoop(lp) // its gnet engine stopped
			}
		}
	}
}

// dropLoop forgets the state of a loop whose gnet engine stopped.
func (e *Engine) dropLoop(lp *loop) {
	e.loops.Delete(lp.el)
	e.loopsMu.Lock()
	defer e.loopsMu.Unlock()
	for i, x := range e.loopsList {
		if x == lp {
			e.loopsList = append(e.loopsList[:i], e.loopsList[i+1:]...)
			return
		}
	}
}

// eachLoop runs fn on every running loop, through Execute, and waits for
// all of them (or ctx). fn runs on the loop.
func (e *Engine) eachLoop(ctx context.Context, fn func(lp *loop)) {
	e.loopsMu.Lock()
	lps := append([]*loop(nil), e.loopsList...)
	e.loopsMu.Unlock()
	var wg sync.WaitGroup
	for _, lp := range lps {
		wg.Add(1)
		done := make(chan struct{})
		err := lp.el.Execute(ctx, gnet.RunnableFunc(func(context.Context) error {
			defer close(done)
			defer e.recoverConn(nil, "reload")
			lp.tick()
			fn(lp)
			lp.flushOut()
			return nil
		}))
		go func() {
			defer wg.Done()
			if err != nil {
				return
			}
			select {
			case <-done:
			case <-ctx.Done():
			}
		}()
	}
	wg.Wait()
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
				// The callback's return action is lost and it never left:
				// the loop forgets it, runs the closes it queued, and the
				// conn is closed through gnet's queue.
				cc.lp.afterPanic()
				_ = c.Close()
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

// handler adapts the gnet callbacks of one gloop to actors.
type handler struct {
	gnet.BuiltinEventEngine
	e  *Engine
	gl *gloop
}

func (h *handler) OnBoot(eng gnet.Engine) gnet.Action {
	err := h.gl.graftAll(eng)
	h.gl.booted <- err
	if err != nil {
		return gnet.Shutdown
	}
	return gnet.None
}

func (h *handler) OnOpen(c gnet.Conn) (out []byte, action gnet.Action) {
	defer h.e.recoverConn(c, "open")
	h.gl.bind(h.e, c.EventLoop())
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
	g := h.gl.graftOf(c.LocalAddr())
	if g == nil {
		return nil, gnet.Close
	}
	switch g.slot.proto {
	case protoH3Pilot:
		return nil, gnet.Close // the loop is known now (bind above)
	case conf.ProtocolTCP:
		return nil, h.e.l4.acceptTCP(c, g.slot)
	case conf.ProtocolHTTPS:
		h.e.acceptTLS(c, g.slot)
		return nil, gnet.Close // the TLS actor holds a dup of the socket
	}
	h.e.acceptClient(c, g.slot)
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
		a := lp.leave()
		lp.recycleH3()
		return a
	case *upstream:
		if c != ctx.c {
			return gnet.Close
		}
		lp := ctx.lp
		lp.enter(c)
		ctx.onTraffic()
		a := lp.leave()
		lp.recycleH3() // the HTTP/3 streams this response completed
		return a
	case l4Actor:
		return ctx.onTraffic(c)
	default:
		if g := h.gl.graftOf(c.LocalAddr()); g != nil && g.sock.udp {
			h.gl.bind(h.e, c.EventLoop())
			h.e.l4.datagram(c, g)
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

// acceptClient admits a new client connection of an http listener and
// gives it an actor. A connection accepted just before its listener left the
// loops (drain, removal, handover) is admitted too: it was accepted, so it is
// served, and closes after its first response.
func (e *Engine) acceptClient(c gnet.Conn, s *listenerSlot) {
	l := s.http.Load()
	if l == nil {
		_ = c.Close()
		return
	}
	ip := addrIP(c.RemoteAddr())
	if ok, g := guards.Admit(e.global, l.limiter, l.slot.connRate.Load(), l.slot.penalty, ip, time.Now()); !ok {
		e.guards.Hit(g, guards.Connection, l.cfg.Name, ip)
		_ = c.Close()
		return
	}
	lp := e.loopFor(c.EventLoop())
	cc := newClientConn(lp, l, c, ip)
	if l.proxy != nil {
		cc.proxyWait = l.proxy.trusts(ip)
		cc.proxyCheck = !cc.proxyWait
	}
	c.SetContext(cc)
	l.active.Add(1)
}

// openTLSSession makes the plaintext end of a TLS connection a session of
// its listener: HTTP/2 when ALPN chose h2, HTTP/1.1 otherwise. The
// admission slots the TLS actor took move to the session.
func (e *Engine) openTLSSession(c gnet.Conn, a *tlsAccepted) {
	l := a.slot.http.Load()
	if l == nil {
		a.release()
		_ = c.Close()
		return
	}
	lp := e.loopFor(c.EventLoop())
	lp.enter(c)
	cc := newClientConn(lp, l, c, a.ip)
	cc.tls = a.info
	cc.identity = a.info.identity
	cc.peer, cc.local = a.peer, a.local
	c.SetContext(cc)
	l.active.Add(1)
	if t, ok := c.(*tlsConn); ok && len(t.in) > 0 {
		// A delivery ran before this open (gnet's task queue reorders
		// past 1,024 waiting tasks): the bytes it left are the session's
		// first; no further delivery may come for them.
		cc.onTraffic()
	}
	if lp.leave() == gnet.Close {
		_ = c.Close()
	}
}

// addrPort is a TCP address as a netip.AddrPort; zero for anything else.
func addrPort(a net.Addr) netip.AddrPort {
	if ta, ok := a.(*net.TCPAddr); ok {
		ap := ta.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return netip.AddrPort{}
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
