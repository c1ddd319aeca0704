// SPDX-License-Identifier: GPL-3.0-only

package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// gRPC through the binary (issue 11): grpc-go v1.85.0's interop client (its
// own binary, built from tools/grpc-interop.mod so that the gateway's go.mod
// does not move) against grpc-go's interop TestService (tools/grpcinterop:
// the interop server's service on a loopback address), and Go clients of
// the same service for what the interop suite does not cover. Every test
// runs once per front in grpcFronts: a TLS front is one more row.

// grpcFront is one way for a gRPC client to reach the gateway.
type grpcFront struct {
	name string
	// listener returns extra TOML for the gateway's listener (its last
	// keys: it may open the listener's tls tables).
	listener func(t *testing.T) string
	// interopArgs are the interop client's flags to reach the gateway.
	interopArgs func(gw string) []string
	// dial opens a grpc-go client connection to the gateway.
	dial func(t *testing.T, gw string) *grpc.ClientConn
	// conn opens a raw connection to the gateway that speaks alpn
	// ("h2" or "http/1.1") over it.
	conn func(t *testing.T, gw, alpn string) net.Conn
}

func plainConn(t *testing.T, gw, _ string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", gw)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// rawExchangeOn is rawExchange on the connection c.
func rawExchangeOn(t *testing.T, c net.Conn, raw string) string {
	t.Helper()
	defer func() { _ = c.Close() }()
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	var out []byte
	buf := make([]byte, 64<<10)
	for {
		_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		n, err := c.Read(buf)
		out = append(out, buf[:n]...)
		if err != nil {
			return string(out)
		}
	}
}

var grpcFronts = []grpcFront{{
	name:     "h2c",
	listener: func(*testing.T) string { return "" },
	conn:     plainConn,
	interopArgs: func(gw string) []string {
		host, port, _ := net.SplitHostPort(gw)
		return []string{"--server_host=" + host, "--server_port=" + port}
	},
	dial: func(t *testing.T, gw string) *grpc.ClientConn {
		t.Helper()
		cc, err := grpc.NewClient("passthrough:///"+gw, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cc.Close() })
		return cc
	},
}, {
	// TLS with ALPN h2 (https listener, a test CA's certificate for a.test).
	name:     "tls",
	listener: grpcTLSListener,
	conn: func(t *testing.T, gw, alpn string) net.Conn {
		t.Helper()
		c, err := tls.Dial("tcp", gw, &tls.Config{RootCAs: grpcTLS.ca.pool, ServerName: "a.test", NextProtos: []string{alpn}})
		if err != nil {
			t.Fatal(err)
		}
		return c
	},
	interopArgs: func(gw string) []string {
		host, port, _ := net.SplitHostPort(gw)
		// The client reads --ca_file only with --use_test_ca.
		return []string{"--server_host=" + host, "--server_port=" + port, "--use_tls", "--use_test_ca", "--ca_file=" + grpcTLS.ca.file, "--server_host_override=a.test"}
	},
	dial: func(t *testing.T, gw string) *grpc.ClientConn {
		t.Helper()
		creds := credentials.NewTLS(&tls.Config{RootCAs: grpcTLS.ca.pool, ServerName: "a.test"})
		cc, err := grpc.NewClient("passthrough:///"+gw, grpc.WithTransportCredentials(creds))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cc.Close() })
		return cc
	},
}}

// grpcTLS is the CA of the tls front's certificates (one per test that
// starts a gateway with that front; tests run one at a time).
var grpcTLS struct{ ca *testCA }

func grpcTLSListener(t *testing.T) string {
	grpcTLS.ca = newTestCA(t, "grpc")
	cert, key, _ := grpcTLS.ca.issue(t, "a", "a.test", leafOpts{dns: []string{"a.test"}})
	// Three descriptors per TLS connection (socket, socketpair): a
	// smaller cap fits the test machine's limit.
	return fmt.Sprintf("protocol = \"https\"\nmax_connections = 2000\n[listeners.tls]\n[[listeners.tls.certificates]]\ncert_file = %q\nkey_file = %q\n", cert, key)
}

var grpcBins struct {
	once           sync.Once
	client, server string
	err            error
}

