// SPDX-License-Identifier: GPL-3.0-only

package engine

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/panjf2000/gnet/v2"

	"github.com/expressgateway/expressgateway/codecs/quicinv"
)

// These tests drive a quic-passthrough listener with QUIC-shaped
// datagrams (the invariant headers, padding for the rest) and fake
// backends, so that every routing rule is checked byte-exact;
// l4_quic_h3_test.go runs real HTTP/3 through it.

// quicPTTOML is a quic-passthrough listener "qp" to a maglev cluster.
func quicPTTOML(addr string, endpoints []string, extra string) string {
	return fmt.Sprintf(`
[[listeners]]
name = "qp"
listen = %q
protocol = "quic-passthrough"
cluster = "h3"
%s
[[clusters]]
name = "h3"
lb = "maglev"
endpoints = %s
`, addr, extra, endpointsTOML(endpoints))
}

// fakeQUICBackend answers a long-header datagram with a long header whose
// source CID is its own 4-byte ID for that client DCID (as a server picks
// its CID), padded; and any other datagram with "name|" and the datagram's
// first 32 bytes, so the test sees which backend got what.
func fakeQUICBackend(t *testing.T, name string) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { _ = pc.Close(); <-done })
	go func() {
		defer close(done)
		buf := make([]byte, 64<<10)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			d := buf[:n]
			if h, err := quicinv.ParseLong(d); err == nil {
				reply, _ := quicinv.AppendLong(nil, 0xc0, 1, h.SCID, serverCID(name, h.DCID))
				reply = append(reply, []byte(name+"|hello")...)
				_, _ = pc.WriteTo(append(reply, make([]byte, 64)...), from)
				continue
			}
			_, _ = pc.WriteTo(append([]byte(name+"|"), d[:min(len(d), 32)]...), from)
		}
	}()
	return pc.LocalAddr().String()
}

// serverCID is the 4-byte CID backend name chooses for client DCID dcid.
func serverCID(name string, dcid []byte) []byte {
	var h uint32 = 2166136261
	for _, c := range append([]byte(name+"/"), dcid...) {
		h = (h ^ uint32(c)) * 16777619
	}
	return []byte{byte(h >> 24), byte(h >> 16), byte(h >> 8), byte(h)}
}

// initial is a client Initial-shaped datagram: long header, padded to the
// 1200 bytes a client's first flight needs.
func initial(t *testing.T, dcid, scid []byte) []byte {
	t.Helper()
	b, err := quicinv.AppendLong(nil, 0xc0, 1, dcid, scid)
	if err != nil {
		t.Fatal(err)
	}
	return append(b, make([]byte, 1200-len(b))...)
}

// short is a short-header datagram to dcid with a payload tag.
func short(dcid []byte, tag string) []byte {
	b := append([]byte{0x40}, dcid...)
	b = append(b, tag...)
	return append(b, make([]byte, 32)...)
}

// quicAsk sends d on c and returns the reply, or nil after wait.
func quicAsk(t *testing.T, c net.Conn, d []byte, wait time.Duration) []byte {
	t.Helper()
	if _, err := c.Write(d); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 2048)
	n, err := c.Read(buf)
	if err != nil {
		return nil
	}
	return buf[:n]
}

// replyFrom says which backend a reply came from and, for a long header,
// the source CID it chose.
func replyFrom(t *testing.T, r []byte) (name string, scid []byte) {
	t.Helper()
	if h, err := quicinv.ParseLong(r); err == nil {
		rest := r[7+len(h.DCID)+len(h.SCID):]
		name, _, _ = strings.Cut(string(rest), "|")
		return name, h.SCID
	}
	name, _, ok := strings.Cut(string(r), "|")
	if !ok {
		t.Fatalf("reply %q", r)
	}
	return name, nil
}

func dcidN(i int) []byte { return []byte(fmt.Sprintf("dcid%04d", i)) }

