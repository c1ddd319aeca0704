// SPDX-License-Identifier: GPL-3.0-only

package lb

import (
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
)

func TestRoundRobinExactFairness(t *testing.T) {
	c := mustCluster(t, Spec{Algorithm: RoundRobin, Endpoints: endpoints(1, 1, 1, 1, 1)})
	// Sequential: strict rotation.
	first := mustPick(t, c, nil, nil)
	idx := first.index
	for i := 1; i < 20; i++ {
		if e := mustPick(t, c, nil, nil); e.index != (idx+i)%5 {
			t.Fatalf("pick %d went to %d, want %d", i, e.index, (idx+i)%5)
		}
	}
	// Concurrent: 8 goroutines × 1000 picks from a fresh cluster; every
	// endpoint gets exactly 8000/5.
	c = mustCluster(t, Spec{Algorithm: RoundRobin, Endpoints: endpoints(1, 1, 1, 1, 1)})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				if _, err := c.Pick(nil, nil); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	for _, e := range c.Endpoints() {
		if e.Picks() != 1600 {
			t.Errorf("%s got %d picks, want exactly 1600", e.Address(), e.Picks())
		}
	}
}

func TestSmoothWRRSequence(t *testing.T) {
	c := mustCluster(t, Spec{Algorithm: WeightedRoundRobin, Endpoints: endpoints(5, 1, 1)})
	names := map[string]string{addrOf(0): "a", addrOf(1): "b", addrOf(2): "c"}
	w := c.snap.Load().levels[0].p.(*smoothWRR)
	var cycle []string
	for _, i := range w.seq {
		cycle = append(cycle, names[w.eps[i].Address()])
	}
	if s := strings.Join(cycle, " "); s != "a a b a c a a" {
		t.Fatalf("cycle %q, want a a b a c a a", s)
	}
	// Picks walk the cycle from a random starting point.
	start := int(w.ctr.Load() % 7)
	for i := range 21 {
		got := names[mustPick(t, c, nil, nil).Address()]
		if want := cycle[(start+i)%7]; got != want {
			t.Fatalf("pick %d: %s, want %s", i, got, want)
		}
	}
	// Weights with a common divisor and a large sum keep their ratio.
	c = mustCluster(t, Spec{Algorithm: WeightedRoundRobin, Endpoints: endpoints(65536, 30000, 10)})
	counts := countPicks(t, c, 95546, nil)
	if counts[addrOf(0)] < 65000 || counts[addrOf(2)] == 0 {
		t.Fatalf("large weights lost their ratio: %v", counts)
	}
}

// chiSquare of observed counts against weights.
func chiSquare(counts []int, weights []uint32) float64 {
	var n, sum float64
	for i := range counts {
		n += float64(counts[i])
		sum += float64(weights[i])
	}
	var x float64
	for i := range counts {
		exp := n * float64(weights[i]) / sum
		x += (float64(counts[i]) - exp) * (float64(counts[i]) - exp) / exp
	}
	return x
}

func TestWeightedRandomChiSquare(t *testing.T) {
	weights := []uint32{1, 2, 3, 4, 10}
	c := mustCluster(t, Spec{Algorithm: WeightedRandom, Endpoints: endpoints(weights...)})
	p := c.snap.Load().levels[0].p
	rng := rand.New(rand.NewPCG(1, 2)) // deterministic draws
	counts := make([]int, len(weights))
	const n = 200000
	for range n {
		counts[p.pick(rng.Uint64()).index]++
	}
	// 4 degrees of freedom: P(χ² > 18.47) = 0.001.
	x := chiSquare(counts, weights)
	t.Logf("weighted_random χ² = %.2f over %d picks (4 df, p=0.001 critical 18.47): %v", x, n, counts)
	if x > 18.47 {
		t.Fatalf("χ² %.2f > 18.47: %v", x, counts)
	}
	// Through Pick (runtime randomness): loose sanity bound.
	for _, e := range c.Endpoints() {
		e.m.picks.Set(0)
	}
	countPicks(t, c, n, nil)
	for i, e := range c.Endpoints() {
		want := float64(n) * float64(weights[i]) / 20
		if math.Abs(float64(e.Picks())-want) > 0.05*want+100 {
			t.Errorf("%s: %d picks, want ~%.0f", e.Address(), e.Picks(), want)
		}
	}
}

func TestRandomUniform(t *testing.T) {
	c := mustCluster(t, Spec{Algorithm: Random, Endpoints: endpoints(1, 9, 1, 1)})
	p := c.snap.Load().levels[0].p
	rng := rand.New(rand.NewPCG(3, 4))
	counts := make([]int, 4)
	for range 100000 {
		counts[p.pick(rng.Uint64()).index]++
	}
	// Weights are ignored by random: uniform, 3 df, p=0.001 critical 16.27.
	if x := chiSquare(counts, []uint32{1, 1, 1, 1}); x > 16.27 {
		t.Fatalf("χ² %.2f > 16.27: %v", x, counts)
	}
}

