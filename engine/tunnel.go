// SPDX-License-Identifier: GPL-3.0-only

package engine

import (
	"errors"
	"net"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"
)

// The off-loop relay: two sockets copied to each other by two goroutines
// with blocking I/O, one per direction. It carries the pairs that cannot
// stay on the event loop: an L4 tcp pair or a WebSocket tunnel whose peer
// did not take a whole read (backpressure), and WebSocket tunnels with a
// TLS side (ARCHITECTURE.md, "WebSocket tunnels"). Kernel TCP flow control
// is the backpressure both ways: a direction reads only while its previous
// write went out, so each holds at most one pooled buffer, and none while
// idle (readPooled). A FIN is passed on with CloseWrite (half-close); the
// relay ends when both directions ended, on its idle timeout without a byte
// either way, at its maximum duration, or when closed from outside.

// Relay sides: what side i reads is written to side 1-i. The L4 names
// (endClient, endUpstream) are the same two indexes.
const (
	tunClient   = 0
	tunUpstream = 1
)

var errIdle = errors.New("idle timeout expired")

// relay relays one connection pair off the loop. Safe from any goroutine:
// its fields are set before start and only read after, except the atomics.
type relay struct {
	e      *Engine
	what   string // "l4 relay", "websocket tunnel": for the panic log
	conns  [2]net.Conn
	head   []byte    // written to side 0 first, not counted (a 101's head)
	prefix [2][]byte // read from side i, not yet written to its peer
	eof    [2]bool   // side i already sent EOF
	shut   [2]bool   // side i already got our FIN
	idle   time.Duration
	max    time.Duration // 0: no limit
	last   atomic.Int64  // UnixNano of the last byte moved either way
	maxHit atomic.Bool
	once   sync.Once
	// count runs on the relay's goroutines for n bytes read from side and
	// written to its peer; one goroutine per side.
	count func(side, n int)
	// done runs once, on a relay goroutine, when both directions ended.
	done func(errs [2]error, maxHit bool)
}

var relayBufs = sync.Pool{New: func() any { b := make([]byte, pumpBuf); return &b }}

// start runs the relay on its own goroutines.
func (r *relay) start() {
	r.last.Store(time.Now().UnixNano())
	go r.run()
}

func (r *relay) run() {
	var errs [2]error
	defer func() { r.done(errs, r.maxHit.Load()) }()
	if r.max > 0 {
		tm := time.AfterFunc(r.max, func() {
			r.maxHit.Store(true)
			r.closeAll()
		})
		defer tm.Stop()
	}
	if len(r.head) > 0 {
		_ = r.conns[0].SetWriteDeadline(time.Now().Add(r.idle))
		if _, err := r.conns[0].Write(r.head); err != nil {
			r.closeAll()
			errs[1] = err
			return
		}
		r.head = nil
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		errs[1] = r.pipe(1)
	}()
	errs[0] = r.pipe(0)
	wg.Wait()
	r.closeAll()
}

// pipe copies side i to its peer until EOF, then passes the FIN on. Any
// other outcome closes both sockets, which ends the other direction too.
func (r *relay) pipe(i int) (err error) {
	defer func() {
		if p := recover(); p != nil {
			r.e.m.Panics.Inc()
			r.e.log.Error().Interface("panic", p).Bytes("stack", debug.Stack()).Msg("panic recovered in " + r.what)
			err = errPanic
		}
		if err != nil {
			r.closeAll()
		}
	}()
	src, dst := r.conns[i], r.conns[1-i]
	var wdl time.Time
	if len(r.prefix[i]) > 0 {
		if err = r.write(dst, r.prefix[i], i, &wdl); err != nil {
			return err
		}
		r.prefix[i] = nil
	}
	if !r.eof[i] {
		sc, ok := src.(syscall.Conn)
		if !ok {
			return errors.New("relay: not a syscall.Conn")
		}
		rc, err := sc.SyscallConn()
		if err != nil {
			return err
		}
		var rdl time.Time
		for {
			now := time.Now()
			if rdl.Sub(now) < r.idle/2 {
				rdl = now.Add(r.idle)
				_ = src.SetReadDeadline(rdl)
			}
			bp, n, rerr := readPooled(rc)
			if n > 0 {
				r.last.Store(time.Now().UnixNano())
				err = r.write(dst, (*bp)[:n], i, &wdl)
				relayBufs.Put(bp)
				if err != nil {
					return err
				}
				continue
			}
			if rerr == nil {
				break // EOF
			}
			if isTimeout(rerr) {
				if !r.idleExpired() {
					rdl = time.Time{}
					continue
				}
				return errIdle
			}
			return rerr
		}
	}
	if !r.shut[1-i] {
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
	}
	return nil
}

