// SPDX-License-Identifier: GPL-3.0-only

// Package guards is the DoS-mitigation catalog: one guard per attack, each
// with its limit (a config key), its counter and its test. README.md is the
// catalog. The sessions (engine) and the stages call the guards; the attack
// policy lives here.
//
// The shared contract is small: a typed Name (a stable token that becomes
// the guard label of expressgateway_guard_tripped_total), a Scope (did the
// guard refuse one stream or request, or the whole connection, as x/net's
// StreamError and ConnectionError), and one Recorder.Hit that both counts
// and logs, the log rate limited so that an attack cannot flood it.
package guards

import (
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/rs/zerolog"
)

// Name is a guard's stable token: a metric label and a log field.
type Name string

// Scope says what a tripped guard refused.
type Scope uint8

const (
	// Stream: one request or stream was refused or cut; the connection and
	// its other streams go on.
	Stream Scope = iota
	// Connection: the whole connection was refused or closed (HTTP/2:
	// GOAWAY, then close).
	Connection
)

func (s Scope) String() string {
	if s == Connection {
		return "connection"
	}
	return "stream"
}

// Family is the metric every guard counts in.
const Family = "expressgateway_guard_tripped_total"

// LogEvery is the least time between two log lines of one guard; the line
// that goes out says how many were suppressed since the last one.
const LogEvery = time.Second

// Recorder counts and logs guard hits. Safe for use from any goroutine.
type Recorder struct {
	set   *metrics.Set
	log   zerolog.Logger
	every time.Duration
	per   sync.Map // Name → *entry
}

type entry struct {
	c          *metrics.Counter
	next       atomic.Int64 // UnixNano before which lines are suppressed
	suppressed atomic.Int64
}

// NewRecorder returns a recorder that counts in set and logs to log.
func NewRecorder(set *metrics.Set, log zerolog.Logger) *Recorder {
	return &Recorder{set: set, log: log, every: LogEvery}
}

func (r *Recorder) entry(g Name) *entry {
	if v, ok := r.per.Load(g); ok {
		return v.(*entry)
	}
	e := &entry{c: r.set.GetOrCreateCounter(fmt.Sprintf(`%s{guard=%q}`, Family, g))}
	v, _ := r.per.LoadOrStore(g, e)
	return v.(*entry)
}

// Counter is the counter of guard g (created on first use), for a caller
// that registers the families it will export up front.
func (r *Recorder) Counter(g Name) *metrics.Counter { return r.entry(g).c }

// Hit records that guard g tripped for client on listener: it counts, and
// it logs a warning unless g already logged within LogEvery.
func (r *Recorder) Hit(g Name, scope Scope, listener string, client netip.Addr) {
	e := r.entry(g)
	e.c.Inc()
	ok, suppressed := e.pass(time.Now().UnixNano(), r.every)
	if !ok {
		return
	}
	ev := r.log.Warn().Str("guard", string(g)).Str("scope", scope.String())
	if listener != "" {
		ev = ev.Str("listener", listener)
	}
	if client.IsValid() {
		ev = ev.Str("client", client.String())
	}
	ev.Int64("suppressed", suppressed).Msg("limit hit")
}

// pass reports whether a line may be written now and how many were
// suppressed since the last one.
func (e *entry) pass(now int64, every time.Duration) (bool, int64) {
	next := e.next.Load()
	if now < next || !e.next.CompareAndSwap(next, now+int64(every)) {
		e.suppressed.Add(1)
		return false, 0
	}
	return true, e.suppressed.Swap(0)
}
