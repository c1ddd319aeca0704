// SPDX-License-Identifier: GPL-3.0-only

package engine

import (
	"context"
	"errors"
	"io"
	"net"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/expressgateway/expressgateway/codecs/h1"
	"github.com/expressgateway/expressgateway/guards"
)

// Long streams leave the event loop. gnet always drains a socket into an
// unbounded inbound buffer and never pauses reading, so a fast sender facing a
// slow receiver would grow memory without limit. For a long request body the
// whole exchange (both sockets) moves to two goroutines doing blocking I/O,
// where TCP flow control pushes back on the sender; for a long response to a
// slow client only the upstream socket leaves, and the pump writes to the
// client through AsyncWrite, waiting while its outbound buffer is above
// max_inflight_bytes. When the exchange ends, the sockets return to the loop
// through Enroll (ARCHITECTURE.md, "Backpressure and bounded memory").

const pumpBuf = 64 << 10

// detachConn takes the socket away from gnet: dup the fd, wrap the dup as a
// net.Conn, then let gnet close its own fd (it does not shutdown, so the
// socket lives on). The caller must have cleared the actor's reference first
// so that OnClose for the old gnet conn is ignored.
func (lp *loop) detachConn(c gnet.Conn) (net.Conn, error) {
	nc, err := dupConn(c)
	if err != nil {
		return nil, err
	}
	lp.closeNow(c)
	return nc, nil
}

// takeInbound copies and discards what gnet already buffered for c.
func takeInbound(c gnet.Conn) []byte {
	buf, _ := c.Peek(-1)
	if len(buf) == 0 {
		return nil
	}
	out := append([]byte(nil), buf...)
	_, _ = c.Discard(-1)
	return out
}

// prefixed reads first from prefix, then from the connection, with a fresh
// read deadline per read.
type prefixed struct {
	prefix  []byte
	nc      net.Conn
	timeout time.Duration
}

func (p *prefixed) Read(b []byte) (int, error) {
	if len(p.prefix) > 0 {
		n := copy(b, p.prefix)
		p.prefix = p.prefix[n:]
		return n, nil
	}
	if p.timeout > 0 {
		_ = p.nc.SetReadDeadline(time.Now().Add(p.timeout))
	}
	return p.nc.Read(b)
}

// exchangeResult is what the pumps report back to the loop.
type exchangeResult struct {
	err         error
	reason      string
	status      int
	respHead    bool
	reqDone     bool
	keepClient  bool
	upReusable  bool
	respBytes   int64
	bodyBytes   int64
	leftover    bool
	extra       int // upstream bytes past the end of the response
	cnc, unc    net.Conn
	localStatus int // when no response head went out: answer this locally
}

// pendingDetach is an exchange waiting for the client's outbound buffer to
// drain before it can leave the loop.
type pendingDetach struct {
	u     *upstream
	head  []byte
	since int64
}

// detachExchange moves a request with a long body, and its response, off the
// loop. head is the request head for the upstream.
func (cc *clientConn) detachExchange(u *upstream, head []byte) {
	cc.lp.flushOut()
	gc, gu := cc.c, u.c
	if gu.OutboundBuffered() > 0 || gc.OutboundBuffered() > 0 {
		// gnet's close drops what its outbound buffer still holds (the end
		// of the previous, pipelined response to a client that has not read
		// it yet): wait until it has drained; the sweep retries.
		if cc.pending == nil {
			cc.pending = &pendingDetach{u: u, head: head, since: cc.lp.nowNano()}
			cc.lp.e.guardHit(&cc.r.x, guards.DetachWait, guards.Stream)
		}
		return
	}
	cc.pending = nil
	prefix := takeInbound(gc)
	cc.state = csDetached
	cc.c = nil
	u.state = upDetached
	u.c = nil
	delete(cc.lp.clients, cc)
	cnc, err1 := cc.lp.detachConn(gc)
	unc, err2 := cc.lp.detachConn(gu)
	if err1 != nil || err2 != nil {
		cc.lp.e.log.Error().AnErr("client", err1).AnErr("upstream", err2).Msg("detach failed")
		if cnc != nil {
			_ = cnc.Close()
		}
		if unc != nil {
			_ = unc.Close()
		}
		u.finalClose()
		cc.r.lg.endpointDone(502, false)
		cc.release()
		return
	}
	cc.lp.e.m.Detach("request").Inc()
	cc.r.reqBody.Reset(cc.r.req.Body, cc.r.req.ContentLength, cc.l.limits)
	go cc.runExchangePump(u, cnc, unc, head, prefix)
}

