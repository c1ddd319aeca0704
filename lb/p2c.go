// SPDX-License-Identifier: GPL-3.0-only

package lb

// p2c is the power of two choices: draw two distinct endpoints at random
// and take the one with fewer outstanding requests relative to its weight.
// It approaches least-requests balance at O(1) per pick, without the
// herding of a full scan.
type p2c struct{ eps []*Endpoint }

func newP2C(_ *Cluster, _ *Spec, eps, _ []*Endpoint) picker { return &p2c{eps: eps} }

func (p *p2c) pick(r uint64) *Endpoint {
	a, b, ok := twoChoices(r, len(p.eps))
	if !ok {
		return p.eps[0]
	}
	ea, eb := p.eps[a], p.eps[b]
	// (active+1)/weight compared without division.
	if (ea.active.Load()+1)*int64(eb.weight.Load()) <= (eb.active.Load()+1)*int64(ea.weight.Load()) {
		return ea
	}
	return eb
}

// twoChoices derives two distinct indexes in [0, n) from r; ok is false
// when n < 2.
func twoChoices(r uint64, n int) (a, b int, ok bool) {
	if n < 2 {
		return 0, 0, false
	}
	a = scale(r, n)
	b = scale(mix64(r), n-1)
	if b >= a {
		b++
	}
	return a, b, true
}
