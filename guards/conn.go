// SPDX-License-Identifier: GPL-3.0-only

package guards

import (
	"net/netip"
	"sync"
	"time"
)

// Connection admission: caps on concurrent connections (engine-wide, per
// listener, per client IP) and a per-IP rate of new connections. The http
// and tcp listeners admit through the same Admit.
const (
	// MaxConnections: engine.max_connections or a listener's
	// max_connections is reached (the connection is closed at accept).
	MaxConnections Name = "max_connections"
	// MaxConnectionsPerIP: the client IP holds max_connections_per_ip.
	MaxConnectionsPerIP Name = "max_connections_per_ip"
	// NewConnectionRate: the client IP opened connections faster than
	// guards.new_connections_per_second (burst new_connections_burst).
	NewConnectionRate Name = "new_connection_rate"
	// UDPSessions and UDPSessionsPerIP are the udp listener's session caps
	// (a flood hits them once per datagram).
	UDPSessions      Name = "udp_sessions"
	UDPSessionsPerIP Name = "udp_sessions_per_ip"
	// QUICFlows and QUICFlowsPerIP are the quic-passthrough listener's caps
	// on its connection table (max_connections, max_sessions_per_ip): a
	// new QUIC connection over them is dropped at its first datagram.
	QUICFlows      Name = "quic_flows"
	QUICFlowsPerIP Name = "quic_flows_per_ip"
	// QUICHandoffFull: 256 datagrams of one QUIC passthrough connection
	// are already on their way to the event loop that owns it (a client
	// flooding from a new address); more are dropped.
	QUICHandoffFull Name = "quic_handoff_full"
)

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

// Acquire admits a new connection from ip, or returns the guard that
// refused it.
func (l *ConnLimiter) Acquire(ip netip.Addr) (ok bool, limit Name) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.MaxTotal > 0 && l.total >= l.MaxTotal {
		return false, MaxConnections
	}
	if l.MaxPerIP > 0 {
		if l.perIP == nil {
			l.perIP = make(map[netip.Addr]int)
		}
		if l.perIP[ip] >= l.MaxPerIP {
			return false, MaxConnectionsPerIP
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

// Admit admits a new connection from ip: not penalised (pen, nil: none),
// within the listener's new-connection rate (rate, nil: none), then within
// the engine-wide limiter and the listener's, in that order. On refusal
// nothing stays acquired and the refusing guard is returned. Release
// undoes it when the connection closes.
func Admit(global, listener *ConnLimiter, rate *Buckets, pen *Penalties, ip netip.Addr, now time.Time) (ok bool, g Name) {
	if pen != nil && pen.Blocked(KeyIP(ip), now.UnixNano()) {
		return false, Penalty
	}
	if rate != nil {
		if ok, _ := rate.Take(KeyIP(ip), now.UnixNano()); !ok {
			return false, NewConnectionRate
		}
	}
	if ok, g := global.Acquire(ip); !ok {
		return false, g
	}
	if ok, g := listener.Acquire(ip); !ok {
		global.Release(ip)
		return false, g
	}
	return true, ""
}

// Release frees what Admit acquired.
func Release(global, listener *ConnLimiter, ip netip.Addr) {
	listener.Release(ip)
	global.Release(ip)
}
