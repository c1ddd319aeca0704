// SPDX-License-Identifier: GPL-3.0-only

//go:build linux

package xdp

import (
	"net/netip"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/expressgateway/expressgateway/xdp/netnstest"
)

// Benchmarks. BPF_PROG_TEST_RUN with repeat > 1 runs again on the buffer
// the previous run left behind, so the benchmark frame is a NAT fixed
// point: the VIP's only backend is the VIP itself and the SNAT address is
// the client, so the rewrite (and every checksum update) reproduces the
// input and each repetition takes the same conntrack-hit path: parse,
// address and VIP lookups, the deny trie, conntrack hit, backend, stats,
// NAT rewrite, bpf_fib_lookup, verdict.

const (
	genMAC    = "02:00:00:00:00:aa"
	benchDeny = 256
)

var (
	benchVIP  = netip.MustParseAddr("198.18.0.50")
	benchSNAT = netip.MustParseAddr("198.18.0.60")
)

func benchConfig(dev string) Config {
	cfg := Config{
		Interface:     dev,
		ConntrackSize: 1 << 16,
		VIPs: []VIP{{
			Name: "bench", Address: benchVIP, Port: 80, Protocol: "tcp", SNATAddress: benchSNAT,
			Backends: []Backend{{Name: "self", Address: benchVIP, Port: 80, Weight: 1, Healthy: true}},
		}},
	}
	// A realistic deny list: 256 /24s the source is not in.
	for i := 0; i < benchDeny; i++ {
		cfg.Deny = append(cfg.Deny, netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 19, byte(i), 0}), 24))
	}
	return cfg
}

// benchFrame is the fixed-point frame: from the SNAT address to the VIP,
// MACs already those the fib lookup returns.
func benchFrame(flags uint8) []byte {
	return pkt{smac: lbMAC, dmac: genMAC, src: benchSNAT, dst: benchVIP, proto: 6, sport: 40000, dport: 80,
		tcpFlags: flags, seq: 1, payload: make([]byte, 64)}.bytes()
}

// benchNS is a namespace whose dev (MAC lbMAC, 198.18.0.1/24) has the VIP
// as a permanent neighbour with MAC genMAC.
func benchNS(b *testing.B, peer *netnstest.NS) (*netnstest.NS, string) {
	ns := netnstest.New(b, "egbn")
	if peer == nil {
		peer = ns
	}
	netnstest.Veth(b, ns, "bn0", lbMAC, peer, "bn1", genMAC)
	ns.IP("addr", "add", "198.18.0.1/24", "dev", "bn0")
	ns.IP("neigh", "replace", benchVIP.String(), "lladdr", genMAC, "dev", "bn0", "nud", "permanent")
	ns.Sysctl("net.ipv4.conf.all.forwarding", "1")
	return ns, "bn0"
}

func benchProg(b *testing.B, ns *netnstest.NS, prog *ebpf.Program, in []byte, want uint32) {
	b.Helper()
	// Prime conntrack and check the frame really is a fixed point.
	var ret uint32
	var out []byte
	ns.MustDo(func() (err error) {
		ret, out, err = prog.Test(in)
		return err
	})
	if ret != want {
		b.Fatalf("verdict %s, want %s", verdictNames[ret], verdictNames[want])
	}
	if string(out) != string(in) && want != xdpTX {
		b.Fatalf("frame is not a fixed point:\n%x\n%x", in, out)
	}
	b.ReportAllocs()
	b.ResetTimer()
	var d time.Duration
	ns.MustDo(func() (err error) {
		ret, d, err = prog.Benchmark(in, b.N, nil)
		return err
	})
	b.StopTimer()
	if ret != want {
		b.Fatalf("verdict %s after %d runs", verdictNames[ret], b.N)
	}
	// The wall clock counts syscall restarts (Go's preemption signals
	// interrupt long test runs); the kernel's own per-run figure does not.
	b.ReportMetric(float64(d.Nanoseconds()), "ns/op")
}