// TestQUICPassthroughRouting: Initials are placed by their DCID (the same
// DCID from another address reaches the same backend), the backend's
// source CID is learnt and short headers to it follow, replies go to the
// address the last datagram came from, a short header with an unknown CID
// falls back to the flow of its client address (and the CID is learnt),
// and new connections spread over the backends.
func TestQUICPassthroughRouting(t *testing.T) {
	backs := []string{fakeQUICBackend(t, "a"), fakeQUICBackend(t, "b"), fakeQUICBackend(t, "c")}
	addr := freeUDPPort(t)
	g := startL4(t, 2, quicPTTOML(addr, backs, ""))

	seen := map[string]int{}
	for i := range 30 {
		c := dialUDP(t, addr)
		r := quicAsk(t, c, initial(t, dcidN(i), []byte("cli1")), 2*time.Second)
		if r == nil {
			t.Fatalf("connection %d: no reply to its Initial", i)
		}
		name, scid := replyFrom(t, r)
		if !bytes.Equal(scid, serverCID(name, dcidN(i))) {
			t.Fatalf("connection %d: reply scid %x from %s", i, scid, name)
		}
		seen[name]++
		// Short headers to the backend's CID reach it.
		for j := range 3 {
			r := quicAsk(t, c, short(scid, fmt.Sprintf("pkt%d", j)), 2*time.Second)
			if got, _ := replyFrom(t, r); got != name {
				t.Fatalf("connection %d packet %d: %q, want backend %s", i, j, r, name)
			}
		}
		if i == 0 {
			// The same Initial from another address (a retransmission
			// after a NAT rebinding): the same backend, and the replies
			// follow the new address.
			c2 := dialUDP(t, addr)
			r := quicAsk(t, c2, initial(t, dcidN(0), []byte("cli1")), 2*time.Second)
			if got, _ := replyFrom(t, r); got != name {
				t.Fatalf("retransmitted Initial from a new address went to %q, want %s", got, name)
			}
			r = quicAsk(t, c2, short(scid, "moved"), 2*time.Second)
			if got, _ := replyFrom(t, r); got != name || !bytes.Contains(r, []byte("moved")) {
				t.Fatalf("after the move: %q", r)
			}
			// An unknown CID from the flow's current address: the
			// address fallback (the client took a CID from a
			// NEW_CONNECTION_ID frame), which learns the CID...
			r = quicAsk(t, c2, short([]byte{9, 9, 9, 9}, "newcid"), 2*time.Second)
			if got, _ := replyFrom(t, r); got != name {
				t.Fatalf("unknown CID from the flow's address: %q", r)
			}
			// ...so that it still routes after a NAT rebinding.
			r = quicAsk(t, dialUDP(t, addr), short([]byte{9, 9, 9, 9}, "rebound"), 2*time.Second)
			if got, _ := replyFrom(t, r); got != name || !bytes.Contains(r, []byte("rebound")) {
				t.Fatalf("learnt CID from a new address: %q", r)
			}
			// An unknown CID from an address nobody uses: dropped.
			if r := quicAsk(t, dialUDP(t, addr), short([]byte{8, 8, 8, 8}, "lost"), 200*time.Millisecond); r != nil {
				t.Fatalf("unknown CID from a new address answered: %q", r)
			}
		}
	}
	t.Logf("30 connections over the backends: %v", seen)
	if len(seen) != 3 {
		t.Errorf("connections reached %d backends: %v", len(seen), seen)
	}
	checks := map[string]float64{
		`expressgateway_quic_passthrough_flows_active{listener="qp"}`:                     30,
		`expressgateway_quic_passthrough_cids{listener="qp"}`:                             61,
		`expressgateway_quic_passthrough_flows_total{listener="qp"}`:                      30,
		`expressgateway_quic_passthrough_routed_total{listener="qp",by="maglev"}`:         30,
		`expressgateway_quic_passthrough_routed_total{listener="qp",by="cid"}`:            30*3 + 3,
		`expressgateway_quic_passthrough_routed_total{listener="qp",by="address"}`:        1,
		`expressgateway_quic_passthrough_migrations_total{listener="qp"}`:                 2,
		`expressgateway_quic_passthrough_cids_learnt_total{listener="qp",from="backend"}`: 30,
		`expressgateway_quic_passthrough_cids_learnt_total{listener="qp",from="address"}`: 1,
		`expressgateway_quic_passthrough_drops_total{listener="qp",reason="unknown_cid"}`: 1,
	}
	for series, want := range checks {
		if v := g.metric(series); v != want {
			t.Errorf("%s = %v, want %v", series, v, want)
		}
	}
}

