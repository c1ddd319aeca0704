// SPDX-License-Identifier: GPL-3.0-only

package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestDefaultConfigServes is `make run`: the embedded default config serves
// the demo upstream through the proxy on 127.0.0.1:8080.
func TestDefaultConfigServes(t *testing.T) {
	_, logPath := startBinaryLog(t, "", "127.0.0.1:8080")
	code, body := get(t, "http://127.0.0.1:8080/hello")
	if code != 200 || !strings.Contains(body, "demo upstream") || !strings.Contains(body, "via=1.1 expressgateway") {
		t.Fatalf("%d %q", code, body)
	}
	code, _ = get(t, "http://127.0.0.1:9901/readyz")
	if code != 200 {
		t.Fatalf("readyz %d", code)
	}
	time.Sleep(100 * time.Millisecond)
	logs, _ := os.ReadFile(logPath)
	if !strings.Contains(string(logs), `"type":"access"`) || !strings.Contains(string(logs), `"target":"/hello"`) {
		t.Fatalf("no access-log line:\n%s", logs)
	}
}

func TestAdminEndpoints(t *testing.T) {
	up := freeAddr(t)
	gwAddr, admin := freeAddr(t), freeAddr(t)
	cfg := fmt.Sprintf(`
[admin]
listen = %q
[demo]
enabled = true
listen = %q
[log]
access_log = false
[[listeners]]
name = "web"
listen = %q
[[listeners.routes]]
cluster = "demo"
[[clusters]]
name = "demo"
endpoints = [ { address = %q } ]
`, admin, up, gwAddr, up)
	_, logPath := startBinaryLog(t, cfg, gwAddr)
	if code, _ := get(t, "http://"+gwAddr+"/x"); code != 200 {
		t.Fatalf("proxy: %d", code)
	}
	for _, p := range []string{"/livez", "/healthz", "/readyz", "/debug/pprof/"} {
		if code, _ := get(t, "http://"+admin+p); code != 200 {
			t.Errorf("%s: %d", p, code)
		}
	}
	_, m := get(t, "http://"+admin+"/metrics")
	for _, fam := range []string{
		`expressgateway_requests_total{listener="web",route="0",class="2xx"} 1`,
		`expressgateway_request_duration_seconds_bucket{listener="web"`,
		`expressgateway_client_connections_active{listener="web"}`,
		`expressgateway_upstream_connections_active{cluster="demo"}`,
		`expressgateway_upstream_connects_total{cluster="demo"} 1`,
		`expressgateway_panic_total 0`,
		`expressgateway_lb_picks_total{cluster="demo",endpoint="` + up + `"} 1`,
		`process_resident_memory_bytes`,
	} {
		if !strings.Contains(m, fam) {
			t.Errorf("/metrics lacks %s", fam)
		}
	}
	logs, _ := os.ReadFile(logPath)
	if strings.Contains(string(logs), `"type":"access"`) {
		t.Error("access_log = false still logs requests")
	}
}
