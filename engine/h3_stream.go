// SPDX-License-Identifier: GPL-3.0-only

package engine

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/expressgateway/expressgateway/codecs/h1"
	"github.com/expressgateway/expressgateway/codecs/h3"
	"github.com/expressgateway/expressgateway/codecs/msg"
	"github.com/expressgateway/expressgateway/guards"
	"github.com/expressgateway/expressgateway/stages"
)

// Bounds of one HTTP/3 stream (see h3_front.go).
const (
	h3BodyInflightMax = 256 << 10 // request DATA handed to the loop, not yet taken upstream
	h3StreamPendMax   = 256 << 10 // response bytes waiting for the writer
	h3ReadChunk       = 16 << 10
	// h3DirectMax bounds what the loop hands quic-go of one response
	// without a writer goroutine (direct mode). TryWriteAll checks only
	// flow control: what it queues waits in quic-go, unsent, for as long
	// as the congestion window is shut (a client that never acknowledges
	// keeps it shut), and a hostile client can advertise any flow-control
	// window. A larger response goes to a writer goroutine, whose
	// blocking Write waits for the packets to leave, so the stream's
	// pending bytes and the upstream's pause (slowReader) bound it.
	h3DirectMax = 16 << 10
)

// h3Stream is one request of an HTTP/3 connection. The fields above the
// line are shared by its reader and writer goroutines and its loop (atomics
// and mu); the rest belong to the loop, like an h2Stream's.
type h3Stream struct {
	c   *h3Conn
	st  *quic.Stream
	nth int // the request's number on its connection
	m   *h3Metrics
	// refs counts the stream's goroutines (reader, writer): the stream is
	// open for the connection (GOAWAY waits for it) until both ended.
	refs atomic.Int32

	inflight atomic.Int64  // request DATA bytes on the loop not credited yet
	creditCh chan struct{} // wakes the reader when inflight drops
	wake     chan struct{} // wakes the writer; made with it (nil in direct mode: notify is a no-op)

	mu         sync.Mutex
	out        []byte      // encoded frames for the writer
	pending    int         // bytes in out and being written
	fin        bool        // the response is complete after out
	abort      bool        // reset the stream instead
	wantResume bool        // the loop waits for pending to drop
	wref       atomic.Bool // the writer's ref was released by the loop (direct mode)

	// --- loop only ---
	x             stages.Exchange
	lg            leg
	req           msg.Request
	head          h3.Head
	norm          []byte
	perr          msg.Error
	trl           []msg.Field
	body          []byte
	held          int
	pump          *upPump
	hasRequestEnd bool
	early         bool  // read from 0-RTT data: forwarded with Early-Data: 1
	lastBodyAt    int64 // when request DATA last arrived (body_idle)
	upReady       bool
	// direct: no writer goroutine (yet); the loop writes the response
	// with quic-go's non-blocking TryWriteAll (kick). A request whose
	// stream ended with its head starts so (the common GET); a writer
	// goroutine takes over when the client's credit is short or the
	// response passes h3DirectMax.
	direct      bool
	directBytes int // what direct mode handed quic-go so far
	started     bool
	finished    bool
	freed       bool
	gone        bool        // every goroutine of the stream ended (loop: onRefsDone or releaseWriter)
	fields      []msg.Field // the request's fields, reused
	block       []byte      // the head's encoded field section, reused
	posted      bool        // the reader handed the stream to the loop (reader, then refs)
	refsDone    func()      // s.onRefsDone, bound once
}

// h3Streams pools request streams with their buffers: a new h3Stream was
// a third of the bytes an HTTP/3 request allocated (bench h3, allocs
// profile), and the garbage collector's share of the h3 CPU is several
// times the HTTP/2 front's. A stream goes back only when nothing can
// reach it: its goroutines ended (refs) and everything they posted to the
// loop ran, and the loop freed it (recycle).
var h3Streams sync.Pool

// getH3Stream takes a pooled stream or makes one.
func getH3Stream() *h3Stream {
	if v := h3Streams.Get(); v != nil {
		return v.(*h3Stream)
	}
	s := &h3Stream{}
	s.bind()
	return s
}

// bind makes the stream's method value once (it would be a closure per
// use).
func (s *h3Stream) bind() {
	s.refsDone = s.onRefsDone
}

// onRefsDone runs on the loop after the stream's last goroutine ended and
// after everything it posted before that.
func (s *h3Stream) onRefsDone() {
	s.gone = true
	if s.freed {
		s.recycle()
	}
}

