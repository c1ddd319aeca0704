// SPDX-License-Identifier: GPL-3.0-only

//go:build linux

package xdp

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/expressgateway/expressgateway/xdp/netnstest"
)

func minimalConfig(dev, mode string) Config {
	return Config{
		Interface:  dev,
		AttachMode: mode,
		VIPs: []VIP{{Name: "v", Address: e2eVIP, Port: 80, Protocol: "tcp", SNATAddress: lbAddr,
			Backends: []Backend{{Name: "b", Address: be1, Weight: 1, Healthy: true}}}},
	}
}

func TestAttachModes(t *testing.T) {
	skipUnlessBPF(t)
	ns := netnstest.New(t, "egat")
	netnstest.Veth(t, ns, "at0", "", ns, "at1", "")
	for _, c := range []struct{ mode, want string }{
		{AttachAuto, AttachNative}, {AttachNative, AttachNative}, {AttachGeneric, AttachGeneric},
	} {
		var l *LB
		ns.MustDo(func() (err error) {
			l, err = Load(minimalConfig("at0", c.mode))
			return err
		})
		if l.Mode() != c.want {
			t.Errorf("mode %s attached as %s, want %s", c.mode, l.Mode(), c.want)
		}
		if out := ns.MustExec("ip", "link", "show", "at0"); !strings.Contains(string(out), "xdp") {
			t.Errorf("%s: no xdp program on at0: %s", c.mode, out)
		}
		// A second program cannot take the interface: a clear error.
		ns.MustDo(func() error {
			_, err := Load(minimalConfig("at0", c.mode))
			if !errors.Is(err, ErrAttach) {
				t.Errorf("%s: second load: %v, want ErrAttach", c.mode, err)
			}
			return nil
		})
		if err := l.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		if err := l.Close(); err != nil {
			t.Errorf("second close: %v", err)
		}
		if err := l.Update(minimalConfig("at0", c.mode)); !errors.Is(err, ErrClosed) {
			t.Errorf("update after close: %v", err)
		}
		if out := ns.MustExec("ip", "link", "show", "at0"); strings.Contains(string(out), "prog/xdp") {
			t.Errorf("%s: still attached after Close: %s", c.mode, out)
		}
	}
}

// TestUnprivileged runs this test binary again as nobody: Load must fail
// with ErrPermission, not crash.
func TestUnprivileged(t *testing.T) {
	if os.Getenv("EG_XDP_UNPRIVILEGED_CHILD") == "1" {
		_, err := Load(minimalConfig("lo", AttachAuto))
		if !errors.Is(err, ErrPermission) {
			t.Fatalf("unprivileged Load: %v, want ErrPermission", err)
		}
		t.Logf("unprivileged Load: %v", err)
		return
	}
	if os.Geteuid() != 0 {
		_, err := Load(minimalConfig("lo", AttachAuto))
		if !errors.Is(err, ErrPermission) {
			t.Fatalf("unprivileged Load: %v, want ErrPermission", err)
		}
		return
	}
	dir, err := os.MkdirTemp("", "egxdp-unpriv-")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = os.RemoveAll(dir) }()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "xdp.test")
	src, err := os.Open(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = src.Close() }()
	dst, err := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	_ = dst.Close()
	cmd := exec.Command(bin, "-test.run=^TestUnprivileged$", "-test.v")
	cmd.Env = append(os.Environ(), "EG_XDP_UNPRIVILEGED_CHILD=1")
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child as nobody: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}
