// SPDX-License-Identifier: GPL-3.0-only

package main

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/rs/zerolog"

	"github.com/expressgateway/expressgateway/conf"
	"github.com/expressgateway/expressgateway/engine"
	"github.com/expressgateway/expressgateway/engine/accesslog"
	"github.com/expressgateway/expressgateway/lb"
)

// loadConfigData parses the config file at path (the embedded default
// when path is empty) and also returns the bytes it parsed.
func loadConfigData(path string) (*conf.Snapshot, []byte, error) {
	if path == "" {
		data := conf.DefaultTOML()
		snap, err := conf.Parse("default.toml (embedded)", data)
		return snap, data, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read config: %w", err)
	}
	snap, err := conf.Parse(path, data)
	return snap, data, err
}

// syncWriter serialises writes to one stream shared by the process log and
// the access-log writer, so that a log line never lands inside a batch of
// access lines (a pipe splits writes larger than PIPE_BUF).
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// newLogger is the process logger; log.level is zerolog's global level,
// so that a reload can change it (setLogLevel).
func newLogger(w io.Writer, level string) zerolog.Logger {
	setLogLevel(level)
	return zerolog.New(w).With().Timestamp().Logger()
}

// startConfig is the config a process starts with. For a file whose
// control_plane.backend is "etcd" it is the document stored in etcd with
// the node file laid over it, and store is the open store (data is then
// the document); otherwise store is nil and data the file.
func startConfig(path string) (snap *conf.Snapshot, data []byte, store *conf.EtcdStore, err error) {
	if path == "" {
		snap, data, err = loadConfigData(path)
		return snap, data, nil, err
	}
	node, err := (&conf.FileStore{Path: path}).Load(context.Background())
	if err != nil {
		return nil, nil, nil, err
	}
	// A bad [control_plane] of a standalone file is reported with the
	// rest of its problems by Parse.
	cp, _ := conf.ReadControlPlane(path, node)
	if cp.Backend != conf.BackendEtcd {
		snap, err = conf.Parse(path, node)
		return snap, node, nil, err
	}
	if _, err := conf.CheckNode(path, node); err != nil {
		return nil, nil, nil, err
	}
	st, err := conf.OpenEtcd(cp)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("control plane: %w", err)
	}
	doc, err := st.Load(context.Background())
	if err == nil {
		snap, err = conf.ParseLayered(st.Name(), doc, path, node)
	}
	if err != nil {
		_ = st.Close()
		if errors.Is(err, conf.ErrNoConfig) {
			return nil, nil, nil, fmt.Errorf("control plane: %w; store one with `expressgateway config push --config FILE`", err)
		}
		var ve *conf.ValidationError
		if errors.As(err, &ve) {
			return nil, nil, nil, err
		}
		return nil, nil, nil, fmt.Errorf("control plane: %w (a node reads its config from etcd at start)", err)
	}
	return snap, doc, st, nil
}

