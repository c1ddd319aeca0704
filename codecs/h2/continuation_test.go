// SPDX-License-Identifier: GPL-3.0-only

package h2

import "testing"

func TestContinuationFrameGolden(t *testing.T) {
	checkGolden(t, []goldenFrame{
		{"end headers", &ContinuationFrame{StreamID: 1, EndHeaders: true, Fragment: []byte{0x82, 0x86}},
			"000002 09 04 00000001 8286", ContinuationFrame{StreamID: 1, EndHeaders: true, Fragment: []byte{0x82, 0x86}}},
		{"empty", &ContinuationFrame{StreamID: 3, Fragment: []byte{}},
			"000000 09 00 00000003", ContinuationFrame{StreamID: 3, Fragment: []byte{}}},
	})
}

func TestContinuationFrameBad(t *testing.T) {
	checkBad(t, []badFrame{
		{"stream zero", "000001 09 04 00000000 82", ErrContinuationStreamZero},
	})
}
