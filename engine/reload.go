// SPDX-License-Identifier: GPL-3.0-only

package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/expressgateway/expressgateway/conf"
	"github.com/expressgateway/expressgateway/lb"
)

// Reload applies snap, a validated snapshot whose restart-only keys the
// caller kept at their running values (conf.Carry), to the running engine.
//
// Clusters are updated in place (Clusters.prepare/apply, lb.Cluster.Update).
// A listener that keeps its name, protocol, address and reuse_port keeps its
// sockets, loops and connections, and gets a new compiled view: new
// connections and every request that starts after the swap use it, requests
// in flight finish with the view they started with. Other listeners are
// replaced: the old one stops accepting at once and drains (reload.go,
// drainSlots), the new one starts on a new loop set, taking over the old
// one's sockets when the address and reuse_port are the same.
//
// Reload fails, changing nothing, when a cluster or listener cannot be
// built or a new listener cannot bind its address. Problems after the
// commit point (a listener that cannot be restarted on an address the
// listener it replaces just freed) are logged; the listener is missing
// until a later reload starts it. Safe from any goroutine; reloads are
// serialised.
func (e *Engine) Reload(snap *conf.Snapshot) error {
	e.lmu.Lock()
	defer e.lmu.Unlock()
	if e.stopped.Load() {
		return errors.New("engine: stopped")
	}
	cfg := &snap.Config
	cu, err := e.clusters.prepare(snap)
	if err != nil {
		return err
	}
	fail := func(err error, bound []*listenerSlot) error {
		for _, s := range bound {
			for _, k := range s.socks {
				k.close()
			}
		}
		cu.discard()
		return err
	}

	// Which listeners stay, which go, which come.
	removed := map[string]*listenerSlot{}
	for name, s := range e.slots {
		if lc := snap.Listener(name); lc == nil || !s.sameIdentity(lc) {
			removed[name] = s
		}
	}
	byKey := map[string]*listenerSlot{} // removed slots by socket key, for a hand-over
	for _, s := range removed {
		byKey[s.key()] = s
	}
	var late, bound, replacedH3 []*listenerSlot
	views := map[*listenerSlot]*conf.Listener{}
	takeFrom := map[*listenerSlot]*listenerSlot{}
	for i := range cfg.Listeners {
		lc := &cfg.Listeners[i]
		if s := e.slots[lc.Name]; s != nil && removed[lc.Name] == nil {
			views[s] = lc
			continue
		}
		s := e.newSlot(lc)
		views[s] = lc
		if old := byKey[s.key()]; old != nil {
			delete(byKey, s.key())
			if old.proto == conf.ProtocolH3 || s.proto == conf.ProtocolH3 {
				replacedH3 = append(replacedH3, old) // its UDP socket closes at once
				late = append(late, s)
				continue
			}
			if old.reuse == s.reuse {
				takeFrom[s] = old // same address and socket shape: keep the sockets
				continue
			}
			late = append(late, s) // bind once the old listener freed the address
			continue
		}
		if err := e.bindSlot(s, nil); err != nil {
			return fail(fmt.Errorf("listeners[%d].listen: %w", i, err), bound)
		}
		bound = append(bound, s)
	}
	// Compile every view before anything changes.
	httpViews := map[*listenerSlot]*listenerRT{}
	l4Views := map[*listenerSlot]*l4Listener{}
	for s, lc := range views {
		if conf.IsHTTP(lc.Protocol) {
			l, err := e.buildListener(s, lc, cu.Get)
			if err != nil {
				return fail(err, bound)
			}
			httpViews[s] = l
			continue
		}
		l, err := e.l4.buildListener(s, lc, cu.Get)
		if err != nil {
			return fail(err, bound)
		}
		l4Views[s] = l
	}

	// Commit.
	gone, removedClusters := cu.apply()
	for s, lc := range views {
		if l := httpViews[s]; l != nil {
			s.http.Store(l)
		}
		if l := l4Views[s]; l != nil {
			s.l4.Store(l)
		}
		s.limiter.SetLimits(lc.MaxConnections, slotPerIP(lc))
		s.setGuards(&lc.Guards)
		if s.h3 != nil && lc.QUIC.EarlyData && !s.h3.early {
			e.log.Warn().Str("listener", s.name).
				Msg("h3: quic.early_data = true takes effect at the next restart or upgrade (the listener was started without 0-RTT); the other quic keys apply to new connections now")
		}
	}
	e.global.SetLimits(cfg.Engine.MaxConnections, 0)
	e.snap.Store(snap)
	e.setDefaultUpIdle(cfg)

	var draining []*listenerSlot
	for name, s := range removed {
		// Off the loops first: a connection accepted just before is
		// admitted and drains with the listener's other connections.
		e.ungraftSlot(s)
		s.draining.Store(true)
		delete(e.slots, name)
		draining = append(draining, s)
	}
	for s, old := range takeFrom {
		s.socks, old.socks = old.socks, nil
	}
	e.endUDPSessions(draining)
	for _, s := range replacedH3 {
		if s.h3 != nil {
			s.h3.close() // the new listener on its address needs the port now
		}
	}
	e.drainH3(draining, cfg.Engine.DrainTimeout.Std())
	for _, s := range draining {
		for _, k := range s.socks {
			k.close()
		}
	}
	start := append([]*listenerSlot(nil), bound...)
	for s := range takeFrom {
		start = append(start, s)
	}
	for _, s := range late {
		if err := e.bindSlot(s, nil); err != nil {
			e.log.Error().Err(err).Str("listener", s.name).Msg("listener not started after reload; the next reload tries again")
			continue
		}
		start = append(start, s)
	}
	if len(start) > 0 {
		set, err := e.startSet(start)
		if err != nil {
			e.log.Error().Err(err).Msg("listeners not started after reload; the next reload tries again")
			for _, s := range start {
				for _, k := range s.socks {
					k.close()
				}
			}
		} else {
			e.sets = append(e.sets, set)
			for _, s := range start {
				e.slots[s.name] = s
			}
			if err := e.serveH3(set, start); err != nil {
				e.log.Error().Err(err).Msg("h3 listener not started after reload")
			}
		}
	}
	for _, sc := range removedClusters {
		sc.LB.Retire()
	}
	for _, s := range draining {
		e.log.Info().Str("listener", s.name).Str("listen", s.addr).Msg("listener removed; draining its connections")
	}
	for _, s := range start {
		e.log.Info().Str("listener", s.name).Str("listen", s.addr).Str("protocol", s.proto).Msg("listening")
	}
	go e.afterReload(gone, draining, cfg.Engine.DrainTimeout.Std())
	return nil
}

