// SPDX-License-Identifier: GPL-3.0-only

package results

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/expressgateway/expressgateway/bench/internal/proc"
)

var update = flag.Bool("update", false, "rewrite testdata/run.json")

// sampleRun fills every field, so that a field that does not survive the
// round trip shows up.
func sampleRun() *Run {
	at := time.Date(2026, 11, 26, 1, 2, 3, 0, time.UTC)
	res := Result{
		Scenario: "h1-keepalive", Target: "expressgateway", Round: 1, Status: StatusOK, Reason: "r",
		Requests: 500000, DurationS: 10.01, RPS: 49950.1,
		Latency: Latency{P50: 1100, P90: 1500, P99: 2500, P999: 4000, Max: 9000},
		Errors:  Errors{Connect: 1, Read: 2, Write: 3, Timeout: 4}, Non2xx: 5,
		ProxyCPUSeconds: 6.5, CPUMicrosPerRequest: 13, UpstreamCPUMicrosPerRequest: 8,
		LoadgenCPUSeconds: 4.5, BackgroundCPUShare: 0.02,
		PeakRSSBytes: 20 << 20, IdleConns: 10, IdleOpened: 9, IdleAlive: 8, RSSBaseBytes: 1 << 20,
		RSSPerConnBytes: 1500.5, RPSRatio: 1.1, CPURatio: 0.9, RSSPerConnRatio: 1.2, RatioPeer: "haproxy",
		Commands:   []string{"expressgateway run --config x.toml", "wrk -t 1 -c 64 -d 10s http://127.0.0.1:1/"},
		ConfigFile: "x.toml", Config: "[admin]\n", Profile: "cpu.pb.gz", FlameGraph: "flame.html",
	}
	return &Run{
		Schema: SchemaVersion, ID: "20261126T010203Z", StartedAt: at, FinishedAt: at.Add(time.Minute),
		Machine: proc.Machine{NProc: 2, CPUModel: "AMD EPYC", Kernel: "6.18.44", MemTotal: "24684092 kB", GoVersion: "go1.26.8", NoFile: 20000},
		Tools:   map[string]string{"wrk": "wrk 4.1.0", "haproxy": "HAProxy version 2.6.12"},
		Options: Options{Scenarios: []string{"h1-keepalive"}, Targets: []string{"expressgateway"}, Duration: "10s",
			Warmup: "2s", Connections: 64, Threads: 1, Streams: 10, Workers: 1, Rounds: 1, IdleConns: 10,
			Pin: true, Profile: true, Args: []string{"bench", "-pin"}},
		Pinning:      "proxy on CPU 0",
		LoadAvgStart: [3]float64{0.5, 0.4, 0.3}, LoadAvgEnd: [3]float64{1.5, 0.6, 0.35},
		Upstream: Upstream{Address: "127.0.0.1:2", CommandLine: "bench upstream -listen 127.0.0.1:0"},
		Rounds:   []Result{res},
		Summary:  []Result{res},
	}
}

func TestJSONRoundTrip(t *testing.T) {
	want := sampleRun()
	var b bytes.Buffer
	if err := want.Write(&b); err != nil {
		t.Fatal(err)
	}
	got, err := Read(bytes.NewReader(b.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip changed the run:\n%+v\n%+v", got, want)
	}
	// Every field of Result must be set in the sample (a zero field would be
	// dropped by omitempty and hide a broken tag).
	v := reflect.ValueOf(want.Rounds[0])
	for i := range v.NumField() {
		if v.Field(i).IsZero() {
			t.Errorf("sampleRun leaves Result.%s zero", v.Type().Field(i).Name)
		}
	}
}

// TestGolden pins the JSON field names: renaming one breaks readers of old
// results, so it must come with a SchemaVersion bump and `go test -update`.
func TestGolden(t *testing.T) {
	var b bytes.Buffer
	if err := sampleRun().Write(&b); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "run.json")
	if *update {
		if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b.Bytes(), want) {
		t.Fatalf("JSON differs from %s; if the schema changed on purpose, bump SchemaVersion and run go test -update", golden)
	}
}

