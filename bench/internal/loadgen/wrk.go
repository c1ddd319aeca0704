// SPDX-License-Identifier: GPL-3.0-only

package loadgen

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// wrkScript makes wrk print one machine-readable line at the end with the
// figures its text output lacks (p99.9, exact counts).
const wrkScript = `-- written by the expressgateway bench harness
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH_JSON {\"requests\":%d,\"duration_us\":%d,\"bytes\":%d," ..
    "\"connect\":%d,\"read\":%d,\"write\":%d,\"status\":%d,\"timeout\":%d," ..
    "\"p50\":%d,\"p90\":%d,\"p99\":%d,\"p999\":%d,\"max\":%d}\n",
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max))
end
`

// WriteWrkScript writes the Lua script wrk needs into dir and returns its path.
func WriteWrkScript(dir string) (string, error) {
	p := filepath.Join(dir, "bench.lua")
	return p, os.WriteFile(p, []byte(wrkScript), 0o644)
}

// WrkArgs returns the wrk command line (without any taskset prefix).
func WrkArgs(o Options, script string) []string {
	threads := max(o.Threads, 1)
	conns := max(o.Connections, threads)
	args := []string{"wrk",
		"-t", strconv.Itoa(threads),
		"-c", strconv.Itoa(conns),
		"-d", durationArg(o.Duration),
		"--latency",
	}
	if o.Timeout > 0 {
		args = append(args, "--timeout", durationArg(o.Timeout))
	}
	for _, h := range o.Headers {
		args = append(args, "-H", h)
	}
	if script != "" {
		args = append(args, "-s", script)
	}
	return append(args, o.URL)
}

// durationArg renders whole seconds (wrk and h2load take "10s"), rounding up.
func durationArg(d time.Duration) string {
	s := int((d + time.Second - 1) / time.Second)
	return strconv.Itoa(max(s, 1)) + "s"
}

type wrkJSON struct {
	Requests   uint64 `json:"requests"`
	DurationUS uint64 `json:"duration_us"`
	Bytes      uint64 `json:"bytes"`
	Connect    uint64 `json:"connect"`
	Read       uint64 `json:"read"`
	Write      uint64 `json:"write"`
	Status     uint64 `json:"status"`
	Timeout    uint64 `json:"timeout"`
	P50        uint64 `json:"p50"`
	P90        uint64 `json:"p90"`
	P99        uint64 `json:"p99"`
	P999       uint64 `json:"p999"`
	Max        uint64 `json:"max"`
}

var (
	reWrkTotal   = regexp.MustCompile(`(?m)^\s*(\d+) requests in ([0-9.]+\w+), ([0-9.]+\w*B) read`)
	reWrkRPS     = regexp.MustCompile(`(?m)^Requests/sec:\s+([0-9.]+)`)
	reWrkSocket  = regexp.MustCompile(`(?m)Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	reWrkNon2xx  = regexp.MustCompile(`(?m)Non-2xx or 3xx responses: (\d+)`)
	reWrkPercent = regexp.MustCompile(`(?m)^\s+(50|90|99)%\s+([0-9.]+\w+)`)
)

// ParseWrk parses wrk's output. When the output carries the BENCH_JSON line
// of our script, its exact figures win; the text output is the fallback (and
// the only source when wrk ran without the script). Non2xx counts responses
// with a status >= 400 (wrk's definition: 3xx count as success).
func ParseWrk(out string) (Result, error) {
	var r Result
	m := reWrkTotal.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("parse wrk: no request total in output: %q", firstLine(out))
	}
	r.Requests, _ = strconv.ParseUint(m[1], 10, 64)
	r.Duration, _ = parseWrkDuration(m[2])
	r.Bytes = parseWrkBytes(m[3])
	if m := reWrkRPS.FindStringSubmatch(out); m != nil {
		r.RPS, _ = strconv.ParseFloat(m[1], 64)
	}
	if m := reWrkSocket.FindStringSubmatch(out); m != nil {
		r.ConnectErrors, _ = strconv.ParseUint(m[1], 10, 64)
		r.ReadErrors, _ = strconv.ParseUint(m[2], 10, 64)
		r.WriteErrors, _ = strconv.ParseUint(m[3], 10, 64)
		r.Timeouts, _ = strconv.ParseUint(m[4], 10, 64)
	}
	if m := reWrkNon2xx.FindStringSubmatch(out); m != nil {
		r.Non2xx, _ = strconv.ParseUint(m[1], 10, 64)
	}
	for _, m := range reWrkPercent.FindAllStringSubmatch(out, -1) {
		d, err := parseWrkDuration(m[2])
		if err != nil {
			continue
		}
		switch m[1] {
		case "50":
			r.P50 = d
		case "90":
			r.P90 = d
		case "99":
			r.P99 = d
		}
	}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "BENCH_JSON ")
		if !ok {
			continue
		}
		var j wrkJSON
		if err := json.Unmarshal([]byte(line), &j); err != nil {
			return r, fmt.Errorf("parse wrk: script line: %w", err)
		}
		us := time.Microsecond
		r.Requests, r.Bytes = j.Requests, j.Bytes
		r.Duration = time.Duration(j.DurationUS) * us
		if r.Duration > 0 {
			r.RPS = float64(r.Requests) / r.Duration.Seconds()
		}
		r.ConnectErrors, r.ReadErrors, r.WriteErrors, r.Timeouts = j.Connect, j.Read, j.Write, j.Timeout
		r.Non2xx = j.Status
		r.P50, r.P90, r.P99 = time.Duration(j.P50)*us, time.Duration(j.P90)*us, time.Duration(j.P99)*us
		r.P999, r.Max = time.Duration(j.P999)*us, time.Duration(j.Max)*us
	}
	return r, nil
}

// parseWrkDuration parses wrk's units: us, ms, s, m, h.
func parseWrkDuration(s string) (time.Duration, error) {
	i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if i <= 0 {
		return 0, fmt.Errorf("duration %q", s)
	}
	v, err := strconv.ParseFloat(s[:i], 64)
	if err != nil {
		return 0, err
	}
	unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second, "m": time.Minute, "h": time.Hour}[s[i:]]
	if unit == 0 {
		return 0, fmt.Errorf("duration unit %q", s)
	}
	return time.Duration(v * float64(unit)), nil
}

// parseWrkBytes parses wrk's "12.34MB" (binary multiples).
func parseWrkBytes(s string) uint64 {
	i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if i <= 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(s[:i], 64)
	mult := map[string]float64{"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}[s[i:]]
	return uint64(v * mult)
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}
