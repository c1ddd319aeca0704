// SPDX-License-Identifier: GPL-3.0-only

package guards

import (
	"hash/maphash"
	"net/netip"
	"sync"
	"time"
)

// Buckets is a table of token buckets (rate per second, burst) keyed by a
// 64-bit hash of the client IP or a header value, with bounded memory: it
// has a fixed number of slots, so an attacker with many addresses or header
// values cannot grow it. A key lives in one of two slots picked by its
// hash; a new key takes the slot whose bucket is full again (its owner has
// been idle long enough to be forgotten without loss) or empty. When both
// are busy with other keys, the new key shares the fuller one: under a
// table-filling attack a client may be limited with an attacker's bucket
// (refusing too much), never given a fresh one (refusing too little).
// Safe for use from any goroutine.
type Buckets struct {
	perSec int64 // tokens per second
	burst  int64 // in units
	shards [bucketShards]bucketShard
	mask   uint64 // slots per shard - 1
}

const (
	bucketShards = 16
	unit         = int64(time.Second) // one token; refill is perSec units a nanosecond
)

type bucketShard struct {
	mu    sync.Mutex
	slots []bucket
}

type bucket struct {
	key    uint64 // 0: empty
	tokens int64  // units
	last   int64  // UnixNano of the last refill
}

// NewBuckets returns a table of buckets filling at perSec tokens a second
// up to burst tokens, with room for about slots keys (rounded up to a power
// of two per shard). perSec must be at least 1; burst below 1 is 1.
func NewBuckets(perSec, burst, slots int) *Buckets {
	per := 1
	for per*bucketShards < slots {
		per <<= 1
	}
	b := &Buckets{perSec: int64(max(perSec, 1)), burst: int64(max(burst, 1)) * unit, mask: uint64(per - 1)}
	for i := range b.shards {
		b.shards[i].slots = make([]bucket, per)
	}
	return b
}

// Slots is the table's capacity in keys.
func (b *Buckets) Slots() int { return len(b.shards) * len(b.shards[0].slots) }

// refill brings k's tokens up to now.
func (b *Buckets) refill(k *bucket, now int64) {
	if el := now - k.last; el > 0 {
		if el >= b.burst/b.perSec {
			k.tokens = b.burst
		} else {
			k.tokens = min(b.burst, k.tokens+el*b.perSec)
		}
	}
	k.last = now
}

// Take takes one token for key at now (UnixNano). When the bucket is empty
// it returns false and how long until a token is back.
func (b *Buckets) Take(key uint64, now int64) (ok bool, retryAfter time.Duration) {
	if key == 0 {
		key = 1
	}
	sh := &b.shards[key%bucketShards]
	h := key / bucketShards
	i1, i2 := h&b.mask, (h>>32^h*0x9e3779b97f4a7c15)&b.mask
	sh.mu.Lock()
	defer sh.mu.Unlock()
	s1, s2 := &sh.slots[i1], &sh.slots[i2]
	var k *bucket
	switch {
	case s1.key == key:
		k = s1
	case s2.key == key:
		k = s2
	default:
		b.refill(s1, now)
		b.refill(s2, now)
		switch {
		case s1.key == 0 || s1.tokens == b.burst:
			k = s1
		case s2.key == 0 || s2.tokens == b.burst:
			k = s2
		case s1.tokens >= s2.tokens:
			k = s1
		default:
			k = s2
		}
		if k.key == 0 || k.tokens == b.burst {
			*k = bucket{key: key, tokens: b.burst, last: now}
		}
	}
	b.refill(k, now)
	if k.tokens >= unit {
		k.tokens -= unit
		return true, 0
	}
	return false, time.Duration((unit - k.tokens + b.perSec - 1) / b.perSec)
}

// Charge takes n tokens from key's bucket (down to empty) without asking:
// a penalty for a client a connection guard just closed.
func (b *Buckets) Charge(key uint64, n int, now int64) {
	if key == 0 {
		key = 1
	}
	sh := &b.shards[key%bucketShards]
	h := key / bucketShards
	i1, i2 := h&b.mask, (h>>32^h*0x9e3779b97f4a7c15)&b.mask
	sh.mu.Lock()
	defer sh.mu.Unlock()
	for _, k := range []*bucket{&sh.slots[i1], &sh.slots[i2]} {
		if k.key == key {
			b.refill(k, now)
			k.tokens = max(0, k.tokens-int64(n)*unit)
			return
		}
	}
}

var seed = maphash.MakeSeed()

// KeyIP is the bucket key of a client address.
func KeyIP(ip netip.Addr) uint64 {
	a := ip.As16()
	return maphash.Bytes(seed, a[:])
}

// KeyBytes is the bucket key of a header value (or any other bytes).
func KeyBytes(b []byte) uint64 { return maphash.Bytes(seed, b) }
