// SPDX-License-Identifier: GPL-3.0-only

package guards

import (
	"net/netip"
	"testing"
	"time"
)

func TestBucketsRateAndBurst(t *testing.T) {
	b := NewBuckets(10, 5, 1024)
	k := KeyIP(netip.MustParseAddr("198.18.0.1"))
	now := time.Unix(1000, 0).UnixNano()
	for i := range 5 {
		if ok, _ := b.Take(k, now); !ok {
			t.Fatalf("burst request %d refused", i)
		}
	}
	ok, retry := b.Take(k, now)
	if ok || retry != 100*time.Millisecond {
		t.Fatalf("over the burst: %v, retry after %v (want 100ms)", ok, retry)
	}
	if ok, _ := b.Take(k, now+int64(100*time.Millisecond)); !ok {
		t.Fatal("a token is back after 1/rate")
	}
	other := KeyIP(netip.MustParseAddr("198.18.0.2"))
	if ok, _ := b.Take(other, now); !ok {
		t.Fatal("another key was limited")
	}
}

// TestBucketsBounded: a flood of keys never grows the table, and a key that
// is busy keeps its bucket (an attacker does not reset it by churning keys).
func TestBucketsBounded(t *testing.T) {
	b := NewBuckets(1, 1, 1024)
	slots := b.Slots()
	busy := KeyIP(netip.MustParseAddr("198.18.0.1"))
	now := time.Unix(1000, 0).UnixNano()
	if ok, _ := b.Take(busy, now); !ok {
		t.Fatal("first refused")
	}
	for i := range 200000 {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		b.Take(KeyIP(a), now)
	}
	if b.Slots() != slots {
		t.Fatalf("table grew from %d to %d", slots, b.Slots())
	}
	if ok, _ := b.Take(busy, now); ok {
		t.Fatal("the busy key got a fresh bucket after a key flood")
	}
}

func TestRateLimiterKeys(t *testing.T) {
	if NewRateLimiter(0, 10, "client_ip", 1024) != nil {
		t.Fatal("requests_per_second 0 is no limiter")
	}
	l := NewRateLimiter(1, 0, "header:X-Api-Key", 1024)
	if l.Header() != "x-api-key" {
		t.Fatalf("header %q", l.Header())
	}
	now := time.Unix(1000, 0)
	if ok, _ := l.AllowValue([]byte("a"), now); !ok {
		t.Fatal("first a refused")
	}
	if ok, _ := l.AllowValue([]byte("a"), now); ok {
		t.Fatal("burst defaults to the rate (1)")
	}
	if ok, _ := l.AllowValue([]byte("b"), now); !ok {
		t.Fatal("b shares a's bucket")
	}
}
