// SPDX-License-Identifier: GPL-3.0-only

package main

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// fdCount is the number of open descriptors of process pid.
func fdCount(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestClientThatStopsReadingIsLetGo: a client that asks for a large
// response and then never reads (its TCP window shut) is cut by the
// listener's timeouts, and once cut it holds nothing in the gateway: no
// socket, no goroutine, while the client still keeps its end open. Over
// cleartext and TLS, HTTP/1.1 (whose response leaves the loop for a pump)
// and HTTP/2 (on the loop).
func TestClientThatStopsReadingIsLetGo(t *testing.T) {
	origin, _ := h1Origin(t)
	ca := newTestCA(t, "stopread")
	cert, key, _ := ca.issue(t, "stopread", "stopread.test", leafOpts{dns: []string{"stopread.test"}})
	plain, secure, admin := freeAddr(t), freeAddr(t), freeAddr(t)
	cmd := startBinary(t, fmt.Sprintf(`
[admin]
listen = %q
[engine]
event_loops = 2
[log]
access_log = false
[[listeners]]
name = "plain"
listen = %q
protocol = "http"
max_connections = 1000
[listeners.timeouts]
body_idle = "1s"
[listeners.http2]
stall_timeout = "1s"
[[listeners.routes]]
cluster = "app"
[[listeners]]
name = "tls"
listen = %q
protocol = "https"
max_connections = 1000
[listeners.timeouts]
body_idle = "1s"
[listeners.http2]
stall_timeout = "1s"
[listeners.tls]
[[listeners.tls.certificates]]
cert_file = %q
key_file = %q
[[listeners.routes]]
cluster = "app"
[[clusters]]
name = "app"
endpoints = [ { address = %q } ]
`, admin, plain, secure, cert, key, origin), admin)
	waitReady(t, admin)
	pid := cmd.Process.Pid
	// One warm-up request per listener and protocol, so that pooled
	// upstream connections and goroutines are in the baseline.
	const path = "/download?n=67108864"
	dial := func(tlsOn, h2 bool) net.Conn {
		t.Helper()
		d := net.Dialer{Timeout: 5 * time.Second}
		var c net.Conn
		var err error
		if tlsOn {
			proto := "http/1.1"
			if h2 {
				proto = "h2"
			}
			c, err = tls.DialWithDialer(&d, "tcp", secure, &tls.Config{RootCAs: ca.pool, ServerName: "stopread.test", NextProtos: []string{proto}})
		} else {
			c, err = d.Dial("tcp", plain)
		}
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	ask := func(c net.Conn, h2 bool) {
		t.Helper()
		if !h2 {
			if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: stopread.test\r\n\r\n", path); err != nil {
				t.Fatal(err)
			}
			return
		}
		f := dialH2On(t, c)
		_ = f.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 30})
		_ = f.fr.WriteWindowUpdate(0, 1<<30)
		f.until(t, "the server's SETTINGS", func(fr http2.Frame) bool {
			s, ok := fr.(*http2.SettingsFrame)
			return ok && !s.IsAck()
		})
		f.headers(t, 1, true, ":method", "GET", ":scheme", "https", ":authority", "stopread.test", ":path", path)
	}
	time.Sleep(300 * time.Millisecond)
	baseFDs, baseG := fdCount(t, pid), goroutines(t, admin)
	var held []net.Conn
	for _, tlsOn := range []bool{false, true} {
		for _, h2 := range []bool{false, true} {
			for range 3 {
				c := dial(tlsOn, h2)
				ask(c, h2)
				held = append(held, c) // and never read again
			}
		}
	}
	time.Sleep(500 * time.Millisecond)
	peakFDs, peakG := fdCount(t, pid), goroutines(t, admin)
	t.Logf("baseline %d fds, %d goroutines; with %d stalled clients %d fds, %d goroutines", baseFDs, baseG, len(held), peakFDs, peakG)
	deadline := time.Now().Add(30 * time.Second)
	var fds, g int
	for {
		fds, g = fdCount(t, pid), goroutines(t, admin)
		if fds <= baseFDs && g <= baseG+1 { // a lingering TLS client is 1 fd and 2 goroutines
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("30 s after %d clients stopped reading the gateway still holds %d fds (baseline %d) and %d goroutines (baseline %d)", len(held), fds, baseFDs, g, baseG)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("released: %d fds, %d goroutines", fds, g)
	if n := metricSum(t, admin, `^expressgateway_guard_tripped_total\{guard="send_stall"\}$`); n < 6 {
		t.Errorf("send_stall tripped %v times for 6 HTTP/1.1 clients that stopped reading", n)
	}
	if n := metricSum(t, admin, `^expressgateway_guard_tripped_total\{guard="h2_conn_stall"\}$`); n < 6 {
		t.Errorf("h2_conn_stall tripped %v times for 6 HTTP/2 clients that stopped reading", n)
	}
	for _, c := range held {
		_ = c.Close()
	}
	// The listeners go on.
	for _, base := range []string{"http://" + plain} {
		resp, err := http.Get(base + "/download?n=1000")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("after the stalled clients: %d", resp.StatusCode)
		}
	}
	if code, _, _ := getBody(t, tlsClient(ca, "stopread.test", true), "https://"+secure+"/download?n=1000"); code != 200 {
		t.Fatalf("TLS after the stalled clients: %d", code)
	}
	if n := metricSum(t, admin, `^expressgateway_panics_total$`); n != 0 {
		t.Errorf("%v panics", n)
	}
}

