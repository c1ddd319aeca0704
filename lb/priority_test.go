// SPDX-License-Identifier: GPL-3.0-only

package lb

import (
	"errors"
	"math"
	"testing"
)

func prioritySpec(alg string) Spec {
	var eps []EndpointSpec
	for i := range 20 {
		eps = append(eps, EndpointSpec{Address: addrOf(i), Weight: 1, Priority: i / 10, Zone: []string{"eu-west", "us-east"}[i/10]})
	}
	return Spec{Algorithm: alg, Endpoints: eps}
}

// Envoy semantics with overprovisioning 1.4: P0 keeps all traffic while
// healthy% × 1.4 ≥ 100 and spills the rest to P1.
func TestPrioritySpillover(t *testing.T) {
	for _, tc := range []struct {
		downP0 int
		wantP0 float64
	}{
		{0, 1}, {2, 1}, {3, 0.98}, {5, 0.70}, {8, 0.28}, {10, 0},
	} {
		c := mustCluster(t, prioritySpec(RoundRobin))
		for i := range tc.downP0 {
			setDown(c, c.Endpoints()[i], true)
		}
		loads := c.LevelLoads()
		if math.Abs(loads[0]-tc.wantP0) > 1e-6 || math.Abs(loads[0]+loads[1]-1) > 1e-6 {
			t.Errorf("%d of 10 P0 down: loads %v, want P0 %.2f", tc.downP0, loads, tc.wantP0)
		}
		const n = 100000
		p0 := 0
		for range n {
			e := mustPick(t, c, nil, nil)
			if !e.Healthy() {
				t.Fatal("picked an unhealthy endpoint outside panic mode")
			}
			if e.Priority() == 0 {
				p0++
			}
		}
		got := float64(p0) / n
		t.Logf("%2d of 10 P0 endpoints down: P0 gets %.4f (want %.2f)", tc.downP0, got, tc.wantP0)
		if math.Abs(got-tc.wantP0) > 0.01 {
			t.Errorf("%d down: P0 share %.4f, want %.2f", tc.downP0, got, tc.wantP0)
		}
		// Spill-back: everything healthy again returns all traffic to P0.
		for i := range tc.downP0 {
			setDown(c, c.Endpoints()[i], false)
		}
		if l := c.LevelLoads(); l[0] != 1 {
			t.Errorf("after recovery loads %v", l)
		}
	}
}

// With hash-based pickers the level is chosen from the key, so a key stays
// on its level while the split is unchanged.
func TestPriorityHashSticky(t *testing.T) {
	c := mustCluster(t, prioritySpec(Maglev))
	for i := range 5 {
		setDown(c, c.Endpoints()[i], true)
	}
	for i := range 1000 {
		first := mustPick(t, c, ipReq(i), nil)
		if again := mustPick(t, c, ipReq(i), nil); again != first {
			t.Fatal("hash key changed endpoint across levels")
		}
	}
}

func TestPanicThreshold(t *testing.T) {
	spec := Spec{Algorithm: RoundRobin, Endpoints: endpoints(1, 1, 1, 1), PanicThreshold: 50}
	c := mustCluster(t, spec)
	eps := c.Endpoints()
	setDown(c, eps[0], true)
	setDown(c, eps[1], true) // 50% healthy: not below the threshold
	if c.Panicking() {
		t.Fatal("panicking at 50% healthy with threshold 50")
	}
	for _, e := range countPicksEndpoints(t, c, 100) {
		if !e.Healthy() {
			t.Fatal("unhealthy endpoint picked before panic")
		}
	}
	setDown(c, eps[2], true) // 25% healthy: panic, route to all
	if !c.Panicking() {
		t.Fatal("not panicking at 25% healthy")
	}
	seen := map[*Endpoint]bool{}
	for _, e := range countPicksEndpoints(t, c, 100) {
		seen[e] = true
	}
	if len(seen) != 4 {
		t.Fatalf("panic mode all reached %d of 4 endpoints", len(seen))
	}
	setDown(c, eps[3], true) // none healthy: still routes to all
	if _, err := c.Pick(nil, nil); err != nil {
		t.Fatalf("panic mode all with none healthy: %v", err)
	}

	spec.PanicMode = "fail"
	f := mustCluster(t, spec)
	for _, e := range f.Endpoints()[:3] {
		setDown(f, e, true)
	}
	if _, err := f.Pick(nil, nil); !errors.Is(err, ErrNoHealthyEndpoint) {
		t.Fatalf("panic mode fail: err %v", err)
	}

	spec.PanicThreshold = -1 // disabled: the healthy one takes everything
	d := mustCluster(t, spec)
	for _, e := range d.Endpoints()[:3] {
		setDown(d, e, true)
	}
	for _, e := range countPicksEndpoints(t, d, 20) {
		if e != d.Endpoints()[3] {
			t.Fatal("panic disabled: picked an unhealthy endpoint")
		}
	}
	setDown(d, d.Endpoints()[3], true)
	if _, err := d.Pick(nil, nil); !errors.Is(err, ErrNoHealthyEndpoint) {
		t.Fatalf("none healthy, panic disabled: err %v", err)
	}
}

func countPicksEndpoints(t *testing.T, c *Cluster, n int) []*Endpoint {
	out := make([]*Endpoint, n)
	for i := range out {
		out[i] = mustPick(t, c, nil, nil)
	}
	return out
}
