// SPDX-License-Identifier: GPL-3.0-only

package lb

import (
	"fmt"
	"net/netip"
	"testing"
)

// fakeReq is a RequestInfo over prebuilt byte slices, allocation-free.
type fakeReq struct {
	ip      netip.Addr
	headers map[string][]byte
	cookies map[string][]byte
	path    []byte
}

func (r *fakeReq) SourceIP() netip.Addr      { return r.ip }
func (r *fakeReq) Header(name string) []byte { return r.headers[name] }
func (r *fakeReq) Cookie(name string) []byte { return r.cookies[name] }
func (r *fakeReq) Path() []byte              { return r.path }
func ipReq(i int) *fakeReq {
	return &fakeReq{ip: netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})}
}
func addrOf(i int) string               { return fmt.Sprintf("127.0.0.1:%d", 10000+i) }
func cookieReq(name, v string) *fakeReq { return &fakeReq{cookies: map[string][]byte{name: []byte(v)}} }
func endpoints(weights ...uint32) []EndpointSpec {
	out := make([]EndpointSpec, len(weights))
	for i, w := range weights {
		out[i] = EndpointSpec{Address: addrOf(i), Weight: w}
	}
	return out
}

func mustCluster(t testing.TB, s Spec, opts ...Option) *Cluster {
	t.Helper()
	if s.Name == "" {
		s.Name = "test"
	}
	c, err := New(s, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func mustPick(t testing.TB, c *Cluster, ri RequestInfo, exclude *Endpoint) *Endpoint {
	t.Helper()
	p, err := c.Pick(ri, exclude)
	if err != nil {
		t.Fatal(err)
	}
	return p.Endpoint
}

// setDown marks an endpoint as failing active checks (or clears it).
func setDown(c *Cluster, e *Endpoint, down bool) {
	c.setState(e, stateActiveDown, down, "test", nil)
}

func countPicks(t testing.TB, c *Cluster, n int, ri func(i int) RequestInfo) map[string]int {
	t.Helper()
	out := map[string]int{}
	for i := range n {
		var r RequestInfo
		if ri != nil {
			r = ri(i)
		}
		out[mustPick(t, c, r, nil).Address()]++
	}
	return out
}
