// SPDX-License-Identifier: GPL-3.0-only

//go:build !linux

package engine

import "syscall"

// h3SocketControl: without Linux's SO_REUSEPORT semantics, a plain socket.
func h3SocketControl(_, _ string, _ syscall.RawConn) error { return nil }
