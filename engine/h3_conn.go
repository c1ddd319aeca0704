// SPDX-License-Identifier: GPL-3.0-only

package engine

import (
	"bufio"
	"errors"
	"io"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/quicvarint"

	"github.com/expressgateway/expressgateway/codecs/h3"
)

// h3Conn is one QUIC connection of an h3 listener: the downstream session
// (h3_front.go has the shape). Its goroutines accept streams and run the
// control stream; the exchanges of its streams live on its loop lp.
type h3Conn struct {
	f  *h3Front
	lp *loop
	qc *quic.Conn

	ip          netip.Addr
	ipText      []byte
	peer, local netip.AddrPort

	ctrlMu     sync.Mutex // the control stream's writes and the GOAWAY decision
	ctrl       *quic.SendStream
	goaway     bool   // guarded by ctrlMu
	goawayID   uint64 // guarded by ctrlMu
	lastID     int64  // the last request stream accepted; guarded by ctrlMu
	requests   int    // accept goroutine only
	active     atomic.Int64
	quietTicks int // watch goroutine only
}

func newH3Conn(f *h3Front, lp *loop, qc *quic.Conn) *h3Conn {
	peer := udpAddrPort(qc.RemoteAddr())
	ip := peer.Addr()
	return &h3Conn{f: f, lp: lp, qc: qc, ip: ip, ipText: []byte(ip.String()), peer: peer, local: udpAddrPort(qc.LocalAddr()), lastID: -1}
}

// view is the listener's current compiled view (reload swaps it).
func (c *h3Conn) view() *listenerRT { return c.f.slot.http.Load() }

func (c *h3Conn) closeWith(code h3.ErrCode, reason string) {
	c.f.e.m.H3ConnError(c.f.slot.name, reason).Inc()
	_ = c.qc.CloseWithError(quic.ApplicationErrorCode(code), reason)
}

// serve runs the connection: the control stream, then request streams
// until the connection ends.
func (c *h3Conn) serve() {
	e := c.f.e
	m := e.m.h3(c.f.slot.name)
	m.conns.Add(1)
	m.connsTotal.Inc()
	defer func() {
		if r := recover(); r != nil {
			e.m.Panics.Inc()
			e.log.Error().Interface("panic", r).Str("listener", c.f.slot.name).Msg("panic in an HTTP/3 connection; it is closed")
			_ = c.qc.CloseWithError(quic.ApplicationErrorCode(h3.ErrCodeInternal), "")
		}
		m.conns.Add(-1)
		c.f.forget(c)
	}()
	l := c.view()
	ctrl, err := c.qc.OpenUniStream()
	if err != nil {
		return
	}
	c.ctrlMu.Lock()
	c.ctrl = ctrl
	b := quicvarint.Append(nil, h3.StreamControl)
	b = h3.AppendSettings(b, h3.Settings{MaxFieldSectionSize: uint64(l.cfg.QUIC.MaxFieldSectionSize)})
	_, err = ctrl.Write(b)
	c.ctrlMu.Unlock()
	if err != nil {
		return
	}
	go c.acceptUni()
	ctx := c.qc.Context()
	for {
		st, err := c.qc.AcceptStream(ctx)
		if err != nil {
			return
		}
		id := uint64(st.StreamID())
		c.ctrlMu.Lock()
		refused := c.goaway && id >= c.goawayID
		if !refused {
			c.lastID = int64(id)
		}
		c.ctrlMu.Unlock()
		if refused {
			st.CancelRead(quic.StreamErrorCode(h3.ErrCodeRequestRejected))
			st.CancelWrite(quic.StreamErrorCode(h3.ErrCodeRequestRejected))
			m.streamError("rejected_after_goaway").Inc()
			continue
		}
		c.requests++
		c.active.Add(1)
		m.streams.Add(1)
		nth := c.requests
		c.f.e.goPool.Go(func() { c.serveStream(st, m, nth) })
		if max := c.view().cfg.QUIC.MaxRequestsPerConnection; max > 0 && c.requests >= max {
			c.goAway("max_requests")
		}
	}
}

