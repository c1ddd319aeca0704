// SPDX-License-Identifier: GPL-3.0-only

package lb

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

func specOf(algo string, eps ...EndpointSpec) Spec {
	return Spec{Name: "test", Algorithm: algo, Endpoints: eps}
}

func TestUpdateKeepsEndpointsAndTheirState(t *testing.T) {
	s := specOf(RoundRobin, endpoints(1, 1, 1, 1)...)
	s.Outlier = &OutlierSpec{Consecutive5xx: 1, MaxEjectionPercent: 100}
	c := mustCluster(t, s)
	before := append([]*Endpoint(nil), c.Endpoints()...)
	setDown(c, before[0], true)
	before[1].Begin()
	before[1].End(503, time.Millisecond, false) // ejects
	if !before[1].Ejected() {
		t.Fatal("setup: not ejected")
	}
	before[2].Begin()
	before[2].End(200, 80*time.Millisecond, false)
	lat := before[2].Latency()
	before[3].ConnOpened()

	// Everything but the endpoint list changes.
	s2 := specOf(Maglev, endpoints(3, 2, 1, 1)...)
	s2.Outlier = &OutlierSpec{Consecutive5xx: 7, MaxEjectionPercent: 100}
	s2.Retry.MaxRetries = 5
	removed, err := c.Update(s2)
	if err != nil || len(removed) != 0 {
		t.Fatalf("Update: %v, removed %v", err, removed)
	}
	after := c.Endpoints()
	for i := range before {
		if after[i] != before[i] {
			t.Fatalf("endpoint %d replaced", i)
		}
	}
	if before[0].Healthy() || !before[1].Ejected() || before[2].Latency() != lat || before[3].Connections() != 1 {
		t.Fatalf("state lost: down0=%v ejected1=%v latency2=%v conns3=%d",
			!before[0].Healthy(), before[1].Ejected(), before[2].Latency(), before[3].Connections())
	}
	if before[0].Weight() != 3 || c.Spec().Algorithm != Maglev || c.MaxRetries() != 5 {
		t.Fatalf("new settings not applied: weight %d algo %s retries %d", before[0].Weight(), c.Spec().Algorithm, c.MaxRetries())
	}
	got := countPicks(t, c, 2000, func(i int) RequestInfo { return ipReq(i) })
	if got[before[0].Address()] != 0 || got[before[1].Address()] != 0 || len(got) != 2 {
		t.Fatalf("picks after update: %v", got)
	}
}

func TestUpdateMaglevAndAffinityPlacementSurvives(t *testing.T) {
	s := specOf(Maglev, endpoints(1, 1, 1)...)
	c := mustCluster(t, s)
	place := map[int]string{}
	for i := range 200 {
		place[i] = mustPick(t, c, ipReq(i), nil).Address()
	}
	s.Retry.MaxRetries = 3 // not an endpoint change
	if _, err := c.Update(s); err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		if a := mustPick(t, c, ipReq(i), nil).Address(); a != place[i] {
			t.Fatalf("key %d moved from %s to %s", i, place[i], a)
		}
	}

	a := mustCluster(t, specOf(SessionAffinity, endpoints(1, 1, 1)...))
	p, _ := a.Pick(nil, nil)
	name, value, _ := strings.Cut(strings.Split(p.SetCookie, ";")[0], "=")
	a2 := specOf(SessionAffinity, append(endpoints(1, 1, 1), EndpointSpec{Address: "127.0.0.1:19999", Weight: 1})...)
	a2.Affinity.TTL = time.Minute
	if _, err := a.Update(a2); err != nil {
		t.Fatal(err)
	}
	for range 20 {
		if e := mustPick(t, a, cookieReq(name, value), nil); e != p.Endpoint {
			t.Fatalf("affinity cookie now leads to %s, was %s", e.Address(), p.Endpoint.Address())
		}
	}
	if q, _ := a.Pick(nil, nil); !strings.Contains(q.SetCookie, "Max-Age=60") {
		t.Fatalf("new cookie settings not applied: %q", q.SetCookie)
	}
}

