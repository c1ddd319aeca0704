// SPDX-License-Identifier: GPL-3.0-only

package conf

import (
	"reflect"
	"time"
)

// Snapshot is a parsed, defaulted and validated config. It is immutable by
// contract: nothing may modify it (or the slices and maps it holds) after
// Parse returns it, so it can be shared by every event loop and swapped
// atomically on reload while work in flight keeps the snapshot it started
// with. Safe for concurrent use.
type Snapshot struct {
	// Config is the validated configuration; read-only.
	Config Config
	// Source is the file name the config was loaded from.
	Source string
	// LoadedAt is when the config was parsed.
	LoadedAt time.Time

	clusters  map[string]*Cluster
	listeners map[string]*Listener
}

func newSnapshot(cfg Config, source string, at time.Time) *Snapshot {
	s := &Snapshot{Config: cfg, Source: source, LoadedAt: at,
		clusters:  make(map[string]*Cluster, len(cfg.Clusters)),
		listeners: make(map[string]*Listener, len(cfg.Listeners)),
	}
	for i := range s.Config.Clusters {
		c := &s.Config.Clusters[i]
		s.clusters[c.Name] = c
	}
	for i := range s.Config.Listeners {
		l := &s.Config.Listeners[i]
		s.listeners[l.Name] = l
	}
	return s
}

// Cluster returns the cluster called name, or nil if there is none.
func (s *Snapshot) Cluster(name string) *Cluster {
	return s.clusters[name]
}

// Listener returns the listener called name, or nil if there is none.
func (s *Snapshot) Listener(name string) *Listener {
	return s.listeners[name]
}

func reflectValue(p any) reflect.Value { return reflect.ValueOf(p).Elem() }
