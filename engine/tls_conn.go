// SPDX-License-Identifier: GPL-3.0-only

package engine

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/panjf2000/gnet/v2"
)

// tlsConn is the loop's side of a TLS client connection: a gnet.Conn whose
// plaintext the TLS actor hands over in memory. The actor's reader
// goroutine decrypts records and queues them for the loop (one task per
// burst, through the loop's task queue); the loop appends its output to a
// buffer that the actor's writer goroutine encrypts and writes. Neither side
// blocks the other: the reader stops reading the socket while the loop holds
// more than tlsInMax unread bytes (TCP pushes back on the client), and
// OutboundBuffered counts what the writer has not written yet, so the
// sessions' output limits work as on a socket.
//
// An exchange that leaves the loop (h1_pump.go) asks for a file descriptor
// with Dup: the connection then turns into a socketpair bridge for good, the
// reader copying decrypted bytes into it and the writer copying the other
// way, and the pump gets the other end (ARCHITECTURE.md, "TLS").
//
// The same shape also carries a plain TCP client that gnet can no longer
// hold (bridgeClient in h1_conn.go): an HTTP/1.1 upload that outruns a
// multiplexed upstream's flow control is read by the reader goroutine,
// which stops while the loop holds inMax unread bytes, instead of gnet,
// which never stops reading.
//
// Methods marked "loop" run only on the connection's event loop.
type tlsConn struct {
	gnet.Conn // nil: a method not implemented here is never called

	lp    *loop
	tc    actorStream
	inMax int64 // unread bytes held before the reader pauses (tlsInMax)
	// pairIdle bounds each write to the client once paired (nanoseconds):
	// the idle timeout of the pump or relay that holds the other end, set
	// by whoever asks for Dup. A client that stops reading would otherwise
	// hold the writer, the reader and the socket for as long as it keeps
	// its window shut, long after the pump gave up and the connection's
	// admission slot went back.
	pairIdle atomic.Int64
	ctx      any
	local    net.Addr
	remote   net.Addr

	in     []byte // loop: plaintext received and not yet discarded
	inSize atomic.Int64

	mu       sync.Mutex
	pend     []byte // reader → loop, not yet taken
	queued   bool   // a deliver task is queued
	out      []byte // loop → writer
	writing  int    // bytes the writer holds
	closing  bool   // the loop closed its side: write what is left, then end
	paired   bool   // a socketpair bridge replaced the in-memory hand-off
	outer    *net.UnixConn
	carried  chan struct{} // closed once what the loop had not taken yet is in the bridge
	dead     bool          // the TLS connection ended
	spare    []byte
	closedOn bool // OnClose dispatched

	wake     chan struct{} // writer wake-up
	resume   chan struct{} // reader wake-up after a pause
	quit     chan struct{} // closed when the loop's side closes
	quitOnce sync.Once

	deliverTask gnet.RunnableFunc
}

// tlsInMax is how much unread plaintext the loop may hold before the reader
// stops reading the socket.
const tlsInMax = 256 << 10

// tlsCloseGrace bounds what the writer still writes once the loop closed
// its side (the last queued bytes and close_notify). The sessions wait for
// their output to drain before a graceful close, so what is left is small;
// a client that keeps its window shut past this is dropped, as gnet drops a
// plain socket's unsent output on close.
const tlsCloseGrace = 2 * time.Second

// actorStream is what a tlsConn's goroutines read and write: a *tls.Conn,
// or a bridged client's *net.TCPConn.
type actorStream interface {
	io.ReadWriteCloser
	CloseWrite() error
	SetWriteDeadline(time.Time) error
}

var (
	_ actorStream = (*tls.Conn)(nil)
	_ actorStream = (*net.TCPConn)(nil)
)

// newTLSConn: pairIdle is the write bound once paired, until a caller of
// Dup sets its own (setPairIdle).
func newTLSConn(lp *loop, tc actorStream, local, remote net.Addr, pairIdle time.Duration) *tlsConn {
	t := &tlsConn{lp: lp, tc: tc, inMax: tlsInMax, local: local, remote: remote,
		wake: make(chan struct{}, 1), resume: make(chan struct{}, 1), quit: make(chan struct{})}
	t.pairIdle.Store(int64(pairIdle))
	t.deliverTask = func(context.Context) error {
		t.deliver()
		return nil
	}
	return t
}

// start runs the reader and the writer; it returns when both ended.
func (t *tlsConn) start() {
	done := make(chan struct{})
	go func() {
		defer close(done)
		t.writer()
	}()
	t.reader()
	<-done
}

