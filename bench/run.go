// SPDX-License-Identifier: GPL-3.0-only

package main

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/expressgateway/expressgateway/bench/internal/flame"
	"github.com/expressgateway/expressgateway/bench/internal/loadgen"
	"github.com/expressgateway/expressgateway/bench/internal/proc"
	"github.com/expressgateway/expressgateway/bench/internal/results"
	"github.com/expressgateway/expressgateway/bench/internal/scenario"
	"github.com/expressgateway/expressgateway/bench/internal/target"
)

// runner holds what every measurement of one invocation shares.
type runner struct {
	cfg       *config
	dir       string // artifacts folder of this run
	upstream  string // upstream address
	upProc    *target.Process
	extraUp   map[string]extraUpstream // the h2c, gRPC and WebSocket upstreams by flag, started on first use
	ghzBin    string                   // ghz, built from tools/ghz.mod on first use
	ghzErr    error
	caddy     target.Caddy // its binary is built from tools/caddy.mod when it is a target
	targets   []target.Target
	gateway   *target.Gateway
	probes    map[string]probe // target name -> version or why unavailable
	tools     map[string]string
	proxyPin  []string
	loadPin   []string
	noFile    uint64
	wrkScript string
	cert      *target.TLS // the https scenarios' certificate, made on first use
}

type probe struct {
	version string
	err     error
}

