// SPDX-License-Identifier: GPL-3.0-only

package h2

import "testing"

func TestPingFrameGolden(t *testing.T) {
	d := [8]byte{1, 2, 3, 4, 5, 6, 7, 8}
	checkGolden(t, []goldenFrame{
		{"ping", &PingFrame{Data: d}, "000008 06 00 00000000 0102030405060708", PingFrame{Data: d}},
		{"ack", &PingFrame{Ack: true, Data: d}, "000008 06 01 00000000 0102030405060708", PingFrame{Ack: true, Data: d}},
	})
}

func TestPingFrameBad(t *testing.T) {
	checkBad(t, []badFrame{
		{"length 7", "000007 06 00 00000000 01020304050607", ErrPingBadLength},
		{"length 9", "000009 06 00 00000000 010203040506070809", ErrPingBadLength},
		{"stream 1", "000008 06 00 00000001 0102030405060708", ErrPingNonZeroStream},
	})
}
