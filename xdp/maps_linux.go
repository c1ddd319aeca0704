// SPDX-License-Identifier: GPL-3.0-only

//go:build linux

package xdp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/expressgateway/expressgateway/lb"
)

// Values shared with bpf/lb.h.
const (
	addrFlagVIP  = 1
	addrFlagSNAT = 2
	vipFlagDSR   = 1
	beFlagDown   = 1
	flowFwd      = 1
	noBackend    = 0xffffffff
	afInet       = unix.AF_INET
	afInet6      = unix.AF_INET6
)

type denyKey = netip.Prefix

// addrWords returns a in the BPF layout: network byte order words, IPv4 in
// word 0, and its family.
func addrWords(a netip.Addr) ([4]uint32, uint8) {
	var w [4]uint32
	a = a.Unmap()
	if a.Is4() {
		b := a.As4()
		w[0] = binary.NativeEndian.Uint32(b[:])
		return w, afInet
	}
	b := a.As16()
	for i := range w {
		w[i] = binary.NativeEndian.Uint32(b[4*i:])
	}
	return w, afInet6
}

// netPort converts a host-order port to the network-order value the BPF
// program compares raw.
func netPort(p uint16) uint16 {
	var b [2]uint8
	binary.BigEndian.PutUint16(b[:], p)
	return binary.NativeEndian.Uint16(b[:])
}

func protoNumber(p string) uint8 {
	if p == "udp" {
		return unix.IPPROTO_UDP
	}
	return unix.IPPROTO_TCP
}

func vipKeyOf(v VIP) lbVipKey {
	w, fam := addrWords(v.Address)
	return lbVipKey{Addr: w, Port: netPort(v.Port), Proto: protoNumber(v.Protocol), Family: fam}
}

func seed32(s uint64) uint32 { return uint32(s) ^ uint32(s>>32) }

// slotAllocator hands out backend indexes. Freed indexes are reused
// oldest-first, so a drained backend's entry (which established flows
// still use) survives as long as possible.
type slotAllocator struct {
	next, max uint32
	free      []uint32
}

func newSlotAllocator(max uint32) slotAllocator { return slotAllocator{max: max} }

func (s *slotAllocator) get() (uint32, bool) {
	if s.next < s.max {
		s.next++
		return s.next - 1, true
	}
	if len(s.free) == 0 {
		return 0, false
	}
	v := s.free[0]
	s.free = s.free[1:]
	return v, true
}

func (s *slotAllocator) put(v uint32) { s.free = append(s.free, v) }

// apply makes the maps match cfg. Called with l.mu held (or before the LB
// is shared).
func (l *LB) apply(cfg Config) error {
	// A new generation makes every established flow check its VIP once
	// more (and keep its backend if the VIP is still there).
	l.gen++
	settings := lbLbSettings{UdpTimeoutNs: uint64(cfg.UDPTimeout.Nanoseconds()), NewFlowsPerSec: cfg.NewFlowsPerSecondPerCPU, Gen: l.gen}
	if err := l.objs.Settings.Put(uint32(0), settings); err != nil {
		return classify("write settings", err)
	}
	if err := l.syncDeny(cfg.Deny); err != nil {
		return err
	}

	want := make(map[string]bool, len(cfg.VIPs))
	for _, v := range cfg.VIPs {
		want[v.Name] = true
		if err := l.applyVIP(v); err != nil {
			return fmt.Errorf("vip %q: %w", v.Name, err)
		}
	}
	for name, st := range l.vips {
		if !want[name] {
			if err := l.removeVIP(st); err != nil {
				return fmt.Errorf("remove vip %q: %w", name, err)
			}
		}
	}
	if err := l.syncAddrs(); err != nil {
		return err
	}
	l.cfg = cfg
	return nil
}

