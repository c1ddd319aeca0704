// SPDX-License-Identifier: GPL-3.0-only

package h2

import "testing"

func TestGoAwayFrameGolden(t *testing.T) {
	checkGolden(t, []goldenFrame{
		{"debug", &GoAwayFrame{LastStreamID: 7, Code: ErrCodeProtocol, Debug: []byte("hi")},
			"00000a 07 00 00000000 00000007 00000001 6869",
			GoAwayFrame{LastStreamID: 7, Code: ErrCodeProtocol, Debug: []byte("hi")}},
		{"graceful", &GoAwayFrame{LastStreamID: maxStreamID, Debug: []byte{}},
			"000008 07 00 00000000 7fffffff 00000000",
			GoAwayFrame{LastStreamID: maxStreamID, Debug: []byte{}}},
	})
}

func TestGoAwayFrameBad(t *testing.T) {
	checkBad(t, []badFrame{
		{"stream 1", "000008 07 00 00000001 00000000 00000000", ErrGoAwayNonZeroStream},
		{"length 7", "000007 07 00 00000000 00000000 000000", ErrGoAwayTooShort},
	})
}
