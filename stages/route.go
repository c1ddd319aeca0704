// SPDX-License-Identifier: GPL-3.0-only

package stages

import (
	"bytes"
	"strings"
	"time"

	"github.com/expressgateway/expressgateway/guards"
	"github.com/expressgateway/expressgateway/lb"
)

// Cluster is the runtime view of a configured cluster that the pick and
// forward stages need.
type Cluster struct {
	Name  string
	Index int // dense index, for per-loop tables (upstream pools)
	LB    *lb.Cluster
	// H2 says the endpoints speak HTTP/2 with prior knowledge (protocol =
	// "h2c") or over TLS ("h2"); H3 that they speak HTTP/3 over QUIC
	// ("h3"); MaxStreams caps the streams of one upstream connection.
	H2         bool
	H3         bool
	MaxStreams int
}

// Listener is the compiled, immutable routing view of one listener.
type Listener struct {
	Name   string
	Router *Router
	// MaxRequestsPerConn closes a connection after that many requests (0 = no cap).
	MaxRequestsPerConn int
	// Rate is listeners.guards.rate_limit (nil: none), checked by Guard.
	Rate *guards.RateLimiter
}

// RouteSpec describes one route. Empty fields match everything.
type RouteSpec struct {
	Host       string // "*", exact host, or "*.suffix"
	Path       string // exact path
	PathPrefix string
	Methods    []string
	Headers    map[string]string // exact value match
	Cluster    *Cluster
	Name       string              // label used in metrics; defaults to the index
	Rate       *guards.RateLimiter // the route's rate_limit; nil: none
}

// Route is a compiled RouteSpec.
type Route struct {
	Name       string
	Cluster    *Cluster
	Rate       *guards.RateLimiter
	hostAny    bool
	hostExact  string // lower case
	hostSuffix string // lower case, with the leading dot
	path       []byte
	prefix     []byte
	methods    [][]byte
	headers    []headerMatch
}

type headerMatch struct {
	name  string
	value []byte
}

// Router matches requests to routes; first match wins.
type Router struct {
	routes []*Route
}

// NewRouter compiles specs in order.
func NewRouter(specs []RouteSpec) *Router {
	r := &Router{}
	for _, s := range specs {
		rt := &Route{Name: s.Name, Cluster: s.Cluster, Rate: s.Rate}
		// Hosts compare in their normal form: lower case, without the
		// trailing dot of a fully qualified name.
		h := strings.TrimSuffix(strings.ToLower(s.Host), ".")
		switch {
		case h == "" || h == "*":
			rt.hostAny = true
		case strings.HasPrefix(h, "*."):
			rt.hostSuffix = h[1:]
		default:
			rt.hostExact = h
		}
		if s.Path != "" {
			rt.path = []byte(s.Path)
		}
		if s.PathPrefix != "" {
			rt.prefix = []byte(s.PathPrefix)
		}
		for _, m := range s.Methods {
			rt.methods = append(rt.methods, []byte(m))
		}
		for k, v := range s.Headers {
			rt.headers = append(rt.headers, headerMatch{name: k, value: []byte(v)})
		}
		r.routes = append(r.routes, rt)
	}
	return r
}

// Match returns the first route matching x's request, or nil. It reads the
// normalised host and path, the same bytes the forwarder sends.
func (r *Router) Match(x *Exchange) *Route {
	host := x.Req.Host
	path := x.Path()
	for _, rt := range r.routes {
		if rt.matches(x, host, path) {
			return rt
		}
	}
	return nil
}

func (rt *Route) matches(x *Exchange, host, path []byte) bool {
	switch {
	case rt.hostAny:
	case rt.hostExact != "":
		if !equalFoldASCII(host, rt.hostExact) {
			return false
		}
	default:
		// "*.example.com" matches "a.example.com" and "a.b.example.com",
		// not "example.com" itself.
		if len(host) <= len(rt.hostSuffix) || !equalFoldASCII(host[len(host)-len(rt.hostSuffix):], rt.hostSuffix) {
			return false
		}
	}
	if rt.path != nil && !bytes.Equal(path, rt.path) {
		return false
	}
	if rt.prefix != nil && !bytes.HasPrefix(path, rt.prefix) {
		return false
	}
	if len(rt.methods) > 0 {
		ok := false
		for _, m := range rt.methods {
			if bytes.Equal(m, x.Req.Method) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	for _, hm := range rt.headers {
		v := x.Header(hm.name)
		if v == nil || !bytes.Equal(v, hm.value) {
			return false
		}
	}
	return true
}

// RouteStage is the route stage: it finds the route or answers 404, and
// applies the route's rate_limit (429).
type RouteStage struct {
	// Hit is called when the route's rate limit refuses a request (see
	// Guard.Hit).
	Hit func(x *Exchange, g guards.Name, scope guards.Scope)
}

// Name implements Stage.
func (RouteStage) Name() string { return "route" }

// Process implements Stage.
func (r RouteStage) Process(x *Exchange) Verdict {
	rt := x.Listener.Router.Match(x)
	if rt == nil {
		return x.Refuse(404, "no_route")
	}
	x.Route = rt
	x.Cluster = rt.Cluster
	if rt.Rate != nil && !allowRate(x, rt.Rate) {
		if r.Hit != nil {
			r.Hit(x, guards.RouteRequestRate, guards.Stream)
		}
		x.RetryAfter = true
		return x.Refuse(429, string(guards.RouteRequestRate))
	}
	return Continue
}

var _ Stage = RouteStage{}

// Routes returns the compiled routes in match order.
func (r *Router) Routes() []*Route { return r.routes }

// allowRate takes a token of rl for the exchange's key: its client IP, or
// the value of rl's header.
func allowRate(x *Exchange, rl *guards.RateLimiter) bool {
	var ok bool
	if h := rl.Header(); h != "" {
		ok, _ = rl.AllowValue(x.Req.Field(h), time.Now())
	} else {
		ok, _ = rl.AllowIP(x.ClientIP, time.Now())
	}
	return ok
}
