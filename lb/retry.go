// SPDX-License-Identifier: GPL-3.0-only

package lb

import (
	"sync/atomic"
	"time"
)

// retryWindow is how far back the retry budget looks, in one-second buckets.
const retryWindow = 10

// retryBudget keeps retries within a share of recent requests (Finagle's
// RetryBudget, Linkerd's retry budget): over the last retryWindow seconds,
// retries ≤ max(budget% × requests, minPerSecond × window). The floor is
// what lets a quiet cluster retry at all: at 2 requests a second, 20% would
// allow one retry every 2.5 s. Buckets are rotated lock-free; a race at a
// bucket boundary can misplace a count, never block.
// The budget's share and reserve live in the cluster's clusterCfg, so
// that Cluster.Update can change them while the counts carry on.
type retryBudget struct {
	buckets [retryWindow]retryBucket
	now     func() int64 // seconds
}

type retryBucket struct {
	sec      atomic.Int64
	requests atomic.Int64
	retries  atomic.Int64
}

func (b *retryBudget) init() {
	if b.now == nil {
		b.now = func() int64 { return time.Now().Unix() }
	}
}

// bucket returns the bucket for second sec, clearing it if it last held
// an older second.
func (b *retryBudget) bucket(sec int64) *retryBucket {
	k := &b.buckets[uint64(sec)%retryWindow]
	if old := k.sec.Load(); old != sec && k.sec.CompareAndSwap(old, sec) {
		k.requests.Store(0)
		k.retries.Store(0)
	}
	return k
}

func (b *retryBudget) sums(sec int64) (requests, retries int64) {
	for i := range b.buckets {
		k := &b.buckets[i]
		if s := k.sec.Load(); s > sec-retryWindow && s <= sec {
			requests += k.requests.Load()
			retries += k.retries.Load()
		}
	}
	return requests, retries
}

// room reports whether the window has room for one more retry under cfg's
// share and reserve, and the bucket a retry would be counted in.
func (b *retryBudget) room(cfg *clusterCfg) (*retryBucket, bool) {
	sec := b.now()
	k := b.bucket(sec)
	requests, retries := b.sums(sec)
	limit := max(int64(cfg.budgetPercent*float64(requests)/100), cfg.budgetReserve)
	return k, retries < limit
}

// RecordRequest counts one original (not retried) request toward the
// retry budget. Lock-free and allocation-free.
func (c *Cluster) RecordRequest() {
	c.RecordRequestAt(c.budget.now())
}

// RecordRequestAt is RecordRequest for a caller that has the time at hand
// (unixSec, in Unix seconds: the event loop's clock), which saves a clock
// read per request.
func (c *Cluster) RecordRequestAt(unixSec int64) {
	c.budget.bucket(unixSec).requests.Add(1)
}

// AllowRetry reports whether the retry budget has room for one more retry
// and, if so, spends it. Call it after ShouldRetry said yes, once per retry
// actually sent; false means give the client the failed response.
// Lock-free and allocation-free.
func (c *Cluster) AllowRetry() bool {
	cfg := c.snap.Load().cfg
	if cfg.spec.Retry.MaxRetries < 0 {
		return false
	}
	k, ok := c.budget.room(cfg)
	if !ok {
		return false
	}
	k.retries.Add(1)
	return true
}

// RetryBudgetLeft reports whether AllowRetry would succeed now, without
// spending anything: for a forwarder that must decide early (before it
// discards a 502 or 503 response) whether a retry will follow.
func (c *Cluster) RetryBudgetLeft() bool {
	cfg := c.snap.Load().cfg
	if cfg.spec.Retry.MaxRetries < 0 {
		return false
	}
	_, ok := c.budget.room(cfg)
	return ok
}

// MaxRetries is the most retries one request may make (0 = none).
func (c *Cluster) MaxRetries() int { return max(c.snap.Load().cfg.spec.Retry.MaxRetries, 0) }

