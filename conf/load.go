// SPDX-License-Identifier: GPL-3.0-only

package conf

import (
	_ "embed"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/knadh/koanf/parsers/toml/v2"
	"github.com/knadh/koanf/providers/rawbytes"
	"github.com/knadh/koanf/v2"
	gotoml "github.com/pelletier/go-toml/v2"
)

//go:embed default.toml
var defaultTOML []byte

// DefaultTOML returns the embedded default config: the admin listener on
// 127.0.0.1:9901 and a listener "web" on 127.0.0.1:8080 proxying to cluster
// "demo", whose one endpoint is the built-in demo upstream on 127.0.0.1:9000.
// The caller owns the returned slice.
func DefaultTOML() []byte {
	return append([]byte(nil), defaultTOML...)
}

// Load reads and parses the config file at path. A file that cannot be read
// yields the wrapped os error; a file with content problems yields a
// *ValidationError naming path in every Problem.
func Load(path string) (*Snapshot, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, data)
}

// Parse parses, defaults and validates the TOML in data; name is used as the
// Problem.File and Snapshot.Source. On any problem it returns a
// *ValidationError with all of them and no snapshot.
func Parse(name string, data []byte) (*Snapshot, error) {
	raw, err := parseTOML(name, data)
	if err != nil {
		return nil, err
	}
	return parseRaw(name, raw, nil)
}

// parseTOML reads data into koanf's nested map; a syntax error is a
// *ValidationError.
func parseTOML(name string, data []byte) (map[string]any, error) {
	// A delimiter that cannot occur in a TOML key: keys are never split, so
	// a header name such as "x.y" in a route survives koanf intact.
	k := koanf.New("\x00")
	if err := k.Load(rawbytes.Provider(data), toml.Parser()); err != nil {
		return nil, &ValidationError{Problems: []Problem{syntaxProblem(name, err)}}
	}
	return k.Raw(), nil
}

// parseRaw decodes, defaults and validates raw; a problem whose key
// fileOf names another file (a node file's sections laid over a stored
// document) is reported under that name.
func parseRaw(name string, raw map[string]any, fileOf func(key string) string) (*Snapshot, error) {
	d := &decoder{file: name, present: make(map[string]bool)}
	var cfg Config
	d.decodeStruct("", raw, reflectValue(&cfg))

	v := &validator{file: name, present: d.present}
	v.config(&cfg)

	problems := mergeProblems(d.problems, v.problems)
	if fileOf != nil {
		for i := range problems {
			if f := fileOf(problems[i].Key); f != "" {
				problems[i].File = f
			}
		}
	}
	sortProblems(problems)
	if len(problems) > 0 {
		return nil, &ValidationError{Problems: problems}
	}
	return newSnapshot(cfg, name, time.Now()), nil
}

// syntaxProblem turns a TOML parse error into a Problem with its position.
func syntaxProblem(name string, err error) Problem {
	var de *gotoml.DecodeError
	if errors.As(err, &de) {
		row, col := de.Position()
		return Problem{File: name, Key: strings.Join(de.Key(), "."),
			Msg: fmt.Sprintf("TOML syntax error at line %d, column %d: %s", row, col, strings.TrimPrefix(de.Error(), "toml: "))}
	}
	var se *gotoml.StrictMissingError
	if errors.As(err, &se) {
		return Problem{File: name, Msg: "TOML error: " + strings.TrimPrefix(se.Error(), "toml: ")}
	}
	return Problem{File: name, Msg: "TOML error: " + strings.TrimPrefix(err.Error(), "toml: ")}
}

// mergeProblems returns the decode problems followed by the validation
// problems, dropping validation problems about a key (or a key under it)
// that already failed to decode: a value of the wrong type kept its default,
// and a second complaint about that default would only mislead.
func mergeProblems(decode, validate []Problem) []Problem {
	out := append([]Problem(nil), decode...)
	for _, p := range validate {
		shadowed := false
		for _, dp := range decode {
			if dp.Key != "" && (p.Key == dp.Key || strings.HasPrefix(p.Key, dp.Key+".") || strings.HasPrefix(p.Key, dp.Key+"[")) {
				shadowed = true
				break
			}
		}
		if !shadowed {
			out = append(out, p)
		}
	}
	return out
}
