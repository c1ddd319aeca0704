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
	ctrlPerSec     int           // max_control_frames_per_second
	wuPerSec       int           // max_window_updates_per_second
	glitchMax      int           // glitch_threshold; 0: off
	stall          time.Duration // stall_timeout
}

// h2ConnGuards is one connection's guard state; owned by its loop.
type h2ConnGuards struct {
	resets    guards.ResetWindow
	newInRead int         // streams opened by the current read
	tripped   guards.Name // a connection guard tripped: GOAWAY sent, closing
	seen      h2.Stats    // the codec's counters at the last check
	ctrl, wu  guards.Window
	glitches  int
	outLast   int    // gnet outbound bytes at the last sweep
	outStall  int64  // UnixNano since when the socket took nothing; 0: it did
	winStall  int64  // UnixNano since when DATA waits behind a shut connection window and none went out; 0: not so
	dataSeen  uint64 // DATA frames sent, at the last stall check
	wuCredit  int    // WINDOW_UPDATEs the DATA sent so far earned the client
	hbSince   int64  // UnixNano since when a header block is open; 0: none
}

// admitStream judges a new stream before it becomes an exchange. It
// refuses the stream (RST_STREAM REFUSED_STREAM) once one read opened
// max_streams_per_read (nginx's rule), and while the connection holds
// max_concurrent_streams of its own streams, reset ones whose request is
// upstream included. A refusal counts as a premature reset and a glitch.
func (sc *h2Conn) admitStream(id uint32) bool {
	g := &sc.g
	if g.tripped != "" {
		_ = sc.codec.WriteRST(id, h2.ErrCodeRefusedStream)
		return false
	}
	g.newInRead++
	refuse := guards.Name("")
	switch {
	case g.newInRead > sc.l.h2Guards.streamsPerRead:
		refuse = guards.StreamsPerRead
	case len(sc.streams) >= sc.l.h2Guards.maxStreams:
		refuse = guards.StreamsBusy
	default:
		return true
	}
	_ = sc.codec.WriteRST(id, h2.ErrCodeRefusedStream)
	sc.lp.e.m.H2Reset("sent", h2.ErrCodeRefusedStream.String()).Inc()
	sc.lp.e.guards.Hit(refuse, guards.Stream, sc.l.cfg.Name, sc.clientIP)
	sc.glitch(guards.GlitchRefusedStream)
	sc.streamEnded(true)
	return false
}

// streamEnded records how a stream ended in the premature-reset window and
// trips the Rapid Reset guard when most recent streams were reset young.
func (sc *h2Conn) streamEnded(premature bool) {
	if premature {
		sc.glitch(guards.GlitchPrematureRst)
	}
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
	// A gRPC call or a WebSocket is cancelled upstream at once: the
	// client's reset is its protocol's signal, not an attack shape.
	return s.upReady && s.lg.reqBodyDone && !s.started && !s.lg.grpc && !s.lg.ws
}

