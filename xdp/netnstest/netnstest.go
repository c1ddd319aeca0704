// SPDX-License-Identifier: GPL-3.0-only

//go:build linux

// Package netnstest builds throw-away network namespaces for tests: create
// namespaces and veth pairs with `ip`, run Go code inside a namespace
// (NS.Do), run a process inside one (NS.Start), and tear everything down
// through t.Cleanup even when the test fails. Topology is the ready-made
// client -> load balancer -> backends lab the XDP tests use; a test of the
// real binary can start it in Topology.LB with NS.Start.
//
// Namespaces are named "<prefix>-<pid>-<n>" so parallel test binaries never
// collide; addresses must come from 198.18.0.0/15 (IPv4) or 2001:2::/48
// (IPv6), the benchmarking ranges. Needs root; call Skip first.
package netnstest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// Skip skips t with a printed reason unless the process can create
// namespaces and veth pairs (root with CAP_NET_ADMIN and CAP_SYS_ADMIN, and
// the ip tool).
func Skip(t testing.TB) {
	t.Helper()
	if reason := Unavailable(); reason != "" {
		t.Skip("netnstest: " + reason)
	}
}

// Unavailable returns why namespaces cannot be used here, or "".
func Unavailable() string {
	if os.Geteuid() != 0 {
		return "needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN)"
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return "the ip tool (iproute2) is not installed"
	}
	return ""
}

var seq atomic.Int64

// NS is one network namespace created for a test.
type NS struct {
	Name string
	t    testing.TB
}

// New creates a namespace with loopback up; it is deleted at cleanup.
func New(t testing.TB, prefix string) *NS {
	t.Helper()
	name := fmt.Sprintf("%s-%d-%d", prefix, os.Getpid(), seq.Add(1))
	if out, err := run("ip", "netns", "add", name); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	ns := &NS{Name: name, t: t}
	t.Cleanup(func() {
		// Deleting the namespace destroys its veth ends, and with them
		// the peers in other namespaces.
		if out, err := run("ip", "netns", "del", name); err != nil {
			t.Logf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	ns.IP("link", "set", "lo", "up")
	return ns
}

func run(name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return exec.CommandContext(ctx, name, args...).CombinedOutput()
}

// IP runs `ip -n <ns> args...` and fails the test on error.
func (n *NS) IP(args ...string) {
	n.t.Helper()
	full := append([]string{"-n", n.Name}, args...)
	if out, err := run("ip", full...); err != nil {
		n.t.Fatalf("ip %s: %v: %s", strings.Join(full, " "), err, out)
	}
}

// Exec runs a command inside the namespace and returns its combined output.
func (n *NS) Exec(args ...string) ([]byte, error) {
	return run("ip", append([]string{"netns", "exec", n.Name}, args...)...)
}

// MustExec is Exec that fails the test on error.
func (n *NS) MustExec(args ...string) []byte {
	n.t.Helper()
	out, err := n.Exec(args...)
	if err != nil {
		n.t.Fatalf("%s in %s: %v: %s", strings.Join(args, " "), n.Name, err, out)
	}
	return out
}

// Start runs a long-lived command inside the namespace, in a process group
// of its own, with its output in the test log; at cleanup that process
// group (and nothing else) is killed and reaped.
func (n *NS) Start(args ...string) *exec.Cmd {
	n.t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", n.Name}, args...)...)
	w := logWriter{n.t, args[0]}
	cmd.Stdout, cmd.Stderr = w, w
	cmd.SysProcAttr = &unix.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		n.t.Fatalf("start %s in %s: %v", strings.Join(args, " "), n.Name, err)
	}
	n.t.Cleanup(func() {
		_ = unix.Kill(-cmd.Process.Pid, unix.SIGKILL)
		_ = cmd.Wait()
	})
	return cmd
}

type logWriter struct {
	t    testing.TB
	name string
}

func (w logWriter) Write(b []byte) (int, error) {
	w.t.Logf("%s: %s", w.name, bytes.TrimRight(b, "\n"))
	return len(b), nil
}

// Sysctl sets key=value inside the namespace.
func (n *NS) Sysctl(key, value string) {
	n.t.Helper()
	n.MustExec("sysctl", "-q", "-w", key+"="+value)
}

// Do runs fn on an OS thread switched into the namespace. Sockets created
// inside fn belong to the namespace and may be used from any goroutine
// afterwards; goroutines started inside fn do not inherit the namespace.
func (n *NS) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			errc <- err
			return
		}
		defer func() { _ = orig.Close() }()
		target, err := os.Open("/run/netns/" + n.Name)
		if err != nil {
			errc <- err
			return
		}
		defer func() { _ = target.Close() }()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", n.Name, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			// Leave the thread locked: the runtime kills it when this
			// goroutine exits instead of reusing a thread in the wrong
			// namespace.
			errc <- fmt.Errorf("setns back: %w", err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// MustDo is Do that fails the test on error.
func (n *NS) MustDo(fn func() error) {
	n.t.Helper()
	if err := n.Do(fn); err != nil {
		n.t.Fatalf("in %s: %v", n.Name, err)
	}
}

// Veth creates a veth pair aName (in a) <-> bName (in b), sets both up
// with the given MAC addresses (empty = random) and turns transmit
// checksum offload off on both ends: XDP rewrites headers of packets that
// would otherwise carry only a partial checksum.
func Veth(t testing.TB, a *NS, aName, aMAC string, b *NS, bName, bMAC string) {
	t.Helper()
	args := []string{"-n", a.Name, "link", "add", aName}
	if aMAC != "" {
		args = append(args, "address", aMAC)
	}
	args = append(args, "type", "veth", "peer", "name", bName, "netns", b.Name)
	if bMAC != "" {
		args = append(args, "address", bMAC)
	}
	if out, err := run("ip", args...); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	for _, e := range []struct {
		ns  *NS
		dev string
	}{{a, aName}, {b, bName}} {
		e.ns.IP("link", "set", e.dev, "up")
		if out, err := e.ns.Exec("ethtool", "-K", e.dev, "tx", "off"); err != nil {
			t.Logf("ethtool tx off %s: %v: %s", e.dev, err, bytes.TrimSpace(out))
		}
	}
}

// Ifindex returns the index of dev inside the namespace.
func (n *NS) Ifindex(dev string) int {
	n.t.Helper()
	var idx int
	n.MustDo(func() error {
		ifc, err := net.InterfaceByName(dev)
		if err != nil {
			return err
		}
		idx = ifc.Index
		return nil
	})
	return idx
}

// AttachXDPPass attaches a two-instruction XDP_PASS program to dev in
// native mode, detached at cleanup. A veth only accepts frames its peer
// sends with XDP_TX or XDP_REDIRECT when it runs an XDP program itself.
func (n *NS) AttachXDPPass(dev string) {
	n.t.Helper()
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:         "xdp_pass",
		Type:         ebpf.XDP,
		License:      "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 2 /* XDP_PASS */), asm.Return()},
	})
	if err != nil {
		n.t.Fatalf("load xdp_pass: %v", err)
	}
	n.t.Cleanup(func() { _ = prog.Close() })
	n.MustDo(func() error {
		ifc, err := net.InterfaceByName(dev)
		if err != nil {
			return err
		}
		lk, err := link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifc.Index, Flags: link.XDPDriverMode})
		if err != nil {
			return fmt.Errorf("attach xdp_pass to %s: %w", dev, err)
		}
		n.t.Cleanup(func() {
			if err := lk.Close(); err != nil {
				n.t.Errorf("detach xdp_pass from %s: %v", dev, err)
			}
		})
		return nil
	})
}
