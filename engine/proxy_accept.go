// SPDX-License-Identifier: GPL-3.0-only

package engine

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/expressgateway/expressgateway/codecs/proxyproto"
	"github.com/expressgateway/expressgateway/conf"
	"github.com/expressgateway/expressgateway/guards"
)

// PROXY protocol on listeners (proxy_protocol = { accept = true, trusted =
// [...] }). A connection from a trusted address must open with a v1 or v2
// header; the client address in it replaces the socket's for routing,
// per-IP limits, X-Forwarded-For and the access log (the per-IP admission
// moves to it). A connection from any other address is served with its own
// address, and one that opens with a PROXY header is refused: only the
// balancers in front may say who the client is.

// proxyAccept is a listener's PROXY protocol policy.
type proxyAccept struct {
	listener string
	trusted  []netip.Prefix
	timeout  time.Duration
	set      *metrics.Set
	mu       sync.Mutex
	results  map[string]*metrics.Counter
}

func (e *Engine) newProxyAccept(lc *conf.Listener) *proxyAccept {
	pp := lc.ProxyProtocol
	if pp == nil || !pp.Accept {
		return nil
	}
	p := &proxyAccept{listener: lc.Name, trusted: conf.PrefixesOf(pp.Trusted), timeout: pp.Timeout.Std(), set: e.m.Set, results: map[string]*metrics.Counter{}}
	p.count("accepted")
	return p
}

// trusts reports whether ip may send a header.
func (p *proxyAccept) trusts(ip netip.Addr) bool {
	for _, pr := range p.trusted {
		if pr.Contains(ip) {
			return true
		}
	}
	return false
}

// count counts a header outcome: accepted, local (a v2 LOCAL or v1
// UNKNOWN: the socket's address stands), untrusted (a header from an
// address not in trusted), missing (a trusted peer sent none), malformed,
// timeout, over_limit (the real client is over a connection cap).
func (p *proxyAccept) count(result string) {
	p.mu.Lock()
	c := p.results[result]
	if c == nil {
		c = p.set.GetOrCreateCounter(fmt.Sprintf(`expressgateway_proxy_protocol_total{listener=%q,result=%q}`, p.listener, result))
		p.results[result] = c
	}
	p.mu.Unlock()
	c.Inc()
}

// refuseReason maps a parse error onto the counted result.
func refuseReason(err error) string {
	if errors.Is(err, proxyproto.ErrNoHeader) {
		return "missing"
	}
	return "malformed"
}

// readProxyHeader reads a PROXY header from a blocking connection within
// the policy's timeout and returns it and the bytes read past it.
func (p *proxyAccept) readProxyHeader(nc net.Conn) (proxyproto.Header, []byte, error) {
	_ = nc.SetReadDeadline(time.Now().Add(p.timeout))
	defer func() { _ = nc.SetReadDeadline(time.Time{}) }()
	buf := make([]byte, 0, 256)
	tmp := make([]byte, 256)
	for {
		n, err := nc.Read(tmp)
		buf = append(buf, tmp[:n]...)
		h, used, perr := proxyproto.Parse(buf)
		switch {
		case perr == nil:
			return h, buf[used:], nil
		case !errors.Is(perr, proxyproto.ErrNeedMore):
			return h, nil, perr
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return h, nil, proxyproto.ErrNoHeader
			}
			return h, nil, err
		}
	}
}

// readmit moves a connection's admission from the balancer's address to
// the client's; false when the client is over a cap (nothing is held then).
func (e *Engine) readmit(l *listenerRT, from, to netip.Addr) (bool, guards.Name) {
	return guards.Readmit(e.global, l.limiter, l.slot.connRate.Load(), l.slot.penalty, from, to, time.Now())
}

// prefixConn is a net.Conn whose first reads return prefix.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (c *prefixConn) Read(b []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(b, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(b)
}

// appendProxyHeader appends a PROXY header of version v ("v1", "v2") for a
// connection from src to dst; an unknown source is sent as v1 UNKNOWN or
// v2 LOCAL.
func appendProxyHeader(b []byte, v string, src, dst netip.AddrPort) []byte {
	if v == "v2" {
		return proxyproto.AppendV2(b, src, dst)
	}
	return proxyproto.AppendV1(b, src, dst)
}
