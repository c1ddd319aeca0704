// SPDX-License-Identifier: GPL-3.0-only

package conf

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"time"
)

// Listen addresses are compared by what they bind, not by how they are
// written. Two sockets of one transport whose addresses overlap on the same
// port would both bind (SO_REUSEPORT), and the kernel would hand some
// connections to the wrong one, or one of them would never serve; so the
// validator refuses them:
//
//   - an IP literal takes that address (IPv4-mapped IPv6 counts as IPv4);
//   - a host name is resolved when the config is validated and takes every
//     address it resolves to;
//   - "0.0.0.0" takes every IPv4 address; an empty host takes every address;
//   - "[::]" takes every IPv6 address, and every IPv4 address too on the
//     admin listener and the demo upstream (Go's net.Listen opens a
//     dual-stack socket); listeners bind it with IPV6_V6ONLY (gnet does so
//     for every IPv6 address), so there it leaves IPv4 alone.

// lookupHost resolves a listen host name. A variable so that tests can
// replace the resolver.
var lookupHost = func(ctx context.Context, host string) ([]netip.Addr, error) {
	return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
}

// resolveTimeout bounds the resolution of one listen host name.
const resolveTimeout = 5 * time.Second

// span is the set of local addresses one listening socket takes.
type span struct {
	key  string // key path of the address: "listeners[1].listen"
	who  string // `listener "web"`, "the admin listener"
	addr string // as written
	port int
	// all4 and all6: every IPv4 / IPv6 address (wildcards).
	all4, all6 bool
	ips        []netip.Addr // specific addresses, unmapped
}

// covers reports whether s takes ip.
func (s *span) covers(ip netip.Addr) bool {
	if ip.Is4() && s.all4 || ip.Is6() && s.all6 {
		return true
	}
	return slices.Contains(s.ips, ip)
}

// loopback reports whether s takes loopback addresses only.
func (s *span) loopback() bool {
	if s.all4 || s.all6 || len(s.ips) == 0 {
		return false
	}
	for _, ip := range s.ips {
		if !ip.IsLoopback() {
			return false
		}
	}
	return true
}

// overlap says where a and b collide ("127.0.0.1:8080", "every IPv4
// address on port 8080"), or "" when they do not.
func overlap(a, b *span) string {
	if a.port != b.port {
		return ""
	}
	p := strconv.Itoa(a.port)
	switch {
	case a.all4 && b.all4 && a.all6 && b.all6:
		return "every address on port " + p
	case a.all4 && b.all4:
		return "every IPv4 address on port " + p
	case a.all6 && b.all6:
		return "every IPv6 address on port " + p
	}
	for _, ip := range b.ips {
		if a.covers(ip) {
			return netip.AddrPortFrom(ip, uint16(a.port)).String()
		}
	}
	for _, ip := range a.ips {
		if b.covers(ip) {
			return netip.AddrPortFrom(ip, uint16(a.port)).String()
		}
	}
	return ""
}

// span resolves a listen address that listenAddr accepted; dualStack says
// whether "[::]" also takes IPv4 (see above). It reports a host name that
// does not resolve and returns false.
func (v *validator) span(key, who, addr string, dualStack bool) (*span, bool) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, false
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return nil, false
	}
	s := &span{key: key, who: who, addr: addr, port: p}
	var ips []netip.Addr
	if host == "" {
		s.all4, s.all6 = true, true
		return s, true
	} else if ip, err := netip.ParseAddr(host); err == nil {
		ips = []netip.Addr{ip}
	} else {
		ips, err = v.resolve(host)
		if err != nil {
			v.addf(key, "cannot resolve host %q: %v", host, err)
			return nil, false
		}
	}
	for _, ip := range ips {
		ip = ip.Unmap()
		switch {
		case ip.IsUnspecified() && ip.Is4():
			s.all4 = true
		case ip.IsUnspecified():
			s.all6 = true
			s.all4 = s.all4 || dualStack
		case !slices.Contains(s.ips, ip):
			s.ips = append(s.ips, ip)
		}
	}
	return s, true
}

// resolve looks a host name up once per validation.
func (v *validator) resolve(host string) ([]netip.Addr, error) {
	if ips, ok := v.resolved[host]; ok {
		return ips, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), resolveTimeout)
	defer cancel()
	ips, err := lookupHost(ctx, host)
	if err == nil && len(ips) == 0 {
		err = fmt.Errorf("no addresses")
	}
	if err != nil {
		return nil, err
	}
	if v.resolved == nil {
		v.resolved = make(map[string][]netip.Addr)
	}
	v.resolved[host] = ips
	return ips, nil
}

// addressConflicts refuses two sockets of one transport whose addresses
// overlap: the admin listener, the demo upstream and the http and tcp
// listeners share TCP; udp listeners are checked among themselves. It also
// records whether the admin listener is on loopback.
func (v *validator) addressConflicts(c *Config) {
	var tcp, udp []*span
	claim := func(set *[]*span, s *span) {
		for _, o := range *set {
			if where := overlap(o, s); where != "" {
				v.addf(s.key, "%s at %q overlaps %s at %q (%s): both would take %s",
					s.who, s.addr, o.who, o.addr, o.key, where)
				return
			}
		}
		*set = append(*set, s)
	}
	if a := c.Admin.Listen; a != "" && v.listenAddrOK("admin.listen", a) {
		if s, ok := v.span("admin.listen", "the admin listener", a, true); ok {
			c.Admin.loopback = s.loopback()
			claim(&tcp, s)
		}
	}
	if c.Demo.Enabled && v.listenAddrOK("demo.listen", c.Demo.Listen) {
		if s, ok := v.span("demo.listen", "the demo upstream", c.Demo.Listen, true); ok {
			claim(&tcp, s)
		}
	}
	for i := range c.Listeners {
		l := &c.Listeners[i]
		key := idx("listeners", i) + ".listen"
		if l.Listen == "" || !v.listenAddrOK(key, l.Listen) {
			continue
		}
		s, ok := v.span(key, fmt.Sprintf("listener %q", l.Name), l.Listen, false)
		if !ok {
			continue
		}
		if l.Protocol == ProtocolUDP || l.Protocol == ProtocolH3 || l.Protocol == ProtocolQUICPassthrough {
			claim(&udp, s)
		} else {
			claim(&tcp, s)
		}
	}
}

// listenAddrOK reports whether no problem was recorded for key: an address
// listenAddr refused is not compared.
func (v *validator) listenAddrOK(key, addr string) bool {
	for _, p := range v.problems {
		if p.Key == key {
			return false
		}
	}
	_, _, err := net.SplitHostPort(addr)
	return err == nil
}