// serve runs the gateway until SIGINT or SIGTERM, or until a SIGUSR2
// upgrade handed its sockets to a new process. SIGHUP (and a change of the
// file, when watched; of the document in etcd for an HA node) reloads the
// config (reload.go, ha.go).
func serve(path string, stderr io.Writer) error {
	snap, data, store, err := startConfig(path)
	if err != nil {
		var ve *conf.ValidationError
		if errors.As(err, &ve) {
			for _, p := range ve.Problems {
				_, _ = fmt.Fprintln(stderr, p.String())
			}
			return errors.New("invalid config")
		}
		return err
	}
	if store != nil {
		defer func() { _ = store.Close() }()
	}
	inh, err := takeInherited()
	if err != nil {
		return err
	}
	defer inh.closeUnused()
	// Signals that arrive while starting wait until the process serves.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2)
	defer signal.Stop(sigs)
	cfg := &snap.Config
	out := &syncWriter{w: stderr}
	log := newLogger(out, cfg.Log.Level)
	metrics.ExposeMetadata(true) // TYPE lines; writeMetrics adds the HELP text
	set := metrics.NewSet()
	m := engine.NewMetrics(set)
	if err := engine.CheckFDs(cfg, log, set); err != nil {
		return err
	}
	// The access log: one writer goroutine fed by a Buffer per event loop
	// (engine/accesslog). SIGUSR1 reopens log.access_log_file.
	alog, err := accesslog.New(accesslog.Options{
		Out: out, File: cfg.Log.AccessLogFile, BufferSize: int(cfg.Log.AccessLogBuffer), Metrics: set,
		OnError: func(err error) { log.Error().Err(err).Msg("access log: lines lost") },
	})
	if err != nil {
		return err
	}
	defer closeAccessLog(alog, log)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var demo *http.Server
	var demoLn net.Listener
	if cfg.Demo.Enabled {
		ln, err := inh.listen("demo", cfg.Demo.Listen)
		if err != nil {
			return fmt.Errorf("demo upstream: %w", err)
		}
		demo, demoLn = startDemo(ln), ln
		defer func() { _ = demo.Close() }()
		log.Info().Str("listen", ln.Addr().String()).Msg("demo upstream started")
	}

	var xs *xdpStage
	var hooks []func(lb.HealthEvent)
	if cfg.XDP.Enabled {
		xs = newXDPStage(snap, log)
		hooks = append(hooks, xs.onHealth)
	}
	clusters, err := engine.NewClusters(snap, set, log, hooks...)
	if err != nil {
		return err
	}
	if xs != nil {
		// Attach before the health checks start, so that no transition is
		// missed; detach last.
		if err := xs.start(snap, set); err != nil {
			return err
		}
		defer xs.close()
	}
	clusters.Start(ctx)
	defer clusters.Close()

	eng, err := engine.New(engine.Options{Snapshot: snap, Log: log, Metrics: m, Clusters: clusters, AccessLog: alog, Inherited: inh.engineSockets(),
		QUICGeneration: inh.quicGen, QUICTakeover: inh.upgraded()})
	if err != nil {
		return err
	}
	rl := newReloader(path, snap, data, log, set, eng, clusters, xs)
	var ha *haNode
	if store != nil {
		rl.useStore(store,
			func(doc []byte) (*conf.Snapshot, error) {
				node, err := os.ReadFile(path)
				if err != nil {
					return nil, fmt.Errorf("read node file: %w", err)
				}
				return conf.ParseLayered(store.Name(), doc, path, node)
			})
		if ha, err = newHANode(store, cfg.ControlPlane, rl, clusters, log, set); err != nil {
			return err
		}
		rl.after = ha.afterReload
	}
	up := newUpgrader(log, set, inh.quicGen)
	// Ready (/readyz 200 and the "listening" lines) only once every socket
	// is bound: the admin listener first, then every listener on every
	// event loop. A bind failure ends the process before anything says
	// ready.
	var ready atomic.Bool
	var admin *http.Server
	var adminLn net.Listener
	var adminAddr string
	if cfg.Admin.Listen != "" {
		var token string
		if cfg.Admin.TokenFile != "" {
			if token, err = conf.ReadToken(cfg.Admin.TokenFile); err != nil {
				return fmt.Errorf("admin.token_file: %w", err)
			}
		}
		pprofOn := cfg.Admin.Pprof != nil && *cfg.Admin.Pprof
		if !cfg.Admin.Loopback() && token == "" {
			open := "/metrics"
			if pprofOn {
				open = "/metrics and /debug/pprof/"
			}
			log.Warn().Str("listen", cfg.Admin.Listen).Bool("pprof", pprofOn).
				Msg("the admin listener is not on a loopback address and has no admin.token_file: " + open + " are open to anyone who can reach it")
		}
		ln, err := inh.listen("admin", cfg.Admin.Listen)
		if err != nil {
			return fmt.Errorf("admin listener: %w", err)
		}
		adminAddr = ln.Addr().String()
		var beforeScrape func()
		if xs != nil {
			beforeScrape = xs.collect
		}
		mux := adminMux(set, &ready, beforeScrape, pprofOn)
		rl.handleConfig(mux)
		handleMaglev(mux, rl, clusters)
		handleZones(mux, clusters)
		if ha != nil {
			ha.handleNodes(mux)
			ha.handleDebug(mux)
		}
		var h http.Handler = mux
		if token != "" {
			h = requireToken(token, h)
		}
		admin = &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
		adminLn = ln
		go func() { _ = admin.Serve(ln) }()
		defer func() { _ = admin.Close() }()
	}

	errc := make(chan error, 1)
	go func() { errc <- eng.Serve() }()
	if err := eng.Bound(); err != nil {
		return err
	}
	ready.Store(true)
	if adminAddr != "" {
		log.Info().Str("listen", adminAddr).Msg("admin listening")
	}
	for _, l := range cfg.Listeners {
		log.Info().Str("listener", l.Name).Str("listen", l.Listen).Str("protocol", l.Protocol).Msg("listening")
	}
	pidFile := cfg.Process.PIDFile
	if err := writePIDFile(pidFile); err != nil {
		log.Error().Err(err).Msg("pid file not written")
	}
	defer removePIDFile(pidFile)
	if inh.upgraded() {
		sdNotify(fmt.Sprintf("MAINPID=%d\nREADY=1", os.Getpid()))
		log.Info().Int("pid", os.Getpid()).Msg("upgrade: serving on the inherited sockets")
	} else {
		sdNotify("READY=1")
	}
	// An HA node joins before an upgrading parent hears it is ready, so
	// that the parent's leaving (it revokes its lease) never removes the
	// keys this process has written again.
	stopHA := func() {}
	if ha != nil {
		hctx, hcancel := context.WithCancel(ctx)
		waitHA := ha.run(hctx)
		var once sync.Once
		stopHA = func() { once.Do(func() { hcancel(); waitHA() }) }
		// Leave the group (revoke the lease) before the process goes.
		defer stopHA()
		log.Info().Str("node_id", ha.id).Str("store", store.Name()).Str("zone", cfg.ControlPlane.Zone).
			Str("region", cfg.ControlPlane.Region).Msg("control plane: etcd; this node follows the stored config")
	}
	inh.closeUnused() // sockets of listeners the new config does not have
	inh.signalReady()
	go rl.watch(ctx)

	upgraded := make(chan int, 1)
	handedOver := false
	var stop os.Signal
wait:
	for {
		select {
		case err := <-errc:
			if err != nil {
				return fmt.Errorf("engine: %w", err)
			}
			return nil
		case pid := <-upgraded:
			log.Info().Int("new_pid", pid).Msg("upgrade: the new process serves; this one stops accepting and drains")
			stopHA() // the new process is the node now
			handedOver = true
			break wait
		case s := <-sigs:
			switch s {
			case syscall.SIGHUP:
				if up.running.Load() {
					log.Warn().Msg("SIGHUP ignored: an upgrade is in progress; the new process reads the file")
					continue
				}
				rl.reload("sighup")
				continue
			case syscall.SIGUSR2:
				if xs != nil {
					up.refuse("xdp is attached by this process; restart to upgrade")
					continue
				}
				if why := up.quicBusy(inh.parent, rl.snapshot()); why != "" {
					up.refuse(why)
					continue
				}
				if !up.running.CompareAndSwap(false, true) {
					log.Warn().Msg("upgrade already in progress")
					continue
				}
				rl.pause(true) // the sockets handed over must stay those of the file the new process reads
				socks := handoverSockets(eng, cfg, adminLn, demoLn)
				timeout := rl.snapshot().Config.Process.UpgradeTimeout.Std()
				log.Info().Str("binary", up.exe).Int("sockets", len(socks)).Msg("upgrade: starting the new binary")
				go func() {
					pid, err := up.start(socks, timeout)
					if err != nil {
						up.failed.Inc()
						log.Error().Err(err).Msg("upgrade failed; this process keeps serving")
						rl.pause(false)
						up.running.Store(false)
						return
					}
					up.ok.Inc()
					upgraded <- pid
				}()
				continue
			}
			if s == syscall.SIGUSR1 {
				file := rl.snapshot().Config.Log.AccessLogFile
				if err := alog.Reopen(); err != nil {
					log.Error().Err(err).Msg("SIGUSR1: access log not reopened")
				} else if file != "" {
					log.Info().Str("file", file).Msg("SIGUSR1: access log reopened")
				}
				continue
			}
			sdNotify("STOPPING=1")
			up.abort() // a new binary still starting goes too
			stop = s
			break wait
		}
	}
	rl.stop()
	ready.Store(false) // lameduck: /readyz answers 503 from now on
	cur := rl.snapshot()
	if handedOver {
		// The new process serves these sockets now: no settle, stop
		// accepting at once and drain.
		sctx, scancel := context.WithTimeout(context.Background(), cur.Config.Engine.DrainTimeout.Std())
		defer scancel()
		start := time.Now()
		eng.StopAccepting() // accepted by the new process only from now on
		if admin != nil {
			_ = admin.Close()
		}
		if demo != nil {
			_ = demo.Shutdown(sctx)
		}
		if left := eng.Drain(sctx); left > 0 {
			log.Warn().Int("connections", left).Dur("after", time.Since(start)).Msg("drain budget spent; closing the rest")
		} else {
			log.Info().Dur("after", time.Since(start)).Msg("drained")
		}
	} else {
		drain(eng, &cur.Config.Engine, stop, sigs, log)
	}
	stopCtx, stopCancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer stopCancel()
	if err := eng.Stop(stopCtx); err != nil {
		log.Warn().Err(err).Msg("engine stop")
	}
	select {
	case err := <-errc:
		if err != nil {
			log.Warn().Err(err).Msg("engine stopped with an error")
		}
	case <-stopCtx.Done():
	}
	return nil
}

