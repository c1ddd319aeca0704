// SPDX-License-Identifier: GPL-3.0-only

package engine

import (
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/expressgateway/expressgateway/codecs/h1"
	"github.com/expressgateway/expressgateway/lb"
	"github.com/expressgateway/expressgateway/stages"
)

type upState uint8

const (
	upDialing     upState = iota // dial in flight, not yet on the loop
	upActive                     // serving owner
	upIdle                       // parked in the pool
	upDetached                   // owned by a pump goroutine
	upReattaching                // handed back to the loop by a pump
	upClosed
)

// upstream is one connection to an endpoint, living on the same event loop
// as the client that uses it (ARCHITECTURE.md; dial with our own timeout, then
// Enroll). Owned by its loop except while detached.
type upstream struct {
	lp      *loop
	c       gnet.Conn
	cluster *stages.Cluster
	ep      *lb.Endpoint
	owner   *leg
	state   upState
	reused  bool
	counted bool // holds the cluster's active gauge and the endpoint's conn count

	parser    h1.ResponseParser
	resp      h1.Response
	body      h1.BodyDecoder
	idleSince int64
	active    *atomic.Int64
	tls       bool // spoken over TLS (a pool keeps it only while the cluster says so)
	// noPool: the connection carried a PROXY header naming one client,
	// so it is never shared; it closes after its exchange.
	noPool bool
}

func newUpstream(lp *loop, cl *stages.Cluster, ep *lb.Endpoint) *upstream {
	u := &upstream{lp: lp, cluster: cl, ep: ep, state: upDialing, active: lp.e.m.UpstreamActive(cl.Name)}
	u.parser.Limits = h1.DefaultLimits()
	return u
}

// dial connects in a goroutine with a timeout and enrolls the socket on the
// loop; the outcome comes back through OnOpen or Execute.
func (u *upstream) dial(timeout time.Duration) {
	u.lp.e.clusters.countConnect(u.cluster)
	d := u.lp.e.clusters.TLS(u.cluster).dial(u.ep)
	u.tls = d != nil
	u.noPool = u.lp.e.clusters.ProxyProtocol(u.cluster) != ""
	u.lp.dialEnrollTLS("tcp", u.ep.Address(), timeout, d, u, u.onDialFailed)
}

func (u *upstream) onDialFailed(reason string) {
	u.state = upClosed
	if lg := u.owner; lg != nil && lg.up == u {
		u.owner = nil
		lg.failed(reason, 502, true)
	}
}

func (u *upstream) onOpen(c gnet.Conn) {
	u.c = c
	switch u.state {
	case upReattaching:
		u.state = upIdle
		if !u.lp.poolFor(u.ep, u.lp.e.clusters.MaxIdle(u.cluster), u.lp.e.idleTTL(u.owner)).put(u) {
			u.close()
		}
		return
	case upDialing:
	default:
		_ = c.Close()
		return
	}
	u.counted = true
	u.active.Add(1)
	u.ep.ConnOpened()
	lg := u.owner
	if lg == nil || lg.up != u {
		// The client left while we dialed: keep the fresh connection.
		u.owner = nil
		u.release()
		return
	}
	u.state = upActive
	lg.onReady(u)
}

func (u *upstream) onTraffic() {
	if u.state != upActive || u.owner == nil {
		// An idle pooled connection must not talk: whatever it says would
		// be read as the next client's response. It is retired, and the
		// upstream is blamed for it.
		u.lp.e.upstreamExtraBytes(u, u.c.InboundBuffered())
		_, _ = u.c.Discard(-1)
		u.close()
		return
	}
	u.owner.onData(u)
}

func (u *upstream) onClose(c gnet.Conn, _ error) {
	if c != u.c || u.state == upDetached {
		return
	}
	prev := u.state
	u.state = upClosed
	u.finalClose()
	if prev == upIdle {
		if p := u.lp.pools[u.ep]; p != nil {
			p.remove(u)
		}
		return
	}
	if lg := u.owner; lg != nil {
		u.owner = nil
		lg.onUpstreamClosed(u)
	}
}

// finalClose releases the gauges once the connection is gone for good.
func (u *upstream) finalClose() {
	if u.counted {
		u.counted = false
		u.active.Add(-1)
		u.ep.ConnClosed()
	}
}

// beginResponse readies the parser for the response to a new request.
func (u *upstream) beginResponse() {
	u.parser.Reset()
	u.resp = h1.Response{Headers: u.resp.Headers[:0]}
}

// release parks the connection in its pool, or closes it. A connection goes
// back to the pool only when its last response ended exactly at the end of
// the bytes received (RFC 9112 sections 6.3 and 9.3): any byte left over
// would be taken for the next client's response, so it closes instead.
func (u *upstream) release() {
	u.owner = nil
	if u.c != nil {
		if n := u.c.InboundBuffered(); n > 0 {
			u.lp.e.upstreamExtraBytes(u, n)
			u.close()
			return
		}
	}
	if u.noPool {
		u.close()
		return
	}
	u.state = upIdle
	if !u.lp.poolFor(u.ep, u.lp.e.clusters.MaxIdle(u.cluster), u.lp.e.idleTTL(nil)).put(u) {
		u.close()
	}
}

// close closes the connection; OnClose finishes the bookkeeping.
func (u *upstream) close() {
	if u.state == upClosed && u.c == nil {
		return
	}
	u.owner = nil
	if u.state == upIdle {
		if p := u.lp.pools[u.ep]; p != nil {
			p.remove(u)
		}
	}
	u.state = upClosed
	if u.c != nil {
		_ = u.c.Close()
	}
}

func (u *upstream) fail(error) { u.close() }

// upstreamExtraBytes counts and logs an upstream that sent n bytes past the
// end of a response (or on an idle pooled connection): the upstream's fault,
// never reused. Runs on the loop.
func (e *Engine) upstreamExtraBytes(u *upstream, n int) {
	e.m.UpstreamFailure(u.cluster.Name, "extra_bytes").Inc()
	e.log.Warn().Str("cluster", u.cluster.Name).Str("endpoint", u.ep.Address()).Int("bytes", n).
		Msg("upstream sent more data than specified; connection closed, not reused")
}

// idleTTL is the pool idle timeout for connections of lg's listener.
func (e *Engine) idleTTL(lg *leg) time.Duration {
	if lg != nil {
		return lg.l.upIdle
	}
	return e.defaultUpIdle()
}
