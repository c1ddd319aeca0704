// SPDX-License-Identifier: GPL-3.0-only

// Package xdp is the Go side of the L4 data plane: it loads the XDP load
// balancer compiled from bpf/lb.c, attaches it to one interface (native
// first, generic as fallback), fills its maps from a [Config] (VIPs,
// backends, per-VIP Maglev tables built by lb.BuildMaglevTable, the source
// deny list), swaps a VIP's table atomically on [LB.Update] and
// [LB.SetHealthy], and exports the per-CPU counters as
// expressgateway_xdp_* metric families.
//
// The program is one-armed: packets for a VIP leave through the interface
// they came in on (or another one found by bpf_fib_lookup), either NATed
// (DNAT to the backend, SNAT to VIP.SNATAddress; replies are translated
// back) or IPIP/IP6IP6-encapsulated for direct server return.
//
// All methods of [LB] are safe for concurrent use.
package xdp
