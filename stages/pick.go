// SPDX-License-Identifier: GPL-3.0-only

package stages

import "errors"

import "github.com/expressgateway/expressgateway/lb"

// Pick is the pick stage: it asks the route's cluster for an endpoint.
type Pick struct{}

// Name implements Stage.
func (*Pick) Name() string { return "pick" }

// Process implements Stage.
func (*Pick) Process(x *Exchange) Verdict {
	p, err := x.Cluster.LB.Pick(x, x.Exclude)
	if err != nil {
		if errors.Is(err, lb.ErrNoHealthyEndpoint) {
			return x.Refuse(503, "no_healthy_endpoint")
		}
		return x.Refuse(503, "pick_failed")
	}
	x.Pick = p
	return Continue
}

// Forward is the last stage: it hands the exchange to the engine's upstream
// side, which owns it from then on.
type Forward struct{}

// Name implements Stage.
func (*Forward) Name() string { return "forward" }

// Process implements Stage.
func (*Forward) Process(x *Exchange) Verdict {
	x.Forwarder.Forward(x)
	return Handled
}

var (
	_ Stage = (*Pick)(nil)
	_ Stage = (*Forward)(nil)
)
