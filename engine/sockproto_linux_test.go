// SPDX-License-Identifier: GPL-3.0-only

package engine

import (
	"net"
	"testing"

	"golang.org/x/sys/unix"
)

// TestSocketProtocolProbeOff checks that x/sys/unix no longer asks the
// kernel for a socket's protocol (the answer for a closed descriptor would
// be EBADF) and that accept4 and recvfrom still give correct IPv4 and IPv6
// addresses without it.
func TestSocketProtocolProbeOff(t *testing.T) {
	if p, err := xsysSocketProtocol(-1); err != nil || p == unix.IPPROTO_L2TP {
		t.Fatalf("socketProtocol(-1) = %d, %v: the getsockopt probe is still installed", p, err)
	}
	for _, network := range []string{"tcp4", "tcp6"} {
		ln, err := net.Listen(network, map[string]string{"tcp4": "127.0.0.1:0", "tcp6": "[::1]:0"}[network])
		if err != nil {
			t.Fatal(err)
		}
		f, err := ln.(*net.TCPListener).File()
		if err != nil {
			t.Fatal(err)
		}
		c, err := net.Dial(network, ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		fd, sa, err := unix.Accept4(int(f.Fd()), unix.SOCK_CLOEXEC)
		if err != nil {
			t.Fatal(err)
		}
		local := c.LocalAddr().(*net.TCPAddr)
		switch sa := sa.(type) {
		case *unix.SockaddrInet4:
			if network != "tcp4" || sa.Port != local.Port || !net.IP(sa.Addr[:]).Equal(local.IP) {
				t.Fatalf("%s: accept4 gave %v:%d, client is %v", network, sa.Addr, sa.Port, local)
			}
		case *unix.SockaddrInet6:
			if network != "tcp6" || sa.Port != local.Port || !net.IP(sa.Addr[:]).Equal(local.IP) {
				t.Fatalf("%s: accept4 gave %v:%d, client is %v", network, sa.Addr, sa.Port, local)
			}
		default:
			t.Fatalf("%s: accept4 gave %T", network, sa)
		}
		_ = unix.Close(fd)
		_ = c.Close()
		_ = f.Close()
		_ = ln.Close()
	}
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = pc.Close() }()
	f, err := pc.(*net.UDPConn).File()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	c, err := net.Dial("udp4", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	// File() put the descriptor in blocking mode: this waits for the datagram.
	buf := make([]byte, 8)
	n, sa, err := unix.Recvfrom(int(f.Fd()), buf, 0)
	if err != nil {
		t.Fatal(err)
	}
	s4, ok := sa.(*unix.SockaddrInet4)
	if !ok || n != 1 || s4.Port != c.LocalAddr().(*net.UDPAddr).Port {
		t.Fatalf("recvfrom gave %d bytes from %#v, client is %v", n, sa, c.LocalAddr())
	}
}
