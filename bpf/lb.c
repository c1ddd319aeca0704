// SPDX-License-Identifier: GPL-3.0-only
//
// ExpressGateway XDP L4 load balancer.
//
// One program, attached to one interface ("one-armed"): packets to a VIP are
// sent to a backend picked from the VIP's Maglev table, either NATed (DNAT to
// the backend, SNAT to a load-balancer address; replies come back through here
// and are translated back) or encapsulated (DSR: IPIP / IP6IP6, the backend
// answers the client directly). Everything that is not ours goes to the kernel
// (XDP_PASS). Every packet is counted under exactly one (action, reason).
//
// The Go side (package xdp) owns every map; keep the structs below in sync
// with it (bpf2go generates the Go types from BTF, so a layout change shows
// up as a compile error there, not as silent corruption).

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "lb.h"

// The kernel only lets GPL-compatible programs call bpf_fib_lookup; the
// project is GPL-3.0-only, which the kernel spells "GPL".
char LICENSE[] SEC("license") = "GPL";

#ifndef AF_INET
#define AF_INET 2
#endif
#ifndef AF_INET6
#define AF_INET6 10
#endif

#define ETH_P_8021Q_BE bpf_htons(0x8100)
#define ETH_P_8021AD_BE bpf_htons(0x88A8)
#define ETH_P_IP_BE bpf_htons(0x0800)
#define ETH_P_IPV6_BE bpf_htons(0x86DD)
#define IPPROTO_FRAGMENT_HDR 44

// ---- maps ----------------------------------------------------------------

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lb_settings);
} settings SEC(".maps");

// Destination addresses we care about: VIP addresses (ADDR_F_VIP) and SNAT
// addresses (ADDR_F_SNAT). One lookup keeps non-LB traffic cheap.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LB_MAX_VIPS * 2);
	__type(key, struct addr_key);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} addrs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LB_MAX_VIPS);
	__type(key, struct vip_key);
	__type(value, struct vip_info);
} vips SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LB_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct backend);
} backends SEC(".maps");

// Per-VIP Maglev table: element 0 is the table size, elements 1..size the
// backend index owning each slot. The outer slot is replaced atomically by
// the loader, so the size and the slots always come from the same table.
struct maglev_inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u32);
	__uint(map_flags, BPF_F_INNER_MAP);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, LB_MAX_VIPS);
	__type(key, __u32);
	__array(values, struct maglev_inner);
} maglev SEC(".maps");

// The flow table (connection tracking and reverse NAT): 5-tuple -> struct
// flow_entry. An LRU with per-CPU LRU lists (no common LRU lock) but one
// shared table, so a flow whose packets land on another CPU still finds its
// entry, and replies (which the NIC may steer anywhere) find theirs. The
// loader sizes it.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct flow_key);
	__type(value, struct flow_entry);
	__uint(map_flags, BPF_F_NO_COMMON_LRU);
} flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, LB_MAX_DENY);
	__type(key, struct lpm_v4_key);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} deny_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, LB_MAX_DENY);
	__type(key, struct lpm_v6_key);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} deny_v6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct rate_state);
} rate SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LB_MAX_VIPS);
	__type(key, __u32);
	__type(value, struct vip_stats);
} vip_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LB_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct backend_stats);
} backend_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, R_MAX);
	__type(key, __u32);
	__type(value, __u64);
} reasons SEC(".maps");

// ---- helpers -------------------------------------------------------------

struct pkt {
	struct flow_key flow; // src/dst/ports/proto/family as seen on the wire
	__u32 l3_off;         // offset of the IP header
	__u32 l4_off;         // offset of the L4 header
	__u32 l3_len;         // IP total length (header + payload)
	__u32 tos;
	__u8 tcp_flags;
	__u8 vlan;
};

static __always_inline int count(__u32 reason, int action)
{
	__u64 *c = bpf_map_lookup_elem(&reasons, &reason);
	if (c)
		*c += 1;
	return action;
}

#define PASS(r) count(r, XDP_PASS)
#define DROP(r) count(r, XDP_DROP)

static __always_inline __u16 csum_fold(__u32 s)
{
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)~s;
}

