// SPDX-License-Identifier: GPL-3.0-only

//go:build linux

package xdp

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/expressgateway/expressgateway/xdp/netnstest"
)

// Katran-style fixtures: a frame goes through the program with
// BPF_PROG_TEST_RUN and comes out with a verdict, a counter and exact bytes.
// The program runs in a namespace of its own where bpf_fib_lookup finds
// permanent neighbours, so the rewritten MAC addresses are known.

const (
	lbMAC     = "02:00:00:00:00:01"
	clientMAC = "02:00:00:00:00:0a"
	client2MA = "02:00:00:00:00:14"
	be1MAC    = "02:00:00:00:00:0b"
	be2MAC    = "02:00:00:00:00:0c"
)

var (
	lbAddr   = netip.MustParseAddr("198.18.0.1")
	client   = netip.MustParseAddr("198.18.0.10")
	client2  = netip.MustParseAddr("198.18.0.20")
	be1      = netip.MustParseAddr("198.18.0.11")
	be2      = netip.MustParseAddr("198.18.0.12")
	vip4     = netip.MustParseAddr("198.18.100.1")
	dsrVIP4  = netip.MustParseAddr("198.18.100.2")
	dsrVIP46 = netip.MustParseAddr("198.18.100.3")
	denied4  = netip.MustParseAddr("198.18.66.5")
	lbAddr6  = netip.MustParseAddr("2001:2::1")
	client6  = netip.MustParseAddr("2001:2::10")
	be1v6    = netip.MustParseAddr("2001:2::11")
	vip6     = netip.MustParseAddr("2001:2:0:100::1")
	dsrVIP6  = netip.MustParseAddr("2001:2:0:100::2")
	denied6  = netip.MustParseAddr("2001:2:66::5")
	otherDst = netip.MustParseAddr("198.18.0.99")
)

// xdpMd mirrors struct xdp_md for BPF_PROG_TEST_RUN's context.
type xdpMd struct {
	Data, DataEnd, DataMeta, IngressIfindex, RxQueueIndex, EgressIfindex uint32
}

type fixture struct {
	t       *testing.T
	ns      *netnstest.NS
	lb      *LB
	ifindex uint32
}

func skipUnlessBPF(t testing.TB) {
	t.Helper()
	netnstest.Skip(t)
	if _, err := os.Stat("/sys/fs/bpf"); err != nil {
		t.Skip("no bpffs: ", err)
	}
}

func baseConfig() Config {
	return Config{
		Interface:     "fx0",
		ConntrackSize: 4096,
		Deny:          []netip.Prefix{netip.MustParsePrefix("198.18.66.0/24"), netip.MustParsePrefix("2001:2:66::/48")},
		VIPs: []VIP{
			{Name: "web4", Address: vip4, Port: 80, Protocol: "tcp", SNATAddress: lbAddr, TableSize: 7,
				Backends: []Backend{{Name: "b1", Address: be1, Port: 8080, Weight: 1, Healthy: true}}},
			{Name: "dns4", Address: vip4, Port: 0, Protocol: "udp", SNATAddress: lbAddr, TableSize: 7,
				Backends: []Backend{{Name: "b1", Address: be1, Weight: 1, Healthy: true}}},
			{Name: "web6", Address: vip6, Port: 80, Protocol: "tcp", SNATAddress: lbAddr6, TableSize: 7,
				Backends: []Backend{{Name: "b1", Address: be1v6, Port: 8080, Weight: 1, Healthy: true}}},
			{Name: "dns6", Address: vip6, Port: 53, Protocol: "udp", SNATAddress: lbAddr6, TableSize: 7,
				Backends: []Backend{{Name: "b1", Address: be1v6, Port: 5353, Weight: 1, Healthy: true}}},
			{Name: "dsr4", Address: dsrVIP4, Port: 80, Protocol: "tcp", Mode: ModeDSR, SNATAddress: lbAddr, TableSize: 7,
				Backends: []Backend{{Name: "b1", Address: be1, Weight: 1, Healthy: true}}},
			{Name: "dsr6", Address: dsrVIP6, Port: 80, Protocol: "tcp", Mode: ModeDSR, TableSize: 7,
				Backends: []Backend{{Name: "b1", Address: be1v6, Weight: 1, Healthy: true}}},
			{Name: "dsr46", Address: dsrVIP46, Port: 80, Protocol: "tcp", Mode: ModeDSR, SNATAddress: lbAddr6, TableSize: 7,
				Backends: []Backend{{Name: "b1", Address: be1v6, Weight: 1, Healthy: true}}},
		},
	}
}

