// SPDX-License-Identifier: GPL-3.0-only

package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/rs/zerolog"

	"github.com/expressgateway/expressgateway/conf"
	"github.com/expressgateway/expressgateway/lb"
	"github.com/expressgateway/expressgateway/stages"
)

// Clusters is the runtime registry of the snapshot's clusters: their load
// balancers (with health checking) and the settings the forwarder needs.
// Safe for concurrent use once built.
type Clusters struct {
	byName  map[string]*stages.Cluster
	list    []*stages.Cluster
	maxIdle []int
	hot     []clusterCounters
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

// LBSpec maps a configured cluster onto the load balancer's spec.
func LBSpec(c *conf.Cluster) lb.Spec {
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
		s.Endpoints = append(s.Endpoints, lb.EndpointSpec{Address: e.Address, Weight: uint32(e.Weight), Zone: e.Zone, Priority: e.Priority})
	}
	if hc := c.HealthCheck; hc != nil {
		s.HealthCheck = &lb.HealthCheckSpec{
			Type: hc.Type, Path: hc.Path, Host: hc.Host, ExpectedStatuses: hc.ExpectedStatuses,
			GRPCService: hc.GRPCService, Interval: hc.Interval.Std(), Timeout: hc.Timeout.Std(),
			Jitter: hc.Jitter.Std(), HealthyThreshold: hc.HealthyThreshold, UnhealthyThreshold: hc.UnhealthyThreshold,
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
	return s
}

// NewClusters builds the load balancers of every cluster in snap. Health
// transitions are logged once each and passed to the optional onHealth
// hooks (the XDP stage follows them).
func NewClusters(snap *conf.Snapshot, set *metrics.Set, log zerolog.Logger, onHealth ...func(lb.HealthEvent)) (*Clusters, error) {
	cs := &Clusters{byName: map[string]*stages.Cluster{}}
	for i := range snap.Config.Clusters {
		c := &snap.Config.Clusters[i]
		lbc, err := lb.New(LBSpec(c), lb.WithMetrics(set), lb.WithHealthEvents(func(ev lb.HealthEvent) {
			e := log.Warn()
			if ev.Healthy {
				e = log.Info()
			}
			e.Str("cluster", ev.Cluster).Str("endpoint", ev.Endpoint).Str("zone", ev.Zone).
				Bool("healthy", ev.Healthy).Str("reason", ev.Reason).AnErr("error", ev.Err).Msg("endpoint health changed")
			for _, h := range onHealth {
				h(ev)
			}
		}))
		if err != nil {
			return nil, fmt.Errorf("cluster %s: %w", c.Name, err)
		}
		sc := &stages.Cluster{Name: c.Name, Index: i, LB: lbc, H2: c.Protocol == "h2c", MaxStreams: c.MaxStreamsPerConnection}
		cs.byName[c.Name] = sc
		cs.list = append(cs.list, sc)
		cs.maxIdle = append(cs.maxIdle, c.MaxIdlePerEndpoint)
		cs.hot = append(cs.hot, clusterCounters{
			connects: set.GetOrCreateCounter(fmt.Sprintf(`expressgateway_upstream_connects_total{cluster=%q}`, c.Name)),
			reuses:   set.GetOrCreateCounter(fmt.Sprintf(`expressgateway_upstream_reuses_total{cluster=%q}`, c.Name)),
		})
	}
	return cs, nil
}

// Get returns the cluster called name, or nil.
func (cs *Clusters) Get(name string) *stages.Cluster { return cs.byName[name] }

// All returns every cluster in config order.
func (cs *Clusters) All() []*stages.Cluster { return cs.list }

// MaxIdle is the per-loop, per-endpoint idle pool size of cl.
func (cs *Clusters) MaxIdle(cl *stages.Cluster) int { return cs.maxIdle[cl.Index] }

// Start starts active health checking.
func (cs *Clusters) Start(ctx context.Context) {
	for _, c := range cs.list {
		c.LB.Start(ctx)
	}
}

// Close stops health checking.
func (cs *Clusters) Close() {
	for _, c := range cs.list {
		c.LB.Close()
	}
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
func (cs *Clusters) countReuse(cl *stages.Cluster) { cs.hot[cl.Index].reuses.Inc() }

// countConnect counts a dial to an endpoint of cl.
func (cs *Clusters) countConnect(cl *stages.Cluster) { cs.hot[cl.Index].connects.Inc() }

// PerTryTimeout bounds one attempt of cl; 0 means none.
func (cs *Clusters) PerTryTimeout(cl *stages.Cluster) time.Duration {
	return cl.LB.PerTryTimeout()
}

// observeDuration records a request's duration in the listener histogram.
func (e *Engine) observeDuration(l *listenerRT, d time.Duration) {
	l.duration.Update(d.Seconds())
}