// Incremental update (RFC 1624, eqn. 3) accumulators: start with ~HC, add
// ~m and m' for each changed 16-bit word, fold. Works on raw (network order)
// words because the ones' complement sum is byte-order independent.
static __always_inline __u32 csum_acc32(__u32 acc, __u32 from, __u32 to)
{
	acc += (~from & 0xffff) + (~from >> 16);
	acc += (to & 0xffff) + (to >> 16);
	return acc;
}

static __always_inline __u32 csum_acc16(__u32 acc, __u16 from, __u16 to)
{
	return acc + (__u16)~from + to;
}

static __always_inline __u32 csum_acc_addr(__u32 acc, const __u32 *from, const __u32 *to, int v6)
{
	acc = csum_acc32(acc, from[0], to[0]);
	if (v6) {
		acc = csum_acc32(acc, from[1], to[1]);
		acc = csum_acc32(acc, from[2], to[2]);
		acc = csum_acc32(acc, from[3], to[3]);
	}
	return acc;
}

static __always_inline __u32 rotl32(__u32 x, int r) { return (x << r) | (x >> (32 - r)); }

static __always_inline __u32 mix(__u32 h, __u32 k)
{
	k *= 0xcc9e2d51;
	k = rotl32(k, 15);
	k *= 0x1b873593;
	h ^= k;
	h = rotl32(h, 13);
	return h * 5 + 0xe6546b64;
}

// flow_hash is murmur3-shaped over the 5-tuple and the VIP's seed; it
// picks the Maglev slot of a new flow.
static __always_inline __u32 flow_hash(const struct flow_key *f, __u32 seed)
{
	__u32 h = seed;
	h = mix(h, f->src[0]);
	h = mix(h, f->src[1]);
	h = mix(h, f->src[2]);
	h = mix(h, f->src[3]);
	h = mix(h, f->dst[0]);
	h = mix(h, f->dst[1]);
	h = mix(h, f->dst[2]);
	h = mix(h, f->dst[3]);
	h = mix(h, ((__u32)f->sport << 16) | f->dport);
	h = mix(h, f->proto);
	h ^= 40;
	h ^= h >> 16;
	h *= 0x85ebca6b;
	h ^= h >> 13;
	h *= 0xc2b2ae35;
	h ^= h >> 16;
	return h;
}

static __always_inline void copy_addr(__u32 *dst, const __u32 *src)
{
	dst[0] = src[0];
	dst[1] = src[1];
	dst[2] = src[2];
	dst[3] = src[3];
}

// ---- parsing -------------------------------------------------------------

static __always_inline __u32 addr_kind(const struct pkt *p)
{
	struct addr_key ak = {};
	copy_addr(ak.addr, p->flow.dst);
	ak.family = p->flow.family;
	__u32 *k = bpf_map_lookup_elem(&addrs, &ak);
	return k ? *k : 0;
}

// bad counts a packet we cannot or will not handle once its destination is
// known: for a VIP we drop it (we own that address), for a SNAT address
// that may also be the host's own we leave it to the kernel, anything else
// is not ours.
static __always_inline int bad(const struct pkt *p, __u32 drop_reason, __u32 pass_reason)
{
	__u32 k = addr_kind(p);
	if (!k)
		return PASS(R_PASS_NOT_OURS);
	return (k & ADDR_F_VIP) ? DROP(drop_reason) : PASS(pass_reason);
}

