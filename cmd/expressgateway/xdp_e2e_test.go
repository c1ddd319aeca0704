// SPDX-License-Identifier: GPL-3.0-only

//go:build linux

package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/expressgateway/expressgateway/xdp/netnstest"
)

// TestXDPThroughBinary runs the real binary with an [xdp] section inside the
// load balancer's namespace of a client → LB → 3 backends lab
// (198.18.0.0/15 addresses only), and checks that real TCP connections to
// the VIP are spread over the backends, that a backend failing its health
// check stops taking new flows, that the XDP families are exported, and that
// SIGTERM detaches the program.
func TestXDPThroughBinary(t *testing.T) {
	netnstest.Skip(t)
	if _, err := os.Stat("/sys/fs/bpf"); err != nil {
		t.Skip("no bpffs: ", err)
	}
	for _, mode := range []string{"native", "generic"} {
		t.Run(mode, func(t *testing.T) { testXDPThroughBinary(t, mode) })
	}
}

func testXDPThroughBinary(t *testing.T, mode string) {
	bin := gatewayBinary(t)
	tp := netnstest.NewTopology(t, 3)
	servers := nameServers(t, tp)
	cfg := labConfig(tp, mode, `
[clusters.health_check]
type = "tcp"
interval = "200ms"
timeout = "100ms"
unhealthy_threshold = 2
healthy_threshold = 1
`, 0, 1, 2)
	path := filepath.Join(t.TempDir(), "xdp.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := tp.LB.Start(bin, "run", "--config", path)

	// Wait for the admin listener inside the LB namespace, then for XDP.
	metricsText := func() string {
		var body string
		// A failed scrape is polled again until the deadline below.
		_ = tp.LB.Do(func() error {
			var err error
			body, err = nsGet("127.0.0.1:9901", "/metrics")
			return err
		})
		return body
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(metricsText(), `expressgateway_xdp_attached{interface="`+tp.LBInterface+`",mode="`+mode+`"} 1`) {
		if time.Now().After(deadline) {
			t.Fatalf("XDP not attached in %s mode; metrics:\n%s", mode, metricsText())
		}
		time.Sleep(50 * time.Millisecond)
	}

	ask := func(n int) map[string]int {
		t.Helper()
		got := map[string]int{}
		tp.Client.MustDo(func() error {
			for i := 0; i < n; i++ {
				b, err := nsGet("198.18.100.1:80", "/")
				if err != nil {
					return fmt.Errorf("request %d: %w", i, err)
				}
				got[b]++
			}
			return nil
		})
		return got
	}
	got := ask(60)
	t.Logf("%s: 60 connections: %v", mode, got)
	for _, b := range []string{"b1", "b2", "b3"} {
		if got[b] == 0 {
			t.Fatalf("backend %s got no connection: %v", b, got)
		}
	}

	// b3 fails its health check: new flows avoid it.
	_ = servers[2].Close()
	time.Sleep(200*2*time.Millisecond + 500*time.Millisecond)
	got = ask(30)
	if got["b3"] != 0 || got["b1"]+got["b2"] != 30 {
		t.Fatalf("after b3 went down: %v", got)
	}
	m := metricsText()
	// Every XDP family of METRICS.md is exported (the only place the
	// tests can make them appear), every exported family is documented,
	// and promtool finds nothing wrong.
	checkScrapeAgainstDoc(t, m, metricsDoc(t), func(d docFamily) bool { return d.condition == "XDP (L4)" })
	promtoolCheckMetrics(t, m)
	for _, fam := range []string{
		`expressgateway_xdp_vip_new_flows_total{vip="web"}`,
		`expressgateway_xdp_backend_healthy{vip="web",backend="` + tp.BackendAddrs[2].String() + `:8080"} 0`,
		`expressgateway_lb_endpoint_healthy{cluster="l4",endpoint="` + tp.BackendAddrs[2].String() + `:8080"} 0`,
	} {
		if !strings.Contains(m, fam) {
			t.Errorf("metrics lack %s", fam)
		}
	}

	// SIGTERM: the process exits and the program is detached.
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("gateway exit after SIGTERM: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("gateway did not exit on SIGTERM")
	}
	out := tp.LB.MustExec("ip", "-d", "link", "show", tp.LBInterface)
	if strings.Contains(string(out), "prog/xdp") || strings.Contains(string(out), "xdpgeneric") || strings.Contains(string(out), " xdp ") {
		t.Fatalf("XDP still attached after exit:\n%s", out)
	}
}

// nsGet does one GET on a new connection dialled from the calling goroutine,
// so it runs in the network namespace that goroutine entered (net/http's
// Transport dials from goroutines of its own).
func nsGet(addr, path string) (string, error) {
	c, err := net.DialTimeout("tcp4", addr, 3*time.Second)
	if err != nil {
		return "", err
	}
	defer func() { _ = c.Close() }()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path, addr); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return "", err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// TestXDPClearErrors: a missing interface is a clear startup error, never a
// crash.
func TestXDPClearErrors(t *testing.T) {
	p := writeFile(t, "bad-xdp.toml", `
[admin]
listen = ""
[[listeners]]
name = "local"
listen = "`+freeAddr(t)+`"
[[listeners.routes]]
cluster = "l4"
[xdp]
enabled = true
interface = "egnope0"
[[xdp.vips]]
name = "web"
address = "198.18.100.1"
port = 80
snat_address = "198.18.0.3"
cluster = "l4"
[[clusters]]
name = "l4"
endpoints = [ { address = "198.18.0.11:8080" } ]
`)
	cmd := exec.Command(gatewayBinary(t), "run", "--config", p)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("want exit 1, got %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "egnope0") || strings.Contains(string(out), "panic") {
		t.Fatalf("unclear error:\n%s", out)
	}
}

// keepConn is a keep-alive HTTP connection to the VIP, dialled inside the
// client namespace (the socket stays there) and used from the test.
type keepConn struct {
	c net.Conn
	r *bufio.Reader
}

func (k *keepConn) ask() (string, error) {
	_ = k.c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.WriteString(k.c, "GET / HTTP/1.1\r\nHost: vip\r\n\r\n"); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(k.r, nil)
	if err != nil {
		return "", err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// TestXDPReloadThroughBinary: SIGHUP swaps the VIP's table in the running
// binary. Established connections keep their backend when a backend is
// added, and a removed backend drains: its established connections are
// still answered while new ones go elsewhere.
func TestXDPReloadThroughBinary(t *testing.T) {
	netnstest.Skip(t)
	if _, err := os.Stat("/sys/fs/bpf"); err != nil {
		t.Skip("no bpffs: ", err)
	}
	bin := gatewayBinary(t)
	tp := netnstest.NewTopology(t, 3)
	nameServers(t, tp)
	render := func(idx ...int) string { return labConfig(tp, "auto", "", idx...) }
	path := filepath.Join(t.TempDir(), "reload.toml")
	write := func(text string) {
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(render(0, 1))
	cmd := tp.LB.Start(bin, "run", "--config", path)
	deadline := time.Now().Add(10 * time.Second)
	for {
		var m string
		_ = tp.LB.Do(func() (err error) { m, err = nsGet("127.0.0.1:9901", "/metrics"); return err }) // polled until the deadline
		if strings.Contains(m, "expressgateway_xdp_attached{") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("xdp not attached")
		}
		time.Sleep(50 * time.Millisecond)
	}
	var keep []*keepConn
	tp.Client.MustDo(func() error {
		for i := 0; i < 24; i++ {
			c, err := net.DialTimeout("tcp4", "198.18.100.1:80", 3*time.Second)
			if err != nil {
				return err
			}
			keep = append(keep, &keepConn{c: c, r: bufio.NewReader(c)})
		}
		return nil
	})
	t.Cleanup(func() {
		for _, k := range keep {
			_ = k.c.Close()
		}
	})
	first := make([]string, len(keep))
	for i, k := range keep {
		name, err := k.ask()
		if err != nil {
			t.Fatalf("conn %d: %v", i, err)
		}
		first[i] = name
	}
	hup := func() {
		_ = cmd.Process.Signal(syscall.SIGHUP)
		time.Sleep(300 * time.Millisecond)
	}
	newConns := func(n int) map[string]int {
		got := map[string]int{}
		tp.Client.MustDo(func() error {
			for i := 0; i < n; i++ {
				b, err := nsGet("198.18.100.1:80", "/")
				if err != nil {
					return err
				}
				got[b]++
			}
			return nil
		})
		return got
	}

	// Add b3: established connections stay put, new ones reach b3.
	write(render(0, 1, 2))
	hup()
	for i, k := range keep {
		if name, err := k.ask(); err != nil || name != first[i] {
			t.Fatalf("conn %d moved from %s to %s (%v) after a backend was added", i, first[i], name, err)
		}
	}
	if got := newConns(45); got["b3"] == 0 {
		t.Fatalf("the added backend takes no new connections: %v", got)
	}

	// Remove b1: its established connections drain, new ones avoid it.
	write(render(1, 2))
	hup()
	onB1 := 0
	for i, k := range keep {
		name, err := k.ask()
		if err != nil || name != first[i] {
			t.Fatalf("conn %d: %s → %s (%v) after b1 was removed", i, first[i], name, err)
		}
		if name == "b1" {
			onB1++
		}
	}
	if onB1 == 0 {
		t.Fatal("no established connection was on b1; the drain was not exercised")
	}
	if got := newConns(40); got["b1"] != 0 {
		t.Fatalf("removed backend still takes new connections: %v", got)
	}

	// A broken file is refused and changes nothing.
	write("[[listeners]]\nname = ")
	hup()
	if got := newConns(10); got["b1"] != 0 || got["b2"]+got["b3"] != 10 {
		t.Fatalf("after a bad reload: %v", got)
	}
}

// nameServers starts, in each backend namespace, an HTTP server on :8080
// that answers its name (b1, b2, ...).
func nameServers(t *testing.T, tp *netnstest.Topology) []*http.Server {
	t.Helper()
	servers := make([]*http.Server, len(tp.Backends))
	for i, ns := range tp.Backends {
		name := fmt.Sprintf("b%d", i+1)
		var ln net.Listener
		ns.MustDo(func() (err error) {
			ln, err = net.Listen("tcp4", ":8080")
			return err
		})
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, name) })}
		servers[i] = srv
		go func() { _ = srv.Serve(ln) }()
		t.Cleanup(func() { _ = srv.Close() })
	}
	return servers
}

