// SPDX-License-Identifier: GPL-3.0-only

//go:build linux

package engine

import (
	"net"
	"os"
	"testing"
)

// TestH3GrowBuffers: the h3 socket gets the buffers quic-go wants when the
// process may force them (root), and reports what it got either way.
func TestH3GrowBuffers(t *testing.T) {
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = pc.Close() }()
	rcv, snd := h3GrowBuffers(pc)
	if rcv <= 0 || snd <= 0 {
		t.Fatalf("buffers %d/%d", rcv, snd)
	}
	if os.Geteuid() == 0 && (rcv < h3WantBuffer || snd < h3WantBuffer) {
		t.Fatalf("as root: buffers %d/%d, want %d (SO_RCVBUFFORCE, SO_SNDBUFFORCE)", rcv, snd, h3WantBuffer)
	}
}
