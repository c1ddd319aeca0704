// SPDX-License-Identifier: GPL-3.0-only

package h2

import "testing"

func TestRSTStreamFrameGolden(t *testing.T) {
	checkGolden(t, []goldenFrame{
		{"cancel", &RSTStreamFrame{StreamID: 1, Code: ErrCodeCancel},
			"000004 03 00 00000001 00000008", RSTStreamFrame{StreamID: 1, Code: ErrCodeCancel}},
		{"unknown code", &RSTStreamFrame{StreamID: 3, Code: 0xdeadbeef},
			"000004 03 00 00000003 deadbeef", RSTStreamFrame{StreamID: 3, Code: 0xdeadbeef}},
	})
}

func TestRSTStreamFrameBad(t *testing.T) {
	checkBad(t, []badFrame{
		{"stream zero", "000004 03 00 00000000 00000008", ErrRSTStreamZero},
		{"length 3", "000003 03 00 00000001 000008", ErrRSTStreamBadLength},
		{"length 5", "000005 03 00 00000001 0000000800", ErrRSTStreamBadLength},
	})
}
