// SPDX-License-Identifier: GPL-3.0-only

//go:build !linux

package engine

import (
	"errors"
	"net"
	"syscall"
)

// h3SocketControl: without Linux's SO_REUSEPORT semantics, a plain socket.
func h3SocketControl(_, _ string, _ syscall.RawConn) error { return nil }

const h3WantBuffer = 7 << 20

func h3GrowBuffers(pc *net.UDPConn) (rcv, snd int) {
	_ = pc.SetReadBuffer(h3WantBuffer)
	_ = pc.SetWriteBuffer(h3WantBuffer)
	return h3WantBuffer, h3WantBuffer
}

// h3Steer: the reuseport program is Linux's.
func h3Steer(*net.UDPConn, byte) error {
	return errors.New("steering QUIC by connection ID needs Linux")
}