func run(ctx context.Context, cfg *config, args []string) (failed bool, err error) {
	scenarios, err := scenario.Select(cfg.scenarios)
	if err != nil {
		return false, err
	}
	if cfg.outDir == "" {
		root, err := moduleRoot()
		if err != nil {
			return false, err
		}
		cfg.outDir = filepath.Join(root, "bench", "results")
	}
	started := time.Now().UTC()
	id := started.Format("20060102T150405Z")
	dir, err := filepath.Abs(filepath.Join(cfg.outDir, id))
	if err != nil {
		return false, err
	}
	r := &runner{cfg: cfg, dir: dir, probes: map[string]probe{}, tools: map[string]string{}, extraUp: map[string]extraUpstream{}}
	pinning := "off"
	if cfg.pin {
		if pinning, err = r.setPinning(); err != nil {
			return false, err
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, fmt.Errorf("results folder: %w", err)
	}
	r.noFile = proc.RaiseNoFile()

	r.gateway = &target.Gateway{}
	if err := r.buildGateway(ctx); err != nil {
		r.gateway.BuildErr = err
	}
	if !cfg.profile {
		// The binary the harness built is only worth keeping next to profiles.
		defer func() { _ = os.RemoveAll(filepath.Join(dir, "bin")) }()
	}
	for _, name := range strings.Split(cfg.targets, ",") {
		switch name = strings.TrimSpace(name); name {
		case "direct":
			r.targets = append(r.targets, target.Direct{})
		case "expressgateway", "eg", "gateway":
			r.targets = append(r.targets, r.gateway)
		case "expressgateway-l4", "eg-l4":
			r.targets = append(r.targets, &target.Gateway{Bin: r.gateway.Bin, BuildErr: r.gateway.BuildErr, L4: true})
		case "expressgateway-log", "eg-log":
			r.targets = append(r.targets, &target.Gateway{Bin: r.gateway.Bin, BuildErr: r.gateway.BuildErr, AccessLog: true})
		case "haproxy":
			r.targets = append(r.targets, target.HAProxy{})
		case "haproxy-tcp":
			r.targets = append(r.targets, target.HAProxy{TCP: true})
		case "nginx":
			r.targets = append(r.targets, target.Nginx{})
		case "caddy":
			if err := r.buildCaddy(ctx, scenarios); err != nil {
				r.caddy.BuildErr = err
			}
			r.targets = append(r.targets, r.caddy)
		case "":
		default:
			return false, fmt.Errorf("unknown target %q (known: %s,expressgateway-log,haproxy-tcp,caddy)", name, defaultTargets)
		}
	}
	if len(r.targets) == 0 {
		return false, errors.New("no target selected")
	}
	for _, t := range r.targets {
		v, err := t.Probe(ctx)
		r.probes[t.Name()] = probe{v, err}
		if err != nil {
			r.tools[t.Name()] = strings.TrimPrefix(err.Error(), target.ErrUnavailable.Error()+": ")
		} else {
			r.tools[t.Name()] = v
		}
	}
	r.probeTools(ctx)

	up, addr, err := startUpstream(ctx, r.loadPin)
	if err != nil {
		return false, err
	}
	defer up.Stop()
	defer func() {
		for _, u := range r.extraUp {
			u.proc.Stop()
		}
	}()
	r.upstream, r.upProc = addr, up
	if r.wrkScript, err = loadgen.WriteWrkScript(dir); err != nil {
		return false, err
	}

	run := &results.Run{
		Schema:    results.SchemaVersion,
		ID:        id,
		StartedAt: started,
		Machine:   proc.Describe(),
		Tools:     r.tools,
		Pinning:   pinning,
		Upstream:  results.Upstream{Address: addr, CommandLine: up.CommandLine},
		Options: results.Options{
			Scenarios: scenarioNames(scenarios), Targets: targetNames(r.targets),
			Duration: cfg.duration.String(), Warmup: cfg.warmup.String(),
			Connections: cfg.connections, Threads: cfg.threads, Streams: cfg.streams,
			Workers: cfg.workers, Rounds: cfg.rounds, IdleConns: r.idleConns(),
			Pin: cfg.pin, Profile: cfg.profile, Args: append([]string{"bench"}, args...),
		},
	}
	run.LoadAvgStart = proc.LoadAvg()
	fmt.Printf("bench %s: %d CPUs (%s), kernel %s, pinning %s\n", id, run.Machine.NProc, run.Machine.CPUModel, run.Machine.Kernel, pinning)
	if l := run.LoadAvgStart[0]; l > 0.5*float64(run.Machine.NProc) {
		fmt.Printf("warning: load average %.2f on %d CPUs: other processes are busy, figures will be noisy (see the bg-cpu column)\n", l, run.Machine.NProc)
	}
	fmt.Printf("%d conns, %d wrk/h2load threads, %d proxy workers, %s per run (+%s warm-up), %d round(s)\n\n",
		cfg.connections, cfg.threads, cfg.workers, cfg.duration, cfg.warmup, cfg.rounds)

	for _, sc := range scenarios {
		for round := 1; round <= cfg.rounds; round++ {
			// Rotate the order each round so no target always runs first.
			for i := range r.targets {
				if ctx.Err() != nil {
					return false, ctx.Err()
				}
				t := r.targets[(i+round-1)%len(r.targets)]
				res := r.measure(ctx, sc, t, round)
				fmt.Fprintf(os.Stderr, "  %-12s %-17s round %d: %s\n", sc.Name, t.Name(), round, oneLine(res))
				run.Rounds = append(run.Rounds, res)
			}
		}
	}
	run.Summary = orderLike(results.Summarize(run.Rounds), r.targets)
	run.FinishedAt = time.Now().UTC()
	run.LoadAvgEnd = proc.LoadAvg()
	fmt.Println()
	if err := results.PrintTable(os.Stdout, run.Summary); err != nil {
		return false, err
	}
	jsonPath := filepath.Join(filepath.Dir(dir), id+".json")
	if err := run.WriteFile(jsonPath); err != nil {
		return false, fmt.Errorf("write results: %w", err)
	}
	fmt.Printf("\nresults: %s (artifacts in %s)\n", rel(jsonPath), rel(dir))
	for _, s := range run.Summary {
		if s.FlameGraph != "" {
			fmt.Printf("flame graph (%s): %s\n", s.Scenario, rel(s.FlameGraph))
		}
		failed = failed || s.Failed()
	}
	return failed, nil
}

// measure runs one scenario against one target once.
func (r *runner) measure(ctx context.Context, sc scenario.Scenario, t target.Target, round int) results.Result {
	res := results.Result{Scenario: sc.Name, Target: t.Name(), Round: round}
	if sc.Pending || !t.Supports(sc.Protocol) {
		res.Status = results.StatusUnsupported
		res.Reason = sc.Protocol
		return res
	}
	if p := r.probes[t.Name()]; p.err != nil {
		res.Status = results.StatusNotInstalled
		if _, ok := t.(*target.Gateway); ok {
			res.Status = results.StatusNotBuilt
		}
		res.Reason = strings.TrimPrefix(strings.TrimPrefix(p.err.Error(), target.ErrUnavailable.Error()+": "), res.Status+": ")
		return res
	}
	if sc.Driver == scenario.Ghz {
		if err := r.buildGhz(ctx); err != nil {
			res.Status = results.StatusNotInstalled
			res.Reason = "load generator ghz: " + err.Error()
			return res
		}
	} else if tool := string(sc.Driver); sc.Driver == scenario.Wrk || sc.Driver == scenario.H2load {
		if _, err := exec.LookPath(tool); err != nil {
			res.Status = results.StatusNotInstalled
			res.Reason = "load generator " + tool + " not in PATH"
			return res
		}
	}
	dir := filepath.Join(r.dir, fmt.Sprintf("%s-%s-r%d", sc.Name, t.Name(), round))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fail(res, results.StatusError, err)
	}
	freeAddr := target.FreeAddr
	if sc.Protocol == target.ProtoH3 {
		freeAddr = target.FreeDualAddr // UDP, with the gateway's http listener beside it on TCP
	}
	listen, err := freeAddr()
	if err != nil {
		return fail(res, results.StatusError, err)
	}
	env := target.Env{Dir: dir, Listen: listen, Upstream: r.upstream, Workers: r.cfg.workers,
		Protocol: sc.Protocol, Pin: r.proxyPin, NoFile: r.noFile}
	if sc.Protocol == target.ProtoTLS || sc.Protocol == target.ProtoH3 {
		if r.cert == nil {
			c, err := target.WriteCert(r.dir)
			if err != nil {
				return fail(res, results.StatusError, fmt.Errorf("bench certificate: %w", err))
			}
			r.cert = &c
		}
		c := *r.cert
		c.NoResumption = sc.NoResumption
		env.TLS = &c
	}
	upProc := r.upProc
	if flag := upstreamFlag[sc.Protocol]; flag != "" {
		u, ok := r.extraUp[flag]
		if !ok {
			p, a, err := startUpstream(ctx, r.loadPin, flag)
			if err != nil {
				return fail(res, results.StatusStartFailed, err)
			}
			u = extraUpstream{a, p}
			r.extraUp[flag] = u
		}
		env.Upstream = u.addr
		upProc = u.proc
		switch sc.Protocol {
		case target.ProtoH2CToH2C:
			env.UpstreamProto, env.Protocol = "h2c", target.ProtoH2C
		case target.ProtoGRPC:
			env.UpstreamProto = "h2c"
		}
	}
	p, err := t.Start(ctx, env)
	if err != nil {
		return fail(res, results.StatusStartFailed, err)
	}
	defer p.Stop()
	addr := listen
	measured := p // the process whose CPU and memory are the target's figures
	if p == nil {
		addr, measured = env.Upstream, upProc
		if sc.Driver == scenario.Idle {
			// RSS growth needs a fresh process: the shared upstream keeps
			// the memory earlier rounds grew.
			fresh, freshAddr, err := startUpstream(ctx, r.loadPin)
			if err != nil {
				return fail(res, results.StatusStartFailed, err)
			}
			defer fresh.Stop()
			addr, measured = freshAddr, fresh
			res.Commands = append(res.Commands, fresh.CommandLine)
		}
	} else {
		res.Commands = append(res.Commands, p.CommandLine)
		res.ConfigFile, res.Config = p.ConfigFile, p.Config
	}
	if err := target.WaitReady(ctx, p, addr, sc.Protocol, 10*time.Second); err != nil {
		return fail(res, results.StatusStartFailed, err)
	}

	if sc.Driver == scenario.Idle || sc.Driver == scenario.WSIdle {
		res = r.measureIdle(ctx, res, sc, addr, measured)
	} else {
		res = r.measureLoad(ctx, res, sc, t, addr, dir, p, upProc)
	}
	if p != nil && p.Exited() && res.Status == results.StatusOK {
		res.Status = results.StatusError
		res.Reason = "target exited during the run: " + p.Stderr()
		if len(res.Reason) > 300 {
			res.Reason = res.Reason[:300] + "..."
		}
	}
	return res
}

