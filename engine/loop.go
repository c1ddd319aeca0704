// SPDX-License-Identifier: GPL-3.0-only

package engine

import (
	"context"
	"net"
	"sync"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/expressgateway/expressgateway/codecs/msg"
	"github.com/expressgateway/expressgateway/engine/accesslog"
	"github.com/expressgateway/expressgateway/guards"
	"github.com/expressgateway/expressgateway/lb"
	"github.com/expressgateway/expressgateway/stages"
)

// loop is the state one gnet event loop owns: its pipeline and rings, its
// upstream pools, the actors with deadlines, and scratch buffers. Only that
// loop's callbacks touch it.
type loop struct {
	e        *Engine
	el       gnet.EventLoop
	pipeline *stages.Pipeline
	pools    map[*lb.Endpoint]*pool
	h2pools  map[*lb.Endpoint][]*h2Upstream // h2c upstream connections, by endpoint
	h3pools  map[*lb.Endpoint][]*h3Upstream // HTTP/3 upstream connections, by endpoint
	clients  map[*clientConn]struct{}
	h2conns  map[*h2Conn]struct{}
	h2free   []*h2Stream            // finished HTTP/2 streams, reused
	h1free   []*h1Exchange          // HTTP/1.1 request states, reused (h1_exchange.go)
	h2dirty  []h2Output             // HTTP/2 connections with output to write at the end of the round
	h3       map[*h3Stream]struct{} // HTTP/3 streams with an exchange on this loop
	h3done   []*h3Stream            // freed HTTP/3 streams to pool once the callback or task is over (recycleH3)
	wsPairs  map[*wsPair]struct{}   // HTTP/1.1 WebSocket tunnels relayed on this loop

	h2flushQueued   bool
	h2flushRunnable gnet.RunnableFunc
	pending         map[*listenerRT]int // requests in flight per listener (queue_size)
	scratch         []byte
	alog            *accesslog.Buffer // this loop's access-log lines; nil without an access log
	fwd             msg.Scratch       // forwarded field lists, reused per request

	// current is the connection whose callback is running; closeCurrent
	// asks the handler to return gnet.Close for it (see detachGnet).
	current      gnet.Conn
	closeCurrent bool
	closing      []gnet.Conn // closeSoon: closed when the outermost callback leaves
	closingSpare []gnet.Conn
	depth        int // enter/leave nesting (an OnClose inside a callback nests)

	// Output coalescing: writes to one connection during a callback are
	// gathered here and sent with one write at the end of the callback
	// (or when another connection is written to, or the buffer is large).
	wbuf  []byte
	wconn gnet.Conn

	// clock is read once per callback (enter, sweep, and the Execute
	// hand-backs) instead of at every timestamp: clock reads were 5% of
	// the CPU of a keep-alive request.
	clock time.Time

	sweepRunnable gnet.RunnableFunc

	// Hand-offs from other goroutines (exec), run in the order posted:
	// gnet's Execute alone does not keep it past 1024 queued tasks. Each
	// exec appends its function to xq (under xmu) and queues one gnet task
	// (execRunnable), which runs the oldest function waiting: whichever
	// order gnet runs those tasks in, the functions run in xq's.
	xmu          sync.Mutex
	xq           []execTask
	xhead        int  // xq[xhead:] wait
	xdead        bool // Execute refused: the loop's engine stopped
	execRunnable gnet.RunnableFunc
}

// execTask is one hand-off queued by exec.
type execTask struct {
	what string
	fn   func()
}

func newLoop(e *Engine, el gnet.EventLoop) *loop {
	lp := &loop{
		e:       e,
		el:      el,
		pools:   map[*lb.Endpoint]*pool{},
		h2pools: map[*lb.Endpoint][]*h2Upstream{},
		clients: map[*clientConn]struct{}{},
		h2conns: map[*h2Conn]struct{}{},
		wsPairs: map[*wsPair]struct{}{},
		pending: map[*listenerRT]int{},
		scratch: make([]byte, 0, 16<<10),
	}
	if e.opts.AccessLog != nil {
		lp.alog = e.opts.AccessLog.NewBuffer()
	}
	lp.pipeline = stages.NewPipeline(e.stages, e.ringSize)
	lp.pipeline.Done = func(x *stages.Exchange) { x.Owner.(localResponder).respondLocal(x) }
	lp.pipeline.Full = func(stage string) { e.guardHit(nil, guards.RingFull(stage), guards.Stream) }
	lp.h2flushRunnable = func(context.Context) error {
		lp.flushH2()
		lp.recycleH3()
		return nil
	}
	lp.sweepRunnable = func(context.Context) error {
		lp.sweep()
		return nil
	}
	lp.execRunnable = func(context.Context) error {
		lp.runExec()
		return nil
	}
	return lp
}

