// SPDX-License-Identifier: GPL-3.0-only

// Package flame reads a pprof CPU profile (gzipped protobuf, as served by
// /debug/pprof/profile) without dependencies and renders it as a
// self-contained HTML flame graph.
package flame

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Profile is the part of a pprof profile a flame graph needs.
type Profile struct {
	Unit     string   // unit of Value ("nanoseconds" for CPU)
	Samples  []Sample // stacks with their values
	Duration int64    // profile duration in nanoseconds, if recorded
}

// Sample is one stack, root first, with its value.
type Sample struct {
	Stack []string
	Value int64
}

// Total sums the values of all samples.
func (p *Profile) Total() int64 {
	var t int64
	for _, s := range p.Samples {
		t += s.Value
	}
	return t
}

// Parse decodes a pprof profile, gzipped or not.
func Parse(data []byte) (*Profile, error) {
	if len(data) > 2 && data[0] == 0x1f && data[1] == 0x8b {
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("gunzip: %w", err)
		}
		if data, err = io.ReadAll(io.LimitReader(zr, 1<<30)); err != nil {
			return nil, fmt.Errorf("gunzip: %w", err)
		}
	}
	var (
		strs        []string
		sampleTypes [][2]int64 // type, unit string indexes
		rawSamples  []rawSample
		locations   = map[uint64][]uint64{} // location id -> function ids, innermost first
		functions   = map[uint64]int64{}    // function id -> name string index
		duration    int64
	)
	err := fields(data, func(num int, wt int, v uint64, b []byte) error {
		switch num {
		case 1: // sample_type
			var vt [2]int64
			err := fields(b, func(n, _ int, v uint64, _ []byte) error {
				if n == 1 || n == 2 {
					vt[n-1] = int64(v)
				}
				return nil
			})
			sampleTypes = append(sampleTypes, vt)
			return err
		case 2: // sample
			var s rawSample
			err := fields(b, func(n, wt int, v uint64, b []byte) error {
				switch n {
				case 1:
					return appendPacked(&s.locs, wt, v, b)
				case 2:
					var vals []uint64
					if err := appendPacked(&vals, wt, v, b); err != nil {
						return err
					}
					for _, x := range vals {
						s.values = append(s.values, int64(x))
					}
				}
				return nil
			})
			rawSamples = append(rawSamples, s)
			return err
		case 4: // location
			var id uint64
			var funcs []uint64
			err := fields(b, func(n, _ int, v uint64, b []byte) error {
				switch n {
				case 1:
					id = v
				case 4: // line
					return fields(b, func(n, _ int, v uint64, _ []byte) error {
						if n == 1 {
							funcs = append(funcs, v)
						}
						return nil
					})
				}
				return nil
			})
			locations[id] = funcs
			return err
		case 5: // function
			var id uint64
			var name int64
			err := fields(b, func(n, _ int, v uint64, _ []byte) error {
				switch n {
				case 1:
					id = v
				case 2:
					name = int64(v)
				}
				return nil
			})
			functions[id] = name
			return err
		case 6: // string_table
			strs = append(strs, string(b))
		case 10: // duration_nanos
			duration = int64(v)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("decode profile: %w", err)
	}
	str := func(i int64) string {
		if i >= 0 && int(i) < len(strs) {
			return strs[i]
		}
		return "?"
	}
	// Use the CPU-time value when there is one, else the last value.
	valueIdx := len(sampleTypes) - 1
	for i, vt := range sampleTypes {
		if str(vt[0]) == "cpu" {
			valueIdx = i
		}
	}
	if valueIdx < 0 {
		return nil, errors.New("decode profile: no sample types")
	}
	p := &Profile{Unit: str(sampleTypes[valueIdx][1]), Duration: duration}
	for _, rs := range rawSamples {
		if valueIdx >= len(rs.values) {
			continue
		}
		var stack []string
		// location_id[0] is the leaf; within a location, line[0] is the
		// innermost inlined function. Build root first.
		for i := len(rs.locs) - 1; i >= 0; i-- {
			funcs := locations[rs.locs[i]]
			if len(funcs) == 0 {
				stack = append(stack, fmt.Sprintf("0x%x", rs.locs[i]))
				continue
			}
			for j := len(funcs) - 1; j >= 0; j-- {
				stack = append(stack, str(functions[funcs[j]]))
			}
		}
		p.Samples = append(p.Samples, Sample{Stack: stack, Value: rs.values[valueIdx]})
	}
	return p, nil
}

type rawSample struct {
	locs   []uint64
	values []int64
}

// fields walks the protobuf fields of msg. For varint fields v is the value;
// for length-delimited fields b is the payload.
func fields(msg []byte, f func(num, wireType int, v uint64, b []byte) error) error {
	for len(msg) > 0 {
		key, n := uvarint(msg)
		if n <= 0 {
			return errors.New("bad field key")
		}
		msg = msg[n:]
		num, wt := int(key>>3), int(key&7)
		var v uint64
		var b []byte
		switch wt {
		case 0:
			v, n = uvarint(msg)
			if n <= 0 {
				return errors.New("bad varint")
			}
			msg = msg[n:]
		case 1:
			if len(msg) < 8 {
				return errors.New("short fixed64")
			}
			msg = msg[8:]
		case 2:
			l, n := uvarint(msg)
			if n <= 0 || uint64(len(msg)-n) < l {
				return errors.New("bad length")
			}
			b = msg[n : n+int(l)]
			msg = msg[n+int(l):]
		case 5:
			if len(msg) < 4 {
				return errors.New("short fixed32")
			}
			msg = msg[4:]
		default:
			return fmt.Errorf("wire type %d", wt)
		}
		if err := f(num, wt, v, b); err != nil {
			return err
		}
	}
	return nil
}

// appendPacked appends a repeated varint field, packed or not.
func appendPacked(dst *[]uint64, wt int, v uint64, b []byte) error {
	if wt == 0 {
		*dst = append(*dst, v)
		return nil
	}
	for len(b) > 0 {
		x, n := uvarint(b)
		if n <= 0 {
			return errors.New("bad packed varint")
		}
		*dst = append(*dst, x)
		b = b[n:]
	}
	return nil
}

func uvarint(b []byte) (uint64, int) {
	var x uint64
	for i := 0; i < len(b) && i < 10; i++ {
		x |= uint64(b[i]&0x7f) << (7 * i)
		if b[i] < 0x80 {
			return x, i + 1
		}
	}
	return 0, 0
}

// shortName trims the module path off a Go function name for display.
func shortName(name string) string {
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		return name[i+1:]
	}
	return name
}
