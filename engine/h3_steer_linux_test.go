// SPDX-License-Identifier: GPL-3.0-only

//go:build linux

package engine

import (
	"context"
	"encoding/binary"
	"net"
	"strings"
	"testing"
	"time"
)

// TestH3SteerByGeneration binds two sockets to one port as an upgrade
// does (the old process's first, then the new one's), attaches the
// program, and checks where each kind of datagram lands.
func TestH3SteerByGeneration(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:0", "[::1]:0"} {
		t.Run(addr, func(t *testing.T) {
			probe, err := net.ListenPacket("udp", addr)
			if err != nil {
				t.Skipf("no %s on this machine: %v", addr, err)
			}
			_ = probe.Close()
			testH3Steer(t, addr)
		})
	}
}

func testH3Steer(t *testing.T, addr string) {
	lc := net.ListenConfig{Control: h3SocketControl}
	bind := func(addr string) *net.UDPConn {
		t.Helper()
		p, err := lc.ListenPacket(context.Background(), "udp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.Close() })
		return p.(*net.UDPConn)
	}
	old := bind(addr)
	if err := h3Steer(old, 1); err == nil || !strings.Contains(err.Error(), "1 sockets share the port") {
		t.Fatalf("steering with one socket in the group: %v", err)
	}
	nu := bind(old.LocalAddr().String())
	if err := h3Steer(nu, 1); err != nil {
		t.Fatal(err)
	}
	third := bind(old.LocalAddr().String())
	if err := h3Steer(third, 0); err == nil || !strings.Contains(err.Error(), "3 sockets share the port") {
		t.Fatalf("steering with three sockets in the group: %v", err)
	}
	_ = third.Close()

	cid := func(gen byte) []byte {
		c, err := h3CIDGen{gen: gen}.GenerateConnectionID()
		if err != nil {
			t.Fatal(err)
		}
		return c.Bytes()
	}
	short := func(gen byte) []byte { return append(append([]byte{0x40}, cid(gen)...), make([]byte, 40)...) }
	long := func(typ byte, version uint32, dcid []byte) []byte {
		b := []byte{0xc0 | typ<<4, 0, 0, 0, 0}
		binary.BigEndian.PutUint32(b[1:], version)
		b = append(b, byte(len(dcid)))
		b = append(b, dcid...)
		b = append(b, 8)
		b = append(b, cid(0)...)
		return append(b, make([]byte, 40)...)
	}
	const v1, v2 = 1, quicVersion2
	cases := []struct {
		name string
		pkt  []byte
		want *net.UDPConn
	}{
		{"short header, old generation", short(0), old},
		{"short header, new generation", short(1), nu},
		{"v1 Initial", long(0, v1, cid(0)), nu},
		{"v1 0-RTT", long(1, v1, cid(0)), nu},
		{"v1 Handshake, old generation", long(2, v1, cid(0)), old},
		{"v1 Handshake, new generation", long(2, v1, cid(1)), nu},
		{"v1 Handshake, a 4-byte DCID", long(2, v1, cid(0)[:4]), nu},
		{"v2 Initial (type 1)", long(1, v2, cid(0)), nu},
		{"v2 Handshake (type 3), old generation", long(3, v2, cid(0)), old},
		{"v2 Handshake (type 3), new generation", long(3, v2, cid(1)), nu},
		{"v2 Retry (type 0)", long(0, v2, cid(0)), nu},
	}
	client, err := net.DialUDP("udp", nil, old.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = client.Close() }()
	recv := func(c *net.UDPConn, wait time.Duration) []byte {
		buf := make([]byte, 2048)
		_ = c.SetReadDeadline(time.Now().Add(wait))
		n, _, err := c.ReadFromUDP(buf)
		if err != nil {
			return nil
		}
		return buf[:n]
	}
	for _, tc := range cases {
		other := nu
		if tc.want == nu {
			other = old
		}
		// Several of each, so that a hash that happens to agree does not pass.
		for i := 0; i < 4; i++ {
			pkt := append([]byte(nil), tc.pkt...)
			pkt[len(pkt)-1] = byte(i)
			if _, err := client.Write(pkt); err != nil {
				t.Fatal(err)
			}
			if got := recv(tc.want, time.Second); string(got) != string(pkt) {
				t.Fatalf("%s: the expected socket got %x", tc.name, got)
			}
		}
		if got := recv(other, 20*time.Millisecond); got != nil {
			t.Fatalf("%s: the other socket got %x", tc.name, got)
		}
	}

	// The old socket closes: everything reaches the one left.
	_ = old.Close()
	for _, pkt := range [][]byte{short(0), short(1), long(0, v1, cid(0))} {
		if _, err := client.Write(pkt); err != nil {
			t.Fatal(err)
		}
		if got := recv(nu, time.Second); string(got) != string(pkt) {
			t.Fatalf("after the old socket closed: got %x", got)
		}
	}
}
