// SPDX-License-Identifier: GPL-3.0-only

package lb

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"math"
	"math/rand/v2"
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// ErrNoHealthyEndpoint is returned by Pick when no endpoint may take the
// request (all unhealthy and panic mode "fail" or panic disabled); the
// caller answers 503.
var ErrNoHealthyEndpoint = errors.New("lb: no healthy endpoint")

// RequestInfo is what the pick stage knows about a request. Each method
// must answer without allocating; a nil or empty slice means "absent".
// Slices are only read during Pick and never retained.
type RequestInfo interface {
	SourceIP() netip.Addr
	Header(name string) []byte
	Cookie(name string) []byte
	Path() []byte
}

// Pick is the outcome of Cluster.Pick.
type Pick struct {
	// Endpoint takes the request.
	Endpoint *Endpoint
	// SetCookie, when not empty, is a Set-Cookie header value the
	// forwarder adds to the response (session_affinity).
	SetCookie string
}

// HealthEvent reports a change of an endpoint's Healthy state, once per
// transition.
type HealthEvent struct {
	Cluster  string
	Endpoint string
	Zone     string
	Priority int
	Healthy  bool
	// Reason is a short stable token: "active_check_failed",
	// "active_check_passed", "consecutive_5xx",
	// "consecutive_connect_failures", "ejection_expired",
	// "peer_reported_down", "peer_reported_up".
	Reason string
	// Err is the last probe error for active-check transitions, if any.
	Err error
}

// Option configures New.
type Option func(*options)

type options struct {
	metrics *metrics.Set
	onEvent func(HealthEvent)
}

// WithMetrics registers the cluster's metric families in set.
func WithMetrics(set *metrics.Set) Option { return func(o *options) { o.metrics = set } }

// WithHealthEvents calls fn once for every endpoint health transition, from
// the goroutine that observed it (a health checker, a timer or a
// forwarder calling End); fn must not block.
func WithHealthEvents(fn func(HealthEvent)) Option { return func(o *options) { o.onEvent = fn } }

// Cluster is a set of endpoints and the algorithm that spreads requests
// over them. Pick, AllowRetry, RecordRequest and the Endpoint hooks are
// safe for concurrent use and lock-free; health transitions and Update
// rebuild an immutable pick set that is swapped in atomically.
type Cluster struct {
	epoch  time.Time
	opts   options
	budget retryBudget

	snap  atomic.Pointer[snapshot]
	fleet atomic.Pointer[map[locality]float64] // SetFleet; nil: like the endpoints

	mu        sync.Mutex  // serialises rebuilds, ejections, Update and Close
	spec      Spec        // guarded by mu; lock-free readers use snap's cfg
	endpoints []*Endpoint // guarded by mu
	cur       *clusterCfg // guarded by mu: the cfg the next rebuild uses
	version   uint64      // counts pick-set stores; guarded by mu
	ejected   int         // endpoints ejected now; guarded by mu
	closed    bool        // guarded by mu
	hcCtx     context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
}

// clusterCfg is everything a pick, an End or a retry decision reads from
// the spec, derived once per New or Update. It is immutable and reached
// through the pick snapshot, so one Pick sees one consistent config.
type clusterCfg struct {
	spec          Spec
	eps           []*Endpoint
	key           hashKey
	needsKey      bool
	outlier       *OutlierSpec
	decayNs       float64
	byCookie      map[string]*Endpoint
	newPicker     func(c *Cluster, s *Spec, eps []*Endpoint, all []*Endpoint) picker
	budgetPercent float64
	budgetReserve int64 // retries always allowed per window
}

func newClusterCfg(s Spec, eps []*Endpoint) *clusterCfg {
	cfg := &clusterCfg{
		spec:          s,
		eps:           eps,
		needsKey:      s.Algorithm == Maglev || s.Algorithm == RingHash,
		outlier:       s.Outlier,
		decayNs:       float64(s.EWMA.Decay),
		byCookie:      make(map[string]*Endpoint, len(eps)),
		newPicker:     pickerBuilders[s.Algorithm],
		budgetPercent: max(s.Retry.BudgetPercent, 0),
		budgetReserve: int64(max(s.Retry.MinRetriesPerSecond, 0)) * retryWindow,
	}
	cfg.key, _ = parseHashKey(s.HashKey)
	for _, e := range eps {
		cfg.byCookie[e.cookieValue] = e
	}
	return cfg
}

