// SPDX-License-Identifier: GPL-3.0-only

package target

import "context"

// Direct is the upstream without anything in front: the ceiling. The load
// generator talks to the bench upstream straight away.
type Direct struct{}

// Name implements Target.
func (Direct) Name() string { return "direct" }

// Supports implements Target: the bench upstream speaks HTTP/1.1 only.
func (Direct) Supports(proto string) bool { return proto == ProtoH1 }

// Probe implements Target.
func (Direct) Probe(context.Context) (string, error) { return "bench upstream", nil }

// Start implements Target: there is nothing to start.
func (Direct) Start(context.Context, Env) (*Process, error) { return nil, nil }

var _ Target = Direct{}
