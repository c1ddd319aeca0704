// SPDX-License-Identifier: GPL-3.0-only

package engine

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"runtime/debug"

	"github.com/panjf2000/gnet/v2"

	"github.com/expressgateway/expressgateway/codecs/h2"
	"github.com/expressgateway/expressgateway/codecs/msg"
)

// WebSocket over HTTP/2 (RFC 8441) to an HTTP/1.1 upstream. The client's
// extended CONNECT became an Upgrade handshake with a key the gateway made;
// once the upstream's 101 checks out, the client gets 200 and the stream's
// DATA is the tunnel. The upstream socket leaves the loop (gnet cannot stop
// reading it) to two goroutines, and each direction is bounded by a
// credit the loop gives:
//   - upstream → client: the reader reads one chunk (64 KiB) only when the
//     loop asks, and the loop asks only while the stream's pending DATA has
//     room (the client's HTTP/2 window decides how fast it drains); the
//     kernel's TCP window pushes back on the upstream meanwhile;
//   - client → upstream: DATA is queued on the loop and handed to the
//     writer one batch at a time; it is credited back to the client
//     (WINDOW_UPDATE) only once written, so the client can never have more
//     than its stream window in flight.
// The loop owns the stream and all the state below; the goroutines own the
// socket's reads and writes.

// h2Tunnel is one HTTP/2 stream's WebSocket tunnel to an HTTP/1.1 upstream.
type h2Tunnel struct {
	s  *h2Stream // loop only: the stream is recycled once the tunnel closed
	lp *loop     // what the goroutines may use
	u  *upstream
	nc net.Conn

	reads  chan struct{}   // loop → reader: read one chunk (at most one outstanding)
	writes chan tunWrite   // loop → writer (at most one outstanding)
	buf    [upPumpBuf]byte // the reader's buffer; the loop is done with it before the next read

	// Loop-side state.
	reading, writing bool
	pendUp           []byte // client DATA not yet handed to the writer
	clientEnd        bool   // the client's END_STREAM (passed on as a FIN)
	shut             bool   // the FIN was handed to the writer
	closed           bool
	opened, last     int64
	bytes            [2]int64
}

type tunWrite struct {
	data      []byte
	closeHalf bool
}

// wsNewKey makes a Sec-WebSocket-Key for a handshake the gateway makes on
// the client's behalf (16 random bytes, base64, RFC 6455 section 4.1).
func wsNewKey() []byte {
	var k [16]byte
	_, _ = rand.Read(k[:])
	return base64.StdEncoding.AppendEncode(nil, k[:])
}

var nameSecWSAccept = "sec-websocket-accept"

// openTunnel implements tunnelOpener for an HTTP/2 stream: 200 to the
// client, then the upstream leaves the loop as the stream's tunnel.
func (s *h2Stream) openTunnel(lg *leg, u *upstream, headLen int) {
	sc := s.sc
	lp := sc.lp
	_, _ = u.c.Discard(headLen)
	lg.endpointDone(101, false)
	// The 101's fields the client needs (Sec-WebSocket-Protocol, -Extensions
	// and the upstream's own); the accept value answered our key, not the
	// client's (it sent none), and hop-by-hop fields are dropped by the
	// forwarding policy.
	fs := lg.resp.Fields[:0:0]
	for _, f := range lg.resp.Fields {
		if !msg.EqualFold(f.Name, nameSecWSAccept) {
			fs = append(fs, f)
		}
	}
	resp := msg.Response{Status: 200, Fields: fs, Body: msg.BodyStream, ContentLength: -1}
	s.respHead(lg, &resp, false)
	if s.finished {
		return // the head could not be written: the leg was aborted
	}
	lg.respStatus = 200
	prefix := takeInbound(u.c)
	gu := u.c
	u.state = upDetached
	u.c = nil
	u.owner = nil
	lg.up = nil
	nc, err := lp.detachConn(gu)
	if err != nil {
		lp.e.log.Error().Err(err).Msg("websocket detach failed")
		u.state = upClosed
		u.finalClose()
		lg.abortMid("detach_failed")
		return
	}
	lp.e.m.Detach("websocket").Inc()
	lp.e.m.WSActive.Add(1)
	now := lp.nowNano()
	t := &h2Tunnel{s: s, lp: lp, u: u, nc: nc, reads: make(chan struct{}, 1), writes: make(chan tunWrite, 1), opened: now, last: now}
	s.tun = t
	go t.readLoop()
	go t.writeLoop()
	if len(prefix) > 0 {
		t.reading = true
		t.deliver(prefix, nil)
	} else {
		t.resume()
	}
	// Client DATA that arrived before the 101 waited on the stream.
	if len(s.body) > 0 || s.bodyEnd {
		t.fromClient(s.body, s.bodyEnd)
		s.body = s.body[:0]
	}
	sc.flush()
}

// fromClient takes request DATA (and the end of the stream): queued for the
// writer, credited once written.
func (t *h2Tunnel) fromClient(data []byte, end bool) {
	if t.closed {
		t.s.sc.codec.Consumed(t.s.id, len(data))
		return
	}
	if len(data) > 0 {
		t.last = t.s.sc.lp.nowNano()
	}
	t.pendUp = append(t.pendUp, data...)
	t.clientEnd = t.clientEnd || end
	t.kickWriter()
}

func (t *h2Tunnel) kickWriter() {
	if t.writing || t.closed {
		return
	}
	switch {
	case len(t.pendUp) > 0:
		b := t.pendUp
		t.pendUp = nil // the writer owns b until it reports back
		t.writing = true
		t.writes <- tunWrite{data: b}
	case t.clientEnd && !t.shut:
		t.shut = true
		t.writing = true
		t.writes <- tunWrite{closeHalf: true}
	}
}

