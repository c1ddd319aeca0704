// SPDX-License-Identifier: GPL-3.0-only

package lb

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"testing"
)

func maglevNames(n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("10.0.0.%d:80", i+1)
	}
	return names
}

func tableDigest(t []uint32) string {
	h := sha256.New()
	var b [4]byte
	for _, v := range t {
		binary.LittleEndian.PutUint32(b[:], v)
		h.Write(b[:])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// The golden digest pins the table layout: the XDP maps on every node and
// the L7 picker must agree, so any change here is a fleet-wide flow reshuffle.
const maglevGolden = "02b9ee4cc4b6f40b36b4c67184ec4948b20012a975c250e768b3d2b51b5daf01"

func TestMaglevDeterministic(t *testing.T) {
	names := maglevNames(5)
	weights := []uint32{1, 2, 3, 1, 1}
	a, err := BuildMaglevTable(names, weights, DefaultMaglevTableSize, 42)
	if err != nil {
		t.Fatal(err)
	}
	b, err := BuildMaglevTable(append([]string(nil), names...), append([]uint32(nil), weights...), DefaultMaglevTableSize, 42)
	if err != nil {
		t.Fatal(err)
	}
	da, db := tableDigest(a), tableDigest(b)
	if da != db {
		t.Fatalf("two builds differ: %s vs %s", da, db)
	}
	if da != maglevGolden {
		t.Fatalf("golden digest changed: got %s want %s", da, maglevGolden)
	}
	c, _ := BuildMaglevTable(names, weights, DefaultMaglevTableSize, 43)
	if tableDigest(c) == da {
		t.Fatal("seed does not change the table")
	}
}

func TestMaglevWeightShare(t *testing.T) {
	for _, tc := range []struct {
		weights []uint32
		size    uint64
	}{
		{[]uint32{1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, DefaultMaglevTableSize},
		{[]uint32{5, 1, 1}, DefaultMaglevTableSize},
		{[]uint32{1, 2, 3, 4, 5, 6, 7, 8}, DefaultMaglevTableSize},
		{[]uint32{100, 1, 50, 0, 25}, 655373},
		{[]uint32{3, 3, 3}, 251},
	} {
		names := maglevNames(len(tc.weights))
		table, err := BuildMaglevTable(names, tc.weights, tc.size, 7)
		if err != nil {
			t.Fatal(err)
		}
		counts := make([]int, len(names))
		for _, v := range table {
			counts[v]++
		}
		var sum uint32
		for _, w := range tc.weights {
			sum += w
		}
		// Absolute deviation in points of share, and relative to the
		// endpoint's own share: both within 1%.
		worst, worstRel := 0.0, 0.0
		for i, w := range tc.weights {
			want := float64(w) / float64(sum)
			got := float64(counts[i]) / float64(len(table))
			worst = max(worst, math.Abs(got-want))
			if w > 0 {
				worstRel = max(worstRel, math.Abs(got-want)/want)
			}
		}
		t.Logf("weights %v size %d: worst share deviation %.5f points, %.4f%% of own share", tc.weights, tc.size, worst*100, worstRel*100)
		if worst > 0.01 || worstRel > 0.01 {
			t.Errorf("weights %v: share deviation %.4f (relative %.4f) > 1%%", tc.weights, worst, worstRel)
		}
	}
}

// Removing one of N backends must move little more than the removed
// backend's own 1/N of keys. The Maglev paper shows the excess grows as the
// table size M shrinks relative to N (measured at M = 65537: mean ×N is
// 1.00 at N=3, 1.06 at N=20, 1.22 at N=50). We assert, over every choice of
// removed backend (sampled), mean ≤ 1.2/N and worst ≤ 1.3/N with M/N ≥ 3000.
func TestMaglevRemovalDisruption(t *testing.T) {
	for _, tc := range []struct {
		n    int
		size uint64
	}{{3, DefaultMaglevTableSize}, {5, DefaultMaglevTableSize}, {10, DefaultMaglevTableSize}, {20, DefaultMaglevTableSize}, {50, 655373}} {
		n, size := tc.n, tc.size
		names := maglevNames(n)
		weights := make([]uint32, n)
		for i := range weights {
			weights[i] = 1
		}
		before, err := BuildMaglevTable(names, weights, size, 1)
		if err != nil {
			t.Fatal(err)
		}
		// Remove each backend in turn (a sample of 10 for large N: the
		// builds are the slow part under -race).
		worst, total, runs := 0.0, 0.0, 0
		for r := 0; r < n; r += max(1, n/10) {
			runs++
			rest := append(append([]string(nil), names[:r]...), names[r+1:]...)
			after, err := BuildMaglevTable(rest, weights[:n-1], size, 1)
			if err != nil {
				t.Fatal(err)
			}
			// newIndex maps a backend's index before to its index after.
			newIndex := make([]uint32, n)
			for i := range newIndex {
				newIndex[i] = uint32(i)
				if i > r {
					newIndex[i]--
				} else if i == r {
					newIndex[i] = ^uint32(0)
				}
			}
			moved := 0
			for i, b := range before {
				if newIndex[b] != after[i] {
					moved++
				}
			}
			frac := float64(moved) / float64(len(before))
			worst = max(worst, frac)
			total += frac
		}
		mean := total / float64(runs)
		t.Logf("N=%d M=%d: removing one moves mean %.4f, worst %.4f of keys (1/N = %.4f; mean×N %.3f, worst×N %.3f)",
			n, size, mean, worst, 1/float64(n), mean*float64(n), worst*float64(n))
		if mean > 1.2/float64(n) || worst > 1.3/float64(n) {
			t.Errorf("N=%d: removal moved mean %.4f worst %.4f of keys", n, mean, worst)
		}
	}
}

func TestMaglevErrors(t *testing.T) {
	for _, tc := range []struct {
		names   []string
		weights []uint32
		size    uint64
	}{
		{nil, nil, 7},
		{[]string{"a"}, []uint32{1, 2}, 7},
		{[]string{"a", "b"}, []uint32{1, 1}, 8},
		{[]string{"a", "b"}, []uint32{1, 1}, 2},
		{[]string{"a", "a"}, []uint32{1, 1}, 7},
		{[]string{"a", "b"}, []uint32{0, 0}, 7},
		{[]string{"a"}, []uint32{1}, MaxMaglevTableSize + 1},
	} {
		if _, err := BuildMaglevTable(tc.names, tc.weights, tc.size, 0); err == nil {
			t.Errorf("%v %v %d: want error", tc.names, tc.weights, tc.size)
		}
	}
}

// FuzzBuildMaglevTable checks the table's invariants for arbitrary
// inputs: every slot names a backend with a non-zero weight, and every
// backend due two or more slots by its weight share owns at least one.
func FuzzBuildMaglevTable(f *testing.F) {
	f.Add(uint8(3), uint32(1), uint32(5), uint64(251), uint64(0))
	f.Add(uint8(10), uint32(0), uint32(2), uint64(65537), uint64(99))
	f.Fuzz(func(t *testing.T, n uint8, w0, w1 uint32, size, seed uint64) {
		if n == 0 || n > 64 || size > 1<<20 {
			t.Skip()
		}
		names := maglevNames(int(n))
		weights := make([]uint32, n)
		for i := range weights {
			weights[i] = []uint32{w0 % 1000, w1 % 1000}[i%2]
		}
		table, err := BuildMaglevTable(names, weights, size, seed)
		if err != nil {
			return
		}
		if uint64(len(table)) != size {
			t.Fatalf("len %d, want %d", len(table), size)
		}
		owned := make([]bool, n)
		for _, b := range table {
			if int(b) >= int(n) || weights[b] == 0 {
				t.Fatalf("slot owned by backend %d (weight %d)", b, weights[b])
			}
			owned[b] = true
		}
		var sum float64
		for _, w := range weights {
			sum += float64(w)
		}
		for i, w := range weights {
			// A backend due two or more slots by weight must get one.
			if !owned[i] && float64(size)*float64(w)/sum >= 2 {
				t.Fatalf("backend %d with weight %d owns no slot", i, w)
			}
		}
	})
}

// PickHash: the same key picks the same endpoint from two clusters built
// alike (two nodes), keys spread over the endpoints, and a down endpoint
// only moves its own keys.
func TestPickHash(t *testing.T) {
	a := mustCluster(t, Spec{Algorithm: Maglev, Endpoints: endpoints(1, 1, 1)})
	b := mustCluster(t, Spec{Algorithm: Maglev, Endpoints: endpoints(1, 1, 1)})
	pick := func(c *Cluster, key []byte) *Endpoint {
		p, err := c.PickHash(key, nil)
		if err != nil {
			t.Fatal(err)
		}
		return p.Endpoint
	}
	seen := map[string]int{}
	before := map[int]string{}
	for i := range 3000 {
		key := []byte(fmt.Sprintf("dcid-%08d", i))
		ea, eb := pick(a, key), pick(b, key)
		if ea.Address() != eb.Address() || pick(a, key) != ea {
			t.Fatalf("key %d: %s vs %s", i, ea.Address(), eb.Address())
		}
		seen[ea.Address()]++
		before[i] = ea.Address()
	}
	for addr, n := range seen {
		if n < 800 {
			t.Errorf("%s got %d of 3000 keys", addr, n)
		}
	}
	down := a.Endpoints()[0]
	setDown(a, down, true)
	for i := range 3000 {
		key := []byte(fmt.Sprintf("dcid-%08d", i))
		e := pick(a, key)
		if e == down {
			t.Fatalf("key %d picked the down endpoint", i)
		}
		if before[i] != down.Address() && e.Address() != before[i] {
			t.Fatalf("key %d moved from %s to %s though its endpoint is up", i, before[i], e.Address())
		}
	}
}
