// SPDX-License-Identifier: GPL-3.0-only

package engine

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"

	"github.com/expressgateway/expressgateway/codecs/quicinv"
	"github.com/expressgateway/expressgateway/guards"
	"github.com/expressgateway/expressgateway/lb"
)

// QUIC passthrough: a quic-passthrough listener relays QUIC datagrams to its
// cluster without decrypting them, routed by connection ID (CID), so that
// HTTP/3 (or any QUIC application) terminates on the backends.
//
// A flow is one QUIC connection as the balancer sees it. The first
// long-header datagram (an Initial: at least 1200 bytes) with an unknown
// destination CID opens one: its endpoint is the cluster's Maglev (or ring
// hash) pick over that DCID, so a retransmitted Initial, and any other
// balancer node with the same healthy endpoints, picks the same backend.
// The flow owns a connected UDP socket to the endpoint, enrolled on the loop
// that opened it: the backend sees one stable address per QUIC connection,
// whatever the client's address does. The flow is known in the listener's
// table by that first DCID and by every source CID the backend puts in its
// long-header packets (Initial, Handshake, Retry), which the client then
// uses as its destination CID; a short header does not carry its DCID's
// length, so the table counts its backend-chosen CIDs per length and a
// short header is looked up at each length in use (quic-go's servers use 4
// bytes; one length in practice).
//
// Client datagrams: a known DCID goes to its flow, from any client address,
// and replies go to the address the last such datagram came from (a NAT
// rebinding keeps its backend). An unknown DCID is a CID the backend issued
// in an encrypted NEW_CONNECTION_ID frame, which the balancer cannot read:
// in a long header it goes to the flow with the same client address and
// client source CID, in a short header to the flow last seen at the client
// address, and the flow learns it; else it is dropped as unknown_cid
// (hashing it would pick a backend unrelated to the one that chose the
// CID, which would answer with a stateless reset). A client that changes
// its address and its CID at once is therefore lost unless the backends
// encode a server ID in their CIDs (QUIC-LB), which this listener does not
// yet read.
//
// The table is shared by the listener's loops (the kernel spreads client
// addresses over the per-loop sockets, and a migrated client lands on any
// of them), under one mutex held for a map lookup; a datagram that arrives
// on another loop than its flow's goes there through the loop's Execute.

// quicMaxCIDsPerFlow caps the table entries one flow holds: its first DCID,
// the backend's long-header source CIDs (usually 1, 2 after a Retry) and
// the CIDs learnt at its client address (one per CID the client moves to).
const quicMaxCIDsPerFlow = 8

// quicMinClientDCID is the shortest DCID a client's first Initial may
// carry (RFC 9000 §7.2).
const quicMinClientDCID = 8

// quicHopsMax caps a flow's datagrams in flight to its loop from others.
const quicHopsMax = 256

// quicMoveBackAfter is how long after a client address change a datagram
// from the previous address is taken as reordered rather than as a move
// back. The balancer cannot read packet numbers, which is how a QUIC
// endpoint tells (RFC 9000 §9.3: only the highest-numbered packet moves
// the path).
const quicMoveBackAfter = time.Second

// cidKey is a connection ID as a map key.
type cidKey struct {
	n uint8
	b [quicinv.MaxCIDLen]byte
}

func keyOf(id []byte) cidKey {
	k := cidKey{n: uint8(len(id))}
	copy(k.b[:], id)
	return k
}

// quicTable is one quic-passthrough listener's connection IDs, across its
// loops and config generations. Safe from any goroutine.
type quicTable struct {
	mu     sync.Mutex
	byCID  map[cidKey]*quicFlow
	byAddr map[netip.AddrPort]*quicFlow // the flow last seen at each client address
	// byClient is each flow by its client address and client CID (several
	// connections may share a client socket; their long headers say which).
	byClient map[clientKey]*quicFlow
	lens     [quicinv.MaxCIDLen + 1]int // backend-chosen CIDs in byCID, by length
}

func newQUICTable() *quicTable {
	return &quicTable{
		byCID: map[cidKey]*quicFlow{}, byAddr: map[netip.AddrPort]*quicFlow{}, byClient: map[clientKey]*quicFlow{},
	}
}

// clientKey is a client address and the client's source CID.
type clientKey struct {
	addr netip.AddrPort
	cid  cidKey
}

