// SPDX-License-Identifier: GPL-3.0-only

package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// runToExit runs the binary with args and waits (at most 20 s) for it to
// exit; it returns the exit code and the combined output.
func runToExit(t *testing.T, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, gatewayBinary(t), args...).CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("%v did not exit within 20s:\n%s", args, out)
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), string(out)
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
}

// TestOverlappingListenersRefused: an http and a tcp listener on one
// address are refused by validate and by run, naming both; run says
// nothing is listening.
func TestOverlappingListenersRefused(t *testing.T) {
	addr := freeAddr(t)
	p := writeFile(t, "overlap.toml", fmt.Sprintf(`
[admin]
listen = ""
[[listeners]]
name = "web"
listen = %[1]q
[[listeners.routes]]
cluster = "app"
[[listeners]]
name = "raw"
listen = %[1]q
protocol = "tcp"
cluster = "app"
[[clusters]]
name = "app"
endpoints = [ { address = "127.0.0.1:9" } ]
`, addr))
	want := fmt.Sprintf(`%s: listeners[1].listen: listener "raw" at %q overlaps listener "web" at %q (listeners[0].listen): both would take %s`, p, addr, addr, addr)
	for _, cmd := range []string{"validate", "run"} {
		code, out := runToExit(t, cmd, "--config", p)
		if code != 1 || !strings.Contains(out, want+"\n") {
			t.Errorf("%s: exit %d, want 1 and the line\n%s\nin:\n%s", cmd, code, want, out)
		}
		if strings.Contains(out, "listening") {
			t.Errorf("%s: says listening:\n%s", cmd, out)
		}
	}
}

// neverReady polls the admin /readyz until stop is closed and reports
// whether it ever answered 200.
func neverReady(admin string, stop <-chan struct{}) *atomic.Bool {
	var ok atomic.Bool
	c := &http.Client{Timeout: 200 * time.Millisecond}
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			if resp, err := c.Get("http://" + admin + "/readyz"); err == nil {
				if resp.StatusCode == 200 {
					ok.Store(true)
				}
				_ = resp.Body.Close()
			}
		}
	}()
	return &ok
}

// TestBindFailureExitsBeforeReady: a listener whose port another socket
// holds ends the process with exit 1 and an error naming the listener and
// its address; the admin listener, bound first, never answered /readyz 200
// and no "listening" line was written. The same for an admin address
// another socket holds.
func TestBindFailureExitsBeforeReady(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = held.Close() }()
	taken := held.Addr().String()
	cfg := func(admin, web, raw string) string {
		return fmt.Sprintf(`
[admin]
listen = %q
[engine]
event_loops = 2
[[listeners]]
name = "web"
listen = %q
[[listeners.routes]]
cluster = "app"
[[listeners]]
name = "raw"
listen = %q
protocol = "tcp"
cluster = "app"
[[clusters]]
name = "app"
endpoints = [ { address = "127.0.0.1:9" } ]
`, admin, web, raw)
	}
	admin := freeAddr(t)
	cases := []struct {
		name, cfg string
		admin     string // polled for /readyz while the binary runs
		want      string // the end of the output
	}{
		{"listener", cfg(admin, freeAddr(t), taken), admin,
			"expressgateway: listener raw: tcp " + taken + ": bind: address already in use\n"},
		{"admin", cfg(taken, freeAddr(t), freeAddr(t)), "",
			"expressgateway: admin listener: listen tcp " + taken + ": bind: address already in use\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			stop := make(chan struct{})
			var wasReady *atomic.Bool
			if tc.admin != "" {
				wasReady = neverReady(tc.admin, stop)
			}
			code, out := runToExit(t, "run", "--config", writeFile(t, "gw.toml", tc.cfg))
			close(stop)
			if code != 1 || !strings.HasSuffix(out, tc.want) {
				t.Errorf("exit %d, want 1 ending with %q:\n%s", code, tc.want, out)
			}
			if strings.Contains(out, "listening") {
				t.Errorf("said listening before every socket was bound:\n%s", out)
			}
			if wasReady != nil && wasReady.Load() {
				t.Error("/readyz answered 200")
			}
		})
	}
}
