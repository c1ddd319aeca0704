// SPDX-License-Identifier: GPL-3.0-only

package engine

import (
	"bytes"
	"net/netip"
	"strconv"

	"github.com/panjf2000/gnet/v2"

	"github.com/expressgateway/expressgateway/codecs/h1"
	"github.com/expressgateway/expressgateway/codecs/h2"
	"github.com/expressgateway/expressgateway/codecs/msg"
	"github.com/expressgateway/expressgateway/guards"
	"github.com/expressgateway/expressgateway/stages"
)

// h2Conn is the downstream session of one HTTP/2 connection (prior
// knowledge on a cleartext listener; ALPN "h2" will feed the same type). It
// owns the socket's bytes and the codec, turns streams into exchanges and
// applies backpressure the HTTP/2 way: request DATA is credited back
// (WINDOW_UPDATE) only once it went upstream, and response DATA is taken
// from an upstream only while the client's window and our buffers have
// room. Owned by its event loop (ARCHITECTURE.md).
type h2Conn struct {
	lp       *loop
	l        *listenerRT
	c        gnet.Conn
	ip       []byte
	clientIP netip.Addr
	identity []byte // the verified TLS client identity (leg.identity)
	peer     netip.AddrPort
	local    netip.AddrPort

	codec     *h2.Conn
	streams   map[uint32]*h2Stream
	requests  int
	idleSince int64
	shutdown  bool // graceful GOAWAY sent
	closed    bool
	feeding   bool
	dirty     bool // queued in lp.h2dirty for the end of the round
	// batch are the streams whose small response DATA chunks wait in pend
	// for the end of the round (h2Stream.batched), to leave as one frame.
	batch    []*h2Stream
	prefaced bool // the client preface was consumed
	lastErr  *h2.ConnError
	g        h2ConnGuards
	deferred []uint32 // streams opened by the current read, submitted after it
}

// h2Stream is one request of an HTTP/2 connection: its exchange, its leg
// and the buffers between the two sides, each bounded.
type h2Stream struct {
	sc *h2Conn
	id uint32
	x  stages.Exchange
	lg leg

	req   msg.Request
	arena []byte      // the copied head: names, values, pseudo-headers
	norm  []byte      // normalised path and authority
	hdrs  []msg.Field // req.Fields backing store
	tfs   []msg.Field // request trailers
	perr  msg.Error
	lfs   []msg.Field // a local response's fields
	numb  [20]byte

	body     []byte // request DATA received before the upstream was ready
	bodyEnd  bool
	upReady  bool
	held     int // request DATA sent upstream but not yet credited to the client
	pend     []byte
	pendEnd  bool
	pendTrl  []msg.Field
	pendTrlB []byte
	started  bool // the response head went out
	finished bool // the leg is done; the stream lives on while pend drains
	pump     *upPump
	tun      *h2Tunnel // a WebSocket tunnel to an HTTP/1.1 upstream (h2_tunnel.go)
	opened   int64     // UnixNano (guards: premature resets)
	ended    bool      // counted in the premature-reset window
	reset    bool      // reset by the client while its request is upstream
	// stallSince is when pending response DATA last made progress; 0:
	// none pending (guards: zero-window stall).
	stallSince int64
	// batched: pend holds the response DATA of this round, not DATA the
	// windows refused; it goes out at the end of the round (sc.batch).
	batched   bool
	bodyBytes int64 // request DATA received (guards: slow body)
	bodyAt    int64 // UnixNano of the last request DATA; 0: no body expected
	// headHeld: a GET-like head without END_STREAM waits for its first
	// DATA or the stream's end before it is submitted (holdsHead).
	headHeld bool
}

// Bounds of what one stream holds on the loop. Request DATA is bounded by
// the stream window the codec enforces; response DATA that the client's
// window does not take yet is bounded here, after which the upstream stops
// being read (upPump) and its TCP window pushes back.
const (
	h2StreamPendMax = 128 << 10
	h2ConnOutMax    = 1 << 20 // gnet outbound bytes before DATA waits
	h2UpHeldMax     = 1 << 20 // upstream outbound bytes before credit waits
)

var (
	methodGET      = []byte("GET")
	nameCL         = []byte("content-length")
	nameCT         = []byte("content-type")
	nameRetryAfter = []byte("retry-after")
	valueTextPlain = []byte("text/plain; charset=utf-8")
	valueOne       = []byte("1")
	schemeHTTP     = []byte("http")
	schemeHTTPS    = []byte("https")
)