// setAddrLocked moves f's address entries from its old client address to
// from (both the same at open), under t.mu.
func (t *quicTable) setAddrLocked(f *quicFlow, old, from netip.AddrPort) {
	if t.byAddr[old] == f {
		delete(t.byAddr, old)
	}
	if k := (clientKey{old, f.clientCID}); t.byClient[k] == f {
		delete(t.byClient, k)
	}
	if f.gone {
		return
	}
	t.byAddr[from] = f
	t.byClient[clientKey{from, f.clientCID}] = f
}

// quicKey is one CID a flow holds in the table.
type quicKey struct {
	k      cidKey
	server bool // chosen by the backend (counted in lens)
	by     learntBy
}

// quicFlow is one QUIC connection. Owned by its loop (ll), except keys and
// cidLen and gone, which are guarded by t.mu.
type quicFlow struct {
	t  *quicTable
	ll *l4Loop
	fd int         // the owner loop's listening socket: replies go out on it
	l  *l4Listener // the listener's view when the flow opened
	ep *lb.Endpoint
	up gnet.Conn

	state     udpState
	ip        netip.Addr // the client IP the flow opened from (its limiter slot)
	clientCID cidKey     // the client's source CID in its first Initial; set before the flow is shared
	client    netip.AddrPort
	sa        unix.Sockaddr
	keys      []quicKey // guarded by t.mu
	cidLen    int       // the length of the backend's CIDs; guarded by t.mu
	gone      bool      // closed: takes no new CIDs; guarded by t.mu
	learnt    cidKey    // the last backend source CID seen: skips the lock for repeats

	started   time.Time
	last      int64 // UnixNano of the last datagram either way
	queue     [][]byte
	queued    int
	connected bool
	rx, tx    int64
	moves     int
	prev      netip.AddrPort // the client address before the last move
	movedAt   int64          // UnixNano of the last move
	hops      atomic.Int32
}

// quicRoute is how a client datagram found its flow.
type quicRoute uint8

const (
	quicByCID quicRoute = iota
	quicByAddress
	quicNew
)

// quicDrop is a reason a client datagram was dropped: the label of
// expressgateway_quic_passthrough_drops_total.
type quicDrop uint8

const (
	dropNone quicDrop = iota
	dropTruncated
	dropGarbage
	dropUnknownCID
	dropFlowsFull
	dropFlowsPerIP
	dropNoEndpointQ
	dropQueueFull
	dropSendFailed
	dropReplyFailed
	dropHandoff
	quicDropCount
)

var quicDropNames = [quicDropCount]string{
	dropNone: "", dropTruncated: "truncated", dropGarbage: "garbage", dropUnknownCID: "unknown_cid",
	dropFlowsFull: "flows_full", dropFlowsPerIP: "flows_per_ip",
	dropNoEndpointQ: "no_endpoint", dropQueueFull: "queue_full", dropSendFailed: "send_failed",
	dropReplyFailed: "reply_failed", dropHandoff: "handoff_full",
}

// quicMetrics are a quic-passthrough listener's families.
type quicMetrics struct {
	flows, cids                    *metrics.Gauge
	flowsTotal                     *metrics.Counter
	pktRx, pktTx, bytesRx, bytesTx *metrics.Counter
	byMaglev, byCID, byAddress     *metrics.Counter
	migrations, collisions         *metrics.Counter
	handoffs                       *metrics.Counter
	learnt                         [3]*metrics.Counter // by learntBy
	drops                          [quicDropCount]*metrics.Counter
}

func newQUICMetrics(set *metrics.Set, name string) *quicMetrics {
	c := func(family, labels string) *metrics.Counter {
		return set.GetOrCreateCounter(fmt.Sprintf(`expressgateway_quic_passthrough_%s{listener=%q%s}`, family, name, labels))
	}
	g := func(family string) *metrics.Gauge {
		return set.GetOrCreateGauge(fmt.Sprintf(`expressgateway_quic_passthrough_%s{listener=%q}`, family, name), nil)
	}
	m := &quicMetrics{
		flows: g("flows_active"), cids: g("cids"), flowsTotal: c("flows_total", ""),
		pktRx: c("packets_total", `,direction="rx"`), pktTx: c("packets_total", `,direction="tx"`),
		bytesRx: c("bytes_total", `,direction="rx"`), bytesTx: c("bytes_total", `,direction="tx"`),
		byMaglev: c("routed_total", `,by="maglev"`), byCID: c("routed_total", `,by="cid"`),
		byAddress:  c("routed_total", `,by="address"`),
		migrations: c("migrations_total", ""), collisions: c("cid_collisions_total", ""),
		handoffs: c("handoffs_total", ""),
		learnt: [3]*metrics.Counter{
			c("cids_learnt_total", `,from="initial"`), c("cids_learnt_total", `,from="backend"`),
			c("cids_learnt_total", `,from="address"`),
		},
	}
	for i := dropTruncated; i < quicDropCount; i++ {
		m.drops[i] = c("drops_total", fmt.Sprintf(",reason=%q", quicDropNames[i]))
	}
	return m
}

