// SPDX-License-Identifier: GPL-3.0-only

package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// clientConn is a raw keep-alive HTTP/1.1 client connection.
type clientConn struct {
	net.Conn
	r *bufio.Reader
}

func dialClient(t *testing.T, addr string) *clientConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &clientConn{Conn: c, r: bufio.NewReader(c)}
}

// get sends GET path and reads the whole response.
func (c *clientConn) get(path string) (*http.Response, string, error) {
	if err := c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return nil, "", err
	}
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: gw\r\n\r\n", path); err != nil {
		return nil, "", err
	}
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		return nil, "", err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	return resp, string(b), err
}

// closed reports, once, when the peer closes c: it reads until an error.
// Nothing else may read c meanwhile.
func (c *clientConn) closed() <-chan time.Time {
	ch := make(chan time.Time, 1)
	go func() {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, _ = io.Copy(io.Discard, c.r)
		ch <- time.Now()
	}()
	return ch
}

// TestSIGTERMDrain follows a SIGTERM through the binary: /readyz turns 503
// within 100 ms; for engine.drain_settle the gateway still serves new and
// idle keep-alive connections normally; then it drains: a response in
// flight ends with "Connection: close", the idle keep-alive connection is
// closed, new connections are refused; a request still unanswered after
// engine.drain_timeout is cut, counted in the log line, and the process
// exits 0.
func TestSIGTERMDrain(t *testing.T) {
	const settle, budget = 600 * time.Millisecond, 800 * time.Millisecond
	var hung atomic.Int64
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	origin := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/slow":
			time.Sleep(700 * time.Millisecond)
		case "/hang":
			hung.Add(1)
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		_, _ = io.WriteString(w, r.URL.Path)
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = origin.Serve(ln) }()
	t.Cleanup(func() { _ = origin.Close() })

	web, admin := freeAddr(t), freeAddr(t)
	cfg := fmt.Sprintf(`
[admin]
listen = %q
[log]
access_log = false
[engine]
drain_settle = %q
drain_timeout = %q
[[listeners]]
name = "web"
listen = %q
[listeners.timeouts]
upstream_response_header = "30s"
[[listeners.routes]]
cluster = "app"
[[clusters]]
name = "app"
endpoints = [ { address = %q } ]
`, admin, settle, budget, web, ln.Addr())
	cmd, logPath := startBinaryLog(t, cfg, web)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	idle := dialClient(t, web)
	if resp, body, err := idle.get("/warm"); err != nil || resp.StatusCode != 200 || body != "/warm" {
		t.Fatalf("warm-up: %v %v %q", resp, err, body)
	}
	hang := dialClient(t, web)
	if _, err := io.WriteString(hang, "GET /hang HTTP/1.1\r\nHost: gw\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(2 * time.Second); hung.Load() == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the /hang request did not reach the upstream")
		}
	}
	hangClosed := hang.closed()

	// SIGTERM: /readyz answers 503 within 100 ms.
	readyz := &http.Client{Timeout: 100 * time.Millisecond}
	term := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for {
		resp, err := readyz.Get("http://" + admin + "/readyz")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusServiceUnavailable {
				break
			}
		}
		if time.Since(term) > 100*time.Millisecond {
			t.Fatalf("/readyz not 503 within 100 ms of SIGTERM (last: %v)", err)
		}
		time.Sleep(2 * time.Millisecond)
	}
	lameduck := time.Since(term)

	// Settle: a new connection and the idle keep-alive one are served as
	// usual, keep-alive included.
	fresh := dialClient(t, web)
	for name, c := range map[string]*clientConn{"new": fresh, "idle keep-alive": idle} {
		resp, body, err := c.get("/during-settle")
		if err != nil || resp.StatusCode != 200 || body != "/during-settle" || resp.Close {
			t.Fatalf("%s connection during the settle: %v %q close=%v", name, err, body, resp != nil && resp.Close)
		}
	}
	if time.Since(term) >= settle {
		t.Fatalf("the settle checks took %v, longer than the settle (%v): the machine is too slow for this test", time.Since(term), settle)
	}
	idleClosed := idle.closed()
	// A response that is still in flight when the drain starts ends with
	// Connection: close.
	slowResp := make(chan string, 1)
	go func() {
		resp, body, err := fresh.get("/slow")
		if err != nil {
			slowResp <- err.Error()
			return
		}
		slowResp <- fmt.Sprintf("%d %s close=%v", resp.StatusCode, body, resp.Close)
	}()

	select {
	case at := <-idleClosed:
		if at.Sub(term) < settle {
			t.Fatalf("the idle keep-alive connection was closed %v after SIGTERM, within the settle (%v)", at.Sub(term), settle)
		}
	case <-time.After(settle + budget):
		t.Fatal("the idle keep-alive connection was not closed by the drain")
	}
	// Draining: a new connection is refused (closed without an answer).
	late, err := net.DialTimeout("tcp", web, time.Second)
	if err == nil {
		_ = late.SetDeadline(time.Now().Add(time.Second))
		_, _ = io.WriteString(late, "GET / HTTP/1.1\r\nHost: gw\r\n\r\n")
		if n, err := late.Read(make([]byte, 64)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("a connection opened while draining was not refused (%d bytes, %v)", n, err)
		}
		_ = late.Close()
	}
	if got := <-slowResp; got != "200 /slow close=true" {
		t.Errorf("in-flight response across the drain start: %s, want 200 /slow close=true", got)
	}
	// The hung request outlives the budget: cut, counted, and the process exits 0.
	select {
	case at := <-hangClosed:
		if at.Sub(term) < settle+budget-50*time.Millisecond {
			t.Errorf("the hung request was cut %v after SIGTERM, before settle + drain_timeout (%v)", at.Sub(term), settle+budget)
		}
	case <-time.After(settle + budget + 5*time.Second):
		t.Fatal("the hung request was not cut after the drain budget")
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the process did not exit after the drain")
	}
	logs, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	var cut string
	for _, l := range strings.Split(string(logs), "\n") {
		if strings.Contains(l, `"message":"drain budget spent; closing the rest"`) {
			cut = l
		}
	}
	if !strings.Contains(cut, `"connections":1,`) {
		t.Fatalf("no log line counting the 1 connection cut after the budget:\n%s", logs)
	}
	t.Logf("readyz 503 after %v; log: %s", lameduck, cut)
}

// TestSIGINTSkipsSettle: Ctrl-C at a terminal drains at once, without the
// settle meant for load balancers.
func TestSIGINTSkipsSettle(t *testing.T) {
	up := freeAddr(t)
	web := freeAddr(t)
	cfg := fmt.Sprintf(`
[admin]
listen = ""
[demo]
enabled = true
listen = %q
[engine]
drain_settle = "20s"
[[listeners]]
name = "web"
listen = %q
[[listeners.routes]]
cluster = "demo"
[[clusters]]
name = "demo"
endpoints = [ { address = %q } ]
`, up, web, up)
	cmd := startBinary(t, cfg, web)
	start := time.Now()
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after SIGINT: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("SIGINT waited for the settle")
	}
	t.Logf("exited %v after SIGINT", time.Since(start))
}