// recycle resets the stream, keeping its buffers unless they grew large,
// and pools it: on the loop in onRefsDone (a task of its own) or
// recycleH3 (the outermost frame of a callback or task), where nothing on
// the stack still uses the stream; or from the reader of a stream the
// loop never knew, as its last step.
func (s *h3Stream) recycle() {
	fields := s.fields[:0]
	if cap(fields) > 512 {
		fields = nil
	}
	clear(fields[:cap(fields)]) // no reference to the last client's head stays
	head := s.head
	head.Reuse()
	*s = h3Stream{head: head, fields: fields, norm: keepBuf(s.norm), block: keepBuf(s.block), out: keepBuf(s.out), refsDone: s.refsDone}
	h3Streams.Put(s)
}

// h3Readers pools the request and response streams' readers: a 16 KiB
// bufio.Reader per stream was the largest allocation of an HTTP/3 request
// (bench h3 profile: makeslice from bufio.NewReaderSize, 6% of the CPU,
// and the garbage it made).
var h3Readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, h3ReadChunk) }}

// getH3Reader takes a pooled reader of r.
func getH3Reader(r io.Reader) *bufio.Reader {
	br := h3Readers.Get().(*bufio.Reader)
	br.Reset(r)
	return br
}

// putH3Reader returns br once its goroutine is done with it.
func putH3Reader(br *bufio.Reader) {
	br.Reset(nil)
	h3Readers.Put(br)
}

