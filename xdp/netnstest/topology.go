// SPDX-License-Identifier: GPL-3.0-only

//go:build linux

package netnstest

import (
	"fmt"
	"net/netip"
	"testing"
)

// Topology is a one-armed load-balancer lab: a client, a load balancer and
// N backends, each in its own namespace, all on one L2 segment (a bridge in
// a fifth, "switch" namespace) in 198.18.0.0/24:
//
//	client 198.18.0.10 ─┐
//	lb     198.18.0.2  ─┤ (+ SNAT 198.18.0.3) ── br0 (switch ns)
//	b1..bN 198.18.0.11+ ┘
//
// The client routes VIPNet (198.18.100.0/24) via the load balancer.
// Neighbour entries are permanent on every host, so bpf_fib_lookup in the
// load balancer resolves from the first packet. The load balancer forwards
// IPv4; its interface is LBInterface.
type Topology struct {
	Client, LB, Switch *NS
	Backends           []*NS

	ClientAddr, LBAddr, SNATAddr netip.Addr
	BackendAddrs                 []netip.Addr
	VIPNet                       netip.Prefix
	LBInterface                  string
	// LBPeer is the veth end facing LBInterface, in Switch. Native XDP_TX
	// frames from the load balancer reach the bridge only when an XDP
	// program is attached to it (with GRO alone, veth dropped most of them
	// on these machines), so NewTopology attaches an XDP_PASS program there.
	LBPeer string
}

func mac(host byte) string { return fmt.Sprintf("02:00:00:00:00:%02x", host) }

// NewTopology builds the lab with n backends (n <= 100).
func NewTopology(t testing.TB, n int) *Topology {
	t.Helper()
	Skip(t)
	tp := &Topology{
		Client:      New(t, "egc"),
		LB:          New(t, "eglb"),
		Switch:      New(t, "egsw"),
		ClientAddr:  netip.MustParseAddr("198.18.0.10"),
		LBAddr:      netip.MustParseAddr("198.18.0.2"),
		SNATAddr:    netip.MustParseAddr("198.18.0.3"),
		VIPNet:      netip.MustParsePrefix("198.18.100.0/24"),
		LBInterface: "lb0",
		LBPeer:      "sw1",
	}
	sw := tp.Switch
	sw.IP("link", "add", "br0", "type", "bridge", "stp_state", "0", "forward_delay", "0")
	sw.IP("link", "set", "br0", "up")

	type host struct {
		ns   *NS
		dev  string
		addr netip.Addr
		oct  byte
	}
	hosts := []host{{tp.Client, "eth0", tp.ClientAddr, 10}, {tp.LB, tp.LBInterface, tp.LBAddr, 2}}
	for i := 0; i < n; i++ {
		ns := New(t, fmt.Sprintf("egb%d", i+1))
		oct := byte(11 + i)
		addr := netip.AddrFrom4([4]byte{198, 18, 0, oct})
		tp.Backends = append(tp.Backends, ns)
		tp.BackendAddrs = append(tp.BackendAddrs, addr)
		hosts = append(hosts, host{ns, "eth0", addr, oct})
	}
	for i, h := range hosts {
		port := fmt.Sprintf("sw%d", i)
		Veth(t, h.ns, h.dev, mac(h.oct), sw, port, "")
		sw.IP("link", "set", port, "master", "br0")
		h.ns.IP("addr", "add", h.addr.String()+"/24", "dev", h.dev)
	}
	sw.AttachXDPPass(tp.LBPeer)
	tp.LB.IP("addr", "add", tp.SNATAddr.String()+"/32", "dev", tp.LBInterface)
	tp.LB.Sysctl("net.ipv4.ip_forward", "1")
	tp.Client.IP("route", "add", tp.VIPNet.String(), "via", tp.LBAddr.String())

	for _, a := range hosts {
		for _, b := range hosts {
			if a.ns != b.ns {
				a.ns.IP("neigh", "replace", b.addr.String(), "lladdr", mac(b.oct), "dev", a.dev, "nud", "permanent")
			}
		}
		if a.ns != tp.LB {
			a.ns.IP("neigh", "replace", tp.SNATAddr.String(), "lladdr", mac(2), "dev", a.dev, "nud", "permanent")
		}
	}
	return tp
}
