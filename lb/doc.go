// SPDX-License-Identifier: GPL-3.0-only

// Package lb chooses the upstream endpoint for each request: the eleven
// load-balancing algorithms, priority levels with Envoy-style spill-over
// and panic mode, active health checks (http, tcp, grpc), passive outlier
// detection, session affinity, and the retry budget.
//
// A Cluster is built from a Spec (New), started (Start: active health
// checks) and closed (Close). The pick stage calls Cluster.Pick from any
// event loop: Pick reads an immutable pick set through an atomic.Pointer,
// takes no lock and does not allocate. Health transitions build a new pick
// set (copy-on-write) under a mutex that only the slow paths touch.
//
// The forwarder brackets each request with Endpoint.Begin and
// Endpoint.End (which feed least_requests, p2c, ewma and outlier
// detection) and each upstream connection with ConnOpened and ConnClosed
// (least_connections). Retries ask ShouldRetry, then AllowRetry, then Pick
// with the failed endpoint excluded.
//
// BuildMaglevTable is the one Maglev implementation, shared with the XDP
// loader. lb imports no other package of this module.
package lb
