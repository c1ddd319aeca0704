// SPDX-License-Identifier: GPL-3.0-only

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/rs/zerolog"

	"github.com/expressgateway/expressgateway/conf"
	"github.com/expressgateway/expressgateway/engine"
	"github.com/expressgateway/expressgateway/lb"
)

func loadConfig(path string) (*conf.Snapshot, error) {
	snap, _, err := loadConfigData(path)
	return snap, err
}

// loadConfigData is loadConfig that also returns the bytes it parsed.
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

// newLogger is the process logger; log.level is zerolog's global level,
// so that a reload can change it (setLogLevel).
func newLogger(w io.Writer, level string) zerolog.Logger {
	setLogLevel(level)
	return zerolog.New(w).With().Timestamp().Logger()
}

// serve runs the gateway until SIGINT or SIGTERM, or until a SIGUSR2
// upgrade handed its sockets to a new process. SIGHUP (and a change of the
// file, when watched) reloads the config (reload.go).
func serve(path string, stderr io.Writer) error {
	snap, data, err := loadConfigData(path)
	if err != nil {
		var ve *conf.ValidationError
		if errors.As(err, &ve) {
			for _, p := range ve.Problems {
				fmt.Fprintln(stderr, p.String())
			}
			return errors.New("invalid config")
		}
		return err
	}
	inh, err := takeInherited()
	if err != nil {
		return err
	}
	defer inh.closeUnused()
	// Signals that arrive while starting wait until the process serves.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGUSR2)
	defer signal.Stop(sigs)
	cfg := &snap.Config
	log := newLogger(stderr, cfg.Log.Level)
	set := metrics.NewSet()
	m := engine.NewMetrics(set)

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
		defer demo.Close()
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

	eng, err := engine.New(engine.Options{Snapshot: snap, Log: log, Metrics: m, Clusters: clusters, Inherited: inh.engineSockets()})
	if err != nil {
		return err
	}
	rl := newReloader(path, snap, data, log, set, eng, clusters, xs)
	up := newUpgrader(log, set)
	var ready atomic.Bool
	var admin *http.Server
	var adminLn net.Listener
	if cfg.Admin.Listen != "" {
		ln, err := inh.listen("admin", cfg.Admin.Listen)
		if err != nil {
			return fmt.Errorf("admin listener: %w", err)
		}
		var beforeScrape func()
		if xs != nil {
			beforeScrape = xs.collect
		}
		mux := adminMux(set, &ready, beforeScrape)
		rl.handleConfig(mux)
		admin = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		adminLn = ln
		go func() { _ = admin.Serve(ln) }()
		defer admin.Close()
		log.Info().Str("listen", ln.Addr().String()).Msg("admin listening")
	}

	errc := make(chan error, 1)
	go func() { errc <- eng.Serve() }()
	<-eng.Ready()
	if err := eng.StartErr(); err != nil {
		return fmt.Errorf("engine: %w", err)
	}
	ready.Store(true)
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
	inh.closeUnused() // sockets of listeners the new config does not have
	inh.signalReady()
	go rl.watch(ctx)

	upgraded := make(chan int, 1)
	handedOver := false
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
			log.Info().Str("signal", s.String()).Msg("shutting down")
			sdNotify("STOPPING=1")
			up.abort() // a new binary still starting goes too
			break wait
		}
	}
	rl.stop()
	ready.Store(false)
	cur := rl.snapshot()
	sctx, scancel := context.WithTimeout(context.Background(), cur.Config.Engine.DrainTimeout.Std())
	defer scancel()
	start := time.Now()
	eng.StopAccepting() // refused from now on, or accepted by the new process only
	if handedOver {
		// The new process serves these sockets now.
		if admin != nil {
			_ = admin.Close()
		}
		if demo != nil {
			_ = demo.Shutdown(sctx)
		}
	}
	if left := eng.Drain(sctx); left > 0 {
		log.Warn().Int("connections", left).Dur("after", time.Since(start)).Msg("drain budget spent; closing the rest")
	} else {
		log.Info().Dur("after", time.Since(start)).Msg("drained")
	}
	stopCtx, stopCancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer stopCancel()
	if err := eng.Stop(stopCtx); err != nil {
		log.Warn().Err(err).Msg("engine stop")
	}
	select {
	case <-errc:
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
// beforeScrape, when set, refreshes collected families (the XDP counters)
// so that a scrape reads current values.
func adminMux(set *metrics.Set, ready *atomic.Bool, beforeScrape func()) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) {
		if beforeScrape != nil {
			beforeScrape()
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		set.WritePrometheus(w)
		metrics.WriteProcessMetrics(w)
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
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// startDemo serves a tiny upstream on ln so the default config answers at
// once.
func startDemo(ln net.Listener) *http.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "Hello from the ExpressGateway demo upstream.\nmethod=%s path=%s\nx-forwarded-for=%s\nvia=%s\n",
			r.Method, r.URL.Path, r.Header.Get("X-Forwarded-For"), r.Header.Get("Via"))
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return srv
}
