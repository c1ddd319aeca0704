// SPDX-License-Identifier: GPL-3.0-only

package lb

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// DefaultMaglevTableSize is the default Maglev lookup table size: a prime
// comfortably above 100 × the endpoint count of any sane cluster.
const DefaultMaglevTableSize = 65537

// MaxMaglevTableSize bounds the table so a typo cannot ask for gigabytes.
const MaxMaglevTableSize = 1 << 25

// ErrMaglevSize is returned by BuildMaglevTable when size is not a usable prime.
var ErrMaglevSize = errors.New("maglev table size must be a prime > number of backends and <= 33554432")

// BuildMaglevTable builds a Maglev lookup table (Eisenbud et al., NSDI 2016,
// §3.4) of the given prime size. Entry i is the index into names of the
// backend that owns slot i.
//
// Weights are honoured by giving each backend turns in the population loop
// in proportion to its weight (a backend with half the largest weight takes
// a slot every other round), so a backend's share of slots is its weight
// share to within a slot or two. A weight of 0 keeps a backend out of the
// table.
//
// The table depends only on (names, weights, size, seed) and is built with
// a fixed, platform-independent hash: two nodes given the same inputs build
// byte-identical tables. This is the one Maglev implementation shared by the
// L7 picker and the XDP loader; keep it deterministic.
func BuildMaglevTable(names []string, weights []uint32, size uint64, seed uint64) ([]uint32, error) {
	n := len(names)
	if n == 0 {
		return nil, errors.New("maglev: no backends")
	}
	if len(weights) != n {
		return nil, fmt.Errorf("maglev: %d names but %d weights", n, len(weights))
	}
	if size <= uint64(n) || size > MaxMaglevTableSize || !isPrime(size) {
		return nil, fmt.Errorf("maglev: size %d: %w", size, ErrMaglevSize)
	}
	seen := make(map[string]struct{}, n)
	var maxW uint32
	for i, name := range names {
		if _, dup := seen[name]; dup {
			return nil, fmt.Errorf("maglev: duplicate backend name %q", name)
		}
		seen[name] = struct{}{}
		maxW = max(maxW, weights[i])
	}
	if maxW == 0 {
		return nil, errors.New("maglev: all weights are zero")
	}

	// Permutation of backend i is offset_i + j*skip_i (mod size), j = 0,1,...
	// pos[i] is backend i's current permutation entry; stepping by skip
	// mod size walks the permutation without a division per step.
	pos := make([]uint64, n)
	skip := make([]uint64, n)
	credit := make([]uint64, n)
	for i, name := range names {
		h1 := maglevHash(seed, 0x6d61676c65763031, name) // "maglev01"
		h2 := maglevHash(seed, 0x6d61676c65763032, name) // "maglev02"
		pos[i] = h1 % size
		skip[i] = h2%(size-1) + 1
	}

	const empty = ^uint32(0)
	table := make([]uint32, size)
	for i := range table {
		table[i] = empty
	}
	var filled uint64
	for {
		for i := 0; i < n; i++ {
			if weights[i] == 0 {
				continue
			}
			credit[i] += uint64(weights[i])
			if credit[i] < uint64(maxW) {
				continue
			}
			credit[i] -= uint64(maxW)
			// Walk i's permutation to its next free slot.
			c := pos[i]
			for table[c] != empty {
				if c += skip[i]; c >= size {
					c -= size
				}
			}
			table[c] = uint32(i)
			if c += skip[i]; c >= size {
				c -= size
			}
			pos[i] = c
			filled++
			if filled == size {
				return table, nil
			}
		}
	}
}

// maglevHash is a fixed 64-bit hash of (seed, salt, name): FNV-1a over the
// little-endian seed and salt then the name bytes, finished with the
// splitmix64 mixer so offset and skip are well spread even for names that
// differ in one byte. It must never change: tables on different nodes and
// in the XDP maps depend on it.
func maglevHash(seed, salt uint64, name string) uint64 {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], seed)
	binary.LittleEndian.PutUint64(b[8:], salt)
	h := uint64(fnvOffset64)
	for _, c := range b {
		h ^= uint64(c)
		h *= fnvPrime64
	}
	for i := 0; i < len(name); i++ {
		h ^= uint64(name[i])
		h *= fnvPrime64
	}
	return mix64(h)
}

const (
	fnvOffset64 = 14695981039346656037
	fnvPrime64  = 1099511628211
)

// mix64 is the splitmix64 finaliser.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// isPrime reports whether n is prime by trial division (n <= 2^25 here, so
// at most ~3000 divisions).
func isPrime(n uint64) bool {
	if n < 2 {
		return false
	}
	if n%2 == 0 {
		return n == 2
	}
	for d := uint64(3); d*d <= n; d += 2 {
		if n%d == 0 {
			return false
		}
	}
	return true
}

// maglevPicker looks the request key up in a Maglev table built over the
// level's routable endpoints. A health change rebuilds the table, which
// moves little more than the changed endpoint's own keys.
type maglevPicker struct {
	eps   []*Endpoint
	table []uint32
}

func newMaglev(_ *Cluster, s *Spec, eps, _ []*Endpoint) picker {
	names := make([]string, len(eps))
	weights := make([]uint32, len(eps))
	for i, e := range eps {
		names[i], weights[i] = e.addr, e.weight.Load()
	}
	table, err := BuildMaglevTable(names, weights, s.MaglevTableSize, s.MaglevSeed)
	if err != nil {
		// Validate guarantees a prime size above the endpoint count and
		// unique addresses, so this cannot happen; fall back to hashing.
		return &randomPicker{eps: eps}
	}
	return &maglevPicker{eps: eps, table: table}
}

func (p *maglevPicker) pick(key uint64) *Endpoint {
	return p.eps[p.table[key%uint64(len(p.table))]]
}