// measureLoad runs the scenario's load generator: warm-up, then the measured
// window with CPU sampled right before and right after it.
func (r *runner) measureLoad(ctx context.Context, res results.Result, sc scenario.Scenario, t target.Target, addr, dir string, p, upProc *target.Process) results.Result {
	scheme := "http"
	if sc.Protocol == target.ProtoTLS || sc.Protocol == target.ProtoH3 {
		scheme = "https"
	}
	opts := loadgen.Options{
		URL: scheme + "://" + addr + sc.Path, Duration: r.cfg.duration, Connections: r.cfg.connections,
		Threads: r.cfg.threads, Headers: sc.Headers, Timeout: r.cfg.timeout, Streams: r.cfg.streams,
	}
	if r.cfg.warmup > 0 {
		w := opts
		w.Duration = r.cfg.warmup
		if _, _, _, err := r.load(ctx, sc, w, dir, "warmup"); err != nil {
			return fail(res, results.StatusError, fmt.Errorf("warm-up: %w", err))
		}
	}
	cpu0, up0 := r.sampleCPU(p, upProc)
	busy0, _ := proc.SystemBusy()
	self0 := selfCPU()
	var prof chan profileResult
	if g, ok := t.(*target.Gateway); ok && r.cfg.profile {
		prof = make(chan profileResult, 1)
		go func() { prof <- r.pullProfile(ctx, dir, g) }()
	}
	lr, cmdline, loadCPU, err := r.load(ctx, sc, opts, dir, "run")
	cpu1, up1 := r.sampleCPU(p, upProc)
	busy1, _ := proc.SystemBusy()
	self1 := selfCPU()
	res.Commands = append(res.Commands, cmdline)
	if prof != nil {
		pr := <-prof
		res.Profile, res.FlameGraph = pr.profile, pr.flame
		if pr.err != nil {
			fmt.Fprintf(os.Stderr, "  profile: %v\n", pr.err)
		}
	}
	if err != nil {
		return fail(res, results.StatusError, err)
	}
	res.Status = results.StatusOK
	res.Requests = lr.Requests
	res.DurationS = lr.Duration.Seconds()
	res.RPS = lr.RPS
	res.Latency = results.Latency{P50: us(lr.P50), P90: us(lr.P90), P99: us(lr.P99), P999: us(lr.P999), Max: us(lr.Max)}
	res.Errors = results.Errors{Connect: lr.ConnectErrors, Read: lr.ReadErrors, Write: lr.WriteErrors, Timeout: lr.Timeouts}
	res.Non2xx = lr.Non2xx
	if lr.Requests > 0 {
		if p != nil {
			res.ProxyCPUSeconds = (cpu1 - cpu0).Seconds()
			res.CPUMicrosPerRequest = float64((cpu1 - cpu0).Microseconds()) / float64(lr.Requests)
		}
		res.UpstreamCPUMicrosPerRequest = float64((up1 - up0).Microseconds()) / float64(lr.Requests)
	}
	// Whatever else ran on the machine during the window: all busy CPU time
	// minus the target, the upstream, the load generator (its rusage) and
	// the harness itself.
	res.LoadgenCPUSeconds = loadCPU.Seconds()
	if window := lr.Duration.Seconds() * float64(runtime.NumCPU()); window > 0 && busy1 > busy0 {
		ours := (cpu1 - cpu0) + (up1 - up0) + loadCPU + (self1 - self0)
		res.BackgroundCPUShare = max((busy1-busy0-ours).Seconds(), 0) / window
	}
	if p != nil {
		if m, err := proc.TreeMemory(p.PID()); err == nil {
			res.PeakRSSBytes = m.Peak
		}
	}
	return res
}

