// SPDX-License-Identifier: GPL-3.0-only

package lb

// leastLoaded scans the level for the endpoint with the least load
// relative to its weight; ties go to the first after a random start, so
// equal endpoints share evenly. The scan is O(n) and lock-free; loads
// change under it, which only makes the choice approximate.
type leastLoaded struct {
	eps  []*Endpoint
	load func(*Endpoint) int64
}

// newLeastConnections balances open upstream connections (ConnOpened /
// ConnClosed).
func newLeastConnections(_ *Cluster, _ *Spec, eps, _ []*Endpoint) picker {
	return &leastLoaded{eps: eps, load: func(e *Endpoint) int64 { return e.conns.Load() }}
}

func (p *leastLoaded) pick(r uint64) *Endpoint {
	n := len(p.eps)
	start := scale(r, n)
	best := p.eps[start]
	bestLoad := p.load(best) + 1
	for i := 1; i < n; i++ {
		e := p.eps[(start+i)%n]
		l := p.load(e) + 1
		// l/e.weight < bestLoad/best.weight
		if l*int64(best.weight.Load()) < bestLoad*int64(e.weight.Load()) {
			best, bestLoad = e, l
		}
	}
	return best
}
