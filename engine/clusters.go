// SPDX-License-Identifier: GPL-3.0-only

package engine

import (
	"context"
	"crypto/tls"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/rs/zerolog"

	"github.com/expressgateway/expressgateway/conf"
	"github.com/expressgateway/expressgateway/lb"
	"github.com/expressgateway/expressgateway/stages"
)

// Clusters is the runtime registry of the snapshot's clusters: their load
// balancers (with health checking) and the settings the forwarder needs.
// Update applies a reloaded snapshot: a cluster keeps its *stages.Cluster
// and its lb.Cluster (updated in place) across reloads, so routes, requests
// in flight and per-loop pools holding them stay valid. Safe for concurrent
// use once built.
type Clusters struct {
	set   *metrics.Set
	log   zerolog.Logger
	hooks []func(lb.HealthEvent)
	tab   atomic.Pointer[clusterTable]
	cp    conf.ControlPlane // this node's; a restart key, so fixed

	mu      sync.Mutex // serialises Update, Start and Close
	ctx     context.Context
	started bool
	all     []*stages.Cluster // every cluster ever built; Index points here
}

// clusterTable is one generation of the registry. rt is indexed by
// stages.Cluster.Index and keeps the entries of removed clusters, which
// requests in flight may still read.
type clusterTable struct {
	byName map[string]*stages.Cluster
	list   []*stages.Cluster // config order
	rt     []clusterRT
}

// clusterRT is what the forwarder reads per cluster on every request.
type clusterRT struct {
	maxIdle int
	hot     clusterCounters
	tls     *upstreamTLS // nil: cleartext
	proxy   string       // PROXY protocol header sent to endpoints: "", "v1", "v2"
}

// clusterCounters are a cluster's per-request metrics, resolved once so
// that counting takes no lock and no map lookup.
type clusterCounters struct {
	connects, reuses *metrics.Counter
}

// retryOnBits maps the TOML retry_on values onto lb's conditions.
var retryOnBits = map[string]lb.RetryConditions{
	conf.RetryOnConnectFailure: lb.RetryOnConnectFailure,
	conf.RetryOnReset:          lb.RetryOnReset,
	conf.RetryOn502:            lb.RetryOn502,
	conf.RetryOn503:            lb.RetryOn503,
	conf.RetryOn504:            lb.RetryOn504,
}

// LBSpec maps a configured cluster onto the load balancer's spec; cp is
// this node's [control_plane], whose zone and region zone-aware routing
// starts from (nil: none).
func LBSpec(c *conf.Cluster, cp *conf.ControlPlane) lb.Spec {
	s := lb.Spec{
		Name:                   c.Name,
		Algorithm:              c.LB,
		HashKey:                c.HashKey,
		MaglevTableSize:        uint64(c.Maglev.TableSize),
		MaglevSeed:             uint64(c.Maglev.Seed),
		RingHash:               lb.RingHashSpec{MinRingSize: uint64(c.RingHash.MinRingSize), MaxRingSize: uint64(c.RingHash.MaxRingSize)},
		EWMA:                   lb.EWMASpec{Decay: c.EWMA.Decay.Std()},
		Affinity:               lb.AffinitySpec{CookieName: c.Affinity.CookieName, TTL: c.Affinity.TTL.Std(), Secure: c.Affinity.Secure, HTTPOnly: c.Affinity.HTTPOnly, Path: c.Affinity.Path},
		PanicThreshold:         c.PanicThreshold,
		PanicMode:              c.OnPanic,
		OverprovisioningFactor: c.OverprovisioningFactor,
		Retry: lb.RetrySpec{
			MaxRetries:          c.Retry.MaxRetries,
			PerTryTimeout:       c.Retry.PerTryTimeout.Std(),
			BudgetPercent:       c.Retry.BudgetPercent,
			MinRetriesPerSecond: c.Retry.MinRetriesPerSecond,
		},
	}
	for _, r := range c.Retry.RetryOn {
		s.Retry.RetryOn |= retryOnBits[r]
	}
	// 0 in the file means "none"; lb reads 0 as "default".
	if c.Retry.MaxRetries == 0 || s.Retry.RetryOn == 0 {
		s.Retry.MaxRetries = -1 // no retries at all (an empty retry_on retries nothing)
	}
	if c.Retry.MinRetriesPerSecond == 0 {
		s.Retry.MinRetriesPerSecond = -1
	}
	if c.Retry.BudgetPercent == 0 {
		s.Retry.BudgetPercent = -1 // only the floor
	}
	if c.PanicThreshold == 0 {
		s.PanicThreshold = -1
	}
	for _, e := range c.Endpoints {
		s.Endpoints = append(s.Endpoints, lb.EndpointSpec{Address: e.Address, Weight: uint32(e.Weight), Zone: e.Zone, Region: e.Region, Priority: e.Priority})
	}
	if hc := c.HealthCheck; hc != nil {
		var hcTLS *tls.Config
		if ut, err := newUpstreamTLS(c, metrics.NewSet()); err == nil && ut != nil {
			hcTLS = ut.base.Clone()
			hcTLS.ServerName = ut.serverName
		}
		s.HealthCheck = &lb.HealthCheckSpec{
			TLS: hcTLS, TLSKey: fmt.Sprint(c.TLS),
			Type: hc.Type, Path: hc.Path, Host: hc.Host, ExpectedStatuses: hc.ExpectedStatuses,
			GRPCService: hc.GRPCService, Interval: hc.Interval.Std(), Timeout: hc.Timeout.Std(),
			Jitter: hc.Jitter.Std(), HealthyThreshold: hc.HealthyThreshold, UnhealthyThreshold: hc.UnhealthyThreshold,
			H3: c.Protocol == "h3",
		}
	}
	if od := c.OutlierDetection; od != nil {
		s.Outlier = &lb.OutlierSpec{
			Consecutive5xx: od.Consecutive5xx, ConsecutiveConnectFailures: od.ConsecutiveConnectFailures,
			BaseEjectionTime: od.BaseEjectionTime.Std(), MaxEjectionPercent: float64(od.MaxEjectionPercent),
		}
		// 0 in the file disables a trigger; lb reads 0 as "default".
		if od.Consecutive5xx == 0 {
			s.Outlier.Consecutive5xx = -1
		}
		if od.ConsecutiveConnectFailures == 0 {
			s.Outlier.ConsecutiveConnectFailures = -1
		}
	}
	s.Locality = lb.LocalitySpec{Enabled: c.ZoneAware, MinEndpoints: c.ZoneAwareMinSize}
	if cp != nil {
		s.Locality.Zone, s.Locality.Region = cp.Zone, cp.Region
	}
	return s
}