// load runs wrk, h2load, ghz or the HTTP/3 load once and parses its output. It also returns the
// CPU time the load generator used.
func (r *runner) load(ctx context.Context, sc scenario.Scenario, o loadgen.Options, dir, tag string) (loadgen.Result, string, time.Duration, error) {
	var argv []string
	logFile := ""
	switch sc.Driver {
	case scenario.Wrk:
		argv = loadgen.WrkArgs(o, r.wrkScript)
	case scenario.H2load:
		logFile = filepath.Join(dir, tag+"-h2load.log")
		argv = loadgen.H2loadArgs(o, logFile)
		defer func() { _ = os.Remove(logFile) }()
	case scenario.Ghz:
		addr := strings.TrimSuffix(strings.TrimPrefix(o.URL, "http://"), sc.Path) // the URL is addr + method
		argv = loadgen.GhzArgs(r.ghzBin, o, addr, sc.Path, ghzData(sc), max(o.Connections/max(o.Streams, 1), 1))
	case scenario.H3:
		self, err := os.Executable()
		if err != nil {
			return loadgen.Result{}, "", 0, err
		}
		argv = h3loadArgs(self, o)
	case scenario.WSEcho:
		// In-process (the harness's CPU is counted apart as its own).
		url := "ws://" + strings.TrimPrefix(o.URL, "http://")
		lr := loadgen.WSEcho(ctx, url, o, 64)
		return lr, fmt.Sprintf("harness: %d WebSocket connections to %s, 64-byte binary echo, one in flight each, %s", o.Connections, url, o.Duration), 0, nil
	default:
		return loadgen.Result{}, "", 0, fmt.Errorf("driver %q has no load generator", sc.Driver)
	}
	argv = append(append([]string{}, r.loadPin...), argv...)
	cmdline := target.ShellJoin(argv)
	ctx, cancel := context.WithTimeout(ctx, o.Duration+o.Timeout+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	out, err := cmd.CombinedOutput()
	_ = os.WriteFile(filepath.Join(dir, tag+"-"+string(sc.Driver)+".txt"), out, 0o644)
	var used time.Duration
	if cmd.ProcessState != nil {
		used = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	if err != nil {
		return loadgen.Result{}, cmdline, used, fmt.Errorf("%s: %v: %s", sc.Driver, err, lastLine(string(out)))
	}
	var lr loadgen.Result
	switch sc.Driver {
	case scenario.Wrk:
		lr, err = loadgen.ParseWrk(string(out))
	case scenario.Ghz:
		lr, err = loadgen.ParseGhz(string(out))
	case scenario.H3:
		err = json.Unmarshal(out, &lr)
	case scenario.H2load:
		lr, err = loadgen.ParseH2load(string(out))
		if err == nil {
			if f, ferr := os.Open(logFile); ferr == nil {
				err = loadgen.ParseH2loadLog(&lr, f)
				_ = f.Close()
			}
		}
	}
	return lr, cmdline, used, err
}

// measureIdle opens the idle connections and reads the RSS growth.
func (r *runner) measureIdle(ctx context.Context, res results.Result, sc scenario.Scenario, addr string, p *target.Process) results.Result {
	n := r.idleConns()
	time.Sleep(200 * time.Millisecond)
	base, err := proc.TreeMemory(p.PID())
	if err != nil {
		return fail(res, results.StatusError, fmt.Errorf("read rss: %w", err))
	}
	start := time.Now()
	open := loadgen.OpenIdle
	if sc.Driver == scenario.WSIdle {
		open = loadgen.OpenIdleWebSocket
	}
	ic := open(ctx, addr, sc.Path, n, 64)
	defer ic.Close()
	opened := time.Since(start)
	time.Sleep(r.cfg.idleSettle)
	after, err := proc.TreeMemory(p.PID())
	if err != nil {
		return fail(res, results.StatusError, fmt.Errorf("read rss: %w", err))
	}
	res.Status = results.StatusOK
	res.IdleConns, res.IdleOpened, res.IdleAlive = n, ic.Opened, ic.Alive()
	res.RSSBaseBytes, res.PeakRSSBytes = base.RSS, after.Peak
	res.Errors.Connect = uint64(ic.Failed)
	if res.IdleAlive > 0 {
		res.RSSPerConnBytes = (float64(after.RSS) - float64(base.RSS)) / float64(res.IdleAlive)
	}
	res.Commands = append(res.Commands, fmt.Sprintf("harness: %d keep-alive connections to %s, one GET %s each, held idle %s (opened in %s)",
		n, addr, sc.Path, r.cfg.idleSettle, opened.Round(time.Millisecond)))
	if ic.Failed > 0 {
		res.Reason = fmt.Sprintf("%d connections failed, first: %s", ic.Failed, ic.First)
	} else if res.IdleAlive < n {
		res.Reason = fmt.Sprintf("%d of %d connections closed by the target while idle", n-res.IdleAlive, n)
	}
	return res
}

// idleConns clamps -idle-conns to what RLIMIT_NOFILE allows: the harness holds
// one descriptor per connection and a proxy up to two (client + upstream).
func (r *runner) idleConns() int {
	if r.noFile == 0 {
		return r.cfg.idleConns
	}
	limit := max(int(r.noFile)-256, 2) / 2
	return min(r.cfg.idleConns, limit)
}

func (r *runner) sampleCPU(p, up *target.Process) (proxy, upstream time.Duration) {
	if p != nil {
		proxy, _ = proc.TreeCPU(p.PID())
	}
	upstream, _ = proc.TreeCPU(up.PID())
	return proxy, upstream
}

// selfCPU is the harness's own CPU time, without its children.
func selfCPU() time.Duration {
	st, err := proc.ReadStat(os.Getpid())
	if err != nil {
		return 0
	}
	return st.CPU()
}

type profileResult struct {
	profile, flame string
	err            error
}

// pullProfile fetches a CPU profile covering the measured window from the
// gateway's admin endpoint and renders it as a flame graph.
func (r *runner) pullProfile(ctx context.Context, dir string, g *target.Gateway) profileResult {
	var pr profileResult
	secs := max(int(r.cfg.duration/time.Second)-1, 1)
	url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", g.AdminAddr, secs)
	ctx, cancel := context.WithTimeout(ctx, time.Duration(secs+15)*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		pr.err = err
		return pr
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		pr.err = fmt.Errorf("fetch %s: %w", url, err)
		return pr
	}
	defer func() { _ = resp.Body.Close() }()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		pr.err = fmt.Errorf("fetch %s: status %d: %v", url, resp.StatusCode, err)
		return pr
	}
	pr.profile = filepath.Join(dir, "cpu.pb.gz")
	if err := os.WriteFile(pr.profile, data, 0o644); err != nil {
		pr.err = err
		return pr
	}
	prof, err := flame.Parse(data)
	if err != nil {
		pr.err = fmt.Errorf("parse profile: %w", err)
		return pr
	}
	_ = os.WriteFile(filepath.Join(dir, "cpu.folded"), flame.Folded(prof), 0o644)
	pr.flame = filepath.Join(dir, "flame.html")
	title := fmt.Sprintf("%s CPU profile, %s (%ds)", g.Name(), filepath.Base(dir), secs)
	if err := os.WriteFile(pr.flame, flame.HTML(prof, title), 0o644); err != nil {
		pr.err = err
		pr.flame = ""
	}
	return pr
}

// extraUpstream is a bench upstream of another protocol.
type extraUpstream struct {
	addr string
	proc *target.Process
}

// upstreamFlag is the `bench upstream` flag of the upstream a protocol's
// scenarios proxy to ("" for the HTTP/1.1 one).
var upstreamFlag = map[string]string{
	target.ProtoH2CToH2C:  "-h2c",
	target.ProtoGRPC:      "-grpc",
	target.ProtoWebSocket: "-ws",
}

// ghzData is the request of a gRPC scenario: one 64-byte message asking
// for 64 bytes back, or for a stream 100 of them.
func ghzData(sc scenario.Scenario) string {
	body := base64.StdEncoding.EncodeToString(make([]byte, 64))
	if strings.HasSuffix(sc.Path, "FullDuplexCall") {
		msg := `{"response_parameters":[{"size":64}],"payload":{"body":"` + body + `"}}`
		return "[" + strings.TrimSuffix(strings.Repeat(msg+",", 100), ",") + "]"
	}
	return `{"response_size":64,"payload":{"body":"` + body + `"}}`
}

// buildGhz builds ghz once, pinned by tools/ghz.mod so that its
// dependencies never move the gateway's go.mod.
func (r *runner) buildGhz(ctx context.Context) error {
	if r.ghzBin != "" || r.ghzErr != nil {
		return r.ghzErr
	}
	root, err := moduleRoot()
	if err != nil {
		r.ghzErr = err
		return err
	}
	bin := filepath.Join(r.dir, "bin", "ghz")
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-modfile=tools/ghz.mod", "-o", bin, "github.com/bojand/ghz/cmd/ghz")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
	if out, err := cmd.CombinedOutput(); err != nil {
		r.ghzErr = fmt.Errorf("go build -modfile=tools/ghz.mod: %s", firstNonComment(string(out), err))
		return r.ghzErr
	}
	r.ghzBin = bin
	r.tools["ghz"] = "v0.120.0 (tools/ghz.mod)"
	return nil
}

// buildCaddy builds Caddy from tools/caddy.mod (pinned, so that its
// dependencies never move the gateway's go.mod) into the user cache, under
// a name keyed by the module files and the Go version, so that later runs
// reuse it; only when a selected scenario is one Caddy serves.
func (r *runner) buildCaddy(ctx context.Context, scenarios []scenario.Scenario) error {
	if r.caddy.Bin != "" || r.caddy.BuildErr != nil {
		return r.caddy.BuildErr
	}
	needed := false
	for _, sc := range scenarios {
		needed = needed || r.caddy.Supports(sc.Protocol)
	}
	if !needed {
		return errors.New("no selected scenario is one caddy serves (h3, tls-*)")
	}
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	h := sha256.New()
	for _, f := range []string{"tools/caddy.mod", "tools/caddy.sum"} {
		data, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			return err
		}
		h.Write(data)
	}
	h.Write([]byte(runtime.Version()))
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	bin := filepath.Join(cache, "expressgateway-bench", fmt.Sprintf("caddy-%s-%x", target.CaddyVersion, h.Sum(nil)[:6]), "caddy")
	if _, err := os.Stat(bin); err != nil {
		fmt.Fprintf(os.Stderr, "building caddy %s from tools/caddy.mod into %s\n", target.CaddyVersion, filepath.Dir(bin))
		ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
		defer cancel()
		tmp := bin + ".tmp"
		cmd := exec.CommandContext(ctx, "go", "build", "-modfile=tools/caddy.mod", "-trimpath", "-o", tmp, "github.com/caddyserver/caddy/v2/cmd/caddy")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build -modfile=tools/caddy.mod: %s", firstNonComment(string(out), err))
		}
		if err := os.Rename(tmp, bin); err != nil {
			return err
		}
	}
	r.caddy.Bin = bin
	return nil
}

