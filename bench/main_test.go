// SPDX-License-Identifier: GPL-3.0-only

package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/expressgateway/expressgateway/bench/internal/results"
	"github.com/expressgateway/expressgateway/bench/internal/target"
)

// TestMain lets the test binary play the upstream and the HTTP/3 load, as
// the harness binary does: run() re-executes os.Executable() with
// "upstream" and "h3load".
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == h3loadCommand {
		if err := runH3load(os.Args[2:]); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	if len(os.Args) > 1 && os.Args[1] == upstreamCommand {
		if err := runUpstream(os.Args[2:]); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestParseFlags(t *testing.T) {
	c, err := parseFlags([]string{"-smoke", "-duration", "5s"})
	if err != nil {
		t.Fatal(err)
	}
	if c.scenarios != "h1-keepalive" || c.targets != "expressgateway,haproxy" || !c.strict || c.duration != 5*time.Second {
		t.Fatalf("smoke defaults: %+v", c)
	}
	for _, bad := range [][]string{{"-duration", "10ms"}, {"-conns", "0"}, {"extra"}} {
		if _, err := parseFlags(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestCPUList(t *testing.T) {
	if cpuList(0, 0) != "0" || cpuList(1, 3) != "1-3" {
		t.Fatal(cpuList(1, 3))
	}
}

// TestEndToEnd runs the harness for real against the upstream and HAProxy
// (short), with a gateway binary that does not exist, and checks the JSON.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	for _, tool := range []string{"wrk", "haproxy"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	out := t.TempDir()
	cfg := &config{
		scenarios: "h1-keepalive,h1-idle,tls", targets: "direct,expressgateway,haproxy",
		duration: time.Second, connections: 8, threads: 1, streams: 1, workers: 1, rounds: 1,
		idleConns: 50, idleSettle: 100 * time.Millisecond, timeout: 2 * time.Second,
		outDir: out, gatewayBin: filepath.Join(out, "missing"),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	failed, err := run(ctx, cfg, []string{"-test"})
	if err != nil {
		t.Fatal(err)
	}
	if !failed {
		t.Error("a run with an unbuilt gateway must count as failed for -strict")
	}
	files, _ := filepath.Glob(filepath.Join(out, "*.json"))
	if len(files) != 1 {
		t.Fatalf("results: %v", files)
	}
	f, err := os.Open(files[0])
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	run, err := results.Read(f)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"h1-keepalive/direct": results.StatusOK, "h1-keepalive/haproxy": results.StatusOK,
		"h1-keepalive/expressgateway": results.StatusNotBuilt,
		"h1-idle/direct":              results.StatusOK, "h1-idle/haproxy": results.StatusOK,
		"tls/haproxy": results.StatusUnsupported,
	}
	for _, r := range run.Summary {
		k := r.Scenario + "/" + r.Target
		if w, ok := want[k]; ok && r.Status != w {
			t.Errorf("%s: %s (%s), want %s", k, r.Status, r.Reason, w)
		}
		if r.Target == "haproxy" && r.Scenario == "h1-keepalive" {
			if r.Requests == 0 || r.CPUMicrosPerRequest <= 0 || r.PeakRSSBytes == 0 || r.RPSRatio != 1 || r.Errors.Total() != 0 {
				t.Errorf("haproxy figures: %+v", r)
			}
			if len(r.Commands) != 2 || r.Config == "" {
				t.Errorf("haproxy commands/config missing: %q", r.Commands)
			}
		}
		if r.Scenario == "h1-idle" && r.Status == results.StatusOK && r.IdleAlive != 50 {
			t.Errorf("%s: %d idle alive", k, r.IdleAlive)
		}
	}
	if run.Tools["wrk"] == "" || run.Machine.NProc == 0 || run.Upstream.Address == "" {
		t.Errorf("run metadata: %+v %+v", run.Tools, run.Machine)
	}
}

// TestPullProfile serves a real profile as the gateway's admin endpoint would
// and checks the profile, folded stacks and flame graph land in the folder.
func TestPullProfile(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("internal", "flame", "testdata", "gateway-cpu.pb.gz"))
	if err != nil {
		t.Fatal(err)
	}
	var asked string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked = r.URL.String()
		_, _ = w.Write(data)
	}))
	defer srv.Close()
	r := &runner{cfg: &config{duration: 5 * time.Second}}
	g := &target.Gateway{AdminAddr: strings.TrimPrefix(srv.URL, "http://")}
	dir := t.TempDir()
	pr := r.pullProfile(context.Background(), dir, g)
	if pr.err != nil {
		t.Fatal(pr.err)
	}
	if asked != "/debug/pprof/profile?seconds=4" {
		t.Errorf("asked %s", asked)
	}
	for _, f := range []string{pr.profile, pr.flame, filepath.Join(dir, "cpu.folded")} {
		if st, err := os.Stat(f); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func TestShow(t *testing.T) {
	if err := show(filepath.Join("internal", "results", "testdata", "run.json")); err != nil {
		t.Fatal(err)
	}
	if err := show(filepath.Join("internal", "results", "testdata", "missing.json")); err == nil {
		t.Fatal("a missing file showed")
	}
}
