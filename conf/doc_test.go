// SPDX-License-Identifier: GPL-3.0-only

package conf

import (
	"bufio"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"

	gotoml "github.com/pelletier/go-toml/v2"
)

// These tests keep the three descriptions of the schema in step: the Go
// structs (koanf tags and setDefaults), the doc comment on each field, and
// CONFIG.md. A key added, renamed or re-defaulted in one place and not the
// others fails here.

// docKey is one schema key as the code describes it.
type docKey struct {
	section string // "[listeners.timeouts]", "[[clusters]]", "" for the top level
	key     string // "header_read"
	typ     string // "duration", "string", ...
	table   bool   // a sub-table or array of tables: documented by its own section
	doc     string // the field's doc comment, one line
	def     string // the literal after "Default:", "" when none
	field   reflect.StructField
	owner   reflect.Type
}

// fieldDocs reads the doc comments of every struct field in config.go.
func fieldDocs(t *testing.T) map[string]map[string]string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "config.go", nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]map[string]string)
	ast.Inspect(f, func(n ast.Node) bool {
		ts, ok := n.(*ast.TypeSpec)
		if !ok {
			return true
		}
		st, ok := ts.Type.(*ast.StructType)
		if !ok {
			return true
		}
		m := make(map[string]string)
		for _, fld := range st.Fields.List {
			for _, name := range fld.Names {
				m[name.Name] = strings.Join(strings.Fields(fld.Doc.Text()), " ")
			}
		}
		out[ts.Name.Name] = m
		return false
	})
	return out
}

var defaultRE = regexp.MustCompile(`Default: (.*)\.$`)

// schemaKeys walks Config by reflection and lists every key with its doc.
func schemaKeys(t *testing.T) []docKey {
	t.Helper()
	docs := fieldDocs(t)
	var keys []docKey
	var walk func(section string, rt reflect.Type)
	walk = func(section string, rt reflect.Type) {
		for _, f := range fieldsOf(rt) {
			sf := rt.Field(f.index)
			ft := derefType(sf.Type)
			k := docKey{section: section, key: f.key, field: sf, owner: rt, typ: tomlTypeName(sf.Type)}
			k.doc = docs[rt.Name()][sf.Name]
			if m := defaultRE.FindStringSubmatch(k.doc); m != nil {
				k.def = m[1]
				k.doc = strings.TrimSpace(strings.TrimSuffix(k.doc, m[0]))
			}
			sub := strings.Trim(section, "[]")
			if sub != "" {
				sub += "."
			}
			sub += f.key
			switch {
			case ft.Kind() == reflect.Struct && ft != durationType:
				k.table = true
				keys = append(keys, k)
				walk("["+sub+"]", ft)
			case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
				k.table = true
				keys = append(keys, k)
				walk("[["+sub+"]]", ft.Elem())
			default:
				keys = append(keys, k)
			}
		}
	}
	walk("", reflect.TypeFor[Config]())
	return keys
}

// tomlTypeName is the type as CONFIG.md names it.
func tomlTypeName(t reflect.Type) string {
	switch t {
	case durationType:
		return "duration"
	case sizeType:
		return "size"
	}
	switch t.Kind() {
	case reflect.Pointer:
		return tomlTypeName(t.Elem())
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int64, reflect.Uint64:
		return "integer"
	case reflect.Float64:
		return "float"
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Struct {
			return "array of tables"
		}
		return "array of " + tomlTypeName(t.Elem()) + "s"
	case reflect.Map:
		return "table of " + tomlTypeName(t.Elem()) + "s"
	case reflect.Struct:
		return "table"
	}
	return t.String()
}

