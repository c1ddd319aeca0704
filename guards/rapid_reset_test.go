// SPDX-License-Identifier: GPL-3.0-only

package guards

import (
	"testing"
	"time"
)

func TestResetWindow(t *testing.T) {
	var w ResetWindow
	// Normal streams with a few resets never trip.
	for i := range 1000 {
		if w.Record(i%3 == 0, 100) {
			t.Fatalf("tripped at %d with a third reset", i)
		}
	}
	// A burst of resets trips once they are more than half of the last 100.
	var w2 ResetWindow
	for i := range 50 {
		if w2.Record(false, 100) {
			t.Fatalf("normal stream %d tripped", i)
		}
	}
	tripped := -1
	for i := range 100 {
		if w2.Record(true, 100) {
			tripped = i
			break
		}
	}
	// After 50 normal streams, the window is full when 50 resets are in;
	// the 51st reset is over half of the last 100.
	if tripped != 50 {
		t.Fatalf("tripped after %d resets, want 50 (the 51st)", tripped)
	}
	// Only resets: trips at 51.
	var w3 ResetWindow
	for i := range 51 {
		if got := w3.Record(true, 100); got != (i == 50) {
			t.Fatalf("reset %d: %v", i, got)
		}
	}
}

func TestPremature(t *testing.T) {
	if !Premature(0, int64(999*time.Millisecond), time.Second) || Premature(0, int64(time.Second), time.Second) {
		t.Fatal("lifetime boundary")
	}
}

func TestWindow(t *testing.T) {
	var w Window
	now := time.Unix(1000, 0).UnixNano()
	if w.Add(10, now, 10) {
		t.Fatal("at the limit is not over it")
	}
	if !w.Add(1, now+int64(500*time.Millisecond), 10) {
		t.Fatal("over the limit within the second")
	}
	if w.Add(10, now+int64(time.Second), 10) {
		t.Fatal("a new second starts afresh")
	}
}
