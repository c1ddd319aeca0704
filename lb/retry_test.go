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
	all := mustCluster(t, Spec{Endpoints: endpoints(1, 1), Retry: RetrySpec{MaxRetries: 1, RetryOn: RetryOnConnectFailure | RetryOnReset | RetryOn502 | RetryOn503 | RetryOn504}})
	connectOnly := mustCluster(t, Spec{Endpoints: endpoints(1, 1), Retry: RetrySpec{MaxRetries: 1, RetryOn: RetryOnConnectFailure}})
	for _, tc := range []struct {
		c        *Cluster
		method   string
		bodySent bool
		attempt  int
		cause    RetryCause
		status   int
		want     bool
	}{
		{c, "GET", false, 0, CauseConnectFailed, 0, true},
		{c, "GET", false, 0, CauseReset, 0, true},
		{c, "GET", false, 1, CauseStatus, 502, true},
		{c, "PUT", false, 0, CauseStatus, 503, true},
		{c, "GET", false, 0, CauseStatus, 500, false},
		{c, "GET", false, 0, CauseStatus, 504, false}, // 504 is not in the default retry_on
		{c, "GET", false, 0, CauseTimeout, 504, false},
		// Nothing left the gateway: every method, and a body not sent yet.
		{c, "POST", false, 0, CauseConnectFailed, 0, true},
		{c, "PATCH", false, 1, CauseConnectFailed, 0, true},
		{c, "POST", false, 2, CauseConnectFailed, 0, false}, // retries used up
		// The upstream may have acted: idempotent methods only, no body sent.
		{c, "POST", false, 0, CauseReset, 0, false},
		{c, "POST", false, 0, CauseStatus, 503, false},
		{c, "GET", true, 0, CauseReset, 0, false},
		{c, "PUT", true, 0, CauseStatus, 502, false},
		{c, "GET", false, 2, CauseConnectFailed, 0, false},
		// retry_on decides which conditions count.
		{all, "GET", false, 0, CauseStatus, 504, true},
		{all, "GET", false, 0, CauseTimeout, 0, true},
		{all, "POST", false, 0, CauseTimeout, 0, false},
		{connectOnly, "GET", false, 0, CauseReset, 0, false},
		{connectOnly, "GET", false, 0, CauseStatus, 502, false},
		{connectOnly, "DELETE", false, 0, CauseConnectFailed, 0, true},
	} {
		if got := tc.c.ShouldRetry(tc.method, tc.bodySent, tc.attempt, tc.cause, tc.status); got != tc.want {
			t.Errorf("%s %+v: got %v", tc.c.spec.Retry.RetryOn.String(), tc, got)
		}
	}
	if c.MaxRetries() != 2 || c.PerTryTimeout() != time.Second {
		t.Fatal("retry accessors")
	}
	off := mustCluster(t, Spec{Endpoints: endpoints(1), Retry: RetrySpec{MaxRetries: -1}})
	if off.AllowRetry() || off.RetryBudgetLeft() || off.ShouldRetry("GET", false, 0, CauseConnectFailed, 0) {
		t.Fatal("retries disabled but allowed")
	}
}

// TestRetryBudgetLeftSpendsNothing: asking whether a retry would be allowed
// (before a 502 is discarded) must not use up the budget the retry itself
// then spends.
func TestRetryBudgetLeftSpendsNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := mustCluster(t, Spec{Endpoints: endpoints(1, 1), Retry: RetrySpec{BudgetPercent: 20, MinRetriesPerSecond: 1}})
		for range 100 {
			if !c.RetryBudgetLeft() {
				t.Fatal("RetryBudgetLeft false on a fresh budget")
			}
		}
		if n := drain(c); n != 10 {
			t.Fatalf("after 100 peeks the reserve allowed %d retries, want 10", n)
		}
		if c.RetryBudgetLeft() {
			t.Fatal("RetryBudgetLeft true with the budget spent")
		}
	})
}

// TestRetryFloorDefault: without a configured floor a quiet cluster still
// gets DefaultMinRetriesPerSecond × the window, so that one dead endpoint
// at a low request rate does not turn into client errors.
func TestRetryFloorDefault(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := mustCluster(t, Spec{Endpoints: endpoints(1, 1, 1)})
		// 2 requests a second for 10 s, a third of them failing: 20% of 20
		// would allow 4 retries, the floor allows all 7.
		got := 0
		for s := range 10 {
			for r := range 2 {
				c.RecordRequest()
				if (s*2+r)%3 == 0 && c.AllowRetry() {
					got++
				}
			}
			time.Sleep(time.Second)
		}
		if got != 7 {
			t.Fatalf("%d of 7 retries allowed at 2 requests/s", got)
		}
		none := mustCluster(t, Spec{Endpoints: endpoints(1, 1), Retry: RetrySpec{MinRetriesPerSecond: -1}})
		if none.AllowRetry() {
			t.Fatal("a negative floor still allowed a retry without requests")
		}
	})
}
