// SPDX-License-Identifier: GPL-3.0-only

package main

import (
	"context"
	"encoding/json"
	"flag"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/expressgateway/expressgateway/bench/internal/loadgen"
)

// h3loadCommand is the hidden subcommand that runs the HTTP/3 load
// (loadgen.H3) in a process of its own, as wrk and h2load run: its CPU is
// the load generator's (its rusage), apart from the target's and the
// harness's, and -pin can put it beside the upstream.
const h3loadCommand = "h3load"

// headerList is a repeatable -H flag.
type headerList []string

func (h *headerList) String() string     { return strings.Join(*h, ", ") }
func (h *headerList) Set(v string) error { *h = append(*h, v); return nil }

// runH3load runs one load and prints its loadgen.Result as JSON on stdout.
func runH3load(args []string) error {
	var o loadgen.Options
	var headers headerList
	fs := flag.NewFlagSet(h3loadCommand, flag.ContinueOnError)
	fs.IntVar(&o.Connections, "c", 64, "QUIC connections")
	fs.IntVar(&o.Streams, "m", 10, "requests in flight per connection")
	fs.DurationVar(&o.Duration, "d", 10*time.Second, "duration")
	fs.DurationVar(&o.Timeout, "timeout", 5*time.Second, "per-request timeout")
	fs.Var(&headers, "H", "extra request header \"Name: value\" (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return flag.ErrHelp
	}
	o.URL, o.Headers = fs.Arg(0), headers
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return json.NewEncoder(os.Stdout).Encode(loadgen.H3(ctx, o))
}

// h3loadArgs is the command line of one HTTP/3 load (after any pin prefix).
func h3loadArgs(self string, o loadgen.Options) []string {
	argv := []string{self, h3loadCommand, "-c", strconv.Itoa(o.Connections), "-m", strconv.Itoa(max(o.Streams, 1)),
		"-d", o.Duration.String(), "-timeout", o.Timeout.String()}
	for _, h := range o.Headers {
		argv = append(argv, "-H", h)
	}
	return append(argv, o.URL)
}