// NewClusters builds the load balancers of every cluster in snap. Health
// transitions are logged once each and passed to the optional onHealth
// hooks (the XDP stage follows them).
func NewClusters(snap *conf.Snapshot, set *metrics.Set, log zerolog.Logger, onHealth ...func(lb.HealthEvent)) (*Clusters, error) {
	cs := &Clusters{set: set, log: log, hooks: onHealth, cp: snap.Config.ControlPlane}
	tab := &clusterTable{byName: map[string]*stages.Cluster{}}
	for i := range snap.Config.Clusters {
		c := &snap.Config.Clusters[i]
		sc, err := cs.build(c, len(cs.all))
		if err != nil {
			return nil, err
		}
		cs.all = append(cs.all, sc)
		tab.byName[c.Name] = sc
		tab.list = append(tab.list, sc)
		rt, err := cs.runtime(c)
		if err != nil {
			return nil, err
		}
		tab.rt = append(tab.rt, rt)
	}
	cs.tab.Store(tab)
	return cs, nil
}

// build makes the load balancer of c.
func (cs *Clusters) build(c *conf.Cluster, index int) (*stages.Cluster, error) {
	log := cs.log
	lbc, err := lb.New(LBSpec(c, &cs.cp), lb.WithMetrics(cs.set), lb.WithHealthEvents(func(ev lb.HealthEvent) {
		e := log.Warn()
		if ev.Healthy {
			e = log.Info()
		}
		e.Str("cluster", ev.Cluster).Str("endpoint", ev.Endpoint).Str("zone", ev.Zone).
			Bool("healthy", ev.Healthy).Str("reason", ev.Reason).AnErr("error", ev.Err).Msg("endpoint health changed")
		for _, h := range cs.hooks {
			h(ev)
		}
	}))
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w", c.Name, err)
	}
	return &stages.Cluster{Name: c.Name, Index: index, LB: lbc, H2: isH2Cluster(c), H3: isH3Cluster(c), MaxStreams: c.MaxStreamsPerConnection}, nil
}

// isH2Cluster: the endpoints speak HTTP/2 (h2c, or h2 over TLS).
func isH2Cluster(c *conf.Cluster) bool { return c.Protocol == "h2c" || c.Protocol == "h2" }

// isH3Cluster: the endpoints speak HTTP/3 over QUIC.
func isH3Cluster(c *conf.Cluster) bool { return c.Protocol == "h3" }