// quicMetricsHelp is the HELP text of the quic-passthrough families.
var quicMetricsHelp = map[string]string{
	"expressgateway_quic_passthrough_flows_active":         "QUIC connections in a quic-passthrough listener's table.",
	"expressgateway_quic_passthrough_cids":                 "connection IDs in a quic-passthrough listener's table.",
	"expressgateway_quic_passthrough_flows_total":          "QUIC connections a quic-passthrough listener opened.",
	"expressgateway_quic_passthrough_packets_total":        "datagrams relayed, by direction: rx client → backend, tx backend → client.",
	"expressgateway_quic_passthrough_bytes_total":          "datagram bytes relayed, by direction.",
	"expressgateway_quic_passthrough_routed_total":         "client datagrams relayed, by how their connection was found.",
	"expressgateway_quic_passthrough_drops_total":          "datagrams dropped, by reason.",
	"expressgateway_quic_passthrough_migrations_total":     "times a QUIC connection's client address changed.",
	"expressgateway_quic_passthrough_cid_collisions_total": "backend connection IDs not learnt because another connection holds the same ID.",
	"expressgateway_quic_passthrough_handoffs_total":       "client datagrams passed to the event loop that owns their connection.",
	"expressgateway_quic_passthrough_cids_learnt_total":    "connection IDs added to the table, by where they were seen.",
}

// quicDatagram handles a datagram that arrived through graft g of a
// quic-passthrough listener.
func (l4 *l4Engine) quicDatagram(c gnet.Conn, g *graft) {
	data, _ := c.Next(-1)
	ra, ok := c.RemoteAddr().(*net.UDPAddr)
	if !ok || g.slot.draining.Load() {
		return
	}
	l := g.slot.l4.Load()
	if l == nil || l.qm == nil {
		return
	}
	ll := l4.loopFor(c.EventLoop())
	from := ra.AddrPort()
	from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
	t := g.slot.quic
	f, how, first, drop := t.route(data, from)
	m := l.qm
	switch {
	case drop != dropNone:
		m.drops[drop].Inc()
		return
	case how == quicNew:
		if f, how, drop = t.open(ll, l, g.sock.fd, first, from, ra); f == nil {
			m.drops[drop].Inc()
			return
		}
		if how == quicNew {
			m.byMaglev.Inc()
		} else {
			m.byCID.Inc()
		}
	case how == quicByAddress:
		m.byAddress.Inc()
	default:
		m.byCID.Inc()
	}
	if f.ll == ll {
		f.fromClient(data, from, ra, how)
		return
	}
	// The flow's socket is on another loop (the client moved to an address
	// the kernel steers elsewhere): hand the datagram over.
	if f.hops.Add(1) > quicHopsMax {
		f.hops.Add(-1)
		m.drops[dropHandoff].Inc()
		e := l4.e
		e.guards.Hit(guards.QUICHandoffFull, guards.Connection, l.name, from.Addr())
		return
	}
	m.handoffs.Inc()
	buf := append([]byte(nil), data...)
	ra = &net.UDPAddr{IP: append(net.IP(nil), ra.IP...), Port: ra.Port, Zone: ra.Zone}
	err := f.ll.lp.el.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
		defer f.ll.l4.e.recoverConn(nil, "quic handoff")
		f.hops.Add(-1)
		f.fromClient(buf, from, ra, how)
		return nil
	}))
	if err != nil {
		f.hops.Add(-1)
		m.drops[dropHandoff].Inc()
	}
}

