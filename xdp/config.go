// SPDX-License-Identifier: GPL-3.0-only

package xdp

import (
	"fmt"
	"net/netip"
	"time"
)

// Attach modes accepted by Config.AttachMode.
const (
	// AttachAuto tries native (driver) XDP and falls back to generic.
	AttachAuto = "auto"
	// AttachNative requires native (driver) XDP.
	AttachNative = "native"
	// AttachGeneric uses generic (skb) XDP, available on every device.
	AttachGeneric = "generic"
)

// Forwarding modes accepted by VIP.Mode.
const (
	// ModeNAT rewrites the destination to the backend and the source to
	// VIP.SNATAddress; replies come back through the load balancer.
	ModeNAT = "nat"
	// ModeDSR encapsulates in IPIP (IPv4 backend) or IP6IP6 (IPv6 backend);
	// the backend decapsulates and answers the client directly.
	ModeDSR = "dsr"
)

// Defaults applied by Config.withDefaults.
const (
	DefaultConntrackSize = 1 << 18
	DefaultUDPTimeout    = 30 * time.Second
	DefaultTableSize     = 65537
)

// Capacities fixed at compile time in bpf/lb.h.
const (
	MaxVIPs      = 512
	MaxBackends  = 4096
	MaxDenyRules = 16384
)

// Config is everything the XDP load balancer needs. It is a plain value:
// the caller builds it from its own configuration and hands a new one to
// LB.Update on reload.
type Config struct {
	// Interface is the network interface the program attaches to.
	Interface string
	// AttachMode is "auto" (default), "native" or "generic".
	AttachMode string
	// ConntrackSize bounds the connection-tracking and reverse-NAT tables
	// (entries, shared by all CPUs; least recently used entries are evicted).
	// Read at Load only. Default 262144.
	ConntrackSize int
	// UDPTimeout is how long a UDP flow keeps its backend without packets.
	// Default 30s.
	UDPTimeout time.Duration
	// NewFlowsPerSecondPerCPU caps new flows per CPU per second (a SYN-flood
	// guard); excess new flows are dropped and counted. 0 disables the cap.
	NewFlowsPerSecondPerCPU uint64
	// Deny drops packets to any VIP from these source prefixes.
	Deny []netip.Prefix
	// VIPs are the virtual services.
	VIPs []VIP
}

// VIP is one virtual service: an address, a port (0 = every port) and a
// protocol, spread over backends with a Maglev table.
type VIP struct {
	// Name identifies the VIP in metrics and in SetHealthy; unique.
	Name string
	// Address is the virtual IP (IPv4 or IPv6).
	Address netip.Addr
	// Port is the destination port; 0 matches every port without a more
	// specific VIP.
	Port uint16
	// Protocol is "tcp" or "udp".
	Protocol string
	// Mode is "nat" (default) or "dsr".
	Mode string
	// SNATAddress is, in NAT mode, the source address used towards the
	// backends (required, same family as the VIP; the backends must route
	// it back to this load balancer). In DSR mode it is the outer source
	// address of the tunnel (defaults to Address when the families match).
	SNATAddress netip.Addr
	// TableSize is the Maglev table size, a prime larger than the number
	// of backends. Default 65537.
	TableSize uint64
	// Seed varies the Maglev permutation and the flow hash.
	Seed uint64
	// Backends receive the VIP's flows.
	Backends []Backend
}

// Backend is one real server behind a VIP.
type Backend struct {
	// Name identifies the backend within its VIP; unique per VIP.
	Name string
	// Address is the backend address. NAT mode needs the VIP's family.
	Address netip.Addr
	// Port is the destination port at the backend; 0 keeps the client's
	// destination port. DSR mode ignores it (the packet is not rewritten).
	Port uint16
	// Weight is the backend's share of new flows relative to the others.
	// 0 drains: established flows stay, new flows go elsewhere.
	Weight uint32
	// Healthy is the initial health; SetHealthy changes it later. An
	// unhealthy backend takes no new flows and its established flows move.
	Healthy bool
}

func (c Config) withDefaults() Config {
	if c.AttachMode == "" {
		c.AttachMode = AttachAuto
	}
	if c.ConntrackSize == 0 {
		c.ConntrackSize = DefaultConntrackSize
	}
	if c.UDPTimeout == 0 {
		c.UDPTimeout = DefaultUDPTimeout
	}
	vips := make([]VIP, len(c.VIPs))
	for i, v := range c.VIPs {
		if v.Mode == "" {
			v.Mode = ModeNAT
		}
		if v.TableSize == 0 {
			v.TableSize = DefaultTableSize
		}
		if v.Mode == ModeDSR && !v.SNATAddress.IsValid() {
			v.SNATAddress = v.Address
		}
		vips[i] = v
	}
	c.VIPs = vips
	return c
}