// runtime is the forwarder's view of c.
func (cs *Clusters) runtime(c *conf.Cluster) (clusterRT, error) {
	ut, err := newUpstreamTLS(c, cs.set)
	if err != nil {
		return clusterRT{}, err
	}
	if ut != nil && c.TLS.InsecureSkipVerify {
		cs.log.Warn().Str("cluster", c.Name).Msg("tls.insecure_skip_verify: endpoint certificates are not verified")
	}
	return clusterRT{
		maxIdle: c.MaxIdlePerEndpoint,
		hot: clusterCounters{
			connects: cs.set.GetOrCreateCounter(fmt.Sprintf(`expressgateway_upstream_connects_total{cluster=%q}`, c.Name)),
			reuses:   cs.set.GetOrCreateCounter(fmt.Sprintf(`expressgateway_upstream_reuses_total{cluster=%q}`, c.Name)),
		},
		tls:   ut,
		proxy: c.ProxyProtocol,
	}, nil
}

// ProxyProtocol is the PROXY protocol version the cluster sends ("" none).
func (cs *Clusters) ProxyProtocol(cl *stages.Cluster) string { return cs.tab.Load().rt[cl.Index].proxy }

// TLS is the cluster's upstream TLS, nil for cleartext.
func (cs *Clusters) TLS(cl *stages.Cluster) *upstreamTLS { return cs.tab.Load().rt[cl.Index].tls }

// clusterUpdate is a prepared Update: everything that can fail was checked
// and the new clusters are built, but nothing is visible yet.
type clusterUpdate struct {
	cs       *Clusters
	snap     *conf.Snapshot
	tab      *clusterTable
	prepared map[*stages.Cluster]*lb.Prepared // clusters that stay, their update built
	added    []*stages.Cluster
	removed  []*stages.Cluster
	// shared are the added clusters that carry on an existing lb.Cluster
	// under a new *stages.Cluster: the upstream protocol or
	// max_streams_per_connection changed, which the forwarder reads from
	// the immutable stages.Cluster. Requests in flight and pooled
	// connections keep the old one.
	shared map[*stages.Cluster]bool
}

// prepare checks and builds the clusters of snap without applying them:
// the update of every cluster that stays is prepared (lb.Prepare: the new
// pick sets are built, invisible), and the added ones are built (not
// started), so that apply is a few atomic stores. On error nothing
// changed. The caller holds the engine's reload lock; apply or discard the
// result.
func (cs *Clusters) prepare(snap *conf.Snapshot) (*clusterUpdate, error) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	old := cs.tab.Load()
	u := &clusterUpdate{cs: cs, snap: snap, prepared: map[*stages.Cluster]*lb.Prepared{},
		tab: &clusterTable{byName: map[string]*stages.Cluster{}, rt: append([]clusterRT(nil), old.rt...)}}
	next := len(cs.all)
	for i := range snap.Config.Clusters {
		c := &snap.Config.Clusters[i]
		sc := old.byName[c.Name]
		if sc != nil {
			p, err := sc.LB.Prepare(LBSpec(c, &cs.cp))
			if err != nil {
				u.discard()
				return nil, fmt.Errorf("cluster %s: %w", c.Name, err)
			}
			rt, err := cs.runtime(c)
			if err != nil {
				u.discard()
				return nil, err
			}
			if sc.H2 != isH2Cluster(c) || sc.H3 != isH3Cluster(c) || sc.MaxStreams != c.MaxStreamsPerConnection {
				sc = &stages.Cluster{Name: c.Name, Index: next, LB: sc.LB, H2: isH2Cluster(c), H3: isH3Cluster(c), MaxStreams: c.MaxStreamsPerConnection}
				next++
				if u.shared == nil {
					u.shared = map[*stages.Cluster]bool{}
				}
				u.shared[sc] = true
				u.added = append(u.added, sc)
				u.tab.rt = append(u.tab.rt, rt)
			} else {
				u.tab.rt[sc.Index] = rt
			}
			u.prepared[sc] = p
		} else {
			var err error
			if sc, err = cs.build(c, next); err != nil {
				u.discard()
				return nil, err
			}
			rt, err := cs.runtime(c)
			if err != nil {
				u.discard()
				return nil, err
			}
			next++
			u.added = append(u.added, sc)
			u.tab.rt = append(u.tab.rt, rt)
		}
		u.tab.byName[c.Name] = sc
		u.tab.list = append(u.tab.list, sc)
	}
	for _, sc := range old.list {
		if now := u.tab.byName[sc.Name]; now != sc && (now == nil || now.LB != sc.LB) {
			u.removed = append(u.removed, sc)
		}
	}
	return u, nil
}

// Get returns the cluster called name in the prepared table, or nil.
func (u *clusterUpdate) Get(name string) *stages.Cluster { return u.tab.byName[name] }

// discard drops a prepared update that will not be applied.
func (u *clusterUpdate) discard() {
	for _, p := range u.prepared {
		p.Discard()
	}
	for _, sc := range u.added {
		if !u.shared[sc] {
			sc.LB.Retire()
		}
	}
	u.prepared, u.added = nil, nil
}