// parse fills p from the frame. It returns -1 when p holds a well-formed
// TCP or UDP packet, or else the verdict, already counted.
static __always_inline int parse(struct xdp_md *ctx, struct pkt *p)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u32 off = sizeof(*eth);

	if ((void *)(eth + 1) > data_end)
		return PASS(R_PASS_SHORT);
	__u16 proto = eth->h_proto;
	if (proto == ETH_P_8021Q_BE || proto == ETH_P_8021AD_BE) {
		__be16 *inner = data + off + 2;
		if ((void *)(inner + 1) > data_end)
			return PASS(R_PASS_SHORT);
		proto = *inner;
		off += 4;
		p->vlan = 1;
		if (proto == ETH_P_8021Q_BE || proto == ETH_P_8021AD_BE)
			return PASS(R_PASS_VLAN_NESTED);
	}
	p->l3_off = off;

	__u32 avail = data_end - data;
	int frag = 0;
	if (proto == ETH_P_IP_BE) {
		struct iphdr *ip = data + off;
		if ((void *)(ip + 1) > data_end)
			return PASS(R_PASS_SHORT);
		if (ip->version != 4 || ip->ihl < 5)
			return PASS(R_PASS_MALFORMED);
		p->flow.family = AF_INET;
		p->flow.proto = ip->protocol;
		p->flow.src[0] = ip->saddr;
		p->flow.dst[0] = ip->daddr;
		p->tos = ip->tos;
		p->l3_len = bpf_ntohs(ip->tot_len);
		p->l4_off = off + ip->ihl * 4;
		frag = ip->frag_off & bpf_htons(0x3fff);
	} else if (proto == ETH_P_IPV6_BE) {
		struct ipv6hdr *ip6 = data + off;
		if ((void *)(ip6 + 1) > data_end)
			return PASS(R_PASS_SHORT);
		if (ip6->version != 6)
			return PASS(R_PASS_MALFORMED);
		p->flow.family = AF_INET6;
		p->flow.proto = ip6->nexthdr;
		__builtin_memcpy(p->flow.src, &ip6->saddr, 16);
		__builtin_memcpy(p->flow.dst, &ip6->daddr, 16);
		p->tos = (ip6->priority << 4) | (ip6->flow_lbl[0] >> 4);
		p->l3_len = bpf_ntohs(ip6->payload_len) + sizeof(*ip6);
		p->l4_off = off + sizeof(*ip6);
		frag = ip6->nexthdr == IPPROTO_FRAGMENT_HDR;
	} else {
		return PASS(R_PASS_NOT_IP);
	}

	// From here on the destination is known.
	if (p->l3_len < p->l4_off - off || p->l3_len > avail - off)
		return bad(p, R_DROP_TRUNCATED, R_PASS_MALFORMED);
	if (frag)
		return bad(p, R_DROP_FRAGMENT, R_PASS_FRAGMENT);

	__u32 l4_len = p->l3_len - (p->l4_off - off);
	if (p->flow.proto == IPPROTO_TCP) {
		struct tcphdr *th = data + (p->l4_off & 0xff);
		if ((void *)(th + 1) > data_end || l4_len < sizeof(*th))
			return bad(p, R_DROP_TRUNCATED, R_PASS_MALFORMED);
		if (th->doff < 5 || th->doff * 4 > l4_len)
			return bad(p, R_DROP_MALFORMED, R_PASS_MALFORMED);
		p->flow.sport = th->source;
		p->flow.dport = th->dest;
		p->tcp_flags = ((__u8 *)th)[13];
	} else if (p->flow.proto == IPPROTO_UDP) {
		struct udphdr *uh = data + (p->l4_off & 0xff);
		if ((void *)(uh + 1) > data_end || l4_len < sizeof(*uh))
			return bad(p, R_DROP_TRUNCATED, R_PASS_MALFORMED);
		p->flow.sport = uh->source;
		p->flow.dport = uh->dest;
	} else {
		return addr_kind(p) ? PASS(R_PASS_L4_UNSUPPORTED) : PASS(R_PASS_NOT_OURS);
	}
	return -1;
}

// ---- forwarding ------------------------------------------------------------

#define TCP_FLAG_FIN 0x01
#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_RST 0x04
#define TCP_FLAG_ACK 0x10

static __always_inline int send(struct xdp_md *ctx, struct ethhdr *eth, __u32 ifindex, const __u8 *dmac,
				const __u8 *smac, int vlan)
{
	__builtin_memcpy(eth->h_dest, dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, smac, ETH_ALEN);
	// A VLAN-tagged frame goes back out the interface and VLAN it came in
	// on (one-armed): XDP cannot transmit on a VLAN sub-device.
	if (vlan || ifindex == ctx->ingress_ifindex)
		return count(R_TX, XDP_TX);
	long act = bpf_redirect(ifindex, 0);
	return count(act == XDP_REDIRECT ? R_REDIRECT : R_DROP_NO_ROUTE, act);
}