// buildGateway builds ./cmd/expressgateway unless -gateway-bin names a binary.
func (r *runner) buildGateway(ctx context.Context) error {
	if r.cfg.gatewayBin != "" {
		if _, err := os.Stat(r.cfg.gatewayBin); err != nil {
			return fmt.Errorf("-gateway-bin: %w", err)
		}
		abs, err := filepath.Abs(r.cfg.gatewayBin)
		if err != nil {
			return err
		}
		r.gateway.Bin = abs
		return nil
	}
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(root, "cmd", "expressgateway", "main.go")); err != nil {
		return errors.New("cmd/expressgateway/main.go does not exist yet")
	}
	bin := filepath.Join(r.dir, "bin", "expressgateway")
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/expressgateway")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/expressgateway: %s", firstNonComment(string(out), err))
	}
	r.gateway.Bin = bin
	return nil
}

func (r *runner) probeTools(ctx context.Context) {
	version := func(name string, argv ...string) {
		if _, err := exec.LookPath(argv[0]); err != nil {
			r.tools[name] = "not installed"
			return
		}
		v, err := target.Version(ctx, argv...)
		if err != nil {
			v = "unknown: " + err.Error()
		}
		r.tools[name] = v
	}
	version("wrk", "wrk", "-v")
	version("h2load", "h2load", "--version")
	version("taskset", "taskset", "--version")
	version("go", "go", "version")
	r.tools["harness"] = runtime.Version()
}

