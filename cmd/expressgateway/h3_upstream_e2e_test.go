// SPDX-License-Identifier: GPL-3.0-only

package main

// HTTP/3 upstreams (clusters with protocol = "h3") through the binary,
// against quic-go's HTTP/3 server, and the protocol matrix: every front
// (HTTP/1.1, HTTP/2, HTTP/3) to every back (HTTP/1.1, h2c, HTTP/3).

import (
	"bufio"
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
	"syscall"
	"testing"
	"time"

	"github.com/quic-go/qpack"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"github.com/quic-go/quic-go/quicvarint"

	h3codec "github.com/expressgateway/expressgateway/codecs/h3"
	"github.com/expressgateway/expressgateway/codecs/msg"
)

// protoOrigin is a test origin of one protocol: requests counts the
// requests it served, conns the connections it accepted.
type protoOrigin struct {
	addr      string
	requests  atomic.Int64
	conns     atomic.Int64
	cancelled atomic.Int64 // /stream requests whose client went away
	probes    atomic.Int64 // health-check requests
	closed    atomic.Int64 // connections ended (h3 only)
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
//	/sleep     answers "slept <query>" after 300 ms
func (o *protoOrigin) handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.requests.Add(1)
		if r.Header.Get("User-Agent") == "expressgateway-health-check" {
			o.probes.Add(1)
		}
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
				o.cancelled.Add(1)
				return
			}
			_, _ = io.WriteString(w, "last")
		case "/grpc.Test/TrailersOnly":
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/grpc")
			w.Header().Set("Grpc-Status", "12")
			w.Header().Set("Grpc-Message", "nope")
			w.WriteHeader(200)
		case "/grpc.Test/Unary":
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/grpc")
			w.Header().Set("Trailer", "Grpc-Status, Grpc-Message")
			_, _ = w.Write(grpcFrame([]byte("hi")))
			w.Header().Set("Grpc-Status", "0")
			w.Header().Set("Grpc-Message", "")
		case "/reset":
			panic(http.ErrAbortHandler)
		case "/sleep":
			time.Sleep(300 * time.Millisecond)
			_, _ = io.WriteString(w, "slept "+r.URL.RawQuery)
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
	return startProtoOriginQUIC(t, proto, ca, nil)
}

// startProtoOriginQUIC is startProtoOrigin with the h3 origin's QUIC config.
func startProtoOriginQUIC(t *testing.T, proto string, ca *testCA, qcfg *quic.Config) *protoOrigin {
	t.Helper()
	return startH3OriginTLS(t, proto, ca, qcfg, nil)
}

