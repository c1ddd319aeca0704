// SPDX-License-Identifier: GPL-3.0-only

package engine

import (
	"context"
	"net"

	"github.com/panjf2000/gnet/v2"

	"github.com/expressgateway/expressgateway/codecs/h1"
	"github.com/expressgateway/expressgateway/codecs/msg"
)

// The HTTP/1.1 side of a WebSocket tunnel: the client connection and the
// upstream connection that answered 101 leave the loop together and become
// a tunnel (tunnel.go).

var wsToken = []byte("websocket")

// openTunnel implements tunnelOpener: the upstream's 101 (headLen bytes at
// the start of u's inbound buffer) completed the handshake. The 101 goes to
// the client as the tunnel's first bytes, once both sockets are off the loop.
func (cc *clientConn) openTunnel(lg *leg, u *upstream, headLen int) {
	_, _ = u.c.Discard(headLen)
	fs, arena, added := msg.ForwardResponse(cc.lp.fwd.Fields[:0], cc.lp.fwd.Arena[:0], lg.resp.Fields, lg.respOpts())
	cc.lp.fwd.Fields, cc.lp.fwd.Arena = fs[:0], arena[:0]
	cc.tunHead = h1.AppendResponseHead(nil, 101, lg.resp.Reason, fs, added, h1.Version11, h1.BodyNone, -1, true, nil, wsToken)
	// The endpoint served the handshake: its request is done (a tunnel's
	// lifetime is not a latency sample, nor a request in flight).
	lg.endpointDone(101, false)
	cc.tunUp = u
	cc.tunSince = cc.lp.nowNano()
	cc.startTunnel()
}

// startTunnel moves both sockets off the loop once gnet holds no output for
// either (its close would drop it); until then the sweep calls it again.
func (cc *clientConn) startTunnel() {
	lp, u := cc.lp, cc.tunUp
	lp.flushOut()
	if cc.c.OutboundBuffered() > 0 || u.c.OutboundBuffered() > 0 {
		return
	}
	gc, gu := cc.c, u.c
	// What the client sent after its upgrade request (frames sent before
	// the 101) waited in gnet's inbound buffer: it goes upstream first.
	clientEarly, upEarly := takeInbound(gc), takeInbound(gu)
	head := cc.tunHead
	cc.tunUp, cc.tunHead = nil, nil
	cc.state = csDetached
	cc.c = nil
	u.state = upDetached
	u.c = nil
	u.owner = nil
	cc.lg.up = nil
	delete(lp.clients, cc)
	cnc, err1 := lp.detachConn(gc)
	unc, err2 := lp.detachConn(gu)
	if err1 != nil || err2 != nil {
		lp.e.log.Error().AnErr("client", err1).AnErr("upstream", err2).Msg("websocket detach failed")
		for _, c := range []net.Conn{cnc, unc} {
			if c != nil {
				_ = c.Close()
			}
		}
		u.state = upClosed
		u.finalClose()
		cc.lg.record(502, "detach_failed")
		cc.state = csClosed
		cc.release()
		return
	}
	lp.e.m.Detach("websocket").Inc()
	t := &tunnel{
		conns:  [2]net.Conn{tunClient: cnc, tunUpstream: unc},
		prefix: [2][]byte{tunClient: clientEarly, tunUpstream: upEarly},
		idle:   cc.l.wsIdle,
		max:    cc.l.wsMax,
		done:   func(t *tunnel, reason string) { cc.tunnelDone(u, t, reason) },
	}
	lp.e.openTunnel(t, head)
}

// tunnelDone runs on the tunnel's goroutine when it ended: the accounting
// and the access-log line go back to the loop.
func (cc *clientConn) tunnelDone(u *upstream, t *tunnel, reason string) {
	lp := cc.lp
	err := lp.el.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
		lp.tick()
		u.state = upClosed
		u.finalClose()
		cc.lg.respBytes = t.bytes[tunUpstream].Load()
		cc.lg.bodyBytes = t.bytes[tunClient].Load()
		cc.lg.record(101, "websocket_"+reason)
		cc.state = csClosed
		cc.release()
		return nil
	}))
	if err != nil {
		// The loop is gone (its listener was removed and drained, or the
		// engine stopped): release what is shared across loops here.
		u.finalClose()
		if !cc.released {
			cc.released = true
			cc.l.limiter.Release(cc.x.ClientIP)
			lp.e.global.Release(cc.x.ClientIP)
		}
		cc.l.active.Add(-1)
	}
}
