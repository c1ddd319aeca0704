// SPDX-License-Identifier: GPL-3.0-only

// Package h1test loads the third-party HTTP/1.1 test data that several
// packages' tests run: the aws/http-desync-guardian corpus (see SOURCE.md
// beside it, in shared/testdata next to the repository root).
package h1test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// DesyncCase is one classified request of the corpus.
type DesyncCase struct {
	File    string `yaml:"-"`
	Name    string `yaml:"name"`
	URI     string `yaml:"uri"`
	Method  string `yaml:"method"`
	Version string `yaml:"version"`
	Headers []struct {
		Name  string `yaml:"name"`
		Value string `yaml:"value"`
	} `yaml:"headers"`
	Expected struct {
		Tier   string `yaml:"tier"`
		Reason string `yaml:"reason"`
	} `yaml:"expected"`
}

// Key names the case as "file/name".
func (c *DesyncCase) Key() string { return c.File + "/" + c.Name }

// Raw builds the wire bytes of the case's head. Cases mostly omit Host,
// which is not what they test; an HTTP/1.1 request without it is refused,
// so one is put first when the case has none. YAML escapes such as \x85
// arrive as UTF-8 (C2 85), still obs-text on the wire.
func (c *DesyncCase) Raw() []byte {
	var b bytes.Buffer
	b.WriteString(c.Method + " " + c.URI)
	if c.Version != "" {
		b.WriteString(" " + c.Version)
	}
	b.WriteString("\r\n")
	hasHost := false
	for _, h := range c.Headers {
		hasHost = hasHost || strings.EqualFold(h.Name, "host")
	}
	if !hasHost {
		b.WriteString("Host: example.com\r\n")
	}
	for _, h := range c.Headers {
		b.WriteString(h.Name + ": " + h.Value + "\r\n")
	}
	b.WriteString("\r\n")
	return b.Bytes()
}

// DesyncDir finds the corpus beside the repository root, failing the test
// when it is missing (it is part of the suite, never skipped).
func DesyncDir(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("repository root (go.mod) not found above the package")
		}
		dir = parent
	}
	corpus := filepath.Join(filepath.Dir(dir), "shared", "testdata", "http-desync-guardian")
	if _, err := os.Stat(corpus); err != nil {
		t.Fatalf("desync corpus missing (expected beside the repository root): %v", err)
	}
	return corpus
}

// LoadDesyncCorpus reads every case of the corpus, in file order.
func LoadDesyncCorpus(t testing.TB) []DesyncCase {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(DesyncDir(t), "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus files: %v", err)
	}
	var all []DesyncCase
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var cases []DesyncCase
		if err := yaml.Unmarshal(data, &cases); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		for i := range cases {
			cases[i].File = filepath.Base(file)
		}
		all = append(all, cases...)
	}
	return all
}
