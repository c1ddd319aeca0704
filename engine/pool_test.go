// SPDX-License-Identifier: GPL-3.0-only

package engine

import (
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestUpstreamIdleTimeoutTrimsPool(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") })
	closed := &o.closed
	g := startGW(t, []string{o.addr()}, `
[listeners.timeouts]
upstream_idle = "200ms"
`, "", nil)
	c := dialRaw(t, g.addr)
	c.send(t, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	c.readResponse(t, "GET")
	deadline := time.Now().Add(3 * time.Second)
	for closed.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if closed.Load() != 1 {
		t.Fatal("idle upstream connection not closed after upstream_idle")
	}
	if g.waitMetric(`expressgateway_upstream_connections_active{cluster="app"}`, 0) != 0 {
		t.Fatal("active upstream gauge not back to 0")
	}
}

func TestMaxIdlePerEndpoint(t *testing.T) {
	release := make(chan struct{})
	var inflight atomic.Int64
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		inflight.Add(1)
		<-release
		_, _ = io.WriteString(w, "ok")
	})
	g := startGWLoops(t, 1, []string{o.addr()}, "", "max_idle_per_endpoint = 1\n", nil)
	var wg sync.WaitGroup
	for i := 0; i < 3; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := dialRaw(t, g.addr)
			c.send(t, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
			c.readResponse(t, "GET")
		}()
	}
	for inflight.Load() < 3 {
		time.Sleep(5 * time.Millisecond)
	}
	close(release)
	wg.Wait()
	// Three connections were needed at once; one may stay pooled.
	if v := g.waitMetric(`expressgateway_upstream_connections_active{cluster="app"}`, 1); v != 1 {
		t.Fatalf("pooled upstream connections = %v, want 1 (max_idle_per_endpoint)", v)
	}
}
