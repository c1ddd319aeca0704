// SPDX-License-Identifier: GPL-3.0-only

package lb

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

func TestOutlierEjectionAndBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var events []HealthEvent
		c := mustCluster(t, Spec{
			Algorithm: RoundRobin, Endpoints: endpoints(1, 1, 1, 1),
			Outlier: &OutlierSpec{Consecutive5xx: 3, ConsecutiveConnectFailures: 2, BaseEjectionTime: 10 * time.Second, MaxEjectionPercent: 50},
		}, WithHealthEvents(func(ev HealthEvent) { mu.Lock(); events = append(events, ev); mu.Unlock() }))
		e := c.Endpoints()[0]
		fail := func(status int, connect bool) {
			e.Begin()
			e.End(status, time.Millisecond, connect)
		}
		fail(503, false)
		fail(500, false)
		fail(200, false) // a success resets the streak
		fail(502, false)
		fail(500, false)
		if !e.Healthy() {
			t.Fatal("ejected before 3 consecutive 5xx")
		}
		fail(504, false)
		if !e.Ejected() || e.Healthy() {
			t.Fatal("not ejected after 3 consecutive 5xx")
		}
		for _, p := range countPicksEndpoints(t, c, 30) {
			if p == e {
				t.Fatal("ejected endpoint picked")
			}
		}
		// First ejection lasts base × 1 = 10s.
		time.Sleep(10*time.Second - time.Millisecond)
		if e.Healthy() {
			t.Fatal("returned before base_ejection_time")
		}
		time.Sleep(2 * time.Millisecond)
		if !e.Healthy() {
			t.Fatal("not back after base_ejection_time")
		}
		// Second ejection (connect failures) lasts base × 2 = 20s.
		fail(0, true)
		fail(0, true)
		if !e.Ejected() {
			t.Fatal("not ejected after 2 connect failures")
		}
		time.Sleep(15 * time.Second)
		if e.Healthy() {
			t.Fatal("second ejection shorter than 2 × base")
		}
		time.Sleep(5*time.Second + time.Millisecond)
		if !e.Healthy() {
			t.Fatal("not back after 2 × base")
		}
		if got := e.m.ejections.Get(); got != 2 {
			t.Fatalf("ejections counter %d, want 2", got)
		}
		mu.Lock()
		defer mu.Unlock()
		reasons := []string{}
		for _, ev := range events {
			reasons = append(reasons, ev.Reason)
		}
		want := []string{"consecutive_5xx", "ejection_expired", "consecutive_connect_failures", "ejection_expired"}
		if len(reasons) != len(want) {
			t.Fatalf("events %v, want %v", reasons, want)
		}
		for i := range want {
			if reasons[i] != want[i] || events[i].Healthy != (i%2 == 1) || events[i].Endpoint != e.Address() {
				t.Fatalf("events %v, want %v", events, want)
			}
		}
	})
}

func TestOutlierMaxEjectionPercent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := mustCluster(t, Spec{
			Algorithm: RoundRobin, Endpoints: endpoints(1, 1, 1, 1, 1, 1, 1, 1, 1, 1),
			Outlier: &OutlierSpec{Consecutive5xx: 1, MaxEjectionPercent: 20},
		})
		for _, e := range c.Endpoints() {
			e.Begin()
			e.End(500, time.Millisecond, false)
		}
		ejected := 0
		for _, e := range c.Endpoints() {
			if e.Ejected() {
				ejected++
			}
		}
		if ejected != 2 {
			t.Fatalf("%d of 10 ejected with max_ejection_percent 20, want 2", ejected)
		}
		// One ejection is always allowed, even when the cap rounds to 0.
		one := mustCluster(t, Spec{
			Algorithm: RoundRobin, Endpoints: endpoints(1, 1, 1),
			Outlier: &OutlierSpec{Consecutive5xx: 1, MaxEjectionPercent: 10},
		})
		for _, e := range one.Endpoints() {
			e.Begin()
			e.End(500, time.Millisecond, false)
		}
		if !one.Endpoints()[0].Ejected() || one.Endpoints()[1].Ejected() {
			t.Fatal("want exactly the first endpoint ejected")
		}
	})
}