// looksLikeH2 reports whether b starts (or could still start) the HTTP/2
// client preface, and whether it is complete enough to decide.
func looksLikeH2(b []byte) (isH2, decided bool) {
	n := min(len(b), len(h2.ClientPreface))
	if !bytes.Equal(b[:n], []byte(h2.ClientPreface)[:n]) {
		return false, true
	}
	return true, n == len(h2.ClientPreface)
}

// upgradeToH2 turns a fresh HTTP/1 connection actor whose first bytes are
// the HTTP/2 preface into an HTTP/2 session; the admission slots move with
// it.
func (cc *clientConn) upgradeToH2() {
	lp := cc.lp
	delete(lp.clients, cc)
	sc := &h2Conn{lp: lp, l: cc.l, c: cc.c, ip: cc.ip, clientIP: cc.clientIP, identity: cc.identity, peer: cc.peer, local: cc.local,
		streams: map[uint32]*h2Stream{}, idleSince: lp.nowNano()}
	sc.codec = h2.NewConn(h2.RoleServer, cc.l.h2Limits, sc, lp.now())
	cc.state = csClosed
	cc.c = nil
	sc.c.SetContext(sc)
	lp.h2conns[sc] = struct{}{}
	lp.e.m.H2Connections.Add(1)
	sc.onTraffic()
}

// onTraffic feeds the client's bytes to the codec.
func (sc *h2Conn) onTraffic() {
	if sc.closed {
		_, _ = sc.c.Discard(-1)
		return
	}
	buf, _ := sc.c.Peek(-1)
	sc.feeding = true
	sc.g.newInRead = 0
	n, err := sc.codec.Feed(buf, sc.lp.now())
	sc.feeding = false
	if err == nil {
		sc.checkFloods()
		err = sc.trippedErr()
	}
	if err == nil {
		sc.submitDeferred()
	} else {
		sc.deferred = sc.deferred[:0]
	}
	if n > 0 {
		frames := buf[:n]
		if !sc.prefaced {
			sc.prefaced = true
			frames = frames[min(len(frames), len(h2.ClientPreface)):]
		}
		sc.lp.e.m.h2CountFrames(frames, false)
		_, _ = sc.c.Discard(n)
	}
	if err != nil {
		sc.connError(err)
		return
	}
	sc.pushAll()
	sc.flush()
}

// connError: the codec queued a GOAWAY; every stream ends, the connection
// closes once the GOAWAY is out.
func (sc *h2Conn) connError(err error) {
	tok := "connection_error"
	if ce, ok := err.(*h2.ConnError); ok {
		tok = ce.Token
		sc.lastErr = ce
		sc.codecVerdict(ce)
	}
	sc.lp.e.m.H2GoAway("sent", tok).Inc()
	sc.lp.e.log.Debug().Str("listener", sc.l.cfg.Name).Str("client", sc.clientIP.String()).Str("reason", tok).Msg("http2 connection error")
	sc.flush()
	sc.abortStreams()
	sc.closeConn()
}

// flush schedules the codec's output for the socket: it goes out once per
// round of the event loop (lp.flushH2), so that the responses of many
// streams that complete in one round share one write, as the upstream
// events of a round arrive one callback at a time.
func (sc *h2Conn) flush() {
	if sc.c == nil || sc.dirty || len(sc.codec.Output()) == 0 {
		return
	}
	sc.dirty = true
	sc.lp.h2dirty = append(sc.lp.h2dirty, sc)
	sc.lp.scheduleH2Flush()
}

// flushRound is flush for a stream that has DATA in sc.batch and maybe
// no output yet.
func (sc *h2Conn) flushRound() {
	if sc.c == nil || sc.dirty {
		return
	}
	sc.dirty = true
	sc.lp.h2dirty = append(sc.lp.h2dirty, sc)
	sc.lp.scheduleH2Flush()
}

// pushBatch writes the round's batched response DATA, each stream's in
// one go; what the windows refuse stays pending as any other refused DATA.
func (sc *h2Conn) pushBatch() {
	for i := 0; i < len(sc.batch); i++ {
		s := sc.batch[i]
		sc.batch[i] = nil
		if !s.batched || sc.streams[s.id] != s {
			continue // freed (and maybe reused) since
		}
		s.batched = false
		s.push()
		if sc.streams[s.id] != s {
			continue // push ended it
		}
		switch {
		case len(s.pend) > 0 && s.stallSince == 0:
			s.stallSince = sc.lp.nowNano()
			sc.lp.e.m.H2FlowStall("response").Inc()
		case len(s.pend) == 0 && !s.pendEnd && s.finished:
			s.free() // as exchangeDone would have, had pend been empty then
		}
	}
	sc.batch = sc.batch[:0]
}

// flushNow moves the codec's output to the socket at once.
func (sc *h2Conn) outConn() gnet.Conn { return sc.c }

