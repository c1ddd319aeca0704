// SPDX-License-Identifier: GPL-3.0-only

package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/expressgateway/expressgateway/conf"
)

// reload parses text and applies it to the running engine as the binary
// does (restart-only keys carried).
func (g *gw) reload(t *testing.T, text string) error {
	t.Helper()
	next, err := conf.Parse("reload.toml", []byte(text))
	if err != nil {
		t.Fatalf("config: %v\n%s", err, text)
	}
	applied, _, err := conf.Carry(g.eng.snap.Load(), next)
	if err != nil {
		return err
	}
	return g.eng.Reload(applied)
}

// httpConfig renders a config with http listeners ("name=addr>cluster")
// and clusters ("name=addr,addr").
func httpConfig(loops int, listeners []string, clusters []string, extra string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[admin]\nlisten = \"\"\n[engine]\nevent_loops = %d\ndrain_timeout = \"3s\"\n[log]\naccess_log = false\n%s\n", loops, extra)
	for _, l := range listeners {
		name, rest, _ := strings.Cut(l, "=")
		addr, cl, _ := strings.Cut(rest, ">")
		fmt.Fprintf(&b, "[[listeners]]\nname = %q\nlisten = %q\nmax_connections_per_ip = 0\n[[listeners.routes]]\ncluster = %q\n", name, addr, cl)
	}
	for _, c := range clusters {
		name, eps, _ := strings.Cut(c, "=")
		fmt.Fprintf(&b, "[[clusters]]\nname = %q\nendpoints = %s\n", name, endpointsTOML(strings.Split(eps, ",")))
	}
	return b.String()
}

// namedOrigin answers every request with its name.
func namedOrigin(t *testing.T, name string) *origin {
	return newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(300 * time.Millisecond)
		}
		_, _ = io.WriteString(w, name)
	})
}

