// SPDX-License-Identifier: GPL-3.0-only

package guards

// Upstream timers: a slow or stuck upstream must not hold a client's
// resources without bound. Counted only (the access log has the request).
const (
	// PerTryTimeout: one try ran past its per_try_timeout.
	PerTryTimeout Name = "per_try_timeout"
	// UpstreamResponseHeaderTimeout: the upstream did not send its
	// response head within timeouts.upstream_response_header.
	UpstreamResponseHeaderTimeout Name = "upstream_response_header_timeout"
)
