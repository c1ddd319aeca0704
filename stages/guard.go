// SPDX-License-Identifier: GPL-3.0-only

package stages

import "github.com/expressgateway/expressgateway/guards"

// Guard enforces the codec's verdict and the per-connection request cap.
// Connection caps (per listener, per client IP) are enforced at accept time
// by guards.Admit; the attack policy itself lives in package guards.
type Guard struct {
	// Hit is called whenever a guard refuses or trims something; the
	// engine counts it and logs it (guards.Recorder).
	Hit func(x *Exchange, g guards.Name, scope guards.Scope)
}

// Name implements Stage.
func (g *Guard) Name() string { return "guard" }

// Process implements Stage.
func (g *Guard) Process(x *Exchange) Verdict {
	if e := x.ParseErr; e != nil {
		x.CloseConn = true
		name := guards.Codec(e.Token)
		g.hit(x, name, guards.Connection)
		return x.Refuse(e.Status, string(name))
	}
	if string(x.Req.Method) == "CONNECT" {
		// A 2xx to CONNECT turns the upstream connection into a raw tunnel
		// to a host the client chose (RFC 9110 section 9.3.6). No route
		// allows tunnelling, so CONNECT is refused before routing.
		x.CloseConn = true
		g.hit(x, guards.ConnectRefused, guards.Connection)
		return x.Refuse(501, string(guards.ConnectRefused))
	}
	if rl := x.Listener.Rate; rl != nil && !allowRate(x, rl) {
		g.hit(x, guards.RequestRate, guards.Stream)
		x.RetryAfter = true
		return x.Refuse(429, string(guards.RequestRate))
	}
	if max := x.Listener.MaxRequestsPerConn; max > 0 && x.ConnRequests >= max {
		// The last request allowed on this connection is served, with
		// Connection: close on its response.
		x.CloseConn = true
		if x.ConnRequests == max {
			g.hit(x, guards.MaxRequestsPerConnection, guards.Connection)
		}
	}
	return Continue
}

func (g *Guard) hit(x *Exchange, name guards.Name, scope guards.Scope) {
	if g.Hit != nil {
		g.Hit(x, name, scope)
	}
}

var _ Stage = (*Guard)(nil)
