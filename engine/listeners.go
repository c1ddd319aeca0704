// SPDX-License-Identifier: GPL-3.0-only

package engine

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/expressgateway/expressgateway/conf"
	"github.com/expressgateway/expressgateway/guards"
)

// Listeners, sockets and loops.
//
// A listener (listenerSlot) owns its listening sockets: bound here,
// inherited from the process being upgraded, or handed over from the
// listener it replaces on the same address. Event loops are single-loop
// gnet engines (gloop); the listeners present together at start, or added
// together by one reload, share one loopSet of engine.event_loops loops, and
// each socket is grafted into one loop (one SO_REUSEPORT socket per loop)
// or, for a single socket, into every loop (graft_linux.go). A connection
// lives on the loop that accepted it, with its upstream connections.
//
// So the loops stay engine.event_loops while the listener set does not grow
// (a reload that changes routes, clusters, limits, or removes listeners
// starts nothing); a reload that adds listeners starts engine.event_loops
// more loops for them, and a loop set stops once none of its listeners is
// left and its connections are gone. A restart or a USR2 upgrade puts every
// listener back on one set. The gauge expressgateway_event_loops shows the
// count.

// listenerSlot is one configured listener across reloads: its identity
// (name, protocol, address, reuse_port), its sockets, its connection
// limiter, and an atomic pointer to the compiled view that new connections
// and new requests use. A reload that keeps the listener swaps the view; one
// that changes its identity replaces the slot.
type listenerSlot struct {
	name  string
	proto string // conf.ProtocolHTTP, ProtocolHTTPS, ProtocolTCP, ProtocolUDP, ...
	addr  string // listen, as configured
	reuse bool

	socks []*lsock
	set   *loopSet // guarded by Engine.lmu

	http atomic.Pointer[listenerRT] // http listeners
	l4   atomic.Pointer[l4Listener] // tcp and udp listeners

	limiter  *guards.ConnLimiter
	connRate atomic.Pointer[guards.Buckets] // guards.new_connections_per_second; nil: off
	penalty  *guards.Penalties              // client IPs a connection guard closed
	penFor   atomic.Int64                   // guards.penalty (ns); 0: off
	rateKey  [3]int                         // what connRate was built from (under Engine.lmu)
	draining atomic.Bool                    // removed: no new connections, open ones finish

	tls *tlsFront // https listeners: certificates, ticket keys, handshake slots
	h3  *h3Front  // h3 listeners: the QUIC socket and connections (h3_front.go)
	// quic is the connection ID table of a quic-passthrough listener,
	// shared by its loops (l4_quic.go); nil for other protocols.
	quic *quicTable
}

// udp reports whether the slot's sockets are UDP sockets on the loops (udp
// and quic-passthrough listeners; h3 listeners hand theirs to quic-go).
func (s *listenerSlot) udp() bool {
	return s.proto == conf.ProtocolUDP || s.proto == conf.ProtocolQUICPassthrough
}

// key names the slot's sockets for a handover: "tcp ADDR" or "udp ADDR".
func (s *listenerSlot) key() string {
	if s.proto == conf.ProtocolH3 {
		return "h3 " + s.addr // quic-go's socket: never handed over
	}
	return socketKey(s.udp(), s.addr)
}

func socketKey(udp bool, addr string) string {
	if udp {
		return "udp " + addr
	}
	return "tcp " + addr
}

// sameIdentity reports whether lc can keep slot s (and its sockets).
func (s *listenerSlot) sameIdentity(lc *conf.Listener) bool {
	return s.name == lc.Name && s.proto == lc.Protocol && s.addr == lc.Listen && s.reuse == lc.ReusePort
}

// lsock is one of our listening sockets.
type lsock struct {
	fd     int
	ino    uint64
	udp    bool
	closed bool // guarded by Engine.lmu
}

func (k *lsock) close() {
	if !k.closed {
		k.closed = true
		closeFD(k.fd)
	}
}

// loopSet is engine.event_loops single-loop gnet engines started together
// for a set of listeners.
type loopSet struct {
	e     *Engine
	loops []*gloop
	slots []*listenerSlot // hosted, live or draining; guarded by Engine.lmu
	// stopped is set (under Engine.lmu) once its engines were told to stop.
	stopped bool
}

