// SPDX-License-Identifier: GPL-3.0-only

package h2

import "testing"

func TestDataFrameGolden(t *testing.T) {
	checkGolden(t, []goldenFrame{
		{"end stream", &DataFrame{StreamID: 1, EndStream: true, Data: []byte("hello")},
			"000005 00 01 00000001 68656c6c6f",
			DataFrame{StreamID: 1, EndStream: true, Data: []byte("hello")}},
		{"padded", &DataFrame{StreamID: 3, Data: []byte("hi"), Padded: true, PadLength: 3},
			"000006 00 08 00000003 03 6869 000000",
			DataFrame{StreamID: 3, Data: []byte("hi"), Padded: true, PadLength: 3}},
		{"padding only", &DataFrame{StreamID: 3, Data: []byte{}, Padded: true, PadLength: 2},
			"000003 00 08 00000003 02 0000",
			DataFrame{StreamID: 3, Data: []byte{}, Padded: true, PadLength: 2}},
		{"empty", &DataFrame{StreamID: 0x7fffffff, Data: []byte{}},
			"000000 00 00 7fffffff",
			DataFrame{StreamID: 0x7fffffff, Data: []byte{}}},
	})
	if got := AppendData(nil, 1, []byte("hello"), true); string(got) != string(unhex(t, "000005 00 01 00000001 68656c6c6f")) {
		t.Fatalf("AppendData %x", got)
	}
}

func TestDataFrameBad(t *testing.T) {
	checkBad(t, []badFrame{
		{"stream zero", "000001 00 00 00000000 61", ErrDataStreamZero},
		{"padding longer than payload", "000003 00 08 00000001 05 6869", ErrBadPadding},
		{"padding equal to payload", "000003 00 08 00000001 03 0000", ErrBadPadding},
		{"padded without pad length", "000000 00 08 00000001", ErrFrameTooShort},
	})
}
