// SPDX-License-Identifier: GPL-3.0-only

package lb

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// simulateLatency drives a cluster with open-loop traffic in fake time:
// every tick `perTick` requests arrive, each endpoint answers after its
// latency, and End reports it. It returns picks per endpoint index.
func simulateLatency(t *testing.T, alg string, latency []time.Duration) []int {
	t.Helper()
	counts := make([]int, len(latency))
	synctest.Test(t, func(t *testing.T) {
		ws := make([]uint32, len(latency))
		for i := range ws {
			ws[i] = 1
		}
		c := mustCluster(t, Spec{Algorithm: alg, Endpoints: endpoints(ws...), EWMA: EWMASpec{Decay: time.Second}})
		type inflight struct {
			e     *Endpoint
			start time.Time
			done  time.Time
		}
		var queue []inflight
		const tick, perTick, ticks = time.Millisecond, 4, 5000
		for range ticks {
			now := time.Now()
			rest := queue[:0]
			for _, r := range queue {
				if !r.done.After(now) {
					r.e.End(200, now.Sub(r.start), false)
				} else {
					rest = append(rest, r)
				}
			}
			queue = rest
			for range perTick {
				e := mustPick(t, c, nil, nil)
				e.Begin()
				counts[e.index]++
				queue = append(queue, inflight{e, now, now.Add(latency[e.index])})
			}
			time.Sleep(tick)
		}
	})
	return counts
}

func TestEWMAAndP2CAvoidSlowEndpoint(t *testing.T) {
	lat := []time.Duration{2 * time.Millisecond, 2 * time.Millisecond, 2 * time.Millisecond, 40 * time.Millisecond}
	for _, alg := range []string{EWMA, P2C, LeastRequests, RoundRobin} {
		counts := simulateLatency(t, alg, lat)
		fast := float64(counts[0]+counts[1]+counts[2]) / 3
		ratio := float64(counts[3]) / fast
		t.Logf("%-15s picks %v: slow/fast = %.3f", alg, counts, ratio)
		switch alg {
		case RoundRobin:
			if ratio < 0.95 {
				t.Errorf("round_robin control should not see latency: ratio %.3f", ratio)
			}
		case EWMA:
			if ratio > 0.25 {
				t.Errorf("ewma sends %.3f of a fast endpoint's share to the slow one", ratio)
			}
		default:
			if ratio > 0.6 {
				t.Errorf("%s sends %.3f of a fast endpoint's share to the slow one", alg, ratio)
			}
		}
	}
}

func TestEWMAEstimate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := mustCluster(t, Spec{Algorithm: EWMA, Endpoints: endpoints(1), EWMA: EWMASpec{Decay: time.Second}})
		e := c.Endpoints()[0]
		e.Begin()
		e.End(200, 50*time.Millisecond, false)
		if got := e.Latency(); got != 50*time.Millisecond {
			t.Fatalf("peak: estimate %v, want 50ms at once", got)
		}
		time.Sleep(time.Second)
		e.Begin()
		e.End(200, 10*time.Millisecond, false)
		// w = e^-1: 50×0.368 + 10×0.632 ≈ 24.7ms.
		if got := e.Latency(); got < 24*time.Millisecond || got > 25*time.Millisecond {
			t.Fatalf("decay: estimate %v, want ~24.7ms", got)
		}
		// Connect failures and status-less ends do not feed latency.
		e.Begin()
		e.End(0, time.Hour, true)
		if got := e.Latency(); got > 25*time.Millisecond {
			t.Fatalf("failed attempt changed the estimate to %v", got)
		}
	})
}

func TestLeastLoadedPicksMinimum(t *testing.T) {
	c := mustCluster(t, Spec{Algorithm: LeastRequests, Endpoints: endpoints(1, 1, 2)})
	eps := c.Endpoints()
	for range 3 {
		eps[0].Begin()
	}
	eps[1].Begin()
	for range 3 {
		eps[2].Begin()
	}
	// Loads per weight (+1): 4/1, 2/1, 4/2 → tie between 1 and 2.
	got := countPicks(t, c, 100, nil)
	if got[addrOf(0)] != 0 || got[addrOf(1)] == 0 || got[addrOf(2)] == 0 {
		t.Fatalf("picks %v: want only endpoints 1 and 2", got)
	}
	lc := mustCluster(t, Spec{Algorithm: LeastConnections, Endpoints: endpoints(1, 1, 1)})
	le := lc.Endpoints()
	le[0].ConnOpened()
	le[2].ConnOpened()
	le[2].ConnOpened()
	le[2].ConnClosed()
	for range 50 {
		if e := mustPick(t, lc, nil, nil); e != le[1] {
			t.Fatalf("least_connections picked %s with %d conns", e.Address(), e.Connections())
		}
	}
}