// snapshot is the immutable pick set, rebuilt on every health transition
// and every Update.
type snapshot struct {
	cfg    *clusterCfg
	levels []level
	// cum[i] is the upper bound (exclusive, out of 1<<32) of the draw
	// that selects levels[i].
	cum       []uint64
	fail      bool // no endpoint may be picked
	panicMode bool // unhealthy endpoints are in the levels
}

type level struct {
	priority int
	eps      []*Endpoint
	p        picker
}

// picker chooses among one level's endpoints. key is the request's hash
// for hash-based pickers (already varied per retry attempt). pick must not
// allocate or lock.
type picker interface {
	pick(key uint64) *Endpoint
}

// normalize copies s (so the caller's slices are never shared), applies
// the defaults and validates.
func normalize(s Spec) (Spec, error) {
	s.Endpoints = append([]EndpointSpec(nil), s.Endpoints...)
	if s.HealthCheck != nil {
		hc := *s.HealthCheck
		hc.ExpectedStatuses = append([]string(nil), hc.ExpectedStatuses...)
		s.HealthCheck = &hc
	}
	if s.Outlier != nil {
		o := *s.Outlier
		s.Outlier = &o
	}
	s.Defaults()
	if err := s.Validate(); err != nil {
		return s, fmt.Errorf("cluster %q: %w", s.Name, err)
	}
	return s, nil
}

// New builds a cluster from s after applying defaults and validating.
// Active health checks start with Start; until then every endpoint counts
// as healthy.
func New(s Spec, opts ...Option) (*Cluster, error) {
	s, err := normalize(s)
	if err != nil {
		return nil, err
	}
	c := &Cluster{spec: s, epoch: time.Now()}
	for _, o := range opts {
		o(&c.opts)
	}
	c.budget.init()
	for _, es := range s.Endpoints {
		c.endpoints = append(c.endpoints, c.newEndpoint(es))
	}
	c.setEndpointAttrs(s)
	c.cur = newClusterCfg(s, c.endpoints)
	c.rebuildLocked()
	return c, nil
}

// newEndpoint builds a healthy endpoint of c with its metric series.
func (c *Cluster) newEndpoint(es EndpointSpec) *Endpoint {
	e := &Endpoint{c: c, addr: es.Address}
	e.ewmaBits.Store(math.Float64bits(initialEWMA))
	e.cookieValue = fmt.Sprintf("%016x", maglevHash(0, 0x616666696e697479, c.spec.Name+"\x00"+es.Address)) // "affinity"
	e.m = newEndpointMetrics(c.opts.metrics, c.spec.Name, es.Address)
	e.m.healthy.Set(1)
	return e
}

// setEndpointAttrs copies the per-endpoint settings of s (weight,
// priority, zone, the affinity cookie) onto c.endpoints, which must be in
// s.Endpoints order.
func (c *Cluster) setEndpointAttrs(s Spec) {
	for i, es := range s.Endpoints {
		c.endpoints[i].index = i
		c.endpoints[i].setAttrs(es, s.Affinity)
	}
}

// setAttrs sets the endpoint's settings from its spec.
func (e *Endpoint) setAttrs(es EndpointSpec, a AffinitySpec) {
	zone, region := es.Zone, es.Region
	e.zone.Store(&zone)
	e.region.Store(&region)
	e.priority.Store(int32(es.Priority))
	e.weight.Store(es.Weight)
	cookie := affinityCookie(a, e.cookieValue)
	e.setCookie.Store(&cookie)
}

// Name is the cluster's name; Update never changes it.
func (c *Cluster) Name() string { return c.snap.Load().cfg.spec.Name }