// resume asks the reader for the next chunk when the stream has room.
func (t *h2Tunnel) resume() {
	if t.reading || t.closed || !t.s.roomFor(&t.s.lg) {
		return
	}
	t.reading = true
	t.reads <- struct{}{}
}

func (t *h2Tunnel) readLoop() {
	lp := t.lp
	defer t.recoverPanic()
	for range t.reads {
		n, err := t.nc.Read(t.buf[:])
		data := t.buf[:n]
		if e := lp.el.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
			defer lp.e.recoverConn(nil, "websocket")
			lp.tick()
			t.deliver(data, err)
			lp.flushOut()
			return nil
		})); e != nil {
			_ = t.nc.Close()
			return
		}
		if err != nil {
			return
		}
	}
}

func (t *h2Tunnel) writeLoop() {
	lp := t.lp
	defer t.recoverPanic()
	for w := range t.writes {
		var err error
		if w.closeHalf {
			if cw, ok := t.nc.(interface{ CloseWrite() error }); ok {
				err = cw.CloseWrite()
			}
		} else {
			_, err = t.nc.Write(w.data)
		}
		n := len(w.data)
		if e := lp.el.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
			defer lp.e.recoverConn(nil, "websocket")
			lp.tick()
			t.written(w.data[:0], n, err)
			lp.flushOut()
			return nil
		})); e != nil {
			_ = t.nc.Close()
			return
		}
		if err != nil {
			return
		}
	}
}

func (t *h2Tunnel) recoverPanic() {
	if r := recover(); r != nil {
		e := t.lp.e
		e.m.Panics.Inc()
		e.log.Error().Interface("panic", r).Bytes("stack", debug.Stack()).Msg("panic recovered in websocket tunnel")
		_ = t.nc.Close()
	}
}

// deliver runs on the loop with a chunk the reader read (or what gnet had
// buffered behind the 101).
func (t *h2Tunnel) deliver(data []byte, rerr error) {
	t.reading = false
	if t.closed {
		return
	}
	s := t.s
	lp := s.sc.lp
	if len(data) > 0 {
		t.last = lp.nowNano()
		t.bytes[tunUpstream] += int64(len(data))
		lp.e.m.WSBytes[tunUpstream].Add(len(data))
		s.lg.respBytes += int64(len(data))
		s.respData(&s.lg, data)
		if s.finished {
			t.close("client_gone")
			return
		}
	}
	if rerr != nil {
		if errors.Is(rerr, io.EOF) {
			// The upstream closed: the stream ends (END_STREAM) and the
			// tunnel with it.
			s.respEnd(&s.lg, nil)
			t.finish("closed")
			return
		}
		t.abort(h2.ErrCodeCancel, errToken(rerr))
		return
	}
	t.resume()
}

// written runs on the loop once the writer is done with a batch: the client
// gets its credit back.
func (t *h2Tunnel) written(b []byte, n int, err error) {
	t.writing = false
	if t.closed {
		return
	}
	s := t.s
	if err != nil {
		t.abort(h2.ErrCodeCancel, errToken(err))
		return
	}
	if n > 0 {
		t.last = s.sc.lp.nowNano()
		t.bytes[tunClient] += int64(n)
		s.sc.lp.e.m.WSBytes[tunClient].Add(n)
		s.lg.bodyBytes += int64(n)
		s.sc.codec.Consumed(s.id, n)
		s.sc.flush()
		if len(t.pendUp) == 0 {
			t.pendUp = b // reuse the batch's array
		}
	}
	t.kickWriter()
}

// onTimer enforces websocket_idle and websocket_max_duration.
func (t *h2Tunnel) onTimer(now int64) {
	l := t.s.lg.l
	switch {
	case now-t.last > int64(l.wsIdle):
		t.abort(h2.ErrCodeCancel, "idle_timeout")
	case l.wsMax > 0 && now-t.opened > int64(l.wsMax):
		t.abort(h2.ErrCodeCancel, "max_duration")
	}
}

// abort resets the client's stream and ends the tunnel.
func (t *h2Tunnel) abort(code h2.ErrCode, reason string) {
	s := t.s
	_ = s.sc.codec.WriteRST(s.id, code)
	s.sc.lp.e.m.H2Reset("sent", code.String()).Inc()
	s.sc.flush()
	s.pend, s.pendEnd = s.pend[:0], false // nothing more goes on a reset stream
	t.finish(reason)                      // frees the stream
}

// finish closes the tunnel and accounts the exchange; the stream lives on
// until its pending DATA is out.
func (t *h2Tunnel) finish(reason string) {
	if t.closed {
		return
	}
	t.close(reason)
	s := t.s
	s.lg.record(s.lg.respStatus, "websocket_"+reason)
	s.lg.ds.exchangeDone(&s.lg)
}

// close releases the socket and the gauges (the exchange is accounted by
// finish, or by the stream's own abort).
func (t *h2Tunnel) close(reason string) {
	if t.closed {
		return
	}
	t.closed = true
	_ = t.nc.Close() // unblocks both goroutines
	close(t.reads)
	close(t.writes)
	t.u.state = upClosed
	t.u.finalClose()
	e := t.s.sc.lp.e
	e.m.WSActive.Add(-1)
	e.m.WSClosed(reason).Inc()
	if t.s.tun == t {
		t.s.tun = nil
	}
}
