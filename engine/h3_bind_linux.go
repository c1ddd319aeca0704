// SPDX-License-Identifier: GPL-3.0-only

package engine

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// h3SocketControl sets SO_REUSEPORT on an h3 listener's UDP socket, so that
// the process a USR2 upgrade starts can bind the port while this one still
// drains (QUIC connections open across the upgrade may break: the kernel
// spreads their datagrams over both sockets; clients reconnect).
func h3SocketControl(_, _ string, rc syscall.RawConn) error {
	var serr error
	err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	})
	if err != nil {
		return err
	}
	return serr
}
