// SPDX-License-Identifier: GPL-3.0-only

package conf

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Store is where a gateway's config document lives: the control-plane
// seam. A document is the TOML text of a whole config. The file backend
// (standalone, the default) reads the config file; the etcd backend
// (EtcdStore) shares one document among every node and adds membership
// and shared health. Implementations are safe for concurrent use.
type Store interface {
	// Name says where the document is, for logs and Problem.File.
	Name() string
	// Load returns the current document; ErrNoConfig when there is none.
	Load(ctx context.Context) ([]byte, error)
	// Save replaces the document (config push).
	Save(ctx context.Context, data []byte) error
	// Close releases the store's connections.
	Close() error
}

// ErrNoConfig is returned by Store.Load when the store holds no document.
var ErrNoConfig = errors.New("no config stored")

// OpenStore opens the backend cp names; path is the config file, the
// document of the file backend.
func OpenStore(cp ControlPlane, path string) (Store, error) {
	switch cp.Backend {
	case BackendFile, "":
		return &FileStore{Path: path}, nil
	case BackendEtcd:
		return OpenEtcd(cp)
	}
	return nil, fmt.Errorf("control_plane.backend: unknown backend %q", cp.Backend)
}

// FileStore is the file backend: the document is the file at Path.
type FileStore struct {
	// Path is the config file.
	Path string
}

// Name is the file's path.
func (f *FileStore) Name() string { return f.Path }

// Load reads the file; a missing file is ErrNoConfig.
func (f *FileStore) Load(context.Context) ([]byte, error) {
	b, err := os.ReadFile(f.Path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read config: %w: %w", ErrNoConfig, err)
	}
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return b, nil
}

// Save writes the file atomically (a temporary file renamed over it), so
// a watcher never reads half a document.
func (f *FileStore) Save(_ context.Context, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(f.Path), ".expressgateway-*.toml")
	if err != nil {
		return fmt.Errorf("save config: %w", err)
	}
	_, werr := tmp.Write(data)
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("save config: %w", err)
	}
	if err := os.Rename(tmp.Name(), f.Path); err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("save config: %w", err)
	}
	return nil
}

// Close does nothing: the file backend holds nothing open.
func (f *FileStore) Close() error { return nil }

var (
	_ Store = (*FileStore)(nil)
	_ Store = (*EtcdStore)(nil)
)