// goAway sends GOAWAY once: streams after the last one accepted will not
// be processed; the client opens a new connection for them.
func (c *h3Conn) goAway(reason string) {
	c.ctrlMu.Lock()
	defer c.ctrlMu.Unlock()
	if c.goaway || c.ctrl == nil {
		return
	}
	c.goaway = true
	c.goawayID = uint64(c.lastID + 4)
	if c.lastID < 0 {
		c.goawayID = 0
	}
	_, _ = c.ctrl.Write(h3.AppendGoAway(nil, c.goawayID))
	c.f.e.m.h3(c.f.slot.name).goAway(reason).Inc()
}

// closeIfDone closes a connection that sent GOAWAY once no stream has been
// open for a few watch ticks (time for the last response's data to be
// acknowledged: closing drops what is not).
func (c *h3Conn) closeIfDone() {
	c.ctrlMu.Lock()
	gone := c.goaway
	c.ctrlMu.Unlock()
	if !gone || c.active.Load() > 0 {
		c.quietTicks = 0
		return
	}
	c.quietTicks++
	if c.quietTicks >= 3 {
		_ = c.qc.CloseWithError(quic.ApplicationErrorCode(h3.ErrCodeNo), "")
	}
}

// acceptUni takes the client's unidirectional streams: its control stream
// and QPACK streams (read and ignored: no dynamic table was offered).
func (c *h3Conn) acceptUni() {
	ctx := c.qc.Context()
	seen := map[uint64]bool{}
	for {
		us, err := c.qc.AcceptUniStream(ctx)
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
				c.closeWith(h3.ErrCodeStreamCreation, "duplicate_stream")
				return
			}
			seen[typ] = true
			if typ == h3.StreamControl {
				go c.readControl(br)
			} else {
				go func() { _, _ = io.Copy(io.Discard, br) }()
			}
		case h3.StreamPush:
			c.closeWith(h3.ErrCodeStreamCreation, "client_push")
			return
		default:
			us.CancelRead(quic.StreamErrorCode(h3.ErrCodeStreamCreation))
		}
	}
}

// readControl reads the client's control stream: SETTINGS first, then
// GOAWAY and frames that are ignored; its end is a connection error.
func (c *h3Conn) readControl(br *bufio.Reader) {
	first := true
	for {
		typ, n, err := readFrameHeader(br)
		if err != nil {
			if c.qc.Context().Err() == nil {
				c.closeWith(h3.ErrCodeClosedCriticalStream, "control_stream_closed")
			}
			return
		}
		if n > 16<<10 {
			c.closeWith(h3.ErrCodeExcessiveLoad, "control_frame_too_large")
			return
		}
		p := make([]byte, n)
		if _, err := io.ReadFull(br, p); err != nil {
			return
		}
		switch {
		case first && typ != h3.FrameSettings:
			c.closeWith(h3.ErrCodeMissingSettings, "missing_settings")
			return
		case typ == h3.FrameSettings:
			if !first {
				c.closeWith(h3.ErrCodeFrameUnexpected, "second_settings")
				return
			}
			if _, err := h3.ParseSettings(p); err != nil {
				var he *h3.Error
				if errors.As(err, &he) {
					c.closeWith(he.Code, he.Token)
				}
				return
			}
		case typ == h3.FrameData || typ == h3.FrameHeaders || typ == h3.FramePushPromse:
			c.closeWith(h3.ErrCodeFrameUnexpected, "frame_on_control_stream")
			return
		case typ == h3.FrameGoAway:
			c.f.e.m.h3(c.f.slot.name).goAway("received").Inc()
		}
		first = false
	}
}

// readFrameHeader reads a frame's type and length.
func readFrameHeader(br *bufio.Reader) (h3.FrameType, uint64, error) {
	t, err := quicvarint.Read(br)
	if err != nil {
		return 0, 0, err
	}
	n, err := quicvarint.Read(br)
	if err != nil {
		return 0, 0, err
	}
	return h3.FrameType(t), n, nil
}

// onLoop runs fn on the connection's loop (the hand-off of every stream
// event), with the loop's clock and output flushing as in a callback.
func (c *h3Conn) onLoop(fn func()) bool { return c.lp.exec("h3", fn) }

// streamEndPeek is how long a request stream's reader waits to see
// whether the head is followed by the end of the stream (a request
// without a body) before forwarding it as one with a body.
const streamEndPeek = 20 * time.Millisecond