// reader decrypts records and hands them to the loop.
func (t *tlsConn) reader() {
	buf := make([]byte, 16<<10)
	for {
		n, err := t.tc.Read(buf)
		if n > 0 {
			t.mu.Lock()
			if t.paired {
				outer, carried := t.outer, t.carried
				t.mu.Unlock()
				<-carried // the bytes read before the bridge go first
				if _, werr := outer.Write(buf[:n]); werr != nil {
					err = werr
				}
			} else {
				t.pend = append(t.pend, buf[:n]...)
				queue := !t.queued
				t.queued = true
				pause := t.inSize.Load()+int64(len(t.pend)) > t.inMax
				t.mu.Unlock()
				if queue && t.lp.el.Execute(context.Background(), t.deliverTask) != nil {
					err = net.ErrClosed // the loop is gone
				}
				if pause && err == nil {
					select {
					case <-t.resume:
					case <-t.quit:
					}
				}
			}
		}
		if err != nil {
			t.mu.Lock()
			paired, outer := t.paired, t.outer
			t.mu.Unlock()
			if paired {
				_ = outer.CloseWrite()
				return
			}
			t.end(err)
			return
		}
	}
}

// writer encrypts and writes what the loop queued.
func (t *tlsConn) writer() {
	for range t.wake {
		for {
			t.mu.Lock()
			if t.paired && len(t.out) == 0 {
				outer := t.outer
				t.mu.Unlock()
				t.copyOuter(outer)
				return
			}
			b := t.out
			if len(b) == 0 {
				closing := t.closing || t.dead
				t.mu.Unlock()
				if closing {
					_ = t.tc.CloseWrite()
					_ = t.tc.Close()
					return
				}
				break
			}
			// Swap buffers: the loop appends to the spare (never to b,
			// which the writer holds until the write is done).
			t.out, t.spare, t.writing = t.spare[:0], nil, len(b)
			t.mu.Unlock()
			_, err := t.tc.Write(b)
			t.mu.Lock()
			t.writing = 0
			if cap(b) <= 64<<10 {
				t.spare = b[:0]
			}
			t.mu.Unlock()
			if err != nil {
				t.end(err)
				_ = t.tc.Close()
				return
			}
		}
	}
}

