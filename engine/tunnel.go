// SPDX-License-Identifier: GPL-3.0-only

package engine

import (
	"errors"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// A WebSocket tunnel (ARCHITECTURE.md, "WebSocket tunnels"): once the
// upstream answered 101 to an upgrade the gateway forwarded, both sockets
// leave the event loop (the same dup as h1_pump.go) and two goroutines copy
// bytes with blocking I/O, one per direction. Kernel TCP flow control is the
// backpressure both ways: a direction reads only while its previous write
// went out, so each holds at most one pooled buffer, and none while idle
// (readPooled). A FIN is passed on with CloseWrite (half-close); the tunnel
// ends when both directions ended, on websocket_idle without a byte either
// way, at websocket_max_duration, or when the engine stops.

// Tunnel sides: what side i reads is written to side 1-i.
const (
	tunClient   = 0
	tunUpstream = 1
)

var errTunnelIdle = errors.New("websocket_idle expired")

// tunnel relays one upgraded connection pair off the loop. Safe from any
// goroutine: its fields are set before run and only read after.
type tunnel struct {
	e      *Engine
	conns  [2]net.Conn
	prefix [2][]byte // read from side i before the tunnel opened, for its peer
	idle   time.Duration
	max    time.Duration
	last   atomic.Int64 // UnixNano of the last byte moved either way
	bytes  [2]atomic.Int64
	maxHit atomic.Bool
	once   sync.Once
	// done runs once both directions ended, with why the tunnel ended
	// ("closed" when both sides closed cleanly).
	done func(t *tunnel, reason string)
}

// openTunnel registers t with the engine (Stop closes it) and runs it on
// its own goroutines; head is written to the client first.
func (e *Engine) openTunnel(t *tunnel, head []byte) {
	t.e = e
	t.last.Store(time.Now().UnixNano())
	e.tunMu.Lock()
	if e.tunnels == nil {
		e.tunnels = map[*tunnel]struct{}{}
	}
	e.tunnels[t] = struct{}{}
	e.tunMu.Unlock()
	e.m.WSActive.Add(1)
	go t.run(head)
}

// closeTunnels ends every open tunnel (engine stop).
func (e *Engine) closeTunnels() {
	e.tunMu.Lock()
	ts := make([]*tunnel, 0, len(e.tunnels))
	for t := range e.tunnels {
		ts = append(ts, t)
	}
	e.tunMu.Unlock()
	for _, t := range ts {
		t.closeAll()
	}
}

func (t *tunnel) run(head []byte) {
	var errs [2]error
	defer func() {
		e := t.e
		e.tunMu.Lock()
		delete(e.tunnels, t)
		e.tunMu.Unlock()
		e.m.WSActive.Add(-1)
		reason := tunnelReason(errs, t.maxHit.Load())
		e.m.WSClosed(reason).Inc()
		t.done(t, reason)
	}()
	if t.max > 0 {
		tm := time.AfterFunc(t.max, func() {
			t.maxHit.Store(true)
			t.closeAll()
		})
		defer tm.Stop()
	}
	if len(head) > 0 {
		_ = t.conns[tunClient].SetWriteDeadline(time.Now().Add(t.idle))
		if _, err := t.conns[tunClient].Write(head); err != nil {
			t.closeAll()
			errs[tunUpstream] = err
			return
		}
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		errs[tunUpstream] = t.pipe(tunUpstream)
	}()
	errs[tunClient] = t.pipe(tunClient)
	wg.Wait()
	t.closeAll()
}

// tunnelReason is the stable token for how a tunnel ended.
func tunnelReason(errs [2]error, maxHit bool) string {
	if maxHit {
		return "max_duration"
	}
	if errors.Is(errs[0], errTunnelIdle) || errors.Is(errs[1], errTunnelIdle) {
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

// pipe copies side i to its peer until EOF, then half-closes the peer. Any
// other outcome closes both sockets, which ends the other direction too.
func (t *tunnel) pipe(i int) (err error) {
	defer func() {
		if p := recover(); p != nil {
			t.e.m.Panics.Inc()
			t.e.log.Error().Interface("panic", p).Bytes("stack", debug.Stack()).Msg("panic recovered in websocket tunnel")
			err = errPanic
		}
		if err != nil {
			t.closeAll()
		}
	}()
	src, dst := t.conns[i], t.conns[1-i]
	var wdl time.Time
	if len(t.prefix[i]) > 0 {
		if err = t.write(dst, t.prefix[i], i, &wdl); err != nil {
			return err
		}
		t.prefix[i] = nil
	}
	sc, ok := src.(syscall.Conn)
	if !ok {
		return errors.New("tunnel: not a syscall.Conn")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	var rdl time.Time
	for {
		now := time.Now()
		if rdl.Sub(now) < t.idle/2 {
			rdl = now.Add(t.idle)
			_ = src.SetReadDeadline(rdl)
		}
		bp, n, rerr := readPooled(rc)
		if n > 0 {
			t.last.Store(time.Now().UnixNano())
			err = t.write(dst, (*bp)[:n], i, &wdl)
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
			if !t.idleExpired() {
				rdl = time.Time{}
				continue
			}
			return errTunnelIdle
		}
		return rerr
	}
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	return nil
}

// write writes b to dst in full; a write stalled for websocket_idle while
// the other direction is idle too ends the tunnel.
func (t *tunnel) write(dst net.Conn, b []byte, i int, dl *time.Time) error {
	for len(b) > 0 {
		now := time.Now()
		if dl.Sub(now) < t.idle/2 {
			*dl = now.Add(t.idle)
			_ = dst.SetWriteDeadline(*dl)
		}
		n, err := dst.Write(b)
		if n > 0 {
			b = b[n:]
			t.last.Store(time.Now().UnixNano())
			t.bytes[i].Add(int64(n))
			t.e.m.WSBytes[i].Add(n)
		}
		if err != nil {
			if isTimeout(err) {
				if n > 0 || !t.idleExpired() {
					*dl = time.Time{}
					continue
				}
				return errTunnelIdle
			}
			return err
		}
	}
	return nil
}

func (t *tunnel) idleExpired() bool {
	return time.Now().UnixNano()-t.last.Load() >= int64(t.idle)
}

// closeAll closes both sockets; safe from any goroutine, more than once.
func (t *tunnel) closeAll() {
	t.once.Do(func() {
		for _, c := range t.conns {
			if c != nil {
				_ = c.Close()
			}
		}
	})
}
