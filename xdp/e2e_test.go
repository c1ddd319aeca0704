// SPDX-License-Identifier: GPL-3.0-only

//go:build linux

package xdp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/expressgateway/expressgateway/xdp/netnstest"
)

// End to end in namespaces: client -> load balancer (this package, XDP in
// NAT mode) -> 3 backends that answer with their own name, over real TCP
// connections and UDP datagrams, in native and generic mode.

const ioTimeout = 3 * time.Second

var e2eVIP = netip.MustParseAddr("198.18.100.1")

// startBackend runs, inside ns, a TCP server on :8080 that answers every
// line with its name, and a UDP server on :5353 that answers every
// datagram with "<name>:<payload>".
func startBackend(t *testing.T, ns *netnstest.NS, name string) {
	t.Helper()
	var ln net.Listener
	var pc net.PacketConn
	ns.MustDo(func() (err error) {
		if ln, err = net.Listen("tcp4", ":8080"); err != nil {
			return err
		}
		pc, err = net.ListenPacket("udp4", ":5353")
		return err
	})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		_ = ln.Close()
		_ = pc.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(2)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { _ = c.Close() }()
				r := bufio.NewReader(c)
				for {
					if _, err := r.ReadString('\n'); err != nil {
						return
					}
					if _, err := c.Write([]byte(name + "\n")); err != nil {
						return
					}
				}
			}()
		}
	}()
	go func() {
		defer wg.Done()
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(append([]byte(name+":"), buf[:n]...), from) // a lost reply shows as a timeout at the client
		}
	}()
}

type conn struct {
	c       net.Conn
	r       *bufio.Reader
	backend string
}

// ask sends a line and returns the backend's name.
func (c *conn) ask() (string, error) {
	if err := c.c.SetDeadline(time.Now().Add(ioTimeout)); err != nil {
		return "", err
	}
	if _, err := c.c.Write([]byte("who\n")); err != nil {
		return "", err
	}
	s, err := c.r.ReadString('\n')
	return strings.TrimSpace(s), err
}

func dialMany(t *testing.T, ns *netnstest.NS, n int) []*conn {
	t.Helper()
	var out []*conn
	ns.MustDo(func() error {
		d := net.Dialer{Timeout: ioTimeout}
		for i := 0; i < n; i++ {
			c, err := d.Dial("tcp4", netip.AddrPortFrom(e2eVIP, 80).String())
			if err != nil {
				return fmt.Errorf("dial %d: %w", i, err)
			}
			out = append(out, &conn{c: c, r: bufio.NewReader(c)})
		}
		return nil
	})
	t.Cleanup(func() {
		for _, c := range out {
			_ = c.c.Close()
		}
	})
	for i, c := range out {
		name, err := c.ask()
		if err != nil {
			t.Fatalf("conn %d: %v", i, err)
		}
		c.backend = name
	}
	return out
}

func spread(conns []*conn) map[string]int {
	m := map[string]int{}
	for _, c := range conns {
		m[c.backend]++
	}
	return m
}

func e2eConfig(tp *netnstest.Topology, mode string, names ...string) Config {
	var tcpB, udpB []Backend
	for _, n := range names {
		var i int
		if _, err := fmt.Sscanf(n, "b%d", &i); err != nil || i < 1 || i > len(tp.BackendAddrs) {
			panic(fmt.Sprintf("e2eConfig: backends are named b1 to b%d, not %q", len(tp.BackendAddrs), n))
		}
		addr := tp.BackendAddrs[i-1]
		tcpB = append(tcpB, Backend{Name: n, Address: addr, Port: 8080, Weight: 1, Healthy: true})
		udpB = append(udpB, Backend{Name: n, Address: addr, Port: 5353, Weight: 1, Healthy: true})
	}
	return Config{
		Interface:  tp.LBInterface,
		AttachMode: mode,
		VIPs: []VIP{
			{Name: "web", Address: e2eVIP, Port: 80, Protocol: "tcp", SNATAddress: tp.SNATAddr, TableSize: 251, Backends: tcpB},
			{Name: "echo", Address: e2eVIP, Port: 53, Protocol: "udp", SNATAddress: tp.SNATAddr, TableSize: 251, Backends: udpB},
		},
	}
}

func TestEndToEnd(t *testing.T) {
	skipUnlessBPF(t)
	for _, mode := range []string{AttachNative, AttachGeneric} {
		t.Run(mode, func(t *testing.T) { testEndToEnd(t, mode) })
	}
}