// handoverSockets lists every listening socket for an upgrade.
func handoverSockets(eng *engine.Engine, cfg *conf.Config, adminLn, demoLn net.Listener) []handover {
	var out []handover
	for _, s := range eng.Sockets() {
		out = append(out, handover{key: s.Key, fd: s.FD})
	}
	if adminLn != nil {
		if fd, ok := listenerFD(adminLn); ok {
			out = append(out, handover{key: "admin " + cfg.Admin.Listen, fd: fd})
		}
	}
	if demoLn != nil {
		if fd, ok := listenerFD(demoLn); ok {
			out = append(out, handover{key: "demo " + cfg.Demo.Listen, fd: fd})
		}
	}
	return out
}

// adminMux serves /metrics, the probes and pprof.

// closeAccessLog writes what the access log still holds; after the engine
// stopped, so that every loop's last lines are in. A stuck target (a full
// pipe nobody reads) does not hold the exit for more than 5 s.
func closeAccessLog(alog *accesslog.Log, log zerolog.Logger) {
	done := make(chan error, 1)
	go func() { done <- alog.Close() }()
	select {
	case err := <-done:
		if err != nil {
			log.Error().Err(err).Msg("access log close")
		}
	case <-time.After(5 * time.Second):
		log.Error().Msg("access log: the last lines could not be written within 5s")
	}
}

