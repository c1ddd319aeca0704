// SPDX-License-Identifier: GPL-3.0-only

package engine

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/qlog"
	"github.com/quic-go/quic-go/qlogwriter"

	"github.com/expressgateway/expressgateway/codecs/h3"
	"github.com/expressgateway/expressgateway/guards"
)

// HTTP/3 (h3 listeners).
//
// quic-go owns the UDP socket, QUIC (handshake, loss recovery, streams,
// flow control) and its goroutines; the gateway speaks HTTP/3 framing and
// QPACK over its streams itself (codecs/h3) and runs every request through
// the same guard → route → pick → forward pipeline and leg as HTTP/1 and
// HTTP/2, on an event loop. A QUIC connection is one downstream session
// bound to one loop (round robin at accept); each request stream has a
// reader goroutine that decodes the head and body frames and hands them to
// the loop with Execute, and a writer goroutine that writes what the loop
// produced for it. Both directions are bounded per stream: the reader does
// not read more DATA while h3BodyInflightMax bytes it handed over are not
// taken by the upstream (QUIC stream credit then stops the client), and
// the loop stops reading the upstream while more than h3StreamPendMax bytes
// wait for the writer (whose writes block on the client's QUIC credit).

// h3Front is the QUIC state of one h3 listener slot.
type h3Front struct {
	e    *Engine
	slot *listenerSlot
	pc   *net.UDPConn
	tr   *quic.Transport
	ln   h3Listener

	handshaking atomic.Int64 // connections admitted whose handshake is not done
	early       bool         // started with early_data: the listener accepts 0-RTT
	next        atomic.Uint64

	mu     sync.Mutex
	conns  map[*h3Conn]struct{}
	closed bool
}

// bindH3 opens an h3 listener's UDP socket (bindSlot's counterpart).
func (e *Engine) bindH3(s *listenerSlot) error {
	lc := net.ListenConfig{Control: h3SocketControl}
	p, err := lc.ListenPacket(context.Background(), "udp", s.addr)
	if err != nil {
		return fmt.Errorf("listener %s: udp %s: %w", s.name, s.addr, err)
	}
	pc := p.(*net.UDPConn)
	if e.quicTakeover {
		if err := h3Steer(pc, e.opts.QUICGeneration); err != nil {
			e.m.H3Handover(s.name, "failed").Inc()
			e.log.Warn().Err(err).Str("listener", s.name).
				Msg("h3: cannot steer the previous process's QUIC connections to its socket; some of them may break")
		} else {
			e.m.H3Handover(s.name, "steered").Inc()
			e.log.Info().Str("listener", s.name).Uint8("generation", e.opts.QUICGeneration&1).
				Msg("h3: the previous process's QUIC connections stay on its socket until it exits")
		}
	}
	// quic-go wants 7 MiB socket buffers and otherwise prints an
	// unstructured warning to stderr; the gateway grows them itself (with
	// the FORCE options when it may), logs one structured line when the
	// kernel caps them, and silences quic-go's.
	if rcv, snd := h3GrowBuffers(pc); rcv < h3WantBuffer || snd < h3WantBuffer {
		e.log.Warn().Str("listener", s.name).Int("receive_buffer", rcv).Int("send_buffer", snd).Int("wanted", h3WantBuffer).
			Msg("h3: UDP socket buffers smaller than QUIC wants (raise net.core.rmem_max and net.core.wmem_max); throughput may suffer under load")
	}
	_ = os.Setenv("QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING", "true")
	s.h3 = &h3Front{e: e, slot: s, pc: pc, conns: map[*h3Conn]struct{}{}}
	return nil
}

// quicConfig is the QUIC configuration of a connection accepted under l.
// 0-RTT needs the early listener (ListenEarly) chosen at start.
func (f *h3Front) quicConfig(l *listenerRT) *quic.Config {
	q := &l.cfg.QUIC
	sw, cw := uint64(q.StreamReceiveWindow), uint64(q.ConnectionReceiveWindow)
	return &quic.Config{
		MaxIdleTimeout:                 q.IdleTimeout.Std(),
		MaxIncomingStreams:             int64(q.MaxStreams),
		MaxIncomingUniStreams:          16,
		InitialStreamReceiveWindow:     min(256<<10, sw),
		MaxStreamReceiveWindow:         sw,
		InitialConnectionReceiveWindow: min(1<<20, cw),
		MaxConnectionReceiveWindow:     cw,
		Allow0RTT:                      f.early && q.EarlyData,
		HandshakeIdleTimeout:           l.cfg.TLS.HandshakeTimeout.Std(),
	}
}

// h3Listener is quic-go's Listener or EarlyListener (early_data).
type h3Listener interface {
	Accept(context.Context) (*quic.Conn, error)
	Close() error
}

// h3Admission travels in a connection's context from ConnContext to
// Accept: the admission slots it holds and whether it still counts as a
// handshake in progress.
type h3Admission struct {
	ip   netip.Addr
	done atomic.Bool
}

type h3AdmissionKey struct{}

