// SPDX-License-Identifier: GPL-3.0-only

package conf

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

const (
	second = time.Second
	minute = time.Minute
	hour   = time.Hour
)

// Duration is a time.Duration written in TOML as a string such as "250ms",
// "5s", "1m30s" or "1h" (units ns, us, ms, s, m, h). Integers are rejected:
// a bare number has no unit.
type Duration time.Duration

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// String formats d like time.Duration does ("1m30s").
func (d Duration) String() string { return time.Duration(d).String() }

// ParseDuration parses a non-negative duration string such as "250ms".
func ParseDuration(s string) (Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q (use a number with a unit: ns, us, ms, s, m, h, e.g. \"250ms\")", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("invalid duration %q: must not be negative", s)
	}
	return Duration(d), nil
}

// Size is a byte count, written in TOML as an integer number of bytes or as a
// string with a binary unit: "512B", "64KiB", "1MiB", "1GiB", "1TiB".
type Size int64

// Byte-size units.
const (
	KiB Size = 1 << 10
	MiB Size = 1 << 20
	GiB Size = 1 << 30
	TiB Size = 1 << 40
)

// sizeUnits lists the units smallest first; "B" comes last so that the
// suffix match in ParseSize tries "KiB" before "B".
var sizeUnits = []struct {
	suffix string
	mult   Size
}{
	{"KiB", KiB}, {"MiB", MiB}, {"GiB", GiB}, {"TiB", TiB}, {"B", 1},
}

// ParseSize parses a non-negative size such as "64KiB" or "1024".
func ParseSize(s string) (Size, error) {
	bad := func() (Size, error) {
		return 0, fmt.Errorf("invalid size %q (use an integer number of bytes or a number with a unit: B, KiB, MiB, GiB, TiB, e.g. \"64KiB\")", s)
	}
	t := strings.TrimSpace(s)
	mult := Size(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(t, u.suffix) {
			t = strings.TrimSpace(strings.TrimSuffix(t, u.suffix))
			mult = u.mult
			break
		}
	}
	if t == "" || t[0] == '+' || t[0] == '-' {
		return bad()
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil {
		return bad()
	}
	if n > int64(1<<63-1)/int64(mult) {
		return 0, fmt.Errorf("invalid size %q: too large", s)
	}
	return Size(n) * mult, nil
}

// String formats s with the largest binary unit that divides it exactly
// ("64KiB", "1MiB", "1000B").
func (s Size) String() string {
	for i := len(sizeUnits) - 1; i >= 0; i-- {
		if u := sizeUnits[i]; s != 0 && u.mult > 1 && s%u.mult == 0 {
			return strconv.FormatInt(int64(s/u.mult), 10) + u.suffix
		}
	}
	return strconv.FormatInt(int64(s), 10) + "B"
}

// Problem is one thing wrong with a config file.
type Problem struct {
	// File is the name the config was loaded from.
	File string
	// Key is the path of the offending key, such as
	// "listeners[0].routes[1].cluster"; "" for problems with the file as a
	// whole (such as TOML syntax errors).
	Key string
	// Msg says what is wrong.
	Msg string
}

// String formats p as "FILE: key.path: msg" (or "FILE: msg" without a key).
func (p Problem) String() string {
	if p.Key == "" {
		return p.File + ": " + p.Msg
	}
	return p.File + ": " + p.Key + ": " + p.Msg
}

// ValidationError carries every problem found in a config, not just the first.
type ValidationError struct {
	Problems []Problem
}

// Error joins the problems, one per line.
func (e *ValidationError) Error() string {
	var b strings.Builder
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(p.String())
	}
	return b.String()
}

// Problems returns the problems carried by err when it is (or wraps) a
// *ValidationError, and nil otherwise.
func Problems(err error) []Problem {
	var ve *ValidationError
	if errors.As(err, &ve) {
		return ve.Problems
	}
	return nil
}
