// SPDX-License-Identifier: GPL-3.0-only

package guards

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/rs/zerolog"
)

func TestLogGate(t *testing.T) {
	var g entry
	now := time.Now().UnixNano()
	if ok, n := g.pass(now, time.Second); !ok || n != 0 {
		t.Fatalf("first: %v %d", ok, n)
	}
	for i := range 5 {
		if ok, _ := g.pass(now+int64(i)*int64(100*time.Millisecond), time.Second); ok {
			t.Fatalf("line %d within a second passed", i)
		}
	}
	if ok, n := g.pass(now+int64(time.Second), time.Second); !ok || n != 5 {
		t.Fatalf("after a second: %v, suppressed %d", ok, n)
	}
}

// TestHitCountsEveryTimeLogsOnce: a flood of hits counts each one and
// writes one line per second per guard.
func TestHitCountsEveryTimeLogsOnce(t *testing.T) {
	set := metrics.NewSet()
	var buf bytes.Buffer
	r := NewRecorder(set, zerolog.New(&buf))
	ip := netip.MustParseAddr("198.18.0.9")
	for range 1000 {
		r.Hit(RapidReset, Connection, "web", ip)
	}
	r.Hit(SlowLoris, Connection, "web", ip)
	var out bytes.Buffer
	set.WritePrometheus(&out)
	for _, want := range []string{
		`expressgateway_guard_tripped_total{guard="h2_rapid_reset"} 1000`,
		`expressgateway_guard_tripped_total{guard="slow_loris"} 1`,
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("scrape lacks %s:\n%s", want, out.String())
		}
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d log lines, want 2 (one per guard):\n%s", len(lines), buf.String())
	}
	if !strings.Contains(lines[0], `"guard":"h2_rapid_reset"`) || !strings.Contains(lines[0], `"scope":"connection"`) ||
		!strings.Contains(lines[0], `"client":"198.18.0.9"`) {
		t.Errorf("line %s", lines[0])
	}
}
