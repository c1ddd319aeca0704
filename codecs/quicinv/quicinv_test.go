// SPDX-License-Identifier: GPL-3.0-only

package quicinv

import (
	"bytes"
	"errors"
	"testing"
)

func mustLong(t testing.TB, first byte, version uint32, dcid, scid []byte) []byte {
	t.Helper()
	b, err := AppendLong(nil, first, version, dcid, scid)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseLong(t *testing.T) {
	dcid := []byte{1, 2, 3, 4, 5, 6, 7, 8}
	scid := []byte{9, 10, 11, 12}
	pkt := append(mustLong(t, 0xc3, 1, dcid, scid), make([]byte, 40)...)
	h, err := ParseLong(pkt)
	if err != nil {
		t.Fatal(err)
	}
	if h.Version != 1 || !bytes.Equal(h.DCID, dcid) || !bytes.Equal(h.SCID, scid) {
		t.Fatalf("got %+v", h)
	}
	// The IDs alias the datagram and cannot be appended past.
	if cap(h.DCID) != len(dcid) || cap(h.SCID) != len(scid) {
		t.Fatalf("caps %d %d", cap(h.DCID), cap(h.SCID))
	}

	// Every truncation of the header is ErrTruncated; the header alone
	// parses.
	hdr := mustLong(t, 0xc0, 0x6b3343cf, dcid, scid)
	for i := range hdr {
		if _, err := ParseLong(hdr[:i]); !errors.Is(err, ErrTruncated) {
			t.Fatalf("prefix %d: %v", i, err)
		}
	}
	if _, err := ParseLong(hdr); err != nil {
		t.Fatal(err)
	}

	// Empty connection IDs are fine.
	h, err = ParseLong(mustLong(t, 0x80, 1, nil, nil))
	if err != nil || len(h.DCID) != 0 || len(h.SCID) != 0 {
		t.Fatalf("empty IDs: %+v %v", h, err)
	}
}

func TestParseLongGarbage(t *testing.T) {
	for name, b := range map[string][]byte{
		"short header": {0x40, 1, 2, 3, 4, 5, 6, 7},
		"dcid 21":      append([]byte{0xc0, 0, 0, 0, 1, 21}, make([]byte, 30)...),
		"scid 255":     append([]byte{0xc0, 0, 0, 0, 1, 0, 255}, make([]byte, 300)...),
	} {
		if _, err := ParseLong(b); !errors.Is(err, ErrGarbage) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := AppendLong(nil, 0x40, 1, nil, nil); !errors.Is(err, ErrGarbage) {
		t.Errorf("append short: %v", err)
	}
	if _, err := AppendLong(nil, 0xc0, 1, make([]byte, 21), nil); !errors.Is(err, ErrGarbage) {
		t.Errorf("append long id: %v", err)
	}
}

func TestShortDCID(t *testing.T) {
	pkt := append([]byte{0x41, 0xaa, 0xbb, 0xcc, 0xdd}, make([]byte, 20)...)
	id, err := ShortDCID(pkt, 4)
	if err != nil || !bytes.Equal(id, []byte{0xaa, 0xbb, 0xcc, 0xdd}) {
		t.Fatalf("%x %v", id, err)
	}
	for i := range pkt {
		if _, err := ShortDCID(pkt[:i], 4); !errors.Is(err, ErrTruncated) {
			t.Fatalf("prefix %d: %v", i, err)
		}
	}
	for _, n := range []int{-1, 21} {
		if _, err := ShortDCID(pkt, n); !errors.Is(err, ErrGarbage) {
			t.Errorf("n=%d: %v", n, err)
		}
	}
	if _, err := ShortDCID(append([]byte{0xc0}, pkt[1:]...), 4); !errors.Is(err, ErrGarbage) {
		t.Errorf("long header: %v", err)
	}
	if IsLong(nil) || IsLong([]byte{0x7f}) || !IsLong([]byte{0x80}) {
		t.Error("IsLong")
	}
}

func BenchmarkParseLong(b *testing.B) {
	pkt := append(mustLong(b, 0xc0, 1, make([]byte, 8), make([]byte, 4)), make([]byte, 1200)...)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseLong(pkt); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzParse: no input makes the parsers panic or return IDs that are not
// inside the datagram at the place the header says.
func FuzzParse(f *testing.F) {
	f.Add(mustLong(f, 0xc0, 1, []byte{1, 2, 3, 4, 5, 6, 7, 8}, []byte{1, 2, 3, 4}), 4)
	f.Add([]byte{0x40, 1, 2, 3, 4}, 4)
	f.Add([]byte{}, 0)
	f.Add(coalesced(f, Version1, 0, 2), 4)
	f.Fuzz(func(t *testing.T, b []byte, n int) {
		if h, err := ParseLong(b); err == nil {
			if len(h.DCID) > MaxCIDLen || len(h.SCID) > MaxCIDLen {
				t.Fatalf("ids too long: %d %d", len(h.DCID), len(h.SCID))
			}
			if !bytes.Equal(h.DCID, b[6:6+len(h.DCID)]) {
				t.Fatal("dcid not where the header says")
			}
			again, err := AppendLong(nil, b[0], h.Version, h.DCID, h.SCID)
			if err != nil || !bytes.HasPrefix(b, again) {
				t.Fatalf("re-encoding %x is not a prefix of %x (%v)", again, b, err)
			}
		}
		if id, err := ShortDCID(b, n); err == nil && !bytes.Equal(id, b[1:1+n]) {
			t.Fatal("short dcid not after the first byte")
		}
		for rest, i := b, 0; len(rest) > 0 && i < 8; i++ {
			_, next, err := NextLong(rest)
			if err != nil {
				break
			}
			if len(next) >= len(rest) {
				t.Fatal("NextLong did not advance")
			}
			rest = next
		}
	})
}

// coalesced is an Initial (with a token) and a Handshake of version v,
// coalesced, then a short-header packet.
func coalesced(t testing.TB, v uint32, initialType, handshakeType byte) []byte {
	t.Helper()
	b, err := AppendLong(nil, 0xc0|initialType<<4, v, []byte{1, 2, 3, 4}, []byte{0xa, 0xa, 0xa, 0xa})
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, 3, 't', 'o', 'k') // token
	b = append(b, 0x40, 10)         // Length 10 in a 2-byte varint
	b = append(b, make([]byte, 10)...)
	if b, err = AppendLong(b, 0xc0|handshakeType<<4, v, []byte{1, 2, 3, 4}, []byte{0xb, 0xb, 0xb, 0xb}); err != nil {
		t.Fatal(err)
	}
	b = append(b, 5)
	b = append(b, make([]byte, 5)...)
	return append(b, 0x40, 1, 2, 3, 4)
}

func TestNextLong(t *testing.T) {
	for _, tc := range []struct {
		v                 uint32
		initial, handshke byte
	}{{Version1, 0, 2}, {Version2, 1, 3}} {
		b := coalesced(t, tc.v, tc.initial, tc.handshke)
		h, rest, err := NextLong(b)
		if err != nil || !bytes.Equal(h.SCID, []byte{0xa, 0xa, 0xa, 0xa}) {
			t.Fatalf("v%x first: %+v %v", tc.v, h, err)
		}
		h, rest, err = NextLong(rest)
		if err != nil || !bytes.Equal(h.SCID, []byte{0xb, 0xb, 0xb, 0xb}) {
			t.Fatalf("v%x second: %+v %v", tc.v, h, err)
		}
		if !bytes.Equal(rest, []byte{0x40, 1, 2, 3, 4}) || IsLong(rest) {
			t.Fatalf("v%x rest %x", tc.v, rest)
		}
		// A token or Length past the end is a truncation (the Initial
		// is 15 header bytes, 4 of token, 2 of Length and 10 of payload).
		for i := 7 + 8; i < 31; i++ {
			if _, _, err := NextLong(b[:i]); !errors.Is(err, ErrTruncated) {
				t.Fatalf("v%x prefix %d: %v", tc.v, i, err)
			}
		}
	}
	// Retry and unknown versions run to the end.
	retry, _ := AppendLong(nil, 0xf0, Version1, nil, []byte{1})
	if _, rest, err := NextLong(append(retry, 1, 2, 3)); err != nil || len(rest) != 0 {
		t.Fatalf("retry: %x %v", rest, err)
	}
	other, _ := AppendLong(nil, 0xc0, 0x1a2a3a4a, nil, []byte{1})
	if _, rest, err := NextLong(append(other, 1, 2, 3)); err != nil || len(rest) != 0 {
		t.Fatalf("other version: %x %v", rest, err)
	}
}
