// SPDX-License-Identifier: GPL-3.0-only

package conf

import (
	"cmp"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// Problems are reported in schema order, the order CONFIG.md and a
// well-kept file follow: sections as declared in Config, fields as declared
// in their struct, array elements by index, unknown keys after the known
// keys of their table. A stable sort keeps several problems about one key in
// the order they were found.

// keyRank is one path segment's position: the field's declaration index (or
// the array index), then a name to order unknown keys and map keys.
type keyRank struct {
	pos  int
	name string
}

func rankKey(key string) []keyRank {
	var ranks []keyRank
	t := reflect.TypeFor[Config]()
	for key != "" {
		// Next segment: "[i]" or a name up to the next '.' or '['.
		if key[0] == '[' {
			end := strings.IndexByte(key, ']')
			if end < 0 {
				break
			}
			n, _ := strconv.Atoi(key[1:end])
			ranks = append(ranks, keyRank{pos: n})
			key = strings.TrimPrefix(key[end+1:], ".")
			if t != nil && t.Kind() == reflect.Slice {
				t = derefType(t.Elem())
			} else {
				t = nil
			}
			continue
		}
		end := strings.IndexAny(key, ".[")
		if end < 0 {
			end = len(key)
		}
		name := key[:end]
		key = strings.TrimPrefix(key[end:], ".")
		r := keyRank{pos: 1 << 30, name: name}
		var next reflect.Type
		if t != nil && t.Kind() == reflect.Struct {
			for i, f := range fieldsOf(t) {
				if f.key == name {
					r = keyRank{pos: i}
					next = derefType(t.Field(f.index).Type)
					break
				}
			}
		} else if t != nil && t.Kind() == reflect.Map {
			r = keyRank{name: name}
			next = t.Elem()
		}
		ranks = append(ranks, r)
		t = next
	}
	return ranks
}

func derefType(t reflect.Type) reflect.Type {
	if t.Kind() == reflect.Pointer {
		return t.Elem()
	}
	return t
}

func sortProblems(ps []Problem) {
	ranks := make(map[string][]keyRank, len(ps))
	for _, p := range ps {
		if _, ok := ranks[p.Key]; !ok {
			ranks[p.Key] = rankKey(p.Key)
		}
	}
	slices.SortStableFunc(ps, func(a, b Problem) int {
		return slices.CompareFunc(ranks[a.Key], ranks[b.Key], func(x, y keyRank) int {
			return cmp.Or(cmp.Compare(x.pos, y.pos), strings.Compare(x.name, y.name))
		})
	})
}