// grpcInteropBins builds the interop client and the loopback interop
// server once per test run, pinned by tools/grpc-interop.mod.
func grpcInteropBins(t *testing.T) (client, server string) {
	t.Helper()
	grpcBins.once.Do(func() {
		dir, err := os.MkdirTemp("", "eg-grpc")
		if err != nil {
			grpcBins.err = err
			return
		}
		grpcBins.client = filepath.Join(dir, "interop-client")
		grpcBins.server = filepath.Join(dir, "interop-server")
		for _, args := range [][]string{
			{"build", "-modfile=../../tools/grpc-interop.mod", "-o", grpcBins.client, "google.golang.org/grpc/interop/client"},
			{"build", "-tags", "grpcinterop", "-modfile=../../tools/grpc-interop.mod", "-o", grpcBins.server, "../../tools/grpcinterop"},
		} {
			cmd := exec.Command("go", args...)
			cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
			if out, err := cmd.CombinedOutput(); err != nil {
				grpcBins.err = fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
				return
			}
		}
	})
	if grpcBins.err != nil {
		t.Fatal(grpcBins.err)
	}
	return grpcBins.client, grpcBins.server
}

// interopServer runs one interop server on a loopback address; stop kills it.
func interopServer(t *testing.T) (addr string, stop func()) {
	t.Helper()
	_, bin := grpcInteropBins(t)
	addr = freeAddr(t)
	cmd := exec.Command(bin, "-addr", addr)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop = func() { once.Do(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }) }
	t.Cleanup(stop)
	waitAccepting(t, addr, 10*time.Second)
	return addr, stop
}