// TestQUICPassthroughBadInput: truncated and garbage datagrams are
// dropped and counted by reason, and a live connection goes on.
func TestQUICPassthroughBadInput(t *testing.T) {
	backs := []string{fakeQUICBackend(t, "a")} // bound before the listener's port is picked: a backend could take it
	addr := freeUDPPort(t)
	g := startL4(t, 1, quicPTTOML(addr, backs, ""))
	c := dialUDP(t, addr)
	_, scid := replyFrom(t, quicAsk(t, c, initial(t, dcidN(1), nil), 2*time.Second))

	long := initial(t, dcidN(2), nil)
	vn, _ := quicinv.AppendLong(nil, 0x80, 0, dcidN(3), nil)
	bad := map[string][][]byte{
		"truncated": {
			long[:3], long[:8], // long header cut inside its CIDs
			{0x40, 1, 2, 3}, // a short header shorter than any packet
		},
		"garbage": {
			append([]byte{0xc0, 0, 0, 0, 1, 21}, make([]byte, 1300)...), // DCID longer than 20
			append(vn, make([]byte, 1200)...),                           // version negotiation from a client
			initial(t, []byte{1, 2, 3}, nil),                            // a first Initial with a 3-byte DCID
		},
		"unknown_cid": {long[:600], short([]byte{7, 7, 7, 7}, "x")},
	}
	other := dialUDP(t, addr)
	for _, ds := range bad {
		for _, d := range ds {
			if _, err := other.Write(d); err != nil {
				t.Fatal(err)
			}
		}
	}
	for reason, ds := range bad {
		series := fmt.Sprintf(`expressgateway_quic_passthrough_drops_total{listener="qp",reason=%q}`, reason)
		if v := g.waitMetric(series, float64(len(ds))); v != float64(len(ds)) {
			t.Errorf("%s = %v, want %d", series, v, len(ds))
		}
	}
	if r := quicAsk(t, c, short(scid, "still"), 2*time.Second); !bytes.Contains(r, []byte("still")) {
		t.Fatalf("live connection after the garbage: %q", r)
	}
	if v := g.metric(`expressgateway_quic_passthrough_flows_active{listener="qp"}`); v != 1 {
		t.Errorf("flows_active = %v, want 1", v)
	}
}