// fib_forward resolves the next hop for the (already rewritten) packet whose
// IP header (IPv6 if v6) starts at l3_off and sends it out. With a cache
// (the flow's entry in the flow table) a result younger than
// LB_FIB_CACHE_NS is reused instead of calling bpf_fib_lookup.
static __always_inline int fib_forward(struct xdp_md *ctx, __u32 l3_off, int vlan, int v6, struct fib_cache *cache,
				       __u64 now)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct bpf_fib_lookup fib = {};
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return DROP(R_DROP_INTERNAL);
	if (cache && cache->at_ns && now - cache->at_ns < LB_FIB_CACHE_NS)
		return send(ctx, eth, cache->ifindex, cache->dmac, cache->smac, vlan);

	l3_off &= 0xff;
	fib.ifindex = ctx->ingress_ifindex;
	if (!v6) {
		struct iphdr *ip = data + l3_off;
		if ((void *)(ip + 1) > data_end)
			return DROP(R_DROP_INTERNAL);
		fib.family = AF_INET;
		fib.tos = ip->tos;
		fib.l4_protocol = ip->protocol;
		fib.tot_len = bpf_ntohs(ip->tot_len);
		fib.ipv4_src = ip->saddr;
		fib.ipv4_dst = ip->daddr;
	} else {
		struct ipv6hdr *ip6 = data + l3_off;
		if ((void *)(ip6 + 1) > data_end)
			return DROP(R_DROP_INTERNAL);
		fib.family = AF_INET6;
		fib.l4_protocol = ip6->nexthdr;
		fib.tot_len = bpf_ntohs(ip6->payload_len) + sizeof(*ip6);
		__builtin_memcpy(fib.ipv6_src, &ip6->saddr, 16);
		__builtin_memcpy(fib.ipv6_dst, &ip6->daddr, 16);
	}

	long rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), 0);
	switch (rc) {
	case BPF_FIB_LKUP_RET_SUCCESS:
		break;
	case BPF_FIB_LKUP_RET_NO_NEIGH:
		return PASS(R_PASS_NO_NEIGH);
	case BPF_FIB_LKUP_RET_FWD_DISABLED:
		return PASS(R_PASS_FWD_DISABLED);
	case BPF_FIB_LKUP_RET_FRAG_NEEDED:
		return DROP(R_DROP_MTU);
	default:
		return DROP(R_DROP_NO_ROUTE);
	}
	if (cache && now) {
		cache->ifindex = fib.ifindex;
		__builtin_memcpy(cache->dmac, fib.dmac, ETH_ALEN);
		__builtin_memcpy(cache->smac, fib.smac, ETH_ALEN);
		cache->at_ns = now;
	}
	return send(ctx, eth, fib.ifindex, fib.dmac, fib.smac, vlan);
}

// nat_rewrite replaces the addresses and ports of the packet in place and
// fixes the IPv4 header and L4 checksums incrementally.
static __always_inline int nat_rewrite(struct xdp_md *ctx, struct pkt *p, const __u32 *nsrc, __u16 nsport,
				       const __u32 *ndst, __u16 ndport)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 l3 = p->l3_off & 0xff;
	__u32 l4 = p->l4_off & 0xff;
	int v6 = p->flow.family == AF_INET6;
	__u16 *csum;

	if (p->flow.proto == IPPROTO_TCP) {
		struct tcphdr *th = data + l4;
		if ((void *)(th + 1) > data_end)
			return -1;
		csum = &th->check;
		th->source = nsport;
		th->dest = ndport;
	} else {
		struct udphdr *uh = data + l4;
		if ((void *)(uh + 1) > data_end)
			return -1;
		csum = &uh->check;
		uh->source = nsport;
		uh->dest = ndport;
	}
	// L4 checksum covers the pseudo-header addresses and the ports. IPv4
	// UDP may carry no checksum (0): leave it so.
	if (!(p->flow.proto == IPPROTO_UDP && !v6 && *csum == 0)) {
		__u32 acc = (__u16)~*csum;
		acc = csum_acc_addr(acc, p->flow.src, nsrc, v6);
		acc = csum_acc_addr(acc, p->flow.dst, ndst, v6);
		acc = csum_acc16(acc, p->flow.sport, nsport);
		acc = csum_acc16(acc, p->flow.dport, ndport);
		__u16 c = csum_fold(acc);
		if (c == 0 && p->flow.proto == IPPROTO_UDP)
			c = 0xffff;
		*csum = c;
	}

	if (!v6) {
		struct iphdr *ip = data + l3;
		if ((void *)(ip + 1) > data_end)
			return -1;
		__u32 acc = (__u16)~ip->check;
		acc = csum_acc32(acc, ip->saddr, nsrc[0]);
		acc = csum_acc32(acc, ip->daddr, ndst[0]);
		ip->check = csum_fold(acc);
		ip->saddr = nsrc[0];
		ip->daddr = ndst[0];
	} else {
		struct ipv6hdr *ip6 = data + l3;
		if ((void *)(ip6 + 1) > data_end)
			return -1;
		__builtin_memcpy(&ip6->saddr, nsrc, 16);
		__builtin_memcpy(&ip6->daddr, ndst, 16);
	}
	return 0;
}