// TestClientClosesDuringPumpedResponse: HTTP/1.1 clients that read part of
// a large response slowly (so it leaves the loop for a pump) and then close
// the connection, over cleartext and TLS. The gateway once dereferenced the
// exchange the client's close had released when the pump ended, and that
// panic on the event loop killed the process. It must count each as a
// client close (499), blame no endpoint, and go on serving.
func TestClientClosesDuringPumpedResponse(t *testing.T) {
	origin, _ := h1Origin(t)
	ca := newTestCA(t, "pumpclose")
	cert, key, _ := ca.issue(t, "pumpclose", "pumpclose.test", leafOpts{dns: []string{"pumpclose.test"}})
	plain, secure, admin := freeAddr(t), freeAddr(t), freeAddr(t)
	cmd := startBinary(t, fmt.Sprintf(`
[admin]
listen = %q
[engine]
event_loops = 2
[log]
access_log = false
[[listeners]]
name = "plain"
listen = %q
protocol = "http"
max_connections = 1000
[listeners.limits]
max_inflight_bytes = "64KiB"
[[listeners.routes]]
cluster = "app"
[[listeners]]
name = "tls"
listen = %q
protocol = "https"
max_connections = 1000
[listeners.limits]
max_inflight_bytes = "64KiB"
[listeners.tls]
[[listeners.tls.certificates]]
cert_file = %q
key_file = %q
[[listeners.routes]]
cluster = "app"
[[clusters]]
name = "app"
endpoints = [ { address = %q } ]
`, admin, plain, secure, cert, key, origin), admin)
	waitReady(t, admin)
	baseG := goroutines(t, admin)
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var c net.Conn
			var err error
			if i%2 == 0 {
				c, err = net.Dial("tcp", plain)
			} else {
				c, err = tls.Dial("tcp", secure, &tls.Config{RootCAs: ca.pool, ServerName: "pumpclose.test", NextProtos: []string{"http/1.1"}})
			}
			if err != nil {
				t.Error(err)
				return
			}
			defer func() { _ = c.Close() }()
			_, _ = fmt.Fprintf(c, "GET /download?n=67108864 HTTP/1.1\r\nHost: pumpclose.test\r\n\r\n")
			// Read about 1 MiB at 4 MiB/s, then hang up mid-body.
			buf := make([]byte, 16<<10)
			for range 64 {
				_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
				if _, err := io.ReadFull(c, buf); err != nil {
					t.Errorf("reading the response: %v", err)
					return
				}
				time.Sleep(4 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	// Each pump ends with its client: nothing is left holding an upstream.
	// A leak per client would be 16 or more; the slack of 4 is for the
	// runtime's and the pools' own goroutines on a loaded machine (one
	// full make test ended 3 over; not yet explained, see the issue note).
	hungUp := time.Now()
	for deadline := time.Now().Add(10 * time.Second); ; {
		g := goroutines(t, admin)
		if g <= baseG+4 {
			t.Logf("%d goroutines (%d before) %v after the last hang-up", g, baseG, time.Since(hungUp).Round(time.Millisecond))
			break
		}
		if time.Now().After(deadline) {
			// Name the ones left, so that a failure explains itself.
			t.Fatalf("10 s after 16 clients hung up: %d goroutines, %d before; goroutines now:\n%s", g, baseG, goroutineDump(admin))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if cmd.ProcessState != nil {
		t.Fatal("the gateway exited")
	}
	if code, _, _ := getBody(t, tlsClient(ca, "pumpclose.test", false), "https://"+secure+"/download?n=1000"); code != 200 {
		t.Fatalf("after the closes: %d", code)
	}
	m := scrape(t, admin)
	if v := metricValue(m, `expressgateway_stream_detach_total{direction="response"}`); v < 16 {
		t.Errorf("stream_detach_total{direction=\"response\"} = %v: the responses did not leave the loop, the test missed the pump", v)
	}
	if n := metricSum(t, admin, `^expressgateway_panics_total$`); n != 0 {
		t.Errorf("%v panics", n)
	}
	if n := metricSum(t, admin, `^expressgateway_upstream_failures_total\{.*\}$`); n != 0 {
		t.Errorf("%v upstream failures counted for clients that hung up", n)
	}
}
