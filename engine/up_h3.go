// SPDX-License-Identifier: GPL-3.0-only

package engine

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/quicvarint"

	"github.com/expressgateway/expressgateway/codecs/h3"
	"github.com/expressgateway/expressgateway/codecs/msg"
	"github.com/expressgateway/expressgateway/lb"
	"github.com/expressgateway/expressgateway/stages"
)

// HTTP/3 upstreams (clusters with protocol = "h3").
//
// quic-go owns the QUIC connection and its goroutines, as on the h3 front
// (h3_front.go), and this is that front in reverse. An h3Upstream is one
// QUIC connection to an endpoint, pooled per loop and endpoint
// (lp.h3pools) like an h2Upstream; its state is the loop's. Each request
// is a stream (h3UpStream) with a writer goroutine, which writes what the
// loop encoded (request HEADERS, DATA, trailers) and blocks on the
// endpoint's QUIC credit, and a reader goroutine, which decodes the
// response frames and hands them to the loop with Execute. Both directions
// are bounded per stream: the leg's backlog (upBacklog) is what the writer
// has not written, and the downstream holds its client's credit while it
// is large; the reader does not read more DATA while h3UpInflightMax bytes
// it handed over are not taken by the downstream, so the endpoint's QUIC
// stream credit stops it.
//
// Every event from a stream's goroutines is checked on the loop against
// the leg the stream serves (us.lg, cleared when the leg lets go of it):
// a late event of a stream that was cancelled or finished never reaches
// the leg's next exchange.

// Bounds of one HTTP/3 upstream stream.
const (
	h3UpInflightMax  = 256 << 10 // response DATA handed to the loop, not yet taken downstream
	h3UpDrainLow     = 64 << 10  // request backlog below which a waiting downstream may send more
	h3UpUnknownMax   = 1 << 20   // one unknown frame on a request stream
	h3UpMaxInterim   = 16        // 1xx responses before the final one
	h3UpStreamWindow = 512 << 10 // QUIC receive window of one stream, at most
)

// h3Upstream is one QUIC connection to an endpoint, carrying the streams
// of many legs at once. Loop-owned, except where noted.
type h3Upstream struct {
	lp      *loop
	cluster *stages.Cluster
	ep      *lb.Endpoint
	qc      *quic.Conn // set when the dial completed
	state   upState
	streams map[*h3UpStream]struct{}
	pending []*leg // waiting for the connection to come up
	goaway  bool   // the endpoint sent GOAWAY: no new streams
	retired bool   // a reload removed the endpoint
	full    bool   // the endpoint's MAX_STREAMS was reached: no new streams until one ends
	idle    int64
	counted bool
	active  *atomic.Int64
}

// h3UpStream is one request stream of an h3Upstream.
type h3UpStream struct {
	hu *h3Upstream
	st *quic.Stream
	id uint64

	// Shared with the writer goroutine.
	mu        sync.Mutex
	out       []byte // encoded frames for the writer
	pending   int    // bytes in out and being written
	fin       bool   // the request ends after out
	wantDrain bool   // the loop waits for the backlog to drop
	stopped   bool   // the send side is reset (by us, or the endpoint's STOP_SENDING): output is dropped
	wake      chan struct{}

	// Shared with the reader goroutine.
	inflight atomic.Int64 // response DATA on the loop not credited yet
	creditCh chan struct{}
	gone     chan struct{} // closed when the leg let go of the stream

	// Loop only.
	lg       *leg
	readDone bool // the response was read to its end (or the read side failed)
	dead     bool // the stream was reset (either side)
	maxHead  int
	maxTrl   int
}

// h3For returns a connection to ep that can take one more stream,
// creating (and dialing) one when none can.
func (lp *loop) h3For(cl *stages.Cluster, ep *lb.Endpoint, connect time.Duration) *h3Upstream {
	for _, hu := range lp.h3pools[ep] {
		if hu.canTake() {
			return hu
		}
	}
	hu := &h3Upstream{lp: lp, cluster: cl, ep: ep, state: upDialing, streams: map[*h3UpStream]struct{}{},
		active: lp.e.m.UpstreamActive(cl.Name)}
	if lp.h3pools == nil {
		lp.h3pools = map[*lb.Endpoint][]*h3Upstream{}
	}
	lp.h3pools[ep] = append(lp.h3pools[ep], hu)
	lp.e.clusters.countConnect(cl)
	hu.dial(connect)
	return hu
}

// canTake reports whether a new stream may go on this connection now or
// once it is up.
func (hu *h3Upstream) canTake() bool {
	switch {
	case hu.goaway || hu.retired || hu.full || hu.state == upClosed:
		return false
	case hu.state == upDialing:
		return len(hu.pending) < hu.cluster.MaxStreams
	}
	return len(hu.streams)+len(hu.pending) < hu.cluster.MaxStreams
}

// attach gives lg a stream on this connection, now or once it is up.
func (hu *h3Upstream) attach(lg *leg) {
	lg.h3u = hu
	if hu.state != upActive {
		hu.pending = append(hu.pending, lg)
		return
	}
	hu.lp.e.clusters.countReuse(hu.cluster)
	hu.open(lg)
}

