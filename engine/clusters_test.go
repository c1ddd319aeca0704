// SPDX-License-Identifier: GPL-3.0-only

package engine

import (
	"testing"

	"github.com/VictoriaMetrics/metrics"
	"github.com/rs/zerolog"

	"github.com/expressgateway/expressgateway/conf"
	"github.com/expressgateway/expressgateway/lb"
)

func testClusters(t *testing.T, retry string) *Clusters {
	t.Helper()
	snap, err := conf.Parse("t.toml", []byte(`
[[listeners]]
name = "web"
listen = "127.0.0.1:1"
[[listeners.routes]]
cluster = "app"
[[clusters]]
name = "app"
endpoints = [ { address = "127.0.0.1:2" }, { address = "127.0.0.1:3" }, { address = "127.0.0.1:4" } ]
`+retry))
	if err != nil {
		t.Fatal(err)
	}
	cs, err := NewClusters(snap, metrics.NewSet(), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// TestAllowRetryDelegatesToLB: the engine's string reasons map onto lb's
// one policy: connect failures for every method, the rest for idempotent
// methods only, within retry_on and max_retries.
func TestAllowRetryDelegatesToLB(t *testing.T) {
	cs := testClusters(t, "")
	cl := cs.Get("app")
	for _, tc := range []struct {
		method   string
		attempts int
		reason   string
		status   int
		want     bool
	}{
		{"GET", 1, "connect_failed", 502, true},
		{"POST", 1, "connect_failed", 502, true},
		{"POST", 1, "connect_timeout", 502, true},
		{"PATCH", 1, "connect_failed", 502, true},
		{"POST", 2, "connect_failed", 502, false}, // max_retries = 1
		{"POST", 1, "reset", 502, false},
		{"GET", 1, "reset", 502, true},
		{"GET", 2, "reset", 502, false},
		{"GET", 1, "status_502", 502, true},
		{"GET", 1, "status_503", 503, true},
		{"POST", 1, "status_503", 503, false},
		{"GET", 1, "bad_response", 502, true},
		{"GET", 1, "per_try_timeout", 504, false}, // 504 not in the default retry_on
		{"GET", 1, "response_header_timeout", 504, false},
		{"GET", 1, "unexpected_upgrade", 502, false},
		{"GET", 1, "reset_mid_body", 502, false},
	} {
		if got := cs.AllowRetry(cl, tc.attempts, []byte(tc.method), tc.reason, tc.status); got != tc.want {
			t.Errorf("%+v: got %v", tc, got)
		}
	}

	with504 := testClusters(t, "[clusters.retry]\nmax_retries = 2\nretry_on = [\"504\"]\n")
	cl = with504.Get("app")
	if !with504.AllowRetry(cl, 2, []byte("GET"), "per_try_timeout", 504) || with504.AllowRetry(cl, 1, []byte("GET"), "connect_failed", 502) {
		t.Error("retry_on = [\"504\"]: want timeouts retried and connect failures not")
	}
	none := testClusters(t, "[clusters.retry]\nretry_on = []\n")
	if none.AllowRetry(none.Get("app"), 1, []byte("GET"), "connect_failed", 502) || none.Get("app").LB.MaxRetries() != 0 {
		t.Error("an empty retry_on still retries")
	}
	off := testClusters(t, "[clusters.retry]\nmax_retries = 0\n")
	if off.AllowRetry(off.Get("app"), 1, []byte("POST"), "connect_failed", 502) {
		t.Error("max_retries = 0 still retries")
	}
}

// TestAllowRetryStatusProbeSpendsNothing: the forwarder asks with reason
// "status" before it discards a 502/503 and again with "status_502" when it
// retries; only the second spends budget.
func TestAllowRetryStatusProbeSpendsNothing(t *testing.T) {
	cs := testClusters(t, "[clusters.retry]\nmin_retries_per_second = 1\nbudget_percent = 0.0\n")
	cl := cs.Get("app")
	spent := 0
	for range 30 {
		if !cs.AllowRetry(cl, 1, []byte("GET"), "status", 502) {
			break
		}
		if cs.AllowRetry(cl, 1, []byte("GET"), "status_502", 502) {
			spent++
		}
	}
	if spent != 10 { // a floor of 1/s is 10 per 10 s window
		t.Fatalf("%d retries with a floor of 10 per window, want 10 (the probe spent budget?)", spent)
	}
}

// TestBudgetPercentZeroMeansFloorOnly: budget_percent = 0 in the file is
// no share of requests, not lb's default of 20.
func TestBudgetPercentZeroMeansFloorOnly(t *testing.T) {
	cs := testClusters(t, "[clusters.retry]\nmin_retries_per_second = 1\nbudget_percent = 0.0\n")
	cl := cs.Get("app")
	for range 1000 {
		cl.LB.RecordRequest()
	}
	n := 0
	for cs.AllowRetry(cl, 1, []byte("GET"), "connect_failed", 502) {
		n++
	}
	if n != 10 {
		t.Fatalf("%d retries after 1000 requests with budget_percent 0 and a floor of 10 per window, want 10", n)
	}
}

func TestAllowRetryDoesNotAllocate(t *testing.T) {
	cs := testClusters(t, "[clusters.retry]\nmin_retries_per_second = 100000\n")
	cl := cs.Get("app")
	method := []byte("POST")
	if n := testing.AllocsPerRun(1000, func() { cs.AllowRetry(cl, 1, method, "connect_failed", 502) }); n != 0 {
		t.Fatalf("AllowRetry allocates %v times", n)
	}
}

// TestDefaultOutlierDetectionInLB: a cluster without the table gets lb
// outlier detection with the connect-failure trigger only.
func TestDefaultOutlierDetectionInLB(t *testing.T) {
	cs := testClusters(t, "")
	o := cs.Get("app").LB.Spec().Outlier
	if o == nil || o.ConsecutiveConnectFailures != 3 || o.Consecutive5xx >= 0 || o.BaseEjectionTime.Seconds() != 10 || o.MaxEjectionPercent != 50 {
		t.Fatalf("default outlier spec %+v", o)
	}
	if cs.Get("app").LB.Spec().Retry.RetryOn != lb.DefaultRetryOn {
		t.Fatalf("retry_on %v", cs.Get("app").LB.Spec().Retry.RetryOn)
	}
}