func TestUpdateAddsAndRemovesEndpoints(t *testing.T) {
	set := metrics.NewSet()
	s := specOf(RoundRobin, endpoints(1, 1, 1)...)
	s.Outlier = &OutlierSpec{ConsecutiveConnectFailures: 1, MaxEjectionPercent: 100}
	c := mustCluster(t, s, WithMetrics(set))
	old := c.Endpoints()
	gone := old[2]
	gone.Begin() // a request in flight on the endpoint being removed

	s2 := specOf(RoundRobin, EndpointSpec{Address: addrOf(0)}, EndpointSpec{Address: addrOf(1)}, EndpointSpec{Address: addrOf(7)})
	s2.Outlier = s.Outlier
	removed, err := c.Update(s2)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 1 || removed[0] != gone {
		t.Fatalf("removed %v", removed)
	}
	got := countPicks(t, c, 300, nil)
	if got[gone.Address()] != 0 || got[addrOf(7)] != 100 {
		t.Fatalf("picks %v", got)
	}
	if c.Endpoint(addrOf(7)) == nil || !c.Endpoint(addrOf(7)).Healthy() {
		t.Fatal("added endpoint missing or unhealthy")
	}
	// The request in flight ends on the removed endpoint: counted, no
	// ejection, no effect on the cluster.
	gone.End(0, 0, true)
	if gone.ActiveRequests() != 0 || gone.Ejected() {
		t.Fatalf("removed endpoint: active %d ejected %v", gone.ActiveRequests(), gone.Ejected())
	}
	var b strings.Builder
	set.WritePrometheus(&b)
	if strings.Contains(b.String(), gone.Address()) {
		t.Fatalf("removed endpoint still has series:\n%s", b.String())
	}
	if !strings.Contains(b.String(), addrOf(7)) {
		t.Fatal("added endpoint has no series")
	}
}

func TestUpdateRemovingOutlierDetectionReturnsEjected(t *testing.T) {
	s := specOf(RoundRobin, endpoints(1, 1)...)
	s.Outlier = &OutlierSpec{Consecutive5xx: 1, MaxEjectionPercent: 100, BaseEjectionTime: time.Hour}
	c := mustCluster(t, s)
	e := c.Endpoints()[0]
	e.Begin()
	e.End(500, time.Millisecond, false)
	if !e.Ejected() {
		t.Fatal("not ejected")
	}
	s.Outlier = nil
	if _, err := c.Update(s); err != nil {
		t.Fatal(err)
	}
	if !e.Healthy() {
		t.Fatal("still ejected after outlier detection was removed")
	}
	e.Begin()
	e.End(500, time.Millisecond, false)
	if !e.Healthy() {
		t.Fatal("ejected without outlier detection")
	}
}

func TestUpdateRefusals(t *testing.T) {
	c := mustCluster(t, specOf(RoundRobin, endpoints(1, 1)...))
	before := c.Endpoints()
	s := specOf(RoundRobin, endpoints(1, 1)...)
	s.Name = "other"
	if _, err := c.Update(s); err == nil {
		t.Fatal("rename accepted")
	}
	bad := specOf("nope", endpoints(1)...)
	if _, err := c.Update(bad); err == nil {
		t.Fatal("invalid spec accepted")
	}
	if c.Spec().Algorithm != RoundRobin || len(c.Endpoints()) != 2 || c.Endpoints()[0] != before[0] {
		t.Fatal("a refused update changed the cluster")
	}
	c.Close()
	if _, err := c.Update(specOf(Random, endpoints(1)...)); err != ErrClosed {
		t.Fatalf("update after close: %v", err)
	}
}

// TestUpdateHealthStateSurvivesAndDoesNotFlap runs real probes: an
// endpoint that failed its checks stays down across an update that leaves
// the health check alone and across one that changes it; the checks of an
// added endpoint start.
func TestUpdateHealthStateSurvivesAndDoesNotFlap(t *testing.T) {
	var okHits, badHits, newHits atomic.Int64
	srv := func(hits *atomic.Int64, status int) *httptest.Server {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			hits.Add(1)
			w.WriteHeader(status)
		}))
		t.Cleanup(s.Close)
		return s
	}
	good, bad, added := srv(&okHits, 200), srv(&badHits, 500), srv(&newHits, 200)
	addr := func(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "http://") }
	var log eventLog
	hc := fastCheck("http")
	s := Spec{Name: "hc", Endpoints: []EndpointSpec{{Address: addr(good)}, {Address: addr(bad)}}, HealthCheck: hc}
	c := mustCluster(t, s, WithHealthEvents(log.add))
	c.Start(context.Background())
	badEP := c.Endpoint(addr(bad))
	waitHealthy(t, badEP, false)

	s.Endpoints = append(s.Endpoints, EndpointSpec{Address: addr(added)})
	if _, err := c.Update(s); err != nil {
		t.Fatal(err)
	}
	if badEP.Healthy() || c.Endpoint(addr(bad)) != badEP {
		t.Fatal("down endpoint came back on an update that kept its health check")
	}
	for newHits.Load() < 3 {
		time.Sleep(5 * time.Millisecond)
	}

	hc2 := *hc
	hc2.Interval = 30 * time.Millisecond
	s.HealthCheck = &hc2
	if _, err := c.Update(s); err != nil {
		t.Fatal(err)
	}
	from := badHits.Load()
	for badHits.Load() < from+5 {
		time.Sleep(5 * time.Millisecond)
	}
	for _, ev := range log.list() {
		if ev.Endpoint == addr(bad) && ev.Healthy {
			t.Fatalf("the failing endpoint flapped: %+v", ev)
		}
	}
	if badEP.Healthy() {
		t.Fatal("failing endpoint healthy after the health check changed")
	}
}

