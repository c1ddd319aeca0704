// SPDX-License-Identifier: GPL-3.0-only

package engine

import (
	_ "unsafe" // go:linkname

	"golang.org/x/sys/unix"
)

// golang.org/x/sys/unix turns every AF_INET/AF_INET6 address the kernel hands
// back (accept4, recvfrom) into a Go Sockaddr only after asking the socket
// for its protocol with getsockopt(SO_PROTOCOL), to tell IPPROTO_L2TP
// sockets apart. gnet accepts every connection with unix.Accept4 and reads
// every datagram with unix.Recvfrom, so that probe was one more system call
// per accepted connection and per UDP datagram (strace on the h1-close bench:
// accept4, getsockopt, read, write, … for each connection). This process
// opens no L2TP socket, so the probe can only ever answer "not L2TP"; it is
// replaced by that answer. The variable is pinned with x/sys in go.mod;
// TestSocketProtocolProbeOff fails if the replacement stops taking effect.
//
//go:linkname xsysSocketProtocol golang.org/x/sys/unix.socketProtocol
var xsysSocketProtocol func(fd int) (int, error)

func init() {
	xsysSocketProtocol = func(int) (int, error) { return unix.IPPROTO_IP, nil }
}
