// SPDX-License-Identifier: GPL-3.0-only

package h1

import "testing"

func TestBodyKindEmpty(t *testing.T) {
	for _, c := range []struct {
		k    BodyKind
		cl   int64
		want bool
	}{
		{BodyNone, -1, true}, {BodyNone, 0, true}, {BodyLength, 0, true},
		{BodyLength, 1, false}, {BodyChunked, -1, false}, {BodyChunked, 0, false}, {BodyUntilClose, -1, false},
	} {
		if got := c.k.Empty(c.cl); got != c.want {
			t.Errorf("%v.Empty(%d) = %v, want %v", c.k, c.cl, got, c.want)
		}
	}
}