func (l *LB) applyVIP(v VIP) error {
	st := l.vips[v.Name]
	if st == nil {
		id, ok := l.allocVIP()
		if !ok {
			return fmt.Errorf("no free vip id")
		}
		st = &vipState{id: id, byName: map[string]*backendState{}}
		if err := l.objs.VipStats.Put(id, make([]lbVipStats, ebpf.MustPossibleCPU())); err != nil {
			return classify("reset vip stats", err)
		}
	}

	// Backends first, so the new table never names an empty slot.
	next := make(map[string]*backendState, len(v.Backends))
	list := make([]*backendState, 0, len(v.Backends))
	for _, b := range v.Backends {
		old := st.byName[b.Name]
		var bs *backendState
		if old != nil && old.spec.Address == b.Address && old.spec.Port == b.Port {
			bs = old
			bs.spec = b
			if l.healthyInSpec(st, b.Name) != b.Healthy {
				// Health in the config only counts when it changes there;
				// otherwise SetHealthy's view stands.
				bs.healthy = b.Healthy
			}
		} else {
			slot, ok := l.slots.get()
			if !ok {
				return fmt.Errorf("no free backend slot")
			}
			bs = &backendState{spec: b, slot: slot, healthy: b.Healthy}
			if err := l.objs.BackendStats.Put(slot, make([]lbBackendStats, ebpf.MustPossibleCPU())); err != nil {
				return classify("reset backend stats", err)
			}
		}
		if err := l.writeBackend(bs); err != nil {
			return err
		}
		next[b.Name] = bs
		list = append(list, bs)
	}
	oldBackends := st.backends
	oldKey, hadKey := st.key, st.spec.Name != ""
	st.spec, st.backends, st.byName = v, list, next
	st.key = vipKeyOf(v)
	l.vips[v.Name] = st

	if err := l.writeTable(st); err != nil {
		return err
	}
	snat, _ := addrWords(v.SNATAddress)
	info := lbVipInfo{Id: st.id, Seed: seed32(v.Seed), Snat: snat}
	if v.Mode == ModeDSR {
		info.Flags |= vipFlagDSR
	}
	if err := l.objs.Vips.Put(st.key, info); err != nil {
		return classify("write vip", err)
	}
	if hadKey && oldKey != st.key {
		if err := l.objs.Vips.Delete(oldKey); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return classify("delete old vip key", err)
		}
	}
	for _, b := range oldBackends {
		if next[b.spec.Name] != b {
			l.retire(v.Name, b)
		}
	}
	for _, b := range list {
		l.exp.setHealthy(v.Name, b.spec.Name, b.healthy)
	}
	return nil
}

// healthyInSpec reports the health the previous config gave a backend.
func (l *LB) healthyInSpec(st *vipState, name string) bool {
	for _, b := range st.spec.Backends {
		if b.Name == name {
			return b.Healthy
		}
	}
	return false
}

func (l *LB) allocVIP() (uint32, bool) {
	if n := len(l.freeVIPs); n > 0 {
		id := l.freeVIPs[0]
		l.freeVIPs = l.freeVIPs[1:]
		return id, true
	}
	if l.nextVIP >= MaxVIPs {
		return 0, false
	}
	l.nextVIP++
	return l.nextVIP - 1, true
}

// retire takes a backend out of service without touching its entry in the
// backends map: established flows drain on it.
func (l *LB) retire(vip string, b *backendState) {
	l.slots.put(b.slot)
	l.exp.forgetBackend(vip, b.spec.Name)
}

func (l *LB) removeVIP(st *vipState) error {
	if err := l.objs.Vips.Delete(st.key); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return classify("delete vip", err)
	}
	if err := l.objs.Maglev.Delete(st.id); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return classify("delete maglev table", err)
	}
	for _, b := range st.backends {
		l.retire(st.spec.Name, b)
	}
	l.exp.forgetVIP(st.spec.Name)
	delete(l.vips, st.spec.Name)
	l.freeVIPs = append(l.freeVIPs, st.id)
	return nil
}

func (l *LB) writeBackend(b *backendState) error {
	w, fam := addrWords(b.spec.Address)
	v := lbBackend{Addr: w, Port: netPort(b.spec.Port), Family: fam}
	if !b.healthy {
		v.Flags |= beFlagDown
	}
	if err := l.objs.Backends.Put(b.slot, v); err != nil {
		return classify("write backend", err)
	}
	return nil
}