// start serves the listener; it runs once the loops are up.
func (f *h3Front) start() error {
	e, s := f.e, f.slot
	l := s.http.Load()
	if l == nil || s.tls == nil {
		return fmt.Errorf("listener %s: not configured", s.name)
	}
	q := &l.cfg.QUIC
	e.m.h3(s.name) // every family exported from the start
	f.tr = &quic.Transport{
		Conn:                  f.pc,
		ConnectionIDGenerator: h3CIDGen{gen: e.opts.QUICGeneration},
		Tracer:                &h3DropCounter{f: f},
		ConnContext: func(ctx context.Context, ci *quic.ClientInfo) (context.Context, error) {
			ip := udpAddrPort(ci.RemoteAddr).Addr()
			l := s.http.Load()
			if ok, g := guards.Admit(e.global, l.limiter, s.connRate.Load(), s.penalty, ip, time.Now()); !ok {
				e.guards.Hit(g, guards.Connection, s.name, ip)
				return ctx, errors.New(string(g))
			}
			a := &h3Admission{ip: ip}
			f.handshaking.Add(1)
			context.AfterFunc(ctx, func() {
				if !a.done.Swap(true) {
					f.handshaking.Add(-1)
				}
				l.limiter.Release(ip)
				e.global.Release(ip)
			})
			return context.WithValue(ctx, h3AdmissionKey{}, a), nil
		},
		VerifySourceAddress: func(net.Addr) bool {
			l := s.http.Load()
			switch l.cfg.QUIC.Retry {
			case "always":
				f.e.m.h3(s.name).retries.Inc()
				return true
			case "never":
				return false
			}
			if f.handshaking.Load() > int64(max(1, l.cfg.TLS.MaxHandshakes/2)) {
				f.e.m.h3(s.name).retries.Inc()
				return true
			}
			return false
		},
	}
	tf := s.tls
	tcfg := &tls.Config{
		MinVersion: tls.VersionTLS13,
		NextProtos: []string{"h3"},
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			c := tf.cfg.Load().Clone()
			c.MinVersion, c.NextProtos = tls.VersionTLS13, []string{"h3"}
			return c, nil
		},
	}
	f.early = q.EarlyData
	qcfg := f.quicConfig(l)
	// Every connection gets the settings of the listener's view when it
	// arrives, so that a reload reaches new connections.
	qcfg.GetConfigForClient = func(*quic.ClientInfo) (*quic.Config, error) {
		l := s.http.Load()
		if l == nil {
			return nil, errors.New("listener gone")
		}
		return f.quicConfig(l), nil
	}
	var err error
	if q.EarlyData {
		// Accept returns a connection once its 0-RTT data may be read,
		// before the handshake completed (h3_stream.go applies the policy).
		f.ln, err = f.tr.ListenEarly(tcfg, qcfg)
	} else {
		f.ln, err = f.tr.Listen(tcfg, qcfg)
	}
	if err != nil {
		return fmt.Errorf("listener %s: quic: %w", s.name, err)
	}
	go f.acceptLoop()
	go f.watch()
	return nil
}

// acceptLoop takes handshaken connections and gives each to a loop.
func (f *h3Front) acceptLoop() {
	e := f.e
	for {
		qc, err := f.ln.Accept(context.Background())
		if err != nil {
			return
		}
		if a, ok := qc.Context().Value(h3AdmissionKey{}).(*h3Admission); ok && !a.done.Swap(true) {
			f.handshaking.Add(-1)
		}
		lp := f.pickLoop()
		l := f.slot.http.Load()
		if lp == nil || l == nil || f.slot.draining.Load() || e.draining.Load() {
			_ = qc.CloseWithError(quic.ApplicationErrorCode(h3.ErrCodeNo), "")
			continue
		}
		c := newH3Conn(f, lp, qc)
		f.mu.Lock()
		if f.closed {
			f.mu.Unlock()
			_ = qc.CloseWithError(quic.ApplicationErrorCode(h3.ErrCodeNo), "")
			continue
		}
		f.conns[c] = struct{}{}
		f.mu.Unlock()
		go c.serve()
	}
}

// pickLoop chooses the loop for a new connection, round robin.
func (f *h3Front) pickLoop() *loop {
	e := f.e
	e.loopsMu.Lock()
	defer e.loopsMu.Unlock()
	if len(e.loopsList) == 0 {
		return nil
	}
	return e.loopsList[int(f.next.Add(1)%uint64(len(e.loopsList)))]
}

// watch sends GOAWAY on drain and closes connections that are done.
func (f *h3Front) watch() {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for range t.C {
		f.mu.Lock()
		if f.closed {
			f.mu.Unlock()
			return
		}
		cs := make([]*h3Conn, 0, len(f.conns))
		for c := range f.conns {
			cs = append(cs, c)
		}
		f.mu.Unlock()
		drain := f.e.draining.Load() || f.slot.draining.Load()
		for _, c := range cs {
			if drain {
				c.goAway("drain")
			}
			c.closeIfDone()
		}
	}
}

func (f *h3Front) forget(c *h3Conn) {
	f.mu.Lock()
	delete(f.conns, c)
	f.mu.Unlock()
}