func TestReadRejects(t *testing.T) {
	for name, in := range map[string]string{
		"unknown field": `{"schema":"` + SchemaVersion + `","surprise":1}`,
		"other schema":  `{"schema":"something-else/9"}`,
		"not json":      `rps: 5`,
	} {
		if _, err := Read(strings.NewReader(in)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestSummarize(t *testing.T) {
	rounds := []Result{
		{Scenario: "s", Target: "haproxy", Round: 1, Status: StatusOK, RPS: 100, CPUMicrosPerRequest: 10, Requests: 1000},
		{Scenario: "s", Target: "haproxy", Round: 2, Status: StatusOK, RPS: 120, CPUMicrosPerRequest: 12, Requests: 1200},
		{Scenario: "s", Target: "haproxy", Round: 3, Status: StatusOK, RPS: 300, CPUMicrosPerRequest: 11, Requests: 3000},
		{Scenario: "s", Target: "expressgateway", Round: 1, Status: StatusOK, RPS: 132, CPUMicrosPerRequest: 5.5, Requests: 1, Errors: Errors{Read: 2}},
		{Scenario: "s", Target: "expressgateway", Round: 2, Status: StatusStartFailed, Reason: "boom"},
		{Scenario: "s", Target: "nginx", Round: 1, Status: StatusNotInstalled},
	}
	sum := Summarize(rounds)
	if len(sum) != 3 {
		t.Fatalf("%d rows", len(sum))
	}
	h, eg, ng := sum[0], sum[1], sum[2]
	if h.RPS != 120 || h.CPUMicrosPerRequest != 11 || h.Round != 0 || h.RPSRatio != 1 {
		t.Fatalf("haproxy median: %+v", h)
	}
	if eg.Status != StatusError || eg.RPSRatio != 1.1 || eg.CPURatio != 0.5 || eg.Errors.Read != 2 {
		t.Fatalf("gateway: %+v", eg)
	}
	if ng.Status != StatusNotInstalled || !ng.Failed() || ng.RPSRatio != 0 {
		t.Fatalf("nginx: %+v", ng)
	}
	if !eg.Failed() || h.Failed() {
		t.Fatal("Failed() wrong")
	}
	if (Result{Status: StatusUnsupported}).Failed() {
		t.Fatal("an unsupported protocol must not fail a run")
	}
	if (Result{Status: StatusOK, IdleConns: 10, IdleAlive: 9}).Failed() != true {
		t.Fatal("a closed idle connection must fail a strict run")
	}
	if Median([]float64{3, 1, 2, 10}) != 2.5 || Median(nil) != 0 {
		t.Fatal("median")
	}
}

func TestPrintTable(t *testing.T) {
	rows := Summarize([]Result{
		{Scenario: "h1-keepalive", Target: "expressgateway-l4", Status: StatusOK, RPS: 55000, Requests: 550000, CPUMicrosPerRequest: 10},
		{Scenario: "h1-keepalive", Target: "expressgateway", Status: StatusOK, RPS: 50000, Requests: 500000, CPUMicrosPerRequest: 11},
		{Scenario: "h1-keepalive", Target: "expressgateway-log", Status: StatusOK, RPS: 48000, Requests: 480000, CPUMicrosPerRequest: 11.55},
		{Scenario: "h1-keepalive", Target: "haproxy", Status: StatusOK, RPS: 50000, Requests: 500000, CPUMicrosPerRequest: 14, PeakRSSBytes: 16 << 20},
		{Scenario: "h1-keepalive", Target: "haproxy-tcp", Status: StatusOK, RPS: 55000, Requests: 550000, CPUMicrosPerRequest: 8},
		{Scenario: "h1-close", Target: "expressgateway", Status: StatusNotBuilt, Reason: "cmd/expressgateway/main.go does not exist yet"},
		{Scenario: "h2c", Target: "expressgateway", Status: StatusUnsupported, Reason: "h2c"},
	})
	var b strings.Builder
	if err := PrintTable(&b, rows); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"cpu-µs/req", "50000", "14.0", "16.0MiB", "1.00×", "not built", "does not exist yet", "not supported yet",
		"h1-keepalive: expressgateway L7 vs its L4 relay: cpu-µs/req 1.10×, rps 0.91×",
		"h1-keepalive: expressgateway access log on vs off: cpu-µs/req 1.05×, rps 0.96×",
		"h1-keepalive: expressgateway L4 relay vs haproxy mode tcp: cpu-µs/req 1.25×, rps 1.00×",
		"÷peer: ratios to haproxy (h1-keepalive)"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "h3:") {
		t.Errorf("an h3 line without an h3 row:\n%s", out)
	}
}

// TestH3Ratios: the h3 rows' ratios are to Caddy (there is no HAProxy row
// with HTTP/3), the other scenarios' still to HAProxy, and the gateway's h3
// row is compared with its own tls-h2 row.
func TestH3Ratios(t *testing.T) {
	rows := Summarize([]Result{
		{Scenario: "h3", Target: "expressgateway", Status: StatusOK, RPS: 30000, Requests: 150000, CPUMicrosPerRequest: 40},
		{Scenario: "h3", Target: "caddy", Status: StatusOK, RPS: 20000, Requests: 100000, CPUMicrosPerRequest: 80},
		{Scenario: "h3", Target: "haproxy", Status: StatusUnsupported, Reason: "h3"},
		{Scenario: "tls-h2", Target: "expressgateway", Status: StatusOK, RPS: 60000, Requests: 300000, CPUMicrosPerRequest: 16},
		{Scenario: "tls-h2", Target: "haproxy", Status: StatusOK, RPS: 60000, Requests: 300000, CPUMicrosPerRequest: 20},
		{Scenario: "tls-h2", Target: "caddy", Status: StatusUnsupported, Reason: "https"},
	})
	if r := rows[0]; r.RPSRatio != 1.5 || r.CPURatio != 0.5 || r.RatioPeer != "caddy" {
		t.Errorf("h3 gateway: %+v", r)
	}
	if r := rows[1]; r.RPSRatio != 1 || r.RatioPeer != "caddy" {
		t.Errorf("h3 caddy: %+v", r)
	}
	if r := rows[3]; r.CPURatio != 0.8 || r.RatioPeer != "haproxy" {
		t.Errorf("tls-h2 gateway: %+v", r)
	}
	var b strings.Builder
	if err := PrintTable(&b, rows); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"rps÷peer", "1.50×", "0.50×",
		"÷peer: ratios to caddy (h3); haproxy (tls-h2)",
		"h3: expressgateway H3 vs its H2 row (tls-h2): cpu-µs/req 2.50×, rps 0.50×"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	// Without tls-h2 the h2c row is the baseline; without either, no line.
	rows = Summarize([]Result{
		{Scenario: "h3", Target: "expressgateway", Status: StatusOK, RPS: 30000, Requests: 150000, CPUMicrosPerRequest: 40},
		{Scenario: "h2c", Target: "expressgateway", Status: StatusOK, RPS: 60000, Requests: 300000, CPUMicrosPerRequest: 10},
	})
	if got := h3Line(rows); got != "h3: expressgateway H3 vs its H2 row (h2c): cpu-µs/req 4.00×, rps 0.50×" {
		t.Errorf("h2c baseline: %q", got)
	}
	if got := h3Line(rows[:1]); got != "" {
		t.Errorf("no baseline: %q", got)
	}
}