// tableValues builds the inner-map contents for a VIP: element 0 is the
// size, then one backend slot per Maglev slot. No eligible backend gives a
// size-0 table (the program drops with reason no_backend).
func tableValues(st *vipState) ([]uint32, error) {
	var names []string
	var weights, slots []uint32
	for _, b := range st.backends {
		if b.healthy && b.spec.Weight > 0 {
			names = append(names, b.spec.Name)
			weights = append(weights, b.spec.Weight)
			slots = append(slots, b.slot)
		}
	}
	if len(names) == 0 {
		return []uint32{0, noBackend}, nil
	}
	t, err := lb.BuildMaglevTable(names, weights, st.spec.TableSize, st.spec.Seed)
	if err != nil {
		return nil, fmt.Errorf("build maglev table: %w", err)
	}
	vals := make([]uint32, len(t)+1)
	vals[0] = uint32(len(t))
	for i, idx := range t {
		vals[i+1] = slots[idx]
	}
	return vals, nil
}

// writeTable builds a fresh inner map and swaps it into the VIP's slot of
// the outer map in one update: the program sees the old table or the new
// one, never a mix.
func (l *LB) writeTable(st *vipState) error {
	vals, err := tableValues(st)
	if err != nil {
		return err
	}
	m, err := ebpf.NewMap(&ebpf.MapSpec{
		Name:       "maglev_vip",
		Type:       ebpf.Array,
		KeySize:    4,
		ValueSize:  4,
		MaxEntries: uint32(len(vals)),
		Flags:      unix.BPF_F_INNER_MAP,
	})
	if err != nil {
		return classify("create maglev table", err)
	}
	defer func() { _ = m.Close() }()
	keys := make([]uint32, len(vals))
	for i := range keys {
		keys[i] = uint32(i)
	}
	if _, err := m.BatchUpdate(keys, vals, nil); err != nil {
		if !errors.Is(err, ebpf.ErrNotSupported) {
			return classify("fill maglev table", err)
		}
		for i, v := range vals {
			if err := m.Put(uint32(i), v); err != nil {
				return classify("fill maglev table", err)
			}
		}
	}
	if err := l.objs.Maglev.Put(st.id, m); err != nil {
		return classify("swap maglev table", err)
	}
	return nil
}

func (l *LB) syncAddrs() error {
	want := make(map[lbAddrKey]uint32)
	for _, st := range l.vips {
		w, fam := addrWords(st.spec.Address)
		want[lbAddrKey{Addr: w, Family: uint32(fam)}] |= addrFlagVIP
		if st.spec.Mode == ModeNAT {
			w, fam := addrWords(st.spec.SNATAddress)
			want[lbAddrKey{Addr: w, Family: uint32(fam)}] |= addrFlagSNAT
		}
	}
	for k, v := range want {
		if l.addrs[k] != v {
			if err := l.objs.Addrs.Put(k, v); err != nil {
				return classify("write address", err)
			}
		}
	}
	for k := range l.addrs {
		if _, ok := want[k]; !ok {
			if err := l.objs.Addrs.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				return classify("delete address", err)
			}
		}
	}
	l.addrs = want
	return nil
}

func (l *LB) syncDeny(prefixes []netip.Prefix) error {
	want := make(map[denyKey]bool, len(prefixes))
	for _, p := range prefixes {
		want[p.Masked()] = true
	}
	for p := range want {
		if !l.deny[p] {
			if err := l.putDeny(p, true); err != nil {
				return err
			}
		}
	}
	for p := range l.deny {
		if !want[p] {
			if err := l.putDeny(p, false); err != nil {
				return err
			}
		}
	}
	l.deny = want
	return nil
}

func (l *LB) putDeny(p netip.Prefix, add bool) error {
	var m *ebpf.Map
	var key any
	if a := p.Addr(); a.Is4() || a.Is4In6() {
		bits := p.Bits()
		if a.Is4In6() {
			bits -= 96
		}
		m, key = l.objs.DenyV4, lbLpmV4Key{Prefixlen: uint32(max(bits, 0)), Addr: a.Unmap().As4()}
	} else {
		m, key = l.objs.DenyV6, lbLpmV6Key{Prefixlen: uint32(p.Bits()), Addr: a.As16()}
	}
	var err error
	if add {
		err = m.Put(key, uint32(1))
	} else if err = m.Delete(key); errors.Is(err, ebpf.ErrKeyNotExist) {
		err = nil
	}
	if err != nil {
		return classify("update deny list", err)
	}
	return nil
}
