// SPDX-License-Identifier: GPL-3.0-only

package engine

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/panjf2000/gnet/v2"
)

// startL4 starts an engine from listenersTOML (the [[listeners]] and
// [[clusters]] tables) with the given number of event loops.
func startL4(t *testing.T, loops int, listenersTOML string) *gw {
	t.Helper()
	text := fmt.Sprintf(`
[admin]
listen = ""
[engine]
event_loops = %d
[log]
access_log = false
%s
`, loops, listenersTOML)
	// Ready waits for the SO_REUSEPORT sockets of every loop, so UDP flows
	// hash to their final socket from the first datagram on.
	return runEngine(t, text, nil)
}

func freeUDPPort(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = pc.Close() }()
	return pc.LocalAddr().String()
}

func endpointsTOML(addrs []string) string {
	var eps []string
	for _, a := range addrs {
		eps = append(eps, fmt.Sprintf("{ address = %q }", a))
	}
	return "[ " + strings.Join(eps, ", ") + " ]"
}

// tcpListenerTOML is a tcp listener to cluster "app" plus the cluster.
func tcpListenerTOML(addr string, endpoints []string, extra string) string {
	return fmt.Sprintf(`
[[listeners]]
name = "l4"
listen = %q
protocol = "tcp"
cluster = "app"
%s
[[clusters]]
name = "app"
endpoints = %s
`, addr, extra, endpointsTOML(endpoints))
}

// tcpBackend is a loopback TCP server running handle for each connection.
func tcpBackend(t *testing.T, handle func(c *net.TCPConn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { _ = ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { _ = c.Close() }()
				_ = c.SetDeadline(time.Now().Add(20 * time.Second))
				handle(c.(*net.TCPConn))
			}()
		}
	}()
	return ln.Addr().String()
}

// namedEcho greets with its name and a newline, then echoes.
func namedEcho(name string) func(c *net.TCPConn) {
	return func(c *net.TCPConn) {
		if _, err := io.WriteString(c, name+"\n"); err != nil {
			return
		}
		_, _ = io.Copy(c, c)
	}
}

func dialTCP(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	return c.(*net.TCPConn)
}

func TestL4TCPEchoRoundRobin(t *testing.T) {
	var backends []string
	for _, n := range []string{"a", "b", "c"} {
		backends = append(backends, tcpBackend(t, namedEcho(n)))
	}
	addr := freePort(t)
	g := startL4(t, 2, tcpListenerTOML(addr, backends, ""))
	seen := map[string]int{}
	const conns = 30
	for i := range conns {
		c := dialTCP(t, addr)
		r := bufio.NewReader(c)
		name, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("conn %d: greeting: %v", i, err)
		}
		seen[strings.TrimSpace(name)]++
		msg := fmt.Sprintf("hello %d", i)
		if _, err := io.WriteString(c, msg); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(r, got); err != nil || string(got) != msg {
			t.Fatalf("conn %d: echo %q, %v", i, got, err)
		}
		_ = c.Close()
	}
	for _, n := range []string{"a", "b", "c"} {
		if seen[n] != conns/3 {
			t.Errorf("round robin: %v", seen)
			break
		}
	}
	if v := g.waitMetric(`expressgateway_l4_sessions_active{listener="l4"}`, 0); v != 0 {
		t.Errorf("sessions_active = %v after all closed", v)
	}
	if v := g.metric(`expressgateway_l4_sessions_total{listener="l4"}`); v != conns {
		t.Errorf("sessions_total = %v", v)
	}
	// Each conn: greeting (2 bytes) to the client, the message both ways.
	if rx := g.metric(`expressgateway_l4_bytes_total{listener="l4",direction="rx"}`); rx < 7*conns {
		t.Errorf("rx bytes = %v", rx)
	}
	if tx := g.metric(`expressgateway_l4_bytes_total{listener="l4",direction="tx"}`); tx < 9*conns {
		t.Errorf("tx bytes = %v", tx)
	}
}

// stream is a deterministic byte source of n bytes.
type stream struct {
	rng *rand.ChaCha8
	n   int64
}