// copyOuter is the writer once paired: the pump's bytes to the client, each
// write bounded by pairIdle (the pump's own write to the bridge is bounded
// the same way, but cannot reach a write blocked here).
func (t *tlsConn) copyOuter(outer *net.UnixConn) {
	buf := make([]byte, 16<<10)
	for {
		n, err := outer.Read(buf)
		if n > 0 {
			if idle := time.Duration(t.pairIdle.Load()); idle > 0 {
				_ = t.tc.SetWriteDeadline(time.Now().Add(idle))
			}
			if _, werr := t.tc.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	_ = t.tc.CloseWrite()
	_ = t.tc.Close()
	_ = outer.Close()
}

// end: the TLS connection is over (the client closed, or an error). The
// loop learns it as OnClose.
func (t *tlsConn) end(err error) {
	t.mu.Lock()
	t.dead = true
	t.mu.Unlock()
	t.signal()
	if errors.Is(err, io.EOF) {
		err = nil
	}
	t.lp.exec("tls close", func() { t.dispatchClose(err) })
}

func (t *tlsConn) signal() {
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// deliver (loop) moves the reader's bytes into the inbound buffer and runs
// the session.
func (t *tlsConn) deliver() {
	t.mu.Lock()
	closed := t.closedOn || t.paired
	if !closed {
		t.in = append(t.in, t.pend...)
	} // else: nobody will read it; the reader no longer pauses once closed
	t.pend = t.pend[:0]
	t.queued = false
	t.mu.Unlock()
	t.inSize.Store(int64(len(t.in)))
	if closed {
		return
	}
	lp := t.lp
	defer lp.e.recoverConn(t, "traffic")
	lp.enter(t)
	switch ctx := t.ctx.(type) {
	case *clientConn:
		ctx.onTraffic()
	case *h2Conn:
		ctx.onTraffic()
	}
	if lp.leave() == gnet.Close {
		_ = t.Close()
	}
}

// dispatchClose (loop) runs the session's OnClose once.
func (t *tlsConn) dispatchClose(err error) {
	t.mu.Lock()
	if t.closedOn {
		t.mu.Unlock()
		return
	}
	t.closedOn = true
	t.mu.Unlock()
	lp := t.lp
	defer lp.e.recoverConn(nil, "close")
	switch ctx := t.ctx.(type) {
	case *clientConn:
		ctx.onClose(t, err)
	case *h2Conn:
		lp.enter(t)
		ctx.onClose()
		lp.leave()
	}
}

// Reader (loop).

func (t *tlsConn) Peek(n int) ([]byte, error) {
	if n < 0 || n >= len(t.in) {
		return t.in, nil
	}
	return t.in[:n], nil
}

func (t *tlsConn) Discard(n int) (int, error) {
	if n < 0 || n >= len(t.in) {
		n = len(t.in)
		t.in = t.in[:0]
	} else {
		t.in = t.in[:copy(t.in, t.in[n:])]
	}
	was := t.inSize.Swap(int64(len(t.in)))
	if was > t.inMax/2 && int64(len(t.in)) <= t.inMax/2 {
		select {
		case t.resume <- struct{}{}:
		default:
		}
	}
	if cap(t.in) > 1<<20 && len(t.in) == 0 {
		t.in = nil
	}
	return n, nil
}

func (t *tlsConn) InboundBuffered() int { return len(t.in) }

// Writer.

func (t *tlsConn) Write(b []byte) (int, error) {
	t.mu.Lock()
	if t.closing || t.dead {
		t.mu.Unlock()
		return 0, net.ErrClosed
	}
	t.out = append(t.out, b...)
	t.mu.Unlock()
	t.signal()
	return len(b), nil
}

func (t *tlsConn) Writev(bs [][]byte) (int, error) {
	n := 0
	for _, b := range bs {
		m, err := t.Write(b)
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func (t *tlsConn) OutboundBuffered() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.out) + t.writing
}

// AsyncWrite queues b from any goroutine; cb runs on the loop once it is
// queued (the writer writes it in order).
func (t *tlsConn) AsyncWrite(b []byte, cb gnet.AsyncCallback) error {
	cp := append([]byte(nil), b...)
	if !t.lp.exec("tls write", func() {
		_, err := t.Write(cp)
		if cb != nil {
			_ = cb(t, err)
		}
	}) {
		return net.ErrClosed
	}
	return nil
}

// The rest of the interface the sessions use.

func (t *tlsConn) Context() any              { return t.ctx }
func (t *tlsConn) SetContext(ctx any)        { t.ctx = ctx }
func (t *tlsConn) LocalAddr() net.Addr       { return t.local }
func (t *tlsConn) RemoteAddr() net.Addr      { return t.remote }
func (t *tlsConn) EventLoop() gnet.EventLoop { return t.lp.el }
func (t *tlsConn) Fd() int                   { return -1 }

func (t *tlsConn) SetDeadline(time.Time) error      { return nil }
func (t *tlsConn) SetReadDeadline(time.Time) error  { return nil }
func (t *tlsConn) SetWriteDeadline(time.Time) error { return nil }

// Close (loop or any goroutine) closes the loop's side: the writer sends
// what is queued, then close_notify, within tlsCloseGrace, and the session
// gets OnClose. Once paired, the bridge lives on with the pump and only the
// loop's side goes.
func (t *tlsConn) Close() error {
	t.mu.Lock()
	already := t.closing
	t.closing = true
	paired := t.paired
	t.mu.Unlock()
	if !already {
		if !paired {
			_ = t.tc.SetWriteDeadline(time.Now().Add(tlsCloseGrace))
		}
		t.quitOnce.Do(func() { close(t.quit) })
		t.signal()
		t.lp.exec("tls close", func() { t.dispatchClose(nil) })
	}
	return nil
}

// Dup (loop) turns the connection into a socketpair bridge and returns the
// other end's descriptor, which the caller owns. The loop's buffered input
// stays readable through Peek and Discard (takeInbound, before or after
// Dup); what the reader had handed over but the loop not yet taken goes
// into the bridge first, then everything read later.
func (t *tlsConn) Dup() (int, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	fo := os.NewFile(uintptr(fds[1]), "tls-outer")
	oc, err := net.FileConn(fo)
	_ = fo.Close()
	if err != nil {
		_ = syscall.Close(fds[0])
		return -1, err
	}
	outer := oc.(*net.UnixConn)
	carried := make(chan struct{})
	t.mu.Lock()
	t.paired, t.outer, t.carried = true, outer, carried
	carry := t.pend
	t.pend = nil
	t.mu.Unlock()
	go func() {
		defer close(carried)
		if len(carry) > 0 {
			_, _ = outer.Write(carry)
		}
	}()
	t.inSize.Store(0)
	select { // a paused reader goes on, into the bridge
	case t.resume <- struct{}{}:
	default:
	}
	t.signal()
	return fds[0], nil
}

// setPairIdle (loop) sets the write bound a Dup of c will use, when c is a
// tlsConn; before Dup.
func setPairIdle(c gnet.Conn, idle time.Duration) {
	if t, ok := c.(*tlsConn); ok {
		t.pairIdle.Store(int64(idle))
	}
}

var _ gnet.Conn = (*tlsConn)(nil)
