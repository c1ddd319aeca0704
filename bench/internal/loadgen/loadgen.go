// SPDX-License-Identifier: GPL-3.0-only

// Package loadgen drives the load generators (wrk for HTTP/1.1, h2load for
// HTTP/2) and parses what they print into one Result shape.
package loadgen

import "time"

// Result is what a load generator measured.
type Result struct {
	Requests      uint64        // completed requests (any status)
	Duration      time.Duration // as measured by the load generator
	Bytes         uint64        // bytes read
	RPS           float64       // completed requests per second
	P50           time.Duration
	P90           time.Duration
	P99           time.Duration
	P999          time.Duration
	Max           time.Duration
	ConnectErrors uint64
	ReadErrors    uint64
	WriteErrors   uint64
	Timeouts      uint64
	Non2xx        uint64 // responses that were not a success (see each driver)
}

// Errors sums the socket-level errors.
func (r Result) Errors() uint64 {
	return r.ConnectErrors + r.ReadErrors + r.WriteErrors + r.Timeouts
}

// Options is one load run.
type Options struct {
	URL         string
	Duration    time.Duration
	Connections int
	Threads     int
	Headers     []string      // "Name: value"
	Timeout     time.Duration // per-request timeout
	Streams     int           // h2load: max concurrent streams per connection
}