// TestFieldDocs: every field has a doc comment; every scalar field names its
// default or says it is required; and the default named in the comment is
// the one setDefaults applies.
func TestFieldDocs(t *testing.T) {
	for _, k := range schemaKeys(t) {
		name := k.owner.Name() + "." + k.field.Name
		if k.doc == "" {
			t.Errorf("%s: no doc comment", name)
			continue
		}
		if k.table {
			continue
		}
		if k.def == "" {
			if !strings.Contains(k.doc, "required") {
				t.Errorf("%s: doc comment names no default and does not say the key is required", name)
			}
			continue
		}
		if k.def == "inherit" || k.def == "auto" {
			// Computed from other keys during validation.
			continue
		}
		// Decode the documented literal as the file would, and compare it
		// with what setDefaults put there.
		d := &decoder{file: "doc", present: map[string]bool{}}
		var raw map[string]any
		if err := gotoml.Unmarshal([]byte("v = "+k.def), &raw); err != nil {
			t.Errorf("%s: default %q is not a TOML value: %v", name, k.def, err)
			continue
		}
		got := reflect.New(k.field.Type).Elem()
		d.decodeValue("v", raw["v"], got)
		if len(d.problems) > 0 {
			t.Errorf("%s: documented default %s does not decode: %v", name, k.def, d.problems)
			continue
		}
		owner := reflect.New(k.owner)
		owner.Interface().(defaulter).setDefaults()
		want := owner.Elem().FieldByIndex(k.field.Index)
		if !equalDefault(got, want) {
			t.Errorf("%s: doc comment says default %s, setDefaults gives %v", name, k.def, want.Interface())
		}
	}
}

func equalDefault(a, b reflect.Value) bool {
	if (a.Kind() == reflect.Slice || a.Kind() == reflect.Map) && a.Len() == 0 && b.Len() == 0 {
		return true
	}
	return reflect.DeepEqual(a.Interface(), b.Interface())
}

// mdRow matches a key row of a CONFIG.md table: | `key` | type | default | meaning |
var mdRow = regexp.MustCompile("^\\| `([a-z0-9_]+)` \\| ([^|]+) \\| (.*?) \\| (.+) \\|$")

// mdSection matches a section heading: ### `[listeners.timeouts]`
var mdSection = regexp.MustCompile("^#+ `(\\[\\[?[a-z0-9_.]+\\]\\]?)`")

type mdKey struct{ typ, def string }

func readConfigMD(t *testing.T) map[string]map[string]mdKey {
	t.Helper()
	f, err := os.Open("../CONFIG.md")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	out := make(map[string]map[string]mdKey)
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if m := mdSection.FindStringSubmatch(line); m != nil {
			section = m[1]
			if out[section] == nil {
				out[section] = make(map[string]mdKey)
			}
			continue
		}
		if strings.HasPrefix(line, "#") {
			section = ""
			continue
		}
		if m := mdRow.FindStringSubmatch(line); m != nil && section == "" {
			t.Errorf("CONFIG.md: row for `%s` outside a section table", m[1])
		} else if m != nil {
			if _, dup := out[section][m[1]]; dup {
				t.Errorf("CONFIG.md: %s %s documented twice", section, m[1])
			}
			out[section][m[1]] = mdKey{typ: strings.TrimSpace(m[2]), def: strings.TrimSpace(m[3])}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestConfigMDCoversEveryKey: every key of the schema has a row in its
// section of CONFIG.md with the right type and default, and CONFIG.md
// documents no key the schema does not have.
func TestConfigMDCoversEveryKey(t *testing.T) {
	md := readConfigMD(t)
	want := make(map[string]map[string]bool)
	for _, k := range schemaKeys(t) {
		if k.section == "" {
			// Top-level keys are sections; each needs its heading.
			sec := "[" + k.key + "]"
			if k.field.Type.Kind() == reflect.Slice {
				sec = "[" + sec + "]"
			}
			if _, ok := md[sec]; !ok {
				t.Errorf("CONFIG.md: no section heading ### `%s`", sec)
			}
			continue
		}
		if want[k.section] == nil {
			want[k.section] = make(map[string]bool)
		}
		want[k.section][k.key] = true
		row, ok := md[k.section][k.key]
		if !ok {
			t.Errorf("CONFIG.md: section `%s` has no row for `%s`", k.section, k.key)
			continue
		}
		if row.typ != k.typ {
			t.Errorf("CONFIG.md: %s %s: type %q, want %q", k.section, k.key, row.typ, k.typ)
		}
		def := "`" + k.def + "`"
		switch {
		case k.table:
			def = "—"
		case k.def == "":
			def = "required"
		}
		if !strings.HasPrefix(row.def, def) {
			t.Errorf("CONFIG.md: %s %s: default %q, want %q", k.section, k.key, row.def, def)
		}
	}
	for sec, rows := range md {
		for key := range rows {
			if !want[sec][key] {
				t.Errorf("CONFIG.md: section `%s` documents `%s`, which the schema does not have", sec, key)
			}
		}
	}
}