// TestOutlierNeverEjectsTheLastHealthy: an ejection that would leave no
// healthy endpoint is refused (nginx never marks a lone server down), in a
// one-endpoint cluster and when the others are down already.
func TestOutlierNeverEjectsTheLastHealthy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lone := mustCluster(t, Spec{Endpoints: endpoints(1), Outlier: &OutlierSpec{ConsecutiveConnectFailures: 1}})
		e := lone.Endpoints()[0]
		for range 5 {
			e.Begin()
			e.End(0, 0, true)
		}
		if e.Ejected() || !e.Healthy() {
			t.Fatal("the only endpoint was ejected")
		}
		c := mustCluster(t, Spec{Endpoints: endpoints(1, 1, 1), Outlier: &OutlierSpec{ConsecutiveConnectFailures: 1, MaxEjectionPercent: 100}})
		eps := c.Endpoints()
		c.setState(eps[2], stateActiveDown, true, "active_check_failed", nil)
		eps[0].Begin()
		eps[0].End(0, 0, true)
		if !eps[0].Ejected() {
			t.Fatal("first ejection refused")
		}
		eps[1].Begin()
		eps[1].End(0, 0, true)
		if eps[1].Ejected() {
			t.Fatal("the last healthy endpoint was ejected")
		}
	})
}

// TestOutlierDefaultsEjectADeadEndpoint: with the defaults (3 connect
// failures, 10 s, at most 50%) one dead endpoint of three is out after
// three failed connects and back after 10 s; a second dead one of three
// stays in (50% cap), so the cluster keeps a majority.
func TestOutlierDefaultsEjectADeadEndpoint(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := mustCluster(t, Spec{Endpoints: endpoints(1, 1, 1), Outlier: &OutlierSpec{Consecutive5xx: -1}})
		eps := c.Endpoints()
		fail := func(e *Endpoint) {
			e.Begin()
			e.End(0, time.Millisecond, true)
		}
		fail(eps[0])
		fail(eps[0])
		if eps[0].Ejected() {
			t.Fatal("ejected after 2 connect failures")
		}
		fail(eps[0])
		if !eps[0].Ejected() {
			t.Fatal("not ejected after 3 connect failures")
		}
		for range 3 {
			fail(eps[1])
		}
		if eps[1].Ejected() {
			t.Fatal("a second endpoint of three ejected despite max_ejection_percent 50")
		}
		for range 10 {
			eps[2].Begin()
			eps[2].End(503, time.Millisecond, false)
		}
		if eps[2].Ejected() {
			t.Fatal("5xx ejected with consecutive_5xx disabled")
		}
		time.Sleep(10*time.Second + time.Millisecond)
		if eps[0].Ejected() {
			t.Fatal("not back after base_ejection_time 10s")
		}
	})
}

// TestActiveCheckPassEndsEjection: an endpoint both ejected and marked down
// by active checks comes back as soon as the checker sees it pass
// healthy_threshold probes, with one transition event; the stopped
// ejection timer does not touch a later ejection.
func TestActiveCheckPassEndsEjection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var events []HealthEvent
		c := mustCluster(t, Spec{
			Endpoints:   endpoints(1, 1, 1),
			HealthCheck: &HealthCheckSpec{Type: "tcp", HealthyThreshold: 2, UnhealthyThreshold: 1},
			Outlier:     &OutlierSpec{ConsecutiveConnectFailures: 1, BaseEjectionTime: 10 * time.Second},
		}, WithHealthEvents(func(ev HealthEvent) { mu.Lock(); events = append(events, ev); mu.Unlock() }))
		e := c.Endpoints()[0]
		k := &checker{c: c, e: e, spec: c.spec.HealthCheck}
		e.Begin()
		e.End(0, 0, true) // ejected for 10 s
		k.record(errors.New("refused"))
		if !e.Ejected() || e.state.Load()&stateActiveDown == 0 {
			t.Fatal("want ejected and down")
		}
		time.Sleep(time.Second)
		k.record(nil)
		if e.Healthy() {
			t.Fatal("back after one pass, healthy_threshold is 2")
		}
		k.record(nil)
		if !e.Healthy() || e.Ejected() {
			t.Fatal("not back after healthy_threshold passes")
		}
		// Eject again 8 s later (second ejection: 20 s); the first timer
		// (due at 10 s) must not end it.
		time.Sleep(8 * time.Second)
		e.Begin()
		e.End(0, 0, true)
		time.Sleep(5 * time.Second)
		if !e.Ejected() {
			t.Fatal("a stale ejection timer ended a later ejection")
		}
		mu.Lock()
		defer mu.Unlock()
		var reasons []string
		for _, ev := range events {
			reasons = append(reasons, ev.Reason)
		}
		want := "consecutive_connect_failures active_check_passed consecutive_connect_failures"
		if got := strings.Join(reasons, " "); got != want {
			t.Fatalf("events %q, want %q", got, want)
		}
	})
}
