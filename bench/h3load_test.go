// SPDX-License-Identifier: GPL-3.0-only

package main

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"

	"github.com/expressgateway/expressgateway/bench/internal/loadgen"
	"github.com/expressgateway/expressgateway/bench/internal/scenario"
	"github.com/expressgateway/expressgateway/bench/internal/target"
)

// TestH3loadChild runs the h3 scenario's load the way the harness does, as
// a child process ("bench h3load", here the test binary), for one second
// against a local quic-go server: the result comes back as JSON, and its
// CPU is the child's own (the load generator's), not the harness's or a
// target's.
func TestH3loadChild(t *testing.T) {
	dir := t.TempDir()
	cert, err := target.WriteCert(dir)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := tls.LoadX509KeyPair(cert.CertFile, cert.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var served atomic.Uint64
	srv := &http3.Server{
		TLSConfig: http3.ConfigureTLSConfig(&tls.Config{Certificates: []tls.Certificate{kp}}),
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			served.Add(1)
			_, _ = w.Write(make([]byte, 64))
		}),
	}
	go func() { _ = srv.Serve(pc) }()
	defer func() { _ = srv.Close() }()
	if err := target.WaitReady(context.Background(), nil, pc.LocalAddr().String(), target.ProtoH3, 5*time.Second); err != nil {
		t.Fatalf("probe: %v", err)
	}

	sc, _ := scenario.Lookup("h3")
	r := &runner{cfg: &config{}}
	o := loadgen.Options{URL: "https://" + pc.LocalAddr().String() + "/", Duration: time.Second, Connections: 2, Streams: 4,
		Timeout: time.Second, Headers: []string{"X-Bench: 1"}}
	lr, cmdline, used, err := r.load(context.Background(), sc, o, dir, "run")
	if err != nil {
		t.Fatal(err)
	}
	if lr.Requests == 0 || lr.Errors() != 0 || lr.Non2xx != 0 || lr.P99 <= 0 || lr.Requests > served.Load() {
		t.Errorf("load: %+v (server served %d)", lr, served.Load())
	}
	if used <= 0 {
		t.Error("the load generator's CPU was not counted as its own")
	}
	for _, want := range []string{" h3load -c 2 -m 4 -d 1s -timeout 1s -H 'X-Bench: 1' https://"} {
		if !strings.Contains(cmdline, want) {
			t.Errorf("command line %q lacks %q", cmdline, want)
		}
	}
}
