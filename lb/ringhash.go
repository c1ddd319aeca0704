// SPDX-License-Identifier: GPL-3.0-only

package lb

import (
	"math"
	"sort"
)

// ringHash is consistent hashing on a ring of virtual nodes (Karger et
// al.; Envoy's ring_hash). Each endpoint gets virtual nodes in proportion
// to its weight, scaled so the ring holds at least MinRingSize and at most
// MaxRingSize of them. A key goes to the first virtual node clockwise from
// its hash.
//
// Virtual-node counts are computed from every endpoint configured at the
// level, healthy or not, and an endpoint's nodes sit at fixed points; an
// unhealthy endpoint just has its nodes left out. So when an endpoint
// leaves only its own keys move, and when it returns they come back.
type ringHash struct {
	eps    []*Endpoint
	hashes []uint64 // sorted
	owner  []uint32 // owner[i] indexes eps for hashes[i]
}

func newRingHash(_ *Cluster, s *Spec, eps, all []*Endpoint) picker {
	var total float64
	for _, e := range all {
		total += float64(e.weight.Load())
	}
	minNorm := math.Inf(1)
	for _, e := range all {
		minNorm = min(minNorm, float64(e.weight.Load())/total)
	}
	scale := min(math.Ceil(minNorm*float64(s.RingHash.MinRingSize))/minNorm, float64(s.RingHash.MaxRingSize))

	type vnode struct {
		h     uint64
		owner uint32
	}
	var nodes []vnode
	for i, e := range eps {
		n := max(1, int(math.Round(scale*float64(e.weight.Load())/total)))
		for j := range n {
			nodes = append(nodes, vnode{ringPoint(e.addr, j), uint32(i)})
		}
	}
	sort.Slice(nodes, func(a, b int) bool {
		if nodes[a].h != nodes[b].h {
			return nodes[a].h < nodes[b].h
		}
		return eps[nodes[a].owner].addr < eps[nodes[b].owner].addr
	})
	p := &ringHash{eps: eps, hashes: make([]uint64, len(nodes)), owner: make([]uint32, len(nodes))}
	for i, v := range nodes {
		p.hashes[i], p.owner[i] = v.h, v.owner
	}
	return p
}

// ringPoint places virtual node j of an endpoint; fixed across releases.
func ringPoint(addr string, j int) uint64 {
	return maglevHash(0x72696e6768617368, uint64(j), addr) // "ringhash"
}

func (p *ringHash) pick(key uint64) *Endpoint {
	lo, hi := 0, len(p.hashes)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if p.hashes[mid] < key {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo == len(p.hashes) {
		lo = 0
	}
	return p.eps[p.owner[lo]]
}
