// SPDX-License-Identifier: GPL-3.0-only

//go:build linux

package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/expressgateway/expressgateway/xdp/netnstest"
)

// nsStatus does one GET from the calling goroutine (inside ns.Do) and
// returns the status code.
func nsStatus(addr, path, auth string) (int, error) {
	c, err := net.DialTimeout("tcp4", addr, 2*time.Second)
	if err != nil {
		return 0, err
	}
	defer func() { _ = c.Close() }()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	hdr := ""
	if auth != "" {
		hdr = "Authorization: " + auth + "\r\n"
	}
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\n%sConnection: close\r\n\r\n", path, addr, hdr); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// TestAdminNonLoopback runs the binary in a network namespace of its own
// with the admin listener on 198.18.0.1 (an address of the namespace's lo,
// not a loopback address): the start writes one warn line, /debug/pprof/
// is off by default and /metrics is open. With admin.token_file set there is
// no warning and /metrics needs the token.
func TestAdminNonLoopback(t *testing.T) {
	netnstest.Skip(t)
	bin := gatewayBinary(t)
	ns := netnstest.New(t, "egadm")
	ns.IP("addr", "add", "198.18.0.1/32", "dev", "lo")
	const admin = "198.18.0.1:9901"
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("t0ken\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := func(extra string) string {
		return fmt.Sprintf(`
[admin]
listen = %q
%s
[log]
access_log = false
[[listeners]]
name = "web"
listen = "127.0.0.1:8080"
[[listeners.routes]]
cluster = "app"
[[clusters]]
name = "app"
endpoints = [ { address = "127.0.0.1:9" } ]
`, admin, extra)
	}
	// start runs the binary in ns until it is ready; stop ends it.
	start := func(text string) (logPath string, stop func()) {
		logPath = filepath.Join(t.TempDir(), "gw.log")
		logf, err := os.Create(logPath)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("ip", "netns", "exec", ns.Name, bin, "run", "--config", writeFile(t, "gw.toml", text))
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.SysProcAttr = &unix.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		stopped := false
		stop = func() {
			if stopped {
				return
			}
			stopped = true
			_ = unix.Kill(-cmd.Process.Pid, unix.SIGTERM)
			done := make(chan struct{})
			go func() { _ = cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				_ = unix.Kill(-cmd.Process.Pid, unix.SIGKILL)
				<-done
			}
			_ = logf.Close()
		}
		t.Cleanup(stop)
		deadline := time.Now().Add(10 * time.Second)
		for {
			var code int
			_ = ns.Do(func() (err error) { code, err = nsStatus(admin, "/readyz", ""); return err })
			if code == 200 {
				return logPath, stop
			}
			if time.Now().After(deadline) {
				b, _ := os.ReadFile(logPath)
				t.Fatalf("gateway not ready in the namespace:\n%s", b)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	status := func(path, auth string) int {
		var code int
		ns.MustDo(func() (err error) { code, err = nsStatus(admin, path, auth); return err })
		return code
	}

	logPath, stop := start(cfg(""))
	if c := status("/debug/pprof/", ""); c != 404 {
		t.Errorf("/debug/pprof/ on a non-loopback admin by default: %d, want 404", c)
	}
	if c := status("/metrics", ""); c != 200 {
		t.Errorf("/metrics: %d", c)
	}
	stop()
	b, _ := os.ReadFile(logPath)
	if n := strings.Count(string(b), "not on a loopback address"); n != 1 || !strings.Contains(string(b), `"level":"warn"`) {
		t.Errorf("%d warn lines about the admin address, want 1:\n%s", n, b)
	}

	logPath, _ = start(cfg(fmt.Sprintf("token_file = %q", tokenFile)))
	if c := status("/metrics", ""); c != 401 {
		t.Errorf("/metrics without the token: %d, want 401", c)
	}
	if c := status("/metrics", "Bearer t0ken"); c != 200 {
		t.Errorf("/metrics with the token: %d, want 200", c)
	}
	if b, _ := os.ReadFile(logPath); strings.Contains(string(b), "not on a loopback address") {
		t.Errorf("warned although a token is set:\n%s", b)
	}
}