// grpcGateway runs the binary with one listener (front's extra TOML, then
// listenerExtra) whose routes and clusters are given.
func grpcGateway(t *testing.T, f grpcFront, listenerExtra, routesAndClusters string) (gw, admin string) {
	t.Helper()
	gw, admin = freeAddr(t), freeAddr(t)
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
max_connections_per_ip = 0
%s
%s
%s
`, admin, gw, listenerExtra, f.listener(t), routesAndClusters), gw)
	waitAccepting(t, admin, 10*time.Second) // the tests read its metrics
	return gw, admin
}

func h2cCluster(name, lb string, addrs ...string) string {
	eps := make([]string, len(addrs))
	for i, a := range addrs {
		eps[i] = fmt.Sprintf("{ address = %q }", a)
	}
	return fmt.Sprintf(`
[[clusters]]
name = %q
protocol = "h2c"
lb = %q
endpoints = [ %s ]
`, name, lb, strings.Join(eps, ", "))
}

// interopCases are the interop suite's cases that are not soak tests.
var interopCases = []string{
	"empty_unary", "large_unary", "client_streaming", "server_streaming", "ping_pong",
	"empty_stream", "timeout_on_sleeping_server", "cancel_after_begin",
	"cancel_after_first_response", "status_code_and_message", "special_status_message",
	"custom_metadata", "unimplemented_method", "unimplemented_service",
}

// TestGRPCInterop runs every non-soak case of the grpc-go interop client
// through the gateway to an h2c upstream.
func TestGRPCInterop(t *testing.T) {
	client, _ := grpcInteropBins(t)
	up, _ := interopServer(t)
	for _, f := range grpcFronts {
		t.Run(f.name, func(t *testing.T) {
			gw, admin := grpcGateway(t, f, "", "[[listeners.routes]]\ncluster = \"g\"\n"+h2cCluster("g", "round_robin", up))
			for _, tc := range interopCases {
				args := append(f.interopArgs(gw), "--test_case="+tc)
				cmd := exec.Command(client, args...)
				cmd.Env = append(os.Environ(), "GRPC_GO_LOG_SEVERITY_LEVEL=error")
				start := time.Now()
				out, err := runWithin(cmd, 30*time.Second)
				if err != nil {
					t.Errorf("%s: %v\n%s", tc, err, out)
					continue
				}
				t.Logf("%s: passed in %v", tc, time.Since(start).Round(time.Millisecond))
			}
			// The outcomes are counted by grpc-status.
			// OK: the 6 single-call cases and custom_metadata's 2 calls;
			// UNKNOWN: status_code_and_message's 2 and special_status_message;
			// CANCELLED: cancel_after_first_response's stream (that of
			// cancel_after_begin too when its HEADERS left the client before
			// the cancel, and the sleeping server's when its 1 ms deadline
			// fired after; neither is certain).
			for code, want := range map[string]float64{"OK": 8, "UNIMPLEMENTED": 2, "UNKNOWN": 3} {
				re := fmt.Sprintf(`^expressgateway_grpc_requests_total\{listener="web",code=%q\}$`, code)
				if n := metricSum(t, admin, re); n != want {
					t.Errorf("grpc_requests_total{code=%q} = %v, want %v", code, n, want)
				}
			}
			if n := metricSum(t, admin, `^expressgateway_grpc_requests_total\{listener="web",code="CANCELLED"\}$`); n < 1 {
				t.Errorf("grpc_requests_total{code=\"CANCELLED\"} = %v, want at least 1", n)
			}
			// The client's cancellation went upstream as RST_STREAM(CANCEL).
			if n := metricSum(t, admin, `^expressgateway_upstream_http2_rst_stream_total\{direction="sent",code="CANCEL"\}$`); n < 1 {
				t.Errorf("client cancellations sent %v RST_STREAM(CANCEL) upstream, want at least 1", n)
			}
		})
	}
}

func runWithin(cmd *exec.Cmd, d time.Duration) ([]byte, error) {
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return out.Bytes(), err
	case <-time.After(d):
		_ = cmd.Process.Kill()
		err := <-done
		return out.Bytes(), fmt.Errorf("still running after %v (killed: %v)", d, err)
	}
}

// TestGRPCBidi10000Messages: one bidirectional stream carries 10,000
// requests and their 10,000 responses, sent and received concurrently
// (per-message flow control end to end), ending with status OK.
func TestGRPCBidi10000Messages(t *testing.T) {
	up, _ := interopServer(t)
	for _, f := range grpcFronts {
		t.Run(f.name, func(t *testing.T) {
			gw, _ := grpcGateway(t, f, "", "[[listeners.routes]]\ncluster = \"g\"\n"+h2cCluster("g", "round_robin", up))
			c := testgrpc.NewTestServiceClient(f.dial(t, gw))
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			st, err := c.FullDuplexCall(ctx)
			if err != nil {
				t.Fatal(err)
			}
			const n = 10000
			sendErr := make(chan error, 1)
			go func() {
				for i := 0; i < n; i++ {
					req := &testgrpc.StreamingOutputCallRequest{
						ResponseParameters: []*testgrpc.ResponseParameters{{Size: int32(100 + i%200)}},
						Payload:            &testgrpc.Payload{Body: make([]byte, 100+i%300)},
					}
					if err := st.Send(req); err != nil {
						sendErr <- err
						return
					}
				}
				sendErr <- st.CloseSend()
			}()
			for i := 0; i < n; i++ {
				resp, err := st.Recv()
				if err != nil {
					t.Fatalf("response %d: %v", i, err)
				}
				if got := len(resp.GetPayload().GetBody()); got != 100+i%200 {
					t.Fatalf("response %d: %d bytes, want %d", i, got, 100+i%200)
				}
			}
			if err := <-sendErr; err != nil {
				t.Fatal(err)
			}
			if _, err := st.Recv(); err != io.EOF {
				t.Fatalf("end of stream: %v", err)
			}
		})
	}
}

// TestGRPCPerStreamBalancing: three upstreams; over one client connection
// every algorithm spreads the calls (streams) over all three, and
// least_requests sees open streams as requests in flight.
func TestGRPCPerStreamBalancing(t *testing.T) {
	a, _ := interopServer(t)
	b, _ := interopServer(t)
	c, _ := interopServer(t)
	algos := []string{"round_robin", "least_requests", "p2c", "ewma"}
	var routes strings.Builder
	for _, lb := range algos {
		fmt.Fprintf(&routes, "[[listeners.routes]]\nheaders = { \"x-lb\" = %q }\ncluster = %q\n", lb, lb)
	}
	for _, lb := range algos {
		routes.WriteString(h2cCluster(lb, lb, a, b, c))
	}
	for _, f := range grpcFronts {
		t.Run(f.name, func(t *testing.T) {
			gw, admin := grpcGateway(t, f, "", routes.String())
			client := testgrpc.NewTestServiceClient(f.dial(t, gw))
			for _, lb := range algos {
				ctx := metadata.AppendToOutgoingContext(context.Background(), "x-lb", lb)
				for i := 0; i < 90; i++ {
					cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
					_, err := client.EmptyCall(cctx, &testgrpc.Empty{})
					cancel()
					if err != nil {
						t.Fatalf("%s call %d: %v", lb, i, err)
					}
				}
				min := 5.0
				if lb == "ewma" {
					min = 1 // it prefers the fastest endpoint, by design
				}
				for _, ep := range []string{a, b, c} {
					re := fmt.Sprintf(`^expressgateway_lb_picks_total\{cluster=%q,endpoint=%q\}$`, lb, ep)
					if n := metricSum(t, admin, re); n < min {
						t.Errorf("%s: endpoint %s picked %v times of 90", lb, ep, n)
					}
				}
			}
			// Six streams held open: least_requests gives each endpoint two.
			ctx, cancel := context.WithCancel(metadata.AppendToOutgoingContext(context.Background(), "x-lb", "least_requests"))
			defer cancel()
			for i := 0; i < 6; i++ {
				st, err := client.FullDuplexCall(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if err := st.Send(&testgrpc.StreamingOutputCallRequest{ResponseParameters: []*testgrpc.ResponseParameters{{Size: 1}}}); err != nil {
					t.Fatal(err)
				}
				if _, err := st.Recv(); err != nil {
					t.Fatal(err)
				}
			}
			for _, ep := range []string{a, b, c} {
				re := fmt.Sprintf(`^expressgateway_lb_active_requests\{cluster="least_requests",endpoint=%q\}$`, ep)
				if n := metricSum(t, admin, re); n != 2 {
					t.Errorf("least_requests: endpoint %s has %v open streams, want 2", ep, n)
				}
			}
			cancel()
			for _, ep := range []string{a, b, c} {
				waitMetric(t, admin, fmt.Sprintf(`^expressgateway_lb_active_requests\{cluster="least_requests",endpoint=%q\}$`, ep), 0)
			}
		})
	}
}

// TestGRPCHealthCheck: the grpc health check of a cluster probes the
// interop server (grpc.health.v1) and takes it out once it stops.
func TestGRPCHealthCheck(t *testing.T) {
	up, stop := interopServer(t)
	for _, f := range grpcFronts {
		t.Run(f.name, func(t *testing.T) {
			_, admin := grpcGateway(t, f, "", "[[listeners.routes]]\ncluster = \"g\"\n"+h2cCluster("g", "round_robin", up)+`
[clusters.health_check]
type = "grpc"
interval = "200ms"
timeout = "150ms"
healthy_threshold = 1
unhealthy_threshold = 2
`)
			re := fmt.Sprintf(`^expressgateway_lb_endpoint_healthy\{cluster="g",endpoint=%q\}$`, up)
			waitMetric(t, admin, re, 1)
			stop()
			waitMetric(t, admin, re, 0)
		})
	}
}

// rawH2Upstream is an h2c upstream written with the Framer, so that it can
// misbehave on purpose: serve gets each request's stream id and path.
func rawH2Upstream(t *testing.T, serve func(fr *http2.Framer, enc func(kv ...string) []byte, id uint32, path string)) string {
	t.Helper()
	ln := localListener(t)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer func() { _ = c.Close() }()
				pre := make([]byte, len(http2.ClientPreface))
				if _, err := io.ReadFull(c, pre); err != nil {
					return
				}
				fr := http2.NewFramer(c, c)
				var mu sync.Mutex
				var buf bytes.Buffer
				henc := hpack.NewEncoder(&buf)
				enc := func(kv ...string) []byte {
					buf.Reset()
					for i := 0; i+1 < len(kv); i += 2 {
						_ = henc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
					}
					return append([]byte(nil), buf.Bytes()...)
				}
				_ = fr.WriteSettings()
				var path string
				dec := hpack.NewDecoder(4096, func(hf hpack.HeaderField) {
					if hf.Name == ":path" {
						path = hf.Value
					}
					if hf.Name == "grpc-timeout" {
						rawTimeouts.Store(path, hf.Value)
					}
				})
				for {
					f, err := fr.ReadFrame()
					if err != nil {
						return
					}
					switch f := f.(type) {
					case *http2.SettingsFrame:
						if !f.IsAck() {
							mu.Lock()
							_ = fr.WriteSettingsAck()
							mu.Unlock()
						}
					case *http2.HeadersFrame:
						_, _ = dec.Write(f.HeaderBlockFragment())
						id, p := f.StreamID, path
						go func() {
							mu.Lock()
							defer mu.Unlock()
							serve(fr, enc, id, p)
						}()
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// rawTimeouts records the grpc-timeout each path reached a raw h2 upstream
// with (:path comes first in the gateway's heads).
var rawTimeouts sync.Map

// grpcFrame is one length-prefixed gRPC message.
func grpcFrame(payload []byte) []byte {
	b := []byte{0, byte(len(payload) >> 24), byte(len(payload) >> 16), byte(len(payload) >> 8), byte(len(payload))}
	return append(b, payload...)
}

// grpcOutcome reads stream id's response on f until its end: the
// grpc-status and grpc-message it ended with (from a trailers-only head or
// the trailers), whether the first head came with END_STREAM, or the
// RST_STREAM code.
type grpcOutcome struct {
	httpStatus, status, message string
	trailersOnly, data          bool
	rst                         string
}

// grpcReader reads gRPC outcomes off one connection (one HPACK decoder:
// its dynamic table spans the connection's streams).
type grpcReader struct {
	f   *h2Framer
	dec *hpack.Decoder
	cur *grpcOutcome
}

func newGRPCReader(f *h2Framer) *grpcReader {
	r := &grpcReader{f: f}
	r.dec = hpack.NewDecoder(4096, func(hf hpack.HeaderField) {
		switch hf.Name {
		case ":status":
			r.cur.httpStatus = hf.Value
		case "grpc-status":
			r.cur.status = hf.Value
		case "grpc-message":
			r.cur.message = hf.Value
		}
	})
	return r
}

func (r *grpcReader) outcome(t *testing.T, id uint32) grpcOutcome {
	t.Helper()
	var o grpcOutcome
	r.cur = &o
	f, dec := r.f, r.dec
	heads := 0
	f.until(t, "the end of the gRPC stream", func(fr http2.Frame) bool {
		switch fr := fr.(type) {
		case *http2.HeadersFrame:
			if fr.StreamID != id {
				return false
			}
			heads++
			_, _ = dec.Write(fr.HeaderBlockFragment())
			if heads == 1 && fr.StreamEnded() {
				o.trailersOnly = true
			}
			return fr.StreamEnded()
		case *http2.DataFrame:
			if fr.StreamID == id {
				o.data = o.data || len(fr.Data()) > 0
				return fr.StreamEnded()
			}
		case *http2.RSTStreamFrame:
			if fr.StreamID == id {
				o.rst = fr.ErrCode.String()
				return true
			}
		}
		return false
	})
	return o
}

func grpcRequest(t *testing.T, f *h2Framer, id uint32, path string, extra ...string) {
	t.Helper()
	kv := append([]string{":method", "POST", ":scheme", "http", ":authority", "gw", ":path", path,
		"content-type", "application/grpc", "te", "trailers"}, extra...)
	f.headers(t, id, false, kv...)
	if err := f.fr.WriteData(id, true, grpcFrame(nil)); err != nil {
		t.Fatal(err)
	}
}

// TestGRPCGatewayErrors: the errors the gateway makes itself for gRPC are
// gRPC errors (HTTP 200, trailers-only, a grpc-status, never a text body):
// UNIMPLEMENTED without a route, UNAVAILABLE for a dead endpoint,
// DEADLINE_EXCEEDED from grpc-timeout and from the route's timeout (before
// and during the response), RESOURCE_EXHAUSTED for a full queue, INTERNAL
// for an upstream that breaks HTTP/2; an upstream's RST_STREAM(CANCEL)
// reaches the client as CANCEL; native gRPC on HTTP/1.1 is refused the same
// way.
func TestGRPCGatewayErrors(t *testing.T) {
	up := rawH2Upstream(t, func(fr *http2.Framer, enc func(kv ...string) []byte, id uint32, path string) {
		switch path {
		case "/slow/Head": // never answers
		case "/slow/Body": // a head and one message, then silence
			_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, EndHeaders: true, BlockFragment: enc(":status", "200", "content-type", "application/grpc")})
			_ = fr.WriteData(id, false, grpcFrame([]byte("one")))
		case "/bad/Head": // a connection-specific field: malformed response
			_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, EndHeaders: true, BlockFragment: enc(":status", "200", "connection", "close")})
		case "/cancel/Me":
			_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, EndHeaders: true, BlockFragment: enc(":status", "200", "content-type", "application/grpc")})
			_ = fr.WriteRSTStream(id, http2.ErrCodeCancel)
		}
	})
	dead := refusingAddr(t)
	for _, f := range grpcFronts {
		t.Run(f.name, func(t *testing.T) {
			gw, admin := grpcGateway(t, f, "queue_size = 2", fmt.Sprintf(`
[[listeners.routes]]
path_prefix = "/dead/"
cluster = "dead"
[[listeners.routes]]
path_prefix = "/slow/"
timeout = "400ms"
cluster = "raw"
[[listeners.routes]]
path_prefix = "/hang/"
cluster = "hang"
[[listeners.routes]]
path_prefix = "/bad/"
cluster = "raw"
[[listeners.routes]]
path_prefix = "/cancel/"
cluster = "raw"
%s%s%s`, h2cCluster("dead", "round_robin", dead), h2cCluster("raw", "round_robin", up), h2cCluster("hang", "round_robin", up)))
			fr := dialH2On(t, f.conn(t, gw, "h2"))
			rd := newGRPCReader(fr)
			check := func(id uint32, path, wantStatus, wantMessage string, extra ...string) grpcOutcome {
				t.Helper()
				start := time.Now()
				grpcRequest(t, fr, id, path, extra...)
				o := rd.outcome(t, id)
				if o.httpStatus != "200" || o.status != wantStatus || o.message != wantMessage {
					t.Errorf("%s: :status %s grpc-status %q grpc-message %q rst %q; want 200, %q, %q", path, o.httpStatus, o.status, o.message, o.rst, wantStatus, wantMessage)
				}
				t.Logf("%s: grpc-status %s after %v", path, o.status, time.Since(start).Round(time.Millisecond))
				return o
			}
			if o := check(1, "/nowhere/Call", "12", "expressgateway: no_route"); !o.trailersOnly || o.data {
				t.Errorf("no route: not trailers-only (%+v)", o)
			}
			check(3, "/dead/Call", "14", "expressgateway: upstream_connect_failed")
			// grpc-timeout: the route has no timeout; the upstream never answers.
			start := time.Now()
			check(5, "/hang/Call", "4", "expressgateway: deadline_exceeded", "grpc-timeout", "300m")
			if el := time.Since(start); el < 250*time.Millisecond || el > 2*time.Second {
				t.Errorf("grpc-timeout 300m ended after %v", el)
			}
			// The route's timeout (400ms) caps a longer grpc-timeout.
			start = time.Now()
			check(7, "/slow/Head", "4", "expressgateway: deadline_exceeded", "grpc-timeout", "10S")
			if el := time.Since(start); el < 350*time.Millisecond || el > 2*time.Second {
				t.Errorf("route timeout 400ms ended after %v", el)
			}
			// ... and the endpoint was told the deadline the gateway keeps.
			v, _ := rawTimeouts.Load("/slow/Head")
			ms, err := strconv.Atoi(strings.TrimSuffix(fmt.Sprint(v), "m"))
			if err != nil || !strings.HasSuffix(fmt.Sprint(v), "m") || ms <= 0 || ms > 400 {
				t.Errorf("the upstream got grpc-timeout %v, want at most 400m", v)
			}
			// During the response: the trailers carry the status.
			if o := check(9, "/slow/Body", "4", "expressgateway: deadline_exceeded"); o.trailersOnly || !o.data {
				t.Errorf("mid-response deadline: %+v", o)
			}
			if o := check(11, "/bad/Head", "13", "expressgateway: upstream_h2_connection_header"); !o.trailersOnly {
				t.Errorf("bad upstream head: %+v", o)
			}
			// The upstream cancels: so does the client's stream.
			grpcRequest(t, fr, 13, "/cancel/Me")
			if o := rd.outcome(t, 13); o.rst != "CANCEL" {
				t.Errorf("upstream RST_STREAM(CANCEL) reached the client as %+v", o)
			}
			// Queue full: two hanging calls hold both slots.
			grpcRequest(t, fr, 15, "/hang/A")
			grpcRequest(t, fr, 17, "/hang/B")
			time.Sleep(200 * time.Millisecond)
			check(19, "/hang/C", "8", "expressgateway: queue_full")
			if n := metricSum(t, admin, `^expressgateway_grpc_requests_total\{listener="web",code="DEADLINE_EXCEEDED"\}$`); n != 3 {
				t.Errorf("DEADLINE_EXCEEDED counted %v times, want 3", n)
			}

			// Native gRPC over HTTP/1.1: a gRPC error in the header section.
			got := rawExchangeOn(t, f.conn(t, gw, "http/1.1"), "POST /hang/EmptyCall HTTP/1.1\r\nHost: gw\r\nContent-Type: application/grpc\r\nContent-Length: 5\r\n\r\n\x00\x00\x00\x00\x00")
			if !strings.HasPrefix(got, "HTTP/1.1 200 ") || !strings.Contains(got, "grpc-status: 14\r\n") ||
				!strings.Contains(got, "grpc-message: expressgateway: grpc_needs_http2\r\n") || !strings.HasSuffix(got, "\r\n\r\n") {
				t.Errorf("gRPC over HTTP/1.1: %q", got)
			}
		})
	}
}

// TestGRPCStatusAndMetadataExact: trailers (grpc-status, grpc-message,
// binary -bin metadata) and initial metadata come through byte for byte,
// for an OK and an error status, with grpc-go on both ends.
func TestGRPCStatusAndMetadataExact(t *testing.T) {
	up, _ := interopServer(t)
	for _, f := range grpcFronts {
		t.Run(f.name, func(t *testing.T) {
			gw, _ := grpcGateway(t, f, "", "[[listeners.routes]]\ncluster = \"g\"\n"+h2cCluster("g", "round_robin", up))
			c := testgrpc.NewTestServiceClient(f.dial(t, gw))
			bin := string([]byte{0, 1, 2, 0xfe, 0xff})
			ctx := metadata.AppendToOutgoingContext(context.Background(),
				"x-grpc-test-echo-initial", "initial value", "x-grpc-test-echo-trailing-bin", bin)
			var hdr, trl metadata.MD
			msg := "héllo\t\n%25 wörld"
			_, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{ResponseStatus: &testgrpc.EchoStatus{Code: int32(codes.ResourceExhausted), Message: msg}},
				grpc.Header(&hdr), grpc.Trailer(&trl))
			st, _ := status.FromError(err)
			if st.Code() != codes.ResourceExhausted || st.Message() != msg {
				t.Fatalf("status %v %q", st.Code(), st.Message())
			}
			if got := hdr.Get("x-grpc-test-echo-initial"); len(got) != 1 || got[0] != "initial value" {
				t.Errorf("initial metadata %q", got)
			}
			if got := trl.Get("x-grpc-test-echo-trailing-bin"); len(got) != 1 || got[0] != bin {
				t.Errorf("binary trailer %q", got)
			}
			if _, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{ResponseSize: 1 << 20}, grpc.Trailer(&trl)); err != nil {
				t.Fatal(err)
			}
			if got := trl.Get("x-grpc-test-echo-trailing-bin"); len(got) != 1 || got[0] != bin {
				t.Errorf("binary trailer on OK %q", got)
			}
		})
	}
}

// TestGRPCAccessLog: the access-log line of a gRPC call carries its
// grpc-status, from the upstream's trailers and from the gateway's own
// errors.
func TestGRPCAccessLog(t *testing.T) {
	up, _ := interopServer(t)
	for _, f := range grpcFronts {
		t.Run(f.name, func(t *testing.T) {
			gw, admin := freeAddr(t), freeAddr(t)
			_, logPath := startBinaryLog(t, fmt.Sprintf(`
[admin]
listen = %q
[log]
access_log = true
[[listeners]]
name = "web"
listen = %q
%s
[[listeners.routes]]
path_prefix = "/grpc.testing.TestService/"
cluster = "g"
%s`, admin, gw, f.listener(t), h2cCluster("g", "round_robin", up)), gw)
			c := testgrpc.NewTestServiceClient(f.dial(t, gw))
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{ResponseStatus: &testgrpc.EchoStatus{Code: int32(codes.NotFound), Message: "nope"}})
			if status.Code(err) != codes.NotFound {
				t.Fatalf("NOT_FOUND call: %v", err)
			}
			if _, err := testgrpc.NewUnimplementedServiceClient(f.dial(t, gw)).UnimplementedCall(ctx, &testgrpc.Empty{}); status.Code(err) != codes.Unimplemented {
				t.Fatalf("no route: %v", err)
			}
			deadline := time.Now().Add(5 * time.Second)
			for {
				b, _ := os.ReadFile(logPath)
				log := string(b)
				if strings.Contains(log, `"target":"/grpc.testing.TestService/UnaryCall","status":200`) && strings.Contains(log, `"grpc_status":5`) &&
					strings.Contains(log, `"target":"/grpc.testing.UnimplementedService/UnimplementedCall","status":200`) && strings.Contains(log, `"grpc_status":12`) {
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("access log without the grpc-status of both calls:\n%s", log)
				}
				time.Sleep(100 * time.Millisecond)
			}
		})
	}
}