// Spec returns the cluster's spec with defaults applied. Its pointer and
// slice fields are shared with the cluster: do not modify them.
func (c *Cluster) Spec() Spec { return c.snap.Load().cfg.spec }

// Endpoints lists the cluster's endpoints in spec order. Do not modify.
func (c *Cluster) Endpoints() []*Endpoint { return c.snap.Load().cfg.eps }

// Endpoint finds an endpoint by address, or nil.
func (c *Cluster) Endpoint(addr string) *Endpoint {
	for _, e := range c.Endpoints() {
		if e.addr == addr {
			return e
		}
	}
	return nil
}

// Panicking reports whether the cluster is in panic mode (too few
// healthy endpoints, routing to all).
func (c *Cluster) Panicking() bool { return c.snap.Load().panicMode }

// now is monotonic nanoseconds since New.
func (c *Cluster) now() int64 { return int64(time.Since(c.epoch)) }

// Pick chooses the endpoint for a request. exclude, when non-nil, is the
// endpoint a retry must avoid; it is returned only when nothing else can
// take the request. Pick does not call Begin. It is lock-free and does not
// allocate; safe from any goroutine.
func (c *Cluster) Pick(ri RequestInfo, exclude *Endpoint) (Pick, error) {
	s := c.snap.Load()
	if s.fail {
		return Pick{}, ErrNoHealthyEndpoint
	}
	cfg := s.cfg
	if cfg.spec.Algorithm == SessionAffinity {
		if e := c.pinned(s, ri, exclude); e != nil {
			e.m.picks.Inc()
			return Pick{Endpoint: e}, nil
		}
	}
	var key uint64
	if cfg.needsKey {
		key = cfg.requestKey(ri)
	} else {
		key = rand.Uint64()
	}
	return c.pickKey(s, key, exclude)
}

// PickHash chooses the endpoint for a caller that brings its own hash key
// (the QUIC passthrough listener hashes an Initial's destination connection
// ID): with a maglev or ring_hash cluster the same key picks the same
// endpoint on every node that sees the same healthy endpoints, through the
// same priority levels and table rebuilds as Pick. Other algorithms ignore
// the key. Lock-free, no allocation; safe from any goroutine.
func (c *Cluster) PickHash(key []byte, exclude *Endpoint) (Pick, error) {
	s := c.snap.Load()
	if s.fail {
		return Pick{}, ErrNoHealthyEndpoint
	}
	return c.pickKey(s, hashBytes(key), exclude)
}

// pickKey is Pick after the key is known.
func (c *Cluster) pickKey(s *snapshot, key uint64, exclude *Endpoint) (Pick, error) {
	cfg := s.cfg
	l := &s.levels[0]
	if len(s.levels) > 1 {
		draw := key >> 32
		if cfg.needsKey {
			draw = mix64(key) >> 32
		}
		for i := range s.cum {
			if draw < s.cum[i] {
				l = &s.levels[i]
				break
			}
		}
	}
	e := l.p.pick(key)
	for attempt := uint64(1); e == exclude && attempt <= 3 && len(l.eps) > 1; attempt++ {
		e = l.p.pick(mix64(key + attempt))
	}
	if e == exclude && len(l.eps) > 1 {
		// The algorithm keeps choosing exclude (a hash, or one endpoint
		// far cheaper than the rest): take its neighbour in the level.
		for i, x := range l.eps {
			if x == exclude {
				e = l.eps[(i+1)%len(l.eps)]
				break
			}
		}
	}
	e.m.picks.Inc()
	p := Pick{Endpoint: e}
	if cfg.spec.Algorithm == SessionAffinity {
		p.SetCookie = *e.setCookie.Load()
	}
	return p, nil
}

