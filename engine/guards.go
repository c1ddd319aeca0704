// SPDX-License-Identifier: GPL-3.0-only

package engine

import (
	"net/netip"
	"time"

	"github.com/expressgateway/expressgateway/conf"
	"github.com/expressgateway/expressgateway/guards"
	"github.com/expressgateway/expressgateway/stages"
)

// setGuards applies a listener's [listeners.guards] admission settings to
// its slot (at start and on reload): the per-IP new-connection rate and
// the penalty after an attack. A rate table is kept across a reload that
// does not change it.
func (s *listenerSlot) setGuards(g *conf.Guards) {
	if s.penalty == nil {
		s.penalty = guards.NewPenalties(g.TrackedClients)
	}
	s.penFor.Store(int64(g.Penalty))
	rate, burst := g.NewConnectionsPerSecond, g.NewConnectionsBurst
	if burst == 0 {
		burst = rate
	}
	cur := s.connRate.Load()
	switch {
	case rate == 0:
		s.connRate.Store(nil)
	case cur == nil || s.rateKey != [3]int{rate, burst, g.TrackedClients}:
		s.connRate.Store(guards.NewBuckets(rate, burst, g.TrackedClients))
	}
	s.rateKey = [3]int{rate, burst, g.TrackedClients}
}

// penalize keeps ip from opening connections on the listener for
// guards.penalty: one of its connections was closed for an attack.
func (s *listenerSlot) penalize(ip netip.Addr) {
	if d := s.penFor.Load(); d > 0 && s.penalty != nil {
		s.penalty.Add(guards.KeyIP(ip), time.Now().UnixNano()+d)
	}
}

// rateLimits are the request rate limiters of one listener view: a reload
// keeps a limiter (and its buckets) whose rate_limit did not change.
type rateLimits struct {
	listener *guards.RateLimiter
	routes   []*guards.RateLimiter
}

func newRateLimits(slot *listenerSlot, lc *conf.Listener) rateLimits {
	var old *listenerRT
	if slot != nil {
		old = slot.http.Load()
	}
	slots := lc.Guards.TrackedClients
	same := func(a, b conf.RateLimit) bool { return a == b && old.cfg.Guards.TrackedClients == slots }
	var r rateLimits
	g := lc.Guards.RateLimit
	if old != nil && same(old.cfg.Guards.RateLimit, g) {
		r.listener = old.view.Rate
	} else {
		r.listener = guards.NewRateLimiter(g.RequestsPerSecond, g.Burst, g.Key, slots)
	}
	r.routes = make([]*guards.RateLimiter, len(lc.Routes))
	var oldRoutes []*stages.Route
	if old != nil {
		oldRoutes = old.view.Router.Routes()
	}
	for i, rt := range lc.Routes {
		rl := rt.RateLimit
		if i < len(oldRoutes) && i < len(old.cfg.Routes) && same(old.cfg.Routes[i].RateLimit, rl) {
			r.routes[i] = oldRoutes[i].Rate
			continue
		}
		r.routes[i] = guards.NewRateLimiter(rl.RequestsPerSecond, rl.Burst, rl.Key, slots)
	}
	return r
}

func (r rateLimits) route(i int) *guards.RateLimiter { return r.routes[i] }
