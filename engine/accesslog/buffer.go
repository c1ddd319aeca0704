// SPDX-License-Identifier: GPL-3.0-only

package accesslog

import (
	"strconv"
	"sync/atomic"
	"time"
)

// Buffer is one event loop's share of the access log. Every method must be
// called from the loop that owns it (one goroutine); none takes a lock,
// blocks or, once the line scratch has grown to the longest line seen,
// allocates.
//
// A line is Begin, then any number of Str, Bytes, Int and Dur, then End.
// Keys are written as given: they must be JSON-safe constants (the field
// names of the gateway's log). Values are escaped.
type Buffer struct {
	l    *Log
	cur  *slab  // the slab the loop fills
	line []byte // the line being formatted; copied whole into cur by End

	t        time.Time
	sec      int64  // the second stamp was formatted for
	stamp    []byte // t's RFC 3339 form, reused within one second
	lastHand int64  // unix nanoseconds of the last hand-off

	// Shared with the writer: full holds a slab waiting to be written,
	// spare the empty slab the writer gave back. Two slabs per Buffer:
	// one is cur, the other is in full, in spare or with the writer.
	full  atomic.Pointer[slab]
	spare atomic.Pointer[slab]

	_ [64]byte // keeps the next loop's Buffer off this cache line
}

// Begin starts a line stamped with now (the loop's clock for this
// callback). A line begun and not ended is discarded by the next Begin.
func (b *Buffer) Begin(now time.Time) {
	b.t = now
	b.line = append(b.line[:0], `{"level":"info"`...)
}

// Str adds a string field.
func (b *Buffer) Str(key, val string) {
	b.line = appendValue(b.key(key), val)
}

// Bytes adds a string field from bytes (a request's method or target as
// the codec holds them); invalid UTF-8 becomes U+FFFD, control characters
// are escaped.
func (b *Buffer) Bytes(key string, val []byte) {
	b.line = appendValue(b.key(key), val)
}

// Int adds an integer field.
func (b *Buffer) Int(key string, v int64) {
	b.line = append(b.line, ',', '"')
	b.line = append(b.line, key...)
	b.line = strconv.AppendInt(append(b.line, '"', ':'), v, 10)
}

// Dur adds a duration field in milliseconds with up to nanosecond
// precision, as zerolog writes Dur by default (0.25 is 250µs).
func (b *Buffer) Dur(key string, d time.Duration) {
	b.line = append(b.line, ',', '"')
	b.line = append(b.line, key...)
	b.line = appendMillis(append(b.line, '"', ':'), d)
}

// key appends ,"key":" and returns the line.
func (b *Buffer) key(key string) []byte {
	b.line = append(b.line, ',', '"')
	b.line = append(b.line, key...)
	return append(b.line, '"', ':', '"')
}

// End finishes the line with its time and places it in the active slab,
// handing the slab to the writer when it is half full or FlushInterval
// has passed since the last hand-off. A line that finds no room is
// dropped and counted; End never waits.
func (b *Buffer) End() {
	if sec := b.t.Unix(); sec != b.sec || len(b.stamp) == 0 {
		b.sec = sec
		b.stamp = b.t.AppendFormat(b.stamp[:0], time.RFC3339)
	}
	b.line = append(b.line, `,"time":"`...)
	b.line = append(b.line, b.stamp...)
	b.line = append(b.line, '"', '}', '\n')
	b.place(b.t.UnixNano())
}

// Flush hands the active slab to the writer if it holds lines and
// FlushInterval has passed since the last hand-off. The loop calls it from
// its periodic timer, so that the lines of a quiet loop do not wait for
// the next request.
func (b *Buffer) Flush(now time.Time) {
	if n := now.UnixNano(); len(b.cur.buf) > 0 && n-b.lastHand >= b.l.interval {
		b.handoff(n)
	}
}

func (b *Buffer) place(now int64) {
	line := b.line
	if len(line) > b.l.slab {
		b.l.droppedLong.Inc()
		return
	}
	if len(b.cur.buf)+len(line) > b.l.slab && !b.handoff(now) {
		b.l.droppedFull.Inc()
		return
	}
	s := b.cur
	s.buf = append(s.buf, line...)
	s.lines++
	if len(s.buf) >= b.l.slab/2 || now-b.lastHand >= b.l.interval {
		b.handoff(now)
	}
}

// handoff gives the active slab to the writer and takes the spare one;
// false when the writer still holds the spare (it is behind).
func (b *Buffer) handoff(now int64) bool {
	if b.full.Load() != nil {
		return false
	}
	s := b.spare.Swap(nil)
	if s == nil {
		return false
	}
	b.full.Store(b.cur)
	b.cur = s
	b.lastHand = now
	b.l.signal()
	return true
}

// appendMillis writes d as decimal milliseconds, trailing zeros trimmed.
func appendMillis(dst []byte, d time.Duration) []byte {
	if d < 0 {
		dst = append(dst, '-')
		d = -d
	}
	dst = strconv.AppendInt(dst, int64(d/time.Millisecond), 10)
	frac := int64(d % time.Millisecond)
	if frac == 0 {
		return dst
	}
	var digits [6]byte
	for i := 5; i >= 0; i-- {
		digits[i] = byte('0' + frac%10)
		frac /= 10
	}
	n := 6
	for digits[n-1] == '0' {
		n--
	}
	dst = append(dst, '.')
	return append(dst, digits[:n]...)
}