func newFixture(t *testing.T, cfg Config) *fixture {
	t.Helper()
	skipUnlessBPF(t)
	ns := netnstest.New(t, "egfx")
	netnstest.Veth(t, ns, "fx0", lbMAC, ns, "fx1", "")
	ns.IP("addr", "add", "198.18.0.1/24", "dev", "fx0")
	ns.IP("-6", "addr", "add", "2001:2::1/64", "dev", "fx0", "nodad")
	for addr, mac := range map[string]string{
		"198.18.0.10": clientMAC, "198.18.0.20": client2MA, "198.18.0.11": be1MAC, "198.18.0.12": be2MAC,
		"2001:2::10": clientMAC, "2001:2::11": be1MAC,
	} {
		ns.IP("neigh", "replace", addr, "lladdr", mac, "dev", "fx0", "nud", "permanent")
	}
	ns.Sysctl("net.ipv4.conf.all.forwarding", "1")
	ns.Sysctl("net.ipv6.conf.all.forwarding", "1")

	l, err := newLB(cfg.withDefaults())
	if err != nil {
		if errors.Is(err, ErrPermission) {
			t.Skip("cannot load BPF here: ", err)
		}
		t.Fatalf("load: %v", err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return &fixture{t: t, ns: ns, lb: l, ifindex: uint32(ns.Ifindex("fx0"))}
}

// run sends one frame through the program on CPU 0. With tx the frame
// arrives on fx0 (the fib result's interface, so XDP_TX); without, on the
// namespace's loopback (so XDP_REDIRECT).
func (f *fixture) run(in []byte, tx bool) (uint32, []byte) {
	f.t.Helper()
	out := make([]byte, len(in)+128)
	opts := &ebpf.RunOptions{Data: in, DataOut: out}
	if tx {
		opts.Context = xdpMd{DataEnd: uint32(len(in)), IngressIfindex: f.ifindex}
	}
	var ret uint32
	f.ns.MustDo(func() (err error) {
		var old unix.CPUSet
		if err := unix.SchedGetaffinity(0, &old); err != nil {
			return err
		}
		var one unix.CPUSet
		one.Set(0)
		if err := unix.SchedSetaffinity(0, &one); err != nil {
			return err
		}
		defer func() {
			if rerr := unix.SchedSetaffinity(0, &old); err == nil {
				err = rerr
			}
		}()
		ret, err = f.lb.objs.XdpLb.Run(opts)
		return err
	})
	return ret, opts.DataOut
}

func (f *fixture) reasons() map[string]uint64 {
	f.t.Helper()
	s, err := f.lb.Stats()
	if err != nil {
		f.t.Fatal(err)
	}
	return s.Reasons
}

func (f *fixture) conntrackLen() int {
	n := 0
	var k lbFlowKey
	var v lbFlowEntry
	it := f.lb.objs.Flows.Iterate()
	for it.Next(&k, &v) {
		if v.Kind == flowFwd {
			n++
		}
	}
	return n
}

var verdictNames = map[uint32]string{0: "XDP_ABORTED", 1: "XDP_DROP", 2: "XDP_PASS", 3: "XDP_TX", 4: "XDP_REDIRECT"}

// expect runs in and checks verdict, counter and output bytes (want nil:
// the frame must come out unchanged).
func (f *fixture) expect(in []byte, tx bool, verdict uint32, reason string, want []byte) []byte {
	f.t.Helper()
	before := f.reasons()
	ret, out := f.run(in, tx)
	after := f.reasons()
	if ret != verdict {
		f.t.Errorf("verdict %s, want %s", verdictNames[ret], verdictNames[verdict])
	}
	for k, v := range after {
		d := v - before[k]
		if k == reason && d != 1 {
			f.t.Errorf("counter %s moved by %d, want 1", k, d)
		}
		if k != reason && d != 0 {
			f.t.Errorf("counter %s moved by %d, want 0 (expected %s)", k, d, reason)
		}
	}
	if want == nil {
		want = in
	}
	if !bytes.Equal(out, want) {
		f.t.Errorf("output differs\n got %s\nwant %s", hex.EncodeToString(out), hex.EncodeToString(want))
	}
	return out
}

const (
	xdpDrop     = 1
	xdpPass     = 2
	xdpTX       = 3
	xdpRedirect = 4
)

func syn4(sport uint16) pkt {
	return pkt{smac: clientMAC, dmac: lbMAC, src: client, dst: vip4, proto: 6, sport: sport, dport: 80, tcpFlags: tcpSYN, seq: 1000}
}

func TestFixtures(t *testing.T) {
	f := newFixture(t, baseConfig())

	natOut := func(p pkt, src netip.Addr, sport uint16, dst netip.Addr, dport uint16, dmac string) []byte {
		p.smac, p.dmac, p.src, p.sport, p.dst, p.dport = lbMAC, dmac, src, sport, dst, dport
		return p.bytes()
	}
	udp4 := pkt{smac: clientMAC, dmac: lbMAC, src: client, dst: vip4, proto: 17, sport: 41000, dport: 5353, payload: []byte("hello")}
	udp4nocsum := udp4
	udp4nocsum.noUDPCsum = true
	tcp6 := pkt{smac: clientMAC, dmac: lbMAC, src: client6, dst: vip6, proto: 6, sport: 42000, dport: 80, tcpFlags: tcpSYN, seq: 7}
	udp6 := pkt{smac: clientMAC, dmac: lbMAC, src: client6, dst: vip6, proto: 17, sport: 42001, dport: 53, payload: []byte("q?")}
	dsr4 := pkt{smac: clientMAC, dmac: lbMAC, src: client, dst: dsrVIP4, proto: 6, sport: 43000, dport: 80, tcpFlags: tcpSYN, tos: 0x10, payload: []byte("x")}
	dsr46 := pkt{smac: clientMAC, dmac: lbMAC, src: client, dst: dsrVIP46, proto: 6, sport: 43002, dport: 80, tcpFlags: tcpSYN, payload: []byte("v4 in v6")}
	dsr6 := pkt{smac: clientMAC, dmac: lbMAC, src: client6, dst: dsrVIP6, proto: 6, sport: 43001, dport: 80, tcpFlags: tcpSYN, tos: 0x28}
	opts := syn4(44000)
	opts.ipOptions = []byte{1, 1, 1, 0} // NOP NOP NOP EOL
	vlan := syn4(44001)
	vlan.vlan = 100
	frag := syn4(44002)
	frag.fragOff = 0x2000 // MF
	fragLater := syn4(44003)
	fragLater.fragOff = 0x0010
	frag6 := tcp6
	frag6.v6Frag = true
	fragSNAT := syn4(44004)
	fragSNAT.dst, fragSNAT.fragOff = lbAddr, 0x2000
	deny4 := syn4(44005)
	deny4.src = denied4
	deny6 := tcp6
	deny6.src = denied6
	miss := syn4(44006)
	miss.dst = otherDst
	wrongPort := syn4(44007)
	wrongPort.dport = 81
	wrongPort6 := udp6
	wrongPort6.dport = 54
	icmp := pkt{smac: clientMAC, dmac: lbMAC, src: client, dst: vip4, proto: 1, payload: []byte{8, 0, 0xf7, 0xff, 0, 0, 0, 0}}

	doubleVLAN := l2(clientMAC, lbMAC, 100, 0x8100)
	doubleVLAN = append(doubleVLAN, 0, 200, 0x08, 0x00)
	doubleVLAN = append(doubleVLAN, syn4(1).l3()...)
	arp := append(l2(clientMAC, lbMAC, 0, 0x0806), make([]byte, 28)...)
	short := l2(clientMAC, lbMAC, 0, 0x0800)

	full := syn4(44008).bytes()
	tcpCut := append([]byte(nil), full[:14+20+10]...) // tot_len still says 40
	badDoff := syn4(44009).bytes()
	badDoff[14+20+12] = 4 << 4
	badIHL := syn4(44010).bytes()
	badIHL[14] = 0x44
	longTotLen := syn4(44011).bytes()
	longTotLen[14+3] += 20 // claims 20 bytes more than the frame has

	cases := []struct {
		name    string
		in      []byte
		tx      bool
		verdict uint32
		reason  string
		want    []byte
	}{
		{"v4 tcp syn nat", syn4(40000).bytes(), true, xdpTX, "tx/forwarded",
			natOut(syn4(40000), lbAddr, 40000, be1, 8080, be1MAC)},
		{"v4 tcp nat redirect", syn4(40001).bytes(), false, xdpRedirect, "redirect/forwarded",
			natOut(syn4(40001), lbAddr, 40001, be1, 8080, be1MAC)},
		{"v4 udp port-0 vip keeps port", udp4.bytes(), true, xdpTX, "tx/forwarded",
			natOut(udp4, lbAddr, 41000, be1, 5353, be1MAC)},
		{"v4 udp without checksum", udp4nocsum.bytes(), true, xdpTX, "tx/forwarded",
			natOut(udp4nocsum, lbAddr, 41000, be1, 5353, be1MAC)},
		{"v6 tcp syn nat", tcp6.bytes(), true, xdpTX, "tx/forwarded",
			natOut(tcp6, lbAddr6, 42000, be1v6, 8080, be1MAC)},
		{"v6 udp nat", udp6.bytes(), true, xdpTX, "tx/forwarded",
			natOut(udp6, lbAddr6, 42001, be1v6, 5353, be1MAC)},
		{"v4 dsr ipip", dsr4.bytes(), true, xdpTX, "tx/forwarded",
			encap(dsr4, lbMAC, be1MAC, lbAddr, be1)},
		{"v6 dsr ip6ip6", dsr6.bytes(), true, xdpTX, "tx/forwarded",
			encap(dsr6, lbMAC, be1MAC, dsrVIP6, be1v6)},
		{"v4 in v6 dsr", dsr46.bytes(), true, xdpTX, "tx/forwarded",
			encap(dsr46, lbMAC, be1MAC, lbAddr6, be1v6)},
		{"v4 options kept", opts.bytes(), true, xdpTX, "tx/forwarded",
			natOut(opts, lbAddr, 44000, be1, 8080, be1MAC)},
		{"vlan kept one-armed", vlan.bytes(), false, xdpTX, "tx/forwarded",
			natOut(vlan, lbAddr, 44001, be1, 8080, be1MAC)},
		{"vip miss", miss.bytes(), true, xdpPass, "pass/not_ours", nil},
		{"vip port miss", wrongPort.bytes(), true, xdpPass, "pass/no_vip_port", nil},
		{"vip6 port miss", wrongPort6.bytes(), true, xdpPass, "pass/no_vip_port", nil},
		{"icmp to vip", icmp.bytes(), true, xdpPass, "pass/l4_unsupported", nil},
		{"deny v4", deny4.bytes(), true, xdpDrop, "drop/denied", nil},
		{"deny v6", deny6.bytes(), true, xdpDrop, "drop/denied", nil},
		{"fragment first", frag.bytes(), true, xdpDrop, "drop/fragment", nil},
		{"fragment later", fragLater.bytes(), true, xdpDrop, "drop/fragment", nil},
		{"fragment v6", frag6.bytes(), true, xdpDrop, "drop/fragment", nil},
		{"fragment to snat address", fragSNAT.bytes(), true, xdpPass, "pass/fragment", nil},
		{"double vlan", doubleVLAN, true, xdpPass, "pass/vlan_nested", nil},
		{"arp", arp, true, xdpPass, "pass/not_ip", nil},
		{"ethernet only", short, true, xdpPass, "pass/short", nil},
		{"tcp header cut", tcpCut, true, xdpDrop, "drop/truncated", nil},
		{"tcp doff 4", badDoff, true, xdpDrop, "drop/malformed", nil},
		{"ipv4 ihl 4", badIHL, true, xdpPass, "pass/malformed", nil},
		{"tot_len beyond frame", longTotLen, true, xdpDrop, "drop/truncated", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f.t = t
			f.expect(c.in, c.tx, c.verdict, c.reason, c.want)
		})
	}
}

// TestTruncations feeds every prefix of valid frames: nothing shorter than
// the IP packet may be forwarded, and nothing may be rewritten.
func TestTruncations(t *testing.T) {
	f := newFixture(t, baseConfig())
	frames := map[string][]byte{
		"v4 tcp": syn4(45000).bytes(),
		"v4 udp": pkt{smac: clientMAC, dmac: lbMAC, src: client, dst: vip4, proto: 17, sport: 45001, dport: 53, payload: []byte("abcd")}.bytes(),
		"v6 tcp": pkt{smac: clientMAC, dmac: lbMAC, src: client6, dst: vip6, proto: 6, sport: 45002, dport: 80, tcpFlags: tcpSYN}.bytes(),
		"v6 udp": pkt{smac: clientMAC, dmac: lbMAC, src: client6, dst: vip6, proto: 17, sport: 45003, dport: 53, payload: []byte("abcd")}.bytes(),
		"vlan":   pkt{smac: clientMAC, dmac: lbMAC, vlan: 7, src: client, dst: vip4, proto: 6, sport: 45004, dport: 80, tcpFlags: tcpSYN}.bytes(),
	}
	for name, frame := range frames {
		for i := 14; i < len(frame); i++ {
			in := append([]byte(nil), frame[:i]...)
			ret, out := f.run(in, true)
			if ret != xdpPass && ret != xdpDrop {
				t.Errorf("%s cut to %d bytes: verdict %s", name, i, verdictNames[ret])
			}
			if !bytes.Equal(out, in) {
				t.Errorf("%s cut to %d bytes: frame rewritten", name, i)
			}
		}
		if ret, _ := f.run(frame, true); ret != xdpTX {
			t.Errorf("%s whole: verdict %s", name, verdictNames[ret])
		}
	}
}

func TestConntrackKeepsBackend(t *testing.T) {
	cfg := baseConfig()
	f := newFixture(t, cfg)
	fwd := func(p pkt, dst netip.Addr, dmac string) []byte {
		p.smac, p.dmac, p.src, p.dst, p.dport = lbMAC, dmac, lbAddr, dst, 8080
		return p.bytes()
	}
	ack := func(sport uint16) pkt {
		p := syn4(sport)
		p.tcpFlags, p.seq, p.payload = tcpACK|tcpPSH, 1001, []byte("GET / HTTP/1.1\r\n\r\n")
		return p
	}

	f.expect(syn4(46000).bytes(), true, xdpTX, "tx/forwarded", fwd(syn4(46000), be1, be1MAC))

	// b1 drains (weight 0), b2 joins: new flows go to b2, the
	// established one stays on b1 (conntrack hit).
	cfg.VIPs[0].Backends = []Backend{
		{Name: "b1", Address: be1, Port: 8080, Weight: 0, Healthy: true},
		{Name: "b2", Address: be2, Port: 8080, Weight: 1, Healthy: true},
	}
	if err := f.lb.Update(cfg); err != nil {
		t.Fatal(err)
	}
	f.expect(ack(46000).bytes(), true, xdpTX, "tx/forwarded", fwd(ack(46000), be1, be1MAC))
	f.expect(syn4(46001).bytes(), true, xdpTX, "tx/forwarded", fwd(syn4(46001), be2, be2MAC))

	// b1 removed entirely: its established flow still drains on it.
	cfg.VIPs[0].Backends = cfg.VIPs[0].Backends[1:]
	if err := f.lb.Update(cfg); err != nil {
		t.Fatal(err)
	}
	f.expect(ack(46000).bytes(), true, xdpTX, "tx/forwarded", fwd(ack(46000), be1, be1MAC))

	// A SYN always picks afresh, even for a tuple conntrack knows.
	f.expect(syn4(46000).bytes(), true, xdpTX, "tx/forwarded", fwd(syn4(46000), be2, be2MAC))

	// b2 unhealthy: nothing left, new and established flows drop.
	if err := f.lb.SetHealthy("web4", "b2", false); err != nil {
		t.Fatal(err)
	}
	f.expect(syn4(46002).bytes(), true, xdpDrop, "drop/no_backend", nil)
	f.expect(ack(46001).bytes(), true, xdpDrop, "drop/no_backend", nil)
	if err := f.lb.SetHealthy("web4", "b2", true); err != nil {
		t.Fatal(err)
	}
	f.expect(ack(46001).bytes(), true, xdpTX, "tx/forwarded", fwd(ack(46001), be2, be2MAC))

	if err := f.lb.SetHealthy("web4", "nope", true); !errors.Is(err, ErrUnknownBackend) {
		t.Errorf("unknown backend: %v", err)
	}
	if err := f.lb.SetHealthy("nope", "b2", true); !errors.Is(err, ErrUnknownVIP) {
		t.Errorf("unknown vip: %v", err)
	}

	s, err := f.lb.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if got := s.VIPs["web4"].Backends["b2"].NewFlows; got != 2 {
		t.Errorf("b2 new flows = %d, want 2 (syn 46001, syn 46000)", got)
	}
}

func TestRSTNeverInserts(t *testing.T) {
	f := newFixture(t, baseConfig())
	rst := syn4(47000)
	rst.tcpFlags = tcpRST
	want := rst
	want.smac, want.dmac, want.src, want.dst, want.dport = lbMAC, be1MAC, lbAddr, be1, 8080
	f.expect(rst.bytes(), true, xdpTX, "tx/forwarded", want.bytes())
	if n := f.conntrackLen(); n != 0 {
		t.Errorf("conntrack has %d entries after a RST, want 0", n)
	}
	f.expect(syn4(47001).bytes(), true, xdpTX, "tx/forwarded", natToB1(f, syn4(47001)))
	if n := f.conntrackLen(); n != 1 {
		t.Errorf("conntrack has %d entries after a SYN, want 1", n)
	}
}

func TestReverseNAT(t *testing.T) {
	f := newFixture(t, baseConfig())
	f.run(syn4(48000).bytes(), true)
	reply := pkt{smac: be1MAC, dmac: lbMAC, src: be1, dst: lbAddr, proto: 6, sport: 8080, dport: 48000, tcpFlags: tcpSYN | tcpACK, seq: 9}
	want := reply
	want.smac, want.dmac, want.src, want.sport, want.dst, want.dport = lbMAC, clientMAC, vip4, 80, client, 48000
	f.expect(reply.bytes(), true, xdpTX, "tx/forwarded", want.bytes())

	// IPv6 UDP both ways.
	q := pkt{smac: clientMAC, dmac: lbMAC, src: client6, dst: vip6, proto: 17, sport: 48001, dport: 53, payload: []byte("query")}
	f.run(q.bytes(), true)
	r := pkt{smac: be1MAC, dmac: lbMAC, src: be1v6, dst: lbAddr6, proto: 17, sport: 5353, dport: 48001, payload: []byte("answer")}
	wr := r
	wr.smac, wr.dmac, wr.src, wr.sport, wr.dst, wr.dport = lbMAC, clientMAC, vip6, 53, client6, 48001
	f.expect(r.bytes(), true, xdpTX, "tx/forwarded", wr.bytes())

	// A reply nobody asked for goes to the kernel untouched.
	stray := reply
	stray.dport = 48999
	f.expect(stray.bytes(), true, xdpPass, "pass/not_ours", nil)

	s, err := f.lb.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if s.VIPs["web4"].ReplyPackets != 1 || s.VIPs["dns6"].ReplyPackets != 1 {
		t.Errorf("reply packets web4=%d dns6=%d, want 1 and 1", s.VIPs["web4"].ReplyPackets, s.VIPs["dns6"].ReplyPackets)
	}
}

// Two clients with the same source port to the same backend must not share
// a SNAT port.
func TestSNATPortCollision(t *testing.T) {
	f := newFixture(t, baseConfig())
	a := syn4(49000)
	b := syn4(49000)
	b.src, b.smac = client2, client2MA
	_, outA := f.run(a.bytes(), true)
	ret, outB := f.run(b.bytes(), true)
	if ret != xdpTX {
		t.Fatalf("second client: %s", verdictNames[ret])
	}
	sportA := uint16(outA[34])<<8 | uint16(outA[35])
	sportB := uint16(outB[34])<<8 | uint16(outB[35])
	if sportA != 49000 || sportB == sportA || sportB < 1024 {
		t.Fatalf("snat ports a=%d b=%d", sportA, sportB)
	}
	reply := pkt{smac: be1MAC, dmac: lbMAC, src: be1, dst: lbAddr, proto: 6, sport: 8080, dport: sportB, tcpFlags: tcpSYN | tcpACK}
	want := reply
	want.smac, want.dmac, want.src, want.sport, want.dst, want.dport = lbMAC, client2MA, vip4, 80, client2, 49000
	f.expect(reply.bytes(), true, xdpTX, "tx/forwarded", want.bytes())
}

func TestNewFlowCap(t *testing.T) {
	cfg := baseConfig()
	cfg.NewFlowsPerSecondPerCPU = 2
	f := newFixture(t, cfg)
	f.expect(syn4(50000).bytes(), true, xdpTX, "tx/forwarded", natToB1(f, syn4(50000)))
	f.expect(syn4(50001).bytes(), true, xdpTX, "tx/forwarded", natToB1(f, syn4(50001)))
	f.expect(syn4(50002).bytes(), true, xdpDrop, "drop/rate_limited", nil)
	// Established flows are not new flows.
	ack := syn4(50000)
	ack.tcpFlags = tcpACK
	f.expect(ack.bytes(), true, xdpTX, "tx/forwarded", natToB1(f, ack))
}

// natToB1 is the NAT output of a web4 packet to b1.
func natToB1(_ *fixture, p pkt) []byte {
	p.smac, p.dmac, p.src, p.dst, p.dport = lbMAC, be1MAC, lbAddr, be1, 8080
	return p.bytes()
}

// A removed VIP stops forwarding even for its established flows, and a
// DSR flow's later packets take the conntrack path to the same backend.
func TestVIPRemovedAndDSRHit(t *testing.T) {
	cfg := baseConfig()
	f := newFixture(t, cfg)
	dsr := pkt{smac: clientMAC, dmac: lbMAC, src: client, dst: dsrVIP4, proto: 6, sport: 51000, dport: 80, tcpFlags: tcpSYN}
	f.expect(dsr.bytes(), true, xdpTX, "tx/forwarded", encap(dsr, lbMAC, be1MAC, lbAddr, be1))
	dsr.tcpFlags, dsr.payload = tcpACK, []byte("data")
	f.expect(dsr.bytes(), true, xdpTX, "tx/forwarded", encap(dsr, lbMAC, be1MAC, lbAddr, be1))
	f.expect(dsr.bytes(), true, xdpTX, "tx/forwarded", encap(dsr, lbMAC, be1MAC, lbAddr, be1))

	cfg.VIPs = cfg.VIPs[:4] // drop dsr4 and dsr6
	if err := f.lb.Update(cfg); err != nil {
		t.Fatal(err)
	}
	f.expect(dsr.bytes(), true, xdpPass, "pass/not_ours", nil)
	s, err := f.lb.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.VIPs["dsr4"]; ok {
		t.Errorf("removed vip still in stats")
	}
}

// UDP flows keep their backend while packets keep coming and pick afresh
// after UDPTimeout of silence.
func TestUDPAgeing(t *testing.T) {
	for _, c := range []struct {
		timeout  time.Duration
		newFlows uint64
	}{{time.Hour, 1}, {time.Nanosecond, 2}} {
		cfg := baseConfig()
		cfg.UDPTimeout = c.timeout
		f := newFixture(t, cfg)
		q := pkt{smac: clientMAC, dmac: lbMAC, src: client, dst: vip4, proto: 17, sport: 52000, dport: 53, payload: []byte("a")}
		f.run(q.bytes(), true)
		time.Sleep(20 * time.Millisecond) // coarse clock ticks at least once
		f.run(q.bytes(), true)
		s, err := f.lb.Stats()
		if err != nil {
			t.Fatal(err)
		}
		if got := s.VIPs["dns4"].NewFlows; got != c.newFlows {
			t.Errorf("timeout %v: %d new flows, want %d", c.timeout, got, c.newFlows)
		}
	}
}
