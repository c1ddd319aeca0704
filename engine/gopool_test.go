// SPDX-License-Identifier: GPL-3.0-only

package engine

import (
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/rs/zerolog"
)

func waitIdle(t *testing.T, p *goPool, want int32) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for p.idle.Load() != want {
		if time.Now().After(deadline) {
			t.Fatalf("idle workers = %d, want %d", p.idle.Load(), want)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestGoPool checks that finished workers take the next work instead of
// new goroutines starting, that at most maxIdle of them wait, that a panic
// is counted and the worker survives it, and that quit ends every waiting
// worker.
func TestGoPool(t *testing.T) {
	m := NewMetrics(metrics.NewSet())
	quit := make(chan struct{})
	p := newGoPool(2, quit, m, zerolog.Nop())

	// Five at once: five goroutines; when they finish, two stay.
	release := make(chan struct{})
	var wg sync.WaitGroup
	for range 5 {
		wg.Add(1)
		p.Go(func() { defer wg.Done(); <-release })
	}
	close(release)
	wg.Wait()
	waitIdle(t, p, 2)
	if n := p.started.Load(); n != 5 {
		t.Fatalf("started %d goroutines for 5 concurrent jobs", n)
	}

	// Sequential work runs on the waiting workers: nothing new starts.
	for range 100 {
		done := make(chan struct{})
		p.Go(func() { close(done) })
		<-done
		waitIdle(t, p, 2)
	}
	if n := p.started.Load(); n != 5 {
		t.Fatalf("sequential work started %d more goroutines", n-5)
	}

	// A panic is counted; the worker waits again.
	before := m.Panics.Get()
	p.Go(func() { panic("boom") })
	for deadline := time.Now().Add(5 * time.Second); m.Panics.Get() != before+1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("panics %d → %d, want one more", before, m.Panics.Get())
		}
	}
	waitIdle(t, p, 2)
	if n := p.started.Load(); n != 5 {
		t.Fatalf("the panic cost a goroutine: started %d", n)
	}

	close(quit)
	waitIdle(t, p, 0)
	// After quit, work still runs (on a fresh goroutine).
	done := make(chan struct{})
	p.Go(func() { close(done) })
	<-done
}
