// SPDX-License-Identifier: GPL-3.0-only

package engine

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// h3SocketControl sets SO_REUSEPORT on an h3 listener's UDP socket, so that
// the process a USR2 upgrade starts can bind the port while this one still
// drains; the new process steers the datagrams of this one's connections
// back to this socket by their connection ID (h3_steer.go).
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

// h3WantBuffer is the UDP socket buffer quic-go asks for (7 MiB each way).
const h3WantBuffer = 7 << 20

// h3GrowBuffers raises an h3 socket's receive and send buffers to what
// quic-go wants (past net.core.rmem_max/wmem_max with the FORCE options
// when the process may), and reports the sizes it got.
func h3GrowBuffers(pc *net.UDPConn) (rcv, snd int) {
	rc, err := pc.SyscallConn()
	if err != nil {
		return 0, 0
	}
	_ = rc.Control(func(fd uintptr) {
		for _, o := range [][2]int{{unix.SO_RCVBUF, unix.SO_RCVBUFFORCE}, {unix.SO_SNDBUF, unix.SO_SNDBUFFORCE}} {
			if n, _ := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, o[0]); n/2 < h3WantBuffer {
				_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, o[0], h3WantBuffer)
				if n, _ := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, o[0]); n/2 < h3WantBuffer {
					_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, o[1], h3WantBuffer)
				}
			}
		}
		rcv, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF)
		snd, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF)
	})
	return rcv / 2, snd / 2 // Linux reports the doubled (bookkeeping) size
}