// dial connects in a goroutine: the QUIC handshake (TLS 1.3, ALPN h3)
// within timeout, then the control stream with the gateway's SETTINGS; the
// result comes back to the loop.
func (hu *h3Upstream) dial(timeout time.Duration) {
	lp := hu.lp
	e := lp.e
	ut := e.clusters.TLS(hu.cluster)
	addr := hu.ep.Address()
	go func() {
		defer e.recoverConn(nil, "h3 upstream dial")
		qc, reason := e.dialH3(ut, addr, timeout, hu.cluster.MaxStreams)
		if qc != nil {
			go hu.serveUni(qc)
			go func() {
				<-qc.Context().Done()
				lp.exec("h3 upstream", hu.onClosed)
			}()
		}
		if !lp.exec("h3 upstream dial", func() { hu.onDialed(qc, reason) }) && qc != nil {
			_ = qc.CloseWithError(quic.ApplicationErrorCode(h3.ErrCodeNo), "")
		}
	}()
}

// dialH3 makes one QUIC connection to addr and opens its control stream;
// on failure it returns the leg's failure token.
func (e *Engine) dialH3(ut *upstreamTLS, addr string, timeout time.Duration, streams int) (*quic.Conn, string) {
	if ut == nil {
		return nil, "tls_handshake" // validation makes tls required; a defensive no
	}
	tr, err := e.h3Transport()
	if err != nil {
		e.log.Warn().Err(err).Msg("h3 upstream: UDP socket")
		return nil, "connect_failed"
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	ua, err := net.DefaultResolver.LookupNetIP(ctx, "ip", hostOf(addr))
	port, perr := strconv.Atoi(portOf(addr))
	if err != nil || len(ua) == 0 || perr != nil {
		return nil, "connect_failed"
	}
	cfg := ut.configFor(addr)
	// The connection's receive window covers every stream's whole window
	// from the start: a stream whose client stopped reading holds its own
	// credit (at most h3UpStreamWindow unread in quic-go, h3UpInflightMax
	// on the loop), never the credit of the streams beside it. Memory is
	// bounded by the stream windows, not by this one.
	connWindow := uint64(max(streams, 8))*h3UpStreamWindow + 1<<20
	qc, err := tr.Dial(ctx, &net.UDPAddr{IP: ua[0].Unmap().AsSlice(), Port: port}, cfg, &quic.Config{
		HandshakeIdleTimeout:           timeout,
		MaxIdleTimeout:                 30 * time.Second,
		MaxIncomingStreams:             -1, // an endpoint never opens request streams
		MaxIncomingUniStreams:          16,
		InitialStreamReceiveWindow:     h3UpStreamWindow / 2,
		MaxStreamReceiveWindow:         h3UpStreamWindow,
		InitialConnectionReceiveWindow: connWindow,
		MaxConnectionReceiveWindow:     connWindow,
		KeepAlivePeriod:                10 * time.Second,
	})
	if err != nil {
		var te *quic.TransportError
		var he *quic.HandshakeTimeoutError
		var ie *quic.IdleTimeoutError
		switch {
		case errors.As(err, &te) && te.ErrorCode.IsCryptoError():
			reason := upHandshakeReason(err)
			ut.failure(reason).Inc()
			e.log.Warn().Str("cluster", ut.cluster).Str("endpoint", addr).Str("reason", reason).Err(err).Msg("upstream TLS handshake failed (QUIC)")
			return nil, "tls_handshake"
		case errors.Is(err, context.DeadlineExceeded), errors.As(err, &he), errors.As(err, &ie):
			return nil, "connect_timeout"
		}
		return nil, "connect_failed"
	}
	if p := qc.ConnectionState().TLS.NegotiatedProtocol; p != "h3" {
		ut.failure("alpn").Inc()
		e.log.Warn().Str("cluster", ut.cluster).Str("endpoint", addr).Str("alpn", p).Msg("upstream TLS handshake failed: the endpoint did not choose ALPN h3")
		_ = qc.CloseWithError(quic.ApplicationErrorCode(h3.ErrCodeVersionFallback), "")
		return nil, "tls_handshake"
	}
	ut.ok.Inc()
	ctrl, err := qc.OpenUniStream()
	if err == nil {
		b := quicvarint.Append(nil, h3.StreamControl)
		b = h3.AppendSettings(b, h3.Settings{})
		_, err = ctrl.Write(b)
	}
	if err != nil {
		_ = qc.CloseWithError(quic.ApplicationErrorCode(h3.ErrCodeInternal), "")
		return nil, "connect_failed"
	}
	return qc, ""
}

// h3Transport is the engine's one UDP socket for upstream QUIC
// connections (quic-go demultiplexes them by connection ID), opened on
// first use and closed by Stop.
func (e *Engine) h3Transport() (*quic.Transport, error) {
	e.h3upMu.Lock()
	defer e.h3upMu.Unlock()
	if e.h3upTr != nil {
		return e.h3upTr, nil
	}
	if e.stopped.Load() {
		return nil, errors.New("engine stopped")
	}
	pc, err := net.ListenUDP("udp", &net.UDPAddr{})
	if err != nil {
		return nil, err
	}
	if rcv, snd := h3GrowBuffers(pc); rcv < h3WantBuffer || snd < h3WantBuffer {
		e.log.Warn().Int("receive_buffer", rcv).Int("send_buffer", snd).Int("wanted", h3WantBuffer).
			Msg("h3 upstream: UDP socket buffers smaller than QUIC wants (raise net.core.rmem_max and net.core.wmem_max); throughput may suffer under load")
	}
	_ = os.Setenv("QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING", "true")
	e.h3upTr = &quic.Transport{Conn: pc}
	return e.h3upTr, nil
}

// closeH3Transport ends every upstream QUIC connection (Stop).
func (e *Engine) closeH3Transport() {
	e.h3upMu.Lock()
	defer e.h3upMu.Unlock()
	if e.h3upTr != nil {
		_ = e.h3upTr.Close()
		_ = e.h3upTr.Conn.Close()
		e.h3upTr = nil
	}
}

func (hu *h3Upstream) onDialed(qc *quic.Conn, reason string) {
	if qc == nil {
		hu.onDialFailed(reason)
		return
	}
	hu.qc = qc
	if hu.state != upDialing {
		_ = qc.CloseWithError(quic.ApplicationErrorCode(h3.ErrCodeNo), "")
		return
	}
	hu.state = upActive
	hu.counted = true
	hu.active.Add(1)
	hu.ep.ConnOpened()
	hu.idle = hu.lp.nowNano()
	legs := hu.pending
	hu.pending = nil
	for _, lg := range legs {
		if lg.h3u == hu {
			hu.open(lg)
		}
	}
	if len(hu.streams) == 0 && (hu.goaway || hu.retired) {
		hu.close()
	}
}

func (hu *h3Upstream) onDialFailed(reason string) {
	hu.state = upClosed
	hu.forget()
	legs := hu.pending
	hu.pending = nil
	for _, lg := range legs {
		if lg.h3u == hu {
			lg.h3u = nil
			lg.failed(reason, 502, true)
		}
	}
}

// open starts lg's stream: the request head goes to the writer.
func (hu *h3Upstream) open(lg *leg) {
	lp := hu.lp
	if lg.ws {
		// RFC 9220 (WebSocket over HTTP/3) is not spoken upstream.
		lg.h3u = nil
		lg.protocolError("no_extended_connect")
		return
	}
	st, err := hu.qc.OpenStream()
	if err != nil {
		var le *quic.StreamLimitReachedError
		if errors.As(err, &le) {
			// The endpoint's MAX_STREAMS: the request goes on another
			// (or a new) connection; this one takes streams again once
			// one of its own ends.
			hu.full = true
			lp.e.m.H3UpStreamLimit.Inc()
			lp.e.log.Info().Str("cluster", hu.cluster.Name).Str("endpoint", hu.ep.Address()).Int("streams", len(hu.streams)).
				Msg("h3 upstream: the endpoint's stream limit was reached; the request goes on another connection")
			lg.h3u = nil
			lp.h3For(hu.cluster, hu.ep, lg.l.upConnect).attach(lg)
			return
		}
		// The connection is gone (the endpoint closed it idle, or it
		// broke) and its close has not reached the loop yet: nothing was
		// sent, so the request goes once on a fresh connection, like the
		// HTTP/1.1 keep-alive race.
		hu.state = upClosed
		hu.forget()
		lg.h3u = nil
		if lg.staleRetried {
			lg.failed("reset", 502, false)
			return
		}
		lg.staleRetried = true
		lp.e.m.UpstreamFailure(hu.cluster.Name, "stale_keepalive").Inc()
		lp.h3For(hu.cluster, hu.ep, lg.l.upConnect).attach(lg)
		return
	}
	us := &h3UpStream{hu: hu, st: st, id: uint64(st.StreamID()), lg: lg, wake: make(chan struct{}, 1),
		creditCh: make(chan struct{}, 1), gone: make(chan struct{}),
		maxHead: lg.l.limits.MaxHeaderBytes, maxTrl: lg.l.limits.MaxTrailerBytes}
	if us.maxTrl <= 0 {
		us.maxTrl = us.maxHead
	}
	hu.streams[us] = struct{}{}
	lg.h3s = us
	lp.e.m.H3UpStreams.Inc()

	r := lg.x.Req
	opts := *lg.reqOpts()
	opts.ClientIP = lg.ip
	opts.Identity = lg.identity
	opts.DropExpect = lg.sent100
	fs, arena, _ := msg.ForwardRequest(lp.fwd.Fields[:0], lp.fwd.Arena[:0], r.Fields, &opts)
	if te := r.Field("te"); te != nil && msg.ListHas(te, "trailers") {
		fs = append(fs, msg.Field{Name: nameTE, Value: valueTrailers})
	}
	if r.Body == msg.BodyLength {
		start := len(arena)
		arena = strconv.AppendInt(arena, r.ContentLength, 10)
		fs = append(fs, msg.Field{Name: nameCL, Value: arena[start:len(arena):len(arena)]})
	}
	if lg.grpc && lg.deadline != 0 {
		start := len(arena)
		arena = appendGRPCTimeout(arena, time.Duration(lg.deadline-lp.nowNano()))
		fs = setField(fs, nameGRPCTimeout, arena[start:len(arena):len(arena)])
	}
	head := h3.RequestHead{Method: r.Method, Scheme: schemeHTTPS, Authority: r.Authority, Path: r.Path, Fields: fs}
	us.emit(h3.AppendRequestHeaders(nil, &head), lg.reqBodyDone)
	lp.fwd.Fields, lp.fwd.Arena = fs[:0], arena[:0]
	if lg.reqBodyDone {
		lg.reqSentAt = lp.nowNano()
	}
	lp.e.goPool.Go(us.writeLoop)
	lp.e.goPool.Go(us.readLoop)
	lg.ds.upstreamReady(lg, nil, nil)
}

// emit queues encoded frames for the writer (loop).
func (us *h3UpStream) emit(b []byte, fin bool) {
	us.emitFrames(func(out []byte) []byte { return append(out, b...) }, fin)
}

// emitFrames appends frames to the writer's queue in place (loop).
func (us *h3UpStream) emitFrames(fn func(out []byte) []byte, fin bool) {
	us.mu.Lock()
	if us.stopped {
		us.mu.Unlock()
		return
	}
	n := len(us.out)
	us.out = fn(us.out)
	us.pending += len(us.out) - n
	if fin {
		us.fin = true
	}
	us.mu.Unlock()
	select {
	case us.wake <- struct{}{}:
	default:
	}
}

// backlog is how many request bytes wait for the writer (loop); a caller
// that finds some is told when they drop (bodyDrained).
func (us *h3UpStream) backlog() int {
	us.mu.Lock()
	defer us.mu.Unlock()
	if us.pending > 0 {
		us.wantDrain = true
	}
	return us.pending
}

// sendBodyH3 queues request body bytes as DATA (and the end, with
// trailers as a HEADERS frame) for the writer.
func (lg *leg) sendBodyH3(data []byte, end bool, trailers []msg.Field) {
	if len(data) > 0 {
		lg.bodySent = true
		lg.bodyBytes += int64(len(data))
	}
	var trl []msg.Field
	if end {
		trl = msg.FilterTrailers(trailers)
		lg.reqBodyDone = true
		lg.reqSentAt = lg.lp.nowNano()
	}
	lg.h3s.emitFrames(func(b []byte) []byte {
		if len(data) > 0 {
			b = h3.AppendData(b, data)
		}
		if len(trl) > 0 {
			b = h3.AppendHeaders(b, 0, trl)
		}
		return b
	}, end)
}

// writeLoop is the stream's writer goroutine. Once the leg let go of
// the stream (gone) it still writes what was queued with the request's
// end, then closes; release and cancel reset a send side that was not
// complete.
func (us *h3UpStream) writeLoop() {
	defer us.recoverStream("h3 upstream writer")
	var buf []byte
	gone := us.gone
	wait := true
	for {
		if wait {
			select {
			case <-us.wake:
			case <-gone:
				gone = nil
			}
		}
		wait = true
		us.mu.Lock()
		buf, us.out = us.out, buf[:0]
		fin, stopped := us.fin, us.stopped
		us.mu.Unlock()
		if stopped {
			return
		}
		if len(buf) > 0 {
			if _, err := us.st.Write(buf); err != nil {
				// STOP_SENDING from the endpoint (it answers without the
				// rest of the body) or the stream's reset: what the
				// client still sends is dropped, and the reader sees what
				// became of the response.
				us.mu.Lock()
				us.stopped, us.out, us.pending = true, nil, 0
				us.mu.Unlock()
				us.hu.lp.exec("h3 upstream", us.onDrained)
				return
			}
			us.mu.Lock()
			us.pending -= len(buf)
			drain := us.wantDrain && us.pending < h3UpDrainLow
			if drain {
				us.wantDrain = false
			}
			more := len(us.out) > 0
			fin = us.fin
			us.mu.Unlock()
			if drain {
				us.hu.lp.exec("h3 upstream", us.onDrained)
			}
			if more {
				wait = false
				continue
			}
		}
		if fin {
			_ = us.st.Close()
			return
		}
		if gone == nil {
			return // let go of before the request's end: the send side was reset
		}
	}
}

// stopWrite resets the send side unless the whole request is written or
// queued with its end (loop).
func (us *h3UpStream) stopWrite(code h3.ErrCode, always bool) {
	us.mu.Lock()
	complete := us.fin && us.pending == 0
	if always || !complete {
		us.stopped, us.out, us.pending = true, nil, 0
	}
	us.mu.Unlock()
	if always || !complete {
		us.st.CancelWrite(quic.StreamErrorCode(code))
	}
}

// onDrained: the writer took the backlog down; the downstream may send
// (or credit) more.
func (us *h3UpStream) onDrained() {
	if lg := us.lg; lg != nil && lg.h3s == us {
		lg.ds.bodyDrained(lg)
	}
}

// h3UpHead is a decoded response head handed to the loop.
type h3UpHead struct {
	resp h3.Response
}

// readLoop is the stream's reader goroutine: the response frames, decoded
// and handed to the loop in order.
func (us *h3UpStream) readLoop() {
	defer us.recoverStream("h3 upstream reader")
	lp := us.hu.lp
	br := getH3Reader(us.st)
	defer putH3Reader(br)
	fail := func(code h3.ErrCode, tok string) {
		us.st.CancelRead(quic.StreamErrorCode(code))
		us.st.CancelWrite(quic.StreamErrorCode(code))
		lp.exec("h3 upstream", func() { us.onProtocolError(tok) })
	}
	readErr := func(err error) {
		var se *quic.StreamError
		if errors.As(err, &se) && se.Remote {
			code := h3.ErrCode(se.ErrorCode)
			lp.exec("h3 upstream", func() { us.onReset(code) })
			return
		}
		lp.exec("h3 upstream", func() { us.onReset(0) })
	}
	interim := 0        // 1xx heads so far
	final := false      // the final response head arrived
	trailers := false   // ... and its trailers
	var total int64 = 0 // DATA bytes of the final response
	contentLength := int64(-1)
	for {
		typ, n, err := readFrameHeader(br)
		if err == io.EOF {
			if !final {
				lp.exec("h3 upstream", func() { us.onReset(0) })
				return
			}
			if contentLength >= 0 && total != contentLength {
				fail(h3.ErrCodeMessage, "h3_content_length_mismatch")
				return
			}
			if !trailers {
				lp.exec("h3 upstream", func() { us.onEnd(nil, true) })
			}
			return
		}
		if err != nil {
			readErr(err)
			return
		}
		switch typ {
		case h3.FrameHeaders:
			limit := us.maxHead
			if final {
				limit = us.maxTrl
			}
			if trailers {
				fail(h3.ErrCodeFrameUnexpected, "h3_frame_after_trailers")
				return
			}
			if limit > 0 && n > uint64(limit) {
				fail(h3.ErrCodeExcessiveLoad, "h3_field_section_too_large")
				return
			}
			block := make([]byte, n)
			if _, err := io.ReadFull(br, block); err != nil {
				readErr(err)
				return
			}
			h := &h3UpHead{}
			if err := h3.DecodeResponse(block, limit, final, &h.resp); err != nil {
				tok := "h3_malformed"
				var he *h3.Error
				if errors.As(err, &he) {
					tok = "h3_" + he.Token
				}
				fail(h3.ErrCodeMessage, tok)
				return
			}
			if final {
				trailers = true
				fs := h.resp.Fields
				lp.exec("h3 upstream", func() { us.onEnd(fs, false) })
				// The stream must end here: anything else is the
				// endpoint's error, seen at the next frame.
				continue
			}
			if h.resp.Status >= 200 {
				final = true
				contentLength = h.resp.ContentLength
			} else if interim++; interim > h3UpMaxInterim {
				fail(h3.ErrCodeExcessiveLoad, "h3_too_many_interim")
				return
			}
			lp.exec("h3 upstream", func() { us.onHead(h) })
		case h3.FrameData:
			if !final || trailers {
				fail(h3.ErrCodeFrameUnexpected, "h3_data_unexpected")
				return
			}
			total += int64(n)
			if contentLength >= 0 && total > contentLength {
				fail(h3.ErrCodeMessage, "h3_content_length_mismatch")
				return
			}
			for n > 0 {
				for us.inflight.Load() >= h3UpInflightMax {
					select {
					case <-us.creditCh:
					case <-us.gone:
						return
					}
				}
				k := min(n, h3ReadChunk)
				buf := make([]byte, k)
				if _, err := io.ReadFull(br, buf); err != nil {
					readErr(err)
					return
				}
				n -= k
				us.inflight.Add(int64(k))
				lp.exec("h3 upstream", func() { us.onData(buf) })
			}
		case h3.FrameSettings, h3.FrameGoAway, h3.FrameMaxPushID, h3.FrameCancelPush, h3.FramePushPromse,
			0x2, 0x6, 0x8, 0x9: // and the HTTP/2 frame types RFC 9114 section 7.2.8 reserves
			fail(h3.ErrCodeFrameUnexpected, "h3_frame_unexpected")
			return
		default:
			if n > h3UpUnknownMax {
				fail(h3.ErrCodeExcessiveLoad, "h3_unknown_frame_too_large")
				return
			}
			if _, err := br.Discard(int(n)); err != nil {
				readErr(err)
				return
			}
		}
	}
}

// giveCredit returns n response bytes to the reader.
func (us *h3UpStream) giveCredit(n int) {
	if n == 0 {
		return
	}
	us.inflight.Add(-int64(n))
	select {
	case us.creditCh <- struct{}{}:
	default:
	}
}

// leg is the leg the stream still serves, or nil.
func (us *h3UpStream) leg() *leg {
	if lg := us.lg; lg != nil && lg.h3s == us {
		return lg
	}
	return nil
}

// onHead: a response head (interim or final) for the leg.
func (us *h3UpStream) onHead(h *h3UpHead) {
	lg := us.leg()
	if lg == nil {
		return
	}
	r := &h.resp
	lg.lastRespAt = us.hu.lp.nowNano()
	if r.Status < 200 {
		if r.Status == 101 {
			// HTTP/3 has no upgrade (RFC 9114 section 4.5).
			lg.protocolError("unexpected_upgrade")
			return
		}
		if !(lg.sent100 && r.Status == 100) {
			lg.resp = msg.Response{Status: r.Status, Fields: r.Fields, ContentLength: -1}
			lg.ds.respInterim(lg, &lg.resp)
		}
		return
	}
	if (r.Status == 502 || r.Status == 503) && lg.canRetry("status", r.Status) {
		lg.failed("status_"+statusToken(r.Status), r.Status, false)
		return
	}
	lg.respHead = true
	lg.respStatus = r.Status
	lg.resp = msg.Response{Status: r.Status, Fields: r.Fields, ContentLength: r.ContentLength}
	bodyless := string(lg.x.Req.Method) == "HEAD" || r.Status == 204 || r.Status == 304
	if lg.grpc {
		// A gRPC head that carries grpc-status is a trailers-only
		// response (HTTP/3 has no END_STREAM on HEADERS to say so): it
		// ends here, as one HEADERS frame with END_STREAM to an HTTP/2
		// client.
		if st := grpcStatusField(r.Fields); st >= 0 {
			lg.grpcStatus = st
			bodyless = true
		}
	}
	switch {
	case bodyless:
		lg.resp.Body = msg.BodyNone
	case r.ContentLength >= 0:
		lg.resp.Body = msg.BodyLength
	default:
		lg.resp.Body = msg.BodyStream
	}
	lg.ds.respHead(lg, &lg.resp, false)
	if bodyless && lg.h3s == us {
		lg.ds.respEnd(lg, nil)
		lg.finish(true)
	}
}

// onData: response DATA to the downstream; credit back to the reader only
// as far as the downstream has room.
func (us *h3UpStream) onData(b []byte) {
	lg := us.leg()
	if lg == nil || !lg.respHead {
		us.giveCredit(len(b))
		return
	}
	lg.lastRespAt = us.hu.lp.nowNano()
	lg.respBytes += int64(len(b))
	lg.ds.respData(lg, b)
	if lg.h3s != us {
		us.giveCredit(len(b)) // the downstream gave up on it
		return
	}
	if lg.ds.roomFor(lg) {
		us.giveCredit(len(b) + lg.upHeld)
		lg.upHeld = 0
	} else {
		lg.upHeld += len(b)
		us.hu.lp.e.m.H3UpFlowStall.Inc()
	}
}

// onEnd: the response ended, with trailers or at the stream's FIN (eof).
// After trailers the FIN is still to come: release stops the reading
// rather than wait for an endpoint that may never send it.
func (us *h3UpStream) onEnd(trailers []msg.Field, eof bool) {
	if eof {
		us.readDone = true
	}
	lg := us.leg()
	if lg == nil || !lg.respHead {
		return
	}
	if lg.grpc && trailers != nil {
		lg.grpcStatus = grpcStatusField(trailers)
	}
	lg.ds.respEnd(lg, msg.FilterTrailers(trailers))
	if lg.h3s == us {
		lg.finish(true)
	}
}

// onReset: the stream (or the whole connection, code 0) ended before the
// response did.
func (us *h3UpStream) onReset(code h3.ErrCode) {
	us.readDone, us.dead = true, true
	if code != 0 {
		us.hu.lp.e.m.H3UpReset("received", code.String()).Inc()
	}
	lg := us.leg()
	if lg == nil {
		return
	}
	us.hu.detach(us, lg)
	switch {
	case code == h3.ErrCodeRequestCancelled && lg.respHead:
		lg.upCancel = true
		lg.abortMid("upstream_cancel")
	case lg.respHead:
		lg.abortMid("reset_mid_body")
	case code == h3.ErrCodeRequestRejected:
		lg.failed("refused_stream", 503, false) // not processed: safe to retry
	default:
		lg.failed("reset", 502, false)
	}
}

// onProtocolError: the endpoint's response broke HTTP/3; the reader
// reset the stream.
func (us *h3UpStream) onProtocolError(tok string) {
	us.readDone, us.dead = true, true
	us.hu.lp.e.m.H3UpReset("sent", "H3_MESSAGE_ERROR").Inc()
	lg := us.leg()
	if lg == nil {
		return
	}
	us.hu.detach(us, lg)
	if lg.respHead {
		lg.abortMid("bad_response_body")
		return
	}
	lg.protocolError(tok)
}

// detach lets go of the stream: no event of it reaches lg any more; the
// credit it held goes back and its goroutines stop waiting. A side of the
// stream still open is reset (a request not written in full, a response
// not read to its end), so that the stream ends at both peers and stops
// counting against the endpoint's MAX_STREAMS.
func (hu *h3Upstream) detach(us *h3UpStream, lg *leg) {
	if _, ok := hu.streams[us]; !ok {
		return
	}
	us.stopWrite(h3.ErrCodeRequestCancelled, false)
	if !us.readDone {
		us.readDone = true
		us.st.CancelRead(quic.StreamErrorCode(h3.ErrCodeRequestCancelled))
	}
	delete(hu.streams, us)
	us.lg = nil
	close(us.gone)
	if lg != nil && lg.h3s == us {
		lg.h3s, lg.h3u, lg.upHeld = nil, nil, 0
	}
	hu.streamEnded()
}

// release ends lg's stream after a complete response. A request body the
// endpoint did not wait for is cut (RFC 9114 section 4.1).
func (hu *h3Upstream) release(lg *leg) {
	us := lg.h3s
	if us == nil {
		lg.h3u = nil
		return
	}
	// A response that came before the whole request went out: the rest is
	// not needed (a request written in full closes normally).
	us.stopWrite(h3.ErrCodeRequestCancelled, false)
	if !us.readDone {
		us.readDone = true
		us.st.CancelRead(quic.StreamErrorCode(h3.ErrCodeNo))
	}
	hu.detach(us, lg)
}

// cancel resets lg's stream (the client went away, or the leg gave up).
func (hu *h3Upstream) cancel(lg *leg) {
	us := lg.h3s
	if us == nil {
		for i, p := range hu.pending {
			if p == lg {
				hu.pending = append(hu.pending[:i], hu.pending[i+1:]...)
				break
			}
		}
		lg.h3u = nil
		return
	}
	if !us.dead {
		us.dead = true
		us.stopWrite(h3.ErrCodeRequestCancelled, true)
		us.st.CancelRead(quic.StreamErrorCode(h3.ErrCodeRequestCancelled))
		hu.lp.e.m.H3UpReset("sent", h3.ErrCodeRequestCancelled.String()).Inc()
	}
	hu.detach(us, lg)
}

func (hu *h3Upstream) streamEnded() {
	hu.full = false
	if len(hu.streams) == 0 {
		hu.idle = hu.lp.nowNano()
		if (hu.goaway || hu.retired) && hu.state == upActive {
			hu.close()
		}
	}
}

// onClosed: the QUIC connection ended (either side, or idle).
func (hu *h3Upstream) onClosed() {
	if hu.counted {
		hu.counted = false
		hu.active.Add(-1)
		hu.ep.ConnClosed()
	}
	if hu.state == upClosed {
		return
	}
	hu.state = upClosed
	hu.forget()
	hu.dropStreams()
}

// dropStreams fails every stream still attached.
func (hu *h3Upstream) dropStreams() {
	for us := range hu.streams {
		lg := us.leg()
		us.dead = true
		hu.detach(us, lg)
		if lg == nil {
			continue
		}
		if lg.respHead {
			lg.abortMid("reset_mid_body")
		} else {
			lg.failed("reset", 502, false)
		}
	}
	legs := hu.pending
	hu.pending = nil
	for _, lg := range legs {
		if lg.h3u == hu {
			lg.h3u = nil
			lg.failed("reset", 502, false)
		}
	}
}

// close ends the connection politely (idle, GOAWAY'd or retired).
func (hu *h3Upstream) close() {
	if hu.state == upClosed {
		return
	}
	hu.state = upClosed
	hu.forget()
	hu.dropStreams()
	if hu.qc != nil {
		_ = hu.qc.CloseWithError(quic.ApplicationErrorCode(h3.ErrCodeNo), "")
	}
}

// forget removes the connection from its pool.
func (hu *h3Upstream) forget() {
	list := hu.lp.h3pools[hu.ep]
	for i, v := range list {
		if v == hu {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(hu.lp.h3pools, hu.ep)
		return
	}
	hu.lp.h3pools[hu.ep] = list
}

// sweep closes the connection after ttl without streams.
func (hu *h3Upstream) sweep(now int64, ttl time.Duration) {
	if hu.state == upActive && len(hu.streams) == 0 && now-hu.idle > int64(ttl) {
		hu.close()
	}
}

// onGoAway: the endpoint is going away. Streams from id on were not
// processed and go elsewhere; the others finish; no new stream goes on
// this connection.
func (hu *h3Upstream) onGoAway(id uint64) {
	hu.lp.e.m.H3UpGoAway.Inc()
	hu.goaway = true
	hu.forget()
	for us := range hu.streams {
		lg := us.leg()
		if us.id < id || lg == nil || lg.respHead {
			continue
		}
		hu.cancel(lg)
		lg.failed("goaway_unprocessed", 503, false)
	}
	if len(hu.streams) == 0 && hu.state == upActive {
		hu.close()
	}
}

// serveUni reads the endpoint's unidirectional streams (goroutine): its
// control stream (SETTINGS, then GOAWAY) and its QPACK streams (read and
// dropped: the gateway offers no dynamic table). Push streams were never
// allowed (no MAX_PUSH_ID), and a broken control stream ends the
// connection.
func (hu *h3Upstream) serveUni(qc *quic.Conn) {
	defer hu.recoverConn(qc, "h3 upstream control")
	ctx := qc.Context()
	seen := map[uint64]bool{}
	closeWith := func(code h3.ErrCode, tok string) {
		hu.lp.e.m.UpstreamFailure(hu.cluster.Name, tok).Inc()
		hu.lp.e.log.Warn().Str("cluster", hu.cluster.Name).Str("endpoint", hu.ep.Address()).Str("reason", tok).Msg("h3 upstream: connection error")
		_ = qc.CloseWithError(quic.ApplicationErrorCode(code), tok)
	}
	for {
		us, err := qc.AcceptUniStream(ctx)
		if err != nil {
			return
		}
		br := bufio.NewReader(us)
		typ, err := quicvarint.Read(br)
		if err != nil {
			continue
		}
		switch typ {
		case h3.StreamControl, h3.StreamQPACKEncoder, h3.StreamQPACKDecoder:
			if seen[typ] {
				closeWith(h3.ErrCodeStreamCreation, "h3_duplicate_stream")
				return
			}
			seen[typ] = true
			if typ == h3.StreamControl {
				go hu.readControl(qc, br, closeWith)
			} else {
				go func() { _, _ = io.Copy(io.Discard, br) }()
			}
		case h3.StreamPush:
			closeWith(h3.ErrCodeID, "h3_unexpected_push")
			return
		default:
			us.CancelRead(quic.StreamErrorCode(h3.ErrCodeStreamCreation))
		}
	}
}

// readControl reads the endpoint's control stream.
func (hu *h3Upstream) readControl(qc *quic.Conn, br *bufio.Reader, closeWith func(h3.ErrCode, string)) {
	defer hu.recoverConn(qc, "h3 upstream control")
	first := true
	for {
		typ, n, err := readFrameHeader(br)
		if err != nil {
			if qc.Context().Err() == nil {
				closeWith(h3.ErrCodeClosedCriticalStream, "h3_control_stream_closed")
			}
			return
		}
		if n > 16<<10 {
			closeWith(h3.ErrCodeExcessiveLoad, "h3_control_frame_too_large")
			return
		}
		p := make([]byte, n)
		if _, err := io.ReadFull(br, p); err != nil {
			return
		}
		switch {
		case first && typ != h3.FrameSettings:
			closeWith(h3.ErrCodeMissingSettings, "h3_missing_settings")
			return
		case typ == h3.FrameSettings:
			if !first {
				closeWith(h3.ErrCodeFrameUnexpected, "h3_second_settings")
				return
			}
			if _, err := h3.ParseSettings(p); err != nil {
				var he *h3.Error
				if errors.As(err, &he) {
					closeWith(he.Code, "h3_"+he.Token)
				}
				return
			}
		case typ == h3.FrameData || typ == h3.FrameHeaders || typ == h3.FramePushPromse:
			closeWith(h3.ErrCodeFrameUnexpected, "h3_frame_on_control_stream")
			return
		case typ == h3.FrameGoAway:
			id, err := h3.ParseGoAway(p)
			if err != nil {
				closeWith(h3.ErrCodeFrame, "h3_bad_goaway")
				return
			}
			hu.lp.exec("h3 upstream", func() { hu.onGoAway(id) })
		}
		first = false
	}
}

// creditH3 returns held response credit once the downstream has room.
func (lg *leg) creditH3() {
	if us := lg.h3s; us != nil && lg.upHeld > 0 && lg.ds.roomFor(lg) {
		us.giveCredit(lg.upHeld)
		lg.upHeld = 0
	}
}

// hostOf and portOf split an endpoint address.
func hostOf(addr string) string {
	h, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return h
}

func portOf(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// upTLSConfigH3 adjusts a cluster's upstream TLS for QUIC: TLS 1.3 and
// ALPN h3 (newUpstreamTLS).
func upTLSConfigH3(cfg *tls.Config) {
	cfg.MinVersion = tls.VersionTLS13
	cfg.NextProtos = []string{"h3"}
	cfg.CipherSuites = nil
}

// recoverStream contains a panic of one of the stream's goroutines: it is
// counted and logged, the stream is reset both ways and the leg learns of
// it as of a reset.
func (us *h3UpStream) recoverStream(what string) {
	if r := recover(); r != nil {
		e := us.hu.lp.e
		e.m.Panics.Inc()
		e.log.Error().Str("in", what).Interface("panic", r).Bytes("stack", debug.Stack()).Msg("panic recovered; resetting the stream")
		us.st.CancelRead(quic.StreamErrorCode(h3.ErrCodeInternal))
		us.st.CancelWrite(quic.StreamErrorCode(h3.ErrCodeInternal))
		us.hu.lp.exec(what, func() { us.onReset(0) })
	}
}

// recoverConn contains a panic of a connection goroutine: the connection
// is closed (its streams fail through onClosed).
func (hu *h3Upstream) recoverConn(qc *quic.Conn, what string) {
	if r := recover(); r != nil {
		e := hu.lp.e
		e.m.Panics.Inc()
		e.log.Error().Str("in", what).Interface("panic", r).Bytes("stack", debug.Stack()).Msg("panic recovered; closing the connection")
		_ = qc.CloseWithError(quic.ApplicationErrorCode(h3.ErrCodeInternal), "")
	}
}