func newStream(seed byte, n int64) *stream {
	var s [32]byte
	s[0] = seed
	return &stream{rng: rand.NewChaCha8(s), n: n}
}

func (s *stream) Read(p []byte) (int, error) {
	if s.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > s.n {
		p = p[:s.n]
	}
	_, _ = s.rng.Read(p)
	s.n -= int64(len(p))
	return len(p), nil
}

func streamSum(seed byte, n int64) [32]byte {
	h := sha256.New()
	_, _ = io.Copy(h, newStream(seed, n))
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// slowCopy reads r into w, pausing after each read while the first slow
// bytes go by: a slow reader that later catches up.
func slowCopy(w io.Writer, r io.Reader, slow int64) (int64, error) {
	buf := make([]byte, 32<<10)
	var total int64
	for {
		n, err := r.Read(buf)
		total += int64(n)
		_, _ = w.Write(buf[:n])
		if total < slow {
			time.Sleep(2 * time.Millisecond)
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

func TestL4TCPLargeTransferBothWaysBoundedHeap(t *testing.T) {
	size := int64(64 << 20)
	if testing.Short() {
		size = 16 << 20
	}
	const slow = 8 << 20
	upSum := make(chan [32]byte, 1)
	backend := tcpBackend(t, func(c *net.TCPConn) {
		// Send size bytes while reading (slowly at first) whatever comes.
		sent := make(chan struct{})
		go func() {
			defer close(sent)
			_, _ = io.Copy(c, newStream(2, size))
			_ = c.CloseWrite()
		}()
		defer func() { <-sent }()
		h := sha256.New()
		if _, err := slowCopy(h, c, slow); err != nil {
			t.Errorf("backend read: %v", err)
		}
		var s [32]byte
		h.Sum(s[:0])
		upSum <- s
	})
	addr := freePort(t)
	g := startL4(t, 2, tcpListenerTOML(addr, []string{backend}, ""))

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tk := time.NewTicker(5 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
				var m runtime.MemStats
				runtime.ReadMemStats(&m)
				if m.HeapInuse > peak.Load() {
					peak.Store(m.HeapInuse)
				}
			}
		}
	}()

	c := dialTCP(t, addr)
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	sendErr := make(chan error, 1)
	go func() {
		_, err := io.Copy(c, newStream(1, size))
		if err == nil {
			err = c.CloseWrite()
		}
		sendErr <- err
	}()
	h := sha256.New()
	n, err := slowCopy(h, c, slow)
	if err != nil {
		t.Fatalf("client read after %d bytes: %v", n, err)
	}
	if err := <-sendErr; err != nil {
		t.Fatalf("client send: %v", err)
	}
	close(stop)
	<-sampled
	var down [32]byte
	h.Sum(down[:0])
	if n != size || down != streamSum(2, size) {
		t.Fatalf("download: %d bytes, hash mismatch=%v", n, down != streamSum(2, size))
	}
	select {
	case up := <-upSum:
		if up != streamSum(1, size) {
			t.Fatal("upload hash mismatch")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("backend did not finish")
	}
	growth := int64(peak.Load()) - int64(base)
	t.Logf("heap in use: base %d MiB, peak growth %.1f MiB over %d MiB each way", base>>20, float64(growth)/(1<<20), size>>20)
	if growth > 32<<20 {
		t.Errorf("heap grew by %d MiB relaying %d MiB each way", growth>>20, size>>20)
	}
	if d := g.metric(`expressgateway_stream_detach_total{direction="l4"}`); d < 1 {
		t.Errorf("the pair never left the loop (detach_total = %v)", d)
	}
	if v := g.waitMetric(`expressgateway_l4_sessions_active{listener="l4"}`, 0); v != 0 {
		t.Errorf("sessions_active = %v", v)
	}
	if rx := g.metric(`expressgateway_l4_bytes_total{listener="l4",direction="rx"}`); rx != float64(size) {
		t.Errorf("rx bytes = %v, want %d", rx, size)
	}
	if tx := g.waitMetric(`expressgateway_l4_bytes_total{listener="l4",direction="tx"}`, float64(size)); tx != float64(size) {
		t.Errorf("tx bytes = %v, want %d", tx, size)
	}
}

func TestL4TCPHalfClose(t *testing.T) {
	// Client half-closes first: the backend reads to EOF, then answers.
	countBack := tcpBackend(t, func(c *net.TCPConn) {
		n, _ := io.Copy(io.Discard, c)
		_, _ = fmt.Fprintf(c, "got %d", n)
	})
	// Backend half-closes first: it says hello, sends FIN, then reads.
	backendGot := make(chan string, 1)
	helloBack := tcpBackend(t, func(c *net.TCPConn) {
		_, _ = io.WriteString(c, "hello")
		_ = c.CloseWrite()
		b, _ := io.ReadAll(c)
		backendGot <- string(b)
	})
	for _, tc := range []struct {
		name    string
		backend string
		run     func(t *testing.T, c *net.TCPConn)
	}{
		{"client first", countBack, func(t *testing.T, c *net.TCPConn) {
			if _, err := c.Write(bytes.Repeat([]byte("x"), 1000)); err != nil {
				t.Fatal(err)
			}
			if err := c.CloseWrite(); err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(c)
			if err != nil || string(b) != "got 1000" {
				t.Fatalf("answer %q, %v", b, err)
			}
		}},
		{"backend first", helloBack, func(t *testing.T, c *net.TCPConn) {
			b, err := io.ReadAll(c) // ends at the backend's FIN
			if err != nil || string(b) != "hello" {
				t.Fatalf("read %q, %v", b, err)
			}
			if _, err := io.WriteString(c, "still here"); err != nil {
				t.Fatal(err)
			}
			_ = c.CloseWrite()
			select {
			case got := <-backendGot:
				if got != "still here" {
					t.Fatalf("backend got %q", got)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("backend did not get the bytes sent after its FIN")
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := freePort(t)
			g := startL4(t, 1, tcpListenerTOML(addr, []string{tc.backend}, ""))
			tc.run(t, dialTCP(t, addr))
			if v := g.waitMetric(`expressgateway_l4_sessions_active{listener="l4"}`, 0); v != 0 {
				t.Errorf("sessions_active = %v", v)
			}
		})
	}
}

func TestL4TCPConnectFailureClosesClientFast(t *testing.T) {
	dead := freePort(t) // nothing listens there any more
	addr := freePort(t)
	g := startL4(t, 1, tcpListenerTOML(addr, []string{dead}, ""))
	c := dialTCP(t, addr)
	start := time.Now()
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err := c.Read(make([]byte, 1))
	if err == nil || isTimeout(err) {
		t.Fatalf("client not closed: %v", err)
	}
	if el := time.Since(start); el > time.Second {
		t.Errorf("closed after %v", el)
	}
	// One try plus one retry (max_retries defaults to 1).
	if v := g.waitMetric(`expressgateway_upstream_failures_total{cluster="app",reason="connect_failed"}`, 2); v < 1 {
		t.Errorf("connect failures counted: %v", v)
	}
	if v := g.waitMetric(`expressgateway_l4_sessions_active{listener="l4"}`, 0); v != 0 {
		t.Errorf("sessions_active = %v", v)
	}
}

func TestL4TCPIdleTimeout(t *testing.T) {
	const idle = 300 * time.Millisecond
	bulk := int64(8 << 20)
	backend := tcpBackend(t, func(c *net.TCPConn) {
		var b [1]byte
		if _, err := c.Read(b[:]); err != nil {
			return
		}
		if b[0] == 'B' { // bulk: enough to fill the socket buffers
			_, _ = io.Copy(c, newStream(3, bulk))
		} else {
			_, _ = c.Write(b[:])
		}
		_, _ = io.Copy(io.Discard, c) // then stay silent
	})
	addr := freePort(t)
	g := startL4(t, 1, tcpListenerTOML(addr, []string{backend}, `[listeners.timeouts]
tcp_idle = "300ms"`))
	for _, tc := range []struct {
		name string
		bulk bool
	}{{"on loop", false}, {"off loop", true}} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialTCP(t, addr)
			if tc.bulk {
				_, _ = c.Write([]byte("B"))
				time.Sleep(100 * time.Millisecond) // let the proxy hit EAGAIN
				if n, err := io.CopyN(io.Discard, c, bulk); err != nil {
					t.Fatalf("bulk read %d: %v", n, err)
				}
			} else {
				_, _ = c.Write([]byte("e"))
				if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
					t.Fatal(err)
				}
			}
			start := time.Now()
			_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
			_, err := c.Read(make([]byte, 1))
			el := time.Since(start)
			if err == nil || isTimeout(err) {
				t.Fatalf("not closed when idle: %v", err)
			}
			if el < idle*3/4 || el > idle*4 {
				t.Errorf("closed after %v, tcp_idle is %v", el, idle)
			}
		})
	}
	if d := g.metric(`expressgateway_stream_detach_total{direction="l4"}`); d < 1 {
		t.Errorf("bulk pair stayed on the loop")
	}
}

func TestL4TCPPerIPLimit(t *testing.T) {
	backend := tcpBackend(t, namedEcho("a"))
	addr := freePort(t)
	g := startL4(t, 1, tcpListenerTOML(addr, []string{backend}, "max_connections_per_ip = 2"))
	var first net.Conn
	for i := range 2 {
		c := dialTCP(t, addr)
		if i == 0 {
			first = c
		}
		r := bufio.NewReader(c)
		if _, err := r.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
	}
	c := dialTCP(t, addr)
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("third connection not refused: %v", err)
	}
	if v := g.metric(`expressgateway_guard_tripped_total{guard="max_connections_per_ip"}`); v != 1 {
		t.Errorf("guard hits = %v", v)
	}
	// Closing one frees its slot.
	_ = first.Close()
	g.waitMetric(`expressgateway_l4_sessions_active{listener="l4"}`, 1)
	r := bufio.NewReader(dialTCP(t, addr))
	if _, err := r.ReadString('\n'); err != nil {
		t.Fatalf("slot not released: %v", err)
	}
}