func (sc *h2Conn) flushNow() {
	if sc.c == nil || sc.closed {
		sc.dirty = false
		for _, s := range sc.batch {
			if sc.streams[s.id] == s {
				s.batched = false
			}
		}
		clear(sc.batch)
		sc.batch = sc.batch[:0]
		return // closeConn wrote what there was before it closed
	}
	sc.pushBatch() // still dirty: what it writes goes out below
	sc.dirty = false
	if sc.c == nil || sc.closed {
		return // a push ended the connection
	}
	if out := sc.codec.Output(); len(out) > 0 {
		sc.lp.e.m.h2CountFrames(out, true)
		sc.lp.queue(sc.c, out)
		sc.codec.Advance(len(out))
	}
}

// outRoom reports whether the socket may take more DATA now (what the
// codec holds is bounded by its own output limit).
func (sc *h2Conn) outRoom() bool {
	sc.lp.flushOut()
	return sc.c.OutboundBuffered() < h2ConnOutMax
}

// pushAll gives every stream with pending response DATA a chance (windows
// may have opened), credits held request DATA whose upstream drained, and
// resumes paused upstreams that have room again.
func (sc *h2Conn) pushAll() {
	for _, s := range sc.streams {
		if len(s.pend) > 0 || s.pendEnd {
			s.push()
		}
		if s.held > 0 {
			s.creditHeld()
		}
		if s.pump != nil && len(s.pend) < h2StreamPendMax/2 {
			s.pump.resume()
		}
		if s.tun != nil {
			s.tun.resume()
		}
		if s.lg.upHeld > 0 {
			s.lg.creditUp()
		}
	}
}

// closeConn closes the connection after what is queued has been written.
func (sc *h2Conn) closeConn() {
	if sc.closed {
		return
	}
	sc.flushNow()
	sc.closed = true
	sc.lp.flushOut()
	_ = sc.c.Close()
}

// abortStreams ends every stream: legs are dropped and accounted.
func (sc *h2Conn) abortStreams() {
	for _, s := range sc.streams {
		s.abortLeg(499, "client_closed")
	}
}

// onClose runs when gnet closed the connection.
func (sc *h2Conn) onClose() {
	sc.closed = true
	sc.abortStreams()
	delete(sc.lp.h2conns, sc)
	sc.lp.e.m.H2Connections.Add(-1)
	sc.l.limiter.Release(sc.clientIP)
	sc.lp.e.global.Release(sc.clientIP)
	sc.l.active.Add(-1)
}

// abort closes the connection now (panic containment).
func (sc *h2Conn) abort() {
	sc.abortStreams()
	if !sc.closed {
		sc.closed = true
		_ = sc.c.Close()
	}
}

// onTimer: idle connections close, a graceful shutdown finishes once no
// stream is left, overdue SETTINGS ACKs end the connection, stream legs
// keep their own deadlines.
func (sc *h2Conn) onTimer(now int64) {
	if sc.closed {
		return
	}
	for _, s := range sc.streams {
		if s.tun != nil {
			s.tun.onTimer(now)
			continue
		}
		if !s.finished && !s.lg.respPumping && (s.lg.up != nil || s.lg.muxed()) {
			s.lg.onTimer(now)
		}
	}
	if sc.checkStalls(now) || sc.checkSlow(now) {
		return
	}
	if sc.codec.SettingsAckOverdue(sc.lp.now(), sc.l.h2SettingsTimeout) {
		_ = sc.codec.WriteGoAway(h2.ErrCodeSettingsTimeout, nil)
		sc.connError(&h2.ConnError{Code: h2.ErrCodeSettingsTimeout, Token: "settings_timeout"})
		return
	}
	if (sc.draining() || sc.reachedMaxRequests()) && !sc.shutdown {
		sc.shutdown = true
		_ = sc.codec.Shutdown()
	}
	if len(sc.streams) == 0 {
		if sc.shutdown && sc.codec.ShutdownDone() {
			sc.closeConn()
			return
		}
		if now-sc.idleSince > int64(sc.l.idleKeepalive) {
			if !sc.codec.GoAwaySent() {
				_ = sc.codec.WriteGoAway(h2.ErrCodeNo, nil)
			}
			sc.closeConn()
			return
		}
	}
	sc.pushAll()
	sc.flush()
}

func (sc *h2Conn) reachedMaxRequests() bool {
	max := sc.l.cfg.MaxRequestsPerConnection
	return max > 0 && sc.requests >= max
}

// --- h2.Handler: runs inside Feed ---