func (cc *clientConn) runExchangePump(u *upstream, cnc, unc net.Conn, head, prefix []byte) {
	res := exchangeResult{cnc: cnc, unc: unc}
	defer func() {
		if r := recover(); r != nil {
			cc.lp.e.m.Panics.Inc()
			cc.lp.e.log.Error().Interface("panic", r).Bytes("stack", debug.Stack()).Msg("panic recovered in request pump")
			res.err = errPanic
		}
		cc.handBack(u, &res)
	}()
	l := cc.l
	reqDone := make(chan error, 1)
	reqSent := make(chan struct{})
	var headSeen atomic.Bool
	go func() {
		// The response-header timeout starts once the body is all sent.
		<-reqSent
		if !headSeen.Load() {
			_ = unc.SetReadDeadline(time.Now().Add(l.upRespHeader))
		}
	}()
	var leftover []byte
	go func() {
		defer func() {
			if r := recover(); r != nil {
				cc.lp.e.m.Panics.Inc()
				reqDone <- errPanic
			}
		}()
		var err error
		leftover, err = cc.pumpRequestBody(&prefixed{prefix: prefix, nc: cnc, timeout: l.bodyIdle}, unc, head, &res)
		close(reqSent)
		if err != nil {
			// The request cannot complete: stop waiting for a response.
			_ = unc.SetReadDeadline(time.Now())
		}
		reqDone <- err
	}()
	cc.pumpResponse(unc, cnc, &res, &headSeen)
	var reqErr error
	select {
	case reqErr = <-reqDone:
	default:
		if res.err == nil && res.respHead {
			// The upstream answered before the body ended (e.g. 413):
			// stop reading the client, the connection cannot be reused.
			_ = cnc.SetReadDeadline(time.Now())
		}
		reqErr = <-reqDone
	}
	res.reqDone = reqErr == nil
	res.leftover = len(leftover) > 0
	if reqErr != nil && res.err == nil && !res.respHead {
		res.err = reqErr
	}
	if reqErr != nil {
		var he *h1.Error
		switch {
		case errors.As(reqErr, &he):
			res.localStatus, res.reason = he.Status, "codec_"+he.Token
		case isTimeout(reqErr):
			res.localStatus, res.reason = 408, "body_idle"
		case res.reason == "":
			res.reason = "client_body_error"
		}
	}
}

