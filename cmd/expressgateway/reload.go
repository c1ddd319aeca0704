// SPDX-License-Identifier: GPL-3.0-only

package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/rs/zerolog"

	"github.com/expressgateway/expressgateway/conf"
	"github.com/expressgateway/expressgateway/engine"
)

// reloader applies config reloads, on SIGHUP and when the watched file
// changes: read, parse, validate, keep the restart-only keys (conf.Carry),
// apply to the engine (listeners, routes, clusters) and to XDP, then
// publish the new generation. A file with any problem changes nothing.
type reloader struct {
	path     string     // the config file (for etcd nodes, the node file)
	src      conf.Store // where documents come from: the file, or etcd
	parse    func([]byte) (*conf.Snapshot, error)
	shared   bool   // src is a shared store (etcd) whose watch calls offer; the file is not watched
	after    func() // runs after each applied reload (the shared health view)
	log      zerolog.Logger
	set      *metrics.Set
	eng      *engine.Engine
	clusters *engine.Clusters
	xs       *xdpStage // nil without XDP

	mu          sync.Mutex
	cur         *conf.Snapshot // applied; guarded by mu
	lastHash    [32]byte       // content of the last file tried; guarded by mu
	stopped     bool           // after an upgrade handed over; guarded by mu
	paused      bool           // while an upgrade starts; guarded by mu
	pending     []byte         // a store document offered while paused; guarded by mu
	gen         atomic.Uint64
	info        atomic.Pointer[configInfo]
	ok, refused *metrics.Counter
}

// configInfo is what GET /config shows.
type configInfo struct {
	Generation   uint64    `json:"generation"`
	File         string    `json:"file"`
	LoadedAt     time.Time `json:"loaded_at"`
	NeedsRestart []string  `json:"needs_restart"`
}

func newReloader(path string, snap *conf.Snapshot, data []byte, log zerolog.Logger, set *metrics.Set,
	eng *engine.Engine, clusters *engine.Clusters, xs *xdpStage) *reloader {
	r := &reloader{
		path: path, src: &conf.FileStore{Path: path}, log: log, set: set, eng: eng, clusters: clusters, xs: xs, cur: snap,
		parse:    func(data []byte) (*conf.Snapshot, error) { return conf.Parse(path, data) },
		lastHash: sha256.Sum256(data),
		ok:       set.NewCounter(`expressgateway_config_reload_total{result="ok"}`),
		refused:  set.NewCounter(`expressgateway_config_reload_total{result="error"}`),
	}
	r.gen.Store(1)
	r.info.Store(&configInfo{Generation: 1, File: snap.Source, LoadedAt: snap.LoadedAt, NeedsRestart: []string{}})
	set.NewGauge("expressgateway_config_generation", func() float64 { return float64(r.gen.Load()) })
	return r
}

// useStore makes documents come from a shared store: SIGHUP loads the
// current one, parse lays the node file over it; the file is no longer
// watched (the store's watch calls offer).
func (r *reloader) useStore(st conf.Store, parse func([]byte) (*conf.Snapshot, error)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.src, r.parse, r.shared = st, parse, true
}

// reload reads the document and applies it; trigger names the cause in
// the log ("sighup", "file"). It reports whether a new generation is in
// use.
func (r *reloader) reload(trigger string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped || r.paused {
		return false
	}
	if r.path == "" {
		r.log.Warn().Str("trigger", trigger).Msg("running the embedded config; nothing to reload")
		return false
	}
	data, err := r.src.Load(context.Background())
	if err != nil {
		r.refuse(trigger, []string{fmt.Sprintf("%s: %v", r.src.Name(), err)})
		return false
	}
	return r.applyLocked(trigger, data)
}

// offer applies data, a document the store's watch delivered, unless it
// is the one tried last (applied or refused): a refused document is not
// tried again until it changes. It reports whether a new generation is in
// use.
func (r *reloader) offer(trigger string, data []byte) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped || sha256.Sum256(data) == r.lastHash {
		return false
	}
	if r.paused {
		r.pending = data // applied if the upgrade fails and this process goes on
		return false
	}
	return r.applyLocked(trigger, data)
}

