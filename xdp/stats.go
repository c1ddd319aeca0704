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