func testEndToEnd(t *testing.T, mode string) {
	tp := netnstest.NewTopology(t, 3)
	for i, ns := range tp.Backends {
		startBackend(t, ns, fmt.Sprintf("b%d", i+1))
	}
	set := metrics.NewSet()
	var l *LB
	tp.LB.MustDo(func() (err error) {
		l, err = Load(e2eConfig(tp, mode, "b1", "b2"), WithMetrics(set), WithStatsInterval(0))
		return err
	})
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	if l.Mode() != mode {
		t.Fatalf("attached %s, want %s", l.Mode(), mode)
	}

	// Distribution over two backends.
	first := dialMany(t, tp.Client, 40)
	got := spread(first)
	t.Logf("%s: 2 backends: %v", mode, got)
	if got["b1"] < 8 || got["b2"] < 8 || len(got) != 2 {
		t.Fatalf("spread over b1,b2 = %v", got)
	}

	// b3 joins: established connections keep their backend, new ones
	// reach all three.
	if err := l.Update(e2eConfig(tp, mode, "b1", "b2", "b3")); err != nil {
		t.Fatal(err)
	}
	for i, c := range first {
		if name, err := c.ask(); err != nil || name != c.backend {
			t.Fatalf("after adding b3, conn %d answered %q (%v), was %q", i, name, err, c.backend)
		}
	}
	second := dialMany(t, tp.Client, 60)
	got = spread(second)
	t.Logf("%s: 3 backends: %v", mode, got)
	if got["b1"] < 8 || got["b2"] < 8 || got["b3"] < 8 {
		t.Fatalf("spread over b1,b2,b3 = %v", got)
	}

	// b1 removed: its established connections drain, new ones avoid it.
	if err := l.Update(e2eConfig(tp, mode, "b2", "b3")); err != nil {
		t.Fatal(err)
	}
	for i, c := range append(first, second...) {
		if name, err := c.ask(); err != nil || name != c.backend {
			t.Fatalf("after removing b1, conn %d answered %q (%v), was %q", i, name, err, c.backend)
		}
	}
	third := dialMany(t, tp.Client, 30)
	got = spread(third)
	t.Logf("%s: after removing b1: %v", mode, got)
	if got["b1"] != 0 || got["b2"] == 0 || got["b3"] == 0 {
		t.Fatalf("spread after removing b1 = %v", got)
	}

	// UDP echo: replies come from the VIP and spread over backends.
	seen := map[string]int{}
	tp.Client.MustDo(func() error {
		for i := 0; i < 30; i++ {
			pc, err := net.ListenPacket("udp4", ":0")
			if err != nil {
				return err
			}
			if err := pc.SetDeadline(time.Now().Add(ioTimeout)); err != nil {
				_ = pc.Close()
				return err
			}
			dst := net.UDPAddrFromAddrPort(netip.AddrPortFrom(e2eVIP, 53))
			if _, err := pc.WriteTo([]byte("ping"), dst); err != nil {
				_ = pc.Close()
				return err
			}
			buf := make([]byte, 100)
			n, from, err := pc.ReadFrom(buf)
			_ = pc.Close()
			if err != nil {
				return fmt.Errorf("udp %d: %w", i, err)
			}
			if from.String() != dst.String() {
				return fmt.Errorf("udp reply from %v, want %v", from, dst)
			}
			name, payload, _ := bytes.Cut(buf[:n], []byte(":"))
			if string(payload) != "ping" {
				return fmt.Errorf("udp reply %q", buf[:n])
			}
			seen[string(name)]++
		}
		return nil
	})
	t.Logf("%s: udp: %v", mode, seen)
	if len(seen) < 2 || seen["b1"] != 0 {
		t.Errorf("udp spread = %v", seen)
	}

	// Health: b2 down moves everything new to b3.
	if err := l.SetHealthy("web", "b2", false); err != nil {
		t.Fatal(err)
	}
	got = spread(dialMany(t, tp.Client, 10))
	if got["b3"] != 10 {
		t.Errorf("with b2 down: %v", got)
	}

	if err := l.CollectStats(); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	set.WritePrometheus(&buf)
	for _, want := range []string{
		`expressgateway_xdp_vip_new_flows_total{vip="web"}`,
		`expressgateway_xdp_backend_packets_total{vip="web",backend="b3"}`,
		`expressgateway_xdp_packets_total{action="tx",reason="forwarded"}`,
		`expressgateway_xdp_backend_healthy{vip="web",backend="b2"} 0`,
		fmt.Sprintf(`expressgateway_xdp_attached{interface="lb0",mode=%q} 1`, mode),
	} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(buf.String(), `backend="b1"`) {
		t.Errorf("metrics still carry removed backend b1")
	}
	s, _ := l.Stats()
	t.Logf("%s: reasons: %v", mode, nonZero(s.Reasons))
}

func nonZero(m map[string]uint64) map[string]uint64 {
	out := map[string]uint64{}
	for k, v := range m {
		if v != 0 {
			out[k] = v
		}
	}
	return out
}

func TestLoadErrors(t *testing.T) {
	if _, err := Load(Config{Interface: "eg-no-such-if0"}); !errors.Is(err, ErrInterfaceNotFound) {
		t.Errorf("missing interface: %v", err)
	}
	if _, err := Load(Config{}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("empty config: %v", err)
	}
	bad := Config{Interface: "lo", VIPs: []VIP{{Name: "v", Address: e2eVIP, Protocol: "sctp"}}}
	if _, err := Load(bad); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("bad protocol: %v", err)
	}
	noSNAT := Config{Interface: "lo", VIPs: []VIP{{Name: "v", Address: e2eVIP, Protocol: "tcp"}}}
	if err := noSNAT.Validate(); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("nat without snat: %v", err)
	}
}
