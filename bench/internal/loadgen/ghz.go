// SPDX-License-Identifier: GPL-3.0-only

package loadgen

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// GhzArgs returns the ghz command line for a gRPC scenario: method is
// "package.Service.Method", data the JSON request (an array of messages
// for a stream), conns the HTTP/2 connections and o.Connections the
// concurrent calls spread over them. ghz finds the method through server
// reflection (the bench's gRPC upstream registers it).
func GhzArgs(bin string, o Options, addr, method, data string, conns int) []string {
	args := []string{bin, "--insecure",
		"--call", method,
		"-d", data,
		"-c", strconv.Itoa(max(o.Connections, 1)),
		"--connections", strconv.Itoa(max(conns, 1)),
		"-z", o.Duration.String(),
		"-O", "json",
		"--skipFirst", "0",
	}
	if o.Timeout > 0 {
		args = append(args, "-t", o.Timeout.String())
	}
	return append(args, addr)
}

// ghzReport is the part of ghz's JSON report the harness reads.
type ghzReport struct {
	Count   uint64        `json:"count"`
	Total   time.Duration `json:"total"`
	RPS     float64       `json:"rps"`
	Slowest time.Duration `json:"slowest"`
	Latency []struct {
		Percentage int           `json:"percentage"`
		Latency    time.Duration `json:"latency"`
	} `json:"latencyDistribution"`
	Status map[string]uint64 `json:"statusCodeDistribution"`
	Errors map[string]uint64 `json:"errorDistribution"`
}

// ParseGhz reads ghz's JSON report (-O json). Calls that did not end with
// status OK count as Non2xx; "DeadlineExceeded" as timeouts.
func ParseGhz(out string) (Result, error) {
	start := strings.IndexByte(out, '{')
	if start < 0 {
		return Result{}, fmt.Errorf("ghz: no JSON report in %q", firstLine(out))
	}
	var rep ghzReport
	if err := json.Unmarshal([]byte(out[start:]), &rep); err != nil {
		return Result{}, fmt.Errorf("ghz: %w", err)
	}
	r := Result{Requests: rep.Count, Duration: rep.Total, RPS: rep.RPS, Max: rep.Slowest}
	for _, l := range rep.Latency {
		switch l.Percentage {
		case 50:
			r.P50 = l.Latency
		case 90:
			r.P90 = l.Latency
		case 99:
			r.P99 = l.Latency
		}
	}
	r.P999 = r.Max // ghz reports up to p99
	// ghz ends the run by closing its connections under the calls still in
	// flight: those fail on the client's side ("the client connection is
	// closing", "use of closed network connection") whatever the target
	// did, and are not counted against it.
	// Each teardown error is charged to the status code its message names
	// ("rpc error: code = Canceled desc = …"), so the result does not depend
	// on the order maps are walked in.
	teardown := map[string]uint64{}
	for msg, n := range rep.Errors {
		if strings.Contains(msg, "client connection is closing") || strings.Contains(msg, "use of closed network connection") {
			code := "Canceled"
			if _, rest, ok := strings.Cut(msg, "code = "); ok {
				code, _, _ = strings.Cut(rest, " ")
			}
			teardown[code] += n
			r.Requests -= min(n, r.Requests)
		}
	}
	for code, n := range rep.Status {
		switch code {
		case "OK":
		case "Canceled", "Unavailable":
			k := min(n, teardown[code])
			if code == "Unavailable" {
				r.ConnectErrors += n - k
			} else {
				r.Non2xx += n - k
			}
		case "DeadlineExceeded":
			r.Timeouts += n
		default:
			r.Non2xx += n
		}
	}
	return r, nil
}