// setPinning splits the CPUs: the proxy gets the first -workers CPUs, the load
// generator and the upstream share the rest.
func (r *runner) setPinning() (string, error) {
	n := runtime.NumCPU()
	w := r.cfg.workers
	if _, err := exec.LookPath("taskset"); err != nil {
		return "", errors.New("-pin needs taskset (util-linux)")
	}
	if w >= n {
		return "", fmt.Errorf("-pin needs more CPUs (%d) than -workers (%d)", n, w)
	}
	proxy, load := cpuList(0, w-1), cpuList(w, n-1)
	r.proxyPin = []string{"taskset", "-c", proxy}
	r.loadPin = []string{"taskset", "-c", load}
	return fmt.Sprintf("proxy on CPU %s; load generator and upstream on CPU %s (taskset)", proxy, load), nil
}

func cpuList(from, to int) string {
	if from == to {
		return strconv.Itoa(from)
	}
	return fmt.Sprintf("%d-%d", from, to)
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}

func fail(res results.Result, status string, err error) results.Result {
	res.Status = status
	res.Reason = strings.TrimPrefix(err.Error(), target.ErrUnavailable.Error()+": ")
	return res
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

func oneLine(r results.Result) string {
	switch {
	case r.Status != results.StatusOK:
		return r.Status + " " + r.Reason
	case r.IdleConns > 0:
		return fmt.Sprintf("%d/%d idle conns alive, %s/conn", r.IdleAlive, r.IdleConns, results.Bytes(uint64(max(r.RSSPerConnBytes, 0))))
	default:
		cpu := ""
		if r.CPUMicrosPerRequest > 0 {
			cpu = fmt.Sprintf(", %.1f cpu-µs/req", r.CPUMicrosPerRequest)
		}
		return fmt.Sprintf("%.0f rps, p99 %s%s, %d errors, %d non-2xx, bg-cpu %.0f%%", r.RPS,
			time.Duration(r.Latency.P99*float64(time.Microsecond)).Round(10*time.Microsecond), cpu,
			r.Errors.Total(), r.Non2xx, 100*r.BackgroundCPUShare)
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

func firstNonComment(out string, err error) string {
	for _, l := range strings.Split(out, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			return l
		}
	}
	return err.Error()
}

func rel(p string) string {
	if wd, err := os.Getwd(); err == nil {
		if r, err := filepath.Rel(wd, p); err == nil && !strings.HasPrefix(r, "..") {
			return r
		}
	}
	return p
}

func scenarioNames(s []scenario.Scenario) []string {
	var n []string
	for _, x := range s {
		n = append(n, x.Name)
	}
	return n
}

func targetNames(ts []target.Target) []string {
	var n []string
	for _, t := range ts {
		n = append(n, t.Name())
	}
	return n
}

// orderLike sorts summary rows by scenario (as run) and then target order as given.
func orderLike(rows []results.Result, ts []target.Target) []results.Result {
	rank := map[string]int{}
	for i, t := range ts {
		rank[t.Name()] = i
	}
	out := make([]results.Result, 0, len(rows))
	var scen []string
	seen := map[string]bool{}
	for _, r := range rows {
		if !seen[r.Scenario] {
			seen[r.Scenario] = true
			scen = append(scen, r.Scenario)
		}
	}
	for _, s := range scen {
		for i := range ts {
			for _, r := range rows {
				if r.Scenario == s && rank[r.Target] == i {
					out = append(out, r)
				}
			}
		}
	}
	return out
}
