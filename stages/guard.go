// SPDX-License-Identifier: GPL-3.0-only

package stages

import (
	"net/netip"
	"sync"
)

// Guard enforces the codec's verdict and the per-connection request cap.
// Connection caps (per listener, per client IP) are enforced at accept time by
// ConnLimiter, which is the same guard seen from the engine's OnOpen.
type Guard struct {
	// Hit is called with a guard name whenever a limit refuses or trims
	// something; the engine counts it and logs it.
	Hit func(x *Exchange, guard string)
}

// Name implements Stage.
func (g *Guard) Name() string { return "guard" }

// Process implements Stage.
func (g *Guard) Process(x *Exchange) Verdict {
	if e := x.ParseErr; e != nil {
		x.CloseConn = true
		g.hit(x, "codec_"+e.Token)
		return x.Refuse(e.Status, "codec_"+e.Token)
	}
	if string(x.Req.Method) == "CONNECT" {
		// A 2xx to CONNECT turns the upstream connection into a raw tunnel
		// to a host the client chose (RFC 9110 section 9.3.6). No route
		// allows tunnelling, so CONNECT is refused before routing.
		x.CloseConn = true
		g.hit(x, "connect_refused")
		return x.Refuse(501, "connect_refused")
	}
	if max := x.Listener.MaxRequestsPerConn; max > 0 && x.ConnRequests >= max {
		// The last request allowed on this connection is served, with
		// Connection: close on its response.
		x.CloseConn = true
		if x.ConnRequests == max {
			g.hit(x, "max_requests_per_connection")
		}
	}
	return Continue
}

func (g *Guard) hit(x *Exchange, name string) {
	if g.Hit != nil {
		g.Hit(x, name)
	}
}

// ConnLimiter caps concurrent connections per listener and per client IP.
// It is called at accept and close, from any event loop.
type ConnLimiter struct {
	// The caps; set them before the limiter is shared, then only through
	// SetLimits.
	MaxTotal int // 0 = unlimited
	MaxPerIP int // 0 = unlimited

	mu    sync.Mutex
	total int
	perIP map[netip.Addr]int
}

// Acquire admits a new connection from ip, or returns the name of the limit
// that refused it.
func (l *ConnLimiter) Acquire(ip netip.Addr) (ok bool, limit string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.MaxTotal > 0 && l.total >= l.MaxTotal {
		return false, "max_connections"
	}
	if l.MaxPerIP > 0 {
		if l.perIP == nil {
			l.perIP = make(map[netip.Addr]int)
		}
		if l.perIP[ip] >= l.MaxPerIP {
			return false, "max_connections_per_ip"
		}
		l.perIP[ip]++
	}
	l.total++
	return true, ""
}

// Release undoes a successful Acquire.
func (l *ConnLimiter) Release(ip netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if l.MaxPerIP > 0 {
		if n := l.perIP[ip]; n <= 1 {
			delete(l.perIP, ip)
		} else {
			l.perIP[ip] = n - 1
		}
	}
}

// SetLimits changes both caps (a config reload); connections already
// admitted stay. When the per-IP cap is turned on or off the per-IP counts
// start afresh, so a connection admitted before the change is not counted
// against its IP until it closes.
func (l *ConnLimiter) SetLimits(maxTotal, maxPerIP int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if (l.MaxPerIP > 0) != (maxPerIP > 0) {
		l.perIP = nil
	}
	l.MaxTotal, l.MaxPerIP = maxTotal, maxPerIP
}

// Count is the number of admitted connections.
func (l *ConnLimiter) Count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total
}

var _ Stage = (*Guard)(nil)
