// SPDX-License-Identifier: GPL-3.0-only

package conf

import (
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The decoder walks the raw map koanf parsed from TOML against the Go structs,
// field by field through their koanf tags. It does what koanf's Unmarshal does
// not: every key without a field is an error, every value of the wrong type is
// an error with its full key path, and each struct (including every element of
// an array of tables) gets its defaults before the file's keys are laid over
// it. It never stops at the first problem.

// defaulter is implemented by every schema struct (see config.go).
type defaulter interface{ setDefaults() }

var (
	durationType = reflect.TypeFor[Duration]()
	sizeType     = reflect.TypeFor[Size]()
)

type decoder struct {
	file     string
	problems []Problem
	// present records the key path of every key found in the file.
	present map[string]bool
}

func (d *decoder) addf(key, format string, args ...any) {
	d.problems = append(d.problems, Problem{File: d.file, Key: key, Msg: fmt.Sprintf(format, args...)})
}

// field is one koanf-tagged struct field.
type field struct {
	key   string
	index int
}

var fieldCache sync.Map // reflect.Type -> []field

// fieldsOf lists t's koanf-tagged fields in declaration order.
func fieldsOf(t reflect.Type) []field {
	if f, ok := fieldCache.Load(t); ok {
		return f.([]field)
	}
	var fs []field
	for i := range t.NumField() {
		tag := t.Field(i).Tag.Get("koanf")
		if tag == "" || tag == "-" {
			continue
		}
		fs = append(fs, field{key: tag, index: i})
	}
	fieldCache.Store(t, fs)
	return fs
}

func joinKey(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// decodeStruct applies v's defaults, then the keys of raw. v is addressable.
func (d *decoder) decodeStruct(path string, raw map[string]any, v reflect.Value) {
	if df, ok := v.Addr().Interface().(defaulter); ok {
		df.setDefaults()
	}
	fs := fieldsOf(v.Type())
	known := make(map[string]bool, len(fs))
	for _, f := range fs {
		known[f.key] = true
		fv := v.Field(f.index)
		val, ok := raw[f.key]
		if !ok {
			// Absent sub-tables still get their defaults; absent
			// optional tables (pointers) stay nil.
			if fv.Kind() == reflect.Struct && fv.Type() != durationType {
				d.decodeStruct(joinKey(path, f.key), nil, fv)
			}
			continue
		}
		d.decodeValue(joinKey(path, f.key), val, fv)
	}
	var unknown []string
	for k := range raw {
		if !known[k] {
			unknown = append(unknown, k)
		}
	}
	sort.Strings(unknown)
	for _, k := range unknown {
		msg := "unknown key"
		if s := suggest(k, fs); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s)
		}
		d.addf(joinKey(path, k), "%s", msg)
	}
}

