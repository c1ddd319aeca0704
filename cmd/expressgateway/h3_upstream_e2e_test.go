// SPDX-License-Identifier: GPL-3.0-only

package main

// HTTP/3 upstreams (clusters with protocol = "h3") through the binary,
// against quic-go's HTTP/3 server, and the protocol matrix: every front
// (HTTP/1.1, HTTP/2, HTTP/3) to every back (HTTP/1.1, h2c, HTTP/3).

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

// protoOrigin is a test origin of one protocol: requests counts the
// requests it served, conns the connections it accepted.
type protoOrigin struct {
	addr     string
	requests atomic.Int64
	conns    atomic.Int64
}

// streamGates hold /stream responses between their first and last chunk
// until the test has seen the first (by the request's gate= query).
var streamGates sync.Map // string → chan struct{}

func streamGate(name string) chan struct{} {
	ch, _ := streamGates.LoadOrStore(name, make(chan struct{}))
	return ch.(chan struct{})
}

// protoHandler serves the paths every protocol's origin answers:
//
//	/echo      method, target, body length and SHA-256, the request
//	           trailer X-Sum, the Host and the protocol it saw
//	/download  ?n=N bytes of pattern data with Content-Length
//	/trailers  a body in two flushes, then the trailer X-Checksum
//	/stream    "first;", then (once gate= is opened, or after 15 s) "last"
//	/reset     resets the stream without a response
func (o *protoOrigin) handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.requests.Add(1)
		switch r.URL.Path {
		case "/download":
			n, _ := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
			w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
			_, _ = io.Copy(w, &patternReader{n: n, h: sha256.New()})
		case "/trailers":
			w.Header().Set("Trailer", "X-Checksum")
			_, _ = io.WriteString(w, "part one;")
			w.(http.Flusher).Flush()
			_, _ = io.WriteString(w, "part two")
			w.Header().Set("X-Checksum", "abc123")
		case "/stream":
			_, _ = io.WriteString(w, "first;")
			w.(http.Flusher).Flush()
			select {
			case <-streamGate(r.URL.Query().Get("gate")):
			case <-time.After(15 * time.Second):
			case <-r.Context().Done():
				return
			}
			_, _ = io.WriteString(w, "last")
		case "/reset":
			panic(http.ErrAbortHandler)
		default:
			h := sha256.New()
			n, err := io.Copy(h, r.Body)
			if err != nil {
				return
			}
			w.Header().Set("X-Seen-Via", r.Header.Get("Via"))
			_, _ = fmt.Fprintf(w, "%s %s %d %s trailer=%s host=%s proto=%s", r.Method, r.URL.RequestURI(), n,
				hex.EncodeToString(h.Sum(nil)), r.Trailer.Get("X-Sum"), r.Host, r.Proto)
		}
	})
}

// startProtoOrigin starts an origin speaking proto: "h1", "h2c" or "h3"
// (quic-go's HTTP/3 server, with a certificate for origin.test from ca).
func startProtoOrigin(t *testing.T, proto string, ca *testCA) *protoOrigin {
	t.Helper()
	o := &protoOrigin{}
	if proto == "h3" {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		cert := ca.pair(t, "origin", "origin.test", leafOpts{dns: []string{"origin.test"}})
		srv := &http3.Server{
			Handler:   o.handler(),
			TLSConfig: http3.ConfigureTLSConfig(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13}),
			ConnContext: func(ctx context.Context, _ *quic.Conn) context.Context {
				o.conns.Add(1)
				return ctx
			},
		}
		go func() { _ = srv.Serve(pc) }()
		t.Cleanup(func() { _ = srv.Close(); _ = pc.Close() })
		o.addr = pc.LocalAddr().String()
		return o
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: o.handler(), ReadHeaderTimeout: 5 * time.Second,
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				o.conns.Add(1)
			}
		}}
	if proto == "h2c" {
		srv.Protocols = new(http.Protocols)
		srv.Protocols.SetUnencryptedHTTP2(true)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	o.addr = ln.Addr().String()
	return o
}