// TestQUICPassthroughTableBound: with max_connections = 2 a third QUIC
// connection is dropped and counted (guard quic_flows) while the two go
// on; max_sessions_per_ip caps one client IP the same way.
func TestQUICPassthroughTableBound(t *testing.T) {
	backs := []string{fakeQUICBackend(t, "a"), fakeQUICBackend(t, "b")}
	addr := freeUDPPort(t)
	g := startL4(t, 2, quicPTTOML(addr, backs, "max_connections = 2"))
	var conns []net.Conn
	var scids [][]byte
	for i := range 2 {
		c := dialUDP(t, addr)
		_, scid := replyFrom(t, quicAsk(t, c, initial(t, dcidN(i), nil), 2*time.Second))
		conns, scids = append(conns, c), append(scids, scid)
	}
	for i := range 3 {
		if r := quicAsk(t, dialUDP(t, addr), initial(t, dcidN(10+i), nil), 200*time.Millisecond); r != nil {
			t.Fatalf("connection over the cap answered: %q", r)
		}
	}
	for i, c := range conns {
		if r := quicAsk(t, c, short(scids[i], "on"), 2*time.Second); !bytes.Contains(r, []byte("on")) {
			t.Fatalf("connection %d after the cap: %q", i, r)
		}
	}
	if v := g.metric(`expressgateway_quic_passthrough_drops_total{listener="qp",reason="flows_full"}`); v != 3 {
		t.Errorf("flows_full drops = %v, want 3", v)
	}
	if v := g.metric(`expressgateway_guard_tripped_total{guard="quic_flows"}`); v != 3 {
		t.Errorf("guard quic_flows = %v, want 3", v)
	}

	backs2 := []string{fakeQUICBackend(t, "a")}
	addr2 := freeUDPPort(t)
	g2 := startL4(t, 1, quicPTTOML(addr2, backs2, "max_sessions_per_ip = 1"))
	if r := quicAsk(t, dialUDP(t, addr2), initial(t, dcidN(1), nil), 2*time.Second); r == nil {
		t.Fatal("first connection of the IP not answered")
	}
	if r := quicAsk(t, dialUDP(t, addr2), initial(t, dcidN(2), nil), 200*time.Millisecond); r != nil {
		t.Fatalf("second connection of the IP answered: %q", r)
	}
	if v := g2.metric(`expressgateway_guard_tripped_total{guard="quic_flows_per_ip"}`); v != 1 {
		t.Errorf("guard quic_flows_per_ip = %v, want 1", v)
	}
}

// TestQUICPassthroughAgeing: an idle connection's CIDs leave the table
// after idle_timeout; its next short header is an unknown CID.
func TestQUICPassthroughAgeing(t *testing.T) {
	backs := []string{fakeQUICBackend(t, "a")}
	addr := freeUDPPort(t)
	g := startL4(t, 1, quicPTTOML(addr, backs, `
[listeners.quic_passthrough]
idle_timeout = "300ms"`))
	c := dialUDP(t, addr)
	_, scid := replyFrom(t, quicAsk(t, c, initial(t, dcidN(1), nil), 2*time.Second))
	// Traffic keeps it.
	for range 4 {
		time.Sleep(150 * time.Millisecond)
		if r := quicAsk(t, c, short(scid, "keep"), 2*time.Second); r == nil {
			t.Fatal("active connection expired")
		}
	}
	if v := g.waitMetric(`expressgateway_quic_passthrough_flows_active{listener="qp"}`, 0); v != 0 {
		t.Fatalf("flows_active = %v after idle_timeout", v)
	}
	if v := g.metric(`expressgateway_quic_passthrough_cids{listener="qp"}`); v != 0 {
		t.Fatalf("cids = %v after idle_timeout", v)
	}
	if r := quicAsk(t, c, short(scid, "late"), 200*time.Millisecond); r != nil {
		t.Fatalf("expired connection answered: %q", r)
	}
	if v := g.metric(`expressgateway_quic_passthrough_drops_total{listener="qp",reason="unknown_cid"}`); v != 1 {
		t.Errorf("unknown_cid drops = %v, want 1", v)
	}
}

// TestQUICPassthroughCIDCap: CIDs learnt at a client's address (all a
// spoofed source could add) are capped per connection and make room among
// themselves, so the backend's own CID keeps routing.
func TestQUICPassthroughCIDCap(t *testing.T) {
	backs := []string{fakeQUICBackend(t, "a")}
	addr := freeUDPPort(t)
	g := startL4(t, 1, quicPTTOML(addr, backs, ""))
	c := dialUDP(t, addr)
	_, scid := replyFrom(t, quicAsk(t, c, initial(t, dcidN(1), nil), 2*time.Second))
	for i := range 20 {
		if r := quicAsk(t, c, short([]byte{1, 1, 1, byte(i)}, "churn"), 2*time.Second); r == nil {
			t.Fatalf("churn %d not relayed", i)
		}
	}
	if v := g.metric(`expressgateway_quic_passthrough_cids{listener="qp"}`); v != quicMaxCIDsPerFlow {
		t.Errorf("cids = %v, want the cap %d", v, quicMaxCIDsPerFlow)
	}
	if r := quicAsk(t, dialUDP(t, addr), short(scid, "moved"), 2*time.Second); !bytes.Contains(r, []byte("moved")) {
		t.Fatalf("backend CID after the churn, from a new address: %q", r)
	}
}

