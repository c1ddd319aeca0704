// SPDX-License-Identifier: GPL-3.0-only

package h2

import "testing"

func TestPushPromiseFrameGolden(t *testing.T) {
	checkGolden(t, []goldenFrame{
		{"plain", &PushPromiseFrame{StreamID: 1, PromisedID: 2, EndHeaders: true, Fragment: []byte{0x82}},
			"000005 05 04 00000001 00000002 82",
			PushPromiseFrame{StreamID: 1, PromisedID: 2, EndHeaders: true, Fragment: []byte{0x82}}},
		{"padded", &PushPromiseFrame{StreamID: 3, PromisedID: 4, Fragment: []byte{0x82, 0x84}, Padded: true, PadLength: 1},
			"000008 05 08 00000003 01 00000004 8284 00",
			PushPromiseFrame{StreamID: 3, PromisedID: 4, Fragment: []byte{0x82, 0x84}, Padded: true, PadLength: 1}},
	})
}

func TestPushPromiseFrameBad(t *testing.T) {
	checkBad(t, []badFrame{
		{"stream zero", "000004 05 04 00000000 00000002", ErrPushPromiseStreamZero},
		{"short", "000003 05 04 00000001 000000", ErrFrameTooShort},
		{"padded short", "000004 05 0c 00000001 00 000000", ErrFrameTooShort},
		{"padding too long", "000006 05 0c 00000001 02 00000002 82", ErrBadPadding},
	})
}