// Many goroutines (standing in for event loops) pick, hold and release.
// Least-loaded pickers keep the spread tight; counters return to zero.
func TestLeastLoadedConcurrent(t *testing.T) {
	for _, alg := range []string{LeastRequests, LeastConnections, P2C} {
		c := mustCluster(t, Spec{Algorithm: alg, Endpoints: endpoints(1, 1, 1, 1)})
		var maxActive atomic.Int64
		var wg sync.WaitGroup
		for range 16 {
			wg.Go(func() {
				for range 2000 {
					p, err := c.Pick(nil, nil)
					if err != nil {
						t.Error(err)
						return
					}
					e := p.Endpoint
					e.ConnOpened()
					e.Begin()
					if a := e.ActiveRequests(); a > maxActive.Load() {
						maxActive.Store(a)
					}
					e.End(200, time.Millisecond, false)
					e.ConnClosed()
				}
			})
		}
		wg.Wait()
		var total uint64
		for _, e := range c.Endpoints() {
			if e.ActiveRequests() != 0 || e.Connections() != 0 {
				t.Fatalf("%s: %s left active=%d conns=%d", alg, e.Address(), e.ActiveRequests(), e.Connections())
			}
			total += e.Picks()
		}
		if total != 16*2000 {
			t.Fatalf("%s: %d picks recorded, want %d", alg, total, 16*2000)
		}
		t.Logf("%s: max active on one endpoint with 16 workers over 4 endpoints: %d", alg, maxActive.Load())
		if alg != P2C && maxActive.Load() > 16/4+2 {
			t.Errorf("%s: an endpoint reached %d active requests", alg, maxActive.Load())
		}
	}
}

// Workers each take and hold one request, then all release together: with
// 12 held requests over 4 endpoints a least-loaded picker must end each
// round close to 3 per endpoint even though the picks raced.
func TestLeastLoadedConcurrentBalance(t *testing.T) {
	for _, alg := range []string{LeastRequests, LeastConnections} {
		c := mustCluster(t, Spec{Algorithm: alg, Endpoints: endpoints(1, 1, 1, 1)})
		load := func(e *Endpoint) int64 {
			if alg == LeastConnections {
				return e.Connections()
			}
			return e.ActiveRequests()
		}
		worst := int64(0)
		for range 200 {
			var wg sync.WaitGroup
			held := make([]*Endpoint, 12)
			for w := range held {
				wg.Go(func() {
					e := mustPick(t, c, nil, nil)
					e.Begin()
					e.ConnOpened()
					held[w] = e
				})
			}
			wg.Wait()
			lo, hi := int64(1<<62), int64(0)
			for _, e := range c.Endpoints() {
				lo, hi = min(lo, load(e)), max(hi, load(e))
			}
			worst = max(worst, hi-lo)
			for _, e := range held {
				e.End(200, time.Millisecond, false)
				e.ConnClosed()
			}
		}
		t.Logf("%s: worst spread of 12 racing picks over 4 endpoints: %d", alg, worst)
		if worst > 3 {
			t.Errorf("%s: spread %d between most and least loaded endpoint", alg, worst)
		}
	}
}

// Picks on many goroutines while health flaps: the copy-on-write pick set
// must never hand out a torn view (run with -race).
func TestPickDuringRebuilds(t *testing.T) {
	for _, alg := range Algorithms {
		c := mustCluster(t, Spec{Algorithm: alg, Endpoints: endpoints(1, 2, 3, 1), PanicThreshold: -1})
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range 2 {
			wg.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					p, err := c.Pick(ipReq(i), nil)
					if err != nil {
						t.Error(err)
						return
					}
					p.Endpoint.Begin()
					p.Endpoint.End(200, time.Millisecond, false)
				}
			})
		}
		eps := c.Endpoints()
		for i := range 20 {
			setDown(c, eps[i%3], i%2 == 0)
			runtime.Gosched()
		}
		close(stop)
		wg.Wait()
	}
}
