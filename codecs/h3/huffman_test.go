// SPDX-License-Identifier: GPL-3.0-only

package h3

import (
	"bytes"
	"testing"

	"golang.org/x/net/http2/hpack"
)

// TestHuffmanEverySymbol: each byte alone, all 256 in a row, and a few
// header values decode as hpack decodes them.
func TestHuffmanEverySymbol(t *testing.T) {
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	cases := [][]byte{all, []byte(""), []byte("www.example.com"), []byte("no-cache"),
		[]byte("Mon, 21 Oct 2013 20:13:21 GMT"), bytes.Repeat([]byte{0xff, 0x00, 'a'}, 100)}
	for i := range all {
		cases = append(cases, all[i:i+1])
	}
	for _, in := range cases {
		enc := hpack.AppendHuffmanString(nil, string(in))
		got, err := appendHuffman([]byte("keep:"), enc)
		if err != nil || string(got) != "keep:"+string(in) {
			t.Fatalf("%q: got %q %v", in, got, err)
		}
	}
}

// TestHuffmanErrors: RFC 7541 section 5.2's three decoding errors, each
// also refused by hpack.
func TestHuffmanErrors(t *testing.T) {
	a := hpack.AppendHuffmanString(nil, "a") // 00011 + 111 padding
	for name, in := range map[string][]byte{
		"EOS in the string":        {0xff, 0xff, 0xff, 0xff},             // 30 ones, then 2 more
		"padding of 8 bits":        {0xff},                               // no symbol, 8 ones
		"padding of 11 bits":       append(append([]byte{}, a...), 0xff), // a whole byte of ones after "a"
		"padding not ones":         {0x18},                               // "a" then 000
		"zero padding after \"0\"": {0x00},                               // 00000 then 000
		"a code cut after a byte":  {0xfe},                               // 11111110: a prefix of no code ending in ones
	} {
		if got, err := appendHuffman(nil, in); err == nil {
			t.Errorf("%s: decoded as %q", name, got)
		}
		if _, err := hpack.HuffmanDecodeToString(in); err == nil {
			t.Errorf("%s: hpack accepts it", name)
		}
	}
}

// FuzzHuffman holds appendHuffman to hpack's decoder on any input.
func FuzzHuffman(f *testing.F) {
	f.Add([]byte{0x18})
	f.Add(hpack.AppendHuffmanString(nil, "custom-key: custom-value"))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, in []byte) {
		want, werr := hpack.HuffmanDecodeToString(in)
		got, gerr := appendHuffman(nil, in)
		if (werr == nil) != (gerr == nil) || (werr == nil && string(got) != want) {
			t.Fatalf("%x: ours %q %v, hpack %q %v", in, got, gerr, want, werr)
		}
	})
}

func BenchmarkHuffman(b *testing.B) {
	enc := hpack.AppendHuffmanString(nil, "Mozilla/5.0 (X11; Linux x86_64) text/html,application/xhtml+xml")
	dst := make([]byte, 0, 256)
	b.Run("ours", func(b *testing.B) {
		for b.Loop() {
			dst, _ = appendHuffman(dst[:0], enc)
		}
	})
	b.Run("hpack", func(b *testing.B) {
		w := &appendWriter{b: dst}
		for b.Loop() {
			w.b = w.b[:0]
			_, _ = hpack.HuffmanDecode(w, enc)
		}
	})
}
