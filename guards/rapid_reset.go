// SPDX-License-Identifier: GPL-3.0-only

package guards

import "time"

// HTTP/2 Rapid Reset (CVE-2023-44487) and MadeYouReset (CVE-2025-8671): a
// client opens streams and has them reset at once, by its own RST_STREAM or
// by frames that make the gateway reset them, so that each costs the
// gateway (and its upstreams) a request while the client's concurrency
// never rises. Three defences:
//
//   - a stream whose request already went upstream keeps its slot against
//     max_concurrent_streams until the upstream answered (HAProxy's model:
//     a reset frees nothing early); StreamsBusy refuses streams beyond it;
//   - a premature-reset ratio (Envoy's): when more than half of the last
//     premature_reset_streams streams of a connection were reset within
//     premature_reset_lifetime of opening, the connection gets GOAWAY
//     ENHANCE_YOUR_CALM and is closed (RapidReset);
//   - at most max_streams_per_read new streams per read of the socket
//     (nginx: 2 × max_concurrent_streams); more are refused with
//     REFUSED_STREAM (StreamsPerRead), which counts against the ratio.
//
// Streams a read opens are submitted once the whole read is decoded, so a
// stream the same read resets never reaches an upstream; and the client's
// address is penalised (Penalty) when its connection is closed, so that it
// cannot buy a fresh window by reconnecting at once.
const (
	RapidReset     Name = "h2_rapid_reset"
	StreamsPerRead Name = "h2_streams_per_read"
	StreamsBusy    Name = "h2_streams_busy"
)

// Defaults of the HTTP/2 reset guards.
const (
	DefaultPrematureResetStreams  = 100
	DefaultPrematureResetLifetime = time.Second
	// MaxPrematureResetStreams is the largest window a ResetWindow holds.
	MaxPrematureResetStreams = 1024
)

// ResetWindow remembers, for the last streams of one connection, which ended
// in a premature reset. The zero value is ready; it is owned by the
// connection's goroutine.
type ResetWindow struct {
	bits  [MaxPrematureResetStreams / 64]uint64
	pos   int // the next slot
	n     int // slots in use
	count int // premature resets among them
}

// Record adds one ended stream to a window of size streams (1 to
// MaxPrematureResetStreams) and reports whether more than half of them
// ended in a premature reset.
func (w *ResetWindow) Record(premature bool, size int) bool {
	size = min(max(size, 1), MaxPrematureResetStreams)
	if w.pos >= size {
		w.pos = 0 // the window shrank (a reload)
	}
	word, bit := w.pos/64, uint64(1)<<(w.pos%64)
	if w.n == size {
		if w.bits[word]&bit != 0 {
			w.count--
		}
	} else {
		w.n++
	}
	if premature {
		w.bits[word] |= bit
		w.count++
	} else {
		w.bits[word] &^= bit
	}
	w.pos = (w.pos + 1) % size
	return 2*w.count > size
}

// Premature reports whether a stream opened at opened (UnixNano) and reset
// at now is a premature reset.
func Premature(opened, now int64, lifetime time.Duration) bool {
	return now-opened < int64(lifetime)
}