// requestKey hashes the configured hash key of ri; a request without one
// gets a random key.
func (cfg *clusterCfg) requestKey(ri RequestInfo) uint64 {
	if ri == nil {
		return rand.Uint64()
	}
	switch cfg.key.kind {
	case keySourceIP:
		a := ri.SourceIP()
		if !a.IsValid() {
			return rand.Uint64()
		}
		b := a.Unmap().As16()
		return hashBytes(b[:])
	case keyHeader:
		if v := ri.Header(cfg.key.name); len(v) > 0 {
			return hashBytes(v)
		}
	case keyCookie:
		if v := ri.Cookie(cfg.key.name); len(v) > 0 {
			return hashBytes(v)
		}
	case keyPath:
		if v := ri.Path(); len(v) > 0 {
			return hashBytes(v)
		}
	}
	return rand.Uint64()
}

// hashBytes is FNV-1a finished with splitmix64: fixed across nodes and
// releases, so every node maps a key to the same endpoint.
func hashBytes(b []byte) uint64 {
	h := uint64(fnvOffset64)
	for _, c := range b {
		h ^= uint64(c)
		h *= fnvPrime64
	}
	return mix64(h)
}

// rebuildLocked recomputes the pick set from every endpoint's health and
// swaps it in. It runs under c.mu (or in New, before c is shared).
func (c *Cluster) rebuildLocked() {
	c.snap.Store(c.buildSnapshot(c.cur))
	c.version++
}

// buildSnapshot computes the pick set of cfg from its endpoints' health
// now. Envoy semantics: a level's health is min(100, healthy% × the
// overprovisioning factor); levels take load in priority order up to their
// health, and if the levels' health sums below 100 the load is spread in
// proportion to it. Below the panic threshold (healthy share of the whole
// cluster) the mode decides: "all" routes over every endpoint, "fail"
// fails. It reads only cfg and the endpoints' atomics, so Prepare can run
// it for a config that is not in use yet.
func (c *Cluster) buildSnapshot(cfg *clusterCfg) *snapshot {
	spec := &cfg.spec
	byPrio := map[int][]*Endpoint{}
	var prios []int
	healthyTotal := 0
	for _, e := range cfg.eps {
		prio := int(e.priority.Load())
		if _, ok := byPrio[prio]; !ok {
			prios = append(prios, prio)
		}
		byPrio[prio] = append(byPrio[prio], e)
		if e.Healthy() {
			healthyTotal++
		}
	}
	sort.Ints(prios)
	s := &snapshot{cfg: cfg}
	healthyPct := 100 * float64(healthyTotal) / float64(len(cfg.eps))
	if spec.PanicThreshold > 0 && healthyPct < spec.PanicThreshold {
		if spec.PanicMode == "fail" {
			s.fail = true
			return s
		}
		s.panicMode = true
	}
	health := make([]float64, len(prios))
	sum := 0.0
	for i, p := range prios {
		all := byPrio[p]
		n := 0
		for _, e := range all {
			if e.Healthy() {
				n++
			}
		}
		health[i] = min(100, 100*float64(n)/float64(len(all))*spec.OverprovisioningFactor)
		sum += health[i]
	}
	if sum == 0 && !s.panicMode {
		s.fail = true
		return s
	}
	norm := min(100, sum)
	remaining := 100.0
	var loads []float64
	for i, p := range prios {
		load := 0.0
		switch {
		case sum == 0: // panic with nothing healthy: all to the first level
			if i == 0 {
				load = 100
			}
		default:
			load = min(remaining, health[i]*100/norm)
		}
		remaining -= load
		if load <= 0 {
			continue
		}
		all := byPrio[p]
		eps := all
		if !s.panicMode {
			eps = make([]*Endpoint, 0, len(all))
			for _, e := range all {
				if e.Healthy() {
					eps = append(eps, e)
				}
			}
		}
		s.levels = append(s.levels, level{priority: p, eps: eps, p: c.levelPicker(cfg, eps, all, s.panicMode)})
		loads = append(loads, load)
	}
	total := 0.0
	for _, l := range loads {
		total += l
	}
	acc := 0.0
	for i, l := range loads {
		acc += l
		bound := uint64(acc / total * (1 << 32))
		if i == len(loads)-1 {
			bound = 1 << 32
		}
		s.cum = append(s.cum, bound)
	}
	return s
}

