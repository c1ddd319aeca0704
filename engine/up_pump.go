// SPDX-License-Identifier: GPL-3.0-only

package engine

import (
	"context"
	"errors"
	"io"
	"net"
	"runtime/debug"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/expressgateway/expressgateway/codecs/h1"
)

// upPump reads the rest of a response from an upstream connection that left
// the loop: gnet cannot stop reading a socket, so an upstream whose
// downstream has no room is moved to a goroutine with blocking I/O that
// reads only when the loop asks; the kernel's TCP window then pushes back
// on the upstream. Chunks come back to the loop through Execute, where the
// leg decodes them as if they had arrived on the loop. The goroutine owns
// the net.Conn; the loop owns everything else (ARCHITECTURE.md).
type upPump struct {
	lg  *leg
	u   *upstream
	nc  net.Conn
	cmd chan pumpCmd // loop → goroutine, at most one outstanding

	// Read by the goroutine: taken from the leg on the loop when the pump
	// starts. The goroutine never reads the leg, which belongs to the
	// loop and is reset for the stream's next request once it ended (a
	// pooled stream), maybe before the goroutine first runs.
	lp   *loop
	idle time.Duration

	// Loop-side state.
	reading bool // a pumpRead is outstanding
	ended   bool // pumpClose or pumpReattach was sent
}

type pumpCmd uint8

const (
	pumpRead     pumpCmd = iota // read one chunk and deliver it
	pumpReattach                // the response ended cleanly: back to the loop's pool
	pumpClose                   // close the connection
)

const upPumpBuf = 64 << 10

// pauseUpstream moves u's reading off the loop; nil when it could not.
// The caller's downstream resumes it (upPump.resume) when it has room.
func (lg *leg) pauseUpstream(u *upstream) *upPump {
	prefix := takeInbound(u.c)
	gu := u.c
	u.state = upDetached
	u.c = nil
	nc, err := lg.lp.detachConn(gu)
	if err != nil {
		lg.lp.e.log.Error().Err(err).Msg("detach failed")
		u.finalClose()
		lg.up = nil
		lg.abortMid("detach_failed")
		return nil
	}
	lg.respPumping = true
	lg.lp.e.m.Detach("response").Inc()
	p := &upPump{lg: lg, u: u, nc: nc, cmd: make(chan pumpCmd, 1), lp: lg.lp, idle: lg.l.bodyIdle}
	go p.run()
	if len(prefix) > 0 {
		// Bytes gnet had already read: deliver them first, on the loop.
		p.reading = true
		p.deliver(prefix, nil, false)
	}
	return p
}

// resume asks for the next chunk, unless one is on its way.
func (p *upPump) resume() {
	if p.reading || p.ended {
		return
	}
	p.reading = true
	p.cmd <- pumpRead
}

// cancel ends the pump from the loop (the stream went away).
func (p *upPump) cancel() {
	if p.ended {
		return
	}
	p.ended = true
	p.lg.respPumping = false
	if p.reading {
		// Unblock the read; the goroutine then sees the close command.
		_ = p.nc.SetReadDeadline(time.Now())
	}
	select {
	case p.cmd <- pumpClose:
	default:
		// A pumpRead is still queued: replace it.
		select {
		case <-p.cmd:
		default:
		}
		p.cmd <- pumpClose
	}
}

func (p *upPump) run() {
	lp := p.lp
	defer func() {
		if r := recover(); r != nil {
			lp.e.m.Panics.Inc()
			lp.e.log.Error().Interface("panic", r).Bytes("stack", debug.Stack()).Msg("panic recovered in upstream pump")
			_ = p.nc.Close()
		}
	}()
	buf := make([]byte, upPumpBuf)
	idle := p.idle
	for c := range p.cmd {
		switch c {
		case pumpRead:
			_ = p.nc.SetReadDeadline(time.Now().Add(idle))
			n, err := p.nc.Read(buf)
			// The loop is done with buf before it sends the next command,
			// so the chunk is handed over without a copy.
			data := buf[:n]
			if e := lp.el.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
				defer lp.e.recoverConn(nil, "pump")
				lp.tick()
				p.deliver(data, err, true)
				lp.flushOut()
				return nil
			})); e != nil {
				_ = p.nc.Close()
				return
			}
		case pumpReattach:
			u := p.u
			u.state = upReattaching
			u.owner = nil
			if _, err := lp.el.Enroll(gnet.NewContext(context.Background(), u), p.nc); err != nil {
				_ = p.nc.Close()
				lp.exec("pump", func() {
					u.state = upClosed
					u.finalClose()
				})
			}
			return
		case pumpClose:
			_ = p.nc.Close()
			u := p.u
			lp.exec("pump", func() {
				u.state = upClosed
				u.finalClose()
			})
			return
		}
	}
}

// deliver runs on the loop with a chunk the goroutine read (or the bytes
// gnet had buffered): the leg decodes it; the response may end here.
func (p *upPump) deliver(data []byte, rerr error, fromRead bool) {
	p.reading = false
	if p.ended {
		return
	}
	lg := p.lg
	lg.lastRespAt = lg.lp.nowNano()
	u := p.u
	if len(data) > 0 {
		n, done, failed := lg.consumeBody(u, data)
		if failed {
			p.end(pumpClose)
			return
		}
		if done {
			extra := len(data) - n
			clean := extra == 0 && rerr == nil && u.resp.KeepAlive && u.resp.Body != h1.BodyUntilClose
			if extra > 0 {
				lg.lp.e.upstreamExtraBytes(u, extra)
			}
			if clean {
				p.end(pumpReattach)
			} else {
				p.end(pumpClose)
			}
			lg.respPumping = false
			lg.up = nil
			lg.ds.respEnd(lg, h1.FilterTrailers(u.body.Trailers()))
			lg.finish(true)
			return
		}
	}
	if rerr != nil {
		p.end(pumpClose)
		lg.respPumping = false
		lg.up = nil
		switch {
		case errors.Is(rerr, io.EOF) && u.resp.Body == h1.BodyUntilClose:
			lg.ds.respEnd(lg, nil)
			lg.finish(true)
		case isTimeout(rerr):
			lg.abortMid("response_body_idle")
		default:
			lg.abortMid("reset_mid_body")
		}
		return
	}
	_ = fromRead
	if lg.ds.roomFor(lg) {
		p.resume()
	}
}

// end sends the pump its last command.
func (p *upPump) end(c pumpCmd) {
	if p.ended {
		return
	}
	p.ended = true
	p.cmd <- c
}
