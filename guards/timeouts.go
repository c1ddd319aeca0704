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
	// DeadlineExceeded: an exchange ran past its deadline (the route's
	// timeout, or a gRPC call's grpc-timeout): 504 or DEADLINE_EXCEEDED.
	DeadlineExceeded Name = "deadline_exceeded"
	// TunnelWaitTimeout: an upstream did not answer a WebSocket upgrade
	// within timeouts.body_idle.
	TunnelWaitTimeout Name = "tunnel_wait_timeout"
)