// startH3OriginTLS is startProtoOriginQUIC whose h3 origin asks for a
// client certificate from clientCA (nil: none).
func startH3OriginTLS(t *testing.T, proto string, ca *testCA, qcfg *quic.Config, clientCA *testCA) *protoOrigin {
	t.Helper()
	o := &protoOrigin{}
	if proto == "h3" {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		cert := ca.pair(t, "origin", "origin.test", leafOpts{dns: []string{"origin.test"}})
		tcfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13}
		if clientCA != nil {
			tcfg.ClientAuth, tcfg.ClientCAs = tls.RequireAndVerifyClientCert, clientCA.pool
		}
		srv := &http3.Server{
			Handler:    o.handler(),
			QUICConfig: qcfg,
			TLSConfig:  http3.ConfigureTLSConfig(tcfg),
			ConnContext: func(ctx context.Context, c *quic.Conn) context.Context {
				o.conns.Add(1)
				go func() {
					<-c.Context().Done()
					o.closed.Add(1)
				}()
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
`, admin, gw, clusters), admin)
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
	t.Run("slow client", func(t *testing.T) {
		// 8 MiB to a client with a 32 KiB socket buffer that waits, then
		// reads at 8 MiB/s: the endpoint's stream credit is held while
		// the client is behind, and every byte arrives.
		const size = 8 << 20
		nc, err := net.Dial("tcp", gw)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = nc.Close() }()
		_ = nc.(*net.TCPConn).SetReadBuffer(32 << 10)
		_, _ = fmt.Fprintf(nc, "GET /download?n=%d HTTP/1.1\r\nHost: a.test\r\n\r\n", size)
		time.Sleep(700 * time.Millisecond)
		resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		n, err := slowCopy(h, resp.Body, 8<<20)
		_ = resp.Body.Close()
		ref := sha256.New()
		_, _ = io.Copy(io.Discard, &patternReader{n: size, h: ref})
		if err != nil || n != size || !bytes.Equal(h.Sum(nil), ref.Sum(nil)) {
			t.Fatalf("slow download: %d bytes, %v", n, err)
		}
		if v := metricValue(scrape(t, admin), "expressgateway_upstream_http3_flow_stalls_total"); v < 1 {
			t.Errorf("upstream_http3_flow_stalls_total %v: the slow client never held the endpoint back", v)
		}
	})
	t.Run("client goes away", func(t *testing.T) {
		// The client closes its connection mid-response: the stream to
		// the origin is reset (H3_REQUEST_CANCELLED) and its handler's
		// context ends.
		nc, err := net.Dial("tcp", gw)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.WriteString(nc, "GET /stream?gate=never HTTP/1.1\r\nHost: a.test\r\n\r\n")
		_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 4096)
		got := ""
		for !strings.Contains(got, "first;") {
			n, err := nc.Read(buf)
			if err != nil {
				t.Fatalf("read: %q %v", got, err)
			}
			got += string(buf[:n])
		}
		_ = nc.Close()
		deadline := time.Now().Add(5 * time.Second)
		for o.cancelled.Load() == 0 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if o.cancelled.Load() == 0 {
			t.Fatal("the origin's handler never saw the cancellation")
		}
		if v := metricValue(scrape(t, admin), `expressgateway_upstream_http3_stream_resets_total{direction="sent",code="H3_REQUEST_CANCELLED"}`); v < 1 {
			t.Errorf("resets sent: %v", v)
		}
	})
	t.Run("ended streams give their credit back", func(t *testing.T) {
		// MAX_STREAMS 4: requests one after another, reset by the origin
		// mid-upload, answered, cancelled by the client, must each give
		// their stream back, or the connection would run out of them.
		ca4 := newTestCA(t, "origin")
		o4 := startProtoOriginQUIC(t, "h3", ca4, &quic.Config{MaxIncomingStreams: 4})
		gw4, admin4 := h3UpGateway(t, h3ClusterTable("app", ca4, "", o4.addr)+h3ClusterTable("dead", ca4, "", o4.addr))
		c1 := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxConnsPerHost: 1}}
		for i := range 12 {
			req, _ := http.NewRequest("POST", "http://"+gw4+"/reset", &patternReader{n: 256 << 10, h: sha256.New()})
			req.ContentLength = 256 << 10
			if resp, err := c1.Do(req); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode != 502 {
					t.Errorf("POST /reset %d: %d", i, resp.StatusCode)
				}
			}
			if code, _ := h1Get(t, c1, "http://"+gw4+"/echo"); code != 200 {
				t.Errorf("GET %d: %d", i, code)
			}
			nc, err := net.Dial("tcp", gw4)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.WriteString(nc, "GET /stream?gate=never HTTP/1.1\r\nHost: a.test\r\n\r\n")
			_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, _ = nc.Read(make([]byte, 512))
			_ = nc.Close()
		}
		if v := metricValue(scrape(t, admin4), "expressgateway_upstream_http3_stream_limit_total"); v > 0 {
			t.Errorf("stream_limit_total %v: ended streams kept their credit", v)
		}
		if n := o4.conns.Load(); n > 2 {
			t.Errorf("the origin accepted %d connections, want at most 2", n)
		}
	})
	t.Run("the endpoint's stream limit", func(t *testing.T) {
		ca3 := newTestCA(t, "origin")
		o3 := startProtoOriginQUIC(t, "h3", ca3, &quic.Config{MaxIncomingStreams: 8})
		gw3, admin3 := h3UpGateway(t, h3ClusterTable("app", ca3, "", o3.addr)+h3ClusterTable("dead", ca3, "", o3.addr))
		var wg sync.WaitGroup
		var bad atomic.Int64
		for i := range 40 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if code, body := h1Get(t, c, fmt.Sprintf("http://%s/sleep?%d", gw3, i)); code != 200 || body != fmt.Sprintf("slept %d", i) {
					bad.Add(1)
				}
			}()
		}
		wg.Wait()
		if n := bad.Load(); n != 0 {
			t.Errorf("%d of 40 requests failed", n)
		}
		// 40 at once, 8 streams per connection: at least 5 connections.
		if n := o3.conns.Load(); n < 5 {
			t.Errorf("the origin accepted %d connections, want at least 5 (MAX_STREAMS 8)", n)
		}
		if v := metricValue(scrape(t, admin3), "expressgateway_upstream_http3_stream_limit_total"); v < 1 {
			t.Errorf("upstream_http3_stream_limit_total %v", v)
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

// backHeader picks the back of a matrix cell: the gateway routes on it.
type backHeader struct {
	back string
	rt   http.RoundTripper
}

func (b *backHeader) RoundTrip(r *http.Request) (*http.Response, error) {
	// Set on the request itself, not a clone: a clone would copy the
	// Trailer map before the body's writer fills it in.
	r.Header.Set("X-Back", b.back)
	return b.rt.RoundTrip(r)
}

// TestProtocolMatrix: every front (HTTP/1.1, HTTP/2 with prior
// knowledge, HTTP/3) to every back (HTTP/1.1, h2c, HTTP/3), through one
// gateway with a route per back: GET, 10 MiB up and down with hashes,
// trailers both ways (chunked on HTTP/1.1, trailing HEADERS on HTTP/2 and
// HTTP/3), HEAD, and a streamed response whose first chunk reaches the
// client while the origin still holds the last. Real clients and servers on both
// sides: net/http, x/net/http2 (net/http's h2c), quic-go's http3.
func TestProtocolMatrix(t *testing.T) {
	ca := newTestCA(t, "matrix")
	backs := []string{"h1", "h2c", "h3"}
	wantProto := map[string]string{"h1": "HTTP/1.1", "h2c": "HTTP/2.0", "h3": "HTTP/3.0"}
	origins := map[string]*protoOrigin{}
	var clusters, routes strings.Builder
	for _, b := range backs {
		o := startProtoOrigin(t, b, ca)
		origins[b] = o
		fmt.Fprintf(&routes, "[[listeners.routes]]\nheaders = { \"x-back\" = %q }\ncluster = %q\n", b, "b_"+b)
		switch b {
		case "h3":
			clusters.WriteString(h3ClusterTable("b_h3", ca, "", o.addr))
		case "h2c":
			fmt.Fprintf(&clusters, "[[clusters]]\nname = \"b_h2c\"\nprotocol = \"h2c\"\nendpoints = [ { address = %q } ]\n", o.addr)
		default:
			fmt.Fprintf(&clusters, "[[clusters]]\nname = \"b_h1\"\nendpoints = [ { address = %q } ]\n", o.addr)
		}
	}
	cert, key, _ := ca.issue(t, "a", "a.test", leafOpts{dns: []string{"a.test"}})
	gw, h3addr, admin := freeAddr(t), freeUDPAddr(t), freeAddr(t)
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
# An HTTP/1.1 client's upload that runs 4 × max_inflight_bytes ahead of a
# multiplexed upstream (h2c, h3) leaves gnet for a paced reader
# (request_bridge; TestH1UploadOutrunsMuxedUpstream covers it): the matrix
# keeps its cells on the plain path with a bound above the 10 MiB they send
# through a race-built HTTP/3 upstream on a busy 2-core box.
[listeners.limits]
max_inflight_bytes = "4MiB"
[listeners.timeouts]
body_min_rate = 0
%s
[[listeners]]
name = "h3"
listen = %q
protocol = "h3"
[listeners.timeouts]
body_min_rate = 0
[listeners.tls]
[[listeners.tls.certificates]]
cert_file = %q
key_file = %q
%s
%s
`, admin, gw, routes.String(), h3addr, cert, key, routes.String(), clusters.String()), admin)
	waitReady(t, admin)

	h3c, h3tr := h3Client(ca)
	defer func() { _ = h3tr.Close() }()
	h3c.Timeout = 60 * time.Second
	fronts := []struct {
		name, base string
		rt         http.RoundTripper
	}{
		{"h1", "http://" + gw, &http.Transport{MaxIdleConnsPerHost: 16}},
		{"h2", "http://" + gw, h2Client(nil).Transport},
		{"h3", "https://" + h3addr, h3tr},
	}
	var cell atomic.Int64
	for _, f := range fronts {
		for _, b := range backs {
			t.Run(f.name+"→"+b, func(t *testing.T) {
				c := &http.Client{Timeout: 60 * time.Second, Transport: &backHeader{back: b, rt: f.rt}}
				resp, err := c.Get(f.base + "/echo?cell=" + f.name + b)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "GET /echo?cell="+f.name+b+" 0 ") ||
					!strings.HasSuffix(string(body), "proto="+wantProto[b]) {
					t.Fatalf("GET: %d %q", resp.StatusCode, body)
				}
				if want := map[string]int{"h1": 1, "h2": 2, "h3": 3}[f.name]; resp.ProtoMajor != want {
					t.Errorf("the client spoke %s, want major %d", resp.Proto, want)
				}
				checkUpDown(t, c, f.base, 10<<20)
				checkTrailers(t, c, f.base)
				// HEAD keeps its Content-Length and has no body.
				resp, err = c.Head(f.base + "/download?n=1234")
				if err != nil {
					t.Fatal(err)
				}
				body, _ = io.ReadAll(resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode != 200 || len(body) != 0 || resp.ContentLength != 1234 {
					t.Errorf("HEAD: %d, %d body bytes, content-length %d", resp.StatusCode, len(body), resp.ContentLength)
				}
				checkStreamed(t, c, f.base, fmt.Sprintf("cell%d", cell.Add(1)))
			})
		}
	}
	for _, b := range backs {
		if n := origins[b].requests.Load(); n < 3*6 {
			t.Errorf("origin %s served %d requests, want at least %d", b, n, 3*6)
		}
	}
}

