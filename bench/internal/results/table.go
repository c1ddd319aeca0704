// SPDX-License-Identifier: GPL-3.0-only

package results

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// PrintTable writes rows as an aligned table (text left, figures right),
// followed by the reasons of the rows that did not run.
func PrintTable(w io.Writer, rows []Result) error {
	t := [][]string{{"scenario", "target", "status", "rps", "p50", "p99", "p99.9", "errors", "non-2xx",
		"cpu-µs/req", "peak RSS", "RSS/conn", "rps÷haproxy", "cpu÷haproxy", "bg-cpu"}}
	leftCols := 3
	type note struct {
		scenario, target, text string
		count                  int
	}
	var notes []note
	seen := map[string]int{}
	for _, r := range rows {
		row := []string{r.Scenario, r.Target, r.Status}
		if r.Reason != "" && r.Status != StatusUnsupported {
			// One note per target and status: a target that failed to start
			// fails the same way in every scenario.
			key := r.Target + "\x00" + r.Status
			if r.Status == StatusOK || r.Status == StatusError {
				key += "\x00" + r.Scenario
			}
			if i, ok := seen[key]; ok {
				notes[i].count++
			} else {
				seen[key] = len(notes)
				notes = append(notes, note{r.Scenario, r.Target, statusText(r), 1})
			}
		}
		if r.Status != StatusOK && r.Status != StatusError || r.Requests == 0 && r.IdleConns == 0 {
			t = append(t, append(row, "-", "-", "-", "-", "-", "-", "-", "-", "-", "-", "-", "-"))
			continue
		}
		rps, p50, p99, p999 := "-", "-", "-", "-"
		if r.Requests > 0 {
			rps = fmt.Sprintf("%.0f", r.RPS)
			p50, p99, p999 = micros(r.Latency.P50), micros(r.Latency.P99), micros(r.Latency.P999)
		}
		cpu := "-"
		if r.CPUMicrosPerRequest > 0 {
			cpu = fmt.Sprintf("%.1f", r.CPUMicrosPerRequest)
		}
		perConn := "-"
		if r.IdleConns > 0 {
			perConn = fmt.Sprintf("%s ×%d", Bytes(uint64(max(r.RSSPerConnBytes, 0))), r.IdleAlive)
		}
		rssCol := "-"
		if r.PeakRSSBytes > 0 {
			rssCol = Bytes(r.PeakRSSBytes)
		}
		rr, cr := times(r.RPSRatio), times(r.CPURatio)
		if r.IdleConns > 0 {
			rr, cr = "-", times(r.RSSPerConnRatio)+" (mem)"
		}
		bg := "-"
		if r.Requests > 0 {
			bg = fmt.Sprintf("%.0f%%", 100*r.BackgroundCPUShare)
		}
		t = append(t, append(row, rps, p50, p99, p999, strconv.FormatUint(r.Errors.Total(), 10),
			strconv.FormatUint(r.Non2xx, 10), cpu, rssCol, perConn, rr, cr, bg))
	}
	width := make([]int, len(t[0]))
	for _, row := range t {
		for i, c := range row {
			width[i] = max(width[i], utf8.RuneCountInString(c))
		}
	}
	var b strings.Builder
	for _, row := range t {
		for i, c := range row {
			pad := strings.Repeat(" ", width[i]-utf8.RuneCountInString(c))
			if i < leftCols {
				b.WriteString(c + pad)
			} else {
				b.WriteString(pad + c)
			}
			if i < len(row)-1 {
				b.WriteString("  ")
			}
		}
		b.WriteString("\n")
	}
	for _, line := range ceilingLines(rows) {
		b.WriteString("  " + line + "\n")
	}
	for _, n := range notes {
		where := n.scenario + "/" + n.target
		if n.count > 1 {
			where = fmt.Sprintf("%s (%d scenarios)", n.target, n.count)
		}
		b.WriteString("  * " + where + ": " + n.text + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func statusText(r Result) string {
	if r.Reason == "" {
		return r.Status
	}
	return r.Status + ": " + strings.ReplaceAll(r.Reason, "\n", " ")
}

func times(v float64) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f×", v)
}

func micros(us float64) string {
	switch {
	case us >= 1e6:
		return fmt.Sprintf("%.2fs", us/1e6)
	case us >= 1e3:
		return fmt.Sprintf("%.2fms", us/1e3)
	default:
		return fmt.Sprintf("%.0fµs", us)
	}
}

// Bytes renders a byte count with a binary unit.
func Bytes(b uint64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.1fGiB", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1fMiB", float64(b)/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1fKiB", float64(b)/(1<<10))
	default:
		return fmt.Sprintf("%dB", b)
	}
}

// ceilingLines compares, per scenario, the gateway's HTTP path with its own
// L4 relay (the engine's ceiling: DESIGN.md sets the L7 goal within 5% of it),
// and that relay with HAProxy's mode tcp (haproxy-tcp).
func ceilingLines(rows []Result) []string {
	l4, htcp, eg := map[string]Result{}, map[string]Result{}, map[string]Result{}
	for _, r := range rows {
		if r.Status != StatusOK || r.Requests == 0 {
			continue
		}
		switch r.Target {
		case "expressgateway-l4":
			l4[r.Scenario] = r
		case "haproxy-tcp":
			htcp[r.Scenario] = r
		case "expressgateway":
			eg[r.Scenario] = r
		}
	}
	var out []string
	for _, r := range rows {
		if g, ok := eg[r.Scenario]; ok && r.Target == "expressgateway-log" && r.Status == StatusOK && r.Requests > 0 {
			out = append(out, fmt.Sprintf("%s: expressgateway access log on vs off: cpu-µs/req %s, rps %s",
				r.Scenario, times(ratio(r.CPUMicrosPerRequest, g.CPUMicrosPerRequest)), times(ratio(r.RPS, g.RPS))))
		}
		if h, ok := htcp[r.Scenario]; ok && r.Target == "expressgateway-l4" && r.Status == StatusOK && r.Requests > 0 {
			out = append(out, fmt.Sprintf("%s: expressgateway L4 relay vs haproxy mode tcp: cpu-µs/req %s, rps %s",
				r.Scenario, times(ratio(r.CPUMicrosPerRequest, h.CPUMicrosPerRequest)), times(ratio(r.RPS, h.RPS))))
		}
		c, ok := l4[r.Scenario]
		if !ok || r.Target != "expressgateway" || r.Status != StatusOK || r.Requests == 0 {
			continue
		}
		out = append(out, fmt.Sprintf("%s: expressgateway L7 vs its L4 relay: cpu-µs/req %s, rps %s",
			r.Scenario, times(ratio(r.CPUMicrosPerRequest, c.CPUMicrosPerRequest)), times(ratio(r.RPS, c.RPS))))
	}
	return out
}