func waitListening(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			_ = c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not accept: %v", addr, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestReloadRoutesReachOpenKeepAliveConnections(t *testing.T) {
	a, b := namedOrigin(t, "a"), namedOrigin(t, "b")
	addr := freePort(t)
	text := func(cl string) string {
		return httpConfig(2, []string{"web=" + addr + ">" + cl}, []string{"ca=" + a.addr(), "cb=" + b.addr()}, "")
	}
	g := runEngine(t, text("ca"), nil)
	waitListening(t, addr)
	loops := g.eng.Loops()
	c := dialRaw(t, addr)
	c.send(t, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if _, body := c.readResponse(t, "GET"); body != "a" {
		t.Fatalf("before: %q", body)
	}
	if err := g.reload(t, text("cb")); err != nil {
		t.Fatal(err)
	}
	c.send(t, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if _, body := c.readResponse(t, "GET"); body != "b" {
		t.Fatalf("open keep-alive connection after the reload: %q", body)
	}
	d := dialRaw(t, addr)
	d.send(t, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if _, body := d.readResponse(t, "GET"); body != "b" {
		t.Fatalf("new connection after the reload: %q", body)
	}
	if g.eng.Loops() != loops {
		t.Fatalf("a routes-only reload changed the loops: %d → %d", loops, g.eng.Loops())
	}
}

func TestReloadAddsAndRemovesListeners(t *testing.T) {
	a := namedOrigin(t, "a")
	one, two := freePort(t), freePort(t)
	clusters := []string{"ca=" + a.addr()}
	g := runEngine(t, httpConfig(2, []string{"one=" + one + ">ca"}, clusters, ""), nil)
	waitListening(t, one)
	if g.eng.Loops() != 2 {
		t.Fatalf("loops %d", g.eng.Loops())
	}

	if err := g.reload(t, httpConfig(2, []string{"one=" + one + ">ca", "two=" + two + ">ca"}, clusters, "")); err != nil {
		t.Fatal(err)
	}
	// An added listener serves as soon as Reload returns.
	c := dialRaw(t, two)
	c.send(t, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if _, body := c.readResponse(t, "GET"); body != "a" {
		t.Fatalf("added listener: %q", body)
	}
	if g.eng.Loops() != 4 {
		t.Fatalf("loops after adding a listener: %d", g.eng.Loops())
	}

	// Removed while a request is in flight on its keep-alive connection.
	c.send(t, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
	time.Sleep(50 * time.Millisecond)
	if err := g.reload(t, httpConfig(2, []string{"one=" + one + ">ca"}, clusters, "")); err != nil {
		t.Fatal(err)
	}
	if _, err := net.DialTimeout("tcp", two, time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("removed listener: dial %v, want connection refused", err)
	}
	resp, body := c.readResponse(t, "GET")
	if resp.StatusCode != 200 || body != "a" || !resp.Close {
		t.Fatalf("in-flight request on the removed listener: %d %q close=%v", resp.StatusCode, body, resp.Close)
	}
	if !c.closedByPeer(time.Second) {
		t.Fatal("connection of the removed listener stays open")
	}
	// Its loops stop once its connections are gone; the other listener
	// kept serving throughout.
	deadline := time.Now().Add(3 * time.Second)
	for g.eng.Loops() != 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if g.eng.Loops() != 2 {
		t.Fatalf("loops after the removed listener drained: %d", g.eng.Loops())
	}
	d := dialRaw(t, one)
	d.send(t, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if _, body := d.readResponse(t, "GET"); body != "a" {
		t.Fatalf("remaining listener: %q", body)
	}
}

// TestReloadReplacedListenerKeepsItsSocket renames a listener (a new
// identity on the same address) again and again while clients connect: the
// socket is handed over, so no attempt is refused.
func TestReloadReplacedListenerKeepsItsSocket(t *testing.T) {
	a := namedOrigin(t, "a")
	addr := freePort(t)
	clusters := []string{"ca=" + a.addr()}
	g := runEngine(t, httpConfig(2, []string{"v0=" + addr + ">ca"}, clusters, ""), nil)
	waitListening(t, addr)
	stop := make(chan struct{})
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := client.Get("http://" + addr + "/")
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				ok.Add(1)
			}
		}()
	}
	for i := 1; i <= 8; i++ {
		time.Sleep(40 * time.Millisecond)
		if err := g.reload(t, httpConfig(2, []string{fmt.Sprintf("v%d=%s>ca", i, addr)}, clusters, "")); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(40 * time.Millisecond)
	close(stop)
	wg.Wait()
	if failed.Load() != 0 || ok.Load() == 0 {
		t.Fatalf("%d ok, %d failed (first: %v)", ok.Load(), failed.Load(), firstErr.Load())
	}
}

func TestReloadUpdatesClustersInPlace(t *testing.T) {
	a, b := namedOrigin(t, "a"), namedOrigin(t, "b")
	addr := freePort(t)
	text := func(eps string) string {
		return httpConfig(1, []string{"web=" + addr + ">app"}, []string{"app=" + eps}, "")
	}
	g := runEngine(t, text(a.addr()+","+b.addr()), nil)
	waitListening(t, addr)
	cl := g.eng.clusters.Get("app")
	epA := cl.LB.Endpoint(a.addr())
	client := &http.Client{Timeout: 3 * time.Second}
	for range 4 { // warm a pooled connection to each
		resp, err := client.Get("http://" + addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
	}
	if err := g.reload(t, text(a.addr())); err != nil {
		t.Fatal(err)
	}
	if g.eng.clusters.Get("app") != cl || cl.LB.Endpoint(a.addr()) != epA {
		t.Fatal("cluster or endpoint replaced instead of updated")
	}
	for range 6 {
		resp, err := client.Get("http://" + addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if string(body) != "a" {
			t.Fatalf("removed endpoint still answers: %q", body)
		}
	}
	// The pooled connection to the removed endpoint is closed.
	deadline := time.Now().Add(2 * time.Second)
	for b.closed.Load() < b.conns.Load() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if b.closed.Load() < b.conns.Load() {
		t.Fatalf("removed endpoint: %d connections, %d closed", b.conns.Load(), b.closed.Load())
	}
}

func TestReloadThatCannotBindChangesNothing(t *testing.T) {
	a, b := namedOrigin(t, "a"), namedOrigin(t, "b")
	addr := freePort(t)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = taken.Close() }()
	g := runEngine(t, httpConfig(1, []string{"web=" + addr + ">ca"}, []string{"ca=" + a.addr(), "cb=" + b.addr()}, ""), nil)
	waitListening(t, addr)
	snap := g.eng.snap.Load()
	err = g.reload(t, httpConfig(1, []string{"web=" + addr + ">cb", "two=" + taken.Addr().String() + ">cb"},
		[]string{"ca=" + a.addr(), "cb=" + b.addr()}, ""))
	if err == nil || !strings.Contains(err.Error(), "listeners[1].listen") {
		t.Fatalf("reload onto a taken address: %v", err)
	}
	if g.eng.snap.Load() != snap {
		t.Fatal("a refused reload replaced the snapshot")
	}
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if string(body) != "a" {
		t.Fatalf("routes changed by a refused reload: %q", body)
	}
}

func TestReloadL4Listeners(t *testing.T) {
	b1, b2 := tcpBackend(t, namedEcho("b1")), tcpBackend(t, namedEcho("b2"))
	var got atomic.Int64
	u1 := udpBackend(t, "u1", &got)
	taddr, uaddr := freePort(t), freeUDPPort(t)
	text := func(tcpEP string, withUDP bool) string {
		s := fmt.Sprintf(`
[[listeners]]
name = "t"
listen = %q
protocol = "tcp"
cluster = %q
[[clusters]]
name = "c1"
endpoints = %s
[[clusters]]
name = "c2"
endpoints = %s
[[clusters]]
name = "u"
endpoints = %s
`, taddr, tcpEP, endpointsTOML([]string{b1}), endpointsTOML([]string{b2}), endpointsTOML([]string{u1}))
		if withUDP {
			s += fmt.Sprintf("[[listeners]]\nname = \"u\"\nlisten = %q\nprotocol = \"udp\"\ncluster = \"u\"\n", uaddr)
		}
		return s
	}
	g := startL4(t, 2, text("c1", true))
	old := dialTCP(t, taddr)
	greet := func(c *net.TCPConn) string {
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, 3)
		if _, err := io.ReadFull(c, buf); err != nil {
			t.Fatal(err)
		}
		return string(buf[:2])
	}
	if n := greet(old); n != "b1" {
		t.Fatalf("before: %s", n)
	}
	uc := dialUDP(t, uaddr)
	if r := udpAsk(t, uc, "hi", time.Second); r != "u1|hi" {
		t.Fatalf("udp before: %q", r)
	}

	if err := g.reload(t, "[admin]\nlisten = \"\"\n[engine]\nevent_loops = 2\n[log]\naccess_log = false\n"+text("c2", false)); err != nil {
		t.Fatal(err)
	}
	// The open pair keeps its endpoint; a new one goes to the new cluster.
	if _, err := old.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(old, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("open pair after reload: %q %v", buf, err)
	}
	if n := greet(dialTCP(t, taddr)); n != "b2" {
		t.Fatalf("new pair after reload: %s", n)
	}
	// The udp listener is gone.
	if r := udpAsk(t, uc, "again", 300*time.Millisecond); r != "" {
		t.Fatalf("removed udp listener answered %q", r)
	}
}

// TestHandoverBetweenEngines hands the listening sockets of one engine to
// a second one (as a USR2 upgrade does between processes), then stops the
// first from accepting, under a stream of new connections: none is
// refused or lost.
func TestHandoverBetweenEngines(t *testing.T) {
	a, b := namedOrigin(t, "a"), namedOrigin(t, "b")
	addr := freePort(t)
	g1 := runEngine(t, httpConfig(2, []string{"web=" + addr + ">app"}, []string{"app=" + a.addr()}, ""), nil)
	waitListening(t, addr)
	inherited := map[string][]int{}
	for _, s := range g1.eng.Sockets() {
		fd, err := syscall.Dup(s.FD) // in one process the two engines need their own fds
		if err != nil {
			t.Fatal(err)
		}
		inherited[s.Key] = append(inherited[s.Key], fd)
	}
	if len(inherited["tcp "+addr]) != 2 {
		t.Fatalf("sockets %v", inherited)
	}

	stop := make(chan struct{})
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	seen := map[string]*atomic.Int64{"a": {}, "b": {}}
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := client.Get("http://" + addr + "/")
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				_ = resp.Body.Close()
				if c := seen[string(body)]; c != nil {
					c.Add(1)
				}
				ok.Add(1)
			}
		}()
	}
	time.Sleep(100 * time.Millisecond)
	g2 := runEngineWith(t, httpConfig(2, []string{"web=" + addr + ">app"}, []string{"app=" + b.addr()}, ""), inherited)
	_ = g2
	time.Sleep(100 * time.Millisecond)
	g1.eng.StopAccepting()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if left := g1.eng.Drain(ctx); left != 0 {
		t.Fatalf("old engine: %d connections left", left)
	}
	fromB := seen["b"].Load()
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d ok, %d failed (first: %v)", ok.Load(), failed.Load(), firstErr.Load())
	}
	if seen["a"].Load() == 0 || seen["b"].Load() == fromB {
		t.Fatalf("served by old %d, by new %d (after the switch +%d)", seen["a"].Load(), seen["b"].Load(), seen["b"].Load()-fromB)
	}
	// The old engine's fds are closed; the socket lives on in the new one.
	for _, fds := range inherited {
		for _, fd := range fds {
			if _, err := os.Stat(fmt.Sprintf("/proc/self/fd/%d", fd)); err != nil {
				t.Fatalf("adopted fd %d: %v", fd, err)
			}
		}
	}
}