// TestQUICPassthroughReload: a reload that adds an endpoint rebuilds the
// Maglev table (new connections reach the new backend) while the open
// connections stay on their backends, one that removes an endpoint leaves
// the connections on it running, and one that removes the listener ends
// them all.
func TestQUICPassthroughReload(t *testing.T) {
	a, b, c := fakeQUICBackend(t, "a"), fakeQUICBackend(t, "b"), fakeQUICBackend(t, "c")
	addr := freeUDPPort(t)
	text := func(eps ...string) string {
		// 70 connections from 127.0.0.1: past the default per-IP cap.
		return "[admin]\nlisten = \"\"\n[engine]\nevent_loops = 2\n[log]\naccess_log = false\n" +
			quicPTTOML(addr, eps, "max_sessions_per_ip = 0")
	}
	g := startL4(t, 2, quicPTTOML(addr, []string{a, b}, "max_sessions_per_ip = 0"))
	type conn struct {
		c    net.Conn
		name string
		scid []byte
	}
	var open []conn
	for i := range 20 {
		nc := dialUDP(t, addr)
		name, scid := replyFrom(t, quicAsk(t, nc, initial(t, dcidN(i), nil), 2*time.Second))
		open = append(open, conn{nc, name, scid})
	}
	check := func(when string) {
		t.Helper()
		for i, o := range open {
			r := quicAsk(t, o.c, short(o.scid, "x"), 2*time.Second)
			if got, _ := replyFrom(t, r); got != o.name {
				t.Fatalf("%s: connection %d on %q, opened on %s", when, i, got, o.name)
			}
		}
	}
	if err := g.reload(t, text(a, b, c)); err != nil {
		t.Fatal(err)
	}
	check("after adding c")
	seen := map[string]int{}
	for i := range 30 {
		name, _ := replyFrom(t, quicAsk(t, dialUDP(t, addr), initial(t, dcidN(100+i), nil), 2*time.Second))
		seen[name]++
	}
	if seen["c"] == 0 {
		t.Errorf("no new connection reached the added endpoint: %v", seen)
	}
	if err := g.reload(t, text(a, c)); err != nil {
		t.Fatal(err)
	}
	check("after removing b")
	for i := range 30 {
		r := quicAsk(t, dialUDP(t, addr), initial(t, dcidN(200+i), nil), 2*time.Second)
		if r == nil {
			t.Fatalf("new connection %d after removing b: no reply", i)
		}
		if name, _ := replyFrom(t, r); name == "b" {
			t.Fatalf("new connection %d on the removed endpoint", i)
		}
	}
	// Removing the listener ends its connections and empties the table.
	if err := g.reload(t, "[admin]\nlisten = \"\"\n[engine]\nevent_loops = 2\n[log]\naccess_log = false\n"+
		udpListenerTOML(freeUDPPort(t), []string{a}, "")); err != nil {
		t.Fatal(err)
	}
	for _, series := range []string{`expressgateway_quic_passthrough_flows_active{listener="qp"}`, `expressgateway_quic_passthrough_cids{listener="qp"}`} {
		if v := g.waitMetric(series, 0); v != 0 {
			t.Errorf("%s = %v after the listener was removed", series, v)
		}
	}
}

