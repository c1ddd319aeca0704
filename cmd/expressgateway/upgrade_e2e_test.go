// SPDX-License-Identifier: GPL-3.0-only

package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// installBinary puts a file at path atomically (rename over it), as a
// package upgrade replaces a running binary.
func installBinary(t *testing.T, path string, content []byte) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, content, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func readPID(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

func processAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// A zombie (Z) is dead: it only waits to be reaped.
	f := strings.Fields(string(b))
	return len(f) > 2 && f[2] != "Z"
}

// TestUpgradeThroughBinary: kill -USR2 under keep-alive and new-connection
// load. Two upgrades that fail (the binary at the path exits 1; then one that
// never gets ready) change nothing; a real one hands every socket over with
// no connection refused and no request failed, the pid file follows the new
// process and the old one drains and exits.
func TestUpgradeThroughBinary(t *testing.T) {
	real, err := os.ReadFile(gatewayBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "expressgateway")
	installBinary(t, bin, real)
	b1 := newBackend(t, "b1")
	gwAddr, admin := freeAddr(t), freeAddr(t)
	pidFile := filepath.Join(dir, "gw.pid")
	cfg := fmt.Sprintf(`
[admin]
listen = %q
[engine]
event_loops = 2
drain_timeout = "5s"
[process]
pid_file = %q
upgrade_timeout = "1s"
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
endpoints = [ { address = %q } ]
`, admin, pidFile, gwAddr, b1.addr)
	g := startFromFile(t, bin, cfg, gwAddr, admin)
	oldPID := g.cmd.Process.Pid
	t.Cleanup(func() { // the process the upgrade started is not our child
		if pid := readPID(pidFile); pid > 0 && pid != oldPID {
			_ = syscall.Kill(pid, syscall.SIGTERM)
			for i := 0; i < 200 && processAlive(pid); i++ {
				time.Sleep(25 * time.Millisecond)
			}
		}
	})
	for readPID(pidFile) != oldPID {
		time.Sleep(10 * time.Millisecond)
	}

	stop := make(chan struct{})
	var ok, refused, failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	run := func(c *http.Client) {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			resp, err := c.Get("http://" + gwAddr + "/")
			if err != nil {
				if errors.Is(err, syscall.ECONNREFUSED) {
					refused.Add(1)
				} else {
					failed.Add(1)
				}
				firstErr.CompareAndSwap(nil, err.Error())
				continue
			}
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode != 200 || string(body) != "b1" {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, fmt.Sprintf("%d %q", resp.StatusCode, body))
				continue
			}
			ok.Add(1)
			time.Sleep(time.Millisecond)
		}
	}
	keepAlive := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 3}}
	for range 3 {
		wg.Add(2)
		go run(keepAlive)
		go run(&http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}})
	}
	time.Sleep(200 * time.Millisecond)

	// A new binary that exits at once, then one that never reports ready:
	// both counted, nothing else changes.
	for i, script := range []string{"#!/bin/sh\nexit 1\n", "#!/bin/sh\nexec sleep 30\n"} {
		installBinary(t, bin, []byte(script))
		g.signal(t, syscall.SIGUSR2)
		deadline := time.Now().Add(5 * time.Second)
		for metricSum(t, admin, `expressgateway_upgrade_total\{result="error"\}`) != float64(i+1) {
			if time.Now().After(deadline) {
				t.Fatalf("failed upgrade %d not counted", i+1)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if readPID(pidFile) != oldPID || !processAlive(oldPID) {
			t.Fatalf("a failed upgrade replaced the process")
		}
	}
	if n := ok.Load(); n == 0 {
		t.Fatal("no request served before the upgrade")
	}

	// The real one.
	installBinary(t, bin, real)
	before := ok.Load()
	g.signal(t, syscall.SIGUSR2)
	deadline := time.Now().Add(5 * time.Second)
	var newPID int
	for {
		if p := readPID(pidFile); p != oldPID && p > 0 {
			newPID = p
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the pid file does not name a new process")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case <-g.exited:
	case <-time.After(8 * time.Second):
		t.Fatal("the old process did not drain and exit")
	}
	time.Sleep(300 * time.Millisecond) // load on the new process alone
	close(stop)
	wg.Wait()
	if refused.Load() != 0 || failed.Load() != 0 {
		t.Fatalf("%d refused, %d failed, %d ok (first: %v)", refused.Load(), failed.Load(), ok.Load(), firstErr.Load())
	}
	if ok.Load() <= before {
		t.Fatal("no request served across the upgrade")
	}
	if !processAlive(newPID) {
		t.Fatal("the new process is not running")
	}
	if gen := generation(admin); gen != 1 {
		t.Fatalf("the admin listener of the new process: generation %d", gen)
	}
	if n := metricSum(t, admin, `expressgateway_upgrade_total`); n != 0 {
		t.Fatalf("the new process counts %v upgrades of its own", n)
	}
	log, _ := os.ReadFile(g.log)
	if !strings.Contains(string(log), "upgrade: serving on the inherited sockets") {
		t.Fatal("the new process did not adopt the inherited sockets")
	}
	t.Logf("%d requests across three upgrade attempts, 0 refused, 0 failed", ok.Load())
}