// serveStream is a request stream's reader goroutine.
func (c *h3Conn) serveStream(st *quic.Stream, m *h3Metrics, nth int) {
	s := getH3Stream()
	s.c, s.st, s.m, s.nth = c, st, m, nth
	s.refs.Store(1)
	defer func() {
		if r := recover(); r != nil {
			c.f.e.m.Panics.Inc()
			c.f.e.log.Error().Interface("panic", r).Msg("panic in an HTTP/3 stream; it is reset")
			st.CancelRead(quic.StreamErrorCode(h3.ErrCodeInternal))
			st.CancelWrite(quic.StreamErrorCode(h3.ErrCodeInternal))
		}
		s.release()
	}()
	l := c.view()
	maxField := int(l.cfg.QUIC.MaxFieldSectionSize)
	br := getH3Reader(st)
	defer func() {
		if br != nil {
			putH3Reader(br)
		}
	}()
	reset := func(code h3.ErrCode, tok string) {
		m.streamError(tok).Inc()
		st.CancelRead(quic.StreamErrorCode(code))
		st.CancelWrite(quic.StreamErrorCode(code))
	}
	// The head, within timeouts.header_read (slow-loris guard).
	_ = st.SetReadDeadline(time.Now().Add(l.headerRead))
	var block []byte
	for {
		typ, n, err := readFrameHeader(br)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				c.f.e.guardHit(nil, guards.H3SlowHeaders, guards.Stream)
				reset(h3.ErrCodeRequestIncomplete, "header_timeout")
				return
			}
			reset(h3.ErrCodeRequestIncomplete, "incomplete_head")
			return
		}
		if typ == h3.FrameHeaders {
			if maxField > 0 && n > uint64(maxField) {
				c.f.e.guardHit(nil, guards.H3("field_section_too_large"), guards.Stream)
				s.localDirect(431, "h3_field_section_too_large")
				return
			}
			if uint64(cap(s.block)) < n {
				s.block = make([]byte, n)
			}
			block = s.block[:n]
			if _, err := io.ReadFull(br, block); err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) {
					c.f.e.guardHit(nil, guards.H3SlowHeaders, guards.Stream)
				}
				reset(h3.ErrCodeRequestIncomplete, "incomplete_head")
				return
			}
			break
		}
		if typ == h3.FrameData || typ == h3.FrameSettings || typ == h3.FrameGoAway || typ == h3.FrameMaxPushID || typ == h3.FrameCancelPush {
			reset(h3.ErrCodeFrameUnexpected, "frame_unexpected")
			return
		}
		if _, err := br.Discard(int(min(n, 1<<20))); err != nil || n > 1<<20 {
			reset(h3.ErrCodeExcessiveLoad, "unknown_frame_too_large")
			return
		}
	}
	if err := h3.DecodeFields(block, maxField, false, &s.head); err != nil {
		var he *h3.Error
		if errors.As(err, &he) && he.Code == h3.ErrCodeExcessiveLoad {
			c.f.e.guardHit(nil, guards.H3("field_section_too_large"), guards.Stream)
			s.localDirect(431, "h3_field_section_too_large")
			return
		}
		tok := "malformed"
		if he != nil {
			tok = he.Token
		}
		c.f.e.guardHit(nil, guards.H3(tok), guards.Stream)
		reset(h3.ErrCodeMessage, tok)
		return
	}
	// 0-RTT (RFC 8470): a request read before the handshake completed may
	// be a replay; only safe methods go on now, marked Early-Data: 1.
	if !handshakeDone(c.qc) {
		switch string(s.head.Method) {
		case "GET", "HEAD", "OPTIONS":
			s.early = true
			m.early("forwarded").Inc()
		default:
			t := time.NewTimer(l.cfg.TLS.HandshakeTimeout.Std())
			select {
			case <-c.qc.HandshakeComplete():
				t.Stop()
				m.early("waited").Inc()
			case <-t.C:
				m.early("too_early").Inc()
				s.localDirect(425, "too_early")
				return
			case <-c.qc.Context().Done():
				// The handshake never completed (a replayed flight, or a
				// client that went away): nothing was forwarded.
				t.Stop()
				m.early("too_early").Inc()
				return
			}
		}
	}
	// A request without a body usually ends with its HEADERS frame.
	_ = st.SetReadDeadline(time.Now().Add(streamEndPeek))
	_, perr := br.Peek(1)
	_ = st.SetReadDeadline(time.Time{})
	endNow := perr == io.EOF
	if errors.Is(perr, os.ErrDeadlineExceeded) && holdsHead(s.head.Method, s.head.Protocol, s.head.ContentLength) {
		// A GET (or another method that rarely has a body) without
		// content-length whose FIN is late, as a loaded client sends it:
		// wait for the FIN or the first body byte, up to body_idle, so
		// that the upstream is not sent a chunked body a strict server
		// refuses. Nothing has been forwarded yet.
		if l.bodyIdle > 0 {
			_ = st.SetReadDeadline(time.Now().Add(l.bodyIdle))
		}
		_, perr = br.Peek(1)
		_ = st.SetReadDeadline(time.Time{})
		endNow = perr == io.EOF
		if errors.Is(perr, os.ErrDeadlineExceeded) {
			c.f.e.guardHit(nil, guards.BodyIdle, guards.Stream)
			s.localDirect(408, "body_idle")
			return
		}
	}
	if perr != nil && !endNow && !errors.Is(perr, os.ErrDeadlineExceeded) {
		var ne net.Error
		if !errors.As(perr, &ne) || !ne.Timeout() {
			return // reset by the client
		}
	}
	s.refs.Add(1) // the writer's
	if endNow {
		// Nothing more to read: the loop writes the response itself (no
		// goroutine waits for it) and this one ends.
		putH3Reader(br)
		br = nil
		s.posted = true
		if !c.onLoop(func() { s.direct = true; s.begin(true) }) {
			s.release()
			reset(h3.ErrCodeInternal, "loop_gone")
		}
		return
	}
	// Written before the loop learns of s (begin), read there when the
	// body's credit returns.
	s.creditCh = make(chan struct{}, 1)
	s.startWriter()
	s.posted = true
	if !c.onLoop(func() { s.begin(false) }) {
		reset(h3.ErrCodeInternal, "loop_gone")
		return
	}
	// The body.
	var total int64
	for {
		typ, n, err := readFrameHeader(br)
		if err == io.EOF {
			if s.head.ContentLength >= 0 && total != s.head.ContentLength {
				m.streamError("content_length_mismatch").Inc()
				c.onLoop(func() { s.clientGone(400, "h3_content_length_mismatch") })
				return
			}
			c.onLoop(func() { s.onData(nil, true) })
			return
		}
		if err != nil {
			c.onLoop(func() { s.clientGone(499, "client_reset") })
			return
		}
		switch typ {
		case h3.FrameData:
			total += int64(n)
			if s.head.ContentLength >= 0 && total > s.head.ContentLength {
				m.streamError("content_length_mismatch").Inc()
				c.onLoop(func() { s.clientGone(400, "h3_content_length_mismatch") })
				st.CancelRead(quic.StreamErrorCode(h3.ErrCodeMessage))
				return
			}
			for n > 0 {
				for s.inflight.Load() >= h3BodyInflightMax {
					select {
					case <-s.creditCh:
					case <-st.Context().Done():
						return
					case <-time.After(time.Second):
					}
				}
				k := min(n, h3ReadChunk)
				buf := make([]byte, k)
				if _, err := io.ReadFull(br, buf); err != nil {
					c.onLoop(func() { s.clientGone(499, "client_reset") })
					return
				}
				n -= k
				s.inflight.Add(int64(k))
				c.onLoop(func() { s.onData(buf, false) })
			}
		case h3.FrameHeaders:
			if maxField > 0 && n > uint64(maxField) {
				reset(h3.ErrCodeExcessiveLoad, "trailers_too_large")
				c.onLoop(func() { s.clientGone(431, "h3_trailers_too_large") })
				return
			}
			blk := make([]byte, n)
			if _, err := io.ReadFull(br, blk); err != nil {
				c.onLoop(func() { s.clientGone(499, "client_reset") })
				return
			}
			var th h3.Head
			if err := h3.DecodeFields(blk, maxField, true, &th); err != nil {
				reset(h3.ErrCodeMessage, "bad_trailers")
				c.onLoop(func() { s.clientGone(400, "h3_bad_trailers") })
				return
			}
			c.onLoop(func() { s.onTrailers(th.Fields) })
			return
		case h3.FrameSettings, h3.FrameGoAway, h3.FrameMaxPushID, h3.FrameCancelPush:
			reset(h3.ErrCodeFrameUnexpected, "frame_unexpected")
			c.onLoop(func() { s.clientGone(400, "h3_frame_unexpected") })
			return
		default:
			if n > 1<<20 {
				reset(h3.ErrCodeExcessiveLoad, "unknown_frame_too_large")
				c.onLoop(func() { s.clientGone(400, "h3_unknown_frame_too_large") })
				return
			}
			if _, err := br.Discard(int(n)); err != nil {
				c.onLoop(func() { s.clientGone(499, "client_reset") })
				return
			}
		}
	}
}