// TestUpdateUnderConcurrentPicks runs picks, Begin/End and updates at once
// (for the race detector) and checks that no pick ever returns an endpoint
// outside the current or previous endpoint list.
func TestUpdateUnderConcurrentPicks(t *testing.T) {
	specs := []Spec{
		specOf(RoundRobin, endpoints(1, 1, 1)...),
		specOf(EWMA, endpoints(2, 1)...),
		specOf(LeastRequests, append(endpoints(1, 1, 1), EndpointSpec{Address: addrOf(9), Weight: 4})...),
		specOf(Maglev, endpoints(1, 3)...),
	}
	c := mustCluster(t, specs[0])
	valid := map[string]bool{}
	for _, s := range specs {
		for _, e := range s.Endpoints {
			valid[e.Address] = true
		}
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var bad atomic.Value
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				p, err := c.Pick(ipReq(g*1000+i), nil)
				if err != nil {
					bad.Store(err.Error())
					return
				}
				if !valid[p.Endpoint.Address()] {
					bad.Store(p.Endpoint.Address())
				}
				p.Endpoint.Begin()
				p.Endpoint.End(200, time.Microsecond, false)
				_ = c.AllowRetry()
			}
		}()
	}
	for i := range 40 {
		if _, err := c.Update(specs[i%len(specs)]); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	if v := bad.Load(); v != nil {
		t.Fatalf("bad pick: %v", v)
	}
	for _, e := range c.Endpoints() {
		if e.ActiveRequests() != 0 {
			t.Fatalf("%s: %d requests still active", e.Address(), e.ActiveRequests())
		}
	}
}

func TestPrepareCommitAndDiscard(t *testing.T) {
	set := metrics.NewSet()
	c := mustCluster(t, specOf(WeightedRoundRobin, endpoints(1, 1)...), WithMetrics(set))
	s2 := specOf(WeightedRoundRobin, EndpointSpec{Address: addrOf(0), Weight: 1}, EndpointSpec{Address: addrOf(5), Weight: 3})
	p, err := c.Prepare(s2)
	if err != nil {
		t.Fatal(err)
	}
	if got := countPicks(t, c, 40, nil); got[addrOf(5)] != 0 {
		t.Fatalf("prepared update visible before Commit: %v", got)
	}
	// Health moves between Prepare and Commit: Commit rebuilds.
	setDown(c, c.Endpoint(addrOf(0)), true)
	if removed := p.Commit(); len(removed) != 1 || removed[0].Address() != addrOf(1) {
		t.Fatalf("removed %v", removed)
	}
	if got := countPicks(t, c, 40, nil); got[addrOf(5)] != 40 {
		t.Fatalf("after Commit with the first endpoint down: %v", got)
	}
	setDown(c, c.Endpoint(addrOf(0)), false)
	if got := countPicks(t, c, 40, nil); got[addrOf(0)] != 10 || got[addrOf(5)] != 30 {
		t.Fatalf("weights of an added endpoint: %v", got)
	}

	p, err = c.Prepare(specOf(WeightedRoundRobin, endpoints(1, 1, 1)...))
	if err != nil {
		t.Fatal(err)
	}
	p.Discard()
	var b strings.Builder
	set.WritePrometheus(&b)
	if strings.Contains(b.String(), addrOf(2)) || len(c.Endpoints()) != 2 {
		t.Fatal("a discarded update left traces")
	}
}