// brokenH3Origin is an HTTP/3 origin written frame by frame, which breaks
// the protocol in the way each path names; other paths get "ok <path>".
// conns counts its QUIC connections.
func brokenH3Origin(t *testing.T, ca *testCA) (addr string, conns *atomic.Int64) {
	t.Helper()
	conns = new(atomic.Int64)
	cert := ca.pair(t, "broken", "origin.test", leafOpts{dns: []string{"origin.test"}})
	ln, err := quic.ListenAddr("127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h3"}, MinVersion: tls.VersionTLS13}, &quic.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			qc, err := ln.Accept(context.Background())
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				ctrl, err := qc.OpenUniStream()
				if err != nil {
					return
				}
				_, _ = ctrl.Write(h3codec.AppendSettings(quicvarint.Append(nil, h3codec.StreamControl), h3codec.Settings{}))
				go func() {
					for {
						us, err := qc.AcceptUniStream(context.Background())
						if err != nil {
							return
						}
						go func() { _, _ = io.Copy(io.Discard, us) }()
					}
				}()
				for {
					st, err := qc.AcceptStream(context.Background())
					if err != nil {
						return
					}
					go serveBroken(st, ctrl)
				}
			}()
		}
	}()
	return ln.Addr().String(), conns
}

// goneAway is the paths the broken origin answered with GOAWAY once.
var goneAway sync.Map