// adminMux serves /metrics, the probes and, when pprofOn, pprof.
// beforeScrape, when set, refreshes collected families (the XDP counters)
// so that a scrape reads current values.
func adminMux(set *metrics.Set, ready *atomic.Bool, beforeScrape func(), pprofOn bool) *http.ServeMux {
	mux := http.NewServeMux()
	help := metricsHelp()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) {
		if beforeScrape != nil {
			beforeScrape()
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_ = writeMetrics(w, set, help) // a failed write is the scraper gone
	})
	mux.HandleFunc("/livez", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	readyz := func(w http.ResponseWriter, _ *http.Request) {
		if !ready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	}
	mux.HandleFunc("/readyz", readyz)
	mux.HandleFunc("/healthz", readyz)
	if pprofOn {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}

// requireToken lets through only requests that carry
// "Authorization: Bearer <token>", except for the readiness probes /healthz
// and /readyz (exact paths), and answers 401 to the others. The
// comparison takes the same time wherever the presented token differs
// (both sides are hashed first, so not even the length leaks).
func requireToken(token string, next http.Handler) http.Handler {
	want := sha256.Sum256([]byte(token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" || r.URL.Path == "/readyz" {
			next.ServeHTTP(w, r)
			return
		}
		scheme, got, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		sum := sha256.Sum256([]byte(strings.TrimSpace(got)))
		if !strings.EqualFold(scheme, "Bearer") || subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="expressgateway admin"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// startDemo serves a tiny upstream on ln so the default config answers at
// once.
func startDemo(ln net.Listener) *http.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = fmt.Fprintf(w, "Hello from the ExpressGateway demo upstream.\nmethod=%s path=%s\nx-forwarded-for=%s\nvia=%s\n",
			r.Method, r.URL.Path, r.Header.Get("X-Forwarded-For"), r.Header.Get("Via"))
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return srv
}

// drain runs the shutdown that signal stop asked for, once /readyz answers
// 503. After SIGTERM the gateway first serves on, normally, for
// engine.drain_settle, so that the load balancers in front see the 503 and
// stop sending; SIGINT (a terminal's Ctrl-C) skips the settle. Then the
// engine drains: new connections are refused, exchanges in flight finish
// with "Connection: close", idle keep-alive connections are closed, tcp
// pairs run to their end, within engine.drain_timeout. The connections
// still open then are counted (expressgateway_shutdown_aborted_connections_total
// and the log line) and closed by the caller's Stop. Another SIGINT or
// SIGTERM cuts the settle or the drain short.
func drain(eng *engine.Engine, cfg *conf.Engine, stop os.Signal, sigs <-chan os.Signal, log zerolog.Logger) {
	settle := cfg.DrainSettle.Std()
	if stop == syscall.SIGINT {
		settle = 0
	}
	log.Info().Str("signal", stop.String()).Dur("settle", settle).Dur("drain_timeout", cfg.DrainTimeout.Std()).
		Msg("shutting down: /readyz answers 503")
	if settle > 0 {
		t := time.NewTimer(settle)
		if s, cut := untilStopSignal(t.C, sigs, log); cut {
			log.Info().Str("signal", s.String()).Msg("settle cut short")
		}
		t.Stop()
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.DrainTimeout.Std())
	defer cancel()
	go func() {
		if s, cut := untilStopSignal(ctx.Done(), sigs, log); cut {
			log.Info().Str("signal", s.String()).Msg("drain cut short")
			cancel()
		}
	}()
	log.Info().Msg("draining")
	start := time.Now()
	if left := eng.Drain(ctx); left > 0 {
		log.Warn().Int("connections", left).Dur("after", time.Since(start)).Msg("drain budget spent; closing the rest")
	} else {
		log.Info().Dur("after", time.Since(start)).Msg("drained")
	}
}

// untilStopSignal waits for done or for SIGINT or SIGTERM on sigs, and
// reports which signal came first (cut true). A SIGHUP while shutting down
// is ignored.
func untilStopSignal[T any](done <-chan T, sigs <-chan os.Signal, log zerolog.Logger) (os.Signal, bool) {
	for {
		select {
		case <-done:
			return nil, false
		case s := <-sigs:
			if s == syscall.SIGHUP {
				log.Warn().Msg("SIGHUP while shutting down: ignored")
				continue
			}
			return s, true
		}
	}
}
