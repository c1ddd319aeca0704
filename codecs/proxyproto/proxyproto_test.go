// SPDX-License-Identifier: GPL-3.0-only

package proxyproto

import (
	"errors"
	"net/netip"
	"testing"
)

func TestParseV1(t *testing.T) {
	for _, tc := range []struct {
		in       string
		src, dst string
		local    bool
		n        int
		err      error
	}{
		{in: "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nGET /", src: "192.0.2.1:56324", dst: "198.51.100.2:443", n: 45},
		{in: "PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\n", src: "[2001:db8::1]:1", dst: "[2001:db8::2]:65535", n: 44},
		{in: "PROXY UNKNOWN\r\n", local: true, n: 15},
		{in: "PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n", local: true, n: 35},
		{in: "PROXY TCP4 192.0.2.1 198.51.100.2 56324", err: ErrNeedMore},
		{in: "PRO", err: ErrNeedMore},
		{in: "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\n", err: ErrInvalid},
		{in: "PROXY TCP4 2001:db8::1 198.51.100.2 1 2\r\n", err: ErrInvalid},
		{in: "PROXY TCP6 192.0.2.1 198.51.100.2 1 2\r\n", err: ErrInvalid},
		{in: "PROXY TCP4 192.0.2.1 198.51.100.2 65536 2\r\n", err: ErrInvalid},
		{in: "PROXY TCP4 192.0.2.1 198.51.100.2 01 2\r\n", err: ErrInvalid},
		{in: "PROXY TCP4 192.0.2.1 198.51.100.2 -1 2\r\n", err: ErrInvalid},
		{in: "PROXY TCP4 192.0.2.1  198.51.100.2 1 2\r\n", err: ErrInvalid},
		{in: "PROXY UDP4 192.0.2.1 198.51.100.2 1 2\r\n", err: ErrInvalid},
		{in: "PROXY TCP4 192.0.2.1 198.51.100.2 1 2 3\r\n", err: ErrInvalid},
		{in: "GET / HTTP/1.1\r\n", err: ErrNoHeader},
		{in: "PROXY TCP4 " + string(make([]byte, 120)), err: ErrInvalid},
	} {
		h, n, err := Parse([]byte(tc.in))
		if !errors.Is(err, tc.err) {
			t.Errorf("%q: err %v, want %v", tc.in, err, tc.err)
			continue
		}
		if err != nil {
			continue
		}
		if n != tc.n || h.Local != tc.local || h.Version != 1 {
			t.Errorf("%q: %+v n=%d", tc.in, h, n)
		}
		if !tc.local && (h.Src.String() != tc.src || h.Dst.String() != tc.dst) {
			t.Errorf("%q: src %s dst %s", tc.in, h.Src, h.Dst)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	for _, pair := range [][2]string{{"192.0.2.1:1234", "198.51.100.2:443"}, {"[2001:db8::1]:5", "[2001:db8::2]:80"}} {
		src, dst := netip.MustParseAddrPort(pair[0]), netip.MustParseAddrPort(pair[1])
		for v, enc := range map[int]func([]byte, netip.AddrPort, netip.AddrPort) []byte{1: AppendV1, 2: AppendV2} {
			b := enc(nil, src, dst)
			b = append(b, "payload"...)
			h, n, err := Parse(b)
			if err != nil || h.Version != v || h.Src != src || h.Dst != dst || string(b[n:]) != "payload" {
				t.Errorf("v%d %s→%s: %+v n=%d err=%v", v, src, dst, h, n, err)
			}
			for i := 0; i < n; i++ {
				if _, _, err := Parse(b[:i]); !errors.Is(err, ErrNeedMore) {
					t.Errorf("v%d prefix %d: %v", v, i, err)
				}
			}
		}
	}
	// Mixed families go as UNKNOWN / LOCAL.
	src, dst := netip.MustParseAddrPort("192.0.2.1:1"), netip.MustParseAddrPort("[2001:db8::2]:2")
	for _, b := range [][]byte{AppendV1(nil, src, dst), AppendV2(nil, src, dst)} {
		if h, _, err := Parse(b); err != nil || !h.Local {
			t.Errorf("mixed: %+v %v", h, err)
		}
	}
}

func TestParseV2Bad(t *testing.T) {
	good := AppendV2(nil, netip.MustParseAddrPort("192.0.2.1:1"), netip.MustParseAddrPort("192.0.2.2:2"))
	bad := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	for name, b := range map[string][]byte{
		"version 1 in v2":  bad(func(b []byte) []byte { b[12] = 0x11; return b }),
		"command 2":        bad(func(b []byte) []byte { b[12] = 0x22; return b }),
		"udp":              bad(func(b []byte) []byte { b[13] = 0x12; return b }),
		"unix":             bad(func(b []byte) []byte { b[13] = 0x31; return b }),
		"short for family": bad(func(b []byte) []byte { b[15] = 4; return b[:20] }),
		"huge length":      bad(func(b []byte) []byte { b[14], b[15] = 0xff, 0xff; return b }),
	} {
		if _, _, err := Parse(b); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// TLVs after the addresses are skipped.
	withTLV := bad(func(b []byte) []byte {
		b[15] = 12 + 5
		return append(b, 0x04, 0, 2, 'h', 'i')
	})
	if h, n, err := Parse(append(withTLV, 'x')); err != nil || n != len(withTLV) || h.Src.Port() != 1 {
		t.Errorf("TLV: %+v %d %v", h, n, err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n"))
	f.Add(AppendV2(nil, netip.MustParseAddrPort("[2001:db8::1]:5"), netip.MustParseAddrPort("[2001:db8::2]:80")))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, n, err := Parse(b)
		if err == nil && (n <= 0 || n > len(b)) {
			t.Fatalf("n=%d len=%d", n, len(b))
		}
		if err == nil && !h.Local && !h.Src.IsValid() {
			t.Fatalf("no source: %+v", h)
		}
	})
}
