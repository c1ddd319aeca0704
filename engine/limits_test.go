// SPDX-License-Identifier: GPL-3.0-only

package engine

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestListenerQueueFull503(t *testing.T) {
	release := make(chan struct{})
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		<-release
		_, _ = io.WriteString(w, "ok")
	})
	defer close(release)
	g := startGWLoops(t, 1, []string{o.addr()}, "queue_size = 1\n", "", nil)
	a := dialRaw(t, g.addr)
	a.send(t, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
	for o.requests.Load() == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	b := dialRaw(t, g.addr)
	b.send(t, "GET /b HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, _ := b.readResponse(t, "GET")
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("status %d Retry-After %q, want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if g.waitMetric(`expressgateway_guard_tripped_total{guard="queue_full"}`, 1) != 1 {
		t.Fatal("queue_full not counted")
	}
	release <- struct{}{}
	if resp, _ := a.readResponse(t, "GET"); resp.StatusCode != 200 {
		t.Fatalf("in-flight request: %d", resp.StatusCode)
	}
}

func TestSlowPostClosed(t *testing.T) {
	o := echoOrigin(t)
	g := startGW(t, []string{o.addr()}, `
[listeners.timeouts]
body_min_rate = 1000
body_min_rate_grace = "300ms"
`, "", nil)
	c := dialRaw(t, g.addr)
	c.send(t, "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
	// Trickle far below 1000 B/s.
	stop := time.After(3 * time.Second)
	got := make(chan int, 1)
	go func() {
		resp, err := http.ReadResponse(c.r, nil)
		if err != nil {
			got <- 0
			return
		}
		got <- resp.StatusCode
	}()
	for {
		select {
		case code := <-got:
			if code != 408 {
				t.Fatalf("status %d, want 408", code)
			}
			if g.waitMetric(`expressgateway_guard_tripped_total{guard="slow_post"}`, 1) != 1 {
				t.Fatal("slow_post not counted")
			}
			if o.requests.Load() != 0 {
				t.Fatal("the partial body reached the upstream")
			}
			return
		case <-stop:
			t.Fatal("slow POST not cut off")
		case <-time.After(100 * time.Millisecond):
			_, _ = c.Write([]byte("x")) // fails once cut off; the cases above see it
		}
	}
}

func TestBodyIdleClosed(t *testing.T) {
	o := echoOrigin(t)
	g := startGW(t, []string{o.addr()}, `
[listeners.timeouts]
body_idle = "300ms"
body_min_rate = 0
`, "", nil)
	c := dialRaw(t, g.addr)
	c.send(t, "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		t.Fatalf("no response: %v", err)
	}
	if resp.StatusCode != 408 {
		t.Fatalf("status %d, want 408", resp.StatusCode)
	}
	if g.waitMetric(`expressgateway_guard_tripped_total{guard="body_idle"}`, 1) != 1 {
		t.Fatal("body_idle not counted")
	}
}

func TestIdleKeepAliveClosed(t *testing.T) {
	o := echoOrigin(t)
	g := startGW(t, []string{o.addr()}, `
[listeners.timeouts]
idle_keepalive = "300ms"
`, "", nil)
	c := dialRaw(t, g.addr)
	c.send(t, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	c.readResponse(t, "GET")
	start := time.Now()
	if !c.closedByPeer(3 * time.Second) {
		t.Fatal("idle keep-alive connection not closed")
	}
	if el := time.Since(start); el < 200*time.Millisecond {
		t.Fatalf("closed after %v, before the idle timeout", el)
	}
}

func TestPipelineFloodCut(t *testing.T) {
	release := make(chan struct{})
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		<-release
	})
	defer close(release)
	g := startGW(t, []string{o.addr()}, `
[listeners.limits]
max_header_bytes = "1KiB"
max_inflight_bytes = "4KiB"
`, "", nil)
	c := dialRaw(t, g.addr)
	c.send(t, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
	for o.requests.Load() == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	flood := strings.Repeat("GET / HTTP/1.1\r\nHost: x\r\n\r\n", 400) // ~11 KiB
	_, _ = c.Write([]byte(flood))                                     // the gateway may cut us off mid-write
	if !c.closedByPeer(3 * time.Second) {
		t.Fatal("pipelining flood not cut off")
	}
	if g.waitMetric(`expressgateway_guard_tripped_total{guard="pipeline_flood"}`, 1) != 1 {
		t.Fatal("pipeline_flood not counted")
	}
}

func TestRetryIdempotentOnConnectFailure(t *testing.T) {
	o := echoOrigin(t)
	dead := freePort(t)
	g := startGW(t, []string{dead, o.addr()}, "", `
[clusters.retry]
max_retries = 1
`, nil)
	for i := 0; i < 6; i++ {
		c := dialRaw(t, g.addr)
		c.send(t, "GET /r HTTP/1.1\r\nHost: x\r\n\r\n")
		if resp, _ := c.readResponse(t, "GET"); resp.StatusCode != 200 {
			t.Fatalf("request %d: %d, want 200 through a retry", i, resp.StatusCode)
		}
	}
	if g.metric(`expressgateway_upstream_failures_total{cluster="app",reason="retried"}`) < 1 {
		t.Fatal("no retry counted")
	}
}

func TestPerTryTimeoutRetriesElsewhere(t *testing.T) {
	slow := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(2 * time.Second)
		_, _ = io.WriteString(w, "slow")
	})
	fast := newOrigin(t, func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "fast") })
	g := startGW(t, []string{slow.addr(), fast.addr()}, "", `
[clusters.retry]
max_retries = 1
per_try_timeout = "200ms"
retry_on = ["504"]
budget_percent = 100.0
`, nil)
	for i := 0; i < 4; i++ {
		c := dialRaw(t, g.addr)
		start := time.Now()
		c.send(t, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, body := c.readResponse(t, "GET")
		if resp.StatusCode != 200 || body != "fast" {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
		}
		if el := time.Since(start); el > time.Second {
			t.Fatalf("request %d took %v", i, el)
		}
	}
	if g.metric(`expressgateway_guard_tripped_total{guard="per_try_timeout"}`) < 1 {
		t.Fatal("per-try timeout never fired")
	}
}

func TestRetryOnExcludesUnlistedCauses(t *testing.T) {
	o := echoOrigin(t)
	dead := freePort(t)
	g := startGWLoops(t, 1, []string{dead, o.addr()}, "", `
[clusters.retry]
max_retries = 1
retry_on = ["503"]
`, nil)
	saw502 := false
	for i := 0; i < 4; i++ {
		c := dialRaw(t, g.addr)
		c.send(t, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		if resp, _ := c.readResponse(t, "GET"); resp.StatusCode == 502 {
			saw502 = true
		}
	}
	if !saw502 {
		t.Fatal("connect failures were retried although retry_on lacks connect-failure")
	}
}
