// SPDX-License-Identifier: GPL-3.0-only

package xdp

// Stats is a snapshot of the program's per-CPU counters summed over CPUs.
type Stats struct {
	// Reasons counts packets by Reason.Key() ("drop/denied", "tx/forwarded", ...).
	Reasons map[string]uint64
	// VIPs is keyed by VIP name.
	VIPs map[string]VIPStats
}

// VIPStats counts one VIP's traffic.
type VIPStats struct {
	Packets, Bytes, NewFlows uint64                  // client -> backend
	ReplyPackets, ReplyBytes uint64                  // backend -> client (NAT mode)
	Backends                 map[string]BackendStats // keyed by backend name
}

// BackendStats counts the client -> backend traffic sent to one backend.
type BackendStats struct {
	Packets, Bytes, NewFlows uint64
}

// MetricsHelp returns the HELP text of every expressgateway_xdp_* family,
// keyed by family name. Each is the first sentence of the family's row in
// METRICS.md (a test in cmd/expressgateway keeps the two equal).
func MetricsHelp() map[string]string {
	return map[string]string{
		"expressgateway_xdp_packets_total":           "packets the XDP program saw, each counted under exactly one action and reason.",
		"expressgateway_xdp_vip_packets_total":       "client → backend packets forwarded for the VIP.",
		"expressgateway_xdp_vip_bytes_total":         "bytes of the client → backend packets forwarded for the VIP (Ethernet frames as received).",
		"expressgateway_xdp_vip_new_flows_total":     "flows that picked a backend (new flow, SYN, or re-pick after the backend went down).",
		"expressgateway_xdp_vip_reply_packets_total": "backend → client packets translated back (NAT mode).",
		"expressgateway_xdp_vip_reply_bytes_total":   "bytes of the backend → client packets translated back (NAT mode).",
		"expressgateway_xdp_backend_packets_total":   "client → backend packets sent to the backend.",
		"expressgateway_xdp_backend_bytes_total":     "bytes of the client → backend packets sent to the backend.",
		"expressgateway_xdp_backend_new_flows_total": "flows that picked the backend.",
		"expressgateway_xdp_backend_healthy":         "1 if the backend takes new flows, 0 if marked unhealthy.",
		"expressgateway_xdp_attached":                "1 while attached in mode (native or generic), 0 after Close.",
		"expressgateway_xdp_updates_total":           "LB.Update calls, by result (ok or error).",
		"expressgateway_xdp_stats_errors_total":      "failed reads of the BPF counters.",
	}
}
