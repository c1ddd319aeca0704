// SPDX-License-Identifier: GPL-3.0-only

package conf

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestFileStore(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "gw.toml")
	var cp ControlPlane
	cp.setDefaults()
	st, err := OpenStore(cp, path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = st.Close() }()
	if st.Name() != path {
		t.Fatalf("name %q", st.Name())
	}
	if _, err := st.Load(t.Context()); !errors.Is(err, ErrNoConfig) || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v, want ErrNoConfig wrapping the os error", err)
	}
	if err := st.Save(t.Context(), []byte(minimalTOML)); err != nil {
		t.Fatal(err)
	}
	b, err := st.Load(t.Context())
	if err != nil || string(b) != minimalTOML {
		t.Fatalf("load after save: %q %v", b, err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("save left %d files, want the config alone", len(ents))
	}
	if err := (&FileStore{Path: filepath.Join(dir, "no", "such", "dir.toml")}).Save(t.Context(), nil); err == nil {
		t.Fatal("save into a missing directory succeeded")
	}
	cp.Backend = "zookeeper"
	if _, err := OpenStore(cp, path); err == nil {
		t.Fatal("OpenStore took an unknown backend")
	}
}
