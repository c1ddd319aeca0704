// SPDX-License-Identifier: GPL-3.0-only

package lb

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// Short real intervals: these checks talk to real loopback servers.
func fastCheck(typ string) *HealthCheckSpec {
	return &HealthCheckSpec{
		Type: typ, Interval: 25 * time.Millisecond, Timeout: time.Second,
		Jitter: 5 * time.Millisecond, HealthyThreshold: 2, UnhealthyThreshold: 3,
	}
}

// waitHealthy polls until e.Healthy() == want and returns how long it took.
func waitHealthy(t *testing.T, e *Endpoint, want bool) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < 5*time.Second {
		if e.Healthy() == want {
			// The state flips just before the pick set is rebuilt under
			// c.mu; taking the lock waits for the rebuild.
			e.c.mu.Lock()
			settled := e.Healthy() == want
			e.c.mu.Unlock()
			if !settled {
				continue
			}
			return time.Since(start)
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("%s: healthy=%v not reached in 5s", e.Address(), want)
	return 0
}

type eventLog struct {
	mu  sync.Mutex
	evs []HealthEvent
}

func (l *eventLog) add(ev HealthEvent) { l.mu.Lock(); l.evs = append(l.evs, ev); l.mu.Unlock() }
func (l *eventLog) list() []HealthEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]HealthEvent(nil), l.evs...)
}

func TestHealthCheckHTTP(t *testing.T) {
	var status atomic.Int32
	status.Store(200)
	var gotHost, gotPath atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotHost.Store(r.Host)
		gotPath.Store(r.URL.Path)
		w.WriteHeader(int(status.Load()))
	}))
	defer srv.Close()
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer other.Close()

	hc := fastCheck("http")
	hc.Path = "/ready"
	hc.Host = "health.internal"
	hc.ExpectedStatuses = []string{"200-299", "418"}
	var log eventLog
	c := mustCluster(t, Spec{
		Algorithm: RoundRobin, HealthCheck: hc, PanicThreshold: -1,
		Endpoints: []EndpointSpec{{Address: srv.Listener.Addr().String()}, {Address: other.Listener.Addr().String()}},
	}, WithHealthEvents(log.add))
	c.Start(context.Background())
	e := c.Endpoints()[0]

	time.Sleep(150 * time.Millisecond)
	if !e.Healthy() {
		t.Fatal("healthy server marked unhealthy")
	}
	if gotHost.Load() != "health.internal" || gotPath.Load() != "/ready" {
		t.Fatalf("probe Host %v path %v", gotHost.Load(), gotPath.Load())
	}
	status.Store(418) // listed
	time.Sleep(150 * time.Millisecond)
	if !e.Healthy() {
		t.Fatal("418 is expected but marked unhealthy")
	}
	status.Store(503)
	d := waitHealthy(t, e, false)
	t.Logf("http: out after %v (interval 25ms × unhealthy threshold 3)", d)
	for _, p := range countPicksEndpoints(t, c, 10) {
		if p == e {
			t.Fatal("unhealthy endpoint picked")
		}
	}
	status.Store(200)
	d = waitHealthy(t, e, true)
	t.Logf("http: back after %v (healthy threshold 2)", d)

	c.Close()
	evs := log.list()
	if len(evs) != 2 || evs[0].Healthy || evs[0].Reason != "active_check_failed" || evs[0].Err == nil ||
		!evs[1].Healthy || evs[1].Reason != "active_check_passed" {
		t.Fatalf("events %+v", evs)
	}
}

func TestHealthCheckTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	serve := func(ln net.Listener) {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			_ = conn.Close()
		}
	}
	go serve(ln)
	c := mustCluster(t, Spec{Algorithm: RoundRobin, HealthCheck: fastCheck("tcp"), Endpoints: []EndpointSpec{{Address: addr}}})
	c.Start(context.Background())
	e := c.Endpoints()[0]
	time.Sleep(100 * time.Millisecond)
	if !e.Healthy() {
		t.Fatal("listening endpoint unhealthy")
	}
	_ = ln.Close()
	t.Logf("tcp: out after %v", waitHealthy(t, e, false))
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s again: %v", addr, err)
	}
	defer func() { _ = ln.Close() }()
	go serve(ln)
	t.Logf("tcp: back after %v", waitHealthy(t, e, true))
}

func TestHealthCheckGRPC(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	go func() { _ = srv.Serve(ln) }()
	defer srv.Stop()

	hc := fastCheck("grpc")
	hc.GRPCService = "echo.Echo"
	hs.SetServingStatus("echo.Echo", healthpb.HealthCheckResponse_SERVING)
	c := mustCluster(t, Spec{Algorithm: RoundRobin, HealthCheck: hc, Endpoints: []EndpointSpec{{Address: ln.Addr().String()}}})
	c.Start(context.Background())
	e := c.Endpoints()[0]
	time.Sleep(100 * time.Millisecond)
	if !e.Healthy() {
		t.Fatal("serving endpoint unhealthy")
	}
	hs.SetServingStatus("echo.Echo", healthpb.HealthCheckResponse_NOT_SERVING)
	t.Logf("grpc: out after %v", waitHealthy(t, e, false))
	hs.SetServingStatus("echo.Echo", healthpb.HealthCheckResponse_SERVING)
	t.Logf("grpc: back after %v", waitHealthy(t, e, true))
}

func TestHealthCheckStopsOnClose(t *testing.T) {
	var probes atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { probes.Add(1) }))
	defer srv.Close()
	c := mustCluster(t, Spec{HealthCheck: fastCheck("http"), Endpoints: []EndpointSpec{{Address: srv.Listener.Addr().String()}}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c.Start(ctx)
	for start := time.Now(); probes.Load() < 2 && time.Since(start) < 5*time.Second; {
		time.Sleep(5 * time.Millisecond)
	}
	c.Close()
	n := probes.Load()
	time.Sleep(100 * time.Millisecond)
	if n < 2 || probes.Load() != n {
		t.Fatalf("probes before close %d, after %d", n, probes.Load())
	}
}
