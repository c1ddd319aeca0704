// SPDX-License-Identifier: GPL-3.0-only

//go:build linux

package xdp

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// Stats reads the counters now.
func (l *LB) Stats() (Stats, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return Stats{}, ErrClosed
	}
	return l.readStats()
}

func (l *LB) readStats() (Stats, error) {
	s := Stats{Reasons: make(map[string]uint64, len(Reasons)), VIPs: make(map[string]VIPStats, len(l.vips))}
	var per []uint64
	for i, r := range Reasons {
		if err := l.objs.Reasons.Lookup(uint32(i), &per); err != nil {
			return Stats{}, fmt.Errorf("read reasons: %w", err)
		}
		var sum uint64
		for _, v := range per {
			sum += v
		}
		s.Reasons[r.Key()] = sum
	}
	var vper []lbVipStats
	var bper []lbBackendStats
	for name, st := range l.vips {
		if err := l.objs.VipStats.Lookup(st.id, &vper); err != nil {
			return Stats{}, fmt.Errorf("read vip stats: %w", err)
		}
		vs := VIPStats{Backends: make(map[string]BackendStats, len(st.backends))}
		for _, v := range vper {
			vs.Packets += v.Packets
			vs.Bytes += v.Bytes
			vs.NewFlows += v.NewFlows
			vs.ReplyPackets += v.ReplyPackets
			vs.ReplyBytes += v.ReplyBytes
		}
		for _, b := range st.backends {
			if err := l.objs.BackendStats.Lookup(b.slot, &bper); err != nil {
				return Stats{}, fmt.Errorf("read backend stats: %w", err)
			}
			var bs BackendStats
			for _, v := range bper {
				bs.Packets += v.Packets
				bs.Bytes += v.Bytes
				bs.NewFlows += v.NewFlows
			}
			vs.Backends[b.spec.Name] = bs
		}
		s.VIPs[name] = vs
	}
	return s, nil
}

// CollectStats reads the counters into the metrics set given by
// WithMetrics (a no-op without one). The background reader calls it every
// WithStatsInterval.
func (l *LB) CollectStats() error {
	if l.exp.set == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	s, err := l.readStats()
	if err != nil {
		l.exp.statsErrors.Inc()
		return err
	}
	l.exp.publish(s)
	return nil
}

// exporter owns the expressgateway_xdp_* series in a metrics.Set.
type exporter struct {
	set         *metrics.Set
	interval    time.Duration
	mu          sync.Mutex
	names       map[string]bool // every series we registered
	statsErrors *metrics.Counter
}

func newExporter(set *metrics.Set) *exporter {
	e := &exporter{set: set, names: map[string]bool{}}
	if set != nil {
		e.statsErrors = e.counter("expressgateway_xdp_stats_errors_total")
		e.counter(`expressgateway_xdp_updates_total{result="ok"}`)
		e.counter(`expressgateway_xdp_updates_total{result="error"}`)
		for _, r := range Reasons {
			e.counter(reasonSeries(r))
		}
	}
	return e
}

func reasonSeries(r Reason) string {
	return fmt.Sprintf(`expressgateway_xdp_packets_total{action=%q,reason=%q}`, r.Action, r.Name)
}

func (e *exporter) counter(name string) *metrics.Counter {
	e.mu.Lock()
	e.names[name] = true
	e.mu.Unlock()
	return e.set.GetOrCreateCounter(name)
}

func (e *exporter) gauge(name string) *metrics.Gauge {
	e.mu.Lock()
	e.names[name] = true
	e.mu.Unlock()
	return e.set.GetOrCreateGauge(name, nil)
}

func (e *exporter) forget(prefix, match string) {
	if e.set == nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for name := range e.names {
		if strings.HasPrefix(name, prefix) && strings.Contains(name, match) {
			e.set.UnregisterMetric(name)
			delete(e.names, name)
		}
	}
}

func (e *exporter) update(ok bool) {
	if e.set == nil {
		return
	}
	if ok {
		e.counter(`expressgateway_xdp_updates_total{result="ok"}`).Inc()
	} else {
		e.counter(`expressgateway_xdp_updates_total{result="error"}`).Inc()
	}
}

func (e *exporter) setAttached(iface, mode string, on bool) {
	if e.set == nil {
		return
	}
	v := 0.0
	if on {
		v = 1
	}
	e.gauge(fmt.Sprintf(`expressgateway_xdp_attached{interface=%q,mode=%q}`, iface, mode)).Set(v)
}

func (e *exporter) setHealthy(vip, backend string, ok bool) {
	if e.set == nil {
		return
	}
	v := 0.0
	if ok {
		v = 1
	}
	e.gauge(fmt.Sprintf(`expressgateway_xdp_backend_healthy{vip=%q,backend=%q}`, vip, backend)).Set(v)
}

func (e *exporter) forgetBackend(vip, backend string) {
	e.forget("expressgateway_xdp_backend_", fmt.Sprintf(`{vip=%q,backend=%q}`, vip, backend))
}

func (e *exporter) forgetVIP(vip string) {
	e.forget("expressgateway_xdp_vip_", fmt.Sprintf(`{vip=%q}`, vip))
	e.forget("expressgateway_xdp_backend_", fmt.Sprintf(`{vip=%q,`, vip))
}

func (e *exporter) unregisterAll() {
	if e.set == nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	names := make([]string, 0, len(e.names))
	for n := range e.names {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		// The attached gauge stays (at 0) so a scrape shows the detach.
		if !strings.HasPrefix(n, "expressgateway_xdp_attached") {
			e.set.UnregisterMetric(n)
			delete(e.names, n)
		}
	}
}

func (e *exporter) publish(s Stats) {
	for _, r := range Reasons {
		e.counter(reasonSeries(r)).Set(s.Reasons[r.Key()])
	}
	for vip, vs := range s.VIPs {
		l := fmt.Sprintf(`{vip=%q}`, vip)
		e.counter("expressgateway_xdp_vip_packets_total" + l).Set(vs.Packets)
		e.counter("expressgateway_xdp_vip_bytes_total" + l).Set(vs.Bytes)
		e.counter("expressgateway_xdp_vip_new_flows_total" + l).Set(vs.NewFlows)
		e.counter("expressgateway_xdp_vip_reply_packets_total" + l).Set(vs.ReplyPackets)
		e.counter("expressgateway_xdp_vip_reply_bytes_total" + l).Set(vs.ReplyBytes)
		for be, bs := range vs.Backends {
			bl := fmt.Sprintf(`{vip=%q,backend=%q}`, vip, be)
			e.counter("expressgateway_xdp_backend_packets_total" + bl).Set(bs.Packets)
			e.counter("expressgateway_xdp_backend_bytes_total" + bl).Set(bs.Bytes)
			e.counter("expressgateway_xdp_backend_new_flows_total" + bl).Set(bs.NewFlows)
		}
	}
}
