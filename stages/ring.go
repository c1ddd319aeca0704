// SPDX-License-Identifier: GPL-3.0-only

package stages

// Ring is a fixed-capacity FIFO of exchanges between two stages. It is owned by
// one event loop and is not safe for concurrent use: the design runs every stage
// to completion on the connection's own loop, so a ring only ever holds one
// batch. Push on a full ring fails instead of growing: the caller turns that
// into backpressure (503 with Retry-After).
type Ring struct {
	buf  []*Exchange
	mask int
	head int // next slot to pop
	n    int // items held
}

// NewRing returns a ring whose capacity is size rounded up to a power of two.
func NewRing(size int) *Ring {
	c := 1
	for c < size {
		c <<= 1
	}
	return &Ring{buf: make([]*Exchange, c), mask: c - 1}
}

// Push appends x; it reports false when the ring is full.
func (r *Ring) Push(x *Exchange) bool {
	if r.n == len(r.buf) {
		return false
	}
	r.buf[(r.head+r.n)&r.mask] = x
	r.n++
	return true
}

// Pop removes and returns the oldest exchange, or nil when empty.
func (r *Ring) Pop() *Exchange {
	if r.n == 0 {
		return nil
	}
	x := r.buf[r.head]
	r.buf[r.head] = nil
	r.head = (r.head + 1) & r.mask
	r.n--
	return x
}

// Len is the number of exchanges held.
func (r *Ring) Len() int { return r.n }

// Cap is the ring's fixed capacity.
func (r *Ring) Cap() int { return len(r.buf) }
