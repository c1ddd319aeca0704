// SPDX-License-Identifier: GPL-3.0-only

package guards

import (
	"net/netip"
	"testing"
)

func TestPenalties(t *testing.T) {
	p := NewPenalties(1024)
	a, b := KeyIP(netip.MustParseAddr("198.18.0.1")), KeyIP(netip.MustParseAddr("198.18.0.2"))
	p.Add(a, 100)
	if !p.Blocked(a, 99) || p.Blocked(a, 100) || p.Blocked(b, 50) {
		t.Fatal("penalty window")
	}
	p.Add(a, 50) // a shorter one does not shorten it
	if !p.Blocked(a, 99) {
		t.Fatal("shortened")
	}
	// Bounded: a flood of keys never grows the table.
	for i := range 100000 {
		p.Add(KeyBytes([]byte{byte(i), byte(i >> 8), byte(i >> 16)}), 1000)
	}
	if len(p.slots) != 1024 {
		t.Fatalf("table grew to %d", len(p.slots))
	}
}
