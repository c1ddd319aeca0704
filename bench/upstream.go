// SPDX-License-Identifier: GPL-3.0-only

package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/expressgateway/expressgateway/bench/internal/target"
	"github.com/expressgateway/expressgateway/bench/internal/upstream"
)

// upstreamCommand is the hidden subcommand the harness re-executes itself
// with, so that the upstream runs in its own process: its CPU does not mix
// with the harness's, and it can be pinned apart from the proxy.
const upstreamCommand = "upstream"

// runUpstream serves until SIGINT/SIGTERM. It prints "listening ADDR" once
// the listener is open.
func runUpstream(args []string) error {
	fs := flag.NewFlagSet(upstreamCommand, flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on")
	h2c := fs.Bool("h2c", false, "speak HTTP/2 with prior knowledge (net/http) instead of HTTP/1.1")
	if err := fs.Parse(args); err != nil {
		return err
	}
	lc := net.ListenConfig{}
	ln, err := lc.Listen(context.Background(), "tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	fmt.Printf("listening %s\n", ln.Addr())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sig
		_ = ln.Close()
	}()
	if *h2c {
		return serveH2C(ln)
	}
	return upstream.New().Serve(ln)
}

// serveH2C is the h2c upstream: net/http's HTTP/2 server with prior
// knowledge only, answering every path with the small body.
func serveH2C(ln net.Listener) error {
	body := bytes.Repeat([]byte("x"), upstream.SmallBody)
	body[len(body)-1] = '\n'
	cl := strconv.Itoa(len(body))
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Length", cl)
		_, _ = w.Write(body)
	}), HTTP2: &http.HTTP2Config{MaxConcurrentStreams: 1000}}
	srv.Protocols = new(http.Protocols)
	srv.Protocols.SetUnencryptedHTTP2(true)
	if err := srv.Serve(ln); err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// startUpstream launches the upstream subprocess and waits for its address.
func startUpstream(ctx context.Context, pin []string, extra ...string) (*target.Process, string, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, "", err
	}
	full := append(append(append([]string{}, pin...), self, upstreamCommand, "-listen", "127.0.0.1:0"), extra...)
	cmd := exec.Command(full[0], full[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	if err := cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("start upstream: %w", err)
	}
	p := target.Adopt(cmd, target.ShellJoin(full))
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
	}()
	select {
	case line := <-lines:
		addr, ok := strings.CutPrefix(line, "listening ")
		if !ok {
			p.Stop()
			return nil, "", fmt.Errorf("upstream said %q", line)
		}
		return p, addr, nil
	case <-time.After(10 * time.Second):
		p.Stop()
		return nil, "", fmt.Errorf("upstream did not start in 10s")
	case <-ctx.Done():
		p.Stop()
		return nil, "", ctx.Err()
	}
}
