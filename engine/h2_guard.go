// SPDX-License-Identifier: GPL-3.0-only

package engine

import (
	"time"

	"github.com/expressgateway/expressgateway/codecs/h2"
	"github.com/expressgateway/expressgateway/conf"
	"github.com/expressgateway/expressgateway/guards"
)

// The HTTP/2 session's side of the attack guards (guards/rapid_reset.go):
// the per-connection windows and counters live on the connection, the
// policy in package guards.

// h2GuardLimits are a listener's HTTP/2 guard settings.
type h2GuardLimits struct {
	resetStreams   int           // premature_reset_streams
	resetLifetime  time.Duration // premature_reset_lifetime
	streamsPerRead int           // max_streams_per_read (resolved)
	maxStreams     int           // max_concurrent_streams
}

// h2ConnGuards is one connection's guard state; owned by its loop.
type h2ConnGuards struct {
	resets    guards.ResetWindow
	newInRead int         // streams opened by the current read
	tripped   guards.Name // a connection guard tripped: GOAWAY sent, closing
}

// admitStream judges a new stream before it becomes an exchange. It
// refuses the stream (RST_STREAM REFUSED_STREAM) while the connection
// holds max_concurrent_streams of its own streams, reset ones whose
// request is upstream included, and ends the connection when one read
// opens more than max_streams_per_read.
func (sc *h2Conn) admitStream(id uint32) bool {
	g := &sc.g
	if g.tripped != "" {
		_ = sc.codec.WriteRST(id, h2.ErrCodeRefusedStream)
		return false
	}
	g.newInRead++
	if g.newInRead > sc.l.h2Guards.streamsPerRead {
		_ = sc.codec.WriteRST(id, h2.ErrCodeRefusedStream)
		sc.trip(guards.StreamsPerRead)
		return false
	}
	if len(sc.streams) >= sc.l.h2Guards.maxStreams {
		_ = sc.codec.WriteRST(id, h2.ErrCodeRefusedStream)
		sc.lp.e.m.H2Reset("sent", h2.ErrCodeRefusedStream.String()).Inc()
		sc.lp.e.guards.Hit(guards.StreamsBusy, guards.Stream, sc.l.cfg.Name, sc.clientIP)
		sc.streamEnded(true)
		return false
	}
	return true
}

// streamEnded records how a stream ended in the premature-reset window and
// trips the Rapid Reset guard when most recent streams were reset young.
func (sc *h2Conn) streamEnded(premature bool) {
	if sc.g.resets.Record(premature, sc.l.h2Guards.resetStreams) && sc.g.tripped == "" {
		sc.trip(guards.RapidReset)
	}
}

// resetEnded records a stream reset by the client or by the gateway
// because of the client's frames (MadeYouReset).
func (s *h2Stream) resetEnded() {
	if s.ended {
		return
	}
	s.ended = true
	sc := s.sc
	sc.streamEnded(guards.Premature(s.opened, sc.lp.nowNano(), sc.l.h2Guards.resetLifetime))
}

// trip ends the connection for guard g: GOAWAY ENHANCE_YOUR_CALM now, and
// the codec reads no further frame; the close follows the read.
func (sc *h2Conn) trip(g guards.Name) {
	if sc.g.tripped != "" {
		return
	}
	sc.g.tripped = g
	sc.lp.e.guards.Hit(g, guards.Connection, sc.l.cfg.Name, sc.clientIP)
	sc.l.slot.penalize(sc.clientIP)
	_ = sc.codec.Abort(h2.ErrCodeEnhanceYourCalm, string(g))
}

// trippedErr is the connection error of a tripped guard, or nil.
func (sc *h2Conn) trippedErr() error {
	if sc.g.tripped == "" {
		return nil
	}
	return &h2.ConnError{Code: h2.ErrCodeEnhanceYourCalm, Token: string(sc.g.tripped)}
}

// keepsSlot reports whether a stream the client reset keeps its slot
// until its upstream leg has finished: its request is already upstream, so
// the reset frees nothing early (HAProxy's model). The response is read and
// dropped (the upstream connection stays reusable).
func (s *h2Stream) keepsSlot() bool {
	return s.upReady && s.lg.reqBodyDone && !s.started
}

func newH2GuardLimits(hc *conf.HTTP2) h2GuardLimits {
	g := h2GuardLimits{
		resetStreams:   hc.PrematureResetStreams,
		resetLifetime:  hc.PrematureResetLifetime.Std(),
		streamsPerRead: hc.MaxStreamsPerRead,
		maxStreams:     hc.MaxConcurrentStreams,
	}
	if g.streamsPerRead <= 0 {
		g.streamsPerRead = 2 * hc.MaxConcurrentStreams
	}
	return g
}

// submitDeferred submits the streams the last read opened, once the whole
// read is decoded: a stream that the same read also reset (Rapid Reset)
// never reaches the pipeline, so it costs no upstream request.
func (sc *h2Conn) submitDeferred() {
	for i := 0; i < len(sc.deferred); i++ { // submitting can defer no more: feeding is over
		if s := sc.streams[sc.deferred[i]]; s != nil && !s.finished {
			s.submit()
		}
	}
	sc.deferred = sc.deferred[:0]
}