// OnHeaders implements h2.Handler.
func (sc *h2Conn) OnHeaders(id uint32, h *h2.Head, endStream bool) {
	if h.Kind == h2.KindTrailers {
		if s := sc.streams[id]; s != nil {
			s.onTrailers(h)
		}
		return
	}
	if !sc.admitStream(id) {
		return
	}
	sc.requests++
	s := sc.newStream(id)
	if !endStream {
		s.bodyAt = s.opened // a body is due: the slow-body clock runs
	}
	s.begin(h, endStream)
}

// OnData implements h2.Handler.
func (sc *h2Conn) OnData(id uint32, data []byte, endStream bool) {
	s := sc.streams[id]
	if s == nil || s.finished {
		sc.codec.Consumed(id, len(data)) // nobody wants it: credit at once
		return
	}
	s.onData(data, endStream)
}

// OnReset implements h2.Handler: the client cancelled the stream.
func (sc *h2Conn) OnReset(id uint32, code h2.ErrCode) {
	sc.lp.e.m.H2Reset("received", code.String()).Inc()
	if s := sc.streams[id]; s != nil {
		s.resetEnded()
		if s.lg.grpc {
			s.lg.grpcStatus = grpcCancelled
		}
		if s.keepsSlot() {
			s.reset = true
			return
		}
		s.abortLeg(499, "client_reset")
		s.free()
	}
}

// OnStreamError implements h2.Handler: the codec reset a stream for a
// malformed frame or head; nothing of it reaches an upstream.
func (sc *h2Conn) OnStreamError(err *h2.StreamError) {
	sc.lp.e.m.H2Reset("sent", err.Code.String()).Inc()
	sc.lp.e.guards.Hit(guards.H2(err.Token), guards.Stream, sc.l.cfg.Name, sc.clientIP)
	if s := sc.streams[err.StreamID]; s != nil {
		s.resetEnded()
		s.abortLeg(400, "h2_"+err.Token)
		s.free()
	} else if err.Code != h2.ErrCodeRefusedStream {
		sc.streamEnded(true) // refused before it was a stream: MadeYouReset
	}
	if err.Code != h2.ErrCodeRefusedStream {
		sc.glitch(guards.GlitchStreamError)
	}
}

// OnGoAway implements h2.Handler: a client's GOAWAY; our streams are all
// server-side, so nothing to retry.
func (sc *h2Conn) OnGoAway(_ uint32, code h2.ErrCode, _ []byte, _ []uint32) {
	sc.lp.e.m.H2GoAway("received", code.String()).Inc()
}

// OnWindowUpdate implements h2.Handler.
func (sc *h2Conn) OnWindowUpdate(uint32) {}

// OnSettings implements h2.Handler.
func (sc *h2Conn) OnSettings(h2.Settings) {}

// OnPing implements h2.Handler.
func (sc *h2Conn) OnPing([8]byte, bool) {}

var _ h2.Handler = (*h2Conn)(nil)

// --- streams ---

func (sc *h2Conn) newStream(id uint32) *h2Stream {
	sc.refresh() // a new stream uses the listener's current view (reload)
	s := sc.lp.getH2Stream()
	s.sc, s.id = sc, id
	s.x.Reset()
	s.x.Req = &s.req
	s.x.Owner = s
	s.x.Forwarder = s
	s.x.Listener = sc.l.view
	s.x.ClientIP = sc.clientIP
	s.x.ConnRequests = sc.requests
	s.lg = leg{lp: sc.lp, l: sc.l, x: &s.x, ds: s, ip: sc.ip, identity: sc.identity, peer: sc.peer, local: sc.local, proto: "h2", streamID: id,
		upPend: keepBuf(s.lg.upPend), upPendTrl: s.lg.upPendTrl[:0], upPendTrlB: keepBuf(s.lg.upPendTrlB)}
	s.opened, s.ended, s.reset, s.stallSince = sc.lp.nowNano(), false, false, 0
	s.bodyBytes, s.bodyAt, s.headHeld = 0, 0, false
	s.lg.reset()
	sc.streams[id] = s
	sc.lp.e.m.H2Streams.Add(1)
	sc.lp.e.m.H2StreamsOpen.Inc()
	return s
}

// free forgets a finished stream and returns it to the loop's free list.
func (s *h2Stream) free() {
	sc := s.sc
	if sc.streams[s.id] != s {
		return
	}
	delete(sc.streams, s.id)
	if !s.ended {
		s.ended = true
		sc.streamEnded(false)
	}
	sc.lp.e.m.H2Streams.Add(-1)
	if len(sc.streams) == 0 {
		sc.idleSince = sc.lp.nowNano()
	}
	if s.pump != nil {
		s.pump.cancel()
		s.pump = nil
	}
	if s.tun != nil {
		s.tun.close("stream_closed")
	}
	s.batched = false // its entry in sc.batch is skipped
	sc.lp.putH2Stream(s)
}