func newH2GuardLimits(hc *conf.HTTP2) h2GuardLimits {
	g := h2GuardLimits{
		resetStreams:   hc.PrematureResetStreams,
		resetLifetime:  hc.PrematureResetLifetime.Std(),
		streamsPerRead: hc.MaxStreamsPerRead,
		maxStreams:     hc.MaxConcurrentStreams,
		ctrlPerSec:     hc.MaxControlFramesPerSecond,
		wuPerSec:       hc.MaxWindowUpdatesPerSecond,
		glitchMax:      hc.GlitchThreshold,
		stall:          hc.StallTimeout.Std(),
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

// glitch adds n to the connection's glitch score and ends the connection
// at glitch_threshold.
func (sc *h2Conn) glitch(n int) {
	sc.g.glitches += n
	if m := sc.l.h2Guards.glitchMax; m > 0 && sc.g.glitches >= m {
		sc.trip(guards.Glitches)
	}
}

// checkFloods runs after each read: the control frames and WINDOW_UPDATEs
// the client sent count in one-second windows, empty and unknown frames in
// the glitch score.
func (sc *h2Conn) checkFloods() {
	st := sc.codec.Stats()
	old := sc.g.seen
	sc.g.seen = st
	empty := int(st.EmptyDataFrames - old.EmptyDataFrames)
	unknown := int(st.UnknownFrames - old.UnknownFrames)
	ctrl := int(st.PingsReceived-old.PingsReceived) + int(st.SettingsReceived-old.SettingsReceived) +
		int(st.PriorityFrames-old.PriorityFrames) + int(st.ResetsReceived-old.ResetsReceived) + empty + unknown
	now := sc.lp.nowNano()
	lim := &sc.l.h2Guards
	if ctrl > 0 && sc.g.ctrl.Add(ctrl, now, lim.ctrlPerSec) {
		sc.trip(guards.ControlFloodRate)
	}
	// A client credits what it read: each DATA frame sent earns it a
	// stream and a connection WINDOW_UPDATE, and so does each 4 KiB of
	// DATA (Go's client sends one per 4 KiB read; the codec fills frames
	// up to the maximum size), so only updates beyond those count against
	// the rate (Envoy judges them against the DATA it sends, too).
	earnedBy := st.DataFramesSent - old.DataFramesSent + st.DataBytesSent/4096 - old.DataBytesSent/4096
	sc.g.wuCredit = min(sc.g.wuCredit+2*int(earnedBy), 1<<20)
	wu := int(st.WindowUpdates - old.WindowUpdates)
	earned := min(wu, sc.g.wuCredit)
	sc.g.wuCredit -= earned
	if wu -= earned; wu > 0 && sc.g.wu.Add(wu, now, lim.wuPerSec) {
		sc.trip(guards.WindowUpdateFlood)
	}
	if n := empty*guards.GlitchEmptyFrame + unknown*guards.GlitchUnknownFrame; n > 0 {
		sc.glitch(n)
	}
	switch {
	case !sc.codec.HeaderBlockPending():
		sc.g.hbSince = 0
	case sc.g.hbSince == 0:
		sc.g.hbSince = now
	}
}

// checkSlow runs on the sweep: the HTTP/2 forms of slow-loris (a header
// block left open past header_read ends the connection) and slow-POST (a
// stream's request body below body_min_rate after its grace, or paused
// past body_idle, gets 408 and a reset). It reports whether the
// connection was closed.
func (sc *h2Conn) checkSlow(now int64) bool {
	l := sc.l
	if sc.g.hbSince != 0 && now-sc.g.hbSince > int64(l.headerRead) {
		sc.trip(guards.H2SlowHeaders)
		sc.connError(sc.trippedErr())
		return true
	}
	rate := guards.MinRate{PerSecond: l.minRate, Grace: l.bodyGrace}
	for _, s := range sc.streams {
		if s.finished || s.bodyEnd || s.lg.reqBodyDone || s.bodyAt == 0 || s.lg.ws || s.lg.grpc {
			continue // tunnels and gRPC streams: websocket_idle, the call's deadline
		}
		if now-s.bodyAt > int64(l.bodyIdle) || rate.TooSlow(s.bodyBytes, s.opened, now) {
			sc.lp.e.guards.Hit(guards.H2SlowBody, guards.Stream, l.cfg.Name, sc.clientIP)
			s.x.Status, s.x.Reason = 408, string(guards.H2SlowBody)
			s.respondLocal(&s.x)
		}
	}
	return false
}

// codecVerdict records a connection error the codec raised against the
// client's frames: the flood and bomb verdicts (ENHANCE_YOUR_CALM) are
// guards, counted and penalised like the session's own.
func (sc *h2Conn) codecVerdict(ce *h2.ConnError) {
	if ce.Code != h2.ErrCodeEnhanceYourCalm || sc.g.tripped != "" {
		return
	}
	g := guards.H2(ce.Token)
	sc.g.tripped = g
	sc.lp.e.guards.Hit(g, guards.Connection, sc.l.cfg.Name, sc.clientIP)
	sc.l.slot.penalize(sc.clientIP)
}

// checkStalls runs on the sweep: a stream whose response DATA made no
// progress behind the client's window for stall_timeout is reset; a
// connection whose socket took nothing for as long while output waits is
// closed. It reports whether the connection was closed.
func (sc *h2Conn) checkStalls(now int64) bool {
	stall := int64(sc.l.h2Guards.stall)
	pending := false
	for _, s := range sc.streams {
		if len(s.pend) > 0 {
			pending = true
		}
		if s.stallSince != 0 && sc.codec.StreamSendWindow(s.id) > 0 {
			// Its own window is open: it waits for the connection's
			// window or its turn, which the connection checks below.
			s.stallSince = now
		}
		if s.stallSince != 0 && now-s.stallSince > stall && !s.lg.ws { // a tunnel: websocket_idle
			sc.lp.e.guards.Hit(guards.StreamStall, guards.Stream, sc.l.cfg.Name, sc.clientIP)
			_ = sc.codec.WriteRST(s.id, h2.ErrCodeCancel)
			sc.lp.e.m.H2Reset("sent", h2.ErrCodeCancel.String()).Inc()
			s.abortLeg(499, string(guards.StreamStall))
			s.free()
		}
	}
	// DATA waits behind a shut connection window and none went out since
	// the last check: the client gives no connection credit.
	sent := sc.codec.Stats().DataFramesSent
	progressed := sent != sc.g.dataSeen
	sc.g.dataSeen = sent
	switch {
	case !pending || progressed || sc.codec.ConnSendWindow() > 0:
		sc.g.winStall = 0
	case sc.g.winStall == 0:
		sc.g.winStall = now
	case now-sc.g.winStall > stall:
		sc.lp.e.guards.Hit(guards.ConnStall, guards.Connection, sc.l.cfg.Name, sc.clientIP)
		sc.abort()
		return true
	}
	ob := sc.c.OutboundBuffered()
	switch {
	case ob == 0 || ob < sc.g.outLast:
		sc.g.outStall = 0
	case sc.g.outStall == 0:
		sc.g.outStall = now
	case now-sc.g.outStall > stall:
		sc.lp.e.guards.Hit(guards.ConnStall, guards.Connection, sc.l.cfg.Name, sc.clientIP)
		sc.abort()
		return true
	}
	sc.g.outLast = ob
	return false
}

// stallMark notes response DATA progress on s: pending bytes start (or
// restart) the stall clock, an empty pend stops it.
func (s *h2Stream) stallMark() {
	if len(s.pend) == 0 {
		s.stallSince = 0
	} else {
		s.stallSince = s.sc.lp.nowNano()
	}
}