// udpBackend answers each datagram with "name|" + datagram.
func udpBackend(t *testing.T, name string, got *atomic.Int64) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { _ = pc.Close(); <-done })
	go func() {
		defer close(done)
		buf := make([]byte, 64<<10)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if got != nil {
				got.Add(1)
			}
			_, _ = pc.WriteTo(append([]byte(name+"|"), buf[:n]...), from)
		}
	}()
	return pc.LocalAddr().String()
}

func udpListenerTOML(addr string, endpoints []string, extra string) string {
	return fmt.Sprintf(`
[[listeners]]
name = "u4"
listen = %q
protocol = "udp"
cluster = "app"
%s
[[clusters]]
name = "app"
endpoints = %s
`, addr, extra, endpointsTOML(endpoints))
}

// udpAsk sends msg and returns the reply, or "" after wait.
func udpAsk(t *testing.T, c net.Conn, msg string, wait time.Duration) string {
	t.Helper()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 2048)
	n, err := c.Read(buf)
	if err != nil {
		return ""
	}
	return string(buf[:n])
}

func dialUDP(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestL4UDPEchoStickyRoundRobin(t *testing.T) {
	var backends []string
	for _, n := range []string{"a", "b", "c"} {
		backends = append(backends, udpBackend(t, n, nil))
	}
	addr := freeUDPPort(t)
	g := startL4(t, 2, udpListenerTOML(addr, backends, ""))
	seen := map[string]int{}
	const clients = 30
	for i := range clients {
		c := dialUDP(t, addr)
		var first string
		for j := range 4 {
			msg := fmt.Sprintf("c%d-%d", i, j)
			got := udpAsk(t, c, msg, 2*time.Second)
			name, body, ok := strings.Cut(got, "|")
			if !ok || body != msg {
				t.Fatalf("client %d: reply %q to %q", i, got, msg)
			}
			if j == 0 {
				first = name
				seen[name]++
			} else if name != first {
				t.Fatalf("client %d: session moved from %s to %s", i, first, name)
			}
		}
	}
	for _, n := range []string{"a", "b", "c"} {
		if seen[n] != clients/3 {
			t.Errorf("round robin over sessions: %v", seen)
			break
		}
	}
	if v := g.metric(`expressgateway_l4_sessions_total{listener="u4"}`); v != clients {
		t.Errorf("sessions_total = %v", v)
	}
	if v := g.metric(`expressgateway_l4_sessions_active{listener="u4"}`); v != clients {
		t.Errorf("sessions_active = %v", v)
	}
	if rx := g.metric(`expressgateway_l4_bytes_total{listener="u4",direction="rx"}`); rx < clients*4*4 {
		t.Errorf("rx = %v", rx)
	}
}

func TestL4UDPSessionExpiry(t *testing.T) {
	var backends []string
	for _, n := range []string{"a", "b"} {
		backends = append(backends, udpBackend(t, n, nil))
	}
	addr := freeUDPPort(t)
	g := startL4(t, 1, udpListenerTOML(addr, backends, `udp_session_timeout = "300ms"`))
	c := dialUDP(t, addr)
	first, _, _ := strings.Cut(udpAsk(t, c, "one", 2*time.Second), "|")
	again, _, _ := strings.Cut(udpAsk(t, c, "two", 2*time.Second), "|")
	if first == "" || again != first {
		t.Fatalf("replies from %q then %q", first, again)
	}
	if v := g.waitMetric(`expressgateway_l4_sessions_active{listener="u4"}`, 0); v != 0 {
		t.Fatalf("session not expired: active = %v", v)
	}
	// A new session, and round robin gives it the other backend.
	next, _, _ := strings.Cut(udpAsk(t, c, "three", 2*time.Second), "|")
	if next == "" || next == first {
		t.Errorf("after expiry: reply from %q (first session: %q)", next, first)
	}
	if v := g.metric(`expressgateway_l4_sessions_total{listener="u4"}`); v != 2 {
		t.Errorf("sessions_total = %v", v)
	}
}

func TestL4UDPManyClients(t *testing.T) {
	var got atomic.Int64
	var backends []string
	for _, n := range []string{"a", "b", "c"} {
		backends = append(backends, udpBackend(t, n, &got))
	}
	addr := freeUDPPort(t)
	g := startL4(t, 2, udpListenerTOML(addr, backends, ""))
	const clients, each = 200, 10
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Four client IPs, 50 ports each: under the default
			// max_sessions_per_ip (64).
			local := &net.UDPAddr{IP: net.IPv4(127, 0, 0, byte(1+i%4))}
			c, err := net.DialUDP("udp", local, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
			if err != nil {
				errs <- err
				return
			}
			defer func() { _ = c.Close() }()
			buf := make([]byte, 2048)
			for j := range each {
				msg := fmt.Sprintf("c%d-%d", i, j)
				// UDP may drop under load: retry a few times.
				ok := false
				for try := 0; try < 5 && !ok; try++ {
					_, _ = c.Write([]byte(msg))
					_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
					for {
						n, err := c.Read(buf)
						if err != nil {
							break
						}
						if _, body, _ := strings.Cut(string(buf[:n]), "|"); body == msg {
							ok = true
							break
						}
					}
				}
				if !ok {
					errs <- fmt.Errorf("client %d: no reply to %s", i, msg)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if v := g.metric(`expressgateway_l4_sessions_active{listener="u4"}`); v != clients {
		t.Errorf("sessions_active = %v, want %d", v, clients)
	}
}

func TestL4UDPSessionCap(t *testing.T) {
	backend := udpBackend(t, "a", nil)
	addr := freeUDPPort(t)
	g := startL4(t, 1, udpListenerTOML(addr, []string{backend}, "max_connections = 3"))
	for i := range 3 {
		if r := udpAsk(t, dialUDP(t, addr), "hi", 2*time.Second); r != "a|hi" {
			t.Fatalf("client %d: %q", i, r)
		}
	}
	if r := udpAsk(t, dialUDP(t, addr), "hi", 300*time.Millisecond); r != "" {
		t.Fatalf("fourth client served: %q", r)
	}
	if v := g.metric(`expressgateway_guard_tripped_total{guard="udp_sessions"}`); v < 1 {
		t.Errorf("guard hits = %v", v)
	}
}

// One engine serves http, tcp and udp listeners side by side.
func TestL4MixedWithHTTP(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "http ok") })
	tcpBack := tcpBackend(t, namedEcho("tcp"))
	udpBack := udpBackend(t, "udp", nil)
	httpAddr, tcpAddr, udpAddr := freePort(t), freePort(t), freeUDPPort(t)
	startL4(t, 2, fmt.Sprintf(`
[[listeners]]
name = "web"
listen = %q
[[listeners.routes]]
path_prefix = "/"
cluster = "app"
[[listeners]]
name = "raw"
listen = %q
protocol = "tcp"
cluster = "rawc"
[[listeners]]
name = "dgram"
listen = %q
protocol = "udp"
cluster = "udpc"
[[clusters]]
name = "app"
endpoints = [ { address = %q } ]
[[clusters]]
name = "rawc"
endpoints = [ { address = %q } ]
[[clusters]]
name = "udpc"
endpoints = [ { address = %q } ]
`, httpAddr, tcpAddr, udpAddr, o.addr(), tcpBack, udpBack))
	resp, err := http.Get("http://" + httpAddr + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if string(body) != "http ok" {
		t.Errorf("http: %q", body)
	}
	r := bufio.NewReader(dialTCP(t, tcpAddr))
	if name, err := r.ReadString('\n'); err != nil || name != "tcp\n" {
		t.Errorf("tcp: %q, %v", name, err)
	}
	if got := udpAsk(t, dialUDP(t, udpAddr), "x", 2*time.Second); got != "udp|x" {
		t.Errorf("udp: %q", got)
	}
}

// Stop ends pairs relayed off the loops too.
func TestL4StopClosesOffloopPairs(t *testing.T) {
	backend := tcpBackend(t, func(c *net.TCPConn) {
		_, _ = io.Copy(c, newStream(4, 64<<20)) // the client never reads
	})
	addr := freePort(t)
	g := startL4(t, 1, tcpListenerTOML(addr, []string{backend}, ""))
	c := dialTCP(t, addr)
	deadline := time.Now().Add(5 * time.Second)
	for g.metric(`expressgateway_stream_detach_total{direction="l4"}`) < 1 {
		if time.Now().After(deadline) {
			t.Fatal("pair never left the loop")
		}
		time.Sleep(10 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := g.eng.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.Copy(io.Discard, c); isTimeout(err) {
		t.Fatal("client still open after Stop")
	}
	if v := g.waitMetric(`expressgateway_l4_sessions_active{listener="l4"}`, 0); v != 0 {
		t.Errorf("sessions_active = %v", v)
	}
}

// An endpoint that answers with ICMP port unreachable ends the session and
// counts as a failure.
func TestL4UDPRefusedEndsSession(t *testing.T) {
	dead := freeUDPPort(t)
	addr := freeUDPPort(t)
	g := startL4(t, 1, udpListenerTOML(addr, []string{dead}, ""))
	c := dialUDP(t, addr)
	for i := 0; i < 20 && g.metric(`expressgateway_upstream_failures_total{cluster="app",reason="refused"}`) == 0; i++ {
		if r := udpAsk(t, c, "anyone?", 50*time.Millisecond); r != "" {
			t.Fatalf("reply %q from a closed port", r)
		}
	}
	if v := g.metric(`expressgateway_upstream_failures_total{cluster="app",reason="refused"}`); v < 1 {
		t.Fatalf("refusals counted: %v", v)
	}
	if v := g.waitMetric(`expressgateway_l4_sessions_active{listener="u4"}`, 0); v != 0 {
		t.Errorf("sessions_active = %v", v)
	}
}

// A panic while relaying closes that pair only.
func TestL4TCPPanicClosesOnlyThatPair(t *testing.T) {
	backend := tcpBackend(t, namedEcho("a"))
	addr := freePort(t)
	g := startL4(t, 1, tcpListenerTOML(addr, []string{backend}, ""))
	hook := func(c gnet.Conn) {
		if b, _ := c.Peek(-1); bytes.Contains(b, []byte("PANIC")) {
			panic("injected")
		}
	}
	l4TestHook.Store(&hook)
	t.Cleanup(func() { l4TestHook.Store(nil) })
	goodConn := dialTCP(t, addr)
	good := bufio.NewReader(goodConn)
	if _, err := good.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	bad := dialTCP(t, addr)
	if _, err := bufio.NewReader(bad).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	_, _ = bad.Write([]byte("PANIC"))
	_ = bad.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := bad.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("panicking pair not closed: %v", err)
	}
	if v := g.metric(`expressgateway_panic_total`); v != 1 {
		t.Errorf("panic_total = %v", v)
	}
	if v := g.waitMetric(`expressgateway_l4_sessions_active{listener="l4"}`, 1); v != 1 {
		t.Errorf("sessions_active = %v", v)
	}
	// The other pair still relays, and new ones are admitted.
	if _, err := io.WriteString(goodConn, "ping\n"); err != nil {
		t.Fatal(err)
	}
	if s, err := good.ReadString('\n'); err != nil || s != "ping\n" {
		t.Fatalf("other pair: %q, %v", s, err)
	}
	if _, err := bufio.NewReader(dialTCP(t, addr)).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
}

// keepaliveTimers reports, for each established IPv4 socket of this host
// whose remote port is port and local port is not, whether its keepalive
// timer is armed (/proc/net/tcp "tr" 2), keyed by local port.
func keepaliveTimers(t *testing.T, port int) map[int]bool {
	t.Helper()
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]bool{}
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 6 || f[3] != "01" {
			continue
		}
		_, lp, _ := strings.Cut(f[1], ":")
		_, rp, _ := strings.Cut(f[2], ":")
		l, _ := strconv.ParseInt(lp, 16, 32)
		r, _ := strconv.ParseInt(rp, 16, 32)
		if int(r) != port || int(l) == port {
			continue
		}
		tr, _, _ := strings.Cut(f[5], ":")
		out[int(l)] = tr == "02"
	}
	return out
}

// TestL4TCPUpstreamNoKeepalive: the relay's upstream sockets go without
// TCP keepalive, like HAProxy's mode tcp and nginx's stream by default
// (four setsockopt calls per connection saved; tcp_idle bounds a silent
// peer). A socket dialed with Go's default in the same test shows the
// check sees an armed keepalive timer.
func TestL4TCPUpstreamNoKeepalive(t *testing.T) {
	backend := tcpBackend(t, namedEcho("a"))
	_, bp, _ := net.SplitHostPort(backend)
	port, _ := strconv.Atoi(bp)
	addr := freePort(t)
	startL4(t, 1, tcpListenerTOML(addr, []string{backend}, ""))

	control := dialTCP(t, backend) // Go's default: keepalive on
	c := dialTCP(t, addr)
	if _, err := bufio.NewReader(c).ReadString('\n'); err != nil { // the pair is up
		t.Fatal(err)
	}
	timers := keepaliveTimers(t, port)
	ctl := control.LocalAddr().(*net.TCPAddr).Port
	if on, ok := timers[ctl]; !ok || !on {
		t.Fatalf("the control socket (port %d, Go's default keepalive) not seen with its keepalive timer: %v", ctl, timers)
	}
	delete(timers, ctl)
	if len(timers) != 1 {
		t.Fatalf("want one relay upstream socket to %s, found %v", backend, timers)
	}
	for p, on := range timers {
		if on {
			t.Errorf("the relay's upstream socket (port %d) has a keepalive timer", p)
		}
	}
}
