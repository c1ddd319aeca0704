// SPDX-License-Identifier: GPL-3.0-only

package lb

// ewmaPicker is peak-EWMA (Finagle, Linkerd): each endpoint's cost is its
// latency estimate × (outstanding requests + 1) / weight, and a pick takes
// the cheaper of two random endpoints. The estimate jumps to any slower
// sample at once and decays toward faster ones over EWMA.Decay, so a
// slowing endpoint sheds load quickly and wins it back gradually.
type ewmaPicker struct {
	c   *Cluster
	eps []*Endpoint
}

func newEWMA(c *Cluster, _ *Spec, eps, _ []*Endpoint) picker { return &ewmaPicker{c: c, eps: eps} }

func (p *ewmaPicker) pick(r uint64) *Endpoint {
	a, b, ok := twoChoices(r, len(p.eps))
	if !ok {
		return p.eps[0]
	}
	now := p.c.now()
	ea, eb := p.eps[a], p.eps[b]
	if ea.ewmaCost(now) <= eb.ewmaCost(now) {
		return ea
	}
	return eb
}
