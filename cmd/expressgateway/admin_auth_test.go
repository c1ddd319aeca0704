// SPDX-License-Identifier: GPL-3.0-only

package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestValidateConfigChecks: the binary's validate refuses a lower-case
// method (suggesting the upper-case one), a config without listeners and an
// unreadable token file; run refuses a config without listeners before
// anything says ready.
func TestValidateConfigChecks(t *testing.T) {
	cases := []struct{ name, text, want string }{
		{"lower-case method", `
[admin]
listen = ""
[[listeners]]
name = "web"
listen = "127.0.0.1:8080"
[[listeners.routes]]
methods = ["get", "POST"]
cluster = "app"
[[clusters]]
name = "app"
endpoints = [ { address = "127.0.0.1:9001" } ]
`, `listeners[0].routes[0].methods[0]: method "get" never matches: methods are case-sensitive (did you mean "GET"?)`},
		{"no listeners", `
[admin]
listen = "127.0.0.1:9901"
[[clusters]]
name = "app"
endpoints = [ { address = "127.0.0.1:9001" } ]
`, `listeners: at least one [[listeners]] entry is required: without one the gateway serves nothing`},
		{"missing token file", `
[admin]
listen = "127.0.0.1:9901"
token_file = "/nonexistent/admin.token"
[[listeners]]
name = "web"
listen = "127.0.0.1:8080"
[[listeners.routes]]
cluster = "app"
[[clusters]]
name = "app"
endpoints = [ { address = "127.0.0.1:9001" } ]
`, `admin.token_file: read token: open /nonexistent/admin.token: no such file or directory`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := writeFile(t, "c.toml", tc.text)
			code, out := runToExit(t, "validate", "--config", p)
			if code != 1 || out != p+": "+tc.want+"\n" {
				t.Errorf("exit %d, want 1 and only\n%s: %s\ngot:\n%s", code, p, tc.want, out)
			}
		})
	}
	// run refuses the config without listeners (it used to report ready
	// and serve nothing).
	admin := freeAddr(t)
	p := writeFile(t, "empty.toml", fmt.Sprintf(`
[admin]
listen = %q
[[clusters]]
name = "app"
endpoints = [ { address = "127.0.0.1:9001" } ]
`, admin))
	code, out := runToExit(t, "run", "--config", p)
	if code != 1 || !strings.Contains(out, p+": listeners: at least one") || strings.Contains(out, "listening") {
		t.Errorf("run: exit %d, want 1 and the problem, nothing listening:\n%s", code, out)
	}
}

// adminGet does a GET with an optional Authorization header.
func adminGet(t *testing.T, url, auth string) int {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode == 401 && resp.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("GET %s: 401 without WWW-Authenticate", url)
	}
	return resp.StatusCode
}

// TestAdminToken: with admin.token_file set, every admin endpoint but
// /healthz and /readyz answers 401 without the bearer token or with a wrong
// one, and serves with it.
func TestAdminToken(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "admin.token")
	const token = "k9T-3xQv_7Lp"
	if err := os.WriteFile(tokenFile, []byte("\n "+token+" \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	admin, gwAddr := freeAddr(t), freeAddr(t)
	_, logPath := startBinaryLog(t, fmt.Sprintf(`
[admin]
listen = %q
token_file = %q
[[listeners]]
name = "web"
listen = %q
[[listeners.routes]]
cluster = "app"
[[clusters]]
name = "app"
endpoints = [ { address = "127.0.0.1:9" } ]
`, admin, tokenFile, gwAddr), gwAddr)
	waitReady(t, admin)
	base := "http://" + admin
	for _, p := range []string{"/healthz", "/readyz"} {
		if code := adminGet(t, base+p, ""); code != 200 {
			t.Errorf("%s without a token: %d, want 200", p, code)
		}
	}
	for _, p := range []string{"/metrics", "/livez", "/debug/pprof/", "/debug/pprof/cmdline", "/nope", "/healthz/../metrics"} {
		for _, auth := range []string{"", "Bearer wrong", "Bearer " + token + "x", "Basic " + token, token} {
			if code := adminGet(t, base+p, auth); code != 401 {
				t.Errorf("%s with %q: %d, want 401", p, auth, code)
			}
		}
	}
	for _, p := range []string{"/metrics", "/livez", "/debug/pprof/"} {
		for _, auth := range []string{"Bearer " + token, "bearer " + token} {
			if code := adminGet(t, base+p, auth); code != 200 {
				t.Errorf("%s with %q: %d, want 200", p, auth, code)
			}
		}
	}
	if b, _ := os.ReadFile(logPath); strings.Contains(string(b), "not on a loopback address") {
		t.Errorf("loopback admin warned:\n%s", b)
	}
}

// TestAdminPprofOff: admin.pprof = false takes /debug/pprof/ away.
func TestAdminPprofOff(t *testing.T) {
	admin, gwAddr := freeAddr(t), freeAddr(t)
	startBinary(t, fmt.Sprintf(`
[admin]
listen = %q
pprof = false
[[listeners]]
name = "web"
listen = %q
[[listeners.routes]]
cluster = "app"
[[clusters]]
name = "app"
endpoints = [ { address = "127.0.0.1:9" } ]
`, admin, gwAddr), gwAddr)
	waitReady(t, admin)
	for p, want := range map[string]int{"/debug/pprof/": 404, "/debug/pprof/profile": 404, "/metrics": 200} {
		if code := adminGet(t, "http://"+admin+p, ""); code != want {
			t.Errorf("%s: %d, want %d", p, code, want)
		}
	}
}