// sweep fires expired deadlines and trims idle upstream connections.
func (lp *loop) sweep() {
	lp.tick()
	now := lp.nowNano()
	for cc := range lp.clients {
		func() {
			defer lp.e.recoverConn(cc.c, "timer")
			cc.onTimer(now)
		}()
	}
	for sc := range lp.h2conns {
		func() {
			defer lp.e.recoverConn(sc.c, "timer")
			sc.onTimer(now)
		}()
	}
	lp.sweepH3(now)
	// The sweep runs between callbacks: a callback that never reached
	// leave (a recovered panic) left its queued closes here.
	lp.depth, lp.current = 0, nil
	lp.closeQueued()
	for p := range lp.wsPairs {
		func() {
			defer lp.e.recoverConn(nil, "websocket timer")
			p.onTimer(now)
		}()
	}
	for _, p := range lp.pools {
		p.trim(now)
	}
	if lp.alog != nil {
		lp.alog.Flush(lp.now())
	}
	ttl := lp.e.idleTTL(nil)
	for _, list := range lp.h2pools {
		for _, hu := range list {
			hu.sweep(now, ttl)
		}
	}
	for _, list := range lp.h3pools {
		for _, hu := range list {
			hu.sweep(now, ttl)
		}
	}
	lp.flushOut()
	lp.recycleH3()
}

// localResponder is the owner of an exchange: the session that answers it
// when a stage refuses it.
type localResponder interface{ respondLocal(x *stages.Exchange) }

// scheduleH2Flush asks the loop to write the sessions' output after the
// events of this round (Execute's tasks run after the poller's batch).
func (lp *loop) scheduleH2Flush() {
	if lp.h2flushQueued {
		return
	}
	lp.h2flushQueued = true
	if err := lp.el.Execute(context.Background(), lp.h2flushRunnable); err != nil {
		lp.flushH2() // the loop is stopping: write now
	}
}

// h2Output is an HTTP/2 connection, client or upstream side, whose output
// the loop writes once per round.
type h2Output interface {
	flushNow()
	outConn() gnet.Conn
}

// flushH2 writes every dirty HTTP/2 connection's output, one write each.
func (lp *loop) flushH2() {
	lp.h2flushQueued = false
	// A write can queue more output (a stream resumed or reset by it): the
	// list may grow while it is written, and what it gains is written too
	// (ranging over the list would drop it, its connection still marked
	// dirty and never queued again).
	for i := 0; i < len(lp.h2dirty); i++ {
		o := lp.h2dirty[i]
		lp.h2dirty[i] = nil
		lp.flushOne(o)
	}
	lp.h2dirty = lp.h2dirty[:0]
	lp.flushOut()
}

// flushOne writes o's output; a panic there ends o's connection only (this
// also runs as a task of its own, outside any callback's guard).
func (lp *loop) flushOne(o h2Output) {
	defer lp.e.recoverConn(o.outConn(), "h2 flush")
	o.flushNow()
}

// keepBuf empties b for reuse by a pooled request state, or drops it when
// it grew past 64 KiB, so that a burst does not pin memory.
func keepBuf(b []byte) []byte {
	if cap(b) > 64<<10 {
		return nil
	}
	return b[:0]
}

// h2FreeMax bounds the per-loop free list of HTTP/2 streams.
const h2FreeMax = 1024

// getH2Stream takes a stream from the free list (its buffers kept) or
// makes one.
func (lp *loop) getH2Stream() *h2Stream {
	if n := len(lp.h2free); n > 0 {
		s := lp.h2free[n-1]
		lp.h2free[n-1] = nil
		lp.h2free = lp.h2free[:n-1]
		return s
	}
	return &h2Stream{}
}

