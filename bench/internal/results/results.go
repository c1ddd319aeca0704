// SPDX-License-Identifier: GPL-3.0-only

// Package results is the JSON schema of a bench run, the aggregation over
// rounds, and the table printed on stdout.
package results

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"time"

	"github.com/expressgateway/expressgateway/bench/internal/proc"
)

// SchemaVersion names the shape of Run; bump it when a field changes meaning.
const SchemaVersion = "expressgateway-bench/1"

// Status of one result row.
const (
	StatusOK           = "ok"
	StatusNotInstalled = "not installed"
	StatusNotBuilt     = "not built"
	StatusStartFailed  = "failed to start"
	StatusUnsupported  = "not supported yet"
	StatusError        = "error"
)

// Run is one invocation of the harness, written as JSON under the results folder.
type Run struct {
	Schema     string            `json:"schema"`
	ID         string            `json:"id"`
	StartedAt  time.Time         `json:"started_at"`
	FinishedAt time.Time         `json:"finished_at"`
	Machine    proc.Machine      `json:"machine"`
	Tools      map[string]string `json:"tools"` // tool or peer -> version, or why it is missing
	Options    Options           `json:"options"`
	Pinning    string            `json:"pinning"` // how processes were pinned, or "off"
	Upstream   Upstream          `json:"upstream"`
	// Load averages (1, 5, 15 min) before and after: a busy machine makes
	// noisy figures.
	LoadAvgStart [3]float64 `json:"loadavg_start"`
	LoadAvgEnd   [3]float64 `json:"loadavg_end"`
	Rounds       []Result   `json:"rounds"`  // every measurement
	Summary      []Result   `json:"summary"` // median over rounds, ratios to the reference peer
}

// Options are the flags the run used.
type Options struct {
	Scenarios   []string `json:"scenarios"`
	Targets     []string `json:"targets"`
	Duration    string   `json:"duration"`
	Warmup      string   `json:"warmup"`
	Connections int      `json:"connections"`
	Threads     int      `json:"threads"`
	Streams     int      `json:"streams"`
	Workers     int      `json:"workers"`
	Rounds      int      `json:"rounds"`
	IdleConns   int      `json:"idle_conns"`
	Pin         bool     `json:"pin"`
	Profile     bool     `json:"profile"`
	Args        []string `json:"args"` // the harness's own command line
}

// Upstream describes the origin server every target proxies to.
type Upstream struct {
	Address     string `json:"address"`
	CommandLine string `json:"command_line"`
}

// Latency percentiles in microseconds.
type Latency struct {
	P50  float64 `json:"p50_us"`
	P90  float64 `json:"p90_us"`
	P99  float64 `json:"p99_us"`
	P999 float64 `json:"p99_9_us"`
	Max  float64 `json:"max_us"`
}

// Errors are socket-level errors seen by the load generator.
type Errors struct {
	Connect uint64 `json:"connect"`
	Read    uint64 `json:"read"`
	Write   uint64 `json:"write"`
	Timeout uint64 `json:"timeout"`
}

// Total sums the errors.
func (e Errors) Total() uint64 { return e.Connect + e.Read + e.Write + e.Timeout }