// TestQUICPassthroughHandoffBound: while the loop that owns a connection
// is busy, at most quicHopsMax of its datagrams arriving on another loop
// wait for it; the rest are dropped and counted (guard
// quic_handoff_full), and the connection goes on afterwards.
func TestQUICPassthroughHandoffBound(t *testing.T) {
	backs := []string{fakeQUICBackend(t, "a")}
	addr := freeUDPPort(t)
	g := startL4(t, 2, quicPTTOML(addr, backs, ""))
	_, scid := replyFrom(t, quicAsk(t, dialUDP(t, addr), initial(t, dcidN(1), nil), 2*time.Second))
	const handoffs = `expressgateway_quic_passthrough_handoffs_total{listener="qp"}`
	// A client address the kernel steers to the other loop (half of them).
	var other net.Conn
	for i := 0; i < 64 && other == nil; i++ {
		before := g.metric(handoffs)
		x := dialUDP(t, addr)
		if quicAsk(t, x, short(scid, "probe"), 2*time.Second) == nil {
			t.Fatal("probe not answered")
		}
		if g.metric(handoffs) > before {
			other = x
		}
	}
	if other == nil {
		t.Fatal("no client address reached the other loop in 64 tries")
	}
	g.eng.lmu.Lock()
	tab := g.eng.slots["qp"].quic
	g.eng.lmu.Unlock()
	tab.mu.Lock()
	f := tab.byCID[keyOf(scid)]
	tab.mu.Unlock()
	release := make(chan struct{})
	busy := make(chan struct{})
	if err := f.ll.lp.el.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
		close(busy)
		<-release
		return nil
	})); err != nil {
		t.Fatal(err)
	}
	<-busy
	for i := range 2 * quicHopsMax {
		if _, err := other.Write(short(scid, "flood")); err != nil {
			t.Fatal(err)
		}
		if i%16 == 15 {
			time.Sleep(2 * time.Millisecond) // within the socket buffer of the receiving loop
		}
	}
	const full = `expressgateway_quic_passthrough_drops_total{listener="qp",reason="handoff_full"}`
	deadline := time.Now().Add(5 * time.Second)
	for g.metric(full) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	close(release)
	if v := g.metric(full); v == 0 || v > quicHopsMax {
		t.Fatalf("handoff_full drops = %v", v)
	}
	if v := g.metric(`expressgateway_guard_tripped_total{guard="quic_handoff_full"}`); v == 0 {
		t.Errorf("guard quic_handoff_full not counted")
	}
	// The queued datagrams are relayed; the connection goes on.
	_ = other.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	buf := make([]byte, 2048)
	for {
		if _, err := other.Read(buf); err != nil {
			break
		}
	}
	if r := quicAsk(t, other, short(scid, "after"), 2*time.Second); !bytes.Contains(r, []byte("after")) {
		t.Fatalf("after the flood: %q", r)
	}
}

// TestQUICPassthroughSameAddressLongHeader: a long header to an unknown
// DCID from a connection's address belongs to that connection when it
// carries the connection's client CID (the client switched to a CID from
// NEW_CONNECTION_ID before its Initial and Handshake packets were done),
// and opens a new connection when it carries another (a client that
// multiplexes connections on one socket).
func TestQUICPassthroughSameAddressLongHeader(t *testing.T) {
	backs := []string{fakeQUICBackend(t, "a"), fakeQUICBackend(t, "b")}
	addr := freeUDPPort(t)
	g := startL4(t, 2, quicPTTOML(addr, backs, ""))
	c := dialUDP(t, addr)
	first, _ := replyFrom(t, quicAsk(t, c, initial(t, dcidN(1), []byte("cliA")), 2*time.Second))
	// Same client CID, new DCID: the same connection, even at 1200 bytes.
	if got, _ := replyFrom(t, quicAsk(t, c, initial(t, []byte("switched"), []byte("cliA")), 2*time.Second)); got != first {
		t.Fatalf("the connection's own Initial to a new DCID went to %q, want %s", got, first)
	}
	const flows = `expressgateway_quic_passthrough_flows_total{listener="qp"}`
	if v := g.metric(flows); v != 1 {
		t.Fatalf("flows_total = %v after a CID switch, want 1", v)
	}
	// Another client CID on the same socket: a second connection.
	if r := quicAsk(t, c, initial(t, dcidN(2), []byte("cliB")), 2*time.Second); r == nil {
		t.Fatal("second connection on the socket not answered")
	}
	if v := g.metric(flows); v != 2 {
		t.Fatalf("flows_total = %v after a second connection, want 2", v)
	}
	// The first connection's packets are still told apart by its CID.
	if got, _ := replyFrom(t, quicAsk(t, c, initial(t, []byte("switched-again"), []byte("cliA")), 2*time.Second)); got != first {
		t.Fatalf("the first connection beside the second went to %q, want %s", got, first)
	}
	if v := g.metric(flows); v != 2 {
		t.Fatalf("flows_total = %v, want 2", v)
	}
	// A small long header with an unknown DCID and a client CID nobody
	// has: dropped.
	hs, _ := quicinv.AppendLong(nil, 0xe0, 1, []byte("unknown!"), []byte("cliZ"))
	if r := quicAsk(t, c, append(hs, make([]byte, 80)...), 200*time.Millisecond); r != nil {
		t.Fatalf("unknown Handshake answered: %q", r)
	}
	if v := g.metric(`expressgateway_quic_passthrough_drops_total{listener="qp",reason="unknown_cid"}`); v != 1 {
		t.Errorf("unknown_cid drops = %v, want 1", v)
	}
}