var nameEarlyData = []byte("Early-Data")

// handshakeDone reports whether c's TLS handshake completed.
func handshakeDone(qc *quic.Conn) bool {
	select {
	case <-qc.HandshakeComplete():
		return true
	default:
		return false
	}
}

// release ends one of the stream's goroutines.
func (s *h3Stream) release() {
	if s.refs.Add(-1) == 0 {
		s.refsZero()
		if !s.posted {
			// The loop never knew it, and its reader is done with it.
			s.recycle()
			return
		}
		// Queued behind everything the goroutines posted; the loop
		// recycles the stream once it also freed it. (A loop that is
		// gone leaves the stream to the garbage collector.)
		s.c.onLoop(s.refsDone)
	}
}

// refsZero: the stream's goroutines all ended; it no longer counts as open
// on its connection.
func (s *h3Stream) refsZero() {
	s.c.active.Add(-1)
	s.m.streams.Add(-1)
}

// localDirect answers from the reader goroutine, before the loop knew of
// the stream (a head over the limit).
func (s *h3Stream) localDirect(status int, reason string) {
	body := h1.StatusText(status) + "\n"
	b := h3.AppendHeaders(nil, status, []msg.Field{{Name: nameCT, Value: valueTextPlain}, {Name: nameCL, Value: strconv.AppendInt(nil, int64(len(body)), 10)}})
	b = h3.AppendData(b, []byte(body))
	s.st.CancelRead(quic.StreamErrorCode(h3.ErrCodeNo))
	_, _ = s.st.Write(b)
	_ = s.st.Close()
	s.c.f.e.m.LocalResponse(s.c.f.slot.name, reason).Inc()
	s.c.view().noRoute.inc(status)
}

// writeLoop is the stream's writer goroutine: it writes what the loop
// encoded, blocking on the client's QUIC credit.
func (s *h3Stream) writeLoop() {
	defer s.release()
	var buf []byte
	ctx := s.st.Context()
	for {
		select {
		case <-s.wake:
		case <-ctx.Done():
			s.c.onLoop(func() { s.clientGone(499, "client_closed") })
			return
		}
		s.mu.Lock()
		buf, s.out = s.out, buf[:0]
		fin, abort := s.fin, s.abort
		s.mu.Unlock()
		if abort {
			s.st.CancelWrite(quic.StreamErrorCode(h3.ErrCodeInternal))
			return
		}
		if len(buf) > 0 {
			if _, err := s.st.Write(buf); err != nil {
				s.c.onLoop(func() { s.clientGone(499, "client_reset") })
				return
			}
			s.mu.Lock()
			s.pending -= len(buf)
			resume := s.wantResume && s.pending < h3StreamPendMax/2
			if resume {
				s.wantResume = false
			}
			more := len(s.out) > 0 || s.abort
			s.mu.Unlock()
			if resume {
				s.c.onLoop(s.resume)
			}
			if more {
				s.notify()
				continue
			}
		}
		if fin {
			s.mu.Lock()
			rest := len(s.out) > 0
			s.mu.Unlock()
			if rest {
				s.notify()
				continue
			}
			_ = s.st.Close()
			return
		}
	}
}

