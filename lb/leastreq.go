// SPDX-License-Identifier: GPL-3.0-only

package lb

// newLeastRequests balances outstanding requests (Begin / End) with a full
// scan; see leastLoaded. p2c is its O(1) approximation.
func newLeastRequests(_ *Cluster, _ *Spec, eps, _ []*Endpoint) picker {
	return &leastLoaded{eps: eps, load: func(e *Endpoint) int64 { return e.active.Load() }}
}
