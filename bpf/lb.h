// SPDX-License-Identifier: GPL-3.0-only
//
// Shared layout between bpf/lb.c and the Go loader (package xdp). bpf2go
// turns these structs into Go types (lbVipKey, lbBackend, ...) from BTF.

#ifndef EXPRESSGATEWAY_LB_H
#define EXPRESSGATEWAY_LB_H

#include <linux/types.h>

#define LB_MAX_VIPS 512
#define LB_MAX_BACKENDS 4096
#define LB_MAX_DENY 16384
#define LB_NO_BACKEND 0xffffffff

// addrs value bits
#define ADDR_F_VIP 1
#define ADDR_F_SNAT 2

// vip_info.flags
#define VIP_F_DSR 1

// backend.flags
#define BE_F_DOWN 1

// Reasons: every packet is counted under exactly one. The Go side names
// them (xdp/reasons.go); append only, never renumber.
enum lb_reason {
	R_TX = 0,
	R_REDIRECT,
	R_PASS_SHORT,
	R_PASS_NOT_IP,
	R_PASS_VLAN_NESTED,
	R_PASS_MALFORMED,
	R_PASS_NOT_OURS,
	R_PASS_FRAGMENT,
	R_PASS_L4_UNSUPPORTED,
	R_PASS_NO_VIP_PORT,
	R_PASS_NO_NEIGH,
	R_PASS_FWD_DISABLED,
	R_DROP_TRUNCATED,
	R_DROP_MALFORMED,
	R_DROP_FRAGMENT,
	R_DROP_DENIED,
	R_DROP_RATE_LIMITED,
	R_DROP_NO_BACKEND,
	R_DROP_SNAT_EXHAUSTED,
	R_DROP_NO_ROUTE,
	R_DROP_MTU,
	R_DROP_INTERNAL,
	R_MAX,
};

struct lb_settings {
	__u64 udp_timeout_ns;
	__u64 new_flows_per_sec; // per CPU; 0 = no cap
	__u32 gen;               // bumped on every config change: flows revalidate once
	__u32 pad;
};

struct addr_key {
	__u32 addr[4]; // network order; IPv4 in addr[0]
	__u32 family;  // AF_INET or AF_INET6
};

struct vip_key {
	__u32 addr[4];
	__u16 port; // network order; 0 = all ports
	__u8 proto;
	__u8 family;
};

struct vip_info {
	__u32 id;      // index into maglev and vip_stats
	__u32 flags;   // VIP_F_*
	__u32 seed;    // flow hash seed
	__u32 snat[4]; // NAT: source address towards backends; DSR: outer source
};

struct backend {
	__u32 addr[4];
	__u16 port; // network order; 0 = keep the client's destination port
	__u8 family;
	__u8 flags; // BE_F_*
};

struct flow_key {
	__u32 src[4];
	__u32 dst[4];
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 family;
	__u8 pad[2];
};

// A flow's last bpf_fib_lookup result, reused for LB_FIB_CACHE_NS: the
// lookup is the single most expensive step of the established-flow path.
struct fib_cache {
	__u64 at_ns; // 0 = empty
	__u32 ifindex;
	__u8 dmac[6];
	__u8 smac[6];
	__u8 pad[6];
};

#define LB_FIB_CACHE_NS 1000000000ULL

// Flow table entry kinds.
#define FLOW_FWD 1   // client -> VIP, picked a backend
#define FLOW_REPLY 2 // backend -> SNAT address (NAT mode), back to the client

// Flow table entry modes (FLOW_FWD).
#define FLOW_NAT 0
#define FLOW_DSR4 1 // IPIP / IPv6-in-IPv4 to an IPv4 backend
#define FLOW_DSR6 2 // IP6IP6 / IPv4-in-IPv6 to an IPv6 backend

// One entry per direction of a flow, keyed by the 5-tuple as it arrives.
// It carries the complete translation so an established packet needs one
// hash lookup: NAT forward rewrites to (nsrc:nsport -> ndst:ndport) =
// (SNAT:port -> backend:port); reply rewrites to (VIP:port -> client:port);
// DSR encapsulates from nsrc to ndst.
struct flow_entry {
	__u64 seen_ns; // last refresh (UDP ageing)
	__u32 backend;
	__u32 vip_id;
	__u32 gen; // lb_settings.gen when last validated against the VIP map
	__u8 kind; // FLOW_*
	__u8 mode; // FLOW_NAT / FLOW_DSR4 / FLOW_DSR6
	__u16 pad;
	__u32 nsrc[4];
	__u32 ndst[4];
	__u16 nsport;
	__u16 ndport;
	__u32 pad2;
	struct fib_cache fib;
};

struct lpm_v4_key {
	__u32 prefixlen;
	__u8 addr[4];
};

struct lpm_v6_key {
	__u32 prefixlen;
	__u8 addr[16];
};

struct rate_state {
	__u64 window_start;
	__u64 count;
};

struct vip_stats {
	__u64 packets;
	__u64 bytes;
	__u64 new_flows;
	__u64 reply_packets;
	__u64 reply_bytes;
};

struct backend_stats {
	__u64 packets;
	__u64 bytes;
	__u64 new_flows;
};

#endif
