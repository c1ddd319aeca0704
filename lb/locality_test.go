// SPDX-License-Identifier: GPL-3.0-only

package lb

import (
	"math"
	"testing"
)

func approx(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestLocalityShares(t *testing.T) {
	za, zb, zc := locality{"r1", "za"}, locality{"r1", "zb"}, locality{"r1", "zc"}
	a1, a2, b1, b2 := locality{"ra", "a1"}, locality{"ra", "a2"}, locality{"rb", "b1"}, locality{"rb", "b2"}
	cases := []struct {
		name           string
		local          locality
		healthy, fleet map[locality]float64
		want           map[locality]float64
	}{
		{"all healthy: stay local", za,
			map[locality]float64{za: 2, zb: 2, zc: 2}, map[locality]float64{za: 2, zb: 2, zc: 2},
			map[locality]float64{za: 1}},
		{"local zone lost half: keep u/f, spill by surplus", za,
			map[locality]float64{za: 1, zb: 2, zc: 2}, map[locality]float64{za: 2, zb: 2, zc: 2},
			map[locality]float64{za: 0.6, zb: 0.2, zc: 0.2}},
		{"local zone lost all", za,
			map[locality]float64{zb: 2, zc: 2}, map[locality]float64{za: 2, zb: 2, zc: 2},
			map[locality]float64{zb: 0.5, zc: 0.5}},
		{"another zone lost half: stay local", zb,
			map[locality]float64{za: 1, zb: 2, zc: 2}, map[locality]float64{za: 2, zb: 2, zc: 2},
			map[locality]float64{zb: 1}},
		// a1 and b1 each lost half; a1's spill goes to a2, in its own
		// region, which has room for it, and none to b2.
		{"spill stays in the region first", a1,
			map[locality]float64{a1: 1, a2: 2, b1: 1, b2: 2}, map[locality]float64{a1: 2, a2: 2, b1: 2, b2: 2},
			map[locality]float64{a1: 2.0 / 3, a2: 1.0 / 3}},
		// The region has no room left: the rest crosses regions.
		{"then other regions", a1,
			map[locality]float64{a1: 1, a2: 2, b1: 2, b2: 2}, map[locality]float64{a1: 2, a2: 2, b1: 2, b2: 2},
			map[locality]float64{a1: 4.0 / 7, a2: 1.0 / 7, b1: 1.0 / 7, b2: 1.0 / 7}},
		{"node zone without endpoints: its region", locality{"ra", "a9"},
			map[locality]float64{a1: 1, a2: 3, b1: 4}, map[locality]float64{a1: 2, a2: 4, b1: 4},
			map[locality]float64{a1: 0.25, a2: 0.75}},
		{"node region without endpoints: everywhere", locality{"rz", "z"},
			map[locality]float64{a1: 1, b1: 3}, map[locality]float64{a1: 2, b1: 4},
			map[locality]float64{a1: 0.25, b1: 0.75}},
		{"nothing healthy", za, map[locality]float64{}, map[locality]float64{za: 1}, nil},
	}
	for _, tc := range cases {
		got := localityShares(tc.local, tc.healthy, tc.fleet)
		if len(got) != len(tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
			continue
		}
		for x, w := range tc.want {
			if !approx(got[x], w) {
				t.Errorf("%s: %v gets %v, want %v (all %v)", tc.name, x, got[x], w, got)
			}
		}
	}
}

// zonedEndpoints: three zones of one region, two endpoints each
// (endpoints 0,1 in za; 2,3 in zb; 4,5 in zc).
func zonedEndpoints() []EndpointSpec {
	eps := endpoints(1, 1, 1, 1, 1, 1)
	for i := range eps {
		eps[i].Zone = []string{"za", "zb", "zc"}[i/2]
		eps[i].Region = "r1"
	}
	return eps
}

func zoneCounts(t *testing.T, c *Cluster, n int, ri func(int) RequestInfo) map[string]int {
	t.Helper()
	out := map[string]int{}
	for i := range n {
		var r RequestInfo
		if ri != nil {
			r = ri(i)
		}
		out[mustPick(t, c, r, nil).Zone()]++
	}
	return out
}

// A node in za, endpoints in three zones, failures in za: the node stays
// in za while za holds its share of the healthy capacity, then keeps
// u/f of its traffic there and spills the rest evenly to zb and zc, and
// all of it once za is down entirely.
func TestZoneAwareRouting(t *testing.T) {
	for _, alg := range []string{RoundRobin, Random, Maglev, LeastRequests} {
		t.Run(alg, func(t *testing.T) {
			spec := Spec{Algorithm: alg, Endpoints: zonedEndpoints(), MaglevTableSize: 1009,
				Locality: LocalitySpec{Enabled: true, Zone: "za", Region: "r1"}}
			c := mustCluster(t, spec)
			const n = 30000
			var key func(int) RequestInfo
			if alg == Maglev {
				key = func(i int) RequestInfo { return ipReq(i) }
			}
			if m := zoneCounts(t, c, n, key); m["za"] != n {
				t.Fatalf("all healthy: %v, want every pick in za", m)
			}
			setDown(c, c.Endpoint(addrOf(0)), true)
			m := zoneCounts(t, c, n, key)
			for z, want := range map[string]float64{"za": 0.6, "zb": 0.2, "zc": 0.2} {
				if got := float64(m[z]) / n; math.Abs(got-want) > 0.02 {
					t.Errorf("one of za down: %s gets %.3f, want %.1f (%v)", z, got, want, m)
				}
			}
			if sh := c.ZoneShares()[0]; !approx(sh["r1/za"], 0.6) || !approx(sh["r1/zb"], 0.2) {
				t.Errorf("ZoneShares %v", sh)
			}
			setDown(c, c.Endpoint(addrOf(1)), true)
			m = zoneCounts(t, c, n, key)
			if m["za"] != 0 || math.Abs(float64(m["zb"])/n-0.5) > 0.02 {
				t.Errorf("za down: %v, want half to zb and zc each", m)
			}
			// A failure elsewhere does not pull traffic out of za.
			setDown(c, c.Endpoint(addrOf(0)), false)
			setDown(c, c.Endpoint(addrOf(1)), false)
			setDown(c, c.Endpoint(addrOf(4)), true)
			if m := zoneCounts(t, c, n, key); m["za"] != n {
				t.Errorf("one of zc down: %v, want every pick in za", m)
			}
		})
	}
}

// A hashed key keeps its endpoint while the spill does not touch its
// locality, and two nodes of the same zone agree on every key.
func TestZoneAwareMaglevStable(t *testing.T) {
	spec := Spec{Algorithm: Maglev, Endpoints: zonedEndpoints(), MaglevTableSize: 1009,
		Locality: LocalitySpec{Enabled: true, Zone: "zb", Region: "r1"}}
	a, b := mustCluster(t, spec), mustCluster(t, spec)
	setDown(a, a.Endpoint(addrOf(2)), true)
	b.SetPeerDown(addrOf(2), true)
	if a.MaglevDigest() != b.MaglevDigest() {
		t.Fatal("same zone, same health: digests differ")
	}
	for i := range 3000 {
		if pa, pb := mustPick(t, a, ipReq(i), nil), mustPick(t, b, ipReq(i), nil); pa != nil && pb != nil && pa.Address() != pb.Address() {
			t.Fatalf("key %d: %s vs %s", i, pa.Address(), pb.Address())
		}
	}
}

// Off: below MinEndpoints, without a node zone, in panic mode.
func TestZoneAwareOff(t *testing.T) {
	small := zonedEndpoints()[:5]
	for name, spec := range map[string]Spec{
		"small level": {Endpoints: small, Locality: LocalitySpec{Enabled: true, Zone: "za"}},
		"no zone":     {Endpoints: zonedEndpoints(), Locality: LocalitySpec{Enabled: true}},
		"disabled":    {Endpoints: zonedEndpoints(), Locality: LocalitySpec{Zone: "za", Region: "r1"}},
	} {
		c := mustCluster(t, spec)
		if m := zoneCounts(t, c, 600, nil); m["za"] == 600 || c.ZoneShares() != nil {
			t.Errorf("%s: zone-aware routing on: %v", name, m)
		}
	}
	c := mustCluster(t, Spec{Endpoints: zonedEndpoints(), Locality: LocalitySpec{Enabled: true, Zone: "za", Region: "r1"}})
	for i := range 4 {
		setDown(c, c.Endpoints()[i], true)
	}
	if !c.Panicking() || c.ZoneShares() != nil {
		t.Fatalf("panic mode: panicking %v, shares %v", c.Panicking(), c.ZoneShares())
	}
}

// The fleet of an HA group: with two of four nodes in za, za's own
// endpoints cannot take half the traffic, so za's nodes spill; zb's stay.
func TestZoneAwareFleet(t *testing.T) {
	spec := Spec{Endpoints: zonedEndpoints(), Locality: LocalitySpec{Enabled: true, Zone: "za", Region: "r1"}}
	a := mustCluster(t, spec)
	spec.Locality.Zone = "zb"
	b := mustCluster(t, spec)
	fleet := map[Locality]float64{{"r1", "za"}: 2, {"r1", "zb"}: 1, {"r1", "zc"}: 1}
	a.SetFleet(fleet)
	b.SetFleet(fleet)
	if sh := a.ZoneShares()[0]; !approx(sh["r1/za"], 2.0/3) || !approx(sh["r1/zb"], 1.0/6) || !approx(sh["r1/zc"], 1.0/6) {
		t.Fatalf("za node shares %v", sh)
	}
	if sh := b.ZoneShares()[0]; !approx(sh["r1/zb"], 1) {
		t.Fatalf("zb node shares %v", sh)
	}
	a.SetFleet(nil)
	if sh := a.ZoneShares()[0]; !approx(sh["r1/za"], 1) {
		t.Fatalf("without a fleet: %v", sh)
	}
}