func (s *h3Stream) notify() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// emit queues encoded frames for the writer (loop).
func (s *h3Stream) emit(fn func(b []byte) []byte, fin bool) {
	s.mu.Lock()
	n := len(s.out)
	s.out = fn(s.out)
	s.pending += len(s.out) - n
	if fin {
		s.fin = true
	}
	s.mu.Unlock()
	s.kick()
}

// directGone runs on the loop (the stream's timer) when the stream's
// write side ended under direct mode: the client's STOP_SENDING or the
// connection's end, which a writer goroutine would have seen on the
// stream's context. The client went away before the response was
// complete. (Polling the context every sweep costs nothing per request;
// context.AfterFunc made its Done channel and a child entry, 3.6% of the
// h3 profile.)
func (s *h3Stream) directGone() {
	s.endDirect()
	s.releaseWriter()
	s.clientGone(499, "client_closed")
}

// endDirect leaves direct mode.
func (s *h3Stream) endDirect() { s.direct = false }

// startWriter starts the stream's writer goroutine, with its wake
// channel.
func (s *h3Stream) startWriter() {
	s.wake = make(chan struct{}, 1)
	s.c.f.e.goPool.Go(s.writeLoop)
}

// releaseWriter drops the writer's ref on behalf of the loop, once (direct
// mode: no writer goroutine exists).
func (s *h3Stream) releaseWriter() {
	if !s.wref.CompareAndSwap(false, true) {
		return
	}
	if s.refs.Add(-1) != 0 {
		return // the reader still runs; its release posts onRefsDone
	}
	s.refsZero()
	// On the loop, and the reader's one hand-off in direct mode (begin)
	// ran: nothing the stream's goroutines posted is still queued, so no
	// loop task is needed to know they are gone.
	s.gone = true
	if s.freed {
		s.c.lp.h3done = append(s.c.lp.h3done, s)
	}
}

// kick hands what emit queued to the writer (loop). In direct mode the
// loop writes it: TryWriteAll queues all of it with quic-go or nothing,
// and never blocks; when it would, or when the write is large, a writer
// goroutine takes over for the rest of the stream.
func (s *h3Stream) kick() {
	if !s.direct {
		s.notify()
		return
	}
	s.mu.Lock()
	out, fin, abort := s.out, s.fin, s.abort
	s.mu.Unlock()
	if abort {
		s.endDirect()
		s.st.CancelWrite(quic.StreamErrorCode(h3.ErrCodeInternal))
		s.releaseWriter()
		return
	}
	if len(out) > 0 {
		err := quic.ErrWouldBlock
		if s.directBytes+len(out) <= h3DirectMax {
			err = s.st.TryWriteAll(out)
		}
		switch {
		case err == nil:
			s.directBytes += len(out)
			s.mu.Lock()
			s.pending -= len(out)
			s.out = s.out[:0]
			s.mu.Unlock()
		case errors.Is(err, quic.ErrWouldBlock):
			s.endDirect()
			s.startWriter() // holds the writer's ref from now on
			s.notify()
			return
		default:
			s.endDirect()
			s.releaseWriter()
			s.clientGone(499, "client_reset")
			return
		}
	}
	if fin {
		s.endDirect()
		_ = s.st.Close()
		s.releaseWriter()
	}
}

// --- loop side ---

