// SPDX-License-Identifier: GPL-3.0-only

package lb

import (
	"math"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// Health state bits; an endpoint is healthy when none is set.
const (
	stateActiveDown uint32 = 1 << iota // failed active health checks
	stateEjected                       // ejected by outlier detection
	statePeerDown                      // down in the shared view: another node reports it down
)

// stateLocal are the bits this process observes itself; statePeerDown
// comes from the other nodes (Cluster.SetPeerDown).
const stateLocal = stateActiveDown | stateEjected

// initialEWMA is the latency an endpoint is assumed to have before its
// first response, so an unmeasured endpoint is neither shunned nor flooded.
const initialEWMA = float64(time.Millisecond)

// Endpoint is one upstream of a Cluster. Every method is safe to call from
// any goroutine and none blocks or allocates. The forwarder pairs each
// Begin with exactly one End, and each ConnOpened with one ConnClosed.
type Endpoint struct {
	c     *Cluster
	addr  string
	index int // position in the spec's endpoint list; guarded by c.mu

	// Cluster.Update may change these while picks read them.
	zone     atomic.Pointer[string]
	region   atomic.Pointer[string]
	priority atomic.Int32
	weight   atomic.Uint32

	state      atomic.Uint32
	active     atomic.Int64
	conns      atomic.Int64
	ewmaBits   atomic.Uint64 // float64 nanoseconds
	ewmaStamp  atomic.Int64  // c.now() of the last sample
	fails5xx   atomic.Int32
	failsConn  atomic.Int32
	ejections  atomic.Int32 // ejections so far; sets the next ejection's length
	ejectTimer *time.Timer  // guarded by c.mu
	// gone is set, under c.mu, when Cluster.Update removed the endpoint:
	// requests still in flight on it end normally but no longer move its
	// health.
	gone      bool
	stopCheck func() // cancels its health checker; guarded by c.mu
	ejectGen  uint64 // numbers ejections, so a stale timer is recognised; guarded by c.mu

	cookieValue string                 // session_affinity cookie value
	setCookie   atomic.Pointer[string] // precomputed Set-Cookie header value

	m endpointMetrics
}

type endpointMetrics struct {
	healthy     *metrics.Gauge
	active      *metrics.Gauge
	picks       *metrics.Counter
	ejections   *metrics.Counter
	toHealthy   *metrics.Counter
	toUnhealthy *metrics.Counter
}

// Address is the endpoint's host:port.
func (e *Endpoint) Address() string { return e.addr }

// Zone is the endpoint's locality label.
func (e *Endpoint) Zone() string { return *e.zone.Load() }

// Region is the region of the endpoint's zone.
func (e *Endpoint) Region() string { return *e.region.Load() }

// Priority is the endpoint's failover level (0 = highest).
func (e *Endpoint) Priority() int { return int(e.priority.Load()) }

// Weight is the endpoint's configured weight.
func (e *Endpoint) Weight() uint32 { return e.weight.Load() }

// Healthy reports whether the endpoint passes active checks and is not
// ejected by outlier detection.
func (e *Endpoint) Healthy() bool { return e.state.Load() == 0 }

// LocallyHealthy reports whether this process's own checks pass the
// endpoint (active checks and outlier detection), whatever the other
// nodes report: what a node publishes as its view in the shared health.
func (e *Endpoint) LocallyHealthy() bool { return e.state.Load()&stateLocal == 0 }

// PeerDown reports whether another node reports the endpoint down
// (Cluster.SetPeerDown).
func (e *Endpoint) PeerDown() bool { return e.state.Load()&statePeerDown != 0 }

// Ejected reports whether outlier detection has ejected the endpoint.
func (e *Endpoint) Ejected() bool { return e.state.Load()&stateEjected != 0 }

// ActiveRequests is the number of requests begun and not yet ended.
func (e *Endpoint) ActiveRequests() int64 { return e.active.Load() }

// Connections is the number of open upstream connections.
func (e *Endpoint) Connections() int64 { return e.conns.Load() }

// Picks is how many times Cluster.Pick returned this endpoint (summed
// with earlier clusters of the same name when they share a metrics set).
func (e *Endpoint) Picks() uint64 { return e.m.picks.Get() }

// Latency is the current peak-EWMA latency estimate.
func (e *Endpoint) Latency() time.Duration {
	return time.Duration(math.Float64frombits(e.ewmaBits.Load()))
}

// Begin records the start of a request sent to e.
func (e *Endpoint) Begin() {
	e.active.Add(1)
	e.m.active.Inc()
}

// End records the end of a request begun with Begin. status is the
// upstream's HTTP status (0 when there was none); latency is the time to
// the response head; connectFailed says the upstream could not be reached.
// It feeds least_requests, the ewma estimate and outlier detection.
func (e *Endpoint) End(status int, latency time.Duration, connectFailed bool) {
	e.active.Add(-1)
	e.m.active.Dec()
	if !connectFailed && status > 0 {
		e.observeLatency(latency)
	}
	o := e.c.snap.Load().cfg.outlier
	if o == nil {
		return
	}
	switch {
	case connectFailed:
		if n := e.failsConn.Add(1); o.ConsecutiveConnectFailures > 0 && int(n) >= o.ConsecutiveConnectFailures {
			e.c.eject(e, "consecutive_connect_failures")
		}
	case status >= 500 && status <= 599:
		if e.failsConn.Load() != 0 {
			e.failsConn.Store(0)
		}
		if n := e.fails5xx.Add(1); o.Consecutive5xx > 0 && int(n) >= o.Consecutive5xx {
			e.c.eject(e, "consecutive_5xx")
		}
	default:
		// Loads first: a store on every request would bounce the cache
		// line between event loops.
		if e.failsConn.Load() != 0 {
			e.failsConn.Store(0)
		}
		if e.fails5xx.Load() != 0 {
			e.fails5xx.Store(0)
		}
	}
}

// ConnOpened records a new upstream connection to e (least_connections).
func (e *Endpoint) ConnOpened() { e.conns.Add(1) }

// ConnClosed records that an upstream connection to e closed.
func (e *Endpoint) ConnClosed() { e.conns.Add(-1) }

// observeLatency folds a sample into the peak-EWMA estimate: a sample
// above the estimate replaces it at once (peak), a lower one is averaged
// in with weight decaying over EWMA.Decay.
func (e *Endpoint) observeLatency(latency time.Duration) {
	now := e.c.now()
	s := float64(latency)
	for {
		oldBits := e.ewmaBits.Load()
		old := math.Float64frombits(oldBits)
		next := s
		if s < old {
			w := math.Exp(-float64(now-e.ewmaStamp.Load()) / e.c.snap.Load().cfg.decayNs)
			next = old*w + s*(1-w)
		}
		if e.ewmaBits.CompareAndSwap(oldBits, math.Float64bits(next)) {
			e.ewmaStamp.Store(now)
			return
		}
	}
}

// decayed ages an estimate toward zero while no sample arrives, so an
// endpoint that was slow once is probed again eventually.
func (e *Endpoint) decayed(est float64, now int64) float64 {
	elapsed := now - e.ewmaStamp.Load()
	if elapsed <= 0 {
		return est
	}
	return est * math.Exp(-float64(elapsed)/e.c.snap.Load().cfg.decayNs)
}

// ewmaCost is the ewma picker's cost: latency estimate × (outstanding+1),
// divided by weight.
func (e *Endpoint) ewmaCost(now int64) float64 {
	est := max(e.decayed(math.Float64frombits(e.ewmaBits.Load()), now), float64(time.Microsecond))
	return est * float64(e.active.Load()+1) / float64(e.weight.Load())
}