// pumpRequestBody writes the head and then the decoded, re-framed body.
func (cc *clientConn) pumpRequestBody(src *prefixed, dst net.Conn, head []byte, res *exchangeResult) (leftover []byte, err error) {
	l := cc.l
	if _, err := dst.Write(head); err != nil {
		return nil, err
	}
	buf := make([]byte, pumpBuf)
	out := make([]byte, 0, pumpBuf+32)
	have := 0
	start := time.Now()
	for {
		if have == len(buf) {
			return nil, errors.New("request body framing line too long")
		}
		n, rerr := src.Read(buf[have:])
		have += n
		p := buf[:have]
		for len(p) > 0 {
			used, data, done, derr := cc.r.reqBody.Decode(p)
			if derr != nil {
				return nil, derr
			}
			if len(data) > 0 {
				res.bodyBytes += int64(len(data))
				w := data
				if cc.r.req.Body == h1.BodyChunked {
					out = h1.AppendChunk(out[:0], data)
					w = out
				}
				_ = dst.SetWriteDeadline(time.Now().Add(l.bodyIdle))
				if _, err := dst.Write(w); err != nil {
					return nil, err
				}
			}
			p = p[used:]
			if done {
				if cc.r.req.Body == h1.BodyChunked {
					out = h1.AppendLastChunk(out[:0], h1.FilterTrailers(cc.r.reqBody.Trailers()))
					if _, err := dst.Write(out); err != nil {
						return nil, err
					}
				}
				return append(append([]byte(nil), p...), src.prefix...), nil
			}
			if used == 0 {
				break
			}
		}
		have = copy(buf, p)
		if l.tooSlow(res.bodyBytes, start.UnixNano(), time.Now().UnixNano()) {
			cc.lp.e.guardHit(nil, guards.SlowPost, guards.Connection)
			return nil, errSlowPost
		}
		if rerr != nil {
			if rerr == io.EOF {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, rerr
		}
	}
}

var (
	errSlowPost          = errors.New("request body slower than body_min_rate")
	errUnexpectedUpgrade = errors.New("upstream answered 101 to a request without Upgrade")
)

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// pumpResponse reads the response head (relaying 1xx) and body from unc and
// writes them to the client with blocking I/O.
func (cc *clientConn) pumpResponse(unc, cnc net.Conn, res *exchangeResult, headSeen *atomic.Bool) {
	l := cc.l
	var parser h1.ResponseParser
	parser.Limits = h1.DefaultLimits()
	var resp h1.Response
	buf := make([]byte, pumpBuf)
	have := 0
	for {
		if have == len(buf) {
			res.err, res.reason, res.localStatus = errors.New("response head too large"), "bad_response", 502
			return
		}
		n, err := unc.Read(buf[have:])
		have += n
		for {
			hn, done, perr := parser.Parse(buf[:have], cc.r.req.Method, &resp)
			if perr != nil {
				res.err, res.reason, res.localStatus = perr, "bad_response", 502
				return
			}
			if !done {
				break
			}
			if resp.Status >= 200 {
				headSeen.Store(true)
				res.respHead = true
				res.status = resp.Status
				outKind, keep := cc.responseFraming(resp.Body)
				res.keepClient = keep
				opts := l.proxyOpts
				opts.SetCookie = cc.r.x.Pick.SetCookie
				head := h1.AppendProxyResponseHead(nil, &resp, &opts, cc.r.req.Version, outKind, keep)
				if _, err := cnc.Write(head); err != nil {
					res.err, res.reason = err, "client_write"
					return
				}
				var dec h1.BodyDecoder
				dec.ResetResponse(resp.Body, resp.ContentLength, h1.Limits{MaxTrailerBytes: l.limits.MaxTrailerBytes, MaxChunkExtension: l.limits.MaxChunkExtension})
				rest := append([]byte(nil), buf[hn:have]...)
				src := &prefixed{prefix: rest, nc: unc, timeout: l.bodyIdle}
				w := func(b []byte) error {
					_ = cnc.SetWriteDeadline(time.Now().Add(l.bodyIdle))
					_, err := cnc.Write(b)
					return err
				}
				if resp.Body.Empty(resp.ContentLength) {
					// Nothing to pump.
					res.extra = len(rest)
					res.upReusable = resp.KeepAlive && res.extra == 0
					return
				}
				n, clean, extra, err := pumpBody(src, &dec, resp.Body, outKind, w)
				res.respBytes = n
				res.extra = extra
				res.upReusable = clean && resp.KeepAlive
				if err != nil {
					res.err, res.reason = err, "response_body"
				}
				return
			}
			if resp.Status == 101 {
				// Upgrade is never forwarded: a 101 is the upstream's
				// protocol error, and what follows it is not HTTP.
				res.err, res.reason, res.localStatus = errUnexpectedUpgrade, "unexpected_upgrade", 502
				return
			}
			// Interim response: relay to an HTTP/1.1 client (a 100 only
			// when the gateway did not already send its own).
			if cc.r.req.Version == h1.Version11 && !(cc.r.lg.sent100 && resp.Status == 100) {
				interim := h1.AppendProxyResponseHead(nil, &resp, &l.proxyOpts, cc.r.req.Version, h1.BodyNone, true)
				if _, err := cnc.Write(interim); err != nil {
					res.err, res.reason = err, "client_write"
					return
				}
			}
			have = copy(buf, buf[hn:have])
			parser.Reset()
		}
		if err != nil {
			res.err, res.reason, res.localStatus = err, "reset", 502
			if isTimeout(err) {
				res.reason, res.localStatus = "response_header_timeout", 504
			}
			return
		}
	}
}

// pumpBody copies one message body from src to write, re-framing chunked
// output. It reports the payload bytes and whether the source connection is
// clean for reuse: the body ended on its framing (not on EOF) exactly at the
// end of the bytes received. extra counts the bytes received past that end;
// a connection with any is never reused (they would be the next client's
// response).
func pumpBody(src *prefixed, dec *h1.BodyDecoder, in, out h1.BodyKind, write func([]byte) error) (total int64, clean bool, extra int, err error) {
	buf := make([]byte, pumpBuf)
	frame := make([]byte, 0, pumpBuf+32)
	have := 0
	for {
		n, rerr := src.Read(buf[have:])
		have += n
		p := buf[:have]
		for len(p) > 0 {
			used, data, done, err := dec.Decode(p)
			if err != nil {
				return total, false, 0, err
			}
			if len(data) > 0 {
				total += int64(len(data))
				w := data
				if out == h1.BodyChunked {
					frame = h1.AppendChunk(frame[:0], data)
					w = frame
				}
				if err := write(w); err != nil {
					return total, false, 0, err
				}
			}
			p = p[used:]
			if done {
				if out == h1.BodyChunked {
					frame = h1.AppendLastChunk(frame[:0], h1.FilterTrailers(dec.Trailers()))
					if err := write(frame); err != nil {
						return total, false, 0, err
					}
				}
				extra = len(p) + len(src.prefix)
				return total, extra == 0, extra, nil
			}
			if used == 0 {
				break
			}
		}
		have = copy(buf, p)
		if have == len(buf) {
			return total, false, 0, errors.New("body framing line too long")
		}
		if rerr != nil {
			if rerr == io.EOF && in == h1.BodyUntilClose {
				return total, false, 0, nil
			}
			if rerr == io.EOF {
				rerr = io.ErrUnexpectedEOF
			}
			return total, false, 0, rerr
		}
	}
}

// handBack returns the sockets of a finished pumped exchange to the loop.
func (cc *clientConn) handBack(u *upstream, res *exchangeResult) {
	lp := cc.lp
	keepUp := res.err == nil && res.reqDone && res.upReusable && res.extra == 0
	keepClient := res.err == nil && res.reqDone && res.keepClient && !res.leftover && !cc.closeAfter
	if !res.respHead && res.localStatus != 0 && res.cnc != nil {
		// Nothing went to the client yet: tell it why, then close.
		out := h1.AppendSimpleResponse(nil, res.localStatus, nil, []byte(h1.StatusText(res.localStatus)+"\n"), true)
		_ = res.cnc.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = res.cnc.Write(out)
		keepClient = false
	}
	if keepUp {
		u.state = upReattaching
		u.owner = nil
		if _, err := lp.el.Enroll(gnet.NewContext(context.Background(), u), res.unc); err != nil {
			keepUp = false
		}
	}
	if !keepUp {
		_ = res.unc.Close()
	}
	lp.exec("pump", func() {
		if !keepUp {
			u.state = upClosed
			u.finalClose()
		}
		if res.extra > 0 {
			lp.e.upstreamExtraBytes(u, res.extra)
		}
		cc.finishPumped(res, keepClient)
	})
}

// finishPumped runs on the loop when the pumps are done.
func (cc *clientConn) finishPumped(res *exchangeResult, keepClient bool) {
	cc.r.lg.up = nil
	cc.r.lg.respBytes = res.respBytes
	status := res.status
	if !res.respHead {
		status = res.localStatus
		if status == 0 {
			status = 502
		}
	}
	cc.r.lg.respStatus = status
	if res.err != nil {
		cc.lp.e.m.UpstreamFailure(cc.r.x.Cluster.Name, res.reason).Inc()
		if res.reason == string(guards.BodyIdle) || res.reason == string(guards.SlowPost) {
			cc.lp.e.guardHit(&cc.r.x, guards.Name(res.reason), guards.Connection)
		}
	}
	if res.err == errUnexpectedUpgrade {
		cc.r.lg.endpointDone(0, false) // the upstream's protocol error, not a health signal
	} else {
		cc.r.lg.endpointDone(status, false)
	}
	cc.r.lg.record(status, res.reason)
	if keepClient {
		// Enroll registers its own dup of the socket and closes res.cnc
		// once it has; closing it here would race with that dup.
		if _, err := cc.lp.el.Enroll(gnet.NewContext(context.Background(), cc), res.cnc); err == nil {
			return
		}
	}
	_ = res.cnc.Close()
	cc.state = csClosed
	cc.release()
}

// detachResponse moves the rest of a response body to a pump goroutine that
// reads the upstream with blocking I/O and writes to the client through
// AsyncWrite, waiting while the client's outbound buffer is over the limit.
func (cc *clientConn) detachResponse(u *upstream) {
	prefix := takeInbound(u.c)
	gu := u.c
	u.state = upDetached
	u.c = nil
	unc, err := cc.lp.detachConn(gu)
	if err != nil {
		cc.lp.e.log.Error().Err(err).Msg("detach failed")
		u.finalClose()
		cc.r.lg.up = nil
		cc.r.lg.abortMid("detach_failed")
		return
	}
	cc.r.lg.respPumping = true
	cc.lp.e.m.Detach("response").Inc()
	go cc.runResponsePump(cc.r, u, unc, prefix, cc.c, cc.respOut)
}

// errSendStall: the client took no response byte for body_idle while the
// pump waited for room in its outbound buffer.
var errSendStall = errors.New("the client took no response byte for body_idle")

// clientWriteError marks a pump error as the client's side (its write
// failed or stalled), not the upstream's.
type clientWriteError struct{ err error }

func (e clientWriteError) Error() string { return "client write: " + e.err.Error() }
func (e clientWriteError) Unwrap() error { return e.err }

// runResponsePump is the pump goroutine. It owns u and unc; r is the
// exchange it serves, which the client's close may take from cc (the
// client's OnClose then counts the exchange, 499) while the pump runs: the
// pump then only ends its own part, on the loop, and touches nothing else.
func (cc *clientConn) runResponsePump(r *h1Exchange, u *upstream, unc net.Conn, prefix []byte, client gnet.Conn, out h1.BodyKind) {
	lp := cc.lp
	limit := cc.l.inflight
	idle := cc.l.bodyIdle
	type ack struct {
		err      error
		buffered int
	}
	acks := make(chan ack, 1)
	cb := func(c gnet.Conn, err error) error {
		b := 0
		if err == nil {
			b = c.OutboundBuffered()
		}
		acks <- ack{err, b}
		return nil
	}
	check := gnet.RunnableFunc(func(context.Context) error {
		defer func() {
			if p := recover(); p != nil {
				lp.e.m.Panics.Inc()
				lp.e.log.Error().Interface("panic", p).Bytes("stack", debug.Stack()).Msg("panic recovered in response pump check")
				acks <- ack{errPanic, 0}
			}
		}()
		lp.flushOut()
		acks <- ack{nil, client.OutboundBuffered()}
		return nil
	})
	write := func(b []byte) error {
		if err := client.AsyncWrite(b, cb); err != nil {
			return clientWriteError{err}
		}
		a := <-acks
		// Wait while the client holds more than the limit unread, for as
		// long as it keeps taking bytes; body_idle without progress ends
		// the exchange (nginx's send_timeout, HAProxy's timeout client).
		low, since := a.buffered, time.Now()
		for a.err == nil && a.buffered > limit {
			time.Sleep(2 * time.Millisecond)
			if err := lp.el.Execute(context.Background(), check); err != nil {
				return clientWriteError{err}
			}
			a = <-acks
			if a.buffered < low {
				low, since = a.buffered, time.Now()
			} else if time.Since(since) > idle {
				return clientWriteError{errSendStall}
			}
		}
		if a.err != nil {
			return clientWriteError{a.err}
		}
		return nil
	}
	var (
		n        int64
		reusable bool
		extra    int
		err      error
	)
	func() {
		defer func() {
			if p := recover(); p != nil {
				lp.e.m.Panics.Inc()
				lp.e.log.Error().Interface("panic", p).Bytes("stack", debug.Stack()).Msg("panic recovered in response pump")
				err = errPanic
			}
		}()
		src := &prefixed{prefix: prefix, nc: unc, timeout: idle}
		n, reusable, extra, err = pumpBody(src, &u.body, u.resp.Body, out, write)
	}()
	reusable = reusable && err == nil && u.resp.KeepAlive && !r.lg.ws
	if extra > 0 {
		lp.exec("pump", func() { lp.e.upstreamExtraBytes(u, extra) })
	}
	if reusable {
		u.state = upReattaching
		u.owner = nil
		if _, e := lp.el.Enroll(gnet.NewContext(context.Background(), u), unc); e != nil {
			reusable = false
		}
	}
	if !reusable {
		_ = unc.Close()
	}
	lp.exec("pump", func() {
		if !reusable {
			u.state = upClosed
			u.finalClose()
		}
		lg := &r.lg
		lg.respPumping = false
		lg.respBytes += n
		lg.up = nil
		if cc.r != r {
			// The client closed while the pump ran: its OnClose counted
			// the exchange and gave back the connection.
			lg.endpointDone(lg.respStatus, false)
			return
		}
		if err != nil {
			var cw clientWriteError
			if errors.As(err, &cw) {
				// The response was the upstream's to give and it gave it:
				// the endpoint did its part.
				if errors.Is(err, errSendStall) {
					lp.e.guardHit(&r.x, guards.SendStall, guards.Connection)
				}
				lg.endpointDone(lg.respStatus, false)
				lg.record(lg.respStatus, "client_write")
			} else {
				lp.e.m.UpstreamFailure(r.x.Cluster.Name, "response_body").Inc()
				lg.endpointDone(lg.respStatus, false)
				lg.record(lg.respStatus, "response_body_error")
			}
			if cc.state != csClosed {
				cc.abort()
			}
			return
		}
		if cc.state == csClosed {
			lg.endpointDone(lg.respStatus, false)
			return
		}
		lg.finish(true)
	})
}
