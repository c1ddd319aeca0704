// SPDX-License-Identifier: GPL-3.0-only

package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// backend is a loopback upstream that answers its own name, and can be
// killed and revived on the same address.
type backend struct {
	name string
	addr string
	mu   sync.Mutex
	srv  *http.Server
	hits atomic.Int64
	// srvHandler, when set before start, sees each request first and
	// reports whether it answered it.
	srvHandler func(w http.ResponseWriter, r *http.Request) bool
}

func newBackend(t *testing.T, name string) *backend {
	t.Helper()
	b := &backend{name: name, addr: freeAddr(t)}
	b.start(t)
	t.Cleanup(b.stop)
	return b
}

func (b *backend) start(t *testing.T) {
	t.Helper()
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ { // the port may linger briefly after a kill
		if ln, err = net.Listen("tcp", b.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("backend %s: %v", b.name, err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if b.srvHandler != nil && b.srvHandler(w, r) {
			return
		}
		if r.URL.Path != "/healthz" {
			b.hits.Add(1)
		}
		_, _ = io.WriteString(w, b.name)
	})}
	b.mu.Lock()
	b.srv = srv
	b.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

func (b *backend) stop() {
	b.mu.Lock()
	srv := b.srv
	b.srv = nil
	b.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

// lbGateway starts the binary in front of backends with the given cluster
// body (everything after `name = "app"`, endpoints excluded) and endpoint
// extras (e.g. `, priority = 1`) per backend.
func lbGateway(t *testing.T, bs []*backend, extras []string, cluster string) (string, string) {
	t.Helper()
	gwAddr, admin := freeAddr(t), freeAddr(t)
	var eps []string
	for i, b := range bs {
		x := ""
		if extras != nil {
			x = extras[i]
		}
		eps = append(eps, fmt.Sprintf(`{ address = %q%s }`, b.addr, x))
	}
	cfg := fmt.Sprintf(`
[admin]
listen = %q
[engine]
event_loops = 2
[log]
access_log = false
[[listeners]]
name = "web"
listen = %q
max_connections_per_ip = 0
[[listeners.routes]]
cluster = "app"
[[clusters]]
name = "app"
endpoints = [ %s ]
%s
`, admin, gwAddr, strings.Join(eps, ", "), cluster)
	startBinary(t, cfg, gwAddr)
	return gwAddr, admin
}

type lbClient struct {
	c    *http.Client
	base string
}

func newLBClient(gw string) *lbClient {
	return &lbClient{c: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}, base: "http://" + gw}
}

// get sends one GET with optional headers and returns the status, the body
// (the backend name) and the response.
func (c *lbClient) get(t *testing.T, hdr map[string]string) (int, string, *http.Response) {
	t.Helper()
	req, _ := http.NewRequest("GET", c.base+"/", nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.c.Do(req)
	if err != nil {
		return 0, err.Error(), nil
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp
}

func counts(t *testing.T, c *lbClient, n int, hdr func(i int) map[string]string) map[string]int {
	t.Helper()
	m := map[string]int{}
	for i := 0; i < n; i++ {
		var h map[string]string
		if hdr != nil {
			h = hdr(i)
		}
		code, body, _ := c.get(t, h)
		if code != 200 {
			t.Fatalf("request %d: %d %s", i, code, body)
		}
		m[body]++
	}
	return m
}

func threeBackends(t *testing.T) []*backend {
	return []*backend{newBackend(t, "a"), newBackend(t, "b"), newBackend(t, "c")}
}

func TestLBDistributionEveryAlgorithm(t *testing.T) {
	bs := threeBackends(t)
	cases := []struct {
		lb      string
		cluster string
		weights []string
		check   func(t *testing.T, m map[string]int)
	}{
		{"round_robin", "", nil, func(t *testing.T, m map[string]int) {
			if m["a"] != 100 || m["b"] != 100 || m["c"] != 100 {
				t.Fatalf("round_robin not exact: %v", m)
			}
		}},
		{"weighted_round_robin", "", []string{", weight = 4", ", weight = 1", ", weight = 1"}, func(t *testing.T, m map[string]int) {
			if m["a"] != 200 || m["b"] != 50 || m["c"] != 50 {
				t.Fatalf("weighted_round_robin 4:1:1 not exact: %v", m)
			}
		}},
		{"random", "", nil, chiSquare(map[string]float64{"a": 1, "b": 1, "c": 1})},
		{"weighted_random", "", []string{", weight = 4", ", weight = 1", ", weight = 1"}, chiSquare(map[string]float64{"a": 4, "b": 1, "c": 1})},
		{"p2c", "", nil, allUsed},
		{"ewma", "", nil, allUsed},
		{"least_connections", "", nil, allUsed},
		{"least_requests", "", nil, allUsed},
		{"maglev", `hash_key = "header:X-User"`, nil, allUsed},
		{"ring_hash", `hash_key = "header:X-User"`, nil, allUsed},
		{"session_affinity", "", nil, allUsed},
	}
	for _, tc := range cases {
		t.Run(tc.lb, func(t *testing.T) {
			gw, _ := lbGateway(t, bs, tc.weights, fmt.Sprintf("lb = %q\n%s", tc.lb, tc.cluster))
			c := newLBClient(gw)
			m := counts(t, c, 300, func(i int) map[string]string {
				return map[string]string{"X-User": fmt.Sprintf("user-%d", i)}
			})
			t.Logf("%s: %v", tc.lb, m)
			tc.check(t, m)
		})
	}
}

func allUsed(t *testing.T, m map[string]int) {
	t.Helper()
	for _, n := range []string{"a", "b", "c"} {
		if m[n] == 0 {
			t.Fatalf("backend %s got nothing: %v", n, m)
		}
	}
}

// chiSquare checks counts against weights at p = 0.001 (2 degrees of
// freedom: critical value 13.82).
func chiSquare(w map[string]float64) func(t *testing.T, m map[string]int) {
	return func(t *testing.T, m map[string]int) {
		t.Helper()
		total, wsum := 0, 0.0
		for _, v := range m {
			total += v
		}
		for _, v := range w {
			wsum += v
		}
		chi := 0.0
		for k, v := range w {
			exp := float64(total) * v / wsum
			d := float64(m[k]) - exp
			chi += d * d / exp
		}
		if chi > 13.82 || math.IsNaN(chi) {
			t.Fatalf("chi-square %.2f > 13.82 for %v (weights %v)", chi, m, w)
		}
	}
}

func TestLBHashStickiness(t *testing.T) {
	bs := threeBackends(t)
	for _, alg := range []string{"maglev", "ring_hash"} {
		t.Run(alg, func(t *testing.T) {
			gw, _ := lbGateway(t, bs, nil, fmt.Sprintf("lb = %q\nhash_key = \"header:X-User\"", alg))
			c := newLBClient(gw)
			seen := map[string]string{}
			for round := 0; round < 3; round++ {
				for u := 0; u < 40; u++ {
					user := fmt.Sprintf("u%d", u)
					code, body, _ := c.get(t, map[string]string{"X-User": user})
					if code != 200 {
						t.Fatalf("%d", code)
					}
					if prev, ok := seen[user]; ok && prev != body {
						t.Fatalf("user %s moved from %s to %s", user, prev, body)
					}
					seen[user] = body
				}
			}
		})
	}
}

func TestLBSessionAffinityCookie(t *testing.T) {
	bs := threeBackends(t)
	gw, _ := lbGateway(t, bs, nil, `lb = "session_affinity"
[clusters.affinity]
cookie_name = "EGA"
`+fastHTTPCheck)
	c := newLBClient(gw)
	code, first, resp := c.get(t, nil)
	if code != 200 {
		t.Fatal(code)
	}
	var cookie string
	for _, sc := range resp.Header.Values("Set-Cookie") {
		if strings.HasPrefix(sc, "EGA=") {
			cookie = strings.SplitN(strings.SplitN(sc, ";", 2)[0], "=", 2)[1]
		}
	}
	if cookie == "" {
		t.Fatalf("no affinity cookie: %v", resp.Header)
	}
	for i := 0; i < 20; i++ {
		_, body, resp := c.get(t, map[string]string{"Cookie": "EGA=" + cookie})
		if body != first {
			t.Fatalf("pinned to %s, got %s", first, body)
		}
		if len(resp.Header.Values("Set-Cookie")) != 0 {
			t.Fatal("cookie re-issued while the pinned endpoint is healthy")
		}
	}
	// Kill the pinned endpoint: requests go elsewhere and the cookie is
	// re-issued.
	for _, b := range bs {
		if b.name == first {
			b.stop()
		}
	}
	time.Sleep(500 * time.Millisecond)
	code, body, resp := c.get(t, map[string]string{"Cookie": "EGA=" + cookie})
	if code != 200 || body == first {
		t.Fatalf("after the pinned endpoint died: %d %s", code, body)
	}
	if len(resp.Header.Values("Set-Cookie")) == 0 {
		t.Fatal("cookie not re-issued after failover")
	}
}

// load runs GETs from workers until stop, and counts outcomes per body.
func load(c *lbClient, workers int, stop <-chan struct{}) (func() (map[string]int, int), *sync.WaitGroup) {
	var mu sync.Mutex
	m := map[string]int{}
	failed := 0
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequestWithContext(context.Background(), "GET", c.base+"/", nil)
				resp, err := c.c.Do(req)
				mu.Lock()
				if err != nil {
					failed++
					m["error: "+err.Error()]++
				} else {
					b, _ := io.ReadAll(resp.Body)
					_ = resp.Body.Close()
					if resp.StatusCode != 200 {
						failed++
						m[fmt.Sprintf("status %d: %s", resp.StatusCode, b)]++
					} else {
						m[string(b)]++
					}
				}
				mu.Unlock()
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	return func() (map[string]int, int) {
		mu.Lock()
		defer mu.Unlock()
		cp := map[string]int{}
		for k, v := range m {
			cp[k] = v
		}
		return cp, failed
	}, &wg
}

func TestLBZeroFailuresWhenOneOfThreeDies(t *testing.T) {
	bs := threeBackends(t)
	gw, _ := lbGateway(t, bs, nil, `lb = "round_robin"
[clusters.retry]
max_retries = 2
budget_percent = 100.0
[clusters.health_check]
type = "http"
path = "/healthz"
interval = "200ms"
timeout = "100ms"
unhealthy_threshold = 2
healthy_threshold = 2`)
	c := newLBClient(gw)
	stop := make(chan struct{})
	snap, wg := load(c, 4, stop)
	time.Sleep(700 * time.Millisecond)
	bs[1].stop() // b dies mid-load: in-flight and new requests are retried
	time.Sleep(1500 * time.Millisecond)
	before := bs[1].hits.Load()
	bs[1].start(t) // b comes back
	time.Sleep(1500 * time.Millisecond)
	close(stop)
	wg.Wait()
	m, failed := snap()
	t.Logf("distribution %v, failed %d, b hits after revival %d", m, failed, bs[1].hits.Load()-before)
	if failed != 0 {
		t.Fatalf("%d GETs failed while one of three upstreams died", failed)
	}
	if bs[1].hits.Load() == before {
		t.Fatal("revived endpoint never returned to rotation")
	}
}

func TestLBHealthCheckEjectsAndRestores(t *testing.T) {
	bs := threeBackends(t)
	gw, _ := lbGateway(t, bs, nil, `lb = "round_robin"
[clusters.health_check]
type = "http"
path = "/healthz"
interval = "200ms"
timeout = "100ms"
unhealthy_threshold = 2
healthy_threshold = 2`)
	c := newLBClient(gw)
	counts(t, c, 30, nil)
	bs[2].stop()
	time.Sleep(200*2*time.Millisecond + 400*time.Millisecond) // interval × unhealthy_threshold + slack
	m := map[string]int{}
	for i := 0; i < 60; i++ {
		_, body, _ := c.get(t, nil)
		m[body]++
	}
	if m["c"] != 0 || m["a"]+m["b"] != 60 {
		t.Fatalf("dead endpoint still in rotation: %v", m)
	}
	bs[2].start(t)
	time.Sleep(200*2*time.Millisecond + 400*time.Millisecond)
	m = counts(t, c, 60, nil)
	if m["c"] == 0 {
		t.Fatalf("revived endpoint not back: %v", m)
	}
}

func TestLBPriorityFailoverAndSpillBack(t *testing.T) {
	bs := threeBackends(t)
	extras := []string{", priority = 0", ", priority = 0", ", priority = 1"}
	gw, _ := lbGateway(t, bs, extras, `lb = "round_robin"
panic_threshold = 0.0
`+fastHTTPCheck)
	c := newLBClient(gw)
	if m := counts(t, c, 100, nil); m["c"] != 0 {
		t.Fatalf("priority 1 used while priority 0 is healthy: %v", m)
	}
	// One of two priority-0 endpoints down: 50% × 1.4 = 70% stays, 30% spills.
	bs[0].stop()
	time.Sleep(500 * time.Millisecond)
	m := counts(t, c, 400, nil)
	if m["a"] != 0 || m["c"] < 80 || m["c"] > 160 {
		t.Fatalf("spill-over to priority 1 should be about 30%%: %v", m)
	}
	// Both down: everything on priority 1.
	bs[1].stop()
	time.Sleep(500 * time.Millisecond)
	if m := counts(t, c, 50, nil); m["c"] != 50 {
		t.Fatalf("failover to priority 1 incomplete: %v", m)
	}
	// Back: traffic returns to priority 0.
	bs[0].start(t)
	bs[1].start(t)
	time.Sleep(500 * time.Millisecond)
	if m := counts(t, c, 100, nil); m["c"] != 0 {
		t.Fatalf("traffic did not spill back to priority 0: %v", m)
	}
}

// fastHTTPCheck is an active HTTP health check that reacts within ~100 ms.
const fastHTTPCheck = `
[clusters.health_check]
type = "http"
path = "/healthz"
interval = "100ms"
timeout = "50ms"
unhealthy_threshold = 1
healthy_threshold = 1`