// putH2Stream returns a finished stream; oversized buffers are dropped so a
// burst does not pin memory.
func (lp *loop) putH2Stream(s *h2Stream) {
	if len(lp.h2free) >= h2FreeMax {
		return
	}
	*s = h2Stream{
		arena: keepBuf(s.arena), norm: keepBuf(s.norm), body: keepBuf(s.body), pend: keepBuf(s.pend),
		pendTrlB: keepBuf(s.pendTrlB), hdrs: s.hdrs[:0], tfs: s.tfs[:0], pendTrl: s.pendTrl[:0], lfs: s.lfs[:0],
		lg: leg{upPend: keepBuf(s.lg.upPend), upPendTrl: s.lg.upPendTrl[:0], upPendTrlB: keepBuf(s.lg.upPendTrlB)},
	}
	lp.h2free = append(lp.h2free, s)
}

// pool is one endpoint's idle upstream connections on one loop (LIFO, so
// the warmest connection is reused first and the coldest ages out).
type pool struct {
	idle    []*upstream
	maxIdle int
	idleTTL time.Duration
}

func (lp *loop) poolFor(ep *lb.Endpoint, maxIdle int, ttl time.Duration) *pool {
	p := lp.pools[ep]
	if p == nil {
		p = &pool{maxIdle: maxIdle, idleTTL: ttl}
		lp.pools[ep] = p
	}
	return p
}

// get pops a live idle connection (over TLS or not, as tls says; one
// of the other kind, left by a reload that turned TLS on or off, is closed)
// or returns nil.
func (p *pool) get(tls bool) *upstream {
	for n := len(p.idle); n > 0; n = len(p.idle) {
		u := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		if u.state == upIdle && u.tls == tls {
			return u
		}
		if u.state == upIdle {
			u.close()
		}
	}
	return nil
}

// put parks u as idle; it reports false when the pool is full.
func (p *pool) put(u *upstream) bool {
	if len(p.idle) >= p.maxIdle {
		return false
	}
	u.idleSince = u.lp.nowNano() // the loop's clock: put runs once per request on keep-alive
	p.idle = append(p.idle, u)
	return true
}

func (p *pool) remove(u *upstream) {
	for i, v := range p.idle {
		if v == u {
			copy(p.idle[i:], p.idle[i+1:])
			p.idle[len(p.idle)-1] = nil
			p.idle = p.idle[:len(p.idle)-1]
			return
		}
	}
}

func (p *pool) trim(now int64) {
	keep := p.idle[:0]
	for _, u := range p.idle {
		if u.state == upIdle && now-u.idleSince < int64(p.idleTTL) {
			keep = append(keep, u)
			continue
		}
		if u.state == upIdle {
			u.close()
		}
	}
	for i := len(keep); i < len(p.idle); i++ {
		p.idle[i] = nil
	}
	p.idle = keep
}

func (lp *loop) enter(c gnet.Conn) {
	lp.tick()
	lp.current = c
	lp.closeCurrent = false
	lp.depth++
}

func (lp *loop) leave() gnet.Action {
	lp.flushOut()
	if lp.depth > 0 {
		lp.depth--
	}
	if lp.depth == 0 && len(lp.closing) > 0 {
		lp.closeQueued()
	}
	lp.current = nil
	if lp.closeCurrent {
		lp.closeCurrent = false
		return gnet.Close
	}
	return gnet.None
}

// afterPanic resets the callback state of a callback a panic cut short.
func (lp *loop) afterPanic() {
	lp.current, lp.closeCurrent, lp.depth = nil, false, 0
	lp.closeQueued()
}

// closeQueued closes the conns closeSoon queued, synchronously: their
// OnClose runs now, after the callback's work, and not through gnet's task
// queue, which costs an eventfd write and one more poll round per
// connection (h1-close profile). The conn whose callback is leaving stays
// lp.current meanwhile, so that an OnClose that closes it too asks for it
// through the callback's action (closing it synchronously inside its own
// callback would leave gnet working on a closed conn).
func (lp *loop) closeQueued() {
	cur, self := lp.current, lp.closeCurrent
	for len(lp.closing) > 0 {
		cs := lp.closing
		lp.closing, lp.closingSpare = lp.closingSpare[:0], nil
		for i, c := range cs {
			cs[i] = nil
			lp.current, lp.closeCurrent = cur, false
			lp.closeNow(c)
			if lp.current == cur && lp.closeCurrent {
				self = true
			}
		}
		lp.closingSpare = cs[:0]
	}
	lp.current, lp.closeCurrent = cur, self
}