// begin turns the decoded head into the neutral request and submits it.
func (s *h3Stream) begin(endNow bool) {
	if s.freed {
		// The writer saw the client go (and the loop freed the stream)
		// before this was run: nothing to begin, and the stream must not
		// be registered for timers again.
		return
	}
	c := s.c
	lp := c.lp
	l := c.view()
	h := &s.head
	s.x.Reset()
	s.x.Req = &s.req
	s.x.Owner = s
	s.x.Forwarder = s
	s.x.Listener = l.view
	s.x.ClientIP = c.ip
	s.x.ConnRequests = s.nth
	s.lg = leg{lp: lp, l: l, x: &s.x, ds: s, ip: c.ipText, peer: c.peer, local: c.local, proto: "h3", streamID: uint32(s.st.StreamID())}
	s.lg.reset()
	lp.h3add(s)
	var host []byte
	fs := s.fields[:0]
	cookies := 0
	for _, f := range h.Fields {
		switch string(f.Name) {
		case "host":
			host = f.Value
			continue
		case "cookie":
			cookies++
		}
		fs = append(fs, f)
	}
	if cookies > 1 {
		var joined []byte
		out := fs[:0]
		for _, f := range fs {
			if string(f.Name) == "cookie" {
				if len(joined) > 0 {
					joined = append(joined, ';', ' ')
				}
				joined = append(joined, f.Value...)
				continue
			}
			out = append(out, f)
		}
		fs = append(out, msg.Field{Name: []byte("cookie"), Value: joined})
	}
	if s.early {
		fs = append(fs, msg.Field{Name: nameEarlyData, Value: valueOne})
	}
	s.fields = fs
	authority := h.Authority
	if authority == nil {
		authority = host
	}
	s.req = msg.Request{Method: h.Method, Scheme: l.scheme, Protocol: h.Protocol, Fields: fs, ContentLength: h.ContentLength}
	switch {
	case endNow:
		s.req.Body = msg.BodyNone
		s.hasRequestEnd = true
		s.lg.reqBodyDone = true
	case h.ContentLength >= 0:
		s.req.Body = msg.BodyLength
		s.lastBodyAt = lp.nowNano()
	default:
		s.req.Body = msg.BodyStream
		s.lastBodyAt = lp.nowNano()
	}
	if host != nil && h.Authority != nil && string(host) != string(h.Authority) {
		s.perr = msg.Error{Status: 400, Token: "h3_host_mismatch", Msg: ":authority and host differ"}
		s.x.ParseErr = &s.perr
		s.submit()
		return
	}
	n := s.norm[:0]
	pathLen := 0
	if !h.IsConnect() {
		var err *msg.Error
		if n, pathLen, err = msg.NormalizeTarget(n, h.Path, &l.pathOpts); err != nil {
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
	s.norm = n
	s.req.Path, s.req.PathLen = n[:mid:mid], pathLen
	s.req.Authority = n[mid:len(n):len(n)]
	s.req.Host = s.req.Authority[:hostLen]
	s.submit()
}

func (s *h3Stream) submit() {
	lp := s.c.lp
	if !lp.pipeline.SubmitAndDrain(&s.x) {
		lp.e.guardHit(nil, guards.RingFull("guard"), guards.Stream)
		s.x.Status, s.x.Reason, s.x.RetryAfter = 503, "ring_full", true
		s.respondLocal(&s.x)
	}
}

// Forward implements stages.Forwarder.
func (s *h3Stream) Forward(x *stages.Exchange) {
	if h := s.c.lp.e.hook; h != nil {
		h(x)
	}
	if !s.lg.admit() {
		x.Status, x.Reason, x.RetryAfter = 503, "queue_full", true
		s.respondLocal(x)
		return
	}
	s.lg.acquire()
}

// onData takes request DATA (already counted in inflight).
func (s *h3Stream) onData(data []byte, end bool) {
	if s.finished {
		s.giveCredit(len(data))
		return
	}
	if end {
		s.hasRequestEnd = true
	}
	s.lastBodyAt = s.c.lp.nowNano()
	if s.upReady && s.lg.bodyWritable() && len(s.body) == 0 {
		s.lg.sendBody(data, end, nil)
		s.credit(len(data))
		return
	}
	s.body = append(s.body, data...)
}

func (s *h3Stream) onTrailers(fs []msg.Field) {
	if s.finished {
		return
	}
	s.hasRequestEnd = true
	s.trl = fs
	if s.upReady && s.lg.bodyWritable() && len(s.body) == 0 {
		s.lg.sendBody(nil, true, fs)
	}
}

// credit gives n request bytes back to the reader once the upstream took
// them; while its outbound buffer is full they are held.
func (s *h3Stream) credit(n int) {
	if s.lg.upBacklog() > h2UpHeldMax {
		s.held += n
		return
	}
	s.giveCredit(n)
}

func (s *h3Stream) giveCredit(n int) {
	if n == 0 {
		return
	}
	s.inflight.Add(-int64(n))
	select {
	case s.creditCh <- struct{}{}:
	default:
	}
}

func (s *h3Stream) creditHeld() {
	if s.held == 0 || s.lg.upBacklog() > h2UpHeldMax {
		return
	}
	n := s.held
	s.held = 0
	s.giveCredit(n)
}

// resume runs when the writer drained: paused upstreams read again.
func (s *h3Stream) resume() {
	if s.pump != nil {
		s.pump.resume()
	}
	if s.lg.upHeld > 0 {
		s.lg.creditUp()
	}
}

// onTimer runs the leg's deadlines from the loop's sweep.
func (s *h3Stream) onTimer(now int64) {
	if s.direct && s.st.Context().Err() != nil {
		s.directGone()
		return
	}
	if !s.finished && !s.hasRequestEnd && !s.started && now-s.lastBodyAt > int64(s.lg.l.bodyIdle) {
		// timeouts.body_idle: the client stopped sending its body.
		s.c.lp.e.guardHit(&s.x, guards.BodyIdle, guards.Stream)
		s.x.Status, s.x.Reason = 408, "body_idle"
		s.respondLocal(&s.x)
		return
	}
	if !s.finished && !s.lg.respPumping {
		s.lg.onTimer(now)
	}
	if s.held > 0 {
		s.creditHeld()
	}
}

// clientGone: the client reset or closed the stream.
func (s *h3Stream) clientGone(status int, reason string) {
	s.abortLeg(status, reason)
	s.free()
}

func (s *h3Stream) stopReading() {
	if !s.hasRequestEnd {
		s.st.CancelRead(quic.StreamErrorCode(h3.ErrCodeNo))
	}
}

// upstreamReady implements downstream.
func (s *h3Stream) upstreamReady(lg *leg, u *upstream, head []byte) {
	s.upReady = true
	if u != nil {
		s.c.lp.queue(u.c, head)
	}
	if lg.reqBodyDone {
		lg.reqSentAt = s.c.lp.nowNano()
		return
	}
	if len(s.body) > 0 || s.hasRequestEnd {
		n := len(s.body)
		var trl []msg.Field
		if s.hasRequestEnd {
			trl = s.trl
		}
		lg.sendBody(s.body, s.hasRequestEnd, trl)
		s.body = s.body[:0]
		s.credit(n)
	}
}

func (s *h3Stream) forwardFields(r *msg.Response, cookie string) []msg.Field {
	lp := s.c.lp
	opts := s.lg.respOpts()
	if cookie != "" {
		o := *opts
		o.SetCookie = cookie
		opts = &o
	}
	fs, arena, _ := msg.ForwardResponse(lp.fwd.Fields[:0], lp.fwd.Arena[:0], r.Fields, opts)
	if r.Status >= 200 && (r.Body == msg.BodyLength || (r.Body == msg.BodyNone && r.ContentLength >= 0 && r.Status != 204)) {
		start := len(arena)
		arena = strconv.AppendInt(arena, r.ContentLength, 10)
		fs = append(fs, msg.Field{Name: nameCL, Value: arena[start:len(arena):len(arena)]})
	}
	lp.fwd.Fields, lp.fwd.Arena = fs[:0], arena[:0]
	return fs
}

// respInterim implements downstream.
func (s *h3Stream) respInterim(_ *leg, r *msg.Response) {
	fs := s.forwardFields(r, "")
	s.emit(func(b []byte) []byte { return h3.AppendHeaders(b, r.Status, fs) }, false)
}

// respHead implements downstream.
func (s *h3Stream) respHead(_ *leg, r *msg.Response, _ bool) {
	fs := s.forwardFields(r, s.x.Pick.SetCookie)
	s.started = true
	end := r.Body == msg.BodyNone
	s.emit(func(b []byte) []byte { return h3.AppendHeaders(b, r.Status, fs) }, end)
	if end {
		s.stopReading()
	}
}

// respData implements downstream.
func (s *h3Stream) respData(_ *leg, b []byte) {
	s.emit(func(out []byte) []byte { return h3.AppendData(out, b) }, false)
}

// respEnd implements downstream.
func (s *h3Stream) respEnd(_ *leg, trailers []msg.Field) {
	if len(trailers) > 0 {
		s.emit(func(b []byte) []byte { return h3.AppendHeaders(b, 0, trailers) }, true)
	} else {
		s.emit(func(b []byte) []byte { return b }, true)
	}
	s.stopReading()
}

// respondLocal implements downstream.
func (s *h3Stream) respondLocal(x *stages.Exchange) {
	lp := s.c.lp
	status := x.Status
	body := h1.StatusText(status) + "\n"
	fs := []msg.Field{{Name: nameCT, Value: valueTextPlain}, {Name: nameCL, Value: strconv.AppendInt(nil, int64(len(body)), 10)}}
	if x.RetryAfter {
		fs = append(fs, msg.Field{Name: nameRetryAfter, Value: valueOne})
	}
	s.emit(func(b []byte) []byte {
		b = h3.AppendHeaders(b, status, fs)
		return h3.AppendData(b, []byte(body))
	}, true)
	s.stopReading()
	lp.e.m.LocalResponse(s.lg.l.cfg.Name, x.Reason).Inc()
	s.lg.dropUpstream()
	s.lg.endpointDone(status, false)
	s.lg.respStatus = status
	s.lg.record(status, x.Reason)
	s.finished = true
	s.free()
}

// respAbort implements downstream: the stream is reset.
func (s *h3Stream) respAbort(_ *leg) {
	s.mu.Lock()
	s.abort = true
	s.mu.Unlock()
	s.kick()
	s.stopReading()
	s.finished = true
	s.free()
}

// exchangeDone implements downstream.
func (s *h3Stream) exchangeDone(_ *leg) {
	s.finished = true
	s.free()
}

// slowReader implements downstream: more response bytes wait for the
// client than a stream may hold; the upstream leaves the loop and is read
// again when the writer drained (resume).
func (s *h3Stream) slowReader(lg *leg, u *upstream) bool {
	s.mu.Lock()
	p := s.pending
	if p > h3StreamPendMax {
		s.wantResume = true
	}
	s.mu.Unlock()
	if p <= h3StreamPendMax {
		return false
	}
	if !lg.reqBodyDone {
		if p > 4*h3StreamPendMax {
			s.c.lp.e.guardHit(&s.x, guards.H3("stream_buffer_overflow"), guards.Stream)
			lg.abortMid("h3_stream_buffer_overflow")
			return true
		}
		return false
	}
	s.pump = lg.pauseUpstream(u)
	return s.pump != nil
}

// roomFor implements downstream.
func (s *h3Stream) roomFor(*leg) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pending >= h3StreamPendMax/2 {
		s.wantResume = true
		return false
	}
	return true
}

// bodyDrained implements downstream.
func (s *h3Stream) bodyDrained(*leg) { s.creditHeld() }

func (s *h3Stream) abortLeg(status int, reason string) {
	if s.finished {
		return
	}
	s.finished = true
	if s.pump != nil {
		s.pump.cancel()
		s.pump = nil
	}
	if s.lg.epBegun || s.lg.counted || s.lg.up != nil || s.lg.muxed() {
		s.lg.dropUpstream()
		s.lg.endpointDone(status, false)
		s.lg.record(status, reason)
	}
	s.mu.Lock()
	done := s.fin
	s.abort = !done
	s.mu.Unlock()
	s.kick()
}

// free forgets a finished stream on the loop.
func (s *h3Stream) free() {
	if s.freed {
		return
	}
	s.freed = true
	if s.pump != nil {
		s.pump.cancel()
		s.pump = nil
	}
	s.giveCredit(s.held + len(s.body))
	s.held, s.body = 0, nil
	s.c.lp.h3del(s)
	if s.gone {
		// Not now: the caller's stack may still use the stream.
		s.c.lp.h3done = append(s.c.lp.h3done, s)
	}
}

var (
	_ downstream       = (*h3Stream)(nil)
	_ stages.Forwarder = (*h3Stream)(nil)
)

func (lp *loop) h3add(s *h3Stream) {
	if lp.h3 == nil {
		lp.h3 = map[*h3Stream]struct{}{}
	}
	lp.h3[s] = struct{}{}
}

func (lp *loop) h3del(s *h3Stream) { delete(lp.h3, s) }

// sweepH3 runs the HTTP/3 streams' timers (loop.sweep).
func (lp *loop) sweepH3(now int64) {
	for s := range lp.h3 {
		func() {
			defer lp.e.recoverConn(nil, "h3 timer")
			s.onTimer(now)
		}()
	}
}