// encap prepends an outer IPv4 or IPv6 header (IPIP, IP6IP6, or across
// families) addressed from src to the backend, keeping the L2 header.
static __always_inline int encap(struct xdp_md *ctx, struct pkt *p, int outer_v6, const __u32 *src, const __u32 *dst)
{
	int hdr = outer_v6 ? (int)sizeof(struct ipv6hdr) : (int)sizeof(struct iphdr);
	__u32 l2 = p->l3_off & 0xff;
	__u32 inner_len = p->l3_len;
	__u8 inner_proto = p->flow.family == AF_INET6 ? IPPROTO_IPV6 : IPPROTO_IPIP;

	if (bpf_xdp_adjust_head(ctx, -hdr))
		return -1;
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;

	// Move the L2 header (14 or 18 bytes) to the new front.
	if (l2 == 18) {
		if (data + hdr + 18 > data_end)
			return -1;
		__builtin_memmove(data, data + hdr, 18);
		((__be16 *)data)[8] = outer_v6 ? ETH_P_IPV6_BE : ETH_P_IP_BE;
	} else {
		if (data + hdr + 14 > data_end)
			return -1;
		__builtin_memmove(data, data + hdr, 14);
		((__be16 *)data)[6] = outer_v6 ? ETH_P_IPV6_BE : ETH_P_IP_BE;
	}

	if (outer_v6) {
		struct ipv6hdr *ip6 = data + l2;
		if ((void *)(ip6 + 1) > data_end)
			return -1;
		__u32 *w = (__u32 *)ip6;
		// version 6, traffic class from the inner packet, flow label 0
		w[0] = bpf_htonl(0x60000000 | ((p->tos & 0xff) << 20));
		ip6->payload_len = bpf_htons(inner_len);
		ip6->nexthdr = inner_proto;
		ip6->hop_limit = 64;
		__builtin_memcpy(&ip6->saddr, src, 16);
		__builtin_memcpy(&ip6->daddr, dst, 16);
	} else {
		struct iphdr *ip = data + l2;
		if ((void *)(ip + 1) > data_end)
			return -1;
		ip->version = 4;
		ip->ihl = 5;
		ip->tos = p->tos;
		ip->tot_len = bpf_htons(inner_len + sizeof(*ip));
		ip->id = 0;
		ip->frag_off = 0;
		ip->ttl = 64;
		ip->protocol = inner_proto;
		ip->check = 0;
		ip->saddr = src[0];
		ip->daddr = dst[0];
		__u16 *w = (__u16 *)ip;
		__u32 s = 0;
#pragma unroll
		for (int i = 0; i < 10; i++)
			s += w[i];
		ip->check = csum_fold(s);
	}
	return 0;
}

// new_flow_allowed applies the per-CPU new-flow rate cap (flows per second).
static __always_inline int new_flow_allowed(const struct lb_settings *s, __u64 now)
{
	if (!s->new_flows_per_sec)
		return 1;
	__u32 zero = 0;
	struct rate_state *r = bpf_map_lookup_elem(&rate, &zero);
	if (!r)
		return 1;
	if (now - r->window_start >= 1000000000ULL) {
		r->window_start = now;
		r->count = 0;
	}
	if (r->count >= s->new_flows_per_sec)
		return 0;
	r->count++;
	return 1;
}

static __always_inline int denied(struct pkt *p)
{
	if (p->flow.family == AF_INET) {
		struct lpm_v4_key k = {.prefixlen = 32};
		__builtin_memcpy(k.addr, p->flow.src, 4);
		return bpf_map_lookup_elem(&deny_v4, &k) != 0;
	}
	struct lpm_v6_key k6 = {.prefixlen = 128};
	__builtin_memcpy(k6.addr, p->flow.src, 16);
	return bpf_map_lookup_elem(&deny_v6, &k6) != 0;
}

