// SPDX-License-Identifier: GPL-3.0-only

package lb

import (
	"errors"
	"fmt"
	"reflect"
)

// ErrClosed is returned by Update on a closed cluster.
var ErrClosed = errors.New("lb: cluster closed")

// Update applies a new spec to a running cluster in place, for a config
// reload. Endpoints are matched by address: an endpoint that stays keeps
// its *Endpoint, and with it its health (active check state, ejection and
// its count), its EWMA latency, its open connections and requests in
// flight, its affinity cookie and so its sessions, and its place in the
// Maglev and ring-hash layouts; its weight, priority and zone take the new
// values. New endpoints start healthy. Removed endpoints leave the pick set
// at once; requests still in flight on them end normally, their health
// checkers stop, and their metric series are unregistered. The returned
// slice lists them, so that callers can close what they keep per endpoint
// (connection pools).
//
// The algorithm, hash key, panic and priority settings, retry policy,
// outlier detection and health checks all take effect in the same atomic
// swap of the pick set, so a concurrent Pick sees either the old or the new
// cluster, never a mix. Health checkers keep running when the health check
// is unchanged (only added endpoints get a new one); when it changed, every
// checker restarts with the new settings and counts from zero, while each
// endpoint keeps its current state: an endpoint that was down stays down
// until healthy_threshold probes pass. Removing the health check or outlier
// detection clears the state it had set.
//
// The name cannot change (it identifies the cluster). On error nothing
// changes. Update is Prepare then Commit. Safe to call concurrently with
// every other method.
func (c *Cluster) Update(s Spec) ([]*Endpoint, error) {
	p, err := c.Prepare(s)
	if err != nil {
		return nil, err
	}
	return p.Commit(), nil
}

// Prepared is an update computed by Prepare and not yet visible: the new
// endpoints exist and the new pick set is built, so that Commit is a few
// atomic stores. A reload prepares every cluster, then commits them one
// after the other with the routes, so routes and endpoints change within
// microseconds of each other. Commit or Discard it exactly once.
type Prepared struct {
	c       *Cluster
	spec    Spec
	eps     []*Endpoint
	added   []*Endpoint
	removed []*Endpoint
	cfg     *clusterCfg
	snap    *snapshot
	version uint64 // c.version the snapshot was built at
	noop    bool
}

// Prepare validates s and computes the update without applying it (see
// Update). Nothing changes until Commit.
func (c *Cluster) Prepare(s Spec) (*Prepared, error) {
	s, err := normalize(s)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	if s.Name != c.spec.Name {
		return nil, fmt.Errorf("lb: cluster %q cannot be renamed to %q", c.spec.Name, s.Name)
	}
	p := &Prepared{c: c, spec: s, version: c.version}
	if reflect.DeepEqual(s, c.spec) {
		p.noop = true
		return p, nil
	}
	byAddr := make(map[string]*Endpoint, len(c.endpoints))
	for _, e := range c.endpoints {
		byAddr[e.addr] = e
	}
	for _, es := range s.Endpoints {
		if e := byAddr[es.Address]; e != nil {
			delete(byAddr, es.Address)
			p.eps = append(p.eps, e)
			continue
		}
		e := c.newEndpoint(es)
		e.setAttrs(es, s.Affinity) // not visible before Commit
		p.eps = append(p.eps, e)
		p.added = append(p.added, e)
	}
	for _, e := range c.endpoints {
		if byAddr[e.addr] == e {
			p.removed = append(p.removed, e)
		}
	}
	p.cfg = newClusterCfg(s, p.eps)
	if c.preparedAttrsMatch(s) {
		// Weights, priorities and zones are unchanged, so the pick set can
		// be built now; Commit rebuilds only if health moved meanwhile.
		p.snap = c.buildSnapshot(p.cfg)
	}
	return p, nil
}

// preparedAttrsMatch reports whether the endpoints of s that exist already
// have their settings unchanged (the pick set built before Commit sets them
// would otherwise be stale).
func (c *Cluster) preparedAttrsMatch(s Spec) bool {
	old := make(map[string]EndpointSpec, len(c.spec.Endpoints))
	for _, es := range c.spec.Endpoints {
		old[es.Address] = es
	}
	for _, es := range s.Endpoints {
		if o, ok := old[es.Address]; ok && o != es {
			return false
		}
	}
	return true
}

// Commit applies a prepared update and returns the endpoints it removed.
func (p *Prepared) Commit() []*Endpoint {
	c := p.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if p.noop || c.closed {
		if !p.noop {
			p.discardLocked()
		}
		return nil
	}
	old := c.spec
	for _, e := range p.removed {
		c.retireLocked(e)
	}
	c.spec = p.spec
	c.endpoints = p.eps
	c.setEndpointAttrs(p.spec)
	c.cur = p.cfg
	if p.snap != nil && p.version == c.version {
		c.snap.Store(p.snap)
		c.version++
	} else {
		c.rebuildLocked() // health moved, or endpoint settings changed, since Prepare
	}

	s := p.spec
	if s.Outlier == nil && old.Outlier != nil {
		for _, e := range p.eps {
			c.unEjectLocked(e, "outlier_detection_removed")
		}
	}
	hcChanged := !sameHealthCheck(old.HealthCheck, s.HealthCheck)
	if hcChanged && s.HealthCheck == nil {
		for _, e := range p.eps {
			c.setStateLocked(e, stateActiveDown, false, "health_check_removed", nil)
		}
	}
	if c.hcCtx != nil {
		switch {
		case hcChanged:
			for _, e := range p.eps {
				c.stopCheckerLocked(e)
				if s.HealthCheck != nil {
					c.startCheckerLocked(e)
				}
			}
		case s.HealthCheck != nil:
			for _, e := range p.added {
				c.startCheckerLocked(e)
			}
		}
	}
	return p.removed
}

// Discard drops a prepared update that will not be committed.
func (p *Prepared) Discard() {
	p.c.mu.Lock()
	defer p.c.mu.Unlock()
	p.discardLocked()
}

func (p *Prepared) discardLocked() {
	for _, e := range p.added {
		unregisterEndpointMetrics(p.c.opts.metrics, p.c.spec.Name, e.addr)
	}
	p.added = nil
}

// retireLocked takes a removed endpoint out of the cluster's bookkeeping.
// It keeps its state bits, so that a request still in flight on it sees
// the endpoint as it was.
func (c *Cluster) retireLocked(e *Endpoint) {
	c.stopCheckerLocked(e)
	if e.ejectTimer != nil {
		e.ejectTimer.Stop()
		e.ejectTimer = nil
	}
	if e.state.Load()&stateEjected != 0 {
		c.ejected--
	}
	e.gone = true
	unregisterEndpointMetrics(c.opts.metrics, c.spec.Name, e.addr)
}

// Retire closes the cluster (see Close) and unregisters its endpoints'
// metric series: for a cluster a reload removed. Requests still in flight
// keep working on the last pick set.
func (c *Cluster) Retire() {
	c.Close()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.endpoints {
		unregisterEndpointMetrics(c.opts.metrics, c.spec.Name, e.addr)
	}
}

// sameHealthCheck compares two health check specs, their TLS configs by
// TLSKey.
func sameHealthCheck(a, b *HealthCheckSpec) bool {
	if a == nil || b == nil {
		return a == b
	}
	x, y := *a, *b
	x.TLS, y.TLS = nil, nil
	return reflect.DeepEqual(x, y)
}