// Result is one target under one scenario in one round (Round 0: the summary).
type Result struct {
	Scenario string `json:"scenario"`
	Target   string `json:"target"`
	Round    int    `json:"round"`
	Status   string `json:"status"`
	Reason   string `json:"reason,omitempty"`

	Requests  uint64  `json:"requests"`
	DurationS float64 `json:"duration_s"`
	RPS       float64 `json:"rps"`
	Latency   Latency `json:"latency"`
	Errors    Errors  `json:"errors"`
	Non2xx    uint64  `json:"non_2xx"`

	// ProxyCPUSeconds is utime+stime of the target's process tree over the
	// measured window; CPUMicrosPerRequest divides it by Requests.
	ProxyCPUSeconds     float64 `json:"proxy_cpu_s"`
	CPUMicrosPerRequest float64 `json:"cpu_us_per_req"`
	// UpstreamCPUMicrosPerRequest is the same figure for the bench upstream.
	UpstreamCPUMicrosPerRequest float64 `json:"upstream_cpu_us_per_req"`
	// LoadgenCPUSeconds is the load generator's CPU time (its rusage).
	LoadgenCPUSeconds float64 `json:"loadgen_cpu_s"`
	// BackgroundCPUShare is the share of all CPUs, over the measured window,
	// used by processes that are not part of the run (other jobs on the
	// machine): the machine's busy time from /proc/stat minus the target,
	// upstream, load generator and harness. Above a few percent, the figures
	// of the row are disturbed.
	BackgroundCPUShare float64 `json:"background_cpu_share"`
	// PeakRSSBytes is VmHWM summed over the target's process tree.
	PeakRSSBytes uint64 `json:"peak_rss_bytes"`

	// Idle scenario: connections asked for, opened, still open at the end,
	// the RSS before opening them, and the RSS growth per open connection.
	IdleConns       int     `json:"idle_conns,omitempty"`
	IdleOpened      int     `json:"idle_opened,omitempty"`
	IdleAlive       int     `json:"idle_alive,omitempty"`
	RSSBaseBytes    uint64  `json:"rss_base_bytes,omitempty"`
	RSSPerConnBytes float64 `json:"rss_per_conn_bytes,omitempty"`

	// Ratios to the reference peer of the scenario (0 when not
	// comparable): HAProxy, or the peer ReferencePeer names (Caddy for h3).
	// The JSON names keep "haproxy" from when it was the only reference;
	// RatioPeer says which peer the row's ratios are to.
	RPSRatio        float64 `json:"rps_ratio_to_haproxy,omitempty"`
	CPURatio        float64 `json:"cpu_ratio_to_haproxy,omitempty"`
	RSSPerConnRatio float64 `json:"rss_per_conn_ratio_to_haproxy,omitempty"`
	RatioPeer       string  `json:"ratio_peer,omitempty"`

	Commands   []string `json:"commands,omitempty"` // exact command lines: target, load generator
	ConfigFile string   `json:"config_file,omitempty"`
	Config     string   `json:"config,omitempty"`
	Profile    string   `json:"profile,omitempty"`     // CPU profile (.pb.gz)
	FlameGraph string   `json:"flame_graph,omitempty"` // self-contained HTML
}

// Failed reports whether the row counts as a failure for --strict: the target
// did not run, or the load saw errors or non-2xx responses.
func (r Result) Failed() bool {
	switch r.Status {
	case StatusOK:
		return r.Errors.Total() > 0 || r.Non2xx > 0 || (r.IdleConns > 0 && r.IdleAlive < r.IdleConns)
	case StatusUnsupported:
		return false
	default:
		return true
	}
}

// Summarize takes the rounds and returns one row per (scenario, target), in
// first-seen order, holding medians of the figures and sums of the errors,
// with ratios to the HAProxy row of the same scenario.
func Summarize(rounds []Result) []Result {
	type key struct{ s, t string }
	var order []key
	groups := map[key][]Result{}
	for _, r := range rounds {
		k := key{r.Scenario, r.Target}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], r)
	}
	var out []Result
	for _, k := range order {
		out = append(out, summarizeOne(groups[k]))
	}
	AddRatios(out)
	return out
}