// gloop is one single-loop gnet engine and the sockets grafted into it.
type gloop struct {
	set    *loopSet
	eng    gnet.Engine // set in OnBoot
	grafts []*graft
	byTCP  map[netip.AddrPort]*graft // placeholder address → graft; read-only once booted
	byUDP  map[netip.AddrPort]*graft
	lp     atomic.Pointer[loop] // the engine's state for this loop, once a callback ran
	epfd   int                  // the loop's epoll fd, found on first ungraft; -1 before
	booted chan error           // OnBoot's outcome
	exited chan struct{}        // closed when gnet.Rotate returned
	runErr error                // Rotate's error; read after exited
}

// graft is one of our sockets grafted into one gloop.
type graft struct {
	gl   *gloop
	sock *lsock
	slot *listenerSlot
	ph   string // the placeholder address gnet was given, e.g. "127.0.0.3:0"
	gfd  int    // gnet's fd number, now referring to sock
	off  bool   // ungrafted; guarded by Engine.lmu
}

// placeholder is the k-th distinct loopback address a gloop hands gnet:
// Engine.DupListener finds a listener by its address string, and the
// address (with port 0, as given) is what gnet reports as LocalAddr for the
// connections and datagrams of that socket, so it also tells the handler
// which graft a connection came through. The whole of 127.0.0.0/8 is local
// on Linux.
func placeholder(k int) string {
	return "127.0." + strconv.Itoa(k/254) + "." + strconv.Itoa(k%254+1) + ":0"
}

// bindSlot gives a new slot its sockets: those inherited for its address,
// else those of a slot it replaces on the same address (taken), else new
// ones. tcp listeners with reuse_port and udp listeners get at least one
// socket per loop.
func (e *Engine) bindSlot(s *listenerSlot, take []*lsock) error {
	if s.proto == conf.ProtocolH3 {
		return e.bindH3(s)
	}
	s.socks = take
	if len(s.socks) == 0 {
		fds := e.inherited[s.key()]
		delete(e.inherited, s.key())
		for i, fd := range fds {
			ino, err := socketInode(fd)
			if err == nil {
				err = adoptSocket(fd, s.udp())
			}
			if err != nil {
				for _, rest := range fds[i:] {
					closeFD(rest)
				}
				s.undoBind(take)
				return fmt.Errorf("listener %s: %w", s.name, err)
			}
			s.socks = append(s.socks, &lsock{fd: fd, ino: ino, udp: s.udp()})
		}
	}
	want := 1
	if s.reuse || s.udp() {
		want = e.eventLoops
	}
	if len(s.socks) > 0 && !reusesPort(s.socks[0].fd) {
		want = len(s.socks) // an inherited single socket: every loop accepts from it
	}
	for len(s.socks) < want {
		fd, err := listenSocket(s.udp(), s.addr, s.reuse || s.udp())
		if err != nil {
			s.undoBind(take)
			network := "tcp"
			if s.udp() {
				network = "udp"
			}
			return fmt.Errorf("listener %s: %s %s: %w", s.name, network, s.addr, err)
		}
		ino, err := socketInode(fd)
		if err != nil {
			closeFD(fd)
			s.undoBind(take)
			return fmt.Errorf("listener %s: %w", s.name, err)
		}
		s.socks = append(s.socks, &lsock{fd: fd, ino: ino, udp: s.udp()})
	}
	return nil
}

// undoBind closes the sockets bindSlot opened or adopted, keeping those it
// was handed.
func (s *listenerSlot) undoBind(take []*lsock) {
	for _, k := range s.socks[len(take):] {
		k.close()
	}
	s.socks = take
}

// startSet starts a loop set for slots, whose sockets are bound. On error
// nothing of it runs.
func (e *Engine) startSet(slots []*listenerSlot) (*loopSet, error) {
	n := e.eventLoops
	set := &loopSet{e: e, slots: slots}
	per := make([][]graftPlan, n)
	for _, s := range slots {
		if len(s.socks) >= n {
			for j, k := range s.socks {
				per[j%n] = append(per[j%n], graftPlan{k, s})
			}
			continue
		}
		for _, k := range s.socks { // fewer sockets than loops: every loop accepts from each
			for i := range per {
				per[i] = append(per[i], graftPlan{k, s})
			}
		}
	}
	pilots := e.h3PilotPlans(slots, per)
	for i := range per {
		if len(per[i]) == 0 {
			continue
		}
		gl, err := e.bootLoop(set, per[i])
		if err != nil {
			set.stopNow()
			closePilots(pilots)
			return nil, err
		}
		set.loops = append(set.loops, gl)
	}
	for _, s := range slots {
		s.set = set
	}
	e.loopCount.Add(int64(len(set.loops)))
	return set, nil
}

