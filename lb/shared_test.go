// SPDX-License-Identifier: GPL-3.0-only

package lb

import (
	"testing"
)

// Two nodes: node A's own check fails endpoint 2, node B hears it from A
// (SetPeerDown). Both then route every key alike and their Maglev digests
// match; B's own view of the endpoint stays healthy, so B never reports
// back what it only heard.
func TestSharedHealthSameMaglev(t *testing.T) {
	spec := Spec{Algorithm: Maglev, Endpoints: endpoints(1, 1, 1, 1), MaglevTableSize: 1009}
	a, b := mustCluster(t, spec), mustCluster(t, spec)
	if a.MaglevDigest() != b.MaglevDigest() || a.MaglevDigest() == "" {
		t.Fatalf("fresh digests differ or are empty: %q %q", a.MaglevDigest(), b.MaglevDigest())
	}
	before := a.MaglevDigest()
	setDown(a, a.Endpoint(addrOf(2)), true)
	if a.MaglevDigest() == before {
		t.Fatal("digest did not change after a health change")
	}
	if !b.SetPeerDown(addrOf(2), true) {
		t.Fatal("SetPeerDown did not find the endpoint")
	}
	if b.SetPeerDown("127.0.0.1:1", true) {
		t.Fatal("SetPeerDown found an unknown address")
	}
	if a.MaglevDigest() != b.MaglevDigest() {
		t.Fatal("digests differ with the same endpoint down locally and in the shared view")
	}
	for i := range 2000 {
		if pa, pb := mustPick(t, a, ipReq(i), nil).Address(), mustPick(t, b, ipReq(i), nil).Address(); pa != pb || pa == addrOf(2) {
			t.Fatalf("key %d: a picks %s, b picks %s", i, pa, pb)
		}
	}
	e := b.Endpoint(addrOf(2))
	if e.Healthy() || !e.LocallyHealthy() || !e.PeerDown() {
		t.Fatalf("b's endpoint: healthy %v locally %v peer-down %v", e.Healthy(), e.LocallyHealthy(), e.PeerDown())
	}
	// A local failure under a peer report is no transition; clearing the
	// report leaves the endpoint down until its own check passes too.
	setDown(b, e, true)
	b.SetPeerDown(addrOf(2), false)
	if e.Healthy() || e.LocallyHealthy() {
		t.Fatal("endpoint healthy while its own check fails")
	}
	setDown(b, e, false)
	if !e.Healthy() || b.MaglevDigest() != before {
		t.Fatal("endpoint not back, or the table not the one before")
	}
	if d := mustCluster(t, Spec{Endpoints: endpoints(1)}).MaglevDigest(); d != "" {
		t.Fatalf("round_robin digest %q, want empty", d)
	}
}

// A peer report reaches the health events with its own reasons.
func TestPeerDownEvents(t *testing.T) {
	var got []HealthEvent
	c := mustCluster(t, Spec{Endpoints: endpoints(1, 1)}, WithHealthEvents(func(ev HealthEvent) { got = append(got, ev) }))
	c.SetPeerDown(addrOf(0), true)
	c.SetPeerDown(addrOf(0), true) // no transition
	c.SetPeerDown(addrOf(0), false)
	if len(got) != 2 || got[0].Reason != "peer_reported_down" || got[0].Healthy || got[1].Reason != "peer_reported_up" || !got[1].Healthy {
		t.Fatalf("events %+v", got)
	}
}
