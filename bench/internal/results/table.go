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
		"cpu-µs/req", "peak RSS", "RSS/conn", "rps÷peer", "cpu÷peer", "bg-cpu"}}
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
	if line := peerLine(rows); line != "" {
		b.WriteString("  " + line + "\n")
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

// peerLine names the peer the ÷peer columns are to, per scenario, when any
// row has ratios.
func peerLine(rows []Result) string {
	var scen []string
	peers := map[string]string{}
	for _, r := range rows {
		if r.RatioPeer == "" {
			continue
		}
		if _, ok := peers[r.Scenario]; !ok {
			scen = append(scen, r.Scenario)
		}
		peers[r.Scenario] = r.RatioPeer
	}
	if len(scen) == 0 {
		return ""
	}
	byPeer := map[string][]string{}
	var order []string
	for _, s := range scen {
		p := peers[s]
		if _, ok := byPeer[p]; !ok {
			order = append(order, p)
		}
		byPeer[p] = append(byPeer[p], s)
	}
	var parts []string
	for _, p := range order {
		parts = append(parts, p+" ("+strings.Join(byPeer[p], ", ")+")")
	}
	return "÷peer: ratios to " + strings.Join(parts, "; ")
}

// h3Baselines are the rows, in the order of preference, that the gateway's
// h3 row is compared with: its own HTTP/2 rows of the same run.
var h3Baselines = []string{"tls-h2", "h2c"}

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
	if line := h3Line(rows); line != "" {
		out = append(out, line)
	}
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

// h3Line compares the gateway's h3 row with its own HTTP/2 row of the same
// run (tls-h2, else h2c): issue 12 wants HTTP/3's CPU per request within 2×
// of HTTP/2's.
func h3Line(rows []Result) string {
	ok := func(r Result) bool { return r.Target == "expressgateway" && r.Status == StatusOK && r.Requests > 0 }
	var h3 *Result
	byScenario := map[string]Result{}
	for i, r := range rows {
		if !ok(r) {
			continue
		}
		if r.Scenario == "h3" {
			h3 = &rows[i]
		}
		byScenario[r.Scenario] = r
	}
	if h3 == nil {
		return ""
	}
	for _, s := range h3Baselines {
		if b, found := byScenario[s]; found {
			return fmt.Sprintf("h3: expressgateway H3 vs its H2 row (%s): cpu-µs/req %s, rps %s",
				s, times(ratio(h3.CPUMicrosPerRequest, b.CPUMicrosPerRequest)), times(ratio(h3.RPS, b.RPS)))
		}
	}
	return ""
}
