// SPDX-License-Identifier: GPL-3.0-only

package lb

import (
	"math/rand/v2"
	"sync/atomic"
)

// roundRobin cycles through the level's endpoints in order. One shared
// atomic counter makes it exactly fair across event loops: over k×n picks
// each endpoint gets k.
type roundRobin struct {
	eps []*Endpoint
	ctr atomic.Uint64
}

// newRoundRobin starts at a random endpoint, so frequent pick-set
// rebuilds (health flapping) do not favour the first endpoint.
func newRoundRobin(_ *Cluster, _ *Spec, eps, _ []*Endpoint) picker {
	p := &roundRobin{eps: eps}
	p.ctr.Store(rand.Uint64N(uint64(len(eps))))
	return p
}

func (p *roundRobin) pick(uint64) *Endpoint {
	return p.eps[(p.ctr.Add(1)-1)%uint64(len(p.eps))]
}