// closeNow makes gnet forget c at once, so that it reads nothing more from
// the socket: the conn whose callback is running is closed by the action the
// handler returns; any other conn of this loop is closed synchronously.
func (lp *loop) closeNow(c gnet.Conn) {
	lp.flushOut()
	if c == lp.current {
		lp.closeCurrent = true
		return
	}
	if t, ok := c.(*tlsConn); ok {
		_ = t.Close() // not a gnet conn: the TLS actor closes it
		return
	}
	_ = c.EventLoop().Close(c)
}

// closeSoon closes c, a conn of this loop whose output is flushed: the
// conn of the running callback through the action it returns, another conn
// when the callback leaves (never in the middle of the caller's work: its
// OnClose may release state the caller still uses), and outside a callback
// through gnet's queue.
func (lp *loop) closeSoon(c gnet.Conn) {
	switch {
	case lp.current == nil:
		_ = c.Close()
	case c == lp.current:
		lp.closeCurrent = true
	default:
		lp.closing = append(lp.closing, c)
	}
}

// outFor returns the write buffer to append output for c to; pass the
// result to commitOut.
func (lp *loop) outFor(c gnet.Conn) []byte {
	if lp.wconn != c {
		lp.flushOut()
		lp.wconn = c
	}
	return lp.wbuf
}

// commitOut stores the appended buffer, flushing when it grew large.
func (lp *loop) commitOut(b []byte) {
	lp.wbuf = b
	if len(b) >= maxCoalesce {
		lp.flushOut()
	}
}

// queue appends b to c's pending output.
func (lp *loop) queue(c gnet.Conn, b []byte) {
	lp.commitOut(append(lp.outFor(c), b...))
}

// flushOut writes the pending output. Must run before anything reads
// OutboundBuffered or closes a connection, and at the end of every loop
// callback.
func (lp *loop) flushOut() {
	if len(lp.wbuf) > 0 && lp.wconn != nil {
		_, _ = lp.wconn.Write(lp.wbuf)
	}
	lp.wbuf = lp.wbuf[:0]
	lp.wconn = nil
}

const maxCoalesce = 256 << 10

// dialEnroll connects to addr over network ("tcp" or "udp") with a timeout in
// a goroutine, then enrolls the socket on this loop with actor as its
// context, so that it arrives through OnOpen. Never wait for it inside a
// callback. On failure, onFail runs on the loop with "connect_failed" or
// "connect_timeout"; panics there are contained and the loop's output is
// flushed afterwards.
//
// The L4 relay's sockets go without TCP keepalive (tcp_idle bounds a
// silent peer): Go's default would cost four setsockopt calls per
// connection.
func (lp *loop) dialEnroll(network, addr string, timeout time.Duration, actor any, onFail func(reason string)) {
	lp.dial(network, addr, timeout, -1, nil, actor, onFail)
}

// dialEnrollTLS is dialEnroll that, with up set, runs a TLS handshake
// (within timeout too) and enrolls the plaintext end of a TLS actor
// (tls_up.go) instead of the socket; a failed handshake is onFail
// "tls_handshake".
func (lp *loop) dialEnrollTLS(network, addr string, timeout time.Duration, up *upTLSDial, actor any, onFail func(reason string)) {
	lp.dial(network, addr, timeout, 0, up, actor, onFail)
}

// dial is dialEnrollTLS with keepAlive as in net.Dialer (0 Go's default,
// negative off).
func (lp *loop) dial(network, addr string, timeout, keepAlive time.Duration, up *upTLSDial, actor any, onFail func(reason string)) {
	// A pooled goroutine: net.Dial outgrew a fresh goroutine's stack on
	// every connection (copystack, 7% of the L4 h1-close profile).
	lp.e.goPool.Go(func() {
		d := net.Dialer{Timeout: timeout, KeepAlive: keepAlive}
		nc, err := d.Dial(network, addr)
		var relayTo *tlsRelay
		if err == nil && up != nil {
			var inner net.Conn
			if inner, relayTo, err = up.handshake(lp.e, nc, timeout); err != nil {
				lp.failDial(onFail, "tls_handshake")
				return
			}
			nc = inner
		}
		if err == nil {
			var ch <-chan gnet.RegisteredResult
			ch, err = lp.el.Enroll(gnet.NewContext(context.Background(), actor), nc)
			if err == nil {
				if res := <-ch; res.Err != nil {
					err = res.Err
				}
			}
			_ = nc.Close() // Enroll registered its own dup of the fd
		}
		if relayTo != nil {
			if err != nil {
				relayTo.close()
			} else {
				relayTo.run()
				return
			}
		}
		if err == nil {
			return
		}
		reason := "connect_failed"
		if isTimeout(err) {
			reason = "connect_timeout"
		}
		lp.failDial(onFail, reason)
	})
}

