// SPDX-License-Identifier: GPL-3.0-only

package lb

import (
	"maps"
	"sort"
)

// Zone-aware routing (Spec.Locality), after Envoy's: within a priority
// level a node sends as much of its traffic as it can to endpoints in its
// own zone while keeping the load per endpoint even across the whole
// fleet, and spills the rest to zones with spare capacity — first the
// zones of its own region, then other regions.
//
// Two distributions over localities (region, zone) drive it:
//
//   - u, the upstream share: each locality's share of the level's healthy
//     (routable) weight;
//   - f, the fleet share: each locality's share of the gateway nodes that
//     send traffic: the live members of an HA group (SetFleet), or else
//     nodes assumed to be spread like the level's configured endpoints
//     (weights, healthy or not), so that when every endpoint is healthy
//     u equals f and every node stays in its zone.
//
// If u[L] ≥ f[L] for this node's locality L, all of L's traffic stays in
// L. Otherwise L keeps u[L]/f[L] of it and its deficit f[L]−u[L] goes to
// localities whose surplus u[x]−f[x] is positive: first the surpluses of
// L's region (shared among the region's deficits in proportion to them),
// then what remains anywhere, again in proportion. Every node computes the
// same plan from the same health, so the spilled shares add up to each
// locality's surplus and the load per endpoint stays even. A node whose
// zone holds none of the level's endpoints routes over its region's
// healthy endpoints (or all of them, when its region has none either).
// Zone-aware routing is off for a level smaller than MinEndpoints, in
// panic mode, and for a node without a zone.

// locality is a (region, zone) pair.
type locality struct{ region, zone string }

// Locality names a zone of a region, for SetFleet.
type Locality struct{ Region, Zone string }

