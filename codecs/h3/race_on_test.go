// SPDX-License-Identifier: GPL-3.0-only

//go:build race

package h3

// raceEnabled: under the race detector sync.Pool drops a quarter of what is
// put back, on purpose, so hpack's pooled Huffman buffer is allocated anew
// now and then and allocation counts say nothing about our code.
const raceEnabled = true
