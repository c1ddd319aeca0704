// SPDX-License-Identifier: GPL-3.0-only

package engine

import (
	"github.com/expressgateway/expressgateway/codecs/h1"
	"github.com/expressgateway/expressgateway/codecs/msg"
	"github.com/expressgateway/expressgateway/stages"
)

// h1Exchange is the per-request state of an HTTP/1.1 connection: the
// parser, the wire and neutral heads, the exchange the pipeline reads, the
// upstream leg and the body decoder, about 1.5 KiB. A connection takes one
// from its loop's free list when a request's first byte arrives (or a
// deadline needs one to answer) and gives it back when it is idle again
// with nothing buffered, so an idle keep-alive connection holds none of it
// (issue 15 §5: RSS per idle connection).
//
// Reuse across connections is safe only if nothing outside the connection
// still points into the struct when it goes back: putExchange refuses (and
// the struct is left to the garbage collector) while the leg holds an
// upstream connection, an HTTP/2 upstream stream, an endpoint or queue
// slot, or a response pump; everything else that points at it (the
// pipeline, timers, the access log) is done with it synchronously, on the
// loop, before the exchange ends. The struct is zeroed on return except for
// the capacity of its buffers.
type h1Exchange struct {
	parser  h1.RequestParser
	req     h1.Request  // the wire head; Target and Host replaced by their normal forms
	mreq    msg.Request // the neutral head the pipeline reads (x.Req)
	norm    []byte      // the normalised path and authority mreq points into
	perr    msg.Error   // the codec's verdict on a malformed head
	x       stages.Exchange
	lg      leg // the exchange's upstream side
	reqBody h1.BodyDecoder
}

// h1FreeMax bounds the per-loop free list of HTTP/1.1 request states.
const h1FreeMax = 1024

// take gives the connection a request state if it has none; the state
// carries the connection's identity (address, listener view, TLS identity).
func (cc *clientConn) take() *h1Exchange {
	if cc.r != nil {
		return cc.r
	}
	lp := cc.lp
	var r *h1Exchange
	if n := len(lp.h1free); n > 0 {
		r = lp.h1free[n-1]
		lp.h1free[n-1] = nil
		lp.h1free = lp.h1free[:n-1]
	} else {
		r = new(h1Exchange)
	}
	r.parser.Reset()
	r.parser.Limits = cc.l.limits
	r.x.Req = &r.mreq
	r.x.Owner = cc
	r.x.Forwarder = cc
	r.x.Listener = cc.l.view
	r.x.ClientIP = cc.clientIP
	r.x.ConnRequests = cc.requests
	lg := &r.lg
	lg.lp, lg.l, lg.x, lg.ds = lp, cc.l, &r.x, cc
	lg.ip, lg.identity, lg.peer, lg.local = cc.ip, cc.identity, cc.peer, cc.local
	lg.proto = "h1"
	lg.grpcStatus = -1
	cc.r = r
	return r
}

// putExchange gives the request state back to the loop once the
// connection is idle with nothing buffered; see h1Exchange for when it
// stays with the connection instead.
func (cc *clientConn) putExchange() {
	r := cc.r
	if r == nil {
		return
	}
	if cc.state == csHead && (cc.headStart != 0 || (cc.c != nil && cc.c.InboundBuffered() > 0)) {
		return // a head is on its way: keep parsing it
	}
	lg := &r.lg
	if lg.up != nil || lg.h2u != nil || lg.epBegun || lg.counted || lg.respPumping {
		// Something may still reach the leg: never reused, left to the GC.
		cc.r = nil
		return
	}
	cc.r = nil
	lp := cc.lp
	if len(lp.h1free) >= h1FreeMax {
		return
	}
	*lg = leg{
		upPend: keepBuf(lg.upPend), upPendTrl: lg.upPendTrl[:0], upPendTrlB: keepBuf(lg.upPendTrlB),
		resp: msg.Response{Fields: lg.resp.Fields[:0]},
	}
	r.x = stages.Exchange{}
	r.req = h1.Request{}
	r.mreq = msg.Request{}
	r.perr = msg.Error{}
	r.norm = keepBuf(r.norm)
	r.parser.Reset()
	lp.h1free = append(lp.h1free, r)
}
