// SPDX-License-Identifier: GPL-3.0-only

package lb

import (
	"testing"
)

func benchCluster(tb testing.TB, alg string) (*Cluster, RequestInfo) {
	var eps []EndpointSpec
	for i := range 16 {
		eps = append(eps, EndpointSpec{Address: addrOf(i), Weight: uint32(1 + i%3)})
	}
	c := mustCluster(tb, Spec{Algorithm: alg, Endpoints: eps})
	ri := ipReq(12345)
	if alg == SessionAffinity {
		ri.cookies = map[string][]byte{DefaultAffinityCookie: []byte(c.Endpoints()[3].cookieValue)}
	}
	return c, ri
}

// Every algorithm picks without allocating (the stage runs on the event
// loops), with and without an exclude.
func TestPickDoesNotAllocate(t *testing.T) {
	for _, alg := range Algorithms {
		c, ri := benchCluster(t, alg)
		ex := c.Endpoints()[0]
		allocs := testing.AllocsPerRun(1000, func() {
			p, err := c.Pick(ri, nil)
			if err != nil {
				t.Fatal(err)
			}
			p.Endpoint.Begin()
			p.Endpoint.End(200, 1000, false)
			_, _ = c.Pick(ri, ex)
			c.RecordRequest()
			_ = c.AllowRetry()
		})
		if allocs != 0 {
			t.Errorf("%s: %.1f allocs per pick", alg, allocs)
		}
	}
}

func benchPick(b *testing.B, alg string) {
	c, ri := benchCluster(b, alg)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.Pick(ri, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkPickRoundRobin(b *testing.B)         { benchPick(b, RoundRobin) }
func BenchmarkPickWeightedRoundRobin(b *testing.B) { benchPick(b, WeightedRoundRobin) }
func BenchmarkPickRandom(b *testing.B)             { benchPick(b, Random) }
func BenchmarkPickWeightedRandom(b *testing.B)     { benchPick(b, WeightedRandom) }
func BenchmarkPickP2C(b *testing.B)                { benchPick(b, P2C) }
func BenchmarkPickMaglev(b *testing.B)             { benchPick(b, Maglev) }
func BenchmarkPickRingHash(b *testing.B)           { benchPick(b, RingHash) }
func BenchmarkPickEWMA(b *testing.B)               { benchPick(b, EWMA) }
func BenchmarkPickLeastConnections(b *testing.B)   { benchPick(b, LeastConnections) }
func BenchmarkPickLeastRequests(b *testing.B)      { benchPick(b, LeastRequests) }
func BenchmarkPickSessionAffinity(b *testing.B)    { benchPick(b, SessionAffinity) }

func BenchmarkBeginEnd(b *testing.B) {
	c, _ := benchCluster(b, EWMA)
	e := c.Endpoints()[0]
	b.ReportAllocs()
	for b.Loop() {
		e.Begin()
		e.End(200, 1000, false)
	}
}

func BenchmarkAllowRetry(b *testing.B) {
	c, _ := benchCluster(b, RoundRobin)
	b.ReportAllocs()
	for b.Loop() {
		c.RecordRequest()
		_ = c.AllowRetry()
	}
}

func BenchmarkBuildMaglevTable(b *testing.B) {
	names := maglevNames(100)
	weights := make([]uint32, 100)
	for i := range weights {
		weights[i] = uint32(1 + i%4)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := BuildMaglevTable(names, weights, DefaultMaglevTableSize, 0); err != nil {
			b.Fatal(err)
		}
	}
}