// apply makes the update visible: clusters that stay are updated in place,
// added ones start their health checks, and the new table is swapped in.
// It returns the endpoints that left clusters that stay (their per-loop
// pools should be closed) and the removed clusters, which the caller retires
// once nothing routes to them.
func (u *clusterUpdate) apply() (goneEndpoints []*lb.Endpoint, removed []*stages.Cluster) {
	cs := u.cs
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for _, p := range u.prepared {
		goneEndpoints = append(goneEndpoints, p.Commit()...)
	}
	for _, sc := range u.added {
		cs.all = append(cs.all, sc)
		if cs.started && !u.shared[sc] {
			sc.LB.Start(cs.ctx)
		}
	}
	cs.tab.Store(u.tab)
	for _, sc := range u.removed {
		goneEndpoints = append(goneEndpoints, sc.LB.Endpoints()...)
	}
	return goneEndpoints, u.removed
}

// Get returns the cluster called name, or nil.
func (cs *Clusters) Get(name string) *stages.Cluster { return cs.tab.Load().byName[name] }

// All returns every cluster in config order.
func (cs *Clusters) All() []*stages.Cluster { return cs.tab.Load().list }

// MaxIdle is the per-loop, per-endpoint idle pool size of cl.
func (cs *Clusters) MaxIdle(cl *stages.Cluster) int { return cs.tab.Load().rt[cl.Index].maxIdle }

// Start starts active health checking; clusters added by a reload start
// theirs under the same ctx.
func (cs *Clusters) Start(ctx context.Context) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.ctx, cs.started = ctx, true
	for _, c := range cs.tab.Load().list {
		c.LB.Start(ctx)
	}
}

// Close stops health checking.
func (cs *Clusters) Close() {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for _, c := range cs.all {
		c.LB.Close()
	}
}

// Healthy reports whether the endpoint at addr of the cluster called name
// is healthy now; false when there is no such endpoint.
func (cs *Clusters) Healthy(cluster, addr string) bool {
	c := cs.Get(cluster)
	if c == nil {
		return false
	}
	e := c.LB.Endpoint(addr)
	return e != nil && e.Healthy()
}

// AllowRetry decides whether a failed attempt is retried, and spends the
// retry budget when it is. It is a thin mapping onto lb's one policy
// (Cluster.ShouldRetry, then Cluster.AllowRetry): reason is the
// forwarder's failure token, status the status it would answer (or the
// upstream's), attempts the tries made so far (1 after the first). The
// caller checks that no body byte went upstream, so bodySent is false.
//
// reason "status" is the forwarder asking, before it discards a 502 or
// 503 response, whether a retry would follow: it is answered without
// spending, since the retry itself comes back with "status_502" or
// "status_503" and spends then.
func (cs *Clusters) AllowRetry(cl *stages.Cluster, attempts int, method []byte, reason string, status int) bool {
	cause, ok := retryCause(reason)
	if !ok || !cl.LB.ShouldRetry(string(method), false, attempts-1, cause, status) {
		return false
	}
	if reason == "status" {
		return cl.LB.RetryBudgetLeft()
	}
	return cl.LB.AllowRetry()
}

// retryCause maps the forwarder's failure tokens (METRICS.md,
// expressgateway_upstream_failures_total) onto lb's retry causes; false
// for a token that is never retried.
func retryCause(reason string) (lb.RetryCause, bool) {
	switch reason {
	case "connect_failed", "connect_timeout":
		return lb.CauseConnectFailed, true // nothing was sent
	case "reset":
		return lb.CauseReset, true
	case "per_try_timeout", "response_header_timeout":
		return lb.CauseTimeout, true
	case "status", "status_502", "status_503", "status_504", "bad_response":
		// bad_response: the upstream answered garbage, which the client
		// would see as the gateway's 502.
		return lb.CauseStatus, true
	}
	return 0, false
}

// countReuse counts a request sent on a pooled connection of cl.
func (cs *Clusters) countReuse(cl *stages.Cluster) { cs.tab.Load().rt[cl.Index].hot.reuses.Inc() }

// countConnect counts a dial to an endpoint of cl.
func (cs *Clusters) countConnect(cl *stages.Cluster) { cs.tab.Load().rt[cl.Index].hot.connects.Inc() }

// PerTryTimeout bounds one attempt of cl; 0 means none.
func (cs *Clusters) PerTryTimeout(cl *stages.Cluster) time.Duration {
	return cl.LB.PerTryTimeout()
}

// observeDuration records a request's duration in the listener histogram.
func (e *Engine) observeDuration(l *listenerRT, d time.Duration) {
	l.duration.Update(d.Seconds())
}