// failDial runs onFail on the loop.
func (lp *loop) failDial(onFail func(reason string), reason string) {
	_ = lp.el.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
		defer lp.e.recoverConn(nil, "dial")
		lp.tick()
		onFail(reason)
		lp.flushOut()
		return nil
	}))
}

// exec runs fn on the loop from another goroutine (the hand-off of
// quic-go's streams, front and upstream), with the loop's clock, panic
// containment and output flushing as in a callback; false when the loop
// is gone. Hand-offs run in the order they were posted, from every
// goroutine: a stream's reader posts one DATA chunk after another without
// waiting. gnet's Execute does not keep that order (past 1024 queued
// tasks a new one goes to a second queue, and one posted later may run
// first), so exec keeps its own queue; each gnet task it queues runs the
// oldest function waiting there. Against tasks queued with Execute
// directly (a TLS connection's delivery after its open), a hand-off keeps
// its place in gnet's queue.
func (lp *loop) exec(what string, fn func()) bool {
	// The gnet task is queued under xmu, so that the n-th function queued
	// has the n-th task: it runs where its own task stands in gnet's queue
	// (after what its goroutine queued with Execute before, before what it
	// queues after), as a task of its own would.
	lp.xmu.Lock()
	defer lp.xmu.Unlock()
	if lp.xdead {
		return false
	}
	lp.xq = append(lp.xq, execTask{what, fn})
	if err := lp.el.Execute(context.Background(), lp.execRunnable); err != nil {
		// The engine stopped: nothing queued here will run.
		lp.xdead = true
		lp.xq, lp.xhead = nil, 0
		return false
	}
	return true
}

// execCompact is how many run entries xq may hold at its front before
// they are dropped from a queue that never drains whole.
const execCompact = 4096

// runExec runs the oldest hand-off waiting (on the loop).
func (lp *loop) runExec() {
	lp.xmu.Lock()
	if lp.xhead >= len(lp.xq) {
		lp.xmu.Unlock()
		return
	}
	t := lp.xq[lp.xhead]
	lp.xq[lp.xhead] = execTask{}
	lp.xhead++
	switch {
	case lp.xhead == len(lp.xq):
		lp.xq, lp.xhead = lp.xq[:0], 0
	case lp.xhead >= execCompact && lp.xhead*2 >= len(lp.xq):
		n := copy(lp.xq, lp.xq[lp.xhead:])
		clear(lp.xq[n:])
		lp.xq, lp.xhead = lp.xq[:n], 0
	}
	lp.xmu.Unlock()
	lp.runTask(t)
}

// runTask runs one hand-off as a callback would be run.
func (lp *loop) runTask(t execTask) {
	defer lp.e.recoverConn(nil, t.what)
	lp.tick()
	t.fn()
	lp.flushOut()
	lp.recycleH3()
}

// recycleH3 pools the HTTP/3 streams freed during the callback or task
// that just ended (h3Stream.recycle). Only the outermost frame of a gnet
// task or of OnTraffic calls it, never OnClose (gnet runs it inside the
// callback that closed the connection): nothing on the stack then still
// uses those streams. Inside an entered callback it leaves them for later.
func (lp *loop) recycleH3() {
	if lp.depth > 0 {
		return
	}
	for i, s := range lp.h3done {
		lp.h3done[i] = nil
		s.recycle()
	}
	lp.h3done = lp.h3done[:0]
}

// tick reads the clock; callbacks and hand-backs call it once on entry.
func (lp *loop) tick() { lp.clock = time.Now() }

// now is the time of the current callback.
func (lp *loop) now() time.Time { return lp.clock }

// nowNano is now as UnixNano.
func (lp *loop) nowNano() int64 { return lp.clock.UnixNano() }

// since is the time from t to the current callback.
func (lp *loop) since(t time.Time) time.Duration { return lp.clock.Sub(t) }