// TestOneSharedSocketWithoutReusePort: reuse_port = false gives a listener
// one socket that every loop accepts from; removing it refuses at once.
func TestOneSharedSocketWithoutReusePort(t *testing.T) {
	a := namedOrigin(t, "a")
	addr := freePort(t)
	text := func(extra string) string {
		return fmt.Sprintf(`[admin]
listen = ""
[engine]
event_loops = 2
[log]
access_log = false
%s
[[clusters]]
name = "ca"
endpoints = %s
`, extra, endpointsTOML([]string{a.addr()}))
	}
	g := runEngine(t, text(fmt.Sprintf("[[listeners]]\nname = \"one\"\nlisten = %q\nreuse_port = false\nmax_connections_per_ip = 0\n[[listeners.routes]]\ncluster = \"ca\"\n", addr)), nil)
	waitListening(t, addr)
	if socks := g.eng.Sockets(); len(socks) != 1 || g.eng.Loops() != 2 {
		t.Fatalf("sockets %v, loops %d", socks, g.eng.Loops())
	}
	client := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for range 20 {
		resp, err := client.Get("http://" + addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
	}
	// A config needs a listener: "other" replaces "one".
	other := fmt.Sprintf("[[listeners]]\nname = \"other\"\nlisten = %q\n[[listeners.routes]]\ncluster = \"ca\"\n", freePort(t))
	if err := g.reload(t, text(other)); err != nil {
		t.Fatal(err)
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("removed listener: %v", err)
	}
}

// TestHandoverUDP hands a udp listener's sockets to a second engine: once
// the first stops reading, the second answers every datagram.
func TestHandoverUDP(t *testing.T) {
	var got1, got2 atomic.Int64
	u1, u2 := udpBackend(t, "u1", &got1), udpBackend(t, "u2", &got2)
	addr := freeUDPPort(t)
	text := func(ep string) string {
		return udpListenerTOML(addr, []string{ep}, "")
	}
	g1 := startL4(t, 2, text(u1))
	inherited := map[string][]int{}
	for _, s := range g1.eng.Sockets() {
		fd, err := syscall.Dup(s.FD)
		if err != nil {
			t.Fatal(err)
		}
		inherited[s.Key] = append(inherited[s.Key], fd)
	}
	if len(inherited["udp "+addr]) != 2 {
		t.Fatalf("sockets %v", inherited)
	}
	c := dialUDP(t, addr)
	if r := udpAsk(t, c, "one", time.Second); r != "u1|one" {
		t.Fatalf("before: %q", r)
	}
	runEngineWith(t, "[admin]\nlisten = \"\"\n[engine]\nevent_loops = 2\n[log]\naccess_log = false\n"+text(u2), inherited)
	g1.eng.StopAccepting()
	for i := range 5 {
		// A fresh client address each time: a new session in the new engine.
		d := dialUDP(t, addr)
		if r := udpAsk(t, d, fmt.Sprint(i), time.Second); r != fmt.Sprintf("u2|%d", i) {
			t.Fatalf("after the hand-over: %q", r)
		}
	}
}