// Validate reports the first problem in the configuration, wrapped in
// ErrInvalidConfig. Defaults are applied first.
func (c Config) Validate() error {
	if err := c.withDefaults().validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return nil
}

func (c Config) validate() error {
	if c.Interface == "" {
		return fmt.Errorf("interface is empty")
	}
	switch c.AttachMode {
	case AttachAuto, AttachNative, AttachGeneric:
	default:
		return fmt.Errorf("attach mode %q: want auto, native or generic", c.AttachMode)
	}
	if c.ConntrackSize < 0 || c.ConntrackSize > 1<<26 {
		return fmt.Errorf("conntrack size %d out of range", c.ConntrackSize)
	}
	if c.UDPTimeout < 0 {
		return fmt.Errorf("udp timeout %v is negative", c.UDPTimeout)
	}
	if len(c.Deny) > MaxDenyRules {
		return fmt.Errorf("%d deny prefixes, at most %d", len(c.Deny), MaxDenyRules)
	}
	for _, p := range c.Deny {
		if !p.IsValid() {
			return fmt.Errorf("deny prefix %v is invalid", p)
		}
	}
	if len(c.VIPs) > MaxVIPs {
		return fmt.Errorf("%d VIPs, at most %d", len(c.VIPs), MaxVIPs)
	}
	names := make(map[string]bool)
	keys := make(map[vipIdent]string)
	backends := 0
	for _, v := range c.VIPs {
		if v.Name == "" {
			return fmt.Errorf("vip with address %v has no name", v.Address)
		}
		if names[v.Name] {
			return fmt.Errorf("vip %q defined twice", v.Name)
		}
		names[v.Name] = true
		if err := v.validate(); err != nil {
			return fmt.Errorf("vip %q: %w", v.Name, err)
		}
		id := v.ident()
		if other, dup := keys[id]; dup {
			return fmt.Errorf("vip %q: same address, port and protocol as %q", v.Name, other)
		}
		keys[id] = v.Name
		backends += len(v.Backends)
	}
	if backends > MaxBackends {
		return fmt.Errorf("%d backends in total, at most %d", backends, MaxBackends)
	}
	return nil
}

type vipIdent struct {
	addr  netip.Addr
	port  uint16
	proto string
}

func (v VIP) ident() vipIdent { return vipIdent{v.Address.Unmap(), v.Port, v.Protocol} }

func (v VIP) validate() error {
	if !v.Address.IsValid() {
		return fmt.Errorf("address is not set")
	}
	if v.Protocol != "tcp" && v.Protocol != "udp" {
		return fmt.Errorf("protocol %q: want tcp or udp", v.Protocol)
	}
	switch v.Mode {
	case ModeNAT:
		if !v.SNATAddress.IsValid() {
			return fmt.Errorf("nat mode needs a snat address")
		}
		if v.SNATAddress.Unmap().Is4() != v.Address.Unmap().Is4() {
			return fmt.Errorf("snat address %v and vip %v differ in family", v.SNATAddress, v.Address)
		}
	case ModeDSR:
	default:
		return fmt.Errorf("mode %q: want nat or dsr", v.Mode)
	}
	if v.TableSize > 1<<25 {
		return fmt.Errorf("table size %d too large", v.TableSize)
	}
	names := make(map[string]bool)
	for _, b := range v.Backends {
		if b.Name == "" {
			return fmt.Errorf("backend %v has no name", b.Address)
		}
		if names[b.Name] {
			return fmt.Errorf("backend %q defined twice", b.Name)
		}
		names[b.Name] = true
		if !b.Address.IsValid() {
			return fmt.Errorf("backend %q: address is not set", b.Name)
		}
		v4 := b.Address.Unmap().Is4()
		if v.Mode == ModeNAT && v4 != v.Address.Unmap().Is4() {
			return fmt.Errorf("backend %q: nat mode needs the vip's address family", b.Name)
		}
		if v.Mode == ModeDSR && v4 != v.SNATAddress.Unmap().Is4() {
			return fmt.Errorf("backend %q: tunnel source %v and backend differ in family", b.Name, v.SNATAddress)
		}
	}
	if uint64(len(v.Backends)) >= v.TableSize {
		return fmt.Errorf("table size %d must exceed the %d backends", v.TableSize, len(v.Backends))
	}
	return nil
}