// BenchmarkLBConntrackHit is the cost of one packet of an established NAT
// flow (target: <= 150 ns).
func BenchmarkLBConntrackHit(b *testing.B) {
	skipUnlessBPF(b)
	ns, dev := benchNS(b, nil)
	l, err := newLB(benchConfig(dev).withDefaults())
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	benchProg(b, ns, l.objs.XdpLb, benchFrame(tcpACK), xdpRedirect)
}

// BenchmarkLBNewFlow is the cost of a SYN: Maglev pick, SNAT port
// reservation and conntrack insert.
func BenchmarkLBNewFlow(b *testing.B) {
	skipUnlessBPF(b)
	ns, dev := benchNS(b, nil)
	l, err := newLB(benchConfig(dev).withDefaults())
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	benchProg(b, ns, l.objs.XdpLb, benchFrame(tcpSYN), xdpRedirect)
}

// BenchmarkReflector is the bare XDP_TX reflector on the same frame: the
// floor BPF_PROG_TEST_RUN itself costs.
func BenchmarkReflector(b *testing.B) {
	skipUnlessBPF(b)
	ns, _ := benchNS(b, nil)
	var ro reflectObjects
	if err := loadReflectObjects(&ro, nil); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = ro.Close() }()
	benchProg(b, ns, ro.XdpReflect, benchFrame(tcpACK), xdpTX)
}

// BenchmarkVethPPS compares packet rates on a veth pair: a generator
// namespace sends frames with BPF_PROG_TEST_RUN in live-frames mode (an
// in-kernel XDP_TX sender), the device under test bounces them back with
// XDP_TX (the LB on its conntrack-hit path, or the bare reflector), and an
// XDP sink on the generator side counts what came back. Each b.N is a
// burst of 200k frames; the metric is returned frames per second.
func BenchmarkVethPPS(b *testing.B) {
	skipUnlessBPF(b)
	gen := netnstest.New(b, "eggen")
	dut, dev := benchNS(b, gen)
	genIf := uint32(gen.Ifindex("bn1"))
	dutIf := dut.Ifindex(dev)

	var ro reflectObjects
	if err := loadReflectObjects(&ro, nil); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = ro.Close() }()
	l, err := newLB(benchConfig(dev).withDefaults())
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = l.Close() }()

	attach := func(ns *netnstest.NS, idx int, prog *ebpf.Program) link.Link {
		var lk link.Link
		ns.MustDo(func() (err error) {
			lk, err = link.AttachXDP(link.XDPOptions{Program: prog, Interface: idx, Flags: link.XDPDriverMode})
			return err
		})
		return lk
	}
	sink := attach(gen, int(genIf), ro.XdpSink)
	defer func() { _ = sink.Close() }()

	frame := benchFrame(tcpACK)
	// Prime conntrack for the frame's flow.
	dut.MustDo(func() error { _, _, err := l.objs.XdpLb.Test(frame); return err })

	count := func() uint64 {
		var per []uint64
		if err := ro.SinkCount.Lookup(uint32(0), &per); err != nil {
			b.Fatal(err)
		}
		var s uint64
		for _, v := range per {
			s += v
		}
		return s
	}
	const burst = 200_000
	for _, c := range []struct {
		name string
		prog *ebpf.Program
	}{{"reflector", ro.XdpReflect}, {"lb", l.objs.XdpLb}} {
		b.Run(c.name, func(b *testing.B) {
			lk := attach(dut, dutIf, c.prog)
			defer func() { _ = lk.Close() }()
			before := count()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				gen.MustDo(func() error {
					_, err := ro.XdpTx.Run(&ebpf.RunOptions{
						Data:    frame,
						Context: xdpMd{DataEnd: uint32(len(frame)), IngressIfindex: genIf},
						Repeat:  burst,
						Flags:   unix.BPF_F_TEST_XDP_LIVE_FRAMES,
					})
					return err
				})
			}
			time.Sleep(50 * time.Millisecond) // let NAPI drain
			el := time.Since(start) - 50*time.Millisecond
			got := count() - before
			sent := uint64(b.N) * burst
			b.ReportMetric(float64(got)/el.Seconds(), "pps")
			b.ReportMetric(float64(got)/float64(sent), "returned/sent")
			if got == 0 {
				b.Fatalf("no frame came back (sent %d)", sent)
			}
		})
	}
}
