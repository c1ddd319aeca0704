// SPDX-License-Identifier: GPL-3.0-only

package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestValidateGoodFile(t *testing.T) {
	p := writeFile(t, "good.toml", `
[admin]
listen = "127.0.0.1:9901"

[[listeners]]
name = "web"
listen = "127.0.0.1:8080"
protocol = "http"

[[listeners.routes]]
host = "*"
path_prefix = "/"
cluster = "app"

[[clusters]]
name = "app"
lb = "round_robin"
endpoints = [ { address = "127.0.0.1:9001" }, { address = "127.0.0.1:9002", weight = 2 } ]
`)
	var out, errb bytes.Buffer
	if code := run([]string{"validate", "--config", p}, &out, &errb); code != 0 {
		t.Fatalf("exit %d, stderr %s", code, errb.String())
	}
}

func TestValidateBrokenFiles(t *testing.T) {
	cases := []struct {
		name, text string
		want       []string // each must appear as a line "FILE: <want>"
	}{
		{"unknown key and missing cluster", `
[[listeners]]
name = "web"
listen = "127.0.0.1:8080"
colour = "blue"
[[listeners.routes]]
cluster = "nope"
[[clusters]]
name = "app"
endpoints = [ { address = "127.0.0.1:9001" } ]
`, []string{"listeners[0].colour: ", "listeners[0].routes[0].cluster: "}},
		{"wrong type and bad address", `
[engine]
event_loops = "four"
[[listeners]]
name = "web"
listen = "not-an-address"
[[listeners.routes]]
cluster = "app"
[[clusters]]
name = "app"
endpoints = [ { address = "127.0.0.1:9001" } ]
`, []string{"engine.event_loops: ", "listeners[0].listen: "}},
		{"out of range limit", `
[[listeners]]
name = "web"
listen = "127.0.0.1:8080"
[listeners.limits]
max_header_count = 0
[[listeners.routes]]
cluster = "app"
[[clusters]]
name = "app"
endpoints = [ { address = "127.0.0.1:9001", weight = 0 } ]
`, []string{"listeners[0].limits.max_header_count: ", "clusters[0].endpoints[0].weight: "}},
		{"bad guard values", `
[[listeners]]
name = "web"
listen = "127.0.0.1:8080"
[listeners.http2]
premature_reset_streams = 5
glitch_threshold = 3
[listeners.guards]
penalty = "2h"
tracked_clients = 10
rate_limit = { requests_per_second = -1, key = "cookie:sid" }
[[listeners.routes]]
cluster = "app"
rate_limit = { requests_per_second = 10, key = "header:bad name" }
[[clusters]]
name = "app"
endpoints = [ { address = "127.0.0.1:9001" } ]
`, []string{"listeners[0].http2.premature_reset_streams: ", "listeners[0].http2.glitch_threshold: ",
			"listeners[0].guards.penalty: ", "listeners[0].guards.tracked_clients: ",
			"listeners[0].guards.rate_limit.requests_per_second: ", "listeners[0].guards.rate_limit.key: ",
			"listeners[0].routes[0].rate_limit.key: "}},
		{"syntax error", "[[listeners]\nname=", []string{""}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := writeFile(t, "bad.toml", tc.text)
			var out, errb bytes.Buffer
			if code := run([]string{"validate", "--config", p}, &out, &errb); code != 1 {
				t.Fatalf("exit %d, want 1", code)
			}
			lines := strings.Split(strings.TrimSpace(errb.String()), "\n")
			for _, w := range tc.want {
				found := false
				for _, l := range lines {
					if strings.HasPrefix(l, p+": "+w) {
						found = true
					}
				}
				if !found {
					t.Errorf("no line %q in:\n%s", p+": "+w, errb.String())
				}
			}
		})
	}
}

func TestValidateMissingFile(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"validate", "--config", "/nonexistent/x.toml"}, &out, &errb); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if !strings.Contains(errb.String(), "/nonexistent/x.toml") {
		t.Fatalf("error does not name the file: %s", errb.String())
	}
}

func TestVersionAndUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"version"}, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "expressgateway ") {
		t.Fatalf("version: %d %q", code, out.String())
	}
	if code := run(nil, &out, &errb); code != 2 {
		t.Fatalf("no args: exit %d, want 2", code)
	}
	if code := run([]string{"frobnicate"}, &out, &errb); code != 2 {
		t.Fatalf("unknown command: exit %d, want 2", code)
	}
}