// route finds the flow of a client datagram. It returns the flow (nil with
// quicNew: open one for the Initial it returns), or the reason to drop the
// datagram.
func (t *quicTable) route(data []byte, from netip.AddrPort) (*quicFlow, quicRoute, []byte, quicDrop) {
	if quicinv.IsLong(data) {
		h, err := quicinv.ParseLong(data)
		switch {
		case errors.Is(err, quicinv.ErrTruncated):
			return nil, 0, nil, dropTruncated
		case err != nil, h.Version == quicinv.VersionNegotiation:
			return nil, 0, nil, dropGarbage // clients never send version negotiation
		}
		k := keyOf(h.DCID)
		t.mu.Lock()
		defer t.mu.Unlock()
		if f := t.byCID[k]; f != nil {
			return f, quicByCID, nil, dropNone
		}
		// An unknown DCID from the address of a connection with the same
		// client CID is that connection: the client switched to a CID from
		// NEW_CONNECTION_ID while it still sends Initial or Handshake
		// packets (quic-go clients do once the handshake completes). A
		// client that multiplexes connections on one socket tells them
		// apart by its own CIDs, and one with empty CIDs cannot.
		if f := t.byClient[clientKey{from, keyOf(h.SCID)}]; f != nil {
			t.addKeyLocked(f, k, learntByAddress)
			return f, quicByAddress, nil, dropNone
		}
		if len(data) < quicinv.MinInitialDatagram {
			return nil, 0, nil, dropUnknownCID // too small to open a connection
		}
		if len(h.DCID) < quicMinClientDCID {
			return nil, 0, nil, dropGarbage
		}
		return nil, quicNew, data, dropNone
	}
	if _, err := quicinv.ShortDCID(data, 0); err != nil {
		if errors.Is(err, quicinv.ErrTruncated) {
			return nil, 0, nil, dropTruncated
		}
		return nil, 0, nil, dropGarbage
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for n := 1; n <= quicinv.MaxCIDLen; n++ {
		if t.lens[n] == 0 {
			continue
		}
		id, err := quicinv.ShortDCID(data, n)
		if err != nil {
			break // too short for this length and every longer one
		}
		if f := t.byCID[keyOf(id)]; f != nil {
			return f, quicByCID, nil, dropNone
		}
	}
	// An unknown CID from a flow's client address: the client moved to a
	// CID its backend issued in a NEW_CONNECTION_ID frame (quic-go clients
	// do right after the handshake). Learn it at the length of the
	// backend's own CIDs, so that it still routes once the address changes.
	if f := t.byAddr[from]; f != nil {
		if f.cidLen > 0 {
			if id, err := quicinv.ShortDCID(data, f.cidLen); err == nil {
				t.addKeyLocked(f, keyOf(id), learntByAddress)
			}
		}
		return f, quicByAddress, nil, dropNone
	}
	return nil, 0, nil, dropUnknownCID
}

// How a flow got a CID.
type learntBy uint8

const (
	learntInitial   learntBy = iota // the DCID of the client's first Initial
	learntByBackend                 // a source CID in the backend's long headers
	learntByAddress                 // a client DCID seen at the flow's address
)

// addKeyLocked adds k to f's CIDs under t.mu. A CID another flow holds
// stays with it (counted as a collision); past quicMaxCIDsPerFlow an old
// CID of the flow makes room (clients retire old CIDs as they take new
// ones).
func (t *quicTable) addKeyLocked(f *quicFlow, k cidKey, by learntBy) {
	m := f.l.qm
	switch other := t.byCID[k]; {
	case other == f:
		return
	case other != nil:
		m.collisions.Inc()
		return
	case f.gone:
		return
	}
	if len(f.keys) >= quicMaxCIDsPerFlow {
		// The oldest CID learnt at the client's address goes first (those
		// are the ones a spoofed source could churn), else the oldest.
		i := 0
		for j, x := range f.keys {
			if x.by == learntByAddress {
				i = j
				break
			}
		}
		t.dropKeyLocked(f, f.keys[i])
		f.keys = append(f.keys[:i], f.keys[i+1:]...)
	}
	server := by != learntInitial
	t.byCID[k] = f
	if server {
		t.lens[k.n]++
		if by == learntByBackend {
			f.cidLen = int(k.n)
		}
	}
	f.keys = append(f.keys, quicKey{k: k, server: server, by: by})
	m.cids.Inc()
	m.learnt[by].Inc()
}

// dropKeyLocked removes one of f's CIDs from the table, under t.mu.
func (t *quicTable) dropKeyLocked(f *quicFlow, k quicKey) {
	if t.byCID[k.k] != f {
		return
	}
	delete(t.byCID, k.k)
	if k.server {
		t.lens[k.k.n]--
	}
	f.l.qm.cids.Dec()
}

// open starts a flow for an Initial (first: its datagram, already parsed
// by route) with an unknown DCID, on loop ll (it owns the flow's upstream
// socket), or returns the reason it could not; how is quicByCID when
// another loop opened it meanwhile (for a copy of the Initial from another
// address).
func (t *quicTable) open(ll *l4Loop, l *l4Listener, fd int, first []byte, from netip.AddrPort, ra *net.UDPAddr) (f *quicFlow, how quicRoute, drop quicDrop) {
	e := ll.l4.e
	ip := from.Addr()
	h, err := quicinv.ParseLong(first)
	if err != nil {
		return nil, 0, dropGarbage
	}
	dcid := h.DCID
	k := keyOf(dcid)
	t.mu.Lock()
	if f := t.byCID[k]; f != nil {
		t.mu.Unlock()
		return f, quicByCID, dropNone
	}
	if ok, lim := l.limiter.Acquire(ip); !ok {
		t.mu.Unlock()
		guard, drop := guards.QUICFlows, dropFlowsFull
		if lim == guards.MaxConnectionsPerIP {
			guard, drop = guards.QUICFlowsPerIP, dropFlowsPerIP
		}
		e.guards.Hit(guard, guards.Connection, l.name, ip)
		return nil, 0, drop
	}
	p, err := l.cluster.LB.PickHash(dcid, nil)
	if err != nil {
		t.mu.Unlock()
		l.limiter.Release(ip)
		e.m.UpstreamFailure(l.cluster.Name, "no_endpoint").Inc()
		return nil, 0, dropNoEndpointQ
	}
	f = &quicFlow{
		t: t, ll: ll, fd: fd, l: l, ep: p.Endpoint, ip: ip, client: from, sa: udpSockaddr(ra),
		clientCID: keyOf(h.SCID), started: time.Now(),
	}
	f.last = f.started.UnixNano()
	t.addKeyLocked(f, k, learntInitial)
	t.setAddrLocked(f, from, from)
	t.mu.Unlock()
	ll.quic[f] = struct{}{}
	m := l.qm
	m.flows.Inc()
	m.flowsTotal.Inc()
	l.total.Inc()
	f.dial()
	return f, quicNew, dropNone
}

// dial opens the flow's connected socket to its endpoint (see
// udpSession.dial); it arrives as onOpen.
func (f *quicFlow) dial() {
	f.ep.Begin()
	lp := f.ll.lp
	f.l.upConnects.Inc()
	lp.dialEnroll("udp", f.ep.Address(), f.l.connect, f, func(reason string) {
		if f.state == udpDialing {
			lp.e.m.UpstreamFailure(f.l.cluster.Name, reason).Inc()
			f.close(502, true, reason)
		}
	})
}

// fromClient relays one client datagram to the backend, on the flow's
// loop; a datagram found by its CID from a new address moves the flow's
// replies there.
func (f *quicFlow) fromClient(data []byte, from netip.AddrPort, ra *net.UDPAddr, how quicRoute) {
	if f.state == udpClosed {
		return
	}
	m := f.l.qm
	now := time.Now().UnixNano()
	f.last = now
	switch {
	case from == f.client || how != quicByCID:
	case from == f.prev && now-f.movedAt < int64(quicMoveBackAfter):
		// A datagram the old address sent before the move, reordered
		// behind the new address's (by the network, or by a hand-off
		// between loops): relay it, keep replying to the new address.
	default:
		f.prev, f.movedAt = f.client, now
		t := f.t
		t.mu.Lock()
		t.setAddrLocked(f, f.client, from)
		t.mu.Unlock()
		f.client, f.sa = from, udpSockaddr(ra)
		f.moves++
		m.migrations.Inc()
	}
	switch f.state {
	case udpOpen:
		f.send(data)
	case udpDialing:
		if len(f.queue) >= udpQueueMax || f.queued+len(data) > f.l.inflight {
			m.drops[dropQueueFull].Inc()
			return
		}
		f.queue = append(f.queue, append([]byte(nil), data...))
		f.queued += len(data)
	}
}

func (f *quicFlow) send(data []byte) {
	m := f.l.qm
	if _, err := f.up.Write(data); err != nil {
		m.drops[dropSendFailed].Inc()
		if errors.Is(err, unix.ECONNREFUSED) {
			f.ll.l4.e.m.UpstreamFailure(f.l.cluster.Name, "refused").Inc()
			f.close(502, true, "refused")
		}
		return
	}
	f.rx += int64(len(data))
	m.pktRx.Inc()
	counterAdd(m.bytesRx, len(data))
	counterAdd(f.l.rx, len(data))
}

func (f *quicFlow) onOpen(c gnet.Conn) gnet.Action {
	lp := f.ll.lp
	lp.enter(c)
	if f.state != udpDialing {
		lp.closeNow(c)
		return lp.leave()
	}
	f.up = c
	f.state = udpOpen
	f.connected = true
	f.l.upActive.Add(1)
	f.l.active.Inc()
	f.ep.ConnOpened()
	q := f.queue
	f.queue, f.queued = nil, 0
	for _, d := range q {
		if f.state != udpOpen {
			break
		}
		f.send(d)
	}
	return lp.leave()
}

// onTraffic relays one backend datagram to the client's current address,
// learning the source CID of a long header first.
func (f *quicFlow) onTraffic(c gnet.Conn) gnet.Action {
	data, _ := c.Next(-1)
	if c != f.up || f.state != udpOpen {
		return gnet.None
	}
	m := f.l.qm
	f.last = time.Now().UnixNano()
	// Learn the source CIDs of the datagram's long-header packets (a
	// server may choose a new one for its Handshake packets, coalesced
	// after its Initial).
	for rest, i := data, 0; quicinv.IsLong(rest) && i < 4; i++ {
		h, next, err := quicinv.NextLong(rest)
		if err != nil {
			// Its end cannot be found: its own header may still be whole.
			next = nil
			if h, err = quicinv.ParseLong(rest); err != nil {
				break
			}
		}
		f.learnBackendCID(h.SCID)
		rest = next
	}
	for {
		err := unix.Sendto(f.fd, data, 0, f.sa)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			m.drops[dropReplyFailed].Inc()
			return gnet.None
		}
		break
	}
	f.tx += int64(len(data))
	m.pktTx.Inc()
	counterAdd(m.bytesTx, len(data))
	counterAdd(f.l.tx, len(data))
	return gnet.None
}