// decodeValue stores raw into v (addressable), or records why it cannot.
func (d *decoder) decodeValue(path string, raw any, v reflect.Value) {
	d.present[path] = true
	switch v.Type() {
	case durationType:
		s, ok := raw.(string)
		if !ok {
			d.addf(path, "expected a duration string such as \"5s\", got %s", tomlType(raw))
			return
		}
		dur, err := ParseDuration(s)
		if err != nil {
			d.addf(path, "%v", err)
			return
		}
		v.SetInt(int64(dur))
		return
	case sizeType:
		switch x := raw.(type) {
		case int64:
			if x < 0 {
				d.addf(path, "size must not be negative, got %d", x)
				return
			}
			v.SetInt(x)
		case string:
			sz, err := ParseSize(x)
			if err != nil {
				d.addf(path, "%v", err)
				return
			}
			v.SetInt(int64(sz))
		default:
			d.addf(path, "expected a size (integer bytes or a string such as \"64KiB\"), got %s", tomlType(raw))
		}
		return
	}

	switch v.Kind() {
	case reflect.String:
		s, ok := raw.(string)
		if !ok {
			d.addf(path, "expected a string, got %s", tomlType(raw))
			return
		}
		v.SetString(s)
	case reflect.Bool:
		b, ok := raw.(bool)
		if !ok {
			d.addf(path, "expected a boolean, got %s", tomlType(raw))
			return
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, ok := raw.(int64)
		if !ok {
			d.addf(path, "expected an integer, got %s", tomlType(raw))
			return
		}
		if v.OverflowInt(n) {
			d.addf(path, "integer %d is out of range", n)
			return
		}
		v.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, ok := raw.(int64)
		if !ok {
			d.addf(path, "expected an integer, got %s", tomlType(raw))
			return
		}
		if n < 0 || v.OverflowUint(uint64(n)) {
			d.addf(path, "integer %d is out of range (must not be negative)", n)
			return
		}
		v.SetUint(uint64(n))
	case reflect.Float32, reflect.Float64:
		switch x := raw.(type) {
		case float64:
			if math.IsNaN(x) || math.IsInf(x, 0) {
				d.addf(path, "expected a finite number, got %v", x)
				return
			}
			v.SetFloat(x)
		case int64:
			v.SetFloat(float64(x))
		default:
			d.addf(path, "expected a number, got %s", tomlType(raw))
		}
	case reflect.Pointer:
		elem := reflect.New(v.Type().Elem())
		if elem.Elem().Kind() == reflect.Struct {
			m, ok := raw.(map[string]any)
			if !ok {
				d.addf(path, "expected a table, got %s", tomlType(raw))
				return
			}
			d.decodeStruct(path, m, elem.Elem())
			v.Set(elem)
			return
		}
		before := len(d.problems)
		d.decodeValue(path, raw, elem.Elem())
		if len(d.problems) == before {
			v.Set(elem)
		}
	case reflect.Struct:
		m, ok := raw.(map[string]any)
		if !ok {
			d.addf(path, "expected a table, got %s", tomlType(raw))
			d.decodeStruct(path, nil, v) // keep the defaults
			return
		}
		d.decodeStruct(path, m, v)
	case reflect.Slice:
		rv := reflect.ValueOf(raw)
		if raw == nil || rv.Kind() != reflect.Slice {
			d.addf(path, "expected an array, got %s", tomlType(raw))
			return
		}
		out := reflect.MakeSlice(v.Type(), rv.Len(), rv.Len())
		for i := range rv.Len() {
			d.decodeValue(path+"["+strconv.Itoa(i)+"]", rv.Index(i).Interface(), out.Index(i))
		}
		v.Set(out)
	case reflect.Map:
		m, ok := raw.(map[string]any)
		if !ok {
			d.addf(path, "expected a table, got %s", tomlType(raw))
			return
		}
		out := reflect.MakeMapWithSize(v.Type(), len(m))
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			ev := reflect.New(v.Type().Elem()).Elem()
			before := len(d.problems)
			d.decodeValue(joinKey(path, k), m[k], ev)
			if len(d.problems) == before {
				out.SetMapIndex(reflect.ValueOf(k), ev)
			}
		}
		v.Set(out)
	default:
		// A schema field of a kind the decoder does not know is a bug here,
		// not in the file; say so rather than panic.
		d.addf(path, "internal error: unsupported field type %s", v.Type())
	}
}

// tomlType names the TOML type of a parsed value for error messages.
func tomlType(v any) string {
	switch x := v.(type) {
	case string:
		return fmt.Sprintf("string %q", x)
	case int64:
		return fmt.Sprintf("integer %d", x)
	case float64:
		return fmt.Sprintf("float %v", x)
	case bool:
		return fmt.Sprintf("boolean %v", x)
	case map[string]any:
		return "a table"
	case time.Time:
		return "a datetime"
	case nil:
		return "nothing"
	}
	switch reflect.ValueOf(v).Kind() {
	case reflect.Slice:
		return "an array"
	case reflect.Map:
		return "a table"
	}
	// go-toml's LocalDate, LocalTime and LocalDateTime.
	if strings.HasPrefix(reflect.TypeOf(v).String(), "toml.Local") {
		return "a datetime"
	}
	return reflect.TypeOf(v).String()
}

// suggest returns the known key closest to k, if one is close enough to be a
// likely typo.
func suggest(k string, fs []field) string {
	best, bestDist := "", 3
	for _, f := range fs {
		if d := editDistance(k, f.key); d < bestDist {
			best, bestDist = f.key, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