// write writes b to dst in full; a write stalled for the idle timeout while
// the other direction is idle too ends the pair.
func (r *relay) write(dst net.Conn, b []byte, i int, dl *time.Time) error {
	for len(b) > 0 {
		now := time.Now()
		if dl.Sub(now) < r.idle/2 {
			*dl = now.Add(r.idle)
			_ = dst.SetWriteDeadline(*dl)
		}
		n, err := dst.Write(b)
		if n > 0 {
			b = b[n:]
			r.last.Store(time.Now().UnixNano())
			r.count(i, n)
		}
		if err != nil {
			if isTimeout(err) {
				if n > 0 || !r.idleExpired() {
					*dl = time.Time{}
					continue
				}
				return errIdle
			}
			return err
		}
	}
	return nil
}

func (r *relay) idleExpired() bool {
	return time.Now().UnixNano()-r.last.Load() >= int64(r.idle)
}

// closeAll closes both sockets; safe from any goroutine, more than once.
func (r *relay) closeAll() {
	r.once.Do(func() {
		for _, c := range r.conns {
			if c != nil {
				_ = c.Close()
			}
		}
	})
}

// readPooled waits until rc is readable without holding a buffer, then
// reads into one from the pool: an idle pair off the loop costs its two
// goroutines and no buffers. n == 0 with a nil error is EOF; a buffer is
// returned only when n > 0.
func readPooled(rc syscall.RawConn) (bp *[]byte, n int, err error) {
	var rerr error
	err = rc.Read(func(fd uintptr) bool {
		b := relayBufs.Get().(*[]byte)
		for {
			n, rerr = unix.Read(int(fd), *b)
			if rerr != unix.EINTR {
				break
			}
		}
		if rerr == unix.EAGAIN {
			relayBufs.Put(b)
			return false // wait for readability (and the deadline)
		}
		if n > 0 {
			bp = b
		} else {
			n = 0
			relayBufs.Put(b)
		}
		return true
	})
	if err == nil {
		err = rerr
	}
	return bp, n, err
}

// offloopConn hands one side of a pair relayed on the loop to the off-loop
// relay: gnet's conn *c (what it buffered appended to *prefix; gnet forgets
// it), or *fd, our write-only dup of a side that sent EOF. Both are cleared.
func (lp *loop) offloopConn(c *gnet.Conn, fd *int, prefix *[]byte, idle time.Duration) (net.Conn, error) {
	switch {
	case *c != nil:
		gc := *c
		*c = nil
		*prefix = append(*prefix, takeInbound(gc)...)
		setPairIdle(gc, idle)
		return lp.detachConn(gc)
	case *fd >= 0:
		f := os.NewFile(uintptr(*fd), "relay")
		*fd = -1
		nc, err := net.FileConn(f)
		_ = f.Close()
		return nc, err
	}
	return nil, errors.New("no socket")
}

// WebSocket tunnels off the loop are registered with the engine, so that
// Stop closes them.

// openTunnel registers r with the engine and starts it.
func (e *Engine) openTunnel(r *relay) {
	r.e = e
	e.tunMu.Lock()
	if e.tunnels == nil {
		e.tunnels = map[*relay]struct{}{}
	}
	e.tunnels[r] = struct{}{}
	e.tunMu.Unlock()
	r.start()
}

// tunnelClosed unregisters r.
func (e *Engine) tunnelClosed(r *relay) {
	e.tunMu.Lock()
	delete(e.tunnels, r)
	e.tunMu.Unlock()
}

// closeTunnels ends every open tunnel (engine stop).
func (e *Engine) closeTunnels() {
	e.tunMu.Lock()
	ts := make([]*relay, 0, len(e.tunnels))
	for t := range e.tunnels {
		ts = append(ts, t)
	}
	e.tunMu.Unlock()
	for _, t := range ts {
		t.closeAll()
	}
}

// tunnelReason is the stable token for how a tunnel ended.
func tunnelReason(errs [2]error, maxHit bool) string {
	if maxHit {
		return "max_duration"
	}
	if errors.Is(errs[0], errIdle) || errors.Is(errs[1], errIdle) {
		return "idle_timeout"
	}
	for _, err := range errs {
		if err != nil && !errors.Is(err, net.ErrClosed) {
			return errToken(err)
		}
	}
	if errs[0] != nil || errs[1] != nil {
		return "engine_stop" // closed from outside: the engine stopped
	}
	return "closed"
}