// snat_port reserves a reply entry for a new NAT flow and returns the SNAT
// source port, or 0 when every candidate is taken by another flow. The
// client's own port is tried first, then hashed alternatives.
static __always_inline __u16 snat_port(struct pkt *p, const struct vip_info *vi, const struct backend *be,
				       __u16 bport, __u32 bidx, __u32 hash, __u32 gen, __u64 now)
{
	struct flow_key rk = {};
	struct flow_entry rv = {};

	copy_addr(rk.src, be->addr);
	copy_addr(rk.dst, vi->snat);
	rk.sport = bport;
	rk.proto = p->flow.proto;
	rk.family = p->flow.family;

	rv.kind = FLOW_REPLY;
	rv.seen_ns = now;
	rv.gen = gen;
	rv.vip_id = vi->id;
	rv.backend = bidx;
	copy_addr(rv.nsrc, p->flow.dst);
	copy_addr(rv.ndst, p->flow.src);
	rv.nsport = p->flow.dport;
	rv.ndport = p->flow.sport;

	__u16 cand = p->flow.sport;
#pragma unroll
	for (int i = 0; i < 4; i++) {
		rk.dport = cand;
		struct flow_entry *old = bpf_map_lookup_elem(&flows, &rk);
		if (!old || (old->kind == FLOW_REPLY && old->vip_id == rv.vip_id && old->ndport == rv.ndport &&
			     old->ndst[0] == rv.ndst[0] && old->ndst[1] == rv.ndst[1] && old->ndst[2] == rv.ndst[2] &&
			     old->ndst[3] == rv.ndst[3])) {
			if (bpf_map_update_elem(&flows, &rk, &rv, BPF_ANY) == 0)
				return cand;
		}
		hash = hash * 2654435761u + 0x9e3779b9;
		cand = bpf_htons(1024 + (hash >> 16) % (65536 - 1024));
	}
	return 0;
}

// forward sends a client packet of an established or new flow to its
// backend as the entry says. cache is the entry's fib cache (none for a
// flow created by this very packet).
static __always_inline int forward(struct xdp_md *ctx, struct pkt *p, const struct flow_entry *fe,
				   struct fib_cache *cache, __u64 now, int fresh)
{
	__u64 bytes = ctx->data_end - ctx->data;
	struct vip_stats *vs = bpf_map_lookup_elem(&vip_stats, &fe->vip_id);
	if (vs) {
		vs->packets++;
		vs->bytes += bytes;
		vs->new_flows += fresh;
	}
	struct backend_stats *bs = bpf_map_lookup_elem(&backend_stats, &fe->backend);
	if (bs) {
		bs->packets++;
		bs->bytes += bytes;
		bs->new_flows += fresh;
	}
	if (fe->mode != FLOW_NAT) {
		int outer_v6 = fe->mode == FLOW_DSR6;
		if (encap(ctx, p, outer_v6, fe->nsrc, fe->ndst))
			return DROP(R_DROP_INTERNAL);
		return fib_forward(ctx, p->l3_off, p->vlan, outer_v6, cache, now);
	}
	if (nat_rewrite(ctx, p, fe->nsrc, fe->nsport, fe->ndst, fe->ndport))
		return DROP(R_DROP_INTERNAL);
	return fib_forward(ctx, p->l3_off, p->vlan, p->flow.family == AF_INET6, cache, now);
}

static __always_inline int reply(struct xdp_md *ctx, struct pkt *p, struct flow_entry *fe, __u64 now)
{
	struct vip_stats *vs = bpf_map_lookup_elem(&vip_stats, &fe->vip_id);
	if (vs) {
		vs->reply_packets++;
		vs->reply_bytes += ctx->data_end - ctx->data;
	}
	if (nat_rewrite(ctx, p, fe->nsrc, fe->nsport, fe->ndst, fe->ndport))
		return DROP(R_DROP_INTERNAL);
	return fib_forward(ctx, p->l3_off, p->vlan, p->flow.family == AF_INET6, &fe->fib, now);
}

// usable reports whether an established forward entry may keep its
// backend: the backend is up and a UDP flow has not idled out.
static __always_inline int usable(const struct pkt *p, struct flow_entry *fe, const struct lb_settings *s, __u64 now)
{
	__u32 bidx = fe->backend;
	struct backend *be = bpf_map_lookup_elem(&backends, &bidx);
	if (!be || (be->flags & BE_F_DOWN))
		return 0;
	if (p->flow.proto == IPPROTO_UDP) {
		if (now - fe->seen_ns > s->udp_timeout_ns)
			return 0;
		if (now - fe->seen_ns > 1000000000ULL)
			fe->seen_ns = now;
	}
	return 1;
}

