// SPDX-License-Identifier: GPL-3.0-only

package lb

import (
	"strings"
	"testing"
	"time"
)

func TestSpecDefaults(t *testing.T) {
	s := Spec{Name: "web", Endpoints: []EndpointSpec{{Address: "a:1"}}, HealthCheck: &HealthCheckSpec{}, Outlier: &OutlierSpec{}}
	s.Defaults()
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	if s.Algorithm != RoundRobin || s.HashKey != "source_ip" || s.Endpoints[0].Weight != 1 ||
		s.MaglevTableSize != 65537 || s.RingHash.MinRingSize != 1024 || s.RingHash.MaxRingSize != 1<<23 ||
		s.EWMA.Decay != 10*time.Second || s.Affinity.CookieName != "eg_affinity" || s.Affinity.Path != "/" ||
		s.PanicThreshold != 50 || s.PanicMode != "all" || s.OverprovisioningFactor != 1.4 ||
		s.Retry.MaxRetries != 2 || s.Retry.BudgetPercent != 20 || s.Retry.MinRetriesPerSecond != 10 || s.Retry.RetryOn != DefaultRetryOn {
		t.Fatalf("defaults: %+v", s)
	}
	hc := s.HealthCheck
	if hc.Type != "http" || hc.Path != "/healthz" || hc.ExpectedStatuses[0] != "200-399" || hc.Interval != 5*time.Second ||
		hc.Timeout != time.Second || hc.HealthyThreshold != 2 || hc.UnhealthyThreshold != 3 {
		t.Fatalf("health defaults: %+v", hc)
	}
	o := s.Outlier
	if o.Consecutive5xx != 5 || o.ConsecutiveConnectFailures != 3 || o.BaseEjectionTime != 10*time.Second ||
		o.MaxEjectionTime != 300*time.Second || o.MaxEjectionPercent != 50 {
		t.Fatalf("outlier defaults: %+v", o)
	}
}

func TestSpecValidate(t *testing.T) {
	s := Spec{
		Algorithm: "fastest", HashKey: "header:",
		Endpoints: []EndpointSpec{
			{Address: "a:1", Weight: 0},
			{Address: "a:1", Weight: 1, Priority: -1},
			{Weight: 1},
		},
		PanicThreshold: 150, PanicMode: "maybe", OverprovisioningFactor: 0.5,
		Retry:       RetrySpec{BudgetPercent: 120, PerTryTimeout: -1, RetryOn: 0x80},
		HealthCheck: &HealthCheckSpec{Type: "icmp", Interval: time.Second, Timeout: -1, HealthyThreshold: 1, UnhealthyThreshold: 0},
		Outlier:     &OutlierSpec{BaseEjectionTime: time.Second, MaxEjectionTime: time.Millisecond, MaxEjectionPercent: 101},
	}
	err := s.Validate()
	if err == nil {
		t.Fatal("invalid spec accepted")
	}
	for _, want := range []string{
		"name:", "algorithm:", "hash_key:", "endpoints[0].weight:", "endpoints[1].address:", "endpoints[1].priority:",
		"endpoints[2].address:", "panic_threshold:", "panic_mode:", "overprovisioning_factor:",
		"retry.budget_percent:", "retry.per_try_timeout:", "retry.retry_on:", "health_check.type:", "health_check.timeout:",
		"health_check.unhealthy_threshold:", "outlier.max_ejection_time:", "outlier.max_ejection_percent:",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
	for _, tc := range []struct {
		spec Spec
		want string
	}{
		{Spec{Name: "m", Algorithm: Maglev, Endpoints: endpoints(1), MaglevTableSize: 65536}, "maglev_table_size:"},
		{Spec{Name: "r", Algorithm: RingHash, Endpoints: endpoints(1), RingHash: RingHashSpec{MinRingSize: 10, MaxRingSize: 5}}, "ring_hash.max_ring_size:"},
		{Spec{Name: "s", Algorithm: SessionAffinity, Endpoints: endpoints(1), Affinity: AffinitySpec{CookieName: "a b", Path: "x"}}, "affinity.cookie_name:"},
		{Spec{Name: "h", Endpoints: endpoints(1), HealthCheck: &HealthCheckSpec{ExpectedStatuses: []string{"600"}}}, "health_check.expected_statuses:"},
	} {
		if _, err := New(tc.spec); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("want %q, got %v", tc.want, err)
		}
	}
}

func TestStatusRanges(t *testing.T) {
	rs, err := parseStatusRanges([]string{"200-299", " 404 "})
	if err != nil {
		t.Fatal(err)
	}
	for code, want := range map[int]bool{199: false, 200: true, 299: true, 300: false, 404: true} {
		if statusIn(rs, code) != want {
			t.Errorf("%d: want %v", code, want)
		}
	}
	for _, bad := range []string{"", "abc", "300-200", "99", "200-", "200-600"} {
		if _, err := parseStatusRanges([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
