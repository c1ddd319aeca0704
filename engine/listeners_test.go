// SPDX-License-Identifier: GPL-3.0-only

package engine

import (
	"context"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestReusePortHandoverLosesQueuedConnections records why a handover
// passes the listening sockets instead of binding new SO_REUSEPORT sockets
// beside the old ones: closing one socket of a reuse-port group resets the
// connections the kernel had queued on it (unless the host runs with
// net.ipv4.tcp_migrate_req = 1). Connections are dialed with nobody
// accepting, so they wait in the two sockets' accept queues.
func TestReusePortHandoverLosesQueuedConnections(t *testing.T) {
	if b, err := os.ReadFile("/proc/sys/net/ipv4/tcp_migrate_req"); err == nil && strings.TrimSpace(string(b)) == "1" {
		t.Skip("net.ipv4.tcp_migrate_req = 1: the kernel migrates queued connections")
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var err error
		_ = c.Control(func(fd uintptr) { err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1) })
		return err
	}}
	old, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := old.Addr().String()
	next, err := lc.Listen(context.Background(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = next.Close() }()
	var conns []net.Conn
	for range 64 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = c.Close() }()
		conns = append(conns, c)
	}
	_ = old.Close() // the old process stops accepting
	go func() {
		for {
			c, err := next.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("x"))
			_ = c.Close()
		}
	}()
	lost := 0
	for _, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		if _, err := c.Read(make([]byte, 1)); err != nil {
			lost++
		}
	}
	if lost == 0 {
		t.Fatal("closing a reuse-port socket lost no queued connection: the handover could bind new sockets")
	}
	t.Logf("closing one of two SO_REUSEPORT sockets reset %d of %d queued connections", lost, len(conns))
}