// PerTryTimeout bounds each attempt; 0 means no per-try bound.
func (c *Cluster) PerTryTimeout() time.Duration { return c.snap.Load().cfg.spec.Retry.PerTryTimeout }

// RetryCause says why an attempt failed, for ShouldRetry. The forwarder
// maps its own failure reasons onto these; each names what the upstream
// may have seen, which is what decides whether a retry is safe.
type RetryCause uint8

// Retry causes.
const (
	// CauseStatus: the upstream answered; status says how (502, 503 and
	// 504 can be retried, by retry_on).
	CauseStatus RetryCause = iota
	// CauseConnectFailed: no connection was established (refused,
	// unreachable, connect timeout), so nothing of the request left the
	// gateway. Retried for every method, POST included.
	CauseConnectFailed
	// CauseReset: the connection was reset or closed before a response
	// head, after the request was (at least partly) sent.
	CauseReset
	// CauseTimeout: no response head within the per-try or
	// response-header timeout, after the request was sent (retry_on
	// "504").
	CauseTimeout
)

// RetryConditions is the set of failures a cluster retries (the TOML
// retry.retry_on list), as bits.
type RetryConditions uint8

// Retry conditions; DefaultRetryOn is the gateway's default set.
const (
	RetryOnConnectFailure RetryConditions = 1 << iota // "connect-failure"
	RetryOnReset                                      // "reset"
	RetryOn502                                        // "502"
	RetryOn503                                        // "503"
	RetryOn504                                        // "504" (and timeouts)

	retryOnAll = RetryOnConnectFailure | RetryOnReset | RetryOn502 | RetryOn503 | RetryOn504
)

// condition is the retry_on bit that governs cause (and status).
func condition(cause RetryCause, status int) RetryConditions {
	switch cause {
	case CauseConnectFailed:
		return RetryOnConnectFailure
	case CauseReset:
		return RetryOnReset
	case CauseTimeout:
		return RetryOn504
	}
	switch status {
	case 502:
		return RetryOn502
	case 503:
		return RetryOn503
	case 504:
		return RetryOn504
	}
	return 0
}

// ShouldRetry is the one retry policy of the gateway (it spends no budget:
// call AllowRetry after it, then Pick(ri, failedEndpoint)). A failed
// attempt is retried when all of these hold:
//   - retries are left: attempt (the retries already made) < MaxRetries;
//   - the failure's condition is in Retry.RetryOn;
//   - either nothing reached the upstream (CauseConnectFailed: any method,
//     since the request never left, as nginx's proxy_next_upstream error
//     and Envoy's connect-failure do), or the method is idempotent (GET,
//     HEAD, OPTIONS, TRACE, PUT, DELETE) and no request body byte was
//     streamed upstream (bodySent false): the upstream may have acted on
//     the request, which only idempotent methods make harmless.
func (c *Cluster) ShouldRetry(method string, bodySent bool, attempt int, cause RetryCause, status int) bool {
	if attempt >= c.MaxRetries() {
		return false
	}
	cond := condition(cause, status)
	if cond == 0 || c.snap.Load().cfg.spec.Retry.RetryOn&cond == 0 {
		return false
	}
	if cause == CauseConnectFailed {
		return true
	}
	return !bodySent && IdempotentMethod(method)
}

// IdempotentMethod reports whether an HTTP method is idempotent (RFC 9110
// §9.2.2) and so safe to retry.
func IdempotentMethod(m string) bool {
	switch m {
	case "GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE":
		return true
	}
	return false
}

// String lists the conditions as the TOML retry_on values.
func (r RetryConditions) String() string {
	s := ""
	for _, x := range []struct {
		bit  RetryConditions
		name string
	}{{RetryOnConnectFailure, "connect-failure"}, {RetryOnReset, "reset"}, {RetryOn502, "502"}, {RetryOn503, "503"}, {RetryOn504, "504"}} {
		if r&x.bit != 0 {
			if s != "" {
				s += ","
			}
			s += x.name
		}
	}
	return s
}