func serveBroken(st *quic.Stream, ctrl *quic.SendStream) {
	br := bufio.NewReader(st)
	typ, err := quicvarint.Read(br)
	n, err2 := quicvarint.Read(br)
	if err != nil || err2 != nil || h3codec.FrameType(typ) != h3codec.FrameHeaders || n > 1<<16 {
		st.CancelWrite(0x101)
		return
	}
	block := make([]byte, n)
	if _, err := io.ReadFull(br, block); err != nil {
		return
	}
	path := ""
	next := qpack.NewDecoder().Decode(block)
	for {
		f, err := next()
		if err != nil {
			break
		}
		if f.Name == ":path" {
			path = f.Value
		}
	}
	go func() { _, _ = io.Copy(io.Discard, br) }()
	head := func(status int, kv ...string) []byte {
		var fs []msg.Field
		for i := 0; i+1 < len(kv); i += 2 {
			fs = append(fs, msg.Field{Name: []byte(kv[i]), Value: []byte(kv[i+1])})
		}
		return h3codec.AppendHeaders(nil, status, fs)
	}
	raw := func(kv ...string) []byte {
		var buf bytes.Buffer
		enc := qpack.NewEncoder(&buf)
		for i := 0; i+1 < len(kv); i += 2 {
			_ = enc.WriteField(qpack.HeaderField{Name: kv[i], Value: kv[i+1]})
		}
		return append(h3codec.AppendFrameHeader(nil, h3codec.FrameHeaders, uint64(buf.Len())), buf.Bytes()...)
	}
	var out []byte
	switch path {
	case "/extra-data": // DATA past the Content-Length
		out = h3codec.AppendData(h3codec.AppendData(head(200, "content-length", "5"), []byte("hello")), []byte("EXTRA"))
	case "/after-trailers": // DATA after the trailers
		out = h3codec.AppendData(head(200), []byte("body"))
		out = append(out, head(0, "x-t", "1")...)
		out = h3codec.AppendData(out, []byte("more"))
	case "/early-close": // the stream ends 90 bytes short
		out = h3codec.AppendData(head(200, "content-length", "100"), bytes.Repeat([]byte("x"), 10))
	case "/huge-head": // a 1 MiB HEADERS frame
		out = raw(":status", "200", "x-big", strings.Repeat("b", 1<<20))
	case "/uppercase":
		out = raw(":status", "200", "X-Bad", "1")
	case "/crlf-value": // response splitting, were it written to HTTP/1 as it is
		out = raw(":status", "200", "x-a", "1\r\nset-cookie: evil")
	case "/connection-field":
		out = raw(":status", "200", "connection", "close")
	case "/no-status":
		out = raw("x-a", "1")
	case "/data-first":
		out = h3codec.AppendData(nil, []byte("data"))
	case "/no-head": // the stream ends without a response
	case "/goaway-once": // GOAWAY naming this stream unprocessed, the first time
		if _, seen := goneAway.LoadOrStore(path, true); !seen {
			_, _ = ctrl.Write(h3codec.AppendGoAway(nil, uint64(st.StreamID())))
			time.Sleep(time.Second)
			st.CancelWrite(0x10b)
			return
		}
		out = h3codec.AppendData(head(200), []byte("ok after goaway"))
	case "/reset-send-only": // no response, but the request is read on
		st.CancelWrite(0x102)
		return
	case "/reset-mid-body":
		_, _ = st.Write(h3codec.AppendData(head(200, "content-length", "100"), []byte("half")))
		time.Sleep(50 * time.Millisecond)
		st.CancelWrite(0x102)
		return
	default:
		body := "ok " + path
		out = h3codec.AppendData(head(200, "content-length", strconv.Itoa(len(body))), []byte(body))
	}
	_, _ = st.Write(out)
	_ = st.Close()
}

