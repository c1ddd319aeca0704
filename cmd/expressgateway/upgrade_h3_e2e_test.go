// SPDX-License-Identifier: GPL-3.0-only

package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

// TestUpgradeKeepsH3Connections: HTTP/3 connections open at a USR2
// upgrade, each in the middle of a download, finish it through the old
// process while the new one binds the port beside it and serves new
// connections (h3_steer.go steers the old connections' datagrams to the
// old socket). A second USR2 while the old process still drains is
// refused; once it has exited, upgrades work again.
func TestUpgradeKeepsH3Connections(t *testing.T) {
	real, err := os.ReadFile(gatewayBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "expressgateway")
	installBinary(t, bin, real)
	origin, _, _ := originServe(t, false)
	ca := newTestCA(t, "h3up")
	cert, key, _ := ca.issue(t, "a", "a.test", leafOpts{dns: []string{"a.test"}})
	h3Addr, httpAddr, admin := freeUDPAddr(t), freeAddr(t), freeAddr(t)
	pidFile := filepath.Join(dir, "gw.pid")
	g := startFromFile(t, bin, fmt.Sprintf(`
[admin]
listen = %q
[engine]
event_loops = 2
drain_timeout = "30s"
[process]
pid_file = %q
upgrade_timeout = "5s"
[log]
access_log = false
[[listeners]]
name = "h3"
listen = %q
protocol = "h3"
max_connections = 1000
[listeners.timeouts]
body_min_rate = 0
[listeners.tls]
[[listeners.tls.certificates]]
cert_file = %q
key_file = %q
[listeners.quic]
idle_timeout = "30s"
[[listeners.routes]]
cluster = "app"
[[listeners]]
name = "web"
listen = %q
max_connections = 1000
[[listeners.routes]]
cluster = "app"
[[clusters]]
name = "app"
endpoints = [ { address = %q } ]
`, admin, pidFile, h3Addr, cert, key, httpAddr, origin), httpAddr, admin)
	oldPID := g.cmd.Process.Pid
	pids := []int{oldPID}
	t.Cleanup(func() { // the processes the upgrades started are not our children
		for _, pid := range pids[1:] {
			_ = syscall.Kill(pid, syscall.SIGTERM)
			for i := 0; i < 200 && processAlive(pid); i++ {
				time.Sleep(25 * time.Millisecond)
			}
		}
	})
	waitPID := func(not int) int {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if p := readPID(pidFile); p > 0 && p != not {
				return p
			}
		}
		t.Fatalf("the pid file does not name a process other than %d", not)
		return 0
	}
	waitPID(0)

	tlsConf := &tls.Config{RootCAs: ca.pool, ServerName: "a.test", NextProtos: []string{http3.NextProtoH3}}
	dial := func() *http3.ClientConn {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		qc, err := quic.DialAddr(ctx, h3Addr, tlsConf, &quic.Config{MaxIdleTimeout: 30 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = qc.CloseWithError(0, "") })
		return (&http3.Transport{}).NewClientConn(qc)
	}
	get := func(cc *http3.ClientConn, path string) string {
		t.Helper()
		req, _ := http.NewRequest("GET", "https://a.test"+path, nil)
		resp, err := cc.RoundTrip(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		b, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d, %v", path, resp.StatusCode, err)
		}
		return string(b)
	}

	// Downloads in flight, each on its own connection (its own 4-tuple,
	// which the kernel would hash over both sockets), paused by flow
	// control after the first 64 KiB.
	const conns, size = 6, 4 << 20
	type download struct {
		body  io.ReadCloser
		first []byte
	}
	var downloads []download
	for i := range conns {
		cc := dial()
		req, _ := http.NewRequest("GET", "https://a.test/download?n="+strconv.Itoa(size), nil)
		resp, err := cc.RoundTrip(req)
		if err != nil {
			t.Fatalf("download %d: %v", i, err)
		}
		first := make([]byte, 64<<10)
		if _, err := io.ReadFull(resp.Body, first); err != nil {
			t.Fatalf("download %d: %v", i, err)
		}
		downloads = append(downloads, download{resp.Body, first})
	}

	g.signal(t, syscall.SIGUSR2)
	newPID := waitPID(oldPID)
	pids = append(pids, newPID)
	if !processAlive(oldPID) {
		t.Fatal("the old process exited with downloads in flight")
	}
	// New connections reach the new process while the old one drains.
	for i := range 3 {
		if got := get(dial(), "/new-"+strconv.Itoa(i)); !strings.HasPrefix(got, "GET /new-") {
			t.Fatalf("a new connection during the overlap: %q", got)
		}
	}
	// A second upgrade now would need a third generation: refused.
	killPID(t, newPID, syscall.SIGUSR2)
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(readFile(g.log), "still drains its HTTP/3 connections") {
		if time.Now().After(deadline) {
			t.Fatal("a USR2 while the previous process drains was not refused")
		}
		time.Sleep(20 * time.Millisecond)
	}

	// The downloads finish, whole, through the old process.
	want := sha256.New()
	_, _ = io.Copy(want, &patternReader{n: size, h: sha256.New()})
	var wg sync.WaitGroup
	errs := make([]error, conns)
	for i, d := range downloads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := sha256.New()
			h.Write(d.first)
			n, err := io.Copy(h, d.body)
			_ = d.body.Close()
			if err == nil && (n+int64(len(d.first)) != size || !bytes.Equal(h.Sum(nil), want.Sum(nil))) {
				err = fmt.Errorf("%d bytes, hash mismatch", n+int64(len(d.first)))
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("download %d across the upgrade: %v", i, err)
		}
	}
	select {
	case <-g.exited:
	case <-time.After(15 * time.Second):
		t.Fatal("the old process did not exit once its downloads were done")
	}
	if got := get(dial(), "/after"); !strings.HasPrefix(got, "GET /after") {
		t.Fatalf("after the old process exited: %q", got)
	}
	// Only the new process serves the admin address now: the refusal was
	// counted.
	if v := metricSum(t, admin, `expressgateway_upgrade_total\{result="refused"\}`); v != 1 {
		t.Fatalf("upgrade_total{result=\"refused\"} = %v, want 1", v)
	}
	// ... and its own hand-over was steered.
	if v := metricSum(t, admin, `expressgateway_h3_handover_total\{listener="h3",result="steered"\}`); v != 1 {
		t.Fatalf("h3_handover_total{result=\"steered\"} = %v, want 1", v)
	}
	if v := metricSum(t, admin, `expressgateway_h3_handover_total\{listener="h3",result="failed"\}`); v != 0 {
		t.Fatalf("h3_handover_total{result=\"failed\"} = %v, want 0", v)
	}

	// The predecessor is gone: the next upgrade goes ahead.
	killPID(t, newPID, syscall.SIGUSR2)
	third := waitPID(newPID)
	pids = append(pids, third)
	for i := 0; processAlive(newPID); i++ {
		if i > 600 {
			t.Fatal("the second process did not exit after the upgrade")
		}
		time.Sleep(25 * time.Millisecond)
	}
	if got := get(dial(), "/third"); !strings.HasPrefix(got, "GET /third") {
		t.Fatalf("after the second upgrade: %q", got)
	}
}

func killPID(t *testing.T, pid int, sig syscall.Signal) {
	t.Helper()
	if err := syscall.Kill(pid, sig); err != nil {
		t.Fatal(err)
	}
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}
