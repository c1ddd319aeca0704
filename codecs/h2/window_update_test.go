// SPDX-License-Identifier: GPL-3.0-only

package h2

import "testing"

func TestWindowUpdateFrameGolden(t *testing.T) {
	checkGolden(t, []goldenFrame{
		{"connection", &WindowUpdateFrame{Increment: 983041},
			"000004 08 00 00000000 000f0001", WindowUpdateFrame{Increment: 983041}},
		{"stream max", &WindowUpdateFrame{StreamID: 3, Increment: maxWindow},
			"000004 08 00 00000003 7fffffff", WindowUpdateFrame{StreamID: 3, Increment: maxWindow}},
	})
	// The reserved bit is ignored.
	f, err := parseWindowUpdateFrame(FrameHeader{Type: FrameWindowUpdate, Length: 4, StreamID: 1}, unhex(t, "80000001"))
	if err != nil || f.Increment != 1 {
		t.Fatalf("%+v %v", f, err)
	}
}

func TestWindowUpdateFrameBad(t *testing.T) {
	checkBad(t, []badFrame{
		{"length 3", "000003 08 00 00000000 000001", ErrWindowUpdateBadLength},
		{"zero on connection", "000004 08 00 00000000 00000000", ErrWindowUpdateZeroConn},
		{"zero on stream", "000004 08 00 00000001 00000000", ErrWindowUpdateZero},
		{"zero with reserved bit", "000004 08 00 00000001 80000000", ErrWindowUpdateZero},
	})
}