// stopAccepting: no new connections (drain); open ones go on.
func (f *h3Front) stopAccepting() {
	if f.ln != nil {
		_ = f.ln.Close()
	}
}

// close ends every connection and the socket.
func (f *h3Front) close() {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return
	}
	f.closed = true
	cs := f.conns
	f.conns = map[*h3Conn]struct{}{}
	f.mu.Unlock()
	for c := range cs {
		_ = c.qc.CloseWithError(quic.ApplicationErrorCode(h3.ErrCodeNo), "shutdown")
	}
	if f.ln != nil {
		_ = f.ln.Close()
	}
	if f.tr != nil {
		_ = f.tr.Close()
	} else {
		_ = f.pc.Close()
	}
}

// udpAddrPort is a QUIC peer's address (addrPort knows TCP addresses only).
func udpAddrPort(a net.Addr) netip.AddrPort {
	if ua, ok := a.(*net.UDPAddr); ok {
		ap := ua.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return addrPort(a)
}

// h3DropCounter counts the datagrams quic-go dropped without a connection
// (garbage, unknown connection IDs, unsupported versions), by reason.
type h3DropCounter struct{ f *h3Front }

// RecordEvent implements qlogwriter.Recorder.
func (d *h3DropCounter) RecordEvent(ev qlogwriter.Event) {
	if pd, ok := ev.(qlog.PacketDropped); ok {
		d.f.e.m.H3PacketDropped(d.f.slot.name, string(pd.Trigger)).Inc()
	}
}

// Close implements qlogwriter.Recorder.
func (d *h3DropCounter) Close() error { return nil }

// The loops an h3 listener hands its connections to must be known to the
// engine (loopFor runs in a loop's first callback) before any TCP
// connection arrives. So a loop set that hosts an h3 listener gets one
// loopback pilot socket grafted into each of its loops; serveH3 connects
// to each once (the loop closes that connection in OnOpen, after bind),
// then ungrafts and closes them.
const protoH3Pilot = "h3-pilot"

var h3PilotSlot = &listenerSlot{name: protoH3Pilot, proto: protoH3Pilot}

// h3PilotPlans adds a pilot socket to each loop's graft plan when slots
// include an h3 listener.
func (e *Engine) h3PilotPlans(slots []*listenerSlot, per [][]graftPlan) []*lsock {
	need := false
	for _, s := range slots {
		need = need || s.h3 != nil
	}
	if !need {
		return nil
	}
	var socks []*lsock
	for i := range per {
		if len(per[i]) == 0 {
			continue
		}
		fd, err := listenSocket(false, "127.0.0.1:0", false)
		if err != nil {
			e.log.Warn().Err(err).Msg("h3: pilot socket")
			continue
		}
		ino, _ := socketInode(fd)
		k := &lsock{fd: fd, ino: ino}
		socks = append(socks, k)
		per[i] = append(per[i], graftPlan{k, h3PilotSlot})
	}
	return socks
}

func closePilots(socks []*lsock) {
	for _, k := range socks {
		k.close()
	}
}

// pilotLoops makes every loop of set known (runs under Engine.lmu).
func (e *Engine) pilotLoops(set *loopSet) {
	for _, gl := range set.loops {
		for _, g := range gl.grafts {
			if g.slot != h3PilotSlot {
				continue
			}
			sa, err := syscall.Getsockname(g.sock.fd)
			if in, ok := sa.(*syscall.SockaddrInet4); err == nil && ok {
				addr := netip.AddrPortFrom(netip.AddrFrom4(in.Addr), uint16(in.Port)).String()
				if nc, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
					for deadline := time.Now().Add(2 * time.Second); gl.lp.Load() == nil && time.Now().Before(deadline); {
						time.Sleep(time.Millisecond)
					}
					_ = nc.Close()
				}
			}
			if err := g.ungraft(); err != nil {
				e.log.Warn().Err(err).Msg("h3: pilot socket ungraft")
			}
			g.sock.close()
		}
	}
}

// serveH3 starts the h3 listeners of slots once their loops run.
func (e *Engine) serveH3(set *loopSet, slots []*listenerSlot) error {
	var fronts []*h3Front
	for _, s := range slots {
		if s.h3 != nil {
			fronts = append(fronts, s.h3)
		}
	}
	if len(fronts) == 0 {
		return nil
	}
	if set != nil {
		e.pilotLoops(set)
	}
	for _, f := range fronts {
		if err := f.start(); err != nil {
			return err
		}
	}
	return nil
}

// drainH3 lets the removed h3 listeners among slots finish: no new
// connections, GOAWAY on the open ones (watch), closed once they are done
// or the drain budget ran out.
func (e *Engine) drainH3(slots []*listenerSlot, budget time.Duration) {
	for _, s := range slots {
		f := s.h3
		if f == nil {
			continue
		}
		f.stopAccepting()
		go func() {
			deadline := time.Now().Add(budget)
			for time.Now().Before(deadline) {
				f.mu.Lock()
				n := len(f.conns)
				f.mu.Unlock()
				if n == 0 {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			f.close()
		}()
	}
}
