// SPDX-License-Identifier: GPL-3.0-only

// Command bench runs load scenarios against expressgateway and its peers
// (HAProxy, nginx) side by side, in front of the same upstream, and reports
// rate, latency, errors, CPU per request and memory, as a table and as JSON.
//
//	go run ./bench [flags]
//	go run ./bench -list
//
// See bench/README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/expressgateway/expressgateway/bench/internal/results"
	"github.com/expressgateway/expressgateway/bench/internal/scenario"
	"github.com/expressgateway/expressgateway/bench/internal/target"
)

// config is the parsed command line.
type config struct {
	scenarios   string
	targets     string
	duration    time.Duration
	warmup      time.Duration
	connections int
	threads     int
	streams     int
	workers     int
	rounds      int
	idleConns   int
	idleSettle  time.Duration
	timeout     time.Duration
	pin         bool
	profile     bool
	outDir      string
	gatewayBin  string
	strict      bool
	list        bool
	smoke       bool
	show        string
}

// defaultTargets is the comparison `make bench` shows.
const defaultTargets = "direct,expressgateway-l4,expressgateway,haproxy,nginx"

func parseFlags(args []string) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.StringVar(&c.scenarios, "scenarios", strings.Join(scenario.Default, ","), "comma-separated scenarios or groups (\"tls\": the https scenarios), or \"all\" (see -list)")
	fs.StringVar(&c.targets, "targets", defaultTargets, "comma-separated targets: direct, expressgateway-l4, expressgateway, expressgateway-log, haproxy, haproxy-tcp, nginx, caddy")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "measured load per target and round (whole seconds)")
	fs.DurationVar(&c.warmup, "warmup", 2*time.Second, "unmeasured load before each measurement (0 to skip)")
	fs.IntVar(&c.connections, "conns", 64, "concurrent client connections")
	fs.IntVar(&c.threads, "threads", 1, "load generator threads")
	fs.IntVar(&c.streams, "streams", 10, "h2load and h3: concurrent streams per connection")
	fs.IntVar(&c.workers, "workers", 1, "proxy event loops / threads / worker processes, the same for every proxy")
	fs.IntVar(&c.rounds, "rounds", 1, "rounds; targets take turns within a round and the summary is the median")
	fs.IntVar(&c.idleConns, "idle-conns", 20000, "h1-idle: idle keep-alive connections (clamped to what RLIMIT_NOFILE allows)")
	fs.DurationVar(&c.idleSettle, "idle-settle", time.Second, "h1-idle: wait after opening the connections before reading RSS")
	fs.DurationVar(&c.timeout, "timeout", 5*time.Second, "per-request timeout of the load generator")
	fs.BoolVar(&c.pin, "pin", false, "pin the proxy to the first -workers CPUs and the load generator and upstream to the rest (taskset)")
	fs.BoolVar(&c.profile, "profile", false, "pull a CPU profile from the gateway's admin pprof endpoint during each measured run and write a flame graph")
	fs.StringVar(&c.outDir, "out", "", "results folder, a JSON file and an artifacts folder per run (default: bench/results of the module)")
	fs.StringVar(&c.gatewayBin, "gateway-bin", "", "expressgateway binary to run (default: build ./cmd/expressgateway into the run folder)")
	fs.BoolVar(&c.strict, "strict", false, "exit 1 if a target did not start or any load saw errors or non-2xx responses (never on timings)")
	fs.BoolVar(&c.list, "list", false, "list scenarios and targets, then exit")
	fs.StringVar(&c.show, "show", "", "print the table of an earlier run's JSON file, then exit")
	fs.BoolVar(&c.smoke, "smoke", false, "CI smoke run: h1-keepalive against expressgateway and haproxy, 3s, -strict (other flags given explicitly still win)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if c.smoke {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		defaults := map[string]string{"scenarios": "h1-keepalive", "targets": "expressgateway,haproxy",
			"duration": "3s", "warmup": "1s", "strict": "true"}
		for name, v := range defaults {
			if !set[name] {
				if err := fs.Set(name, v); err != nil {
					return nil, err
				}
			}
		}
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	switch {
	case c.duration < time.Second:
		return nil, errors.New("-duration must be at least 1s")
	case c.connections < 1 || c.threads < 1 || c.workers < 1 || c.rounds < 1 || c.streams < 1:
		return nil, errors.New("-conns, -threads, -workers, -rounds and -streams must be positive")
	case c.idleConns < 1:
		return nil, errors.New("-idle-conns must be positive")
	}
	return c, nil
}

func main() {
	os.Exit(runMain(os.Args[1:])) //nolint:forbidigo // the program's one exit, after every deferred call of runMain has run
}

// runMain runs the command line args and returns the exit code: 0, 1 when
// the run failed, 2 for a bad command line.
func runMain(args []string) int {
	if len(args) > 0 && args[0] == h3loadCommand {
		if err := runH3load(args[1:]); err != nil {
			fmt.Fprintln(os.Stderr, "bench h3load:", err)
			return 1
		}
		return 0
	}
	if len(args) > 0 && args[0] == upstreamCommand {
		if err := runUpstream(args[1:]); err != nil {
			fmt.Fprintln(os.Stderr, "bench upstream:", err)
			return 1
		}
		return 0
	}
	cfg, err := parseFlags(args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 2
	}
	if cfg.list {
		printList()
		return 0
	}
	if cfg.show != "" {
		if err := show(cfg.show); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
		return 0
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	failed, err := run(ctx, cfg, args)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	if failed && cfg.strict {
		fmt.Fprintln(os.Stderr, "bench: -strict: a target did not start, or the load saw errors or non-2xx responses")
		return 1
	}
	return 0
}

// show prints the header and table of a results file.
func show(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	run, err := results.Read(f)
	if err != nil {
		return err
	}
	m := run.Machine
	fmt.Printf("bench %s: %d CPUs (%s), kernel %s, pinning %s, load average %.2f\n", run.ID, m.NProc, m.CPUModel, m.Kernel, run.Pinning, run.LoadAvgStart[0])
	o := run.Options
	fmt.Printf("%d conns, %d wrk/h2load threads, %d proxy workers, %s per run (+%s warm-up), %d round(s)\n\n",
		o.Connections, o.Threads, o.Workers, o.Duration, o.Warmup, o.Rounds)
	return results.PrintTable(os.Stdout, run.Summary)
}

func printList() {
	fmt.Println("scenarios:")
	for _, s := range scenario.All {
		note := ""
		if s.Pending {
			note = " (slot: not supported yet)"
		}
		fmt.Printf("  %-13s %-7s %-7s %s%s\n", s.Name, s.Protocol, s.Driver, s.Description, note)
	}
	fmt.Println("groups:")
	for _, g := range scenario.GroupNames() {
		fmt.Printf("  %-13s %s\n", g, strings.Join(scenario.Groups[g], ","))
	}
	fmt.Println("targets:")
	fmt.Println("  direct          the bench upstream with nothing in front (the ceiling)")
	fmt.Println("  expressgateway-l4  ./cmd/expressgateway, tcp listener: the userspace L4 relay (the engine's ceiling)")
	fmt.Println("  expressgateway  ./cmd/expressgateway, http listener")
	fmt.Println("  expressgateway-log  the same with its access log on (to a file): the cost of the log")
	fmt.Println("  haproxy         the reference: ratios are to it")
	fmt.Println("  haproxy-tcp     haproxy in mode tcp: the peer of expressgateway-l4")
	fmt.Println("  nginx")
	fmt.Println("  caddy           Caddy " + target.CaddyVersion + " (built from tools/caddy.mod): h3 (the reference of h3) and the https scenarios")
}