// BenchmarkQUICRoute: the table lookup of every client datagram, a short
// header to a known CID and a long header to a known DCID, allocates
// nothing.
func BenchmarkQUICRoute(b *testing.B) {
	tab := newQUICTable()
	l := &l4Listener{qm: newQUICMetrics(metrics.NewSet(), "bench")}
	for i := range 10000 {
		f := &quicFlow{t: tab, l: l}
		id := []byte{byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)}
		tab.mu.Lock()
		tab.addKeyLocked(f, keyOf(dcidN(i)), learntInitial)
		tab.addKeyLocked(f, keyOf(id), learntByBackend)
		tab.mu.Unlock()
	}
	from := netip.MustParseAddrPort("192.0.2.1:4433")
	sh := short([]byte{0, 0, 0x12, 0x34}, "x")
	long, _ := quicinv.AppendLong(nil, 0xe0, 1, dcidN(77), nil)
	long = append(long, make([]byte, 60)...)
	b.ReportAllocs()
	for b.Loop() {
		if f, _, _, drop := tab.route(sh, from); f == nil || drop != dropNone {
			b.Fatal("short header not routed")
		}
		if f, _, _, drop := tab.route(long, from); f == nil || drop != dropNone {
			b.Fatal("long header not routed")
		}
	}
}

// TestQUICPassthroughReorderedOldAddress: a datagram from the previous
// client address just after a move is relayed but does not move the
// replies back (it was sent before the move and reordered); a second after
// the move, the previous address can take them back.
func TestQUICPassthroughReorderedOldAddress(t *testing.T) {
	backs := []string{fakeQUICBackend(t, "a")}
	addr := freeUDPPort(t)
	g := startL4(t, 1, quicPTTOML(addr, backs, ""))
	c1, c2 := dialUDP(t, addr), dialUDP(t, addr)
	_, scid := replyFrom(t, quicAsk(t, c1, initial(t, dcidN(1), nil), 2*time.Second))
	if r := quicAsk(t, c2, short(scid, "moved"), 2*time.Second); !bytes.Contains(r, []byte("moved")) {
		t.Fatalf("after the move: %q", r)
	}
	if r := quicAsk(t, c1, short(scid, "late"), 200*time.Millisecond); r != nil {
		t.Fatalf("a reordered datagram moved the replies back: %q", r)
	}
	_ = c2.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 2048)
	if n, err := c2.Read(buf); err != nil || !bytes.Contains(buf[:n], []byte("late")) {
		t.Fatalf("the reply to the reordered datagram did not reach the new address: %q %v", buf[:n], err)
	}
	time.Sleep(quicMoveBackAfter + 100*time.Millisecond)
	if r := quicAsk(t, c1, short(scid, "back"), 2*time.Second); !bytes.Contains(r, []byte("back")) {
		t.Fatalf("moving back after a second: %q", r)
	}
	if v := g.metric(`expressgateway_quic_passthrough_migrations_total{listener="qp"}`); v != 2 {
		t.Errorf("migrations = %v, want 2", v)
	}
}