// begin turns the validated head into the neutral request, normalised, and
// submits it to the pipeline.
func (s *h2Stream) begin(h *h2.Head, endStream bool) {
	a := s.arena[:0]
	cp := func(b []byte) []byte {
		if b == nil {
			return nil
		}
		start := len(a)
		a = append(a, b...)
		return a[start:len(a):len(a)]
	}
	// Fields first (the arena may grow; slices into it stay valid since
	// each points at the array it was copied into).
	fs := s.hdrs[:0]
	var host []byte
	cookies := 0
	for _, f := range h.Fields {
		switch {
		case string(f.Name) == "host":
			host = f.Value
			continue
		case string(f.Name) == "cookie":
			cookies++
			if cookies > 1 {
				continue // joined below (RFC 9113 section 8.2.3)
			}
		}
		fs = append(fs, msg.Field{Name: cp(f.Name), Value: cp(f.Value)})
	}
	if cookies > 1 {
		start := len(a)
		n := 0
		for _, f := range h.Fields {
			if string(f.Name) == "cookie" {
				if n > 0 {
					a = append(a, ';', ' ')
				}
				a = append(a, f.Value...)
				n++
			}
		}
		for i := range fs {
			if string(fs[i].Name) == "cookie" {
				fs[i].Value = a[start:len(a):len(a)]
				break
			}
		}
	}
	authority := h.Authority
	if authority == nil {
		authority = host
	}
	s.req = msg.Request{
		Method:        cp(h.Method),
		Scheme:        s.sc.l.scheme,
		Protocol:      cp(h.Protocol),
		Fields:        fs,
		ContentLength: h.ContentLength,
	}
	s.hdrs = fs[:0]
	switch {
	case endStream:
		s.req.Body = msg.BodyNone
		s.bodyEnd = true
		s.lg.reqBodyDone = true
	case h.ContentLength >= 0:
		s.req.Body = msg.BodyLength
	default:
		s.req.Body = msg.BodyStream
	}
	path := cp(h.Path)
	authority = cp(authority)
	s.arena = a[:0]
	s.lg.grpc = isGRPC(s.req.Field("content-type"))
	if h.HostConflict() {
		// RFC 9113 section 8.3.1: :authority and Host must agree for a
		// proxy that routes on either.
		s.perr = msg.Error{Status: 400, Token: "h2_host_mismatch", Msg: ":authority and host differ"}
		s.x.ParseErr = &s.perr
		s.submit()
		return
	}
	if h.IsConnect() && msg.EqualFold(h.Protocol, "websocket") {
		// RFC 8441: the neutral form of a WebSocket handshake is the same
		// for every protocol: GET with Protocol websocket (routes with
		// methods = ["GET"] match it as they match an HTTP/1.1 upgrade).
		// Any other extended CONNECT stays CONNECT and is refused.
		s.req.Method = methodGET
	}
	n := s.norm[:0]
	pathLen := 0
	if !h.IsConnect() || h.Protocol != nil {
		var err *msg.Error
		if n, pathLen, err = msg.NormalizeTarget(n, path, &s.lg.l.pathOpts); err != nil {
			s.x.ParseErr = err
			s.submit()
			return
		}
	}
	mid := len(n)
	n, hostLen, err := msg.NormalizeHost(n, authority)
	if err != nil {
		s.x.ParseErr = err
		s.submit()
		return
	}
	s.norm = n[:0]
	s.req.Path, s.req.PathLen = n[:mid:mid], pathLen
	s.req.Authority = n[mid:len(n):len(n)]
	s.req.Host = s.req.Authority[:hostLen]
	if !endStream && holdsHead(s.req.Method, s.req.Protocol, s.req.ContentLength) {
		s.headHeld = true // submitted by onData or onTrailers
		return
	}
	s.submit()
}

// submitHeld submits a held head (headHeld) now that its first DATA, its
// end or its trailers came; an empty end makes it a request without a
// body.
func (s *h2Stream) submitHeld(emptyEnd bool) {
	s.headHeld = false
	if emptyEnd {
		s.req.Body = msg.BodyNone
		s.bodyEnd = true
		s.lg.reqBodyDone = true
	}
	s.submit()
}

func (s *h2Stream) submit() {
	if s.sc.feeding {
		s.sc.deferred = append(s.sc.deferred, s.id) // see submitDeferred
		return
	}
	if !s.sc.lp.pipeline.SubmitAndDrain(&s.x) {
		s.sc.lp.e.guardHit(&s.x, guards.RingFull("guard"), guards.Stream)
		s.x.Status, s.x.Reason, s.x.RetryAfter = 503, "ring_full", true
		s.respondLocal(&s.x)
	}
}

