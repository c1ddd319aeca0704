// SPDX-License-Identifier: GPL-3.0-only

package guards

import (
	"net/netip"
	"strings"
	"time"
)

// Request rate limiting: token buckets per client IP or per header value,
// for a whole listener (before routing) and per route. Over the rate a
// request gets 429 with Retry-After; the connection goes on.
const (
	// RequestRate: listeners.guards.rate_limit refused a request.
	RequestRate Name = "request_rate"
	// RouteRequestRate: a route's rate_limit refused a request.
	RouteRequestRate Name = "route_request_rate"
)

// RateLimiter is one rate_limit: its buckets and what keys them. Safe for
// use from any goroutine.
type RateLimiter struct {
	b      *Buckets
	header string // "": the client IP; else the lower-case header name
}

// NewRateLimiter returns the limiter of rate_limit = { requests_per_second
// = perSec, burst, key } with room for slots keys; nil when perSec is 0.
// key is "client_ip" or "header:NAME".
func NewRateLimiter(perSec, burst int, key string, slots int) *RateLimiter {
	if perSec <= 0 {
		return nil
	}
	if burst <= 0 {
		burst = perSec
	}
	l := &RateLimiter{b: NewBuckets(perSec, burst, slots)}
	if name, ok := strings.CutPrefix(key, "header:"); ok {
		l.header = strings.ToLower(name)
	}
	return l
}

// Header is the request header the limiter keys on, or "" for the client
// IP.
func (l *RateLimiter) Header() string { return l.header }

// AllowIP takes a token for a client IP.
func (l *RateLimiter) AllowIP(ip netip.Addr, now time.Time) (bool, time.Duration) {
	return l.b.Take(KeyIP(ip), now.UnixNano())
}

// AllowValue takes a token for a header value (nil: the header is absent;
// such requests share one bucket).
func (l *RateLimiter) AllowValue(v []byte, now time.Time) (bool, time.Duration) {
	return l.b.Take(KeyBytes(v), now.UnixNano())
}