// TestH3UpstreamBroken: an HTTP/3 endpoint that breaks the protocol on
// some streams (DATA past Content-Length or after trailers, an early end,
// a huge, malformed or missing head, DATA first, a reset mid-body) fails
// only those requests: every good request beside them, on the same QUIC
// connection, gets its own response, and the connection survives.
func TestH3UpstreamBroken(t *testing.T) {
	ca := newTestCA(t, "broken")
	addr, conns := brokenH3Origin(t, ca)
	gw, admin := h3UpGateway(t, h3ClusterTable("app", ca, "", addr)+h3ClusterTable("dead", ca, "", addr))
	c := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	base := "http://" + gw
	// Warm up: one QUIC connection per loop.
	for i := range 4 {
		if code, body := h1Get(t, c, fmt.Sprintf("%s/warm%d", base, i)); code != 200 || body != fmt.Sprintf("ok /warm%d", i) {
			t.Fatalf("warm-up: %d %q", code, body)
		}
	}
	before := conns.Load()
	baseline := goroutines(t, admin)
	broken := map[string]string{
		// path → what the client must see: a status, or "cut" (the
		// response started and was cut: a transport error or a short body).
		"/extra-data":       "cut-or-5",
		"/after-trailers":   "any",
		"/early-close":      "cut",
		"/huge-head":        "502",
		"/uppercase":        "502",
		"/connection-field": "502",
		"/crlf-value":       "502",
		"/no-status":        "502",
		"/data-first":       "502",
		"/no-head":          "502",
		"/reset-mid-body":   "cut",
	}
	var wg sync.WaitGroup
	var good atomic.Int64
	for i := range 60 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			want := fmt.Sprintf("ok /good/%d", i)
			if code, body := h1Get(t, c, fmt.Sprintf("%s/good/%d", base, i)); code == 200 && body == want {
				good.Add(1)
			} else {
				t.Errorf("good request %d: %d %q", i, code, body)
			}
		}()
	}
	for path, want := range broken {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := c.Get(base + path)
			if err != nil {
				if want != "cut" && want != "cut-or-5" && want != "any" {
					t.Errorf("%s: %v, want %s", path, err, want)
				}
				return
			}
			b, rerr := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			switch want {
			case "502":
				if resp.StatusCode != 502 {
					t.Errorf("%s: %d %q, want 502", path, resp.StatusCode, b)
				}
			case "cut":
				if rerr == nil && int64(len(b)) == resp.ContentLength {
					t.Errorf("%s: a whole response %d %q, want it cut", path, resp.StatusCode, b)
				}
			case "cut-or-5":
				if rerr == nil && string(b) != "hello" {
					t.Errorf("%s: %q, want the 5 declared bytes or a cut", path, b)
				}
			}
		}()
	}
	wg.Wait()
	if good.Load() != 60 {
		t.Errorf("%d of 60 good requests beside the broken ones succeeded", good.Load())
	}
	// Every stream's reader and writer goroutines end, broken or not
	// (a QUIC connection opened meanwhile brings about five of its own).
	allowed := baseline + 6*int(conns.Load()-before) + 2
	deadline := time.Now().Add(5 * time.Second)
	g := goroutines(t, admin)
	for g > allowed && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		g = goroutines(t, admin)
	}
	if g > allowed {
		resp, _ := http.Get("http://" + admin + "/debug/pprof/goroutine?debug=1")
		dump, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		t.Errorf("%d goroutines after the requests, %d before: streams leaked\n%s", g, baseline, dump)
	}
	if n := conns.Load() - before; n > 1 {
		t.Errorf("the broken streams cost %d new QUIC connections, want them to fail alone", n)
	}
	// An endpoint that resets only its response side while the request
	// body is still coming: the gateway resets the request side too, or
	// the stream would never end at the endpoint and its MAX_STREAMS
	// (100) would run out after as many requests.
	h2c := h2Client(nil)
	for i := range 110 {
		pr, pw := io.Pipe()
		req, _ := http.NewRequest("POST", base+"/reset-send-only", pr)
		go func() { _, _ = pw.Write(make([]byte, 1024)) }()
		resp, err := h2c.Do(req)
		if err != nil {
			t.Fatalf("POST %d: %v", i, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		_ = pw.Close()
		if resp.StatusCode != 502 {
			t.Fatalf("POST %d: %d, want 502", i, resp.StatusCode)
		}
	}
	m := scrape(t, admin)
	if v := metricValue(m, "expressgateway_upstream_http3_stream_limit_total"); v > 0 {
		t.Errorf("stream_limit_total %v: reset streams were never ended at the endpoint", v)
	}
	for _, tok := range []string{"h3_field_section_too_large", "h3_uppercase_name", "h3_bad_field_value", "h3_missing_status", "h3_data_unexpected", "bad_response_body"} {
		if v := metricValue(m, fmt.Sprintf(`expressgateway_upstream_failures_total{cluster="app",reason=%q}`, tok)); v < 1 {
			t.Errorf("upstream_failures_total{reason=%q} = %v\n%s", tok, v, grepLines(m, "upstream_failures"))
		}
	}
}

// TestH3UpstreamGoAway: an endpoint that sends GOAWAY naming a request's
// stream unprocessed: the request goes again on a new connection (a POST
// too: it was never processed) and succeeds.
func TestH3UpstreamGoAway(t *testing.T) {
	ca := newTestCA(t, "broken")
	addr, conns := brokenH3Origin(t, ca)
	gw, admin := h3UpGateway(t, h3ClusterTable("app", ca, "", addr)+h3ClusterTable("dead", ca, "", addr))
	c := &http.Client{Timeout: 20 * time.Second}
	resp, err := c.Post("http://"+gw+"/goaway-once", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "ok after goaway" {
		t.Fatalf("%d %q", resp.StatusCode, b)
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("the origin saw %d connections, want 2 (the second after GOAWAY)", n)
	}
	m := scrape(t, admin)
	if v := metricValue(m, "expressgateway_upstream_http3_goaway_total"); v != 1 {
		t.Errorf("upstream_http3_goaway_total %v", v)
	}
	if v := metricValue(m, `expressgateway_upstream_failures_total{cluster="app",reason="goaway_unprocessed"}`); v != 1 {
		t.Errorf("goaway_unprocessed %v", v)
	}
}

// TestH3UpstreamHealthCheck: active http health checks of an h3 cluster
// go over HTTP/3: the live endpoint is probed and stays in, the dead one
// (nothing on its UDP port) is taken out before any request is sent.
func TestH3UpstreamHealthCheck(t *testing.T) {
	ca := newTestCA(t, "origin")
	o := startProtoOrigin(t, "h3", ca)
	dead := freeUDPAddr(t)
	hc := `[clusters.health_check]
path = "/healthz"
interval = "200ms"
timeout = "150ms"
healthy_threshold = 1
unhealthy_threshold = 1
`
	_, admin := h3UpGateway(t, h3ClusterTable("app", ca, hc, o.addr, dead)+h3ClusterTable("dead", ca, "", dead))
	healthy := func(addr string) float64 {
		return metricValue(scrape(t, admin), fmt.Sprintf(`expressgateway_lb_endpoint_healthy{cluster="app",endpoint=%q}`, addr))
	}
	deadline := time.Now().Add(5 * time.Second)
	for (healthy(dead) != 0 || o.probes.Load() < 2) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if v := healthy(dead); v != 0 {
		t.Errorf("the dead endpoint's health %v, want 0", v)
	}
	if v := healthy(o.addr); v != 1 {
		t.Errorf("the live endpoint's health %v, want 1", v)
	}
	if n := o.probes.Load(); n < 2 {
		t.Errorf("the live endpoint got %d HTTP/3 probes", n)
	}
}

// TestH3UpstreamReload: a reload that replaces a cluster's endpoint closes
// the pooled QUIC connections to the one removed; requests go to the new
// one.
func TestH3UpstreamReload(t *testing.T) {
	ca := newTestCA(t, "origin")
	a, b := startProtoOrigin(t, "h3", ca), startProtoOrigin(t, "h3", ca)
	gw, admin := freeAddr(t), freeAddr(t)
	text := func(ep string) string {
		return fmt.Sprintf(`
[admin]
listen = %q
[engine]
event_loops = 2
[log]
access_log = false
[[listeners]]
name = "web"
listen = %q
[[listeners.routes]]
cluster = "app"
%s`, admin, gw, h3ClusterTable("app", ca, "", ep))
	}
	g := startFromFile(t, gatewayBinary(t), text(a.addr), gw, admin)
	c := &http.Client{Timeout: 10 * time.Second}
	for i := range 4 {
		if code, _ := h1Get(t, c, fmt.Sprintf("http://%s/echo?i=%d", gw, i)); code != 200 {
			t.Fatalf("before the reload: %d", code)
		}
	}
	if a.conns.Load() == 0 || a.closed.Load() != 0 {
		t.Fatalf("before the reload: %d connections to a, %d closed", a.conns.Load(), a.closed.Load())
	}
	g.write(t, text(b.addr))
	g.signal(t, syscall.SIGHUP)
	deadline := time.Now().Add(5 * time.Second)
	for generation(admin) < 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	for a.closed.Load() < a.conns.Load() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if a.closed.Load() != a.conns.Load() {
		t.Errorf("%d of %d connections to the removed endpoint closed", a.closed.Load(), a.conns.Load())
	}
	before := a.requests.Load()
	for i := range 4 {
		if code, _ := h1Get(t, c, fmt.Sprintf("http://%s/echo?i=%d", gw, i)); code != 200 {
			t.Fatalf("after the reload: %d", code)
		}
	}
	if a.requests.Load() != before || b.requests.Load() < 4 {
		t.Errorf("after the reload: a served %d more, b %d", a.requests.Load()-before, b.requests.Load())
	}
}

// TestH3UpstreamTLS: the cluster's tls table applies to QUIC: a client
// certificate for an origin that requires one (mTLS), and a wrong
// server_name, an unknown CA or a missing client certificate refused by
// the handshake (502, counted by reason).
func TestH3UpstreamTLS(t *testing.T) {
	ca, clientCA := newTestCA(t, "origin"), newTestCA(t, "clients")
	o := startH3OriginTLS(t, "h3", ca, nil, clientCA)
	cert, key, _ := clientCA.issue(t, "gw", "gateway", leafOpts{client: true})
	other := newTestCA(t, "other")
	clusters := fmt.Sprintf(`
[[clusters]]
name = "app"
protocol = "h3"
endpoints = [ { address = %q } ]
tls = { enabled = true, ca_file = %q, server_name = "origin.test", cert_file = %q, key_file = %q }
[[clusters]]
name = "dead"
protocol = "h3"
endpoints = [ { address = %q } ]
tls = { enabled = true, ca_file = %q, server_name = "wrong.test", cert_file = %q, key_file = %q }
`, o.addr, ca.file, cert, key, o.addr, ca.file, cert, key)
	gw, admin := h3UpGateway(t, clusters)
	c := &http.Client{Timeout: 10 * time.Second}
	if code, body := h1Get(t, c, "http://"+gw+"/echo?mtls"); code != 200 || !strings.HasSuffix(body, "proto=HTTP/3.0") {
		t.Fatalf("mTLS: %d %q", code, body)
	}
	if code, _ := h1Get(t, c, "http://"+gw+"/dead/x"); code != 502 {
		t.Errorf("wrong server_name: %d, want 502", code)
	}
	m := scrape(t, admin)
	if v := metricValue(m, `expressgateway_upstream_tls_handshakes_total{cluster="dead",result="error",reason="name"}`); v < 1 {
		t.Errorf("a wrong name not counted:\n%s", grepLines(m, "upstream_tls_handshakes"))
	}
	if v := metricValue(m, `expressgateway_upstream_tls_handshakes_total{cluster="app",result="ok"}`); v < 1 {
		t.Errorf("the mTLS handshake not counted:\n%s", grepLines(m, "upstream_tls_handshakes"))
	}
	// Without the client certificate the origin refuses the handshake.
	gw2, _ := h3UpGateway(t, h3ClusterTable("app", ca, "", o.addr)+h3ClusterTable("dead", other, "", o.addr))
	if code, _ := h1Get(t, c, "http://"+gw2+"/echo"); code != 502 {
		t.Errorf("no client certificate: %d, want 502", code)
	}
	if code, _ := h1Get(t, c, "http://"+gw2+"/dead/x"); code != 502 {
		t.Errorf("an unknown CA: %d, want 502", code)
	}
}

// TestH3UpstreamSlowClientsDoNotStall: clients that stop reading hold
// their own streams' credit, not the QUIC connection's: a request beside
// sixteen stalled downloads on the same upstream connections completes.
func TestH3UpstreamSlowClientsDoNotStall(t *testing.T) {
	ca := newTestCA(t, "origin")
	o := startProtoOrigin(t, "h3", ca)
	gw, _ := h3UpGateway(t, h3ClusterTable("app", ca, "", o.addr)+h3ClusterTable("dead", ca, "", o.addr))
	var stalled []net.Conn
	for range 16 {
		nc, err := net.Dial("tcp", gw)
		if err != nil {
			t.Fatal(err)
		}
		stalled = append(stalled, nc)
		_, _ = fmt.Fprintf(nc, "GET /download?n=%d HTTP/1.1\r\nHost: a.test\r\n\r\n", 32<<20)
	}
	defer func() {
		for _, nc := range stalled {
			_ = nc.Close()
		}
	}()
	time.Sleep(2 * time.Second) // let the stalled streams fill every buffer on the way
	// Without its own credit the request stalls for good (the client
	// timeout); with it, it only shares two busy cores with the stalled
	// downloads' origin.
	c := &http.Client{Timeout: 15 * time.Second}
	start := time.Now()
	resp, err := c.Get(fmt.Sprintf("http://%s/download?n=%d", gw, 1<<20))
	if err != nil {
		t.Fatalf("a request beside the stalled ones: %v (after %v)", err, time.Since(start))
	}
	n, err := io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if err != nil || n != 1<<20 {
		t.Fatalf("%d bytes, %v (after %v)", n, err, time.Since(start))
	}
	if d := time.Since(start); d > 6*time.Second {
		t.Errorf("the request took %v beside the stalled downloads", d)
	}
	if n := o.conns.Load(); n > 4 {
		t.Logf("origin connections: %d", n)
	}
}

// TestH3UpstreamTimeouts: a route's timeout and the listener's
// upstream_response_header bound an HTTP/3 upstream too: 504, and the
// stream to the origin is reset; an idle QUIC connection is closed after
// upstream_idle.
func TestH3UpstreamTimeouts(t *testing.T) {
	ca := newTestCA(t, "origin")
	o := startProtoOrigin(t, "h3", ca)
	gw, admin := freeAddr(t), freeAddr(t)
	startBinary(t, fmt.Sprintf(`
[admin]
listen = %q
[engine]
event_loops = 1
[log]
access_log = false
[[listeners]]
name = "web"
listen = %q
[listeners.timeouts]
upstream_response_header = "150ms"
upstream_idle = "500ms"
[[listeners.routes]]
path_prefix = "/stream"
timeout = "300ms"
cluster = "app"
[[listeners.routes]]
cluster = "app"
%s`, admin, gw, h3ClusterTable("app", ca, "", o.addr)), admin)
	waitReady(t, admin)
	c := &http.Client{Timeout: 10 * time.Second}
	start := time.Now()
	if code, _ := h1Get(t, c, "http://"+gw+"/sleep?x"); code != 504 {
		t.Errorf("a head later than upstream_response_header: %d, want 504", code)
	}
	// The route's timeout cuts a response that started.
	resp, err := c.Get("http://" + gw + "/stream?gate=never")
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err == nil || string(b) != "first;" {
		t.Errorf("a response past the route's timeout: %q %v, want it cut after its first chunk", b, err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("the timeouts took %v", d)
	}
	deadline := time.Now().Add(3 * time.Second)
	for o.cancelled.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if o.cancelled.Load() == 0 {
		t.Error("the origin never saw the stream cut at the route's timeout")
	}
	m := scrape(t, admin)
	if v := metricValue(m, `expressgateway_upstream_failures_total{cluster="app",reason="response_header_timeout"}`); v < 1 {
		t.Errorf("response_header_timeout not counted:\n%s", grepLines(m, "upstream_failures"))
	}
	deadline = time.Now().Add(4 * time.Second)
	for o.closed.Load() < o.conns.Load() && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if o.closed.Load() != o.conns.Load() {
		t.Errorf("%d of %d idle QUIC connections closed after upstream_idle", o.closed.Load(), o.conns.Load())
	}
}

// TestH3UpstreamGRPC: gRPC from an HTTP/2 client to an h3 cluster: a
// unary call's message and trailers, and a trailers-only answer, which
// HTTP/3 cannot mark as such (no END_STREAM on HEADERS) and the gateway
// sends on as one HEADERS frame with END_STREAM.
func TestH3UpstreamGRPC(t *testing.T) {
	ca := newTestCA(t, "origin")
	o := startProtoOrigin(t, "h3", ca)
	gw, admin := h3UpGateway(t, h3ClusterTable("app", ca, "", o.addr)+h3ClusterTable("dead", ca, "", o.addr))
	f := dialH2(t, gw)
	r := newGRPCReader(f)
	grpcRequest(t, f, 1, "/grpc.Test/Unary")
	if got := r.outcome(t, 1); got.httpStatus != "200" || got.status != "0" || !got.data || got.trailersOnly {
		t.Errorf("unary: %+v", got)
	}
	grpcRequest(t, f, 3, "/grpc.Test/TrailersOnly")
	if got := r.outcome(t, 3); got.httpStatus != "200" || got.status != "12" || got.message != "nope" || !got.trailersOnly || got.data {
		t.Errorf("trailers-only: %+v", got)
	}
	m := scrape(t, admin)
	for _, st := range []string{"OK", "UNIMPLEMENTED"} {
		if v := metricSum(t, admin, fmt.Sprintf(`^expressgateway_grpc_requests_total\{listener="web",code=%q\}$`, st)); v != 1 {
			t.Errorf("grpc_requests_total %s: %v\n%s", st, v, grepLines(m, "grpc_requests"))
		}
	}
}

// TestH3UpstreamChurn: HTTP/2 and HTTP/3 clients whose streams are
// cancelled at random points beside others that complete, all multiplexed
// on the gateway's pooled QUIC connections (and on reused per-stream
// state): every completed response is its own request's.
func TestH3UpstreamChurn(t *testing.T) {
	ca := newTestCA(t, "origin")
	o := startProtoOrigin(t, "h3", ca)
	cert, key, _ := ca.issue(t, "a", "a.test", leafOpts{dns: []string{"a.test"}})
	gw, h3addr, admin := freeAddr(t), freeUDPAddr(t), freeAddr(t)
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
[[listeners.routes]]
cluster = "app"
[[listeners]]
name = "h3"
listen = %q
protocol = "h3"
[listeners.tls]
[[listeners.tls.certificates]]
cert_file = %q
key_file = %q
[[listeners.routes]]
cluster = "app"
%s`, admin, gw, h3addr, cert, key, h3ClusterTable("app", ca, "", o.addr)), admin)
	waitReady(t, admin)
	h3c, h3tr := h3Client(ca)
	defer func() { _ = h3tr.Close() }()
	clients := []struct {
		c    *http.Client
		base string
	}{{h2Client(nil), "http://" + gw}, {h3c, "https://" + h3addr}}
	var wg sync.WaitGroup
	var done, cancelled, wrong atomic.Int64
	for i := range 300 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := clients[i%2]
			path := fmt.Sprintf("/echo?i=%d", i)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if i%3 == 0 {
				path = fmt.Sprintf("/sleep?%d", i)
				time.AfterFunc(time.Duration(i%13)*40*time.Millisecond, cancel) // some before the answer, some after
			}
			req, _ := http.NewRequestWithContext(ctx, "GET", cl.base+path, nil)
			resp, err := cl.c.Do(req)
			if err != nil {
				cancelled.Add(1)
				return
			}
			b, err := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if err != nil {
				cancelled.Add(1)
				return
			}
			want := fmt.Sprintf("GET /echo?i=%d ", i)
			if i%3 == 0 {
				want = fmt.Sprintf("slept %d", i)
			}
			if resp.StatusCode != 200 || !strings.HasPrefix(string(b), want) {
				wrong.Add(1)
				t.Errorf("request %d: %d %q, want %q", i, resp.StatusCode, b, want)
				return
			}
			done.Add(1)
		}()
	}
	wg.Wait()
	if wrong.Load() != 0 || done.Load() < 200 {
		t.Errorf("%d completed, %d cancelled, %d wrong", done.Load(), cancelled.Load(), wrong.Load())
	}
	t.Logf("%d completed, %d cancelled, origin connections %d", done.Load(), cancelled.Load(), o.conns.Load())
}

// TestWebSocketH2ToH3ClusterRefused: an HTTP/2 WebSocket (RFC 8441
// extended CONNECT) routed to an h3 cluster gets 502, since RFC 9220 is
// not spoken upstream, and nothing reaches the endpoint; the connection
// serves the next request.
func TestWebSocketH2ToH3ClusterRefused(t *testing.T) {
	ca := newTestCA(t, "origin")
	o := startProtoOrigin(t, "h3", ca)
	gw, _ := h3UpGateway(t, h3ClusterTable("app", ca, "", o.addr)+h3ClusterTable("dead", ca, "", o.addr))
	tr := h2cTransport(t)
	before := o.requests.Load()
	resp, _ := h2Connect(t, tr, gw, "/chat", "websocket")
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("extended CONNECT to an h3 cluster: %d, want 502", resp.StatusCode)
	}
	if n := o.requests.Load() - before; n != 0 {
		t.Fatalf("%d requests reached the h3 endpoint", n)
	}
	req, _ := http.NewRequest("GET", "http://"+gw+"/after", nil)
	r2, err := tr.RoundTrip(req) //nolint:staticcheck // h2cTransport
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, r2.Body)
	_ = r2.Body.Close()
	if r2.StatusCode != 200 {
		t.Fatalf("the next request: %d", r2.StatusCode)
	}
}