// Forward implements stages.Forwarder.
func (s *h2Stream) Forward(x *stages.Exchange) {
	if h := s.sc.lp.e.hook; h != nil {
		h(x)
	}
	if !s.lg.admit() {
		x.Status, x.Reason, x.RetryAfter = 503, "queue_full", true
		s.respondLocal(x)
		return
	}
	s.lg.setDeadline()
	if s.req.Protocol != nil && string(s.req.Method) == "GET" {
		s.lg.ws = true
		if !x.Cluster.H2 {
			s.lg.wsKey = wsNewKey() // the HTTP/1.1 handshake is the gateway's
		}
	}
	s.lg.acquire()
}

// onData takes request DATA: straight upstream when the leg is connected,
// else held (within the stream window, which the codec enforces).
func (s *h2Stream) onData(data []byte, end bool) {
	s.bodyBytes += int64(len(data))
	s.bodyAt = s.sc.lp.nowNano()
	if s.headHeld {
		if end && len(data) == 0 {
			s.submitHeld(true)
			return
		}
		s.submitHeld(false)
	}
	if s.tun != nil {
		s.tun.fromClient(data, end)
		return
	}
	if s.upReady && s.lg.bodyWritable() && !(s.lg.ws && s.lg.h2u == nil) {
		s.lg.sendBody(data, end, nil)
		s.credit(len(data))
		return
	}
	s.body = append(s.body, data...)
	if end {
		s.bodyEnd = true
	}
}

// onTrailers: request trailers end the body.
func (s *h2Stream) onTrailers(h *h2.Head) {
	if s.headHeld {
		s.submitHeld(false)
	}
	b := s.pendTrlB[:0]
	fs := s.tfs[:0]
	for _, f := range h.Fields {
		start := len(b)
		b = append(b, f.Name...)
		mid := len(b)
		b = append(b, f.Value...)
		fs = append(fs, msg.Field{Name: b[start:mid:mid], Value: b[mid:len(b):len(b)]})
	}
	s.tfs = fs
	if s.upReady && s.lg.bodyWritable() {
		s.lg.sendBody(nil, true, fs)
		return
	}
	s.bodyEnd = true
}

// credit returns n request octets to the client once the upstream took
// them; while the upstream's outbound buffer is full it waits (the sweep
// and the next traffic retry), which is the request's backpressure.
func (s *h2Stream) credit(n int) {
	if s.lg.upBacklog() > h2UpHeldMax {
		s.held += n
		s.sc.lp.e.m.H2FlowStall("request").Inc()
		return
	}
	s.sc.codec.Consumed(s.id, n)
}

func (s *h2Stream) creditHeld() {
	if s.held == 0 || s.lg.upBacklog() > h2UpHeldMax {
		return
	}
	n := s.held
	s.held = 0
	s.sc.codec.Consumed(s.id, n)
}

// --- downstream (the leg's view of the stream) ---

// upstreamReady implements downstream: head, then what body arrived.
func (s *h2Stream) upstreamReady(lg *leg, u *upstream, head []byte) {
	s.upReady = true
	if u != nil {
		s.sc.lp.queue(u.c, head)
	} // else an HTTP/2 upstream: the leg opened the stream with the head
	if lg.ws && u != nil {
		// An Upgrade to an HTTP/1.1 upstream: what the client sends waits
		// on the stream (within its window) until the 101.
		lg.reqSentAt = s.sc.lp.nowNano()
		return
	}
	if lg.reqBodyDone {
		lg.reqSentAt = s.sc.lp.nowNano()
		return
	}
	if len(s.body) > 0 || s.bodyEnd {
		n := len(s.body)
		var trl []msg.Field
		if s.bodyEnd {
			trl = s.tfs
		}
		lg.sendBody(s.body, s.bodyEnd, trl)
		s.body = s.body[:0]
		s.credit(n)
	}
}

// respInterim implements downstream: 1xx heads are relayed (100 aside,
// which the leg already filters when the gateway sent its own).
func (s *h2Stream) respInterim(_ *leg, r *msg.Response) {
	sc := s.sc
	if s.reset {
		return
	}
	fs, arena, _ := msg.ForwardResponse(sc.lp.fwd.Fields[:0], sc.lp.fwd.Arena[:0], r.Fields, s.lg.respOpts())
	sc.lp.fwd.Fields, sc.lp.fwd.Arena = fs[:0], arena[:0]
	head := h2.Head{Status: r.Status, Fields: fs}
	_ = sc.codec.WriteHeaders(s.id, &head, false)
	sc.flush()
}

