// SPDX-License-Identifier: GPL-3.0-only

package guards

import (
	"sync"
	"time"
)

// Penalty: a client IP whose connection a connection guard closed for an
// attack (Rapid Reset, a flood, the glitch score) opens no new connection
// on that listener for guards.penalty. Without it an attacker reconnects
// at once and each new connection buys another round of the attack before
// its guard trips again.
const Penalty Name = "penalty"

// DefaultPenalty is the default of guards.penalty.
const DefaultPenalty = time.Second

// Penalties remembers penalised keys until a deadline, in a fixed number
// of slots (bounded memory, like Buckets). A key lives in one of two slots;
// when both hold live penalties of other keys, the one ending sooner is
// replaced: under a table-filling attack some penalties are forgotten early
// (admitting too much), never invented. Safe for use from any goroutine.
type Penalties struct {
	mu    sync.Mutex
	slots []penalty
	mask  uint64
}

type penalty struct {
	key   uint64
	until int64 // UnixNano
}

// NewPenalties returns a table for about slots keys (rounded up to a power
// of two).
func NewPenalties(slots int) *Penalties {
	n := 1
	for n < slots {
		n <<= 1
	}
	return &Penalties{slots: make([]penalty, n), mask: uint64(n - 1)}
}

func (p *Penalties) pair(key uint64) (*penalty, *penalty) {
	return &p.slots[key&p.mask], &p.slots[(key>>32^key*0x9e3779b97f4a7c15)&p.mask]
}

// Add penalises key until until (UnixNano); a longer penalty stays.
func (p *Penalties) Add(key uint64, until int64) {
	if key == 0 {
		key = 1
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	a, b := p.pair(key)
	switch {
	case a.key == key:
		a.until = max(a.until, until)
	case b.key == key:
		b.until = max(b.until, until)
	case a.until <= b.until:
		*a = penalty{key, until}
	default:
		*b = penalty{key, until}
	}
}

// Blocked reports whether key is penalised at now (UnixNano).
func (p *Penalties) Blocked(key uint64, now int64) bool {
	if key == 0 {
		key = 1
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	a, b := p.pair(key)
	return (a.key == key && now < a.until) || (b.key == key && now < b.until)
}
