// SPDX-License-Identifier: GPL-3.0-only

package lb

import (
	"strconv"
	"strings"
	"time"
)

// session_affinity: a client without a valid cookie is placed by smooth
// WRR (picker.go maps the algorithm to newSmoothWRR) and given a cookie
// naming its endpoint; later requests carrying the cookie go to that
// endpoint while it is healthy (or the cluster is in panic mode "all").
// The cookie value is a hash of cluster name and address, so it is the
// same on every node and reveals no address.

// pinned returns the healthy endpoint named by the request's affinity
// cookie, or nil (no cookie, unknown value, unhealthy, or excluded by a
// retry). The map lookup with string(v) does not allocate.
func (c *Cluster) pinned(s *snapshot, ri RequestInfo, exclude *Endpoint) *Endpoint {
	if ri == nil {
		return nil
	}
	v := ri.Cookie(s.cfg.spec.Affinity.CookieName)
	if len(v) == 0 {
		return nil
	}
	e := s.cfg.byCookie[string(v)]
	if e == nil || e == exclude || !(s.panicMode || e.Healthy()) {
		return nil
	}
	return e
}

// affinityCookie is the Set-Cookie value pinning a client to an endpoint,
// precomputed per endpoint so a pick only hands out a string.
func affinityCookie(a AffinitySpec, value string) string {
	var b strings.Builder
	b.WriteString(a.CookieName)
	b.WriteByte('=')
	b.WriteString(value)
	b.WriteString("; Path=")
	b.WriteString(a.Path)
	if a.TTL > 0 {
		b.WriteString("; Max-Age=")
		b.WriteString(strconv.FormatInt(int64((a.TTL+time.Second-1)/time.Second), 10))
	}
	if a.HTTPOnly {
		b.WriteString("; HttpOnly")
	}
	if a.Secure {
		b.WriteString("; Secure")
	}
	return b.String()
}