func TestMaglevClusterStickyAndRemoval(t *testing.T) {
	c := mustCluster(t, Spec{Algorithm: Maglev, Endpoints: endpoints(1, 1, 1, 1, 1)})
	const keys = 20000
	before := make([]*Endpoint, keys)
	for i := range keys {
		before[i] = mustPick(t, c, ipReq(i), nil)
		if again := mustPick(t, c, ipReq(i), nil); again != before[i] {
			t.Fatalf("key %d moved without a change", i)
		}
	}
	victim := c.Endpoints()[2]
	setDown(c, victim, true)
	moved := 0
	for i := range keys {
		e := mustPick(t, c, ipReq(i), nil)
		if e == victim {
			t.Fatal("picked an unhealthy endpoint")
		}
		if e != before[i] {
			moved++
		}
	}
	frac := float64(moved) / keys
	t.Logf("maglev via Pick: removing 1 of 5 moved %.4f of keys (1/N = 0.2)", frac)
	if frac > 1.2/5 {
		t.Fatalf("moved %.4f > 1.2/N", frac)
	}
}

func TestRingHashStickyAndRemoval(t *testing.T) {
	hdr := func(i int) RequestInfo {
		return &fakeReq{headers: map[string][]byte{"x-user": []byte(addrOf(i * 7))}}
	}
	c := mustCluster(t, Spec{Algorithm: RingHash, HashKey: "header:x-user", Endpoints: endpoints(1, 1, 2, 1, 1)})
	const keys = 20000
	before := make([]*Endpoint, keys)
	share := map[*Endpoint]int{}
	for i := range keys {
		before[i] = mustPick(t, c, hdr(i), nil)
		share[before[i]]++
		if again := mustPick(t, c, hdr(i), nil); again != before[i] {
			t.Fatalf("key %d not sticky", i)
		}
	}
	// Weight 2 gets about twice a weight-1 share (1024-node ring: loose).
	if s := float64(share[c.Endpoints()[2]]) / keys; s < 0.25 || s > 0.42 {
		t.Errorf("weight-2 endpoint share %.3f, want ~0.333", s)
	}
	victim := c.Endpoints()[1]
	setDown(c, victim, true)
	movedOther := 0
	for i := range keys {
		e := mustPick(t, c, hdr(i), nil)
		if e == victim {
			t.Fatal("picked an unhealthy endpoint")
		}
		if e != before[i] && before[i] != victim {
			movedOther++
		}
	}
	if movedOther != 0 {
		t.Fatalf("%d keys of healthy endpoints moved", movedOther)
	}
	setDown(c, victim, false)
	for i := range keys {
		if e := mustPick(t, c, hdr(i), nil); e != before[i] {
			t.Fatalf("key %d did not return to its endpoint", i)
		}
	}
}

func TestHashKeys(t *testing.T) {
	for _, tc := range []struct {
		key string
		ri  func(i int) *fakeReq
	}{
		{"source_ip", ipReq},
		{"path", func(i int) *fakeReq { return &fakeReq{path: []byte(addrOf(i))} }},
		{"cookie:sid", func(i int) *fakeReq { return cookieReq("sid", addrOf(i)) }},
		{"header:x-id", func(i int) *fakeReq { return &fakeReq{headers: map[string][]byte{"x-id": []byte(addrOf(i))}} }},
	} {
		c := mustCluster(t, Spec{Algorithm: Maglev, HashKey: tc.key, Endpoints: endpoints(1, 1, 1)})
		seen := map[*Endpoint]bool{}
		for i := range 300 {
			e := mustPick(t, c, tc.ri(i), nil)
			seen[e] = true
			if mustPick(t, c, tc.ri(i), nil) != e {
				t.Fatalf("%s: not sticky", tc.key)
			}
		}
		if len(seen) != 3 {
			t.Errorf("%s: keys reached %d of 3 endpoints", tc.key, len(seen))
		}
		// A request without the key still gets an endpoint.
		mustPick(t, c, &fakeReq{}, nil)
		mustPick(t, c, nil, nil)
	}
}

func TestExcludeAvoidsFailedEndpoint(t *testing.T) {
	for _, alg := range Algorithms {
		c := mustCluster(t, Spec{Algorithm: alg, Endpoints: endpoints(1, 3, 1)})
		for i := range 500 {
			ri := ipReq(i % 17)
			first := mustPick(t, c, ri, nil)
			if again := mustPick(t, c, ri, first); again == first {
				t.Fatalf("%s: retry pick returned the excluded endpoint", alg)
			}
		}
		// A single endpoint is returned even when excluded.
		one := mustCluster(t, Spec{Algorithm: alg, Endpoints: endpoints(1)})
		e := one.Endpoints()[0]
		if mustPick(t, one, ipReq(1), e) != e {
			t.Fatalf("%s: single endpoint not returned", alg)
		}
	}
}