// learnBackendCID adds a source CID of the backend's to the table.
func (f *quicFlow) learnBackendCID(id []byte) {
	k := keyOf(id)
	if len(id) == 0 || k == f.learnt {
		return
	}
	f.learnt = k
	f.t.mu.Lock()
	f.t.addKeyLocked(f, k, learntByBackend)
	f.t.mu.Unlock()
}

func (f *quicFlow) onClose(c gnet.Conn, err error) {
	if c != f.up {
		return
	}
	f.up = nil
	if err != nil && f.state == udpOpen {
		// An ICMP error from the endpoint (see udpSession.onClose).
		f.ll.l4.e.m.UpstreamFailure(f.l.cluster.Name, "refused").Inc()
		f.close(502, true, "refused")
		return
	}
	f.close(200, false, "")
}

func (f *quicFlow) abort(c gnet.Conn) {
	f.close(0, false, "panic")
	_ = c.Close()
}

// expire ends the flow once idle for the idle_timeout it opened with.
func (f *quicFlow) expire(now int64) {
	if now-f.last > int64(f.l.idle) {
		f.close(200, false, "expired")
	}
}

// close ends the flow on its loop and forgets its CIDs; status goes to the
// load balancer.
func (f *quicFlow) close(status int, connectFailed bool, reason string) {
	if f.state == udpClosed {
		return
	}
	f.state = udpClosed
	f.queue = nil
	t, l, m := f.t, f.l, f.l.qm
	t.mu.Lock()
	f.gone = true
	for _, k := range f.keys {
		t.dropKeyLocked(f, k)
	}
	f.keys = nil
	t.setAddrLocked(f, f.client, f.client) // gone: only removes
	t.mu.Unlock()
	delete(f.ll.quic, f)
	if c := f.up; c != nil {
		f.up = nil
		f.ll.lp.closeNow(c)
	}
	f.ep.End(status, time.Since(f.started), connectFailed)
	if f.connected {
		f.connected = false
		l.upActive.Add(-1)
		l.active.Dec()
		f.ep.ConnClosed()
	}
	l.limiter.Release(f.ip)
	m.flows.Dec()
	if !l.log {
		return
	}
	ev := f.ll.l4.e.log.Info().Str("type", "l4").Str("proto", "quic").Str("listener", l.name).
		Str("client", f.client.String()).Str("upstream", f.ep.Address()).
		Int64("rx", f.rx).Int64("tx", f.tx).Int("migrations", f.moves).Dur("duration", time.Since(f.started))
	if reason != "" {
		ev = ev.Str("reason", reason)
	}
	ev.Msg("")
}

var _ l4Actor = (*quicFlow)(nil)
