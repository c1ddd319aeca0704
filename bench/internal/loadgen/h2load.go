// SPDX-License-Identifier: GPL-3.0-only

package loadgen

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// H2loadArgs returns the h2load command line (without any taskset prefix).
// logFile receives one line per request, from which ParseH2loadLog computes
// the latency percentiles that h2load's own summary lacks.
func H2loadArgs(o Options, logFile string) []string {
	threads := max(o.Threads, 1)
	conns := max(o.Connections, threads)
	streams := max(o.Streams, 1)
	args := []string{"h2load",
		"-t", strconv.Itoa(threads),
		"-c", strconv.Itoa(conns),
		"-m", strconv.Itoa(streams),
		"-D", durationArg(o.Duration),
	}
	if o.Timeout > 0 {
		args = append(args, "-N", durationArg(o.Timeout))
	}
	for _, h := range o.Headers {
		args = append(args, "-H", h)
	}
	if logFile != "" {
		args = append(args, "--log-file="+logFile)
	}
	return append(args, o.URL)
}

var (
	reH2Finished = regexp.MustCompile(`(?m)^finished in ([0-9.]+)(\w+), ([0-9.]+) req/s, ([0-9.]+)(\w*B)/s`)
	reH2Requests = regexp.MustCompile(`(?m)^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout`)
	reH2Status   = regexp.MustCompile(`(?m)^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx`)
	reH2Traffic  = regexp.MustCompile(`(?m)^traffic: [0-9.]+\w*B \((\d+)\) total`)
)

// ParseH2load parses h2load's summary. Completed requests are those "done";
// Non2xx counts 3xx, 4xx and 5xx; errored and timed-out requests count as
// read errors and timeouts. Latency percentiles come from the log file (see
// ParseH2loadLog), not from this summary.
func ParseH2load(out string) (Result, error) {
	var r Result
	m := reH2Finished.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("parse h2load: no \"finished in\" line in output: %q", firstLine(out))
	}
	d, err := parseWrkDuration(m[1] + m[2])
	if err != nil {
		return r, fmt.Errorf("parse h2load: %w", err)
	}
	r.Duration = d
	r.RPS, _ = strconv.ParseFloat(m[3], 64)
	m = reH2Requests.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("parse h2load: no requests line")
	}
	n := make([]uint64, len(m))
	for i := 1; i < len(m); i++ {
		n[i], _ = strconv.ParseUint(m[i], 10, 64)
	}
	r.Requests = n[3]
	r.ReadErrors = n[6]
	r.Timeouts = n[7]
	if m := reH2Status.FindStringSubmatch(out); m != nil {
		for _, s := range m[2:] {
			v, _ := strconv.ParseUint(s, 10, 64)
			r.Non2xx += v
		}
	}
	if m := reH2Traffic.FindStringSubmatch(out); m != nil {
		r.Bytes, _ = strconv.ParseUint(m[1], 10, 64)
	}
	return r, nil
}

// ParseH2loadLog reads h2load's --log-file (tab-separated: start time in µs
// since the epoch, status, µs until the end of the response) and fills in the
// latency percentiles of r.
func ParseH2loadLog(r *Result, log io.Reader) error {
	var lat []time.Duration
	sc := bufio.NewScanner(log)
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		if len(f) < 3 {
			continue
		}
		us, err := strconv.ParseInt(strings.TrimSpace(f[2]), 10, 64)
		if err != nil {
			return fmt.Errorf("parse h2load log: %w", err)
		}
		lat = append(lat, time.Duration(us)*time.Microsecond)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("parse h2load log: %w", err)
	}
	if len(lat) == 0 {
		return nil
	}
	slices.Sort(lat)
	r.P50 = Percentile(lat, 50)
	r.P90 = Percentile(lat, 90)
	r.P99 = Percentile(lat, 99)
	r.P999 = Percentile(lat, 99.9)
	r.Max = lat[len(lat)-1]
	return nil
}

// Percentile returns the p-th percentile (nearest rank) of sorted samples.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(float64(len(sorted))*p/100+0.999999) - 1
	return sorted[min(max(rank, 0), len(sorted)-1)]
}
