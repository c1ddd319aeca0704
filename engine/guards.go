// SPDX-License-Identifier: GPL-3.0-only

package engine

import (
	"net/netip"
	"time"

	"github.com/expressgateway/expressgateway/conf"
	"github.com/expressgateway/expressgateway/guards"
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