// h3ClusterTable is a [[clusters]] entry speaking HTTP/3 to addrs.
func h3ClusterTable(name string, ca *testCA, extra string, addrs ...string) string {
	eps := make([]string, len(addrs))
	for i, a := range addrs {
		eps[i] = fmt.Sprintf("{ address = %q }", a)
	}
	return fmt.Sprintf(`
[[clusters]]
name = %q
protocol = "h3"
endpoints = [ %s ]
tls = { enabled = true, ca_file = %q, server_name = "origin.test" }
%s
`, name, strings.Join(eps, ", "), ca.file, extra)
}

// h3UpGateway runs the gateway with one http listener routing /dead/ to
// the cluster "dead" and the rest to "app"; clusters are the [[clusters]]
// tables.
func h3UpGateway(t *testing.T, clusters string) (gw, admin string) {
	t.Helper()
	gw, admin = freeAddr(t), freeAddr(t)
	startBinary(t, fmt.Sprintf(`
[admin]
listen = %q
[engine]
event_loops = 2
[log]
access_log = false
[[listeners]]
name = "web"
listen = %q
max_connections_per_ip = 0
[listeners.timeouts]
body_min_rate = 0
upstream_connect = "400ms"
[[listeners.routes]]
path_prefix = "/dead/"
cluster = "dead"
[[listeners.routes]]
cluster = "app"
%s
`, admin, gw, clusters), gw)
	waitReady(t, admin)
	return gw, admin
}

// TestH3Upstream: an HTTP/1.1 client through the gateway to quic-go's
// HTTP/3 server: GET, 10 MiB up and down with hashes, trailers both ways,
// many concurrent requests on few QUIC connections, a stream the origin
// resets failing only its own request, and a dead endpoint retried on the
// live one.
func TestH3Upstream(t *testing.T) {
	ca := newTestCA(t, "origin")
	o := startProtoOrigin(t, "h3", ca)
	dead := freeUDPAddr(t)
	gw, admin := h3UpGateway(t, h3ClusterTable("app", ca, "", o.addr)+h3ClusterTable("dead", ca, "", dead))
	c := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 200}}
	base := "http://" + gw

	t.Run("get", func(t *testing.T) {
		code, body := h1Get(t, c, base+"/echo?x=1")
		if code != 200 || !strings.HasPrefix(body, "GET /echo?x=1 0 ") || !strings.HasSuffix(body, "host="+gw+" proto=HTTP/3.0") {
			t.Fatalf("GET: %d %q", code, body)
		}
	})
	t.Run("10 MiB up and down", func(t *testing.T) {
		checkUpDown(t, c, base, 10<<20)
	})
	t.Run("trailers", func(t *testing.T) {
		checkTrailers(t, c, base)
	})
	t.Run("multiplexed", func(t *testing.T) {
		before := o.conns.Load()
		if failed := concurrentEchoGETs(c, base, 150); failed != 0 {
			t.Fatalf("%d of 150 concurrent requests failed", failed)
		}
		// Two event loops, one QUIC connection each (a few more only if a
		// loop's streams hit the origin's MAX_STREAMS of 100).
		if n := o.conns.Load(); n > 4 {
			t.Errorf("the origin accepted %d QUIC connections (%d before the burst), want at most 4", n, before)
		}
	})
	t.Run("reset fails only its request", func(t *testing.T) {
		var wg sync.WaitGroup
		var bad atomic.Int64
		for i := range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				code, body := h1Get(t, c, fmt.Sprintf("%s/echo?n=%d", base, i))
				if code != 200 || !strings.HasPrefix(body, fmt.Sprintf("GET /echo?n=%d ", i)) {
					bad.Add(1)
				}
			}()
		}
		code, _ := h1Get(t, c, base+"/reset")
		wg.Wait()
		if code != 502 {
			t.Errorf("/reset: %d, want 502", code)
		}
		if n := bad.Load(); n != 0 {
			t.Errorf("%d requests beside the reset one failed", n)
		}
	})
	t.Run("dead endpoint", func(t *testing.T) {
		start := time.Now()
		code, _ := h1Get(t, c, base+"/dead/x")
		if code != 502 && code != 503 {
			t.Errorf("a cluster whose only endpoint is down: %d, want 502 or 503", code)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("the dead endpoint took %v to fail (upstream_connect is 400ms)", d)
		}
	})
	t.Run("retry on the live endpoint", func(t *testing.T) {
		ca2 := newTestCA(t, "origin")
		o2 := startProtoOrigin(t, "h3", ca2)
		gw2, _ := h3UpGateway(t, h3ClusterTable("app", ca2, "", freeUDPAddr(t), o2.addr)+h3ClusterTable("dead", ca2, "", o2.addr))
		for i := range 6 {
			code, body := h1Get(t, c, fmt.Sprintf("http://%s/echo?i=%d", gw2, i))
			if code != 200 || !strings.HasPrefix(body, fmt.Sprintf("GET /echo?i=%d ", i)) {
				t.Fatalf("request %d: %d %q", i, code, body)
			}
		}
	})
	m := scrape(t, admin)
	if v := metricValue(m, "expressgateway_upstream_http3_streams_total"); v < 150 {
		t.Errorf("upstream_http3_streams_total %v, want at least 150", v)
	}
	if v := metricSum(t, admin, `^expressgateway_upstream_http3_stream_resets_total\{direction="received",code="H3_INTERNAL_ERROR"\}$`); v < 1 {
		t.Errorf("the origin's reset was not counted:\n%s", grepLines(m, "http3_stream_resets"))
	}
}