// LevelLoads reports the current share (0..1) of traffic each priority
// level receives, keyed by priority.
func (c *Cluster) LevelLoads() map[int]float64 {
	s := c.snap.Load()
	out := make(map[int]float64, len(s.levels))
	prev := uint64(0)
	for i, l := range s.levels {
		out[l.priority] = float64(s.cum[i]-prev) / (1 << 32)
		prev = s.cum[i]
	}
	return out
}

// setState sets or clears state bits of e and, when that changes e's
// Healthy state, rebuilds the pick set, counts and reports the transition.
func (c *Cluster) setState(e *Endpoint, bit uint32, on bool, reason string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.setStateLocked(e, bit, on, reason, err)
}

func (c *Cluster) setStateLocked(e *Endpoint, bit uint32, on bool, reason string, err error) {
	if e.gone {
		return
	}
	old := e.state.Load()
	next := old &^ bit
	if on {
		next |= bit
	}
	if next == old {
		return
	}
	e.state.Store(next)
	if (old == 0) == (next == 0) {
		return
	}
	healthy := next == 0
	if healthy {
		e.m.healthy.Set(1)
		e.m.toHealthy.Inc()
	} else {
		e.m.healthy.Set(0)
		e.m.toUnhealthy.Inc()
	}
	if !c.closed {
		c.rebuildLocked()
	}
	if c.opts.onEvent != nil {
		c.opts.onEvent(HealthEvent{
			Cluster: c.spec.Name, Endpoint: e.addr, Zone: e.Zone(), Priority: e.Priority(),
			Healthy: healthy, Reason: reason, Err: err,
		})
	}
}

// eject takes e out of rotation for base_ejection_time × its ejection
// count (capped by max_ejection_time), unless max_ejection_percent of the
// cluster is ejected already (one ejection is always allowed, as in
// Envoy) or e is the last healthy endpoint. The last rule is nginx's
// (a lone server is never marked down): ejecting it would only move the
// cluster into panic or 503s, and keep a recovered endpoint out for the
// whole ejection time.
func (c *Cluster) eject(e *Endpoint, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	o := c.cur.outlier
	if c.closed || e.gone || o == nil || e.state.Load()&stateEjected != 0 {
		return
	}
	e.fails5xx.Store(0)
	e.failsConn.Store(0)
	if c.ejected > 0 && float64(c.ejected+1)*100 > o.MaxEjectionPercent*float64(len(c.endpoints)) {
		return
	}
	if !c.otherHealthyLocked(e) {
		return
	}
	c.ejected++
	n := e.ejections.Add(1)
	e.m.ejections.Inc()
	d := min(time.Duration(n)*o.BaseEjectionTime, o.MaxEjectionTime)
	c.setStateLocked(e, stateEjected, true, reason, nil)
	e.ejectGen++
	gen := e.ejectGen
	e.ejectTimer = time.AfterFunc(d, func() { c.expire(e, gen) })
}

// otherHealthyLocked reports whether an endpoint other than e is healthy.
func (c *Cluster) otherHealthyLocked(e *Endpoint) bool {
	for _, x := range c.endpoints {
		if x != e && x.Healthy() {
			return true
		}
	}
	return false
}

// expire ends ejection number gen of e; a timer that an early
// un-ejection stopped too late finds a later number and leaves that
// ejection alone.
func (c *Cluster) expire(e *Endpoint, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e.ejectGen != gen {
		return
	}
	c.unEjectLocked(e, "ejection_expired")
}

// unEjectLocked ends e's ejection now and stops its timer.
func (c *Cluster) unEjectLocked(e *Endpoint, reason string) {
	if c.closed || e.gone || e.state.Load()&stateEjected == 0 {
		return
	}
	c.ejected--
	if e.ejectTimer != nil {
		e.ejectTimer.Stop()
		e.ejectTimer = nil
	}
	c.setStateLocked(e, stateEjected, false, reason, nil)
}

