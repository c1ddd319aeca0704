// SPDX-License-Identifier: GPL-3.0-only

package h2

import "testing"

func TestHeadersFrameGolden(t *testing.T) {
	checkGolden(t, []goldenFrame{
		{"end headers and stream", &HeadersFrame{StreamID: 1, EndStream: true, EndHeaders: true, Fragment: []byte{0x82, 0x86, 0x84}},
			"000003 01 05 00000001 828684",
			HeadersFrame{StreamID: 1, EndStream: true, EndHeaders: true, Fragment: []byte{0x82, 0x86, 0x84}}},
		{"priority and padding", &HeadersFrame{StreamID: 5, EndHeaders: true, HasPriority: true,
			Priority: PriorityParam{StreamDep: 3, Exclusive: true, Weight: 15}, Fragment: []byte{0x82}, Padded: true, PadLength: 2},
			"000009 01 2c 00000005 02 80000003 0f 82 0000",
			HeadersFrame{StreamID: 5, EndHeaders: true, HasPriority: true,
				Priority: PriorityParam{StreamDep: 3, Exclusive: true, Weight: 15}, Fragment: []byte{0x82}, Padded: true, PadLength: 2}},
		{"no end headers", &HeadersFrame{StreamID: 3, Fragment: []byte{0x82}},
			"000001 01 00 00000003 82",
			HeadersFrame{StreamID: 3, Fragment: []byte{0x82}}},
	})
}

func TestHeadersFrameBad(t *testing.T) {
	checkBad(t, []badFrame{
		{"stream zero", "000001 01 04 00000000 82", ErrHeadersStreamZero},
		{"priority flag, short payload", "000003 01 24 00000001 000000", ErrFrameTooShort},
		{"padded priority, short payload", "000004 01 2c 00000001 00 000000", ErrFrameTooShort},
		{"padding too long", "000003 01 0c 00000001 03 8282", ErrBadPadding},
		{"padding fills the rest", "000003 01 0c 00000001 02 8282", nil},
		{"self dependency", "000006 01 24 00000003 00000003 10 82", ErrPrioritySelfDep},
	})
}
