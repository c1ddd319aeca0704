// SPDX-License-Identifier: GPL-3.0-only

package engine

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/expressgateway/expressgateway/conf"
)

// dialUDPFrom is dialUDP from a given loopback address.
func dialUDPFrom(t *testing.T, local, addr string) net.Conn {
	t.Helper()
	c, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(local)}, net.UDPAddrFromAddrPort(mustAddrPort(t, addr)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func mustAddrPort(t *testing.T, s string) netip.AddrPort {
	t.Helper()
	ua, err := net.ResolveUDPAddr("udp", s)
	if err != nil {
		t.Fatal(err)
	}
	return ua.AddrPort()
}

// TestL4UDPSessionsPerIP: one client IP gets max_sessions_per_ip sessions
// across both loops; its next source port is refused and counted, another
// IP is still served, and an expired session frees its slot.
func TestL4UDPSessionsPerIP(t *testing.T) {
	backend := udpBackend(t, "a", nil)
	addr := freeUDPPort(t)
	g := startL4(t, 2, udpListenerTOML(addr, []string{backend}, `max_sessions_per_ip = 3
udp_session_timeout = "400ms"`))
	for i := range 3 {
		if r := udpAsk(t, dialUDPFrom(t, "127.0.0.2", addr), "hi", 2*time.Second); r != "a|hi" {
			t.Fatalf("port %d of 127.0.0.2: %q", i, r)
		}
	}
	fourth := dialUDPFrom(t, "127.0.0.2", addr)
	if r := udpAsk(t, fourth, "hi", 300*time.Millisecond); r != "" {
		t.Fatalf("fourth port of 127.0.0.2 served: %q", r)
	}
	if r := udpAsk(t, dialUDPFrom(t, "127.0.0.1", addr), "hi", 2*time.Second); r != "a|hi" {
		t.Fatalf("127.0.0.1: %q", r)
	}
	if v := g.metric(`expressgateway_guard_tripped_total{guard="udp_sessions_per_ip"}`); v < 1 {
		t.Errorf("guard hits = %v", v)
	}
	if v := g.metric(`expressgateway_l4_udp_drops_total{listener="u4",reason="sessions_per_ip"}`); v < 1 {
		t.Errorf("drops = %v", v)
	}
	g.waitMetric(`expressgateway_l4_sessions_active{listener="u4"}`, 0)
	if r := udpAsk(t, fourth, "again", 2*time.Second); r != "a|again" {
		t.Fatalf("after expiry, the fourth port: %q", r)
	}
}

func TestPlanFDs(t *testing.T) {
	snap, err := conf.Parse("t.toml", []byte(`
[engine]
event_loops = 2
max_connections = 1500
[[listeners]]
name = "web"
listen = "127.0.0.1:1"
max_connections = 1000
[[listeners.routes]]
cluster = "app"
[[listeners]]
name = "raw"
listen = "127.0.0.1:2"
protocol = "tcp"
cluster = "app"
max_connections = 2000
[[listeners]]
name = "dns"
listen = "127.0.0.1:3"
protocol = "udp"
cluster = "app"
max_connections = 300
[[clusters]]
name = "app"
max_idle_per_endpoint = 10
endpoints = [ { address = "127.0.0.1:9001" }, { address = "127.0.0.1:9002" } ]
`))
	if err != nil {
		t.Fatal(err)
	}
	p := PlanFDs(&snap.Config)
	want := []FDNeed{{"web", 1000, 1000}, {"raw", 2000, 3000}, {"dns", 300, 300}}
	if fmt.Sprint(p.Listeners) != fmt.Sprint(want) {
		t.Errorf("listeners %v, want %v", p.Listeners, want)
	}
	// 1500 tcp-side clients (engine.max_connections), 300 sessions, 10
	// idle × 2 endpoints × 2 loops, 64 + 2 × (3 + 2) + 2.
	if p.TCP != 1500 || p.UDP != 300 || p.Pooled != 40 || p.Margin != 76 || p.Total != 3000+300+40+76 {
		t.Errorf("plan %+v", p)
	}
}
