// SPDX-License-Identifier: GPL-3.0-only

package main

// The defaults must survive an endpoint's death: with the README's minimal
// config (no health_check, outlier_detection or retry table), killing one
// of three endpoints under load costs no failed GET, and a request that
// could not be connected is retried whatever its method. CONFIG.md, "When
// an endpoint dies", says which default does what and why.

import (
	"fmt"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"
)

// minimalConfig is the README's minimal file with its addresses replaced
// and one endpoint per address.
func minimalConfig(admin, gw string, endpoints ...string) string {
	var eps []string
	for _, e := range endpoints {
		eps = append(eps, fmt.Sprintf("{ address = %q }", e))
	}
	return fmt.Sprintf(`
[admin]
listen = %q

[[listeners]]
name = "web"
listen = %q
protocol = "http"

[[listeners.routes]]
host = "*"
path_prefix = "/"
cluster = "app"

[[clusters]]
name = "app"
lb = "round_robin"
endpoints = [ %s ]
`, admin, gw, strings.Join(eps, ", "))
}

func endpointMetric(family, addr string) string {
	return fmt.Sprintf(`^%s\{cluster="app",endpoint="%s"\}$`, family, regexp.QuoteMeta(addr))
}

const connectFailures = `^expressgateway_upstream_failures_total\{cluster="app",reason="connect_(failed|timeout)"\}$`

// TestDefaultsOneOfThreeDies: 4 clients GET steadily for 6 s; one of three
// endpoints dies after 1.5 s. No GET may fail, the dead endpoint is ejected
// after a few connect failures and then gets no attempt at all for the rest
// of the run (the ejection lasts 10 s).
func TestDefaultsOneOfThreeDies(t *testing.T) {
	bs := threeBackends(t)
	gw, admin := freeAddr(t), freeAddr(t)
	startBinary(t, minimalConfig(admin, gw, bs[0].addr, bs[1].addr, bs[2].addr), gw)
	dead := bs[1]

	c := newLBClient(gw)
	stop := make(chan struct{})
	snap, wg := load(c, 4, stop)
	start := time.Now()
	time.Sleep(1500 * time.Millisecond)
	dead.stop()
	killed := time.Now()

	// Noticed: ejected within a few failed connects, long before a second.
	time.Sleep(time.Second)
	picks := metricSum(t, admin, endpointMetric("expressgateway_lb_picks_total", dead.addr))
	failures := metricSum(t, admin, connectFailures)
	if h := metricSum(t, admin, endpointMetric("expressgateway_lb_endpoint_healthy", dead.addr)); h != 0 {
		t.Errorf("dead endpoint still healthy 1 s after it died (healthy=%v)", h)
	}
	if n := metricSum(t, admin, endpointMetric("expressgateway_lb_ejections_total", dead.addr)); n != 1 {
		t.Errorf("dead endpoint ejected %v times, want 1", n)
	}

	time.Sleep(6*time.Second - time.Since(start))
	close(stop)
	wg.Wait()
	m, failed := snap()
	after := time.Since(killed)
	picksAfter := metricSum(t, admin, endpointMetric("expressgateway_lb_picks_total", dead.addr))
	failuresAfter := metricSum(t, admin, connectFailures)
	retried := metricSum(t, admin, `^expressgateway_upstream_failures_total\{cluster="app",reason="retried"\}$`)
	t.Logf("distribution %v, failed %d; %.0f connect failures and %.0f retries in all; dead endpoint picked %.0f times until noticed",
		m, failed, failuresAfter, retried, picks)
	if failed != 0 {
		t.Fatalf("%d GETs failed while one of three endpoints was dead", failed)
	}
	if m["a"] == 0 || m["c"] == 0 {
		t.Fatalf("the live endpoints did not share the load: %v", m)
	}
	if picksAfter != picks || failuresAfter != failures {
		t.Fatalf("dead endpoint still tried during the %v after it was noticed: picks %v → %v, connect failures %v → %v",
			after-time.Second, picks, picksAfter, failures, failuresAfter)
	}
	if failures < 1 || failures > 20 {
		t.Errorf("%v connect failures before the ejection, want a few (consecutive_connect_failures = 3, per loop races)", failures)
	}
}

// legRetriesBodies says whether the forwarder already retries a request
// that carries a body (Content-Length: 0 or a small buffered body) after a
// connect failure. Today its canRetry refuses any request whose body kind is
// not "none" before lb's policy is asked; the leg refactor lifts that.
const legRetriesBodies = true

// TestDefaultsPOSTRetriedOnConnectFailure: a POST whose endpoint refuses
// the connection is sent to another endpoint, since nothing of it was sent;
// each POST reaches an upstream exactly once.
func TestDefaultsPOSTRetriedOnConnectFailure(t *testing.T) {
	for _, tc := range []struct {
		name, req, body string
		needsLeg        bool
	}{
		{"no body", "POST /form HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", "", false},
		{"content-length 0", "POST /form HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", "", true},
		{"small body", "POST /form HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello", "hello", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.needsLeg && !legRetriesBodies {
				t.Skip("needs leg change: canRetry must let a connect failure through for a request with an unsent body")
			}
			up1, up2 := newRawUpstream(t, "up1"), newRawUpstream(t, "up2")
			deadAddr := refusingAddr(t)
			gw, admin := freeAddr(t), freeAddr(t)
			startBinary(t, minimalConfig(admin, gw, up1.addr(), deadAddr, up2.addr()), gw)
			const n = 6 // round robin: at least two of them pick the dead endpoint first
			for i := 0; i < n; i++ {
				got := rawExchange(t, gw, tc.req)
				if !strings.HasPrefix(got, "HTTP/1.1 200 ") {
					t.Fatalf("POST %d: %q", i, got)
				}
			}
			failures := metricSum(t, admin, connectFailures)
			retried := metricSum(t, admin, `^expressgateway_upstream_failures_total\{cluster="app",reason="retried"\}$`)
			if failures < 1 || retried != failures {
				t.Fatalf("%v connect failures and %v retries: want every refused POST retried", failures, retried)
			}
			seen := append(up1.requests(), up2.requests()...)
			if len(seen) != n {
				t.Fatalf("upstreams saw %d requests for %d POSTs", len(seen), n)
			}
			for _, r := range seen {
				if r.Method != "POST" || r.Body != tc.body {
					t.Fatalf("upstream saw %s with body %q", r.Method, r.Body)
				}
			}
		})
	}
}

// refusingAddr is a loopback address where nothing listens: connects are
// refused at once.
func refusingAddr(t *testing.T) string {
	t.Helper()
	addr := freeAddr(t)
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		_ = c.Close()
		t.Fatalf("%s unexpectedly accepts", addr)
	}
	return addr
}
