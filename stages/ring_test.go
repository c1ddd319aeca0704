// SPDX-License-Identifier: GPL-3.0-only

package stages

import "testing"

func TestRingBoundedFIFO(t *testing.T) {
	r := NewRing(3) // rounds up to 4
	if r.Cap() != 4 {
		t.Fatalf("cap = %d, want 4", r.Cap())
	}
	xs := make([]*Exchange, 6)
	for i := range xs {
		xs[i] = &Exchange{}
	}
	for i := 0; i < 4; i++ {
		if !r.Push(xs[i]) {
			t.Fatalf("push %d refused", i)
		}
	}
	if r.Push(xs[4]) {
		t.Fatal("push on a full ring accepted")
	}
	if got := r.Pop(); got != xs[0] {
		t.Fatal("not FIFO")
	}
	if !r.Push(xs[4]) {
		t.Fatal("push after pop refused")
	}
	for _, want := range []*Exchange{xs[1], xs[2], xs[3], xs[4]} {
		if got := r.Pop(); got != want {
			t.Fatal("wrap-around order broken")
		}
	}
	if r.Pop() != nil || r.Len() != 0 {
		t.Fatal("ring not empty")
	}
}
