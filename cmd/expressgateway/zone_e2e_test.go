// SPDX-License-Identifier: GPL-3.0-only

package main

import (
	"fmt"
	"math"
	"testing"
	"time"
)

// TestZoneAwareRoutingThroughBinary: a gateway in zone za in front of six
// endpoints in three zones (two each) with zone_aware on. Healthy, every
// request stays in za; with one za endpoint failing its health check the
// gateway keeps 60% in za and spills 20% to each other zone; with both
// down, half to each.
func TestZoneAwareRoutingThroughBinary(t *testing.T) {
	zones := []string{"za", "za", "zb", "zb", "zc", "zc"}
	var bs []*backend
	var extras []string
	for i, z := range zones {
		bs = append(bs, newBackend(t, fmt.Sprintf("%s-%d", z, i)))
		extras = append(extras, fmt.Sprintf(`, zone = %q, region = "r1"`, z))
	}
	gw, _ := lbGateway(t, bs, extras, `lb = "round_robin"
zone_aware = true
[clusters.health_check]
type = "http"
path = "/healthz"
interval = "150ms"
timeout = "100ms"
unhealthy_threshold = 2
healthy_threshold = 2

[control_plane]
zone = "za"
region = "r1"
`)
	c := newLBClient(gw)
	byZone := func(n int) map[string]float64 {
		out := map[string]float64{}
		for name, k := range counts(t, c, n, nil) {
			out[name[:2]] += float64(k) / float64(n)
		}
		return out
	}
	check := func(what string, got, want map[string]float64) {
		t.Helper()
		for z, w := range want {
			if math.Abs(got[z]-w) > 0.06 {
				t.Fatalf("%s: zone %s takes %.2f, want %.2f (%v)", what, z, got[z], w, got)
			}
		}
	}
	check("all healthy", byZone(300), map[string]float64{"za": 1, "zb": 0, "zc": 0})
	bs[0].stop()
	time.Sleep(150*2*time.Millisecond + 400*time.Millisecond) // interval × unhealthy_threshold + slack
	check("one of za down", byZone(1500), map[string]float64{"za": 0.6, "zb": 0.2, "zc": 0.2})
	bs[1].stop()
	time.Sleep(150*2*time.Millisecond + 400*time.Millisecond)
	check("za down", byZone(1000), map[string]float64{"za": 0, "zb": 0.5, "zc": 0.5})
	bs[0].start(t)
	bs[1].start(t)
	time.Sleep(150*2*time.Millisecond + 400*time.Millisecond)
	check("za back", byZone(300), map[string]float64{"za": 1})
}
