// SPDX-License-Identifier: GPL-3.0-only

package guards

import (
	"net/netip"
	"testing"
	"time"
)

func TestConnLimiter(t *testing.T) {
	l := &ConnLimiter{MaxTotal: 3, MaxPerIP: 2}
	a, b := netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("198.18.0.2")
	for i, want := range []Name{"", "", MaxConnectionsPerIP} {
		ok, lim := l.Acquire(a)
		if ok != (want == "") || lim != want {
			t.Fatalf("acquire %d: %v %q", i, ok, lim)
		}
	}
	if ok, _ := l.Acquire(b); !ok {
		t.Fatal("other IP refused")
	}
	if ok, lim := l.Acquire(b); ok || lim != "max_connections" {
		t.Fatalf("total cap: %v %q", ok, lim)
	}
	l.Release(a)
	if ok, _ := l.Acquire(b); !ok || l.Count() != 3 {
		t.Fatal("release did not free a slot")
	}
}

func TestConnLimiterSetLimits(t *testing.T) {
	l := &ConnLimiter{MaxTotal: 2, MaxPerIP: 0}
	a := netip.MustParseAddr("198.18.0.1")
	l.Acquire(a)
	l.Acquire(a)
	l.SetLimits(3, 1) // per-IP counting starts now
	if ok, _ := l.Acquire(a); !ok {
		t.Fatal("first connection counted after the change refused")
	}
	if ok, lim := l.Acquire(a); ok || lim != "max_connections" {
		t.Fatalf("total cap after raise: %v %q", ok, lim)
	}
	l.Release(a) // one admitted before the change: never goes negative
	l.Release(a)
	l.Release(a)
	if l.Count() != 0 {
		t.Fatalf("count %d", l.Count())
	}
	if ok, _ := l.Acquire(a); !ok {
		t.Fatal("refused after releases")
	}
	if ok, lim := l.Acquire(a); ok || lim != "max_connections_per_ip" {
		t.Fatalf("per-IP cap: %v %q", ok, lim)
	}
	l.SetLimits(0, 0)
	for range 5 {
		if ok, _ := l.Acquire(a); !ok {
			t.Fatal("unlimited refused")
		}
	}
}

func TestAdmitReleasesOnRefusal(t *testing.T) {
	global := &ConnLimiter{MaxTotal: 10}
	lis := &ConnLimiter{MaxTotal: 10, MaxPerIP: 1}
	a := netip.MustParseAddr("198.18.0.1")
	now := time.Unix(1000, 0)
	if ok, g := Admit(global, lis, nil, nil, a, now); !ok {
		t.Fatalf("first refused by %s", g)
	}
	if ok, g := Admit(global, lis, nil, nil, a, now); ok || g != MaxConnectionsPerIP {
		t.Fatalf("second: %v %s", ok, g)
	}
	if global.Count() != 1 {
		t.Fatalf("a refused connection stayed acquired globally: %d", global.Count())
	}
	Release(global, lis, a)
	if global.Count() != 0 || lis.Count() != 0 {
		t.Fatal("release left counts")
	}
	rate := NewBuckets(1, 2, 64)
	lis.SetLimits(10, 0)
	for i, want := range []bool{true, true, false} {
		ok, g := Admit(global, lis, rate, nil, a, now)
		if ok != want || (!ok && g != NewConnectionRate) {
			t.Fatalf("connection %d: %v %s", i, ok, g)
		}
	}
	if global.Count() != 2 {
		t.Fatalf("count %d, want 2", global.Count())
	}
	if ok, _ := Admit(global, lis, rate, nil, a, now.Add(time.Second)); !ok {
		t.Fatal("a token is back after a second")
	}
}

func TestAdmitPenalty(t *testing.T) {
	global, lis := &ConnLimiter{}, &ConnLimiter{}
	pen := NewPenalties(64)
	a := netip.MustParseAddr("198.18.0.1")
	now := time.Unix(1000, 0)
	pen.Add(KeyIP(a), now.Add(time.Second).UnixNano())
	if ok, g := Admit(global, lis, nil, pen, a, now); ok || g != Penalty || global.Count() != 0 {
		t.Fatalf("penalised: %v %s", ok, g)
	}
	if ok, _ := Admit(global, lis, nil, pen, a, now.Add(time.Second)); !ok {
		t.Fatal("refused after the penalty")
	}
}

func TestReadmit(t *testing.T) {
	global, lis := &ConnLimiter{}, &ConnLimiter{MaxPerIP: 1}
	lb, a, b := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("198.18.0.2")
	now := time.Unix(1000, 0)
	Admit(global, lis, nil, nil, lb, now)
	if ok, _ := Readmit(global, lis, nil, nil, lb, a, now); !ok || global.Count() != 1 {
		t.Fatal("readmit to the client failed")
	}
	Admit(global, lis, nil, nil, lb, now)
	if ok, g := Readmit(global, lis, nil, nil, lb, a, now); ok || g != MaxConnectionsPerIP || global.Count() != 1 {
		t.Fatalf("second client connection over the per-IP cap: %v %s, count %d", ok, g, global.Count())
	}
	Admit(global, lis, nil, nil, lb, now)
	if ok, _ := Readmit(global, lis, nil, nil, lb, b, now); !ok || global.Count() != 2 {
		t.Fatal("another client refused")
	}
}
