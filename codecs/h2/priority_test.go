// SPDX-License-Identifier: GPL-3.0-only

package h2

import "testing"

func TestPriorityFrameGolden(t *testing.T) {
	checkGolden(t, []goldenFrame{
		{"plain", &PriorityFrame{StreamID: 7, PriorityParam: PriorityParam{StreamDep: 5, Weight: 255}},
			"000005 02 00 00000007 00000005 ff",
			PriorityFrame{StreamID: 7, PriorityParam: PriorityParam{StreamDep: 5, Weight: 255}}},
		{"exclusive", &PriorityFrame{StreamID: 9, PriorityParam: PriorityParam{StreamDep: 0, Exclusive: true, Weight: 0}},
			"000005 02 00 00000009 80000000 00",
			PriorityFrame{StreamID: 9, PriorityParam: PriorityParam{StreamDep: 0, Exclusive: true, Weight: 0}}},
	})
}

func TestPriorityFrameBad(t *testing.T) {
	checkBad(t, []badFrame{
		{"stream zero", "000005 02 00 00000000 00000001 10", ErrPriorityStreamZero},
		{"length 4", "000004 02 00 00000001 00000003", ErrPriorityBadLength},
		{"length 6", "000006 02 00 00000001 00000003 1000", ErrPriorityBadLength},
		{"self dependency", "000005 02 00 00000003 80000003 10", ErrPrioritySelfDep},
	})
}