// afterReload tidies the loops once a reload is in: per-loop queue counters
// of views no longer in use, pooled connections to endpoints that left, and
// the connections of removed listeners, which drain.
func (e *Engine) afterReload(gone []*lb.Endpoint, draining []*listenerSlot, drainTimeout time.Duration) {
	left := make(map[*lb.Endpoint]bool, len(gone))
	for _, ep := range gone {
		left[ep] = true
	}
	live := map[*lb.Endpoint]bool{}
	for _, sc := range e.clusters.All() {
		for _, ep := range sc.LB.Endpoints() {
			live[ep] = true
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	e.eachLoop(ctx, func(lp *loop) {
		for l, n := range lp.pending {
			if n <= 0 && l.slot.http.Load() != l {
				delete(lp.pending, l)
			}
		}
		for ep, p := range lp.pools {
			if live[ep] && !left[ep] {
				continue
			}
			for _, u := range append([]*upstream(nil), p.idle...) {
				if u.state == upIdle {
					u.close()
				}
			}
			if len(p.idle) == 0 {
				delete(lp.pools, ep)
			}
		}
		// h2c connections to endpoints that left take no new stream; the
		// idle ones close now, the others once their streams end.
		for ep, list := range lp.h2pools {
			if live[ep] && !left[ep] {
				continue
			}
			delete(lp.h2pools, ep)
			for _, hu := range list {
				hu.retired = true
				if hu.state == upActive && len(hu.streams) == 0 && len(hu.pending) == 0 {
					hu.close()
				}
			}
		}
		for ep, list := range lp.h3pools {
			if live[ep] && !left[ep] {
				continue
			}
			delete(lp.h3pools, ep)
			for _, hu := range list {
				hu.retired = true
				if hu.state == upActive && len(hu.streams) == 0 && len(hu.pending) == 0 {
					hu.close()
				}
			}
		}
	})
	cancel()
	if len(draining) > 0 {
		e.drainSlots(draining, drainTimeout)
	}
}

// endUDPSessions closes, on every loop, the sessions of the udp listeners
// and the QUIC connections of the quic-passthrough listeners among slots.
func (e *Engine) endUDPSessions(slots []*listenerSlot) {
	udp := map[*listenerSlot]bool{}
	for _, s := range slots {
		if s.udp() {
			udp[s] = true
		}
	}
	if len(udp) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	e.eachLoop(ctx, func(lp *loop) {
		v, ok := e.l4.loops.Load(lp.el)
		if !ok {
			return
		}
		ll := v.(*l4Loop)
		for f := range ll.quic {
			if udp[f.l.slot] {
				f.close(0, false, "listener_removed")
			}
		}
		for s := range udp {
			if t := ll.udp[s]; t != nil {
				for _, ss := range t.sessions {
					ss.close(0, false, "listener_removed")
				}
				delete(ll.udp, s)
			}
		}
	})
}

// drainSlots waits until the connections of removed listeners are gone,
// closes what is left on the loops after timeout, then stops the loop sets
// that serve nothing any more. An exchange that runs off the loop when the
// budget is spent ends by its own timeouts; the loops it returns to wait
// for it.
func (e *Engine) drainSlots(slots []*listenerSlot, timeout time.Duration) {
	start := time.Now()
	t := time.NewTicker(sweepEvery)
	defer t.Stop()
	forced := false
	for {
		open := 0
		for _, s := range slots {
			if !s.udp() { // a udp limiter counts sessions, which end with their loops
				open += s.limiter.Count()
			}
		}
		if open == 0 {
			break
		}
		if !forced && time.Since(start) > timeout {
			forced = true
			e.log.Warn().Int("connections", open).Dur("after", time.Since(start)).Msg("drain budget of removed listeners spent; closing the rest")
			e.closeConnsOf(slots)
		}
		select {
		case <-e.done:
			return
		case <-t.C:
		}
	}
	for _, s := range slots {
		e.log.Info().Str("listener", s.name).Dur("after", time.Since(start)).Msg("removed listener drained")
	}
	e.reapSets()
}

// closeConnsOf closes, on every loop, the client connections (HTTP/1 and
// HTTP/2) and tcp pairs of the given listeners.
func (e *Engine) closeConnsOf(slots []*listenerSlot) {
	of := map[*listenerSlot]bool{}
	for _, s := range slots {
		of[s] = true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	e.eachLoop(ctx, func(lp *loop) {
		for cc := range lp.clients {
			if of[cc.l.slot] {
				cc.abort()
			}
		}
		for sc := range lp.h2conns {
			if of[sc.l.slot] {
				sc.abort()
			}
		}
		if v, ok := e.l4.loops.Load(lp.el); ok {
			for s := range v.(*l4Loop).tcp {
				if of[s.l.slot] {
					s.close(0, false, "listener_removed")
				}
			}
		}
	})
	e.l4.offMu.Lock()
	var rs []*relay
	for r, s := range e.l4.off {
		if of[s.l.slot] {
			rs = append(rs, r)
		}
	}
	e.l4.offMu.Unlock()
	for _, r := range rs {
		r.closeAll()
	}
}

// reapSets stops the loop sets none of whose listeners serves and whose
// listeners have no connection left.
func (e *Engine) reapSets() {
	e.lmu.Lock()
	defer e.lmu.Unlock()
	keep := e.sets[:0]
	var stop []*loopSet
	for _, set := range e.sets {
		open := 0
		for _, s := range set.slots {
			if !s.udp() { // a udp limiter counts sessions, which end with their loops
				open += s.limiter.Count()
			}
		}
		if set.live() || open > 0 {
			keep = append(keep, set)
			continue
		}
		stop = append(stop, set)
	}
	for i := len(keep); i < len(e.sets); i++ {
		e.sets[i] = nil
	}
	e.sets = keep
	for _, set := range stop {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		set.stop(ctx)
		cancel()
		e.log.Info().Int("loops", len(set.loops)).Msg("event loops of removed listeners stopped")
	}
}

// refresh moves the connection to its listener's current view: called at
// the start of every request and whenever the connection goes idle, so
// that a reload reaches open keep-alive connections at their next request.
// A request keeps the view it started with.
func (cc *clientConn) refresh() {
	if l := cc.l.slot.http.Load(); l != cc.l && l != nil {
		cc.l = l
		if r := cc.r; r != nil {
			r.x.Listener = l.view
			r.parser.Limits = l.limits
		}
	}
}

// draining reports whether the connection should finish its exchange and
// close: the engine drains (shutdown, upgrade) or its listener was removed.
func (cc *clientConn) draining() bool {
	return cc.lp.e.draining.Load() || cc.l.slot.draining.Load()
}

// refresh moves the HTTP/2 session to its listener's current view: called
// for every new stream, whose leg takes the view then. A stream keeps the
// view it started with.
func (sc *h2Conn) refresh() {
	if l := sc.l.slot.http.Load(); l != sc.l && l != nil {
		sc.l = l
	}
}

// draining reports whether the session should send GOAWAY and finish its
// streams: the engine drains or its listener was removed.
func (sc *h2Conn) draining() bool {
	return sc.lp.e.draining.Load() || sc.l.slot.draining.Load()
}