func summarizeOne(rs []Result) Result {
	var ok []Result
	for _, r := range rs {
		if r.Status == StatusOK {
			ok = append(ok, r)
		}
	}
	if len(ok) == 0 {
		s := rs[len(rs)-1]
		s.Round = 0
		return s
	}
	s := ok[len(ok)-1] // commands, config, profile of the last good round
	s.Round = 0
	s.Status = StatusOK
	if len(ok) < len(rs) {
		s.Status = StatusError
		s.Reason = fmt.Sprintf("%d of %d rounds failed", len(rs)-len(ok), len(rs))
	}
	med := func(f func(Result) float64) float64 {
		v := make([]float64, len(ok))
		for i, r := range ok {
			v[i] = f(r)
		}
		return Median(v)
	}
	s.RPS = med(func(r Result) float64 { return r.RPS })
	s.DurationS = med(func(r Result) float64 { return r.DurationS })
	s.Requests = uint64(med(func(r Result) float64 { return float64(r.Requests) }))
	s.Latency = Latency{
		P50:  med(func(r Result) float64 { return r.Latency.P50 }),
		P90:  med(func(r Result) float64 { return r.Latency.P90 }),
		P99:  med(func(r Result) float64 { return r.Latency.P99 }),
		P999: med(func(r Result) float64 { return r.Latency.P999 }),
		Max:  med(func(r Result) float64 { return r.Latency.Max }),
	}
	s.ProxyCPUSeconds = med(func(r Result) float64 { return r.ProxyCPUSeconds })
	s.CPUMicrosPerRequest = med(func(r Result) float64 { return r.CPUMicrosPerRequest })
	s.UpstreamCPUMicrosPerRequest = med(func(r Result) float64 { return r.UpstreamCPUMicrosPerRequest })
	s.PeakRSSBytes = uint64(med(func(r Result) float64 { return float64(r.PeakRSSBytes) }))
	s.LoadgenCPUSeconds = med(func(r Result) float64 { return r.LoadgenCPUSeconds })
	s.BackgroundCPUShare = med(func(r Result) float64 { return r.BackgroundCPUShare })
	s.RSSPerConnBytes = med(func(r Result) float64 { return r.RSSPerConnBytes })
	s.Errors, s.Non2xx = Errors{}, 0
	s.IdleAlive = math.MaxInt
	for _, r := range rs {
		s.Errors.Connect += r.Errors.Connect
		s.Errors.Read += r.Errors.Read
		s.Errors.Write += r.Errors.Write
		s.Errors.Timeout += r.Errors.Timeout
		s.Non2xx += r.Non2xx
		s.IdleAlive = min(s.IdleAlive, r.IdleAlive)
	}
	return s
}

// ReferencePeer is the peer a scenario's ratios are to when it is not
// HAProxy: for h3, Caddy (Debian's HAProxy is built without QUIC).
var ReferencePeer = map[string]string{"h3": "caddy"}

// refPeer is the reference peer of a scenario.
func refPeer(scenario string) string {
	if p, ok := ReferencePeer[scenario]; ok {
		return p
	}
	return "haproxy"
}

// AddRatios fills the ratios of each row to the reference peer's row of its
// scenario (refPeer).
func AddRatios(rows []Result) {
	ref := map[string]Result{}
	for _, r := range rows {
		if r.Target == refPeer(r.Scenario) && r.Status == StatusOK {
			ref[r.Scenario] = r
		}
	}
	for i := range rows {
		h, ok := ref[rows[i].Scenario]
		if st := rows[i].Status; !ok || st != StatusOK && st != StatusError {
			continue
		}
		rows[i].RatioPeer = h.Target
		rows[i].RPSRatio = ratio(rows[i].RPS, h.RPS)
		rows[i].CPURatio = ratio(rows[i].CPUMicrosPerRequest, h.CPUMicrosPerRequest)
		rows[i].RSSPerConnRatio = ratio(rows[i].RSSPerConnBytes, h.RSSPerConnBytes)
	}
}

func ratio(a, b float64) float64 {
	if a == 0 || b == 0 {
		return 0
	}
	return a / b
}

// Median returns the median of v (0 for none).
func Median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Write writes the run as indented JSON.
func (r *Run) Write(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteFile writes the run as JSON to path.
func (r *Run) WriteFile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := r.Write(f); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// Read decodes a run, refusing unknown fields and other schemas.
func Read(rd io.Reader) (*Run, error) {
	dec := json.NewDecoder(rd)
	dec.DisallowUnknownFields()
	var r Run
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("decode run: %w", err)
	}
	if r.Schema != SchemaVersion {
		return nil, fmt.Errorf("decode run: schema %q, want %q", r.Schema, SchemaVersion)
	}
	return &r, nil
}