// labConfig is the binary's config in the LB namespace: a VIP 198.18.100.1:80
// (tcp, nat) over the backends idx of the lab, attached in mode, with extra
// TOML appended to the cluster table.
func labConfig(tp *netnstest.Topology, mode, extra string, idx ...int) string {
	var eps []string
	for _, i := range idx {
		eps = append(eps, fmt.Sprintf(`{ address = "%s:8080" }`, tp.BackendAddrs[i]))
	}
	return fmt.Sprintf(`
[admin]
listen = "127.0.0.1:9901"
[log]
access_log = false
[engine]
drain_settle = "100ms" # the tests SIGTERM the binary; no load balancer waits on /readyz
[[listeners]]
name = "local"
listen = "127.0.0.1:8080"
[[listeners.routes]]
cluster = "l4"
[xdp]
enabled = true
interface = %q
attach_mode = %q
[[xdp.vips]]
name = "web"
address = "198.18.100.1"
port = 80
protocol = "tcp"
mode = "nat"
snat_address = %q
cluster = "l4"
[[clusters]]
name = "l4"
lb = "maglev"
endpoints = [ %s ]
[clusters.maglev]
table_size = 251
%s`, tp.LBInterface, mode, tp.SNATAddr, strings.Join(eps, ", "), extra)
}
