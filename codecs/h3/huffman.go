// SPDX-License-Identifier: GPL-3.0-only

package h3

import (
	"errors"

	"golang.org/x/net/http2/hpack"
)

// Huffman decoding of QPACK string literals (RFC 9204 section 4.1.2 uses
// the HPACK code, RFC 7541 Appendix B), appended straight to the caller's
// buffer: hpack.HuffmanDecode goes through a pooled bytes.Buffer and a
// copy, 2.3% of the HTTP/3 profile.
//
// The decoder is a state machine over nibbles. A state is an inner node of
// the code tree (bits read since the last symbol); one table entry per state
// and nibble gives the next state and at most one symbol (no code is shorter
// than 5 bits, so 4 bits finish at most one). The tree is rebuilt at init
// from the hpack package's encoder, so no code table is written out here.

var errHuffman = errors.New("h3: invalid Huffman-coded string")

// huffStep is what one nibble does from one state.
type huffStep struct {
	next uint8 // the state after the nibble
	sym  uint8 // the symbol finished on the way, when emit
	emit bool
	fail bool // the nibble runs into EOS (a decoding error, section 5.2)
}

var (
	// huffTable[state][nibble]
	huffTable [256][16]huffStep
	// huffPad[state]: the bits read since the last symbol are a valid
	// padding (fewer than 8, all ones: a prefix of EOS).
	huffPad [256]bool
)

func init() { buildHuffman() }

// buildHuffman derives each symbol's code from the hpack encoder, builds
// the code tree and walks every (state, nibble).
func buildHuffman() {
	type node struct {
		child [2]int16 // > 0: an inner node; < 0: -1-symbol; 0: none
	}
	nodes := make([]node, 1, 256) // nodes[0] is the root
	depth := make([]int, 1, 256)
	ones := make([]bool, 1, 256)
	ones[0] = true
	insert := func(code uint32, n int, sym int) {
		at := 0
		for i := n - 1; i >= 0; i-- {
			bit := code >> uint(i) & 1
			if i == 0 {
				nodes[at].child[bit] = int16(-1 - sym)
				return
			}
			next := nodes[at].child[bit]
			if next == 0 {
				nodes = append(nodes, node{})
				depth = append(depth, depth[at]+1)
				ones = append(ones, ones[at] && bit == 1)
				next = int16(len(nodes) - 1)
				nodes[at].child[bit] = next
			}
			at = int(next)
		}
	}
	for sym := 0; sym < 256; sym++ {
		// 8 copies take exactly as many bytes as the code has bits.
		var eight [8]byte
		for i := range eight {
			eight[i] = byte(sym)
		}
		n := int(hpack.HuffmanEncodeLength(string(eight[:])))
		enc := hpack.AppendHuffmanString(nil, string(eight[:1]))
		var v uint64
		for _, b := range enc {
			v = v<<8 | uint64(b)
		}
		insert(uint32(v>>(8*len(enc)-n)), n, sym)
	}
	insert(1<<30-1, 30, 256) // EOS
	if len(nodes) != 256 {
		// A Huffman code of 257 symbols has 256 inner nodes; anything
		// else means the hpack package changed under us. The tables stay
		// empty (every string fails) rather than decode wrongly.
		return
	}
	for s := range nodes {
		huffPad[s] = ones[s] && depth[s] < 8
		for x := 0; x < 16; x++ {
			at, st := s, huffStep{}
			for i := 3; i >= 0; i-- {
				c := nodes[at].child[x>>uint(i)&1]
				switch {
				case c > 0:
					at = int(c)
				case c == -1-256 || c == 0:
					st.fail = true
				default:
					st.sym, st.emit = uint8(-1-c), true
					at = 0
				}
				if st.fail {
					break
				}
			}
			st.next = uint8(at)
			huffTable[s][x] = st
		}
	}
}

// appendHuffman appends the decoding of src to dst.
func appendHuffman(dst, src []byte) ([]byte, error) {
	state := uint8(0)
	for _, b := range src {
		st := &huffTable[state][b>>4]
		if st.fail {
			return dst, errHuffman
		}
		if st.emit {
			dst = append(dst, st.sym)
		}
		st = &huffTable[st.next][b&0xf]
		if st.fail {
			return dst, errHuffman
		}
		if st.emit {
			dst = append(dst, st.sym)
		}
		state = st.next
	}
	if !huffPad[state] {
		return dst, errHuffman
	}
	return dst, nil
}
