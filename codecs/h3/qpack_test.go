// SPDX-License-Identifier: GPL-3.0-only

package h3

import (
	"bytes"
	"io"
	"slices"
	"testing"

	"github.com/quic-go/qpack"
	"golang.org/x/net/http2/hpack"
)

// oracle decodes a section with quic-go's qpack decoder, the reference
// the gateway's own decoder is checked against.
func oracle(block []byte) ([][2]string, error) {
	next := qpack.NewDecoder().Decode(block)
	var out [][2]string
	for {
		f, err := next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		out = append(out, [2]string{f.Name, f.Value})
	}
}

// ours decodes a section with fieldLines.
func ours(block []byte) ([][2]string, error) {
	lines, err := startFieldLines(block)
	if err != nil {
		return nil, err
	}
	var a appendWriter
	var out [][2]string
	for lines.more() {
		n, v, err := lines.next(&a)
		if err != nil {
			return nil, err
		}
		out = append(out, [2]string{string(a.b[n.start:n.end]), string(a.b[v.start:v.end])})
	}
	return out, nil
}

// TestStaticTable decodes every static index (an indexed field line, then
// a literal value with the index as its name) and compares with the
// oracle's table: a typo in one of the 99 entries fails here.
func TestStaticTable(t *testing.T) {
	if len(staticTable) != 99 {
		t.Fatalf("%d static entries, RFC 9204 has 99", len(staticTable))
	}
	for i := range len(staticTable) + 1 {
		block := appendPrefixInt([]byte{0, 0}, 6, 0xc0, uint64(i))
		block = appendPrefixInt(block, 4, 0x50, uint64(i))
		block = append(block, 1, 'v')
		want, werr := oracle(block)
		got, gerr := ours(block)
		if (werr == nil) != (gerr == nil) || !slices.Equal(got, want) {
			t.Fatalf("index %d: ours %q %v, qpack %q %v", i, got, gerr, want, werr)
		}
		if i == len(staticTable) && gerr == nil {
			t.Fatal("an index past the static table was accepted")
		}
	}
}

// appendPrefixInt appends v as an integer with an n-bit prefix, the
// first byte's other bits set to flags.
func appendPrefixInt(b []byte, n uint8, flags byte, v uint64) []byte {
	mask := uint64(1)<<n - 1
	if v < mask {
		return append(b, flags|byte(v))
	}
	b = append(b, flags|byte(mask))
	for v -= mask; v >= 0x80; v >>= 7 {
		b = append(b, byte(v)|0x80)
	}
	return append(b, byte(v))
}

// literal appends a string literal (n-bit length prefix, the Huffman
// flag above it).
func literalBytes(b []byte, n uint8, flags byte, s string, huff bool) []byte {
	if huff {
		return hpack.AppendHuffmanString(appendPrefixInt(b, n, flags|1<<n, hpack.HuffmanEncodeLength(s)), s)
	}
	return append(appendPrefixInt(b, n, flags, uint64(len(s))), s...)
}