// applyLocked parses, validates and applies data; under r.mu.
func (r *reloader) applyLocked(trigger string, data []byte) bool {
	r.lastHash = sha256.Sum256(data)
	sdNotify("RELOADING=1")
	defer sdNotify("READY=1")
	next, err := r.parse(data)
	if err != nil {
		r.refuse(trigger, problemLines(err))
		return false
	}
	applied, needsRestart, err := conf.Carry(r.cur, next)
	if err != nil {
		r.refuse(trigger, problemLines(err))
		return false
	}
	// The caps of the new config against the file-descriptor limit, as at
	// start: a listener whose own cap cannot fit refuses the reload.
	if err := engine.CheckFDs(&applied.Config, r.log, r.set); err != nil {
		r.refuse(trigger, []string{fmt.Sprintf("%s: %v", r.src.Name(), err)})
		return false
	}
	if r.xs != nil {
		if _, err := xdpConfig(applied, r.clusters.Healthy); err != nil {
			r.refuse(trigger, []string{fmt.Sprintf("%s: xdp: %v", r.src.Name(), err)})
			return false
		}
	}
	if err := r.eng.Reload(applied); err != nil {
		r.refuse(trigger, []string{fmt.Sprintf("%s: %v", r.src.Name(), err)})
		return false
	}
	if r.xs != nil {
		// Logged, and counted by the xdp families, when the maps cannot be
		// written; the rest of the config is in use.
		r.xs.reload(applied, r.clusters.Healthy)
	}
	setLogLevel(applied.Config.Log.Level)
	r.cur = applied
	gen := r.gen.Add(1)
	if needsRestart == nil {
		needsRestart = []string{}
	}
	r.info.Store(&configInfo{Generation: gen, File: applied.Source, LoadedAt: applied.LoadedAt, NeedsRestart: needsRestart})
	r.ok.Inc()
	if r.after != nil {
		r.after()
	}
	ev := r.log.Info().Str("trigger", trigger).Uint64("generation", gen).Int("listeners", len(applied.Config.Listeners)).
		Int("clusters", len(applied.Config.Clusters)).Int("event_loops", r.eng.Loops())
	if len(needsRestart) > 0 {
		ev.Strs("needs_restart", needsRestart).Msg("config reloaded; some keys need a restart and keep their running value")
	} else {
		ev.Msg("config reloaded")
	}
	return true
}

// refuse logs one line with every problem and counts the refusal.
func (r *reloader) refuse(trigger string, problems []string) {
	r.refused.Inc()
	r.log.Error().Str("trigger", trigger).Uint64("generation", r.gen.Load()).Strs("problems", problems).
		Msg("config reload refused; the running config stays")
}

// problemLines formats a load error as `validate` prints it.
func problemLines(err error) []string {
	var ve *conf.ValidationError
	if errors.As(err, &ve) {
		out := make([]string, len(ve.Problems))
		for i, p := range ve.Problems {
			out[i] = p.String()
		}
		return out
	}
	return []string{err.Error()}
}

// snapshot is the config in use.
func (r *reloader) snapshot() *conf.Snapshot {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cur
}

// pause holds reloads back while an upgrade starts (or lets them go on).
func (r *reloader) pause(on bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.paused = on
	if !on && r.pending != nil && !r.stopped {
		data := r.pending
		r.pending = nil
		r.applyLocked("etcd", data)
	}
}

// stop ends reloading (the process handed over to a new one).
func (r *reloader) stop() {
	r.mu.Lock()
	r.stopped = true
	r.mu.Unlock()
}

// watch polls the file every second while process.watch_config is on and
// reloads when its content changed. Its size, mtime and inode are compared
// first; the content hash decides, so touching the file reloads nothing
// and a file that was refused is not tried again until it changes.
func (r *reloader) watch(ctx context.Context) {
	r.mu.Lock()
	shared := r.shared
	r.mu.Unlock()
	if r.path == "" || shared {
		return
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var last os.FileInfo
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		r.mu.Lock()
		watch, held := r.cur.Config.Process.WatchConfig, r.paused || r.stopped
		r.mu.Unlock()
		if !watch {
			last = nil
			continue
		}
		if held {
			continue // looked at again once the upgrade failed, if it does
		}
		fi, err := os.Stat(r.path)
		if err != nil {
			continue // a rename in progress; SIGHUP reports errors
		}
		if last != nil && fi.Size() == last.Size() && fi.ModTime().Equal(last.ModTime()) && os.SameFile(fi, last) {
			continue
		}
		last = fi
		data, err := os.ReadFile(r.path)
		if err != nil {
			continue
		}
		r.mu.Lock()
		same := sha256.Sum256(data) == r.lastHash
		r.mu.Unlock()
		if !same {
			r.reload("file")
		}
	}
}

// handleConfig serves GET /config (JSON) and GET /config/generation (the
// number alone).
func (r *reloader) handleConfig(mux *http.ServeMux) {
	mux.HandleFunc("/config", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(r.info.Load())
	})
	mux.HandleFunc("/config/generation", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = fmt.Fprintf(w, "%d\n", r.gen.Load())
	})
}

// setLogLevel applies log.level to every logger of the process (zerolog's
// global level; the loggers themselves log at any level).
func setLogLevel(level string) {
	lvl, err := zerolog.ParseLevel(level)
	if err != nil {
		lvl = zerolog.InfoLevel
	}
	zerolog.SetGlobalLevel(lvl)
}
