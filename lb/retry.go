// SPDX-License-Identifier: GPL-3.0-only

package lb

import (
	"sync/atomic"
	"time"
)

// retryWindow is how far back the retry budget looks, in one-second buckets.
const retryWindow = 10

// retryBudget keeps retries within a share of recent requests (Envoy's
// retry budget, Finagle's RetryBudget): over the last retryWindow seconds,
// retries ≤ max(budget% × requests, minPerSecond × window). Buckets are
// rotated lock-free; a race at a bucket boundary can misplace a count,
// never block.
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

// RecordRequest counts one original (not retried) request toward the
// retry budget. Lock-free and allocation-free.
func (c *Cluster) RecordRequest() {
	sec := c.budget.now()
	c.budget.bucket(sec).requests.Add(1)
}

// AllowRetry reports whether the retry budget has room for one more retry
// and, if so, spends it. Call it before each retry attempt; false means
// give the client the failed response. Lock-free and allocation-free.
func (c *Cluster) AllowRetry() bool {
	cfg := c.snap.Load().cfg
	if cfg.spec.Retry.MaxRetries < 0 {
		return false
	}
	b := &c.budget
	sec := b.now()
	k := b.bucket(sec)
	requests, retries := b.sums(sec)
	limit := max(int64(cfg.budgetPercent*float64(requests)/100), cfg.budgetReserve)
	if retries >= limit {
		return false
	}
	k.retries.Add(1)
	return true
}

// MaxRetries is the most retries one request may make (0 = none).
func (c *Cluster) MaxRetries() int { return max(c.snap.Load().cfg.spec.Retry.MaxRetries, 0) }

// PerTryTimeout bounds each attempt; 0 means no per-try bound.
func (c *Cluster) PerTryTimeout() time.Duration { return c.snap.Load().cfg.spec.Retry.PerTryTimeout }

// RetryCause says why an attempt failed, for ShouldRetry.
type RetryCause uint8

// Retry causes.
const (
	// CauseStatus: the upstream answered; look at the status.
	CauseStatus RetryCause = iota
	// CauseConnectFailed: the upstream could not be reached.
	CauseConnectFailed
	// CauseReset: the connection was reset or closed before a response.
	CauseReset
)

// ShouldRetry applies the retry rules of a failed attempt: only for
// idempotent methods (GET, HEAD, OPTIONS, TRACE, PUT, DELETE), only when
// no request body was streamed upstream yet, only after a connect failure,
// a reset or a 502/503, and at most MaxRetries times (attempt counts
// retries already made). It does not spend budget: call AllowRetry after.
// Pick the retry with Pick(ri, failedEndpoint).
func (c *Cluster) ShouldRetry(method string, bodySent bool, attempt int, cause RetryCause, status int) bool {
	if bodySent || attempt >= c.MaxRetries() || !IdempotentMethod(method) {
		return false
	}
	switch cause {
	case CauseConnectFailed, CauseReset:
		return true
	default:
		return status == 502 || status == 503
	}
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