type graftPlan struct {
	sock *lsock
	slot *listenerSlot
}

// bootLoop starts one single-loop gnet engine with our sockets grafted in.
func (e *Engine) bootLoop(set *loopSet, plan []graftPlan) (*gloop, error) {
	gl := &gloop{
		set: set, epfd: -1,
		byTCP:  map[netip.AddrPort]*graft{},
		byUDP:  map[netip.AddrPort]*graft{},
		booted: make(chan error, 1),
		exited: make(chan struct{}),
	}
	var addrs []string
	nTCP, nUDP := 0, 0
	for _, p := range plan {
		g := &graft{gl: gl, sock: p.sock, slot: p.slot}
		if p.sock.udp {
			g.ph = placeholder(nUDP)
			nUDP++
			addrs = append(addrs, "udp://"+g.ph)
			gl.byUDP[netip.MustParseAddrPort(g.ph)] = g
		} else {
			g.ph = placeholder(nTCP)
			nTCP++
			addrs = append(addrs, "tcp://"+g.ph)
			gl.byTCP[netip.MustParseAddrPort(g.ph)] = g
		}
		gl.grafts = append(gl.grafts, g)
	}
	h := &handler{e: e, gl: gl}
	go func() {
		defer close(gl.exited)
		gl.runErr = gnet.Rotate(h, addrs,
			gnet.WithNumEventLoop(1),
			gnet.WithReusePort(true), // one loop that registers the engine's own listener fds
			gnet.WithReuseAddr(true),
			gnet.WithLogger(gnetLogger{e.log}),
		)
	}()
	select {
	case err := <-gl.booted:
		if err != nil {
			<-gl.exited
			return nil, err
		}
		return gl, nil
	case <-gl.exited:
		if gl.runErr == nil {
			gl.runErr = errors.New("gnet engine exited at start")
		}
		return nil, fmt.Errorf("event loop: %w", gl.runErr)
	}
}

// graftAll runs in OnBoot: it points gnet's placeholder listener fds at
// our sockets before the loop registers them.
func (gl *gloop) graftAll(eng gnet.Engine) error {
	gl.eng = eng
	dups := map[int]bool{}
	want := map[uint64]bool{}
	inoOf := make([]uint64, len(gl.grafts))
	defer func() {
		for d := range dups {
			closeFD(d)
		}
	}()
	for i, g := range gl.grafts {
		network := "tcp"
		if g.sock.udp {
			network = "udp"
		}
		d, err := eng.DupListener(network, g.ph)
		if err != nil {
			return fmt.Errorf("find gnet listener %s://%s: %w", network, g.ph, err)
		}
		dups[d] = true
		ino, err := socketInode(d)
		if err != nil {
			return err
		}
		inoOf[i], want[ino] = ino, true
	}
	fds, err := fdsOfInodes(want, dups)
	if err != nil {
		return err
	}
	for i, g := range gl.grafts {
		gfd, ok := fds[inoOf[i]]
		if !ok {
			return fmt.Errorf("gnet listener %s not found in /proc/self/fd", g.ph)
		}
		if err := graftFD(g.sock.fd, gfd); err != nil {
			return err
		}
		g.gfd = gfd
	}
	return nil
}

// ungraft stops the loop accepting from (or reading) g's socket. Runs under
// Engine.lmu; never after the loop's engine stopped (its fd numbers may
// belong to other files by then).
func (g *graft) ungraft() error {
	if g.off {
		return nil
	}
	g.off = true
	select {
	case <-g.gl.exited:
		return nil
	default:
	}
	gl := g.gl
	var findErr error
	if gl.epfd < 0 {
		// Without it the loop keeps being woken for the socket while
		// another process holds it (accept then finds EAGAIN).
		if gl.epfd, findErr = epollOf(g.gfd, g.sock.ino); findErr != nil {
			findErr = fmt.Errorf("loop epoll fd: %w", findErr)
		}
	}
	return errors.Join(findErr, ungraftFD(gl.epfd, g.gfd, g.sock.udp))
}

