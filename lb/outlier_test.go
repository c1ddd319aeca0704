// SPDX-License-Identifier: GPL-3.0-only

package lb

import (
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
