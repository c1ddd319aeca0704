// SPDX-License-Identifier: GPL-3.0-only

package lb

import (
	"math/rand/v2"
	"sync/atomic"
)

// maxWRRSequence bounds the precomputed smooth-WRR cycle; larger weight
// sums are scaled down proportionally (precision stays within 1/65536).
const maxWRRSequence = 1 << 16

// smoothWRR is nginx's smooth weighted round robin. The sequence is
// computed once per pick set (weights 5,1,1 give a a b a c a a) and picks
// walk it with one atomic counter, so concurrent picks need no lock and
// the interleaving stays smooth.
type smoothWRR struct {
	eps []*Endpoint
	seq []uint32 // indexes into eps, one full cycle
	ctr atomic.Uint64
}

func newSmoothWRR(_ *Cluster, _ *Spec, eps, _ []*Endpoint) picker {
	weights := make([]uint64, len(eps))
	var sum uint64
	g := uint64(0)
	for i, e := range eps {
		weights[i] = uint64(e.weight.Load())
		g = gcd(g, weights[i])
	}
	for i := range weights {
		weights[i] /= g
		sum += weights[i]
	}
	if sum > maxWRRSequence {
		t := sum
		sum = 0
		for i := range weights {
			weights[i] = max(1, weights[i]*maxWRRSequence/t)
			sum += weights[i]
		}
	}
	p := &smoothWRR{eps: eps, seq: smoothSequence(weights, sum)}
	// A random starting point in the cycle, as in newRoundRobin.
	p.ctr.Store(rand.Uint64N(uint64(len(p.seq))))
	return p
}

// smoothSequence runs nginx's algorithm for one cycle of length total:
// every step adds each weight to its current value, picks the largest
// (first on ties) and subtracts total from it.
func smoothSequence(weights []uint64, total uint64) []uint32 {
	cur := make([]int64, len(weights))
	seq := make([]uint32, 0, total)
	for range total {
		best := 0
		for i, w := range weights {
			cur[i] += int64(w)
			if cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= int64(total)
		seq = append(seq, uint32(best))
	}
	return seq
}

func gcd(a, b uint64) uint64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

func (p *smoothWRR) pick(uint64) *Endpoint {
	return p.eps[p.seq[(p.ctr.Add(1)-1)%uint64(len(p.seq))]]
}
