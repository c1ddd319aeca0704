// SPDX-License-Identifier: GPL-3.0-only

package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/rs/zerolog"

	"github.com/expressgateway/expressgateway/conf"
	"github.com/expressgateway/expressgateway/lb"
	"github.com/expressgateway/expressgateway/xdp"
)

// xdpConfig maps the [xdp] section and the clusters it names onto the
// loader's config. Backends are named by their endpoint address, the same
// name the lb health checker reports; healthy, when set, says whether an
// endpoint is healthy now (nil: every backend starts healthy).
func xdpConfig(snap *conf.Snapshot, healthy func(cluster, addr string) bool) (xdp.Config, error) {
	x := &snap.Config.XDP
	cfg := xdp.Config{
		Interface:               x.Interface,
		AttachMode:              x.AttachMode,
		ConntrackSize:           x.ConntrackSize,
		UDPTimeout:              x.UDPTimeout.Std(),
		NewFlowsPerSecondPerCPU: uint64(x.NewFlowsPerSecondPerCPU),
	}
	for _, d := range x.Deny {
		p, err := netip.ParsePrefix(d)
		if err != nil {
			return cfg, fmt.Errorf("xdp.deny: %w", err)
		}
		cfg.Deny = append(cfg.Deny, p)
	}
	for _, v := range x.VIPs {
		cl := snap.Cluster(v.Cluster)
		if cl == nil {
			return cfg, fmt.Errorf("xdp vip %s: unknown cluster %q", v.Name, v.Cluster)
		}
		vip := xdp.VIP{
			Name: v.Name, Port: uint16(v.Port), Protocol: v.Protocol, Mode: v.Mode,
			TableSize: uint64(cl.Maglev.TableSize), Seed: cl.Maglev.Seed,
		}
		var err error
		if vip.Address, err = netip.ParseAddr(v.Address); err != nil {
			return cfg, fmt.Errorf("xdp vip %s: address: %w", v.Name, err)
		}
		if v.SNATAddress != "" {
			if vip.SNATAddress, err = netip.ParseAddr(v.SNATAddress); err != nil {
				return cfg, fmt.Errorf("xdp vip %s: snat_address: %w", v.Name, err)
			}
		}
		for _, e := range cl.Endpoints {
			ap, err := netip.ParseAddrPort(e.Address)
			if err != nil {
				return cfg, fmt.Errorf("xdp vip %s: endpoint %s: %w", v.Name, e.Address, err)
			}
			vip.Backends = append(vip.Backends, xdp.Backend{
				Name: e.Address, Address: ap.Addr().Unmap(), Port: ap.Port(),
				Weight: uint32(e.Weight), Healthy: healthy == nil || healthy(v.Cluster, e.Address),
			})
		}
		cfg.VIPs = append(cfg.VIPs, vip)
	}
	return cfg, nil
}

// xdpStage runs the XDP load balancer and follows the clusters' health.
type xdpStage struct {
	lb     atomic.Pointer[xdp.LB]
	vipsOf atomic.Pointer[map[string][]string] // cluster → VIP names
	log    zerolog.Logger
}

func newXDPStage(snap *conf.Snapshot, log zerolog.Logger) *xdpStage {
	s := &xdpStage{log: log}
	s.setVIPs(snap)
	return s
}

// setVIPs records which VIPs each cluster feeds, for onHealth.
func (s *xdpStage) setVIPs(snap *conf.Snapshot) {
	m := map[string][]string{}
	for _, v := range snap.Config.XDP.VIPs {
		m[v.Cluster] = append(m[v.Cluster], v.Name)
	}
	s.vipsOf.Store(&m)
}

// start loads and attaches the program.
func (s *xdpStage) start(snap *conf.Snapshot, set *metrics.Set) error {
	cfg, err := xdpConfig(snap, nil)
	if err != nil {
		return err
	}
	l, err := xdp.Load(cfg, xdp.WithMetrics(set), xdp.WithLogger(s.log), xdp.WithStatsInterval(5*time.Second))
	if err != nil {
		return fmt.Errorf("xdp on %s: %w", cfg.Interface, err)
	}
	s.lb.Store(l)
	s.log.Info().Str("interface", cfg.Interface).Str("mode", l.Mode()).Int("vips", len(cfg.VIPs)).Msg("xdp attached")
	return nil
}

// onHealth mirrors an lb health transition into the VIPs of that cluster.
func (s *xdpStage) onHealth(ev lb.HealthEvent) {
	l := s.lb.Load()
	if l == nil {
		return
	}
	for _, vip := range (*s.vipsOf.Load())[ev.Cluster] {
		if err := l.SetHealthy(vip, ev.Endpoint, ev.Healthy); err != nil {
			s.log.Warn().Err(err).Str("vip", vip).Str("backend", ev.Endpoint).Msg("xdp health update")
		}
	}
}

// reload swaps in the VIP tables of a new snapshot: each VIP's Maglev table
// is replaced in one map write, and established flows keep their backend
// through the flow table. Backends take their current health from healthy.
// Failures are logged (and counted by the xdp families).
func (s *xdpStage) reload(snap *conf.Snapshot, healthy func(cluster, addr string) bool) {
	l := s.lb.Load()
	if l == nil {
		return
	}
	cfg, err := xdpConfig(snap, healthy)
	if err == nil {
		if err = l.Update(cfg); err == nil {
			s.setVIPs(snap)
		}
	}
	if err != nil {
		s.log.Error().Err(err).Msg("xdp tables not reloaded")
		return
	}
	s.log.Info().Int("vips", len(cfg.VIPs)).Msg("xdp tables reloaded")
}

// collect reads the BPF counters into the metric families now.
func (s *xdpStage) collect() {
	if l := s.lb.Load(); l != nil {
		if err := l.CollectStats(); err != nil {
			s.log.Warn().Err(err).Msg("xdp stats")
		}
	}
}

func (s *xdpStage) close() {
	if l := s.lb.Swap(nil); l != nil {
		if err := l.Close(); err != nil {
			s.log.Warn().Err(err).Msg("xdp detach")
		}
		s.log.Info().Msg("xdp detached")
	}
}

// xdpTableDigest is the SHA-256, in hex, of the Maglev table the XDP
// loader writes for v (the name of the backend owning each slot; the
// backend slot numbers in the maps are local to a node), or of "empty"
// when no backend is eligible (the program drops with no_backend).
func xdpTableDigest(v xdp.VIP) string {
	var names []string
	var weights []uint32
	for _, b := range v.Backends {
		if b.Healthy && b.Weight > 0 {
			names = append(names, b.Name)
			weights = append(weights, b.Weight)
		}
	}
	h := sha256.New()
	if len(names) == 0 {
		h.Write([]byte("empty"))
		return hex.EncodeToString(h.Sum(nil))
	}
	t, err := lb.BuildMaglevTable(names, weights, v.TableSize, v.Seed)
	if err != nil {
		h.Write([]byte("error: " + err.Error()))
		return hex.EncodeToString(h.Sum(nil))
	}
	for _, i := range t {
		h.Write([]byte(names[i]))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}