// graftOf finds the graft a connection (tcp) or datagram (udp) came
// through, from the placeholder address gnet reports as its local address.
func (gl *gloop) graftOf(a net.Addr) *graft {
	unmap := func(ap netip.AddrPort) netip.AddrPort { return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()) }
	switch a := a.(type) {
	case *net.TCPAddr:
		return gl.byTCP[unmap(a.AddrPort())]
	case *net.UDPAddr:
		return gl.byUDP[unmap(a.AddrPort())]
	}
	return nil
}

// bind records the engine loop state of this gnet loop; every callback of
// the loop's handler calls it first.
func (gl *gloop) bind(e *Engine, el gnet.EventLoop) *loop {
	if lp := gl.lp.Load(); lp != nil {
		return lp
	}
	lp := e.loopFor(el)
	gl.lp.Store(lp)
	return lp
}

// stop tells the set's engines to stop and waits for them (or ctx). It
// closes every connection still on its loops. Runs under Engine.lmu.
func (set *loopSet) stop(ctx context.Context) {
	if set.stopped {
		return
	}
	set.stopped = true
	var wg sync.WaitGroup
	for _, gl := range set.loops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			gl.stop(ctx)
		}()
	}
	wg.Wait()
	set.e.loopCount.Add(-int64(len(set.loops)))
}

// stopNow stops a set that failed to start.
func (set *loopSet) stopNow() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, gl := range set.loops {
		gl.stop(ctx)
	}
	set.loops = nil
}

func (gl *gloop) stop(ctx context.Context) {
	select {
	case <-gl.exited:
		return
	default:
	}
	// Engine.Stop polls for the end every 500 ms; Rotate returns as soon
	// as the loop is down.
	go func() { _ = gl.eng.Stop(ctx) }()
	select {
	case <-gl.exited:
	case <-ctx.Done():
	}
}

// live reports whether any slot of the set still serves.
func (set *loopSet) live() bool {
	for _, s := range set.slots {
		if !s.draining.Load() {
			return true
		}
	}
	return false
}

// ungraftSlot takes s off every loop of its set.
func (e *Engine) ungraftSlot(s *listenerSlot) {
	if s.set == nil {
		return
	}
	for _, gl := range s.set.loops {
		for _, g := range gl.grafts {
			if g.slot == s {
				if err := g.ungraft(); err != nil {
					e.log.Warn().Err(err).Str("listener", s.name).Msg("stop accepting")
				}
			}
		}
	}
}

// Socket is a listening socket of the engine, for a handover to a new
// process (see Options.Inherited).
type Socket struct {
	Key string // "tcp " or "udp " followed by the listener's listen address
	FD  int
}

// Sockets lists the listening sockets of the listeners that serve. The fds
// stay the engine's: pass them to a new process (they stay open here until
// StopAccepting or Stop), do not close them.
func (e *Engine) Sockets() []Socket {
	e.lmu.Lock()
	defer e.lmu.Unlock()
	var out []Socket
	for _, s := range e.slots {
		if s.draining.Load() {
			continue
		}
		for _, k := range s.socks {
			if !k.closed {
				out = append(out, Socket{Key: s.key(), FD: k.fd})
			}
		}
	}
	return out
}

// StopAccepting takes every listening socket off the loops and closes the
// engine's tcp sockets, so that new connections are refused (or, after a
// handover, accepted by the new process only). Open connections carry on;
// udp sockets stay open for the replies of sessions in flight until Stop.
// Idempotent; safe from any goroutine.
func (e *Engine) StopAccepting() {
	e.lmu.Lock()
	defer e.lmu.Unlock()
	for _, set := range e.sets {
		for _, gl := range set.loops {
			for _, g := range gl.grafts {
				if err := g.ungraft(); err != nil {
					e.log.Warn().Err(err).Str("listener", g.slot.name).Msg("stop accepting")
				}
			}
		}
	}
	for _, s := range e.slots {
		if s.h3 != nil {
			s.h3.stopAccepting() // open QUIC connections go on (GOAWAY on drain)
		}
		if s.udp() {
			continue
		}
		for _, k := range s.socks {
			k.close()
		}
	}
}