// h1Get GETs url and returns the status and body (0 on a transport error).
func h1Get(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Logf("GET %s: %v", url, err)
		return 0, ""
	}
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode, string(b)
}

// checkUpDown sends size bytes up and down through base and compares
// their hashes.
func checkUpDown(t *testing.T, c *http.Client, base string, size int64) {
	t.Helper()
	src := &patternReader{n: size, h: sha256.New()}
	req, _ := http.NewRequest("PUT", base+"/echo", src)
	req.ContentLength = size
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if want := fmt.Sprintf("PUT /echo %d %s ", size, hex.EncodeToString(src.h.Sum(nil))); !strings.HasPrefix(string(body), want) {
		t.Fatalf("upload: %d %q, want prefix %q", resp.StatusCode, body, want)
	}
	resp, err = c.Get(fmt.Sprintf("%s/download?n=%d", base, size))
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	_ = resp.Body.Close()
	ref := sha256.New()
	_, _ = io.Copy(io.Discard, &patternReader{n: size, h: ref})
	if err != nil || n != size || !bytes.Equal(h.Sum(nil), ref.Sum(nil)) {
		t.Fatalf("download: %d bytes of %d, %v, hash equal %v", n, size, err, bytes.Equal(h.Sum(nil), ref.Sum(nil)))
	}
}

// checkTrailers sends a request trailer and reads a response trailer.
func checkTrailers(t *testing.T, c *http.Client, base string) {
	t.Helper()
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("POST", base+"/echo", pr)
	req.Trailer = http.Header{"X-Sum": nil}
	go func() {
		_, _ = io.WriteString(pw, "hello")
		req.Trailer.Set("X-Sum", "5")
		_ = pw.Close()
	}()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if !strings.Contains(string(body), "POST /echo 5 ") || !strings.Contains(string(body), "trailer=5") {
		t.Errorf("request trailer lost: %q", body)
	}
	resp, err = c.Get(base + "/trailers")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if string(body) != "part one;part two" || resp.Trailer.Get("X-Checksum") != "abc123" {
		t.Errorf("response trailers: %q %v", body, resp.Trailer)
	}
}

// checkStreamed: the client reads the first chunk of /stream while the
// origin still holds the last.
func checkStreamed(t *testing.T, c *http.Client, base, gate string) {
	t.Helper()
	resp, err := c.Get(base + "/stream?gate=" + gate)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	first := make([]byte, len("first;"))
	got := make(chan error, 1)
	go func() {
		_, err := io.ReadFull(resp.Body, first)
		got <- err
	}()
	select {
	case err := <-got:
		if err != nil || string(first) != "first;" {
			t.Fatalf("first chunk: %q %v", first, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the first chunk did not arrive while the origin held the last: the response was buffered")
	}
	close(streamGate(gate))
	rest, err := io.ReadAll(resp.Body)
	if err != nil || string(rest) != "last" {
		t.Fatalf("rest: %q %v", rest, err)
	}
}
