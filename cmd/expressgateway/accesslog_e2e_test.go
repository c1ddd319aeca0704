// SPDX-License-Identifier: GPL-3.0-only

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestAccessLogFileReopenedOnSIGUSR1 is logrotate's postrotate through the
// binary: log.access_log_file is created at start; after a rename, SIGUSR1
// makes the gateway create a new file at the same path, and the process
// keeps serving (SIGUSR1's default action would have killed it).
func TestAccessLogFileReopenedOnSIGUSR1(t *testing.T) {
	up := newBackend(t, "a")
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	gw, admin := freeAddr(t), freeAddr(t)
	cmd, logPath := startBinaryLog(t, fmt.Sprintf(`
[admin]
listen = %q
[log]
access_log_file = %q
[[listeners]]
name = "web"
listen = %q
[[listeners.routes]]
cluster = "app"
[[clusters]]
name = "app"
endpoints = [ { address = %q } ]
`, admin, path, gw, up.addr), gw)
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("access_log_file not created at start: %v", err)
	}
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if fi, err := os.Stat(path); err == nil {
			if fi.Mode().Perm() != 0o640 {
				t.Errorf("reopened file mode %v, want 0640", fi.Mode().Perm())
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no new access log file 5 s after SIGUSR1")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code, body := get(t, "http://"+gw+"/"); code != 200 || body != "a" {
		t.Fatalf("after SIGUSR1: %d %q", code, body)
	}
	if code, _ := get(t, "http://"+admin+"/livez"); code != 200 {
		t.Fatalf("livez %d after SIGUSR1", code)
	}
	if n := metricSum(t, admin, `^expressgateway_access_log_dropped_total\{reason="buffer_full"\}$`); n != 0 {
		t.Errorf("dropped %v lines", n)
	}
	logs, _ := os.ReadFile(logPath)
	if !strings.Contains(string(logs), "access log reopened") {
		t.Errorf("no log line for the reopen:\n%s", logs)
	}
}
