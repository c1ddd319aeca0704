// SPDX-License-Identifier: GPL-3.0-only

package engine

import (
	"sync/atomic"

	"github.com/rs/zerolog"
)

// goPool runs the work of goroutines started per stream or per connection
// (an HTTP/3 stream's reader and writer, an upstream dial and, after a TLS
// upstream handshake, its relay) on long-lived ones. A new goroutine
// starts on an 8 KiB stack, and a stream's reader outgrew it on its first
// quic-go Read: copystack was 8% of the gateway's CPU in the bench's h3
// profile, one stack copy per request. A worker keeps its grown stack from
// one piece of work to the next (the garbage collector shrinks it only
// while the worker idles).
//
// Go hands fn to a worker that is waiting, or starts one when none is: it
// never queues, so work never waits behind other work. At most maxIdle
// workers wait; one finding that many already waiting exits, and so do
// all of them once quit closes (the engine stopped).
type goPool struct {
	work    chan func()
	quit    <-chan struct{}
	idle    atomic.Int32
	started atomic.Int64 // goroutines started (tests)
	maxIdle int32
	// onPanic counts and logs a panic the work did not recover; the worker
	// goes on (no panic ever kills the process).
	onPanic func(r any)
}

// poolIdleWorkers bounds the goroutines the engine keeps waiting for work:
// a few MiB of stacks at most.
const poolIdleWorkers = 256

func newGoPool(maxIdle int, quit <-chan struct{}, m *Metrics, log zerolog.Logger) *goPool {
	return &goPool{
		work:    make(chan func()),
		quit:    quit,
		maxIdle: int32(maxIdle),
		onPanic: func(r any) {
			m.Panics.Inc()
			log.Error().Interface("panic", r).Msg("panic in a pooled goroutine; its work is abandoned")
		},
	}
}

// Go runs fn on a pooled goroutine.
func (p *goPool) Go(fn func()) {
	select {
	case p.work <- fn:
	default:
		p.started.Add(1)
		go p.worker(fn)
	}
}

func (p *goPool) worker(fn func()) {
	for {
		p.run(fn)
		fn = nil // hold nothing of the finished work while idle
		if p.idle.Add(1) > p.maxIdle {
			p.idle.Add(-1)
			return
		}
		select {
		case fn = <-p.work:
			p.idle.Add(-1)
		case <-p.quit:
			p.idle.Add(-1)
			return
		}
	}
}

func (p *goPool) run(fn func()) {
	defer func() {
		if r := recover(); r != nil {
			p.onPanic(r)
		}
	}()
	fn()
}
