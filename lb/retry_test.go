// SPDX-License-Identifier: GPL-3.0-only

package lb

import (
	"testing"
	"testing/synctest"
	"time"
)

func TestRetryBudget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := mustCluster(t, Spec{Endpoints: endpoints(1, 1), Retry: RetrySpec{BudgetPercent: 20, MinRetriesPerSecond: 1}})
		// Quiet cluster: the reserve (1/s over the 10s window) still allows 10.
		allowed := 0
		for range 50 {
			if c.AllowRetry() {
				allowed++
			}
		}
		if allowed != 10 {
			t.Fatalf("reserve allowed %d retries, want 10", allowed)
		}
		time.Sleep(11 * time.Second)
		// 1000 requests over 5 seconds: 20% → 200 retries at most.
		retries := 0
		for range 5 {
			for range 200 {
				c.RecordRequest()
				if c.AllowRetry() {
					retries++
				}
			}
			time.Sleep(time.Second)
		}
		for c.AllowRetry() {
			retries++
		}
		if retries != 200 {
			t.Fatalf("%d retries for 1000 requests, want 200 (20%%)", retries)
		}
		// The window slides: after 10s the old requests no longer count.
		time.Sleep(10 * time.Second)
		if n := drain(c); n != 10 {
			t.Fatalf("after the window only the reserve should remain, got %d", n)
		}
	})
}

func drain(c *Cluster) int {
	n := 0
	for c.AllowRetry() {
		n++
	}
	return n
}

func TestShouldRetry(t *testing.T) {
	c := mustCluster(t, Spec{Endpoints: endpoints(1, 1), Retry: RetrySpec{MaxRetries: 2, PerTryTimeout: time.Second}})
	for _, tc := range []struct {
		method   string
		bodySent bool
		attempt  int
		cause    RetryCause
		status   int
		want     bool
	}{
		{"GET", false, 0, CauseConnectFailed, 0, true},
		{"GET", false, 0, CauseReset, 0, true},
		{"GET", false, 1, CauseStatus, 502, true},
		{"PUT", false, 0, CauseStatus, 503, true},
		{"GET", false, 0, CauseStatus, 500, false},
		{"GET", false, 0, CauseStatus, 504, false},
		{"POST", false, 0, CauseConnectFailed, 0, false},
		{"GET", true, 0, CauseReset, 0, false},
		{"GET", false, 2, CauseConnectFailed, 0, false},
	} {
		if got := c.ShouldRetry(tc.method, tc.bodySent, tc.attempt, tc.cause, tc.status); got != tc.want {
			t.Errorf("%+v: got %v", tc, got)
		}
	}
	if c.MaxRetries() != 2 || c.PerTryTimeout() != time.Second {
		t.Fatal("retry accessors")
	}
	off := mustCluster(t, Spec{Endpoints: endpoints(1), Retry: RetrySpec{MaxRetries: -1}})
	if off.AllowRetry() || off.ShouldRetry("GET", false, 0, CauseConnectFailed, 0) {
		t.Fatal("retries disabled but allowed")
	}
}