// respHead implements downstream.
func (s *h2Stream) respHead(_ *leg, r *msg.Response, _ bool) {
	sc := s.sc
	if s.reset {
		s.started = true // read and dropped: the client reset the stream
		return
	}
	opts := s.lg.respOpts()
	if ck := s.x.Pick.SetCookie; ck != "" {
		o := *opts
		o.SetCookie = ck
		opts = &o
	}
	fs, arena, _ := msg.ForwardResponse(sc.lp.fwd.Fields[:0], sc.lp.fwd.Arena[:0], r.Fields, opts)
	if r.Body == msg.BodyLength || (r.Body == msg.BodyNone && r.ContentLength >= 0 && r.Status != 204 && r.Status >= 200) {
		start := len(arena)
		arena = strconv.AppendInt(arena, r.ContentLength, 10)
		fs = append(fs, msg.Field{Name: nameCL, Value: arena[start:len(arena):len(arena)]})
	}
	sc.lp.fwd.Fields, sc.lp.fwd.Arena = fs[:0], arena[:0]
	s.started = true
	head := h2.Head{Status: r.Status, Fields: fs}
	end := r.Body == msg.BodyNone
	if err := sc.codec.WriteHeaders(s.id, &head, end); err != nil {
		s.lg.abortMid("h2_write_headers")
		return
	}
	sc.flush()
}

// h2BatchMax is the largest response DATA chunk that waits for the end of
// the round (h2Stream.batched); a larger one goes into a frame at once.
const h2BatchMax = 4 << 10

// respData implements downstream: DATA as far as the windows allow, the
// rest pending on the stream. Small chunks (a gRPC stream's messages, as
// an upstream read delivers them, one frame each and interleaved with
// other streams') wait in pend until the end of the round and leave
// together in one frame: HTTP/2 gives DATA frame boundaries no meaning,
// and the client pays for each frame (grpc-go about 1 µs).
func (s *h2Stream) respData(_ *leg, b []byte) {
	if s.reset {
		return
	}
	if s.batched || len(s.pend) == 0 && len(b) < h2BatchMax {
		s.pend = append(s.pend, b...)
		if !s.batched {
			s.batched = true
			s.sc.batch = append(s.sc.batch, s)
			s.sc.flushRound()
		}
		return
	}
	if len(s.pend) == 0 && s.sc.outRoom() {
		n, err := s.sc.codec.WriteData(s.id, b, false)
		if err != nil {
			s.lg.abortMid("h2_write_data")
			return
		}
		b = b[n:]
	}
	if len(b) > 0 {
		if len(s.pend) == 0 {
			s.stallSince = s.sc.lp.nowNano()
		}
		s.pend = append(s.pend, b...)
		s.sc.lp.e.m.H2FlowStall("response").Inc()
	}
	s.sc.flush()
}

// respEnd implements downstream.
func (s *h2Stream) respEnd(_ *leg, trailers []msg.Field) {
	if s.reset {
		return // exchangeDone frees the slot
	}
	s.pendEnd = true
	if len(trailers) > 0 {
		b := s.pendTrlB[:0]
		fs := s.pendTrl[:0]
		for _, f := range trailers {
			start := len(b)
			b = append(b, f.Name...)
			mid := len(b)
			b = append(b, f.Value...)
			fs = append(fs, msg.Field{Name: b[start:mid:mid], Value: b[mid:len(b):len(b)]})
		}
		s.pendTrl, s.pendTrlB = fs, b[:0]
	}
	s.push()
}

// push writes pending response DATA, then the end of the stream.
func (s *h2Stream) push() {
	sc := s.sc
	if len(s.pend) > 0 {
		if !sc.outRoom() {
			return
		}
		n, err := sc.codec.WriteData(s.id, s.pend, false)
		if err != nil {
			s.abortLeg(499, "h2_write_data")
			s.free()
			return
		}
		s.pend = s.pend[:copy(s.pend, s.pend[n:])]
		if n > 0 || len(s.pend) == 0 {
			s.stallMark()
		}
		if len(s.pend) > 0 {
			sc.flush()
			return
		}
	}
	if s.pendEnd {
		var err error
		if len(s.pendTrl) > 0 {
			err = sc.codec.WriteTrailers(s.id, s.pendTrl)
		} else {
			var n int
			n, err = sc.codec.WriteData(s.id, nil, true)
			_ = n
		}
		if err != nil {
			return // not writable now (output full): retried later
		}
		s.pendEnd = false
		s.pendTrl = s.pendTrl[:0]
		if !s.bodyEnd && !s.lg.reqBodyDone {
			// The response is complete before the request: ask the client
			// to stop sending (RFC 9113 section 8.1).
			_ = sc.codec.WriteRST(s.id, h2.ErrCodeNo)
		}
		sc.flush()
		if s.finished {
			s.free()
		}
	}
}

