// SPDX-License-Identifier: GPL-3.0-only

package engine

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"
)

// Binding and dispatch. Each listener's address is resolved once, when the
// engine is built, and gnet binds the resolved literal. gnet gives every
// accepted conn (and every datagram) the address of the listening socket it
// came from as LocalAddr, the very value it resolved from that literal, so a
// connection is dispatched to its listener by that exact address: a
// wildcard listener and a specific one on the same port, or an http and a
// tcp listener, never take each other's connections. (conf refuses
// overlapping listen addresses; this keeps the dispatch exact even so.)

// bindKey identifies one bound listening address. ap holds no address for an
// empty host (every address).
type bindKey struct {
	udp bool
	ap  netip.AddrPort
}

func keyOf(udp bool, ip net.IP, zone string, port int) bindKey {
	a, _ := netip.AddrFromSlice(ip)
	return bindKey{udp: udp, ap: netip.AddrPortFrom(a.Unmap().WithZone(zone), uint16(port))}
}

// resolveBind resolves a listen address as gnet will ("tcp" or "udp"
// network, the first IPv4 address of a name) and returns its key and the
// literal to bind.
func resolveBind(udp bool, listen string) (bindKey, string, error) {
	if udp {
		a, err := net.ResolveUDPAddr("udp", listen)
		if err != nil {
			return bindKey{}, "", fmt.Errorf("resolve %q: %w", listen, err)
		}
		return keyOf(true, a.IP, a.Zone, a.Port), a.String(), nil
	}
	a, err := net.ResolveTCPAddr("tcp", listen)
	if err != nil {
		return bindKey{}, "", fmt.Errorf("resolve %q: %w", listen, err)
	}
	return keyOf(false, a.IP, a.Zone, a.Port), a.String(), nil
}

// connKey is the key of the listening socket c came from.
func connKey(c gnet.Conn) (bindKey, bool) {
	switch a := c.LocalAddr().(type) {
	case *net.TCPAddr:
		return keyOf(false, a.IP, a.Zone, a.Port), true
	case *net.UDPAddr:
		return keyOf(true, a.IP, a.Zone, a.Port), true
	}
	return bindKey{}, false
}

// OnTick first runs once every event loop is running, that is once every
// listening socket of every loop is bound (gnet binds the first socket per
// address before OnBoot and the other loops' SO_REUSEPORT sockets after it,
// then starts the loops, then the ticker). That is when the engine is
// ready. The engine's timers have their own goroutines; the tick only
// signals.
func (h *handler) OnTick() (time.Duration, gnet.Action) {
	h.e.bootOnce.Do(func() { close(h.e.booted) })
	return 24 * time.Hour, gnet.None
}

// Bound waits until every listening socket is bound and returns nil, or
// returns why binding failed (Serve returns the same error).
func (e *Engine) Bound() error {
	<-e.booted
	return e.bootErr
}

// bindError names the listener a bind failure is about: gnet's error (such
// as "bind: address already in use") does not say which address failed.
// Each address is bound again alone, with gnet's socket options, last
// first: when gnet fails on one address it leaves the sockets it had already
// bound for the earlier ones open (its createListeners does not close them),
// and those would fail a probe of their own addresses.
func (e *Engine) bindError(err error, reusePort bool) error {
	type try struct{ name, network, addr string }
	var tries []try
	for _, l := range e.listeners {
		tries = append(tries, try{l.cfg.Name, "tcp", l.addr})
	}
	if e.l4 != nil {
		for _, l := range e.l4.listeners {
			network := "tcp"
			if l.udp {
				network = "udp"
			}
			tries = append(tries, try{l.name, network, l.addr})
		}
	}
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		cerr := rc.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
			if serr == nil && reusePort {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
			}
		})
		return cmp.Or(cerr, serr)
	}}
	ctx := context.Background()
	for i := len(tries) - 1; i >= 0; i-- {
		t := tries[i]
		var perr error
		if t.network == "udp" {
			var pc net.PacketConn
			if pc, perr = lc.ListenPacket(ctx, "udp", t.addr); perr == nil {
				_ = pc.Close()
			}
		} else {
			var ln net.Listener
			if ln, perr = lc.Listen(ctx, "tcp", t.addr); perr == nil {
				_ = ln.Close()
			}
		}
		if perr != nil {
			var oe *net.OpError
			if errors.As(perr, &oe) && oe.Err != nil {
				perr = oe.Err
			}
			return fmt.Errorf("listener %s: %s %s: %w", t.name, t.network, t.addr, perr)
		}
	}
	return fmt.Errorf("bind listeners: %w", err)
}
