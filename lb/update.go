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
// changes. Safe to call concurrently with every other method.
func (c *Cluster) Update(s Spec) ([]*Endpoint, error) {
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
	if reflect.DeepEqual(s, c.spec) {
		return nil, nil
	}
	old := c.spec
	byAddr := make(map[string]*Endpoint, len(c.endpoints))
	for _, e := range c.endpoints {
		byAddr[e.addr] = e
	}
	eps := make([]*Endpoint, 0, len(s.Endpoints))
	var added []*Endpoint
	for _, es := range s.Endpoints {
		if e := byAddr[es.Address]; e != nil {
			delete(byAddr, es.Address)
			eps = append(eps, e)
			continue
		}
		e := c.newEndpoint(es)
		eps = append(eps, e)
		added = append(added, e)
	}
	var removed []*Endpoint
	for _, e := range c.endpoints {
		if byAddr[e.addr] == e {
			removed = append(removed, e)
		}
	}
	for _, e := range removed {
		c.retireLocked(e)
	}

	c.spec = s
	c.endpoints = eps
	c.setEndpointAttrs(s)
	c.cur = newClusterCfg(s, eps)

	if s.Outlier == nil && old.Outlier != nil {
		for _, e := range eps {
			c.unEjectLocked(e, "outlier_detection_removed")
		}
	}
	hcChanged := !reflect.DeepEqual(old.HealthCheck, s.HealthCheck)
	if hcChanged && s.HealthCheck == nil {
		for _, e := range eps {
			c.setStateLocked(e, stateActiveDown, false, "health_check_removed", nil)
		}
	}
	if c.hcCtx != nil {
		switch {
		case hcChanged:
			for _, e := range eps {
				c.stopCheckerLocked(e)
				if s.HealthCheck != nil {
					c.startCheckerLocked(e)
				}
			}
		case s.HealthCheck != nil:
			for _, e := range added {
				c.startCheckerLocked(e)
			}
		}
	}
	c.rebuildLocked()
	return removed, nil
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

// unEjectLocked ends e's ejection now (outlier detection was removed).
func (c *Cluster) unEjectLocked(e *Endpoint, reason string) {
	if e.state.Load()&stateEjected == 0 {
		return
	}
	if e.ejectTimer != nil {
		e.ejectTimer.Stop()
		e.ejectTimer = nil
	}
	c.ejected--
	c.setStateLocked(e, stateEjected, false, reason, nil)
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
