// SPDX-License-Identifier: GPL-3.0-only

package engine

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/rs/zerolog"

	"github.com/expressgateway/expressgateway/conf"
	"github.com/expressgateway/expressgateway/engine/accesslog"
	"github.com/expressgateway/expressgateway/stages"
)

// gw is a gateway engine running in the test process on loopback.
type gw struct {
	addr string
	eng  *Engine
	set  *metrics.Set
	m    *Metrics
}

func freePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	return ln.Addr().String()
}

// startGW starts an engine whose single listener "web" routes everything to
// cluster "app" with the given endpoints. extraListener is TOML appended to
// the listener table (timeouts, limits); extraCluster to the cluster table.
func startGW(t testing.TB, endpoints []string, listenerTOML, clusterTOML string, hook func(*stages.Exchange)) *gw {
	t.Helper()
	return startGWLoops(t, 2, endpoints, listenerTOML, clusterTOML, hook)
}

// startGWLoops is startGW with a given number of event loops.
func startGWLoops(t testing.TB, loops int, endpoints []string, listenerTOML, clusterTOML string, hook func(*stages.Exchange)) *gw {
	t.Helper()
	addr := freePort(t)
	var eps []string
	for _, e := range endpoints {
		eps = append(eps, fmt.Sprintf("{ address = %q }", e))
	}
	text := fmt.Sprintf(`
[admin]
listen = ""
[engine]
event_loops = %d
[log]
access_log = false
[[listeners]]
name = "web"
listen = %q
%s
[[listeners.routes]]
path_prefix = "/"
cluster = "app"
[[clusters]]
name = "app"
endpoints = [ %s ]
%s
`, loops, addr, listenerTOML, strings.Join(eps, ", "), clusterTOML)
	g := runEngine(t, text, hook)
	g.addr = addr
	// Wait until the port accepts.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			_ = c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway did not start: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return g
}

// runEngine parses text as a whole config and serves it in-process until
// the test ends.
func runEngine(t testing.TB, text string, hook func(*stages.Exchange)) *gw {
	t.Helper()
	return runEngineInherit(t, text, hook, nil)
}

// runEngineWith is runEngine adopting inherited listening sockets.
func runEngineWith(t *testing.T, text string, inherited map[string][]int) *gw {
	t.Helper()
	return runEngineInherit(t, text, nil, inherited)
}

func runEngineInherit(t testing.TB, text string, hook func(*stages.Exchange), inherited map[string][]int) *gw {
	t.Helper()
	snap, err := conf.Parse("test.toml", []byte(text))
	if err != nil {
		t.Fatalf("config: %v\n%s", err, text)
	}
	set := metrics.NewSet()
	m := NewMetrics(set)
	log := zerolog.New(io.Discard)
	if testing.Verbose() {
		log = zerolog.New(zerolog.NewTestWriter(t))
	}
	cl, err := NewClusters(snap, set, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cl.Start(ctx)
	// Access-log lines (for listeners that turn it on) go nowhere, through
	// the same buffered writer the binary uses.
	alog, err := accesslog.New(accesslog.Options{Out: io.Discard, Metrics: set})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := New(Options{Snapshot: snap, Log: log, Metrics: m, Clusters: cl, TestHook: hook, AccessLog: alog, Inherited: inherited})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- eng.Serve() }()
	<-eng.Ready()
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		_ = eng.Stop(sctx)
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("engine serve: %v", err)
			}
		case <-sctx.Done():
		}
		cancel()
		cl.Close()
		_ = alog.Close()
	})
	return &gw{eng: eng, set: set, m: m}
}

// waitMetric polls until series equals want (request accounting happens
// just after the response bytes are written) and returns the last value.
func (g *gw) waitMetric(series string, want float64) float64 {
	var v float64
	for i := 0; i < 100; i++ {
		if v = g.metric(series); v == want {
			return v
		}
		time.Sleep(10 * time.Millisecond)
	}
	return v
}

// metric returns the value of one exact series from the set, or 0.
func (g *gw) metric(series string) float64 {
	var b strings.Builder
	g.set.WritePrometheus(&b)
	for _, line := range strings.Split(b.String(), "\n") {
		if strings.HasPrefix(line, series+" ") {
			v, err := strconv.ParseFloat(strings.TrimPrefix(line, series+" "), 64)
			if err != nil {
				return math.NaN() // equals nothing: the caller's check fails
			}
			return v
		}
	}
	return 0
}

// upstream is a counting HTTP/1.1 origin.
type origin struct {
	*httptest.Server
	conns    atomic.Int64
	closed   atomic.Int64
	requests atomic.Int64
}

func newOrigin(t *testing.T, h http.HandlerFunc) *origin {
	t.Helper()
	o := &origin{}
	o.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.requests.Add(1)
		h(w, r)
	}))
	o.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			o.conns.Add(1)
		case http.StateClosed, http.StateHijacked:
			o.closed.Add(1)
		}
	}
	o.Start()
	t.Cleanup(o.Close)
	return o
}

func (o *origin) addr() string { return strings.TrimPrefix(o.URL, "http://") }

// rawConn is a client connection speaking bytes.
type rawConn struct {
	net.Conn
	r *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	return dialRawFrom(t, addr, "")
}

// dialRawFrom dials from a given local loopback IP ("" for any), so tests of
// per-IP limits are not disturbed by other connections from 127.0.0.1.
func dialRawFrom(t *testing.T, addr, localIP string) *rawConn {
	t.Helper()
	d := net.Dialer{}
	if localIP != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(localIP)}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	return &rawConn{Conn: c, r: bufio.NewReader(c)}
}

func (c *rawConn) send(t *testing.T, s string) {
	t.Helper()
	if _, err := io.WriteString(c, s); err != nil {
		t.Fatal(err)
	}
}

// readResponse reads one response (to a request with method).
func (c *rawConn) readResponse(t *testing.T, method string) (*http.Response, string) {
	t.Helper()
	resp, err := http.ReadResponse(c.r, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	_ = resp.Body.Close()
	return resp, string(body)
}

// closedByPeer reports whether the server closed the connection.
func (c *rawConn) closedByPeer(wait time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(wait))
	_, err := c.r.ReadByte()
	return err == io.EOF || (err != nil && strings.Contains(err.Error(), "reset"))
}
