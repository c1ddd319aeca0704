// SPDX-License-Identifier: GPL-3.0-only
//
// Helper programs for benchmarks, never attached by the product: a bare
// XDP_TX reflector (the baseline the LB is measured against), a counting
// sink, and an in-kernel sender.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} sink_count SEC(".maps");

// xdp_reflect swaps the Ethernet addresses and sends the frame back.
SEC("xdp")
int xdp_reflect(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	unsigned char tmp[ETH_ALEN];

	if ((void *)(eth + 1) > data_end)
		return XDP_DROP;
	__builtin_memcpy(tmp, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, tmp, ETH_ALEN);
	return XDP_TX;
}

// xdp_sink counts and drops every frame.
SEC("xdp")
int xdp_sink(struct xdp_md *ctx)
{
	__u32 zero = 0;
	__u64 *c = bpf_map_lookup_elem(&sink_count, &zero);
	if (c)
		*c += 1;
	return XDP_DROP;
}

// xdp_tx sends every frame out of the interface it arrived on unchanged:
// with BPF_PROG_TEST_RUN in live-frames mode it is an in-kernel traffic
// generator.
SEC("xdp")
int xdp_tx(struct xdp_md *ctx)
{
	return XDP_TX;
}
