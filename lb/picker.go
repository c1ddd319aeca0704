// SPDX-License-Identifier: GPL-3.0-only

package lb

// pickerBuilders maps each algorithm to the constructor of its per-level
// picker. eps are the level's routable endpoints (never empty); all are
// every endpoint configured at the level, for pickers (ring_hash) whose
// layout must not depend on which endpoints are healthy.
var pickerBuilders = map[string]func(c *Cluster, s *Spec, eps, all []*Endpoint) picker{
	RoundRobin:         newRoundRobin,
	WeightedRoundRobin: newSmoothWRR,
	Random:             newRandom,
	WeightedRandom:     newWeightedRandom,
	P2C:                newP2C,
	Maglev:             newMaglev,
	RingHash:           newRingHash,
	EWMA:               newEWMA,
	LeastConnections:   newLeastConnections,
	LeastRequests:      newLeastRequests,
	SessionAffinity:    newSmoothWRR, // for clients without a valid cookie
}

// scale maps 32 random bits onto [0, n) without division (Lemire).
func scale(r uint64, n int) int { return int((r & 0xffffffff) * uint64(n) >> 32) }
