// SPDX-License-Identifier: GPL-3.0-only

//go:build linux

package engine

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"strings"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// quicVersion2 is QUIC version 2 (RFC 9369), whose long-header packet
// types are numbered differently from version 1's.
const quicVersion2 = 0x6b3343cf

// h3SteerProgram is the reuseport program of h3_steer.go, attached by the
// process an upgrade started while the group holds exactly the old
// process's socket (index 0) and its own (index 1). The program sees the
// UDP payload. Short-header packets are routed by the generation bit of
// their destination connection ID (which starts at byte 1); Handshake
// packets with a destination connection ID of our length by the same bit
// (at byte 6); Initial and 0-RTT packets, whose destination ID the client
// chose, go to the new socket. A datagram too short for a load ends the
// program with 0: the old socket, which drops it. Once the old socket has
// closed, index 1 is out of range and the kernel picks by hash among the
// one socket left.
func h3SteerProgram(newGen byte) ([]bpf.RawInstruction, error) {
	const (
		short  = 15
		hsV1   = 11
		newIdx = 18
	)
	return bpf.Assemble([]bpf.Instruction{
		/* 0 */ bpf.LoadAbsolute{Off: 0, Size: 1}, // the first byte
		/* 1 */ bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: 0x80, SkipFalse: short - 2},
		/* 2 */ bpf.TAX{},
		/* 3 */ bpf.LoadAbsolute{Off: 1, Size: 4}, // the version
		/* 4 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: quicVersion2, SkipTrue: 8 - 5},
		/* 5 */ bpf.TXA{}, // version 1 (and any other): Handshake is type 2
		/* 6 */ bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0x30},
		/* 7 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0x20, SkipTrue: hsV1 - 8, SkipFalse: newIdx - 8},
		/* 8 */ bpf.TXA{}, // version 2: Handshake is type 3
		/* 9 */ bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0x30},
		/* 10 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0x30, SkipFalse: newIdx - 11},
		/* 11 */ bpf.LoadAbsolute{Off: 5, Size: 1}, // destination connection ID length
		/* 12 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: h3CIDLen, SkipFalse: newIdx - 13},
		/* 13 */ bpf.LoadAbsolute{Off: 6, Size: 1},
		/* 14 */ bpf.Jump{Skip: 16 - 15},
		/* 15 */ bpf.LoadAbsolute{Off: 1, Size: 1}, // short header
		/* 16 */ bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 1},
		/* 17 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(newGen & 1), SkipFalse: 1},
		/* 18 */ bpf.RetConstant{Val: 1}, // the new socket
		/* 19 */ bpf.RetConstant{Val: 0}, // the old socket
	})
}

// h3Steer attaches h3SteerProgram to the reuseport group of pc (just bound
// by this process, started by an upgrade). It refuses unless the group
// holds exactly two sockets, the old process's and pc: with more, one
// generation bit cannot tell them apart.
func h3Steer(pc *net.UDPConn, newGen byte) error {
	rc, err := pc.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		n, err := boundUDPSockets(int(fd))
		if err != nil {
			serr = err
			return
		}
		if n != 2 {
			serr = fmt.Errorf("%d sockets share the port, want 2 (the old process's and this one's)", n)
			return
		}
		raw, err := h3SteerProgram(newGen)
		if err != nil {
			serr = err
			return
		}
		filter := make([]unix.SockFilter, len(raw))
		for i, r := range raw {
			filter[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
		}
		serr = unix.SetsockoptSockFprog(int(fd), unix.SOL_SOCKET, unix.SO_ATTACH_REUSEPORT_CBPF,
			&unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]})
	})
	if err != nil {
		return err
	}
	return serr
}

// boundUDPSockets counts the unconnected UDP sockets of this network
// namespace bound to fd's local address and port (/proc/net/udp{,6}).
func boundUDPSockets(fd int) (int, error) {
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return 0, err
	}
	var file, local string
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		file = "/proc/net/udp"
		local = fmt.Sprintf("%08X:%04X", binary.NativeEndian.Uint32(a.Addr[:]), a.Port)
	case *unix.SockaddrInet6:
		file = "/proc/net/udp6"
		for i := 0; i < 16; i += 4 {
			local += fmt.Sprintf("%08X", binary.NativeEndian.Uint32(a.Addr[i:i+4]))
		}
		local += fmt.Sprintf(":%04X", a.Port)
	default:
		return 0, fmt.Errorf("socket family %T", sa)
	}
	f, err := os.Open(file)
	if err != nil {
		return 0, err
	}
	defer func() { _ = f.Close() }()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// sl local_address rem_address st ...
		fields := strings.Fields(sc.Text())
		if len(fields) > 3 && fields[1] == local && strings.Trim(fields[2], "0:") == "" {
			n++
		}
	}
	return n, sc.Err()
}
