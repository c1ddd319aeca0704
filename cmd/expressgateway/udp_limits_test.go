// SPDX-License-Identifier: GPL-3.0-only

package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// udpEcho is a loopback UDP server answering each datagram with itself.
func udpEcho(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { _ = pc.Close(); <-done })
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(buf[:n], from)
		}
	}()
	return pc.LocalAddr().String()
}

// udpFrom is a UDP socket bound to local (an address of lo) and connected
// to addr.
func udpFrom(t *testing.T, local, addr string) *net.UDPConn {
	t.Helper()
	c, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(local)}, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// ask sends msg on c and waits up to wait for the same bytes back.
func ask(c *net.UDPConn, msg string, wait time.Duration) bool {
	if _, err := c.Write([]byte(msg)); err != nil {
		return false
	}
	buf := make([]byte, 2048)
	deadline := time.Now().Add(wait)
	for {
		_ = c.SetReadDeadline(deadline)
		n, err := c.Read(buf)
		if err != nil {
			return false
		}
		if string(buf[:n]) == msg {
			return true
		}
	}
}

// waitReady polls the admin /readyz until it answers 200 (at most 10 s).
func waitReady(t *testing.T, admin string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := (&http.Client{Timeout: 2 * time.Second}).Get("http://" + admin + "/readyz")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
			err = fmt.Errorf("/readyz answered %d", resp.StatusCode)
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway never ready: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// metricValue is the value of series in a Prometheus text body, or -1.
func metricValue(body, series string) float64 {
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

// TestUDPFloodFromOneIP: 300 source ports of 127.0.0.2 send one datagram
// each to a udp listener that holds 100 sessions; without a per-IP cap they
// would fill the table and lock everyone else out until
// udp_session_timeout. With max_sessions_per_ip = 16 the client on
// 127.0.0.1 keeps getting answers, the refusals are counted on /metrics and
// the warn line is written at most once per second.
func TestUDPFloodFromOneIP(t *testing.T) {
	backend := udpEcho(t)
	admin, listen := freeAddr(t), freeAddr(t)
	_, logPath := startBinaryLog(t, fmt.Sprintf(`
[admin]
listen = %q
[engine]
event_loops = 2
[log]
access_log = false
[[listeners]]
name = "dns"
listen = %q
protocol = "udp"
cluster = "echo"
max_connections = 100
max_sessions_per_ip = 16
[[clusters]]
name = "echo"
endpoints = [ { address = %q } ]
`, admin, listen, backend), admin)
	waitReady(t, admin)
	start := time.Now()

	legit := udpFrom(t, "127.0.0.1", listen)
	if !ask(legit, "before", 2*time.Second) {
		t.Fatal("no answer before the flood")
	}
	const ports = 300
	flood := make([]*net.UDPConn, ports)
	for i := range flood {
		flood[i] = udpFrom(t, "127.0.0.2", listen)
		if _, err := flood[i].Write([]byte("flood")); err != nil {
			t.Fatal(err)
		}
		if i == ports/2 && !ask(legit, "during", 2*time.Second) {
			t.Fatal("no answer during the flood")
		}
	}
	if !ask(legit, "after", 2*time.Second) {
		t.Fatal("no answer after the flood")
	}
	// A new client (a new source port of 127.0.0.1) still gets a session.
	if !ask(udpFrom(t, "127.0.0.1", listen), "newcomer", 2*time.Second) {
		t.Fatal("a new client was refused")
	}

	_, m := get(t, "http://"+admin+"/metrics")
	hits := metricValue(m, `expressgateway_guard_tripped_total{guard="udp_sessions_per_ip"}`)
	drops := metricValue(m, `expressgateway_l4_udp_drops_total{listener="dns",reason="sessions_per_ip"}`)
	active := metricValue(m, `expressgateway_l4_sessions_active{listener="dns"}`)
	t.Logf("guard hits %v, drops %v, active sessions %v", hits, drops, active)
	if hits < 100 || drops != hits {
		t.Errorf("refusals not counted: guard hits %v, drops %v (about %d expected)", hits, drops, ports-16)
	}
	if active < 2 || active > 16+2 {
		t.Errorf("active sessions %v, want at most 16 from 127.0.0.2 and the 2 legitimate ones", active)
	}
	elapsed := time.Since(start)
	b, _ := os.ReadFile(logPath)
	lines := strings.Count(string(b), `"guard":"udp_sessions_per_ip"`)
	if lines < 1 || float64(lines) > elapsed.Seconds()+1 {
		t.Errorf("%d warn lines in %v: want at least one, at most one per second", lines, elapsed)
	}
}

// runLimited runs the binary under sh with RLIMIT_NOFILE set to n (soft and
// hard), as an operator's ulimit -n would.
func runLimited(n int, args ...string) *exec.Cmd {
	return exec.Command("sh", append([]string{"-c", fmt.Sprintf(`ulimit -n %d && exec "$0" "$@"`, n)}, args...)...)
}

// TestFDLimitCheckedAtStart: under a 1000-descriptor limit a udp listener
// capped at 5000 sessions cannot fit and the start is refused; an http
// listener capped at 600 fits alone (one descriptor per client) but not
// with its upstream connections and pools: one warn line, and the gateway
// serves with expressgateway_fd_budget on /metrics.
func TestFDLimitCheckedAtStart(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	bin := gatewayBinary(t)
	backend := udpEcho(t)
	refused := writeFile(t, "refused.toml", fmt.Sprintf(`
[admin]
listen = ""
[[listeners]]
name = "dns"
listen = %q
protocol = "udp"
cluster = "echo"
max_connections = 5000
[[clusters]]
name = "echo"
endpoints = [ { address = %q } ]
`, freeAddr(t), backend))
	out, err := runLimited(1000, bin, "run", "--config", refused).CombinedOutput()
	want := "expressgateway: listener dns: max_connections = 5000 needs 5000 file descriptors, more than the limit of 1000"
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), want) {
		t.Fatalf("want exit 1 and %q, got %v:\n%s", want, err, out)
	}

	admin, web := freeAddr(t), freeAddr(t)
	warned := writeFile(t, "warned.toml", fmt.Sprintf(`
[admin]
listen = %q
[engine]
event_loops = 2
[[listeners]]
name = "web"
listen = %q
max_connections = 600
[[listeners.routes]]
cluster = "app"
[[clusters]]
name = "app"
endpoints = [ { address = "127.0.0.1:9" } ]
`, admin, web))
	cmd := runLimited(1000, bin, "run", "--config", warned)
	logPath := filepath.Join(t.TempDir(), "gw.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = logf.Close() }()
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, err := net.Dial("tcp", admin); err == nil {
			_ = c.Close()
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logPath)
			t.Fatalf("gateway did not start:\n%s", b)
		}
		time.Sleep(20 * time.Millisecond)
	}
	waitReady(t, admin)
	// 2 × 600 + 64 idle × 1 endpoint × 2 loops + 64 + 2 × (1 + 2) + 1.
	const budget = 1200 + 128 + 71
	_, m := get(t, "http://"+admin+"/metrics")
	if v := metricValue(m, "expressgateway_fd_budget"); v != budget {
		t.Errorf("expressgateway_fd_budget = %v, want %d", v, budget)
	}
	if v := metricValue(m, "expressgateway_fd_limit"); v != 1000 {
		t.Errorf("expressgateway_fd_limit = %v, want 1000", v)
	}
	b, _ := os.ReadFile(logPath)
	if n := strings.Count(string(b), `"fd_budget":`+strconv.Itoa(budget)); n != 1 {
		t.Errorf("%d fd warn lines, want 1:\n%s", n, b)
	}
}