SEC("xdp")
int xdp_lb(struct xdp_md *ctx)
{
	struct pkt p = {};

	int verdict = parse(ctx, &p);
	if (verdict >= 0)
		return verdict;

	__u32 zero = 0;
	struct lb_settings *s = bpf_map_lookup_elem(&settings, &zero);
	if (!s)
		return DROP(R_DROP_INTERNAL);
	int syn = p.flow.proto == IPPROTO_TCP && (p.tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) == TCP_FLAG_SYN;
	int rst = p.flow.proto == IPPROTO_TCP && (p.tcp_flags & TCP_FLAG_RST);
	__u64 now = bpf_ktime_get_coarse_ns();

	// Fast path: one lookup for an established flow in either direction.
	struct flow_entry *fe = bpf_map_lookup_elem(&flows, &p.flow);
	if (fe) {
		if (fe->kind == FLOW_REPLY)
			return reply(ctx, &p, fe, now);
		if (!syn && fe->gen == s->gen && usable(&p, fe, s, now))
			return forward(ctx, &p, fe, &fe->fib, now, 0);
	}

	// Slow path: is it for a VIP at all, and may it come in?
	if (!(addr_kind(&p) & ADDR_F_VIP))
		return PASS(R_PASS_NOT_OURS);
	if (denied(&p))
		return DROP(R_DROP_DENIED);
	struct vip_key vk = {};
	copy_addr(vk.addr, p.flow.dst);
	vk.port = p.flow.dport;
	vk.proto = p.flow.proto;
	vk.family = p.flow.family;
	struct vip_info *vi = bpf_map_lookup_elem(&vips, &vk);
	if (!vi) {
		vk.port = 0;
		vi = bpf_map_lookup_elem(&vips, &vk);
		if (!vi)
			return PASS(R_PASS_NO_VIP_PORT);
	}

	// The configuration changed since the entry was made: the flow keeps
	// its backend if its VIP is still the same one.
	if (fe && fe->kind == FLOW_FWD && !syn && fe->vip_id == vi->id && usable(&p, fe, s, now)) {
		fe->gen = s->gen;
		return forward(ctx, &p, fe, &fe->fib, now, 0);
	}

	// A new flow.
	if (!new_flow_allowed(s, now))
		return DROP(R_DROP_RATE_LIMITED);
	__u32 vid = vi->id;
	__u32 *table = bpf_map_lookup_elem(&maglev, &vid);
	if (!table)
		return DROP(R_DROP_NO_BACKEND);
	__u32 *sizep = bpf_map_lookup_elem(table, &zero);
	if (!sizep || !*sizep)
		return DROP(R_DROP_NO_BACKEND);
	__u32 hash = flow_hash(&p.flow, vi->seed);
	__u32 slot = hash % *sizep + 1;
	__u32 *bp = bpf_map_lookup_elem(table, &slot);
	if (!bp || *bp == LB_NO_BACKEND)
		return DROP(R_DROP_NO_BACKEND);
	__u32 bidx = *bp;
	struct backend *be = bpf_map_lookup_elem(&backends, &bidx);
	if (!be || (be->flags & BE_F_DOWN))
		return DROP(R_DROP_NO_BACKEND);

	struct flow_entry ne = {
		.seen_ns = now,
		.backend = bidx,
		.vip_id = vi->id,
		.gen = s->gen,
		.kind = FLOW_FWD,
	};
	copy_addr(ne.nsrc, vi->snat);
	copy_addr(ne.ndst, be->addr);
	if (vi->flags & VIP_F_DSR) {
		ne.mode = be->family == AF_INET6 ? FLOW_DSR6 : FLOW_DSR4;
	} else {
		ne.ndport = be->port ? be->port : p.flow.dport;
		ne.nsport = snat_port(&p, vi, be, ne.ndport, bidx, hash, s->gen, now);
		if (!ne.nsport)
			return DROP(R_DROP_SNAT_EXHAUSTED);
	}
	if (!rst)
		bpf_map_update_elem(&flows, &p.flow, &ne, BPF_ANY);
	return forward(ctx, &p, &ne, 0, now, 1);
}