// respondLocal implements downstream (and the pipeline's local answers).
func (s *h2Stream) respondLocal(x *stages.Exchange) {
	if s.lg.grpc && !s.started {
		s.respondGRPC(x)
		return
	}
	sc := s.sc
	status := x.Status
	body := append(sc.lp.scratch[:0], h1.StatusText(status)...)
	body = append(body, '\n')
	sc.lp.scratch = body[:0]
	fs := s.lfs[:0]
	clv := strconv.AppendInt(s.numb[:0], int64(len(body)), 10)
	fs = append(fs, msg.Field{Name: nameCT, Value: valueTextPlain}, msg.Field{Name: nameCL, Value: clv})
	s.lfs = fs[:0]
	if x.RetryAfter {
		fs = append(fs, msg.Field{Name: nameRetryAfter, Value: valueOne})
	}
	head := h2.Head{Status: status, Fields: fs}
	if s.started {
		// A response already started (should not happen): reset instead.
		_ = sc.codec.WriteRST(s.id, h2.ErrCodeInternal)
	} else if err := sc.codec.WriteHeaders(s.id, &head, false); err == nil {
		_, _ = sc.codec.WriteData(s.id, body, true)
		if !s.bodyEnd {
			_ = sc.codec.WriteRST(s.id, h2.ErrCodeNo)
		}
	}
	sc.lp.e.m.LocalResponse(sc.l.cfg.Name, x.Reason).Inc()
	s.lg.dropUpstream()
	s.lg.endpointDone(status, false)
	s.lg.respStatus = status
	s.lg.record(status, x.Reason)
	// x.CloseConn is not honoured here: a malformed or refused stream
	// ends that stream only (RFC 9113 section 8.1.1); the connection and
	// its other streams go on. max_requests_per_connection ends the
	// connection with GOAWAY from the timer.
	sc.flush()
	s.finished = true
	s.free()
}

// respAbort implements downstream: the stream is reset (CANCEL when the
// upstream cancelled it, else INTERNAL_ERROR); the connection and its
// other streams go on.
func (s *h2Stream) respAbort(lg *leg) {
	sc := s.sc
	code := h2.ErrCodeInternal
	if lg.upCancel {
		code = h2.ErrCodeCancel
	}
	_ = sc.codec.WriteRST(s.id, code)
	sc.lp.e.m.H2Reset("sent", code.String()).Inc()
	sc.flush()
	s.finished = true
	s.free()
}

// exchangeDone implements downstream: the leg is finished; the stream
// lives on until its pending DATA is out.
func (s *h2Stream) exchangeDone(_ *leg) {
	s.finished = true
	if len(s.pend) == 0 && !s.pendEnd {
		s.free()
	}
}

// slowReader implements downstream: more response DATA is pending than a
// stream may hold, so the upstream leaves the loop and is read only as the
// client's window opens.
func (s *h2Stream) slowReader(lg *leg, u *upstream) bool {
	if len(s.pend) <= h2StreamPendMax {
		return false
	}
	if !lg.reqBodyDone {
		// The upstream still receives the request body on the loop: it
		// cannot leave yet. Past four times the bound the stream is cut.
		if len(s.pend) > 4*h2StreamPendMax {
			s.sc.lp.e.guardHit(&s.x, guards.H2StreamBufferOverflow, guards.Stream)
			lg.abortMid("h2_stream_buffer_overflow")
			return true
		}
		return false
	}
	s.pump = lg.pauseUpstream(u)
	return s.pump != nil
}

// roomFor implements downstream.
func (s *h2Stream) roomFor(*leg) bool { return len(s.pend) < h2StreamPendMax/2 }

// bodyDrained implements downstream: credit held back from the client
// goes out now.
func (s *h2Stream) bodyDrained(*leg) { s.creditHeld() }

// abortLeg ends the stream's leg, if still running, with status for the
// accounting.
func (s *h2Stream) abortLeg(status int, reason string) {
	if s.finished {
		return
	}
	s.finished = true
	if s.pump != nil {
		s.pump.cancel()
		s.pump = nil
	}
	if t := s.tun; t != nil {
		t.close(reason)
		s.lg.record(status, "websocket_"+reason)
		return
	}
	if s.lg.epBegun || s.lg.counted || s.lg.up != nil {
		s.lg.dropUpstream()
		s.lg.endpointDone(status, false)
		s.lg.record(status, reason)
	}
}

var (
	_ downstream       = (*h2Stream)(nil)
	_ stages.Forwarder = (*h2Stream)(nil)
)
