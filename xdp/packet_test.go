// SPDX-License-Identifier: GPL-3.0-only

//go:build linux

package xdp

import (
	"encoding/binary"
	"net"
	"net/netip"
)

// pkt describes a test frame; bytes() serialises it with every checksum
// computed from scratch, so a fixture's expected output is built
// independently of the program's incremental updates.
type pkt struct {
	smac, dmac string
	vlan       uint16 // 0: untagged
	src, dst   netip.Addr
	proto      uint8 // 6 tcp, 17 udp, anything else raw
	sport      uint16
	dport      uint16
	tcpFlags   uint8
	seq        uint32
	payload    []byte
	ipOptions  []byte // IPv4 only, multiple of 4
	fragOff    uint16 // IPv4 flags+offset field
	v6Frag     bool   // IPv6 fragment header before L4
	ttl        uint8
	tos        uint8
	noUDPCsum  bool
}

const (
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpPSH = 0x08
	tcpACK = 0x10
)

func mustMAC(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

func csumAdd(sum uint32, b []byte) uint32 {
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	return sum
}

func csumFinish(sum uint32) uint16 {
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

func (p pkt) l4() []byte {
	var h []byte
	switch p.proto {
	case 6:
		h = make([]byte, 20)
		binary.BigEndian.PutUint16(h[0:], p.sport)
		binary.BigEndian.PutUint16(h[2:], p.dport)
		binary.BigEndian.PutUint32(h[4:], p.seq)
		if p.tcpFlags&tcpACK != 0 {
			binary.BigEndian.PutUint32(h[8:], 0x01020304)
		}
		h[12] = 5 << 4
		h[13] = p.tcpFlags
		binary.BigEndian.PutUint16(h[14:], 65535)
	case 17:
		h = make([]byte, 8)
		binary.BigEndian.PutUint16(h[0:], p.sport)
		binary.BigEndian.PutUint16(h[2:], p.dport)
		binary.BigEndian.PutUint16(h[4:], uint16(8+len(p.payload)))
	default:
		return append([]byte(nil), p.payload...)
	}
	seg := append(h, p.payload...)
	if p.proto == 17 && p.noUDPCsum {
		return seg
	}
	// pseudo-header
	var sum uint32
	sum = csumAdd(sum, p.src.AsSlice())
	sum = csumAdd(sum, p.dst.AsSlice())
	sum += uint32(p.proto) + uint32(len(seg))
	sum = csumAdd(sum, seg)
	c := csumFinish(sum)
	if c == 0 && p.proto == 17 {
		c = 0xffff
	}
	off := 16
	if p.proto == 17 {
		off = 6
	}
	binary.BigEndian.PutUint16(seg[off:], c)
	return seg
}

// l3 returns the IP packet (no Ethernet header).
func (p pkt) l3() []byte {
	l4 := p.l4()
	ttl := p.ttl
	if ttl == 0 {
		ttl = 64
	}
	if p.src.Is4() {
		ihl := 20 + len(p.ipOptions)
		h := make([]byte, ihl)
		h[0] = 0x40 | byte(ihl/4)
		h[1] = p.tos
		binary.BigEndian.PutUint16(h[2:], uint16(ihl+len(l4)))
		binary.BigEndian.PutUint16(h[4:], 0x1234)
		binary.BigEndian.PutUint16(h[6:], p.fragOff)
		h[8] = ttl
		h[9] = p.proto
		copy(h[12:], p.src.AsSlice())
		copy(h[16:], p.dst.AsSlice())
		copy(h[20:], p.ipOptions)
		binary.BigEndian.PutUint16(h[10:], csumFinish(csumAdd(0, h)))
		return append(h, l4...)
	}
	h := make([]byte, 40)
	h[0] = 0x60 | p.tos>>4
	h[1] = p.tos << 4
	next := p.proto
	var ext []byte
	if p.v6Frag {
		ext = []byte{p.proto, 0, 0, 1, 0, 0, 0, 42} // offset 0, M=1
		next = 44
	}
	binary.BigEndian.PutUint16(h[4:], uint16(len(ext)+len(l4)))
	h[6] = next
	h[7] = ttl
	copy(h[8:], p.src.AsSlice())
	copy(h[24:], p.dst.AsSlice())
	return append(append(h, ext...), l4...)
}

func l2(smac, dmac string, vlan uint16, ethertype uint16) []byte {
	b := append([]byte(nil), mustMAC(dmac)...)
	b = append(b, mustMAC(smac)...)
	if vlan != 0 {
		b = binary.BigEndian.AppendUint16(b, 0x8100)
		b = binary.BigEndian.AppendUint16(b, vlan)
	}
	return binary.BigEndian.AppendUint16(b, ethertype)
}

func etherType(a netip.Addr) uint16 {
	if a.Is4() {
		return 0x0800
	}
	return 0x86dd
}

func (p pkt) bytes() []byte {
	return append(l2(p.smac, p.dmac, p.vlan, etherType(p.src)), p.l3()...)
}

// encap returns the frame the program should emit in DSR mode: inner IP
// packet p inside an outer header from src to dst (TTL 64, id 0, no DF).
func encap(p pkt, smac, dmac string, src, dst netip.Addr) []byte {
	inner := p.l3()
	innerProto := byte(4)
	if p.src.Is6() {
		innerProto = 41
	}
	var outer []byte
	if src.Is4() {
		outer = make([]byte, 20)
		outer[0] = 0x45
		outer[1] = p.tos
		binary.BigEndian.PutUint16(outer[2:], uint16(20+len(inner)))
		outer[8] = 64
		outer[9] = innerProto
		copy(outer[12:], src.AsSlice())
		copy(outer[16:], dst.AsSlice())
		binary.BigEndian.PutUint16(outer[10:], csumFinish(csumAdd(0, outer)))
	} else {
		outer = make([]byte, 40)
		binary.BigEndian.PutUint32(outer[0:], 0x60000000|uint32(p.tos)<<20)
		binary.BigEndian.PutUint16(outer[4:], uint16(len(inner)))
		outer[6] = innerProto
		outer[7] = 64
		copy(outer[8:], src.AsSlice())
		copy(outer[24:], dst.AsSlice())
	}
	frame := l2(smac, dmac, p.vlan, etherType(src))
	return append(append(frame, outer...), inner...)
}
