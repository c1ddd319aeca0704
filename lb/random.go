// SPDX-License-Identifier: GPL-3.0-only

package lb

// randomPicker picks uniformly. The key Cluster.Pick passes to non-hash
// pickers is a fresh random number (math/rand/v2's per-thread source:
// lock-free and allocation-free).
type randomPicker struct{ eps []*Endpoint }

func newRandom(_ *Cluster, _ *Spec, eps, _ []*Endpoint) picker { return &randomPicker{eps: eps} }

func (p *randomPicker) pick(r uint64) *Endpoint { return p.eps[scale(r, len(p.eps))] }