// SetFleet tells zone-aware routing how the gateways that send traffic to
// the cluster are spread over the localities (a count or weight of nodes
// per locality, such as the live members of an HA group); nil or empty
// goes back to assuming they are spread like the configured endpoints.
// Every node given the same fleet and the same health computes the same
// plan. The pick set is rebuilt when the fleet changed.
func (c *Cluster) SetFleet(fleet map[Locality]float64) {
	var m map[locality]float64
	for l, v := range fleet {
		if v > 0 {
			if m == nil {
				m = make(map[locality]float64, len(fleet))
			}
			m[locality{l.Region, l.Zone}] += v
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.fleet.Load(); (old == nil && m == nil) || (old != nil && maps.Equal(*old, m)) {
		return
	}
	if m == nil {
		c.fleet.Store(nil)
	} else {
		c.fleet.Store(&m)
	}
	if !c.closed {
		c.rebuildLocked()
	}
}

func localityOf(e *Endpoint) locality { return locality{e.Region(), e.Zone()} }

// localityShares returns the share (summing to 1) of this node's traffic
// each locality takes, from the healthy weight per locality and the fleet
// weight per locality. It returns nil when nothing is healthy.
func localityShares(local locality, healthy, fleet map[locality]float64) map[locality]float64 {
	u, f := normalise(healthy), normalise(fleet)
	if u == nil {
		return nil
	}
	out := map[locality]float64{}
	if f == nil || f[local] == 0 {
		inRegion := 0.0
		for x, v := range u {
			if x.region == local.region {
				inRegion += v
			}
		}
		for x, v := range u {
			switch {
			case inRegion == 0:
				out[x] = v
			case x.region == local.region:
				out[x] = v / inRegion
			}
		}
		return out
	}
	if u[local] >= f[local] {
		out[local] = 1
		return out
	}
	keys := make(map[locality]bool, len(u)+len(f))
	for x := range u {
		keys[x] = true
	}
	for x := range f {
		keys[x] = true
	}
	deficit, surplus := map[locality]float64{}, map[locality]float64{}
	for x := range keys {
		if d := f[x] - u[x]; d > 0 {
			deficit[x] = d
		} else if d < 0 {
			surplus[x] = -d
		}
	}
	flow := map[locality]float64{}
	// Within L's region: the region's deficits share its surpluses.
	var dR, sR float64
	for x, d := range deficit {
		if x.region == local.region {
			dR += d
		}
	}
	for x, s := range surplus {
		if x.region == local.region {
			sR += s
		}
	}
	if fill := min(dR, sR); fill > 0 {
		for x, s := range surplus {
			if x.region == local.region {
				flow[x] += fill * (deficit[local] / dR) * (s / sR)
			}
		}
	}
	// What is left of every region's deficits and surpluses, anywhere.
	regionD, regionS := map[string]float64{}, map[string]float64{}
	for x, d := range deficit {
		regionD[x.region] += d
	}
	for x, s := range surplus {
		regionS[x.region] += s
	}
	leftD := func(x locality) float64 {
		if regionD[x.region] == 0 {
			return 0
		}
		return deficit[x] * (1 - min(regionD[x.region], regionS[x.region])/regionD[x.region])
	}
	leftS := func(x locality) float64 {
		if regionS[x.region] == 0 {
			return 0
		}
		return surplus[x] * (1 - min(regionD[x.region], regionS[x.region])/regionS[x.region])
	}
	var sLeft float64
	for x := range surplus {
		sLeft += leftS(x)
	}
	if need := leftD(local); need > 0 && sLeft > 0 {
		for x := range surplus {
			flow[x] += need * leftS(x) / sLeft
		}
	}
	out[local] = u[local] / f[local]
	for x, v := range flow {
		out[x] += v / f[local]
	}
	return normalise(out)
}

// normalise scales m to sum to 1; nil when it sums to 0.
func normalise(m map[locality]float64) map[locality]float64 {
	total := 0.0
	for _, v := range m {
		total += v
	}
	if total <= 0 {
		return nil
	}
	out := make(map[locality]float64, len(m))
	for x, v := range m {
		if v > 0 {
			out[x] = v / total
		}
	}
	return out
}

// levelPicker builds the picker of one level: the algorithm's own over
// eps, or, when zone-aware routing applies, one per locality behind a
// draw weighted by localityShares.
func (c *Cluster) levelPicker(cfg *clusterCfg, eps, all []*Endpoint, panicMode bool) picker {
	spec := &cfg.spec
	loc := spec.Locality
	if !loc.Enabled || loc.Zone == "" || panicMode || len(all) < loc.MinEndpoints {
		return cfg.newPicker(c, spec, eps, all)
	}
	healthy, fleet := map[locality]float64{}, map[locality]float64{}
	for _, e := range eps {
		healthy[localityOf(e)] += float64(e.weight.Load())
	}
	for _, e := range all {
		fleet[localityOf(e)] += float64(e.weight.Load())
	}
	if len(fleet) < 2 {
		return cfg.newPicker(c, spec, eps, all)
	}
	if f := c.fleet.Load(); f != nil {
		fleet = *f
	}
	shares := localityShares(locality{loc.Region, loc.Zone}, healthy, fleet)
	keys := make([]locality, 0, len(shares))
	for x := range shares {
		keys = append(keys, x)
	}
	if len(keys) == 0 {
		return cfg.newPicker(c, spec, eps, all)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].region != keys[j].region {
			return keys[i].region < keys[j].region
		}
		return keys[i].zone < keys[j].zone
	})
	p := &localityPicker{shares: make(map[locality]float64, len(keys))}
	acc := 0.0
	for i, x := range keys {
		var sub, subAll []*Endpoint
		for _, e := range eps {
			if localityOf(e) == x {
				sub = append(sub, e)
			}
		}
		for _, e := range all {
			if localityOf(e) == x {
				subAll = append(subAll, e)
			}
		}
		acc += shares[x]
		bound := uint64(acc * (1 << 32))
		if i == len(keys)-1 {
			bound = 1 << 32
		}
		p.subs = append(p.subs, cfg.newPicker(c, spec, sub, subAll))
		p.cum = append(p.cum, bound)
		p.shares[x] = shares[x]
	}
	return p
}

// localityPicker draws a locality from the request key (so a hashed key
// keeps its locality, and its endpoint within it), then lets that
// locality's own picker choose.
type localityPicker struct {
	subs   []picker
	cum    []uint64 // upper bounds (exclusive) of each locality's draw, out of 1<<32
	shares map[locality]float64
}

func (p *localityPicker) pick(key uint64) *Endpoint {
	draw := mix64(key^0x6c6f63616c697479) >> 32 // "locality"
	for i, b := range p.cum {
		if draw < b {
			return p.subs[i].pick(key)
		}
	}
	return p.subs[len(p.subs)-1].pick(key)
}

// ZoneShares reports, per priority level, the share (0..1) of the level's
// traffic each "region/zone" receives from this node, or nil when
// zone-aware routing is not in use on any level.
func (c *Cluster) ZoneShares() map[int]map[string]float64 {
	s := c.snap.Load()
	var out map[int]map[string]float64
	for _, l := range s.levels {
		lp, ok := l.p.(*localityPicker)
		if !ok {
			continue
		}
		if out == nil {
			out = map[int]map[string]float64{}
		}
		m := make(map[string]float64, len(lp.shares))
		for x, v := range lp.shares {
			m[x.region+"/"+x.zone] = v
		}
		out[l.priority] = m
	}
	return out
}
