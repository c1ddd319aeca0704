// SPDX-License-Identifier: GPL-3.0-only

package lb

// weightedRandom picks endpoint i with probability weight_i / Σweight by
// a binary search over cumulative weights.
type weightedRandom struct {
	eps []*Endpoint
	cum []uint64 // cum[i] = Σ weight[0..i]
}

func newWeightedRandom(_ *Cluster, _ *Spec, eps, _ []*Endpoint) picker {
	p := &weightedRandom{eps: eps, cum: make([]uint64, len(eps))}
	var acc uint64
	for i, e := range eps {
		acc += uint64(e.weight.Load())
		p.cum[i] = acc
	}
	return p
}

func (p *weightedRandom) pick(r uint64) *Endpoint {
	total := p.cum[len(p.cum)-1]
	x := (r & 0xffffffff) * total >> 32 // in [0, total)
	lo, hi := 0, len(p.cum)-1
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if p.cum[mid] > x {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return p.eps[lo]
}