// activeCheckPassed brings an endpoint that failed its active checks back
// into rotation, and ends an ejection with it (Envoy's
// successful_active_health_check_uneject_host): the checker saw the
// endpoint fail and then pass healthy_threshold probes in a row, which is
// better news than a timer running out. While the endpoint is still
// marked down, clearing the ejection is no transition, so the endpoint
// comes back with one event.
func (c *Cluster) activeCheckPassed(e *Endpoint) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.unEjectLocked(e, "active_check_passed")
	c.setStateLocked(e, stateActiveDown, false, "active_check_passed", nil)
}

// SetPeerDown marks the endpoint at addr down (or no longer down) in the
// shared view: another node of the HA group reports it down. An endpoint
// is routable only when neither this node's checks nor the shared view
// hold it down, so every node that sees the same reports builds the same
// pick set (and the same Maglev tables). It reports whether addr names an
// endpoint of c.
func (c *Cluster) SetPeerDown(addr string, down bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.endpoints {
		if e.addr == addr {
			reason := "peer_reported_up"
			if down {
				reason = "peer_reported_down"
			}
			c.setStateLocked(e, statePeerDown, down, reason, nil)
			return true
		}
	}
	return false
}

// MaglevDigest is a SHA-256, in hex, of the cluster's Maglev lookup
// tables as Pick uses them now (each level's priority and the address
// owning every slot), or "" when the cluster's algorithm is not maglev.
// Nodes whose digests are equal send every key to the same endpoint.
func (c *Cluster) MaglevDigest() string {
	s := c.snap.Load()
	if s.cfg.spec.Algorithm != Maglev {
		return ""
	}
	h := sha256.New()
	var b [8]byte
	for i, l := range s.levels {
		binary.BigEndian.PutUint32(b[:4], uint32(l.priority))
		binary.BigEndian.PutUint32(b[4:], uint32(s.cum[i]>>1))
		h.Write(b[:])
		digestPicker(h, l.p, l.eps)
	}
	if s.fail {
		h.Write([]byte("fail"))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// digestPicker writes p's layout into h: each Maglev table slot's owner,
// the locality draw of a zone-aware level, or the endpoint list.
func digestPicker(h hash.Hash, p picker, eps []*Endpoint) {
	switch p := p.(type) {
	case *maglevPicker:
		for _, slot := range p.table {
			h.Write([]byte(p.eps[slot].addr))
			h.Write([]byte{0})
		}
	case *localityPicker:
		var b [8]byte
		for i, sub := range p.subs {
			binary.BigEndian.PutUint64(b[:], p.cum[i])
			h.Write(b[:])
			digestPicker(h, sub, nil)
		}
	default:
		for _, e := range eps {
			h.Write([]byte(e.addr))
			h.Write([]byte{1})
		}
	}
}

// Start runs active health checks (if configured) until ctx ends or Close.
// Call it once; endpoints and health checks added by a later Update are
// checked under the same ctx.
func (c *Cluster) Start(ctx context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.cancel != nil {
		return
	}
	c.hcCtx, c.cancel = context.WithCancel(ctx)
	if c.spec.HealthCheck == nil {
		return
	}
	for _, e := range c.endpoints {
		c.startCheckerLocked(e)
	}
}

// startCheckerLocked runs a health checker for e on its own goroutine.
func (c *Cluster) startCheckerLocked(e *Endpoint) {
	ctx, cancel := context.WithCancel(c.hcCtx)
	e.stopCheck = cancel
	hc := newChecker(c, e)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		hc.run(ctx)
	}()
}

// stopCheckerLocked stops e's health checker, if it has one; it exits
// after the probe in flight, whose result is then ignored.
func (c *Cluster) stopCheckerLocked(e *Endpoint) {
	if e.stopCheck != nil {
		e.stopCheck()
		e.stopCheck = nil
	}
}

// Close stops health checks and ejection timers and waits for the checkers
// to exit. Picks keep working on the last pick set.
func (c *Cluster) Close() {
	c.mu.Lock()
	c.closed = true
	if c.cancel != nil {
		c.cancel()
	}
	for _, e := range c.endpoints {
		if e.ejectTimer != nil {
			e.ejectTimer.Stop()
			e.ejectTimer = nil
		}
	}
	c.mu.Unlock()
	c.wg.Wait()
}
