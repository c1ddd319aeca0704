// SPDX-License-Identifier: GPL-3.0-only

package engine

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Guards that a flood hits once per packet: the counter counts every hit,
// the warn line is written at most once per second per guard, with the
// number of hits it stands for.
const (
	guardUDPSessions      = "udp_sessions"        // a udp listener's max_connections
	guardUDPSessionsPerIP = "udp_sessions_per_ip" // a udp listener's max_sessions_per_ip
)

// guardLogEvery is the least time between two warn lines of one guard.
const guardLogEvery = time.Second

// logGate lets one line per guardLogEvery through and counts the others.
type logGate struct {
	next       atomic.Int64 // UnixNano before which lines are suppressed
	suppressed atomic.Int64
}

var logGates sync.Map // guard name → *logGate

// pass reports whether a line may be written now and how many were
// suppressed since the last one. Safe from any goroutine.
func (g *logGate) pass(now int64) (bool, int64) {
	next := g.next.Load()
	if now < next || !g.next.CompareAndSwap(next, now+int64(guardLogEvery)) {
		g.suppressed.Add(1)
		return false, 0
	}
	return true, g.suppressed.Swap(0)
}

// l4GuardHit counts a hit of guard on an L4 listener and logs it, rate
// limited. Safe from any goroutine.
func (e *Engine) l4GuardHit(guard, listener string, ip netip.Addr) {
	e.m.GuardHit(guard).Inc()
	v, ok := logGates.Load(guard)
	if !ok {
		v, _ = logGates.LoadOrStore(guard, new(logGate))
	}
	ok, suppressed := v.(*logGate).pass(time.Now().UnixNano())
	if !ok {
		return
	}
	e.log.Warn().Str("guard", guard).Str("listener", listener).Str("client", ip.String()).
		Int64("suppressed", suppressed).Msg("limit hit")
}
