// SPDX-License-Identifier: GPL-3.0-only

package xdp

// Reason is one (action, reason) pair the program counts packets under; the
// index is enum lb_reason in bpf/lb.h.
type Reason struct {
	Action string // "tx", "redirect", "pass" or "drop"
	Name   string // stable short token, a metric label
}

// Reasons lists every counter of the program, indexed like enum lb_reason.
var Reasons = [...]Reason{
	{"tx", "forwarded"},
	{"redirect", "forwarded"},
	{"pass", "short"},
	{"pass", "not_ip"},
	{"pass", "vlan_nested"},
	{"pass", "malformed"},
	{"pass", "not_ours"},
	{"pass", "fragment"},
	{"pass", "l4_unsupported"},
	{"pass", "no_vip_port"},
	{"pass", "no_neigh"},
	{"pass", "forwarding_disabled"},
	{"drop", "truncated"},
	{"drop", "malformed"},
	{"drop", "fragment"},
	{"drop", "denied"},
	{"drop", "rate_limited"},
	{"drop", "no_backend"},
	{"drop", "snat_exhausted"},
	{"drop", "no_route"},
	{"drop", "mtu"},
	{"drop", "internal"},
}

// Key is "action/name", the form Stats.Reasons uses.
func (r Reason) Key() string { return r.Action + "/" + r.Name }
