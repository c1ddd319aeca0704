// SPDX-License-Identifier: GPL-3.0-only

package msg

import "testing"

func TestBodyEmpty(t *testing.T) {
	for _, c := range []struct {
		b    Body
		cl   int64
		want bool
	}{
		{BodyNone, -1, true}, {BodyLength, 0, true}, {BodyLength, 5, false}, {BodyStream, -1, false}, {BodyStream, 0, false},
	} {
		if got := c.b.Empty(c.cl); got != c.want {
			t.Errorf("Body(%d).Empty(%d) = %v, want %v", c.b, c.cl, got, c.want)
		}
	}
}