func TestFieldLineForms(t *testing.T) {
	long := string(bytes.Repeat([]byte("abcdefghij"), 40)) // a length past one prefix byte
	ok := map[string]struct {
		block []byte
		want  [][2]string
	}{
		"indexed": {[]byte{0, 0, 0xc0 | 17, 0xc0 | 1}, [][2]string{{":method", "GET"}, {":path", "/"}}},
		"static name, literal value": {literalBytes([]byte{0, 0, 0x50 | 1}, 7, 0, "/x", false),
			[][2]string{{":path", "/x"}}},
		"static name, Huffman value, N bit": {literalBytes([]byte{0, 0, 0x70 | 1}, 7, 0, "/index.html?q=1", true),
			[][2]string{{":path", "/index.html?q=1"}}},
		"literal name and value": {literalBytes(literalBytes([]byte{0, 0}, 3, 0x20, "x-a", false), 7, 0, long, false),
			[][2]string{{"x-a", long}}},
		"Huffman name and value": {literalBytes(literalBytes([]byte{0, 0}, 3, 0x20, "x-custom-name", true), 7, 0, long, true),
			[][2]string{{"x-custom-name", long}}},
		"empty value":                   {literalBytes([]byte{0, 0, 0x50 | 5}, 7, 0, "", false), [][2]string{{"cookie", ""}}},
		"sign bit with delta base 0":    {[]byte{0, 0x80, 0xc0 | 17}, [][2]string{{":method", "GET"}}},
		"no field lines":                {[]byte{0, 0}, nil},
		"static index past one byte":    {appendPrefixInt([]byte{0, 0}, 6, 0xc0, 98), [][2]string{{"x-frame-options", "sameorigin"}}},
		"static name index past 4 bits": {literalBytes(appendPrefixInt([]byte{0, 0}, 4, 0x50, 95), 7, 0, "ua", false), [][2]string{{"user-agent", "ua"}}},
	}
	for name, c := range ok {
		got, err := ours(c.block)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("%s: %q %v, want %q", name, got, err, c.want)
		}
		if want, err := oracle(c.block); err != nil || !slices.Equal(want, c.want) {
			t.Errorf("%s: the oracle decodes %q %v", name, want, err)
		}
	}
	bad := map[string][]byte{
		"empty block":                  {},
		"no delta base":                {0},
		"required insert count":        {1, 0},
		"non-zero base":                {0, 1},
		"indexed, dynamic":             {0, 0, 0x80 | 1},
		"literal, dynamic name":        {0, 0, 0x40 | 1, 0},
		"post-base indexed":            {0, 0, 0x10},
		"post-base name reference":     {0, 0, 0x00, 0},
		"static index past the table":  appendPrefixInt([]byte{0, 0}, 6, 0xc0, 99),
		"value cut short":              {0, 0, 0x50 | 1, 3, '/', 'x'},
		"value length missing":         {0, 0, 0x50 | 1},
		"name cut short":               {0, 0, 0x20 | 4, 'x'},
		"value missing after the name": {0, 0, 0x20 | 1, 'x'},
		"unterminated length":          {0, 0, 0x50 | 1, 0x7f, 0x80, 0x80},
		"huge length":                  {0, 0, 0x50 | 1, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
		"Huffman padding not EOS":      {0, 0, 0x50 | 1, 0x81, 0x00},
	}
	for name, b := range bad {
		if got, err := ours(b); err == nil {
			t.Errorf("%s: accepted as %q", name, got)
		}
		if _, err := oracle(b); err == nil {
			t.Errorf("%s: the oracle accepts it", name)
		}
	}
}

// TestDecodeFieldsAllocs: decoding a request head with Huffman literals
// into a reused Head allocates nothing.
func TestDecodeFieldsAllocs(t *testing.T) {
	block := encode(t, ":method", "GET", ":scheme", "https", ":authority", "a.test", ":path", "/index.html?q=1",
		"user-agent", "bench/1.0", "accept", "*/*", "cookie", "session=0123456789abcdef")
	var h Head
	if err := DecodeFields(block, 0, false, &h); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() { _ = DecodeFields(block, 0, false, &h) }); n != 0 {
		t.Fatalf("%v allocations per decode", n)
	}
	if string(h.Path) != "/index.html?q=1" || string(h.Authority) != "a.test" || len(h.Fields) != 3 ||
		string(h.Fields[2].Value) != "session=0123456789abcdef" {
		t.Fatalf("decoded %+v", h)
	}
}

// FuzzFieldLines: the gateway's decoder and quic-go's agree on every
// input, in what they accept and what they decode.
func FuzzFieldLines(f *testing.F) {
	f.Add(encode(f, ":method", "GET", ":scheme", "https", ":path", "/", "a", "b"))
	f.Add(literalBytes(literalBytes([]byte{0, 0}, 3, 0x20, "x-custom-name", true), 7, 0, "value", true))
	f.Add([]byte{0, 0, 0xd1, 0x5f, 0x1d, 0x81, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		got, gerr := ours(b)
		want, werr := oracle(b)
		if (gerr == nil) != (werr == nil) || !slices.Equal(got, want) {
			t.Fatalf("ours %q %v, qpack %q %v", got, gerr, want, werr)
		}
	})
}
