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
	retry   []retryPolicy
	hot     []clusterCounters
}

// clusterCounters are a cluster's per-request metrics, resolved once so
// that counting takes no lock and no map lookup.
type clusterCounters struct {
	connects, reuses *metrics.Counter
}

// retryPolicy is a cluster's [clusters.retry] table in the form the
// forwarder checks it.
type retryPolicy struct {
	max     int
	perTry  time.Duration
	retryOn map[string]bool // "connect-failure", "reset", "502", "503", "504"
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
			MaxRetries:    c.Retry.MaxRetries,
			PerTryTimeout: c.Retry.PerTryTimeout.Std(),
			BudgetPercent: c.Retry.BudgetPercent,
		},
	}
	if c.Retry.MaxRetries == 0 {
		s.Retry.MaxRetries = -1 // 0 in the file means "no retries"
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
		rp := retryPolicy{max: c.Retry.MaxRetries, perTry: c.Retry.PerTryTimeout.Std(), retryOn: map[string]bool{}}
		for _, r := range c.Retry.RetryOn {
			rp.retryOn[r] = true
		}
		cs.retry = append(cs.retry, rp)
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

// AllowRetry decides whether a failed attempt is retried: an idempotent
// method, nothing of the body streamed (the caller checks), the failure's
// kind listed in retry_on, retries left, and room in the cluster's retry
// budget (which this spends). attempts counts tries made so far.
func (cs *Clusters) AllowRetry(cl *stages.Cluster, attempts int, method []byte, reason string, status int) bool {
	rp := &cs.retry[cl.Index]
	if attempts > rp.max || !lb.IdempotentMethod(string(method)) {
		return false
	}
	var kind string
	switch reason {
	case "connect_failed", "connect_timeout":
		kind = "connect-failure"
	case "reset":
		kind = "reset"
	default:
		switch status {
		case 502:
			kind = "502"
		case 503:
			kind = "503"
		case 504:
			kind = "504"
		}
	}
	return rp.retryOn[kind] && cl.LB.AllowRetry()
}

// countReuse counts a request sent on a pooled connection of cl.
func (cs *Clusters) countReuse(cl *stages.Cluster) { cs.hot[cl.Index].reuses.Inc() }

// countConnect counts a dial to an endpoint of cl.
func (cs *Clusters) countConnect(cl *stages.Cluster) { cs.hot[cl.Index].connects.Inc() }

// PerTryTimeout bounds one attempt of cl; 0 means none.
func (cs *Clusters) PerTryTimeout(cl *stages.Cluster) time.Duration {
	return cs.retry[cl.Index].perTry
}

// observeDuration records a request's duration in the listener histogram.
func (e *Engine) observeDuration(l *listenerRT, d time.Duration) {
	l.duration.Update(d.Seconds())
}
