// SPDX-License-Identifier: GPL-3.0-only

package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1" //nolint:gosec // RFC 6455 accept value
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/net/http2"
)

// WebSocket through the binary (issue 11). Every test runs once per front:
// the client side is a gorilla/websocket Dialer, so another front (HTTP/2
// extended CONNECT, TLS) is one more row in wsFronts with its own dialer.

// wsFront is one way for a client to reach the gateway's WebSocket route.
type wsFront struct {
	name string
	// dialer returns the gorilla Dialer to use against the gateway at gw.
	dialer func(t *testing.T, gw string) *websocket.Dialer
}

var wsFronts = []wsFront{
	{name: "h1", dialer: func(*testing.T, string) *websocket.Dialer {
		return &websocket.Dialer{HandshakeTimeout: 5 * time.Second, ReadBufferSize: 4096, WriteBufferSize: 4096}
	}},
	{name: "h2", dialer: func(t *testing.T, gw string) *websocket.Dialer {
		// gorilla speaks only the HTTP/1.1 handshake: h2WSConn turns it
		// into an RFC 8441 extended CONNECT on an HTTP/2 connection (one
		// per dialer, shared by its WebSockets) and the gateway's 200 back
		// into the 101 gorilla checks.
		tr := h2cTransport(t)
		return &websocket.Dialer{HandshakeTimeout: 5 * time.Second, ReadBufferSize: 4096, WriteBufferSize: 4096,
			NetDialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
				return &h2WSConn{tr: tr, addr: addr}, nil
			}}
	}},
	// The same two over the https listener beside (wsTLSListener): the
	// dialers reach it whatever address the test names.
	{name: "h1-tls", dialer: func(t *testing.T, gw string) *websocket.Dialer {
		tlsAddr, cfg := wsTLSFor(t, gw, "http/1.1")
		return &websocket.Dialer{HandshakeTimeout: 5 * time.Second, ReadBufferSize: 4096, WriteBufferSize: 4096,
			NetDialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				d := tls.Dialer{Config: cfg}
				return d.DialContext(ctx, "tcp", tlsAddr)
			}}
	}},
	{name: "h2-tls", dialer: func(t *testing.T, gw string) *websocket.Dialer {
		tlsAddr, cfg := wsTLSFor(t, gw, "h2")
		tr := &http2.Transport{AllowHTTP: true, DialTLSContext: func(ctx context.Context, _, _ string, _ *tls.Config) (net.Conn, error) { //nolint:staticcheck // h2cTransport
			d := tls.Dialer{Config: cfg}
			return d.DialContext(ctx, "tcp", tlsAddr)
		}}
		t.Cleanup(tr.CloseIdleConnections) //nolint:staticcheck // h2cTransport
		return &websocket.Dialer{HandshakeTimeout: 5 * time.Second, ReadBufferSize: 4096, WriteBufferSize: 4096,
			NetDialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
				return &h2WSConn{tr: tr, addr: addr}, nil
			}}
	}},
}

// wsTLS maps a gateway's cleartext address to its https listener (the
// TLS rows of wsFronts) and the CA that signed its certificate.
var wsTLS sync.Map // string → wsTLSListener

type wsTLSListener struct {
	addr string
	ca   *testCA
}

// wsTLSConfig returns the TOML of an https listener "tls" routing to
// cluster "ws" on addr, registered for the cleartext address gw.
func wsTLSConfig(t *testing.T, gw string) string {
	t.Helper()
	ca := newTestCA(t, "ws")
	cert, key, _ := ca.issue(t, "a", "a.test", leafOpts{dns: []string{"a.test"}})
	addr := freeAddr(t)
	wsTLS.Store(gw, wsTLSListener{addr: addr, ca: ca})
	return fmt.Sprintf(`
[[listeners]]
name = "tls"
listen = %q
protocol = "https"
max_connections = 2000
max_connections_per_ip = 0
[[listeners.tls.certificates]]
cert_file = %q
key_file = %q
[[listeners.routes]]
cluster = "ws"
`, addr, cert, key)
}

func wsTLSFor(t *testing.T, gw, alpn string) (string, *tls.Config) {
	t.Helper()
	v, ok := wsTLS.Load(gw)
	if !ok {
		t.Fatalf("no https listener beside %s", gw)
	}
	l := v.(wsTLSListener)
	return l.addr, &tls.Config{RootCAs: l.ca.pool, ServerName: "a.test", NextProtos: []string{alpn}}
}

// h2WSConn is a net.Conn over one HTTP/2 stream opened with extended
// CONNECT :protocol websocket (RFC 8441), for gorilla's client: the
// HTTP/1.1 upgrade request gorilla writes becomes the CONNECT's head, the
// response head comes back as an HTTP/1.1 101 (or the refusal as it is),
// then the stream's DATA is the connection. Deadlines are not supported
// (the tests bound themselves with go test's timeout).
type h2WSConn struct {
	tr      *http2.Transport //nolint:staticcheck // h2cTransport
	addr    string
	reqBuf  []byte
	started bool
	pw      *io.PipeWriter
	body    io.ReadCloser
	head    []byte // the synthesized HTTP/1.1 response head, read first
	status  int
}

func (c *h2WSConn) Write(p []byte) (int, error) {
	if c.started {
		return c.pw.Write(p)
	}
	c.reqBuf = append(c.reqBuf, p...)
	if !bytes.Contains(c.reqBuf, []byte("\r\n\r\n")) {
		return len(p), nil
	}
	c.started = true
	in, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(c.reqBuf)))
	if err != nil {
		return 0, err
	}
	pr, pw := io.Pipe()
	c.pw = pw
	req, err := http.NewRequest("CONNECT", "http://"+c.addr+in.URL.RequestURI(), pr)
	if err != nil {
		return 0, err
	}
	req.Header.Set(":protocol", "websocket")
	for k, vs := range in.Header {
		switch k {
		case "Upgrade", "Connection", "Sec-Websocket-Key":
			continue
		}
		req.Header[k] = vs
	}
	resp, err := c.tr.RoundTrip(req) //nolint:staticcheck // h2cTransport
	if err != nil {
		return 0, err
	}
	c.body, c.status = resp.Body, resp.StatusCode
	var h bytes.Buffer
	if resp.StatusCode == 200 {
		fmt.Fprintf(&h, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n", acceptFor(in.Header.Get("Sec-WebSocket-Key")))
		_ = resp.Header.Write(&h)
		h.WriteString("\r\n")
	} else {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		fmt.Fprintf(&h, "HTTP/1.1 %d %s\r\nContent-Length: %d\r\n", resp.StatusCode, http.StatusText(resp.StatusCode), len(b))
		resp.Header.Del("Content-Length")
		_ = resp.Header.Write(&h)
		h.WriteString("\r\n")
		h.Write(b)
	}
	c.head = h.Bytes()
	return len(p), nil
}

func (c *h2WSConn) Read(p []byte) (int, error) {
	if len(c.head) > 0 {
		n := copy(p, c.head)
		c.head = c.head[n:]
		return n, nil
	}
	if c.body == nil {
		return 0, io.EOF
	}
	return c.body.Read(p)
}

func (c *h2WSConn) Close() error {
	if c.pw != nil {
		_ = c.pw.Close()
	}
	if c.body != nil {
		_ = c.body.Close()
	}
	return nil
}

func (c *h2WSConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *h2WSConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *h2WSConn) SetDeadline(time.Time) error      { return nil }
func (c *h2WSConn) SetReadDeadline(time.Time) error  { return nil }
func (c *h2WSConn) SetWriteDeadline(time.Time) error { return nil }

// wsOrigin is a gorilla echo server: /echo echoes every message with its
// type (streamed, so 16 MiB messages stay streamed), answers "close-me"
// with a close frame (4001), "ping-me" with a ping (and "got-pong" once the
// pong is back); /refuse answers 403; anything else 200.
type wsOrigin struct {
	addr   string
	conns  atomic.Int64 // TCP connections accepted
	closed atomic.Int64 // ... and closed since
}

// open is the number of the origin's connections open now.
func (o *wsOrigin) open() int64 { return o.conns.Load() - o.closed.Load() }

func newWSOrigin(t *testing.T) *wsOrigin {
	t.Helper()
	o := &wsOrigin{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o.addr = ln.Addr().String()
	up := websocket.Upgrader{ReadBufferSize: 32 << 10, WriteBufferSize: 32 << 10}
	mux := http.NewServeMux()
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, http.Header{"X-Origin": {"echo"}})
		if err != nil {
			return
		}
		defer func() { _ = c.Close() }()
		c.SetReadLimit(64 << 20)
		c.SetPongHandler(func(string) error {
			return c.WriteMessage(websocket.TextMessage, []byte("got-pong"))
		})
		for {
			mt, rd, err := c.NextReader()
			if err != nil {
				return
			}
			if mt == websocket.TextMessage {
				b, _ := io.ReadAll(rd)
				switch string(b) {
				case "close-me":
					_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(4001, "bye"), time.Now().Add(time.Second))
					continue
				case "ping-me":
					_ = c.WriteControl(websocket.PingMessage, []byte("srv"), time.Now().Add(time.Second))
					continue
				}
				rd = bytes.NewReader(b)
			}
			wr, err := c.NextWriter(mt)
			if err != nil {
				return
			}
			if _, err := io.Copy(wr, rd); err != nil {
				return
			}
			if err := wr.Close(); err != nil {
				return
			}
		}
	})
	mux.HandleFunc("/refuse", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no websocket for you", http.StatusForbidden)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "plain")
	})
	srv := &http.Server{Handler: mux, ConnState: func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			o.conns.Add(1)
		case http.StateClosed, http.StateHijacked:
			o.closed.Add(1)
		}
	}}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return o
}

// wsGateway runs the binary with one listener routing to origin;
// timeouts are extra [listeners.timeouts] keys.
func wsGateway(t *testing.T, origin, timeouts string) (gw, admin string) {
	gw, admin, _ = wsGatewayPID(t, origin, timeouts)
	return gw, admin
}

// wsGatewayPID is wsGateway that also returns the gateway's process id.
func wsGatewayPID(t *testing.T, origin, timeouts string) (gw, admin string, pid int) {
	t.Helper()
	gw, admin = freeAddr(t), freeAddr(t)
	cmd := startBinary(t, fmt.Sprintf(`
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
%s
[[listeners.routes]]
cluster = "ws"
%s
[listeners.timeouts]
body_min_rate = 0
%s
[[clusters]]
name = "ws"
endpoints = [ { address = %q } ]
`, admin, gw, timeouts, wsTLSConfig(t, gw), timeouts, origin), gw)
	return gw, admin, cmd.Process.Pid
}

func wsDial(t *testing.T, f wsFront, gw, path string) *websocket.Conn {
	t.Helper()
	c, resp, err := f.dialer(t, gw).Dial("ws://"+gw+path, nil)
	if err != nil {
		t.Fatalf("dial %s: %v (response %v)", path, err, resp)
	}
	if resp.Header.Get("X-Origin") != "echo" {
		t.Errorf("the 101 lost the origin's fields: %v", resp.Header)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func wsEcho(t *testing.T, c *websocket.Conn, mt int, msg []byte) {
	t.Helper()
	// Written while the echo is read: a message larger than the socket
	// buffers on the way would otherwise stall both ends.
	werr := make(chan error, 1)
	go func() {
		_ = c.SetWriteDeadline(time.Now().Add(30 * time.Second))
		werr <- c.WriteMessage(mt, msg)
	}()
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	gt, got, err := c.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
	if gt != mt || !bytes.Equal(got, msg) {
		t.Fatalf("echo: type %d, %d bytes; sent type %d, %d bytes", gt, len(got), mt, len(msg))
	}
}

// TestWebSocketEcho: text, binary, a message fragmented into many frames,
// 16 MiB messages, ping/pong both ways, the close handshake from either
// side, and a plain request refused the upgrade by its upstream.
func TestWebSocketEcho(t *testing.T) {
	o := newWSOrigin(t)
	gw, admin := wsGateway(t, o.addr, "")
	for _, f := range wsFronts {
		t.Run(f.name, func(t *testing.T) {
			c := wsDial(t, f, gw, "/echo")
			wsEcho(t, c, websocket.TextMessage, []byte("hello"))
			wsEcho(t, c, websocket.BinaryMessage, []byte{0, 1, 2, 0xff})
			// Fragmented: the client's 4 KiB write buffer sends a 100 KiB
			// message as 25 frames (one text frame, continuations after).
			big := bytes.Repeat([]byte("fragment "), 100<<10/9)
			w, err := c.NextWriter(websocket.TextMessage)
			if err != nil {
				t.Fatal(err)
			}
			for p := big; len(p) > 0; {
				n := min(len(p), 1000)
				if _, err := w.Write(p[:n]); err != nil {
					t.Fatal(err)
				}
				p = p[n:]
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if mt, got, err := c.ReadMessage(); err != nil || mt != websocket.TextMessage || !bytes.Equal(got, big) {
				t.Fatalf("fragmented message: %v, type %d, %d bytes", err, mt, len(got))
			}
			// 16 MiB each way.
			huge := make([]byte, 16<<20)
			_, _ = rand.Read(huge)
			wsEcho(t, c, websocket.BinaryMessage, huge)

			// Client ping → upstream pong.
			pong := make(chan string, 1)
			c.SetPongHandler(func(s string) error { pong <- s; return nil })
			if err := c.WriteControl(websocket.PingMessage, []byte("cli"), time.Now().Add(time.Second)); err != nil {
				t.Fatal(err)
			}
			// Upstream ping → client pong (gorilla answers it) → "got-pong".
			if err := c.WriteMessage(websocket.TextMessage, []byte("ping-me")); err != nil {
				t.Fatal(err)
			}
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, got, err := c.ReadMessage(); err != nil || string(got) != "got-pong" {
				t.Fatalf("upstream ping: %q %v", got, err)
			}
			select {
			case s := <-pong:
				if s != "cli" {
					t.Fatalf("pong payload %q", s)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("no pong for the client's ping")
			}

			// Close from the upstream: the client sees its code.
			if err := c.WriteMessage(websocket.TextMessage, []byte("close-me")); err != nil {
				t.Fatal(err)
			}
			_, _, err = c.ReadMessage()
			var ce *websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != 4001 || ce.Text != "bye" {
				t.Fatalf("upstream close: %v", err)
			}

			// Close from the client: the upstream answers the close frame.
			c2 := wsDial(t, f, gw, "/echo")
			wsEcho(t, c2, websocket.TextMessage, []byte("before close"))
			if err := c2.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "done"), time.Now().Add(time.Second)); err != nil {
				t.Fatal(err)
			}
			_ = c2.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, _, err = c2.ReadMessage()
			if !errors.As(err, &ce) || ce.Code != websocket.CloseNormalClosure {
				t.Fatalf("client close: the upstream's answer was %v", err)
			}

			// An upstream that refuses the upgrade: its answer is passed
			// through as a normal response and no tunnel opens.
			_, resp, err := f.dialer(t, gw).Dial("ws://"+gw+"/refuse", nil)
			if err == nil || resp == nil || resp.StatusCode != 403 {
				t.Fatalf("refused upgrade: %v %v", err, resp)
			}
			body, _ := io.ReadAll(resp.Body)
			if !strings.Contains(string(body), "no websocket for you") {
				t.Fatalf("refusal body %q", body)
			}
		})
	}
	waitMetric(t, admin, `^expressgateway_websocket_tunnels_active$`, 0)
	if n := metricSum(t, admin, `^expressgateway_websocket_bytes_total\{direction="upstream_to_client"\}$`); n < 16<<20 {
		t.Errorf("websocket_bytes_total upstream_to_client = %v, want at least 16 MiB", n)
	}
	if n := metricSum(t, admin, `^expressgateway_websocket_bytes_total\{direction="client_to_upstream"\}$`); n < 16<<20 {
		t.Errorf("websocket_bytes_total client_to_upstream = %v, want at least 16 MiB", n)
	}
}

// waitMetric waits up to 5 s for the sum of the series matching re to be want.
func waitMetric(t *testing.T, admin, re string, want float64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := metricSum(t, admin, re)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v, want %v", re, got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestWebSocketFreshUpstreamConnection: a tunnel never uses a pooled
// upstream connection, and the connection of a refused upgrade is never
// pooled.
func TestWebSocketFreshUpstreamConnection(t *testing.T) {
	o := newWSOrigin(t)
	gw, admin := wsGateway(t, o.addr, "")
	for _, f := range wsFronts {
		t.Run(f.name, func(t *testing.T) {
			hc := &http.Client{Timeout: 5 * time.Second}
			getPlain := func() {
				t.Helper()
				resp, err := hc.Get("http://" + gw + "/plain")
				if err != nil {
					t.Fatal(err)
				}
				_, _ = io.ReadAll(resp.Body)
				_ = resp.Body.Close()
			}
			getPlain() // leaves a pooled upstream connection
			before := o.conns.Load()
			c := wsDial(t, f, gw, "/echo")
			wsEcho(t, c, websocket.TextMessage, []byte("x"))
			if o.conns.Load() != before+1 {
				t.Fatalf("the tunnel did not use a fresh upstream connection: %d → %d", before, o.conns.Load())
			}
			_ = c.Close()
			// Only the pooled connection stays open once the tunnel is gone.
			waitOpen(t, o, 1)
			before = o.conns.Load()
			_, _, err := f.dialer(t, gw).Dial("ws://"+gw+"/refuse", nil)
			if err == nil {
				t.Fatal("refused upgrade succeeded")
			}
			if o.conns.Load() != before+1 {
				t.Fatalf("the refused upgrade did not use a fresh upstream connection")
			}
			// The refused upgrade's connection is closed, not pooled.
			waitOpen(t, o, 1)
			for i := 0; i < 3; i++ {
				getPlain() // the pooled connection serves these
			}
		})
	}
	if n := metricSum(t, admin, `^expressgateway_upstream_reuses_total\{cluster="ws"\}$`); n < 1 {
		t.Errorf("no upstream reuse at all (%v): the pool test proves nothing", n)
	}
}

// waitOpen waits up to 5 s for the origin to have n connections open.
func waitOpen(t *testing.T, o *wsOrigin, n int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for o.open() != n {
		if time.Now().After(deadline) {
			t.Fatalf("origin has %d connections open, want %d", o.open(), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestWebSocketIdleTimeout: a tunnel without a byte for websocket_idle is
// closed; traffic keeps one open past it; websocket_max_duration ends a
// busy one.
func TestWebSocketIdleTimeout(t *testing.T) {
	o := newWSOrigin(t)
	gw, admin := wsGateway(t, o.addr, "websocket_idle = \"600ms\"\nwebsocket_max_duration = \"3s\"")
	for _, f := range wsFronts {
		t.Run(f.name, func(t *testing.T) {
			busy := wsDial(t, f, gw, "/echo")
			idle := wsDial(t, f, gw, "/echo")
			start := time.Now()
			for time.Since(start) < 1500*time.Millisecond {
				wsEcho(t, busy, websocket.TextMessage, []byte("keep"))
				time.Sleep(200 * time.Millisecond)
			}
			_ = idle.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, _, err := idle.ReadMessage(); err == nil || isNetTimeout(err) {
				t.Fatalf("idle tunnel still open after 1.5 s (websocket_idle 600ms): %v", err)
			}
			// The busy one ends at websocket_max_duration.
			for {
				_ = busy.SetWriteDeadline(time.Now().Add(time.Second))
				if err := busy.WriteMessage(websocket.TextMessage, []byte("keep")); err != nil {
					break
				}
				_ = busy.SetReadDeadline(time.Now().Add(time.Second))
				if _, _, err := busy.ReadMessage(); err != nil {
					if isNetTimeout(err) {
						t.Fatal("busy tunnel stalled")
					}
					break
				}
				if time.Since(start) > 6*time.Second {
					t.Fatal("busy tunnel outlived websocket_max_duration (3s)")
				}
				time.Sleep(100 * time.Millisecond)
			}
			if el := time.Since(start); el < 2500*time.Millisecond {
				t.Fatalf("busy tunnel closed after %v, before websocket_max_duration", el)
			}
		})
	}
	waitMetric(t, admin, `^expressgateway_websocket_tunnels_closed_total\{reason="idle_timeout"\}$`, float64(len(wsFronts)))
	waitMetric(t, admin, `^expressgateway_websocket_tunnels_closed_total\{reason="max_duration"\}$`, float64(len(wsFronts)))
}

func isNetTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// rawWSUpstream is a hand-written upstream for the attacks below: each
// accepted connection is given to serve.
func rawWSUpstream(t *testing.T, serve func(c net.Conn, br *bufio.Reader, req *http.Request)) string {
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
				br := bufio.NewReader(c)
				_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
				req, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				serve(c, br, req)
			}()
		}
	}()
	return ln.Addr().String()
}

func acceptFor(key string) string {
	h := sha1.New() //nolint:gosec // RFC 6455
	h.Write([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// wsFrame encodes one final frame; mask for client frames.
func wsFrame(op byte, payload []byte, mask bool) []byte {
	b := []byte{0x80 | op}
	m := byte(0)
	if mask {
		m = 0x80
	}
	switch n := len(payload); {
	case n < 126:
		b = append(b, m|byte(n))
	case n < 1<<16:
		b = append(b, m|126, byte(n>>8), byte(n))
	default:
		b = append(b, m|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	if !mask {
		return append(b, payload...)
	}
	key := [4]byte{1, 2, 3, 4}
	b = append(b, key[:]...)
	for i, c := range payload {
		b = append(b, c^key[i%4])
	}
	return b
}

const wsKey = "dGhlIHNhbXBsZSBub25jZQ=="

const wsUpgradeRequest = "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + wsKey + "\r\n\r\n"

// TestWebSocketEarlyFramesWaitFor101: frames a client sends right behind
// its upgrade request reach the upstream only after the upstream's 101;
// bytes the upstream sends right behind its 101 reach the client; a
// half-close goes through in both directions.
func TestWebSocketEarlyFramesWaitFor101(t *testing.T) {
	early := make(chan int, 1)
	up := rawWSUpstream(t, func(c net.Conn, br *bufio.Reader, req *http.Request) {
		// Anything that arrives before our 101 is a leak.
		_ = c.SetReadDeadline(time.Now().Add(400 * time.Millisecond))
		n, _ := br.Read(make([]byte, 1024))
		early <- n + br.Buffered()
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, _ = fmt.Fprintf(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", acceptFor(req.Header.Get("Sec-WebSocket-Key")))
		_, _ = c.Write(wsFrame(0x1, []byte("server-first"), false))
		// Echo the client's bytes raw until its FIN, then answer after it.
		got, _ := io.ReadAll(br)
		_, _ = c.Write(wsFrame(0x2, got, false))
		_, _ = c.Write(wsFrame(0x1, []byte("after-your-fin"), false))
	})
	gw, admin := wsGateway(t, up, "")
	c, err := net.Dial("tcp", gw)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	frame := wsFrame(0x1, []byte("too-early"), true)
	if _, err := io.WriteString(c, wsUpgradeRequest+string(frame)); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 101 || resp.Header.Get("Sec-WebSocket-Accept") != acceptFor(wsKey) || resp.Header.Get("Upgrade") != "websocket" {
		t.Fatalf("handshake: %d %v", resp.StatusCode, resp.Header)
	}
	if n := <-early; n != 0 {
		t.Fatalf("%d bytes reached the upstream before its 101", n)
	}
	want := wsFrame(0x1, []byte("server-first"), false)
	got := make([]byte, len(want))
	if _, err := io.ReadFull(br, got); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("bytes behind the 101: %q %v", got, err)
	}
	// Half-close: our FIN reaches the upstream, which still answers.
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(br)
	if err != nil {
		t.Fatal(err)
	}
	if want := string(wsFrame(0x2, frame, false)) + string(wsFrame(0x1, []byte("after-your-fin"), false)); string(rest) != want {
		t.Fatalf("after the half-close: %q, want %q", rest, want)
	}
	waitMetric(t, admin, `^expressgateway_websocket_tunnels_active$`, 0)
	waitMetric(t, admin, `^expressgateway_websocket_tunnels_closed_total\{reason="closed"\}$`, 1)
}

// TestWebSocketBrokenUpstreams: an upstream that answers 101 to a request
// that did not ask for it, with a wrong Sec-WebSocket-Accept or without
// Upgrade: websocket, or closes right after its 101, never gets a tunnel
// that outlives it and never takes the client's bytes as HTTP.
func TestWebSocketBrokenUpstreams(t *testing.T) {
	up := rawWSUpstream(t, func(c net.Conn, br *bufio.Reader, req *http.Request) {
		acc := acceptFor(req.Header.Get("Sec-WebSocket-Key"))
		switch req.URL.Path {
		case "/plain101":
			_, _ = fmt.Fprintf(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n%s", acc, smuggled)
		case "/badaccept":
			_, _ = fmt.Fprintf(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n%s", acceptFor("other"), smuggled)
		case "/h2c101":
			_, _ = fmt.Fprintf(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n%s", acc, smuggled)
		case "/noconn101":
			_, _ = fmt.Fprintf(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: %s\r\n\r\n%s", acc, smuggled)
		case "/close101":
			_, _ = fmt.Fprintf(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", acc)
		default:
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
	})
	gw, admin := wsGateway(t, up, "")
	// A 101 to a plain request: 502, nothing of what followed.
	if got := rawExchange(t, gw, "GET /plain101 HTTP/1.1\r\nHost: a\r\n\r\n"); !strings.HasPrefix(got, "HTTP/1.1 502 ") || strings.Contains(got, "SMUGGLED") {
		t.Fatalf("101 to a plain request: %q", got)
	}
	for _, path := range []string{"/badaccept", "/h2c101", "/noconn101"} {
		req := strings.Replace(wsUpgradeRequest, "/ws", path, 1)
		if got := rawExchange(t, gw, req); !strings.HasPrefix(got, "HTTP/1.1 502 ") || strings.Contains(got, "SMUGGLED") {
			t.Fatalf("%s: %q", path, got)
		}
	}
	// Upgrade without a key is no WebSocket request: served plain, without
	// Upgrade.
	if got := rawExchange(t, gw, "GET /nokey HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"); !strings.HasPrefix(got, "HTTP/1.1 200 ") {
		t.Fatalf("upgrade without a key: %q", got)
	}
	// An upstream that closes right after its 101: the client's tunnel ends.
	c, err := net.Dial("tcp", gw)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	_, _ = io.WriteString(c, strings.Replace(wsUpgradeRequest, "/ws", "/close101", 1))
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("close101: %v %v", resp, err)
	}
	if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
		t.Fatalf("after the upstream closed: %q %v", rest, err)
	}
	// The upstream's FIN came through as ours (it may have been a
	// half-close); once the client closes too, the tunnel is gone.
	_ = c.Close()
	if n := metricSum(t, admin, `^expressgateway_upstream_failures_total\{cluster="ws",reason="bad_upgrade"\}$`); n != 3 {
		t.Errorf("bad_upgrade counted %v times, want 3", n)
	}
	if n := metricSum(t, admin, `^expressgateway_upstream_failures_total\{cluster="ws",reason="unexpected_upgrade"\}$`); n != 1 {
		t.Errorf("unexpected_upgrade counted %v times, want 1", n)
	}
	waitMetric(t, admin, `^expressgateway_websocket_tunnels_active$`, 0)
}

// TestWebSocketTunnelStaysOnLoop: a tunnel whose peers keep up is relayed
// on the event loop (no detach), byte for byte both ways, with the bytes
// counted exactly; a half-close from the client reaches the upstream, whose
// last bytes and FIN still reach the client; the tunnel then ends "closed".
func TestWebSocketTunnelStaysOnLoop(t *testing.T) {
	const rounds = 500
	upDone := make(chan error, 1)
	up := rawWSUpstream(t, func(c net.Conn, br *bufio.Reader, req *http.Request) {
		_, _ = fmt.Fprintf(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", acceptFor(req.Header.Get("Sec-WebSocket-Key")))
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		// Echo every byte until the client's FIN, then say goodbye and close.
		if _, err := io.Copy(c, br); err != nil {
			upDone <- err
			return
		}
		_, err := io.WriteString(c, "bye")
		upDone <- err
	})
	gw, admin := freeAddr(t), freeAddr(t)
	_, logPath := startBinaryLog(t, fmt.Sprintf(`
[admin]
listen = %q
[engine]
event_loops = 2
[log]
access_log = true
[[listeners]]
name = "web"
listen = %q
[[listeners.routes]]
cluster = "ws"
[[clusters]]
name = "ws"
endpoints = [ { address = %q } ]
`, admin, gw, up), gw)
	c, err := net.Dial("tcp", gw)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	_, _ = io.WriteString(c, wsUpgradeRequest)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("handshake: %v %v", resp, err)
	}
	waitMetric(t, admin, `^expressgateway_websocket_tunnels_active$`, 1)
	sent := 0
	for i := range rounds {
		msg := wsFrame(2, bytes.Repeat([]byte{byte(i)}, 1+i%300), true)
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(br, got); err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("round %d: echo %x, %v", i, got, err)
		}
		sent += len(msg)
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(br)
	if err != nil || string(rest) != "bye" {
		t.Fatalf("after the half-close: %q %v", rest, err)
	}
	if err := <-upDone; err != nil {
		t.Fatalf("upstream: %v", err)
	}
	waitMetric(t, admin, `^expressgateway_websocket_tunnels_active$`, 0)
	if n := metricSum(t, admin, `^expressgateway_stream_detach_total\{direction="websocket"\}$`); n != 0 {
		t.Errorf("a tunnel that keeps up left the loop %v times", n)
	}
	if n := metricSum(t, admin, `^expressgateway_websocket_tunnels_closed_total\{reason="closed"\}$`); n != 1 {
		t.Errorf("closed cleanly: %v, want 1", n)
	}
	if n := metricSum(t, admin, `^expressgateway_websocket_bytes_total\{direction="client_to_upstream"\}$`); n != float64(sent) {
		t.Errorf("client_to_upstream bytes %v, want %d", n, sent)
	}
	if n := metricSum(t, admin, `^expressgateway_websocket_bytes_total\{direction="upstream_to_client"\}$`); n != float64(sent+3) {
		t.Errorf("upstream_to_client bytes %v, want %d", n, sent+3)
	}
	// The access-log line, written when the tunnel ended (its request state
	// went back to the pool when the tunnel opened: the line must not have
	// lost anything).
	want := []string{`"type":"access"`, `"method":"GET"`, `"target":"/ws"`, `"status":101`, fmt.Sprintf(`"bytes":%d`, sent+3), `"cluster":"ws"`, `"reason":"websocket_closed"`, `"upstream":"` + up + `"`}
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile(logPath)
		line := ""
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, `"status":101`) {
				line = l
			}
		}
		missing := ""
		for _, w := range want {
			if !strings.Contains(line, w) {
				missing = w
				break
			}
		}
		if missing == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tunnel access-log line %q lacks %s", line, missing)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestWebSocketSlowReaderBounded: an upstream that floods a client reading
// at 16 MiB/s, and a client that floods an upstream reading at 16 MiB/s, at
// the same time through one tunnel: every byte arrives and the gateway's
// RSS grows by less than 64 MiB (kernel backpressure, bounded buffers).
// EG_WS_BYTES overrides the 128 MiB per direction.
func TestWebSocketSlowReaderBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 256 MiB through the gateway")
	}
	n := envInt("EG_WS_BYTES", 128<<20)
	rate := envInt("EG_WS_RATE", 16<<20)
	// Raw upstream: after the 101, write n pattern bytes and read the
	// client's at rate, hashing both.
	type result struct {
		read int64
		err  error
	}
	upRead := make(chan result, 1)
	up := rawWSUpstream(t, func(c net.Conn, br *bufio.Reader, req *http.Request) {
		_, _ = fmt.Fprintf(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", acceptFor(req.Header.Get("Sec-WebSocket-Key")))
		_ = c.SetDeadline(time.Time{})
		go func() { _, _ = io.Copy(c, &patternReader{n: n, h: sha1.New()}) }() //nolint:gosec // test pattern
		m, err := slowCopy(io.Discard, br, rate)
		upRead <- result{m, err}
	})
	gw, _, cmd := wsGatewayPID(t, up, "")
	c, err := net.Dial("tcp", gw)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	_, _ = io.WriteString(c, wsUpgradeRequest)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("handshake: %v %v", resp, err)
	}
	base := rssBytes(cmd)
	peak, stop := sampleRSS(cmd)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, _ = io.Copy(c, &patternReader{n: n, h: sha1.New()}) //nolint:gosec // test pattern
		_ = c.(*net.TCPConn).CloseWrite()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	go func() { <-ctx.Done(); _ = c.Close() }()
	got, err := slowCopy(io.Discard, io.LimitReader(br, n), rate)
	if err != nil || got != n {
		t.Fatalf("client read %d of %d: %v", got, n, err)
	}
	wg.Wait()
	r := <-upRead
	stop()
	if r.read != n {
		t.Fatalf("upstream read %d of %d: %v", r.read, n, r.err)
	}
	if g := peak.Load() - base; g > 64<<20 {
		t.Fatalf("gateway RSS grew by %d MiB (base %d MiB)", g>>20, base>>20)
	}
	t.Logf("RSS base %d MiB, peak %d MiB", base>>20, peak.Load()>>20)
}

// TestWebSocketSurvivesReload: a SIGHUP that moves the tunnel's cluster to
// another endpoint (pooled connections to the old one close) does not cut a
// tunnel that is open; new tunnels go to the new endpoint.
func TestWebSocketSurvivesReload(t *testing.T) {
	bin := gatewayBinary(t)
	o1, o2 := newWSOrigin(t), newWSOrigin(t)
	gw, admin := freeAddr(t), freeAddr(t)
	tlsListener := wsTLSConfig(t, gw)
	render := func(origin, idle string) string {
		return fmt.Sprintf(`
[admin]
listen = %q
[process]
watch_config = false
[log]
access_log = false
[[listeners]]
name = "web"
listen = %q
max_connections_per_ip = 0
[listeners.timeouts]
websocket_idle = %q
[[listeners.routes]]
cluster = "ws"
%s
[[clusters]]
name = "ws"
endpoints = [ { address = %q } ]
`, admin, gw, idle, tlsListener, origin)
	}
	g := startFromFile(t, bin, render(o1.addr, "1h"), gw, admin)
	for _, f := range wsFronts {
		t.Run(f.name, func(t *testing.T) {
			c := wsDial(t, f, gw, "/echo")
			wsEcho(t, c, websocket.TextMessage, []byte("before"))
			gen := generation(admin)
			g.write(t, render(o2.addr, "30m"))
			g.signal(t, syscall.SIGHUP)
			deadline := time.Now().Add(5 * time.Second)
			for generation(admin) != gen+1 {
				if time.Now().After(deadline) {
					t.Fatalf("reload not applied: generation %d", generation(admin))
				}
				time.Sleep(20 * time.Millisecond)
			}
			wsEcho(t, c, websocket.TextMessage, []byte("after the reload"))
			big := bytes.Repeat([]byte{7}, 1<<20)
			wsEcho(t, c, websocket.BinaryMessage, big)
			before := o2.conns.Load()
			c2 := wsDial(t, f, gw, "/echo")
			wsEcho(t, c2, websocket.TextMessage, []byte("new"))
			if o2.conns.Load() != before+1 {
				t.Fatal("a new tunnel did not go to the reloaded endpoint")
			}
		})
	}
}

// h2cTransport is an HTTP/2 client transport over cleartext TCP (prior
// knowledge): extended CONNECT is a CONNECT request with a :protocol field.
// x/net's Transport, deprecated for net/http's, is the one that sends it:
// net/http refuses a ":protocol" field.
//
//nolint:staticcheck // see above
func h2cTransport(t *testing.T) *http2.Transport {
	tr := &http2.Transport{AllowHTTP: true, DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

// h2Connect opens an extended CONNECT (:protocol proto) stream to gw; the
// returned writer is the request stream.
func h2Connect(t *testing.T, tr *http2.Transport, //nolint:staticcheck // h2cTransport
	gw, path, proto string) (*http.Response, *io.PipeWriter) {
	t.Helper()
	pr, pw := io.Pipe()
	req, err := http.NewRequest("CONNECT", "http://"+gw+path, pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(":protocol", proto)
	req.Header.Set("Sec-WebSocket-Version", "13")
	resp, err := tr.RoundTrip(req) //nolint:staticcheck // h2cTransport
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pw.Close(); _ = resp.Body.Close() })
	return resp, pw
}

// TestWebSocketH2Backpressure: 256 MiB echoed through one HTTP/2 WebSocket
// (extended CONNECT, to an HTTP/1.1 upstream that echoes what follows its
// 101) while the client reads the echo at 32 MiB/s: every byte comes back
// in order and the gateway's RSS grows by less than 64 MiB (HTTP/2 flow
// control towards the client, credit only as the upstream takes bytes,
// and an upstream read only while the stream has room). EG_WS_BYTES and
// EG_WS_RATE override the size and the rate.
func TestWebSocketH2Backpressure(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 512 MiB through the gateway")
	}
	n := envInt("EG_WS_BYTES", 256<<20)
	rate := envInt("EG_WS_RATE", 32<<20)
	up := rawWSUpstream(t, func(c net.Conn, br *bufio.Reader, req *http.Request) {
		_, _ = fmt.Fprintf(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", acceptFor(req.Header.Get("Sec-WebSocket-Key")))
		_ = c.SetDeadline(time.Time{})
		_, _ = io.Copy(c, br)
	})
	gw, admin, pid := wsGatewayPID(t, up, "")
	resp, pw := h2Connect(t, h2cTransport(t), gw, "/echo", "websocket")
	if resp.StatusCode != 200 {
		t.Fatalf("extended CONNECT: %d", resp.StatusCode)
	}
	base := rssBytes(pid)
	peak, stop := sampleRSS(pid)
	sent := &patternReader{n: n, h: sha1.New()} //nolint:gosec // test pattern
	go func() {
		_, _ = io.Copy(pw, sent)
		_ = pw.Close()
	}()
	got := &patternCheck{}
	m, err := slowCopy(got, io.LimitReader(resp.Body, n), rate)
	stop()
	if err != nil || m != n || got.bad >= 0 {
		t.Fatalf("echo: %d of %d bytes (%v), first wrong byte at %d", m, n, err, got.bad)
	}
	if g := peak.Load() - base; g > 64<<20 {
		t.Fatalf("gateway RSS grew by %d MiB (base %d MiB)", g>>20, base>>20)
	}
	t.Logf("RSS base %d MiB, peak %d MiB", base>>20, peak.Load()>>20)
	if v := metricSum(t, admin, `^expressgateway_websocket_bytes_total\{direction="upstream_to_client"\}$`); v < float64(n) {
		t.Errorf("websocket_bytes_total upstream_to_client = %v, want at least %d", v, n)
	}
}

// patternCheck checks that what is written to it is the pattern stream.
type patternCheck struct {
	off int64
	bad int64
	buf []byte
}

func (p *patternCheck) Write(b []byte) (int, error) {
	if p.off == 0 && p.bad == 0 {
		p.bad = -1
	}
	// Compare whole 8-byte words as they complete.
	p.buf = append(p.buf, b...)
	k := len(p.buf) &^ 7
	want := make([]byte, k)
	pattern(want, p.off)
	if p.bad < 0 && !bytes.Equal(want, p.buf[:k]) {
		p.bad = p.off
	}
	p.off += int64(k)
	p.buf = append(p.buf[:0], p.buf[k:]...)
	return len(b), nil
}

// TestWebSocketH2Handshake: the HTTP/2 front advertises
// SETTINGS_ENABLE_CONNECT_PROTOCOL; plain CONNECT and extended CONNECT for
// another protocol are refused (501); an HTTP/1.1 upstream that refuses
// the upgrade is passed through; one whose 101 does not answer the
// gateway's key, or that sends 101 without Upgrade: websocket, is a 502;
// an h2c upstream that advertises the setting gets the extended CONNECT
// as it is and the stream's bytes both ways; one that does not is a 502.
func TestWebSocketH2Handshake(t *testing.T) {
	up := rawWSUpstream(t, func(c net.Conn, br *bufio.Reader, req *http.Request) {
		key := req.Header.Get("Sec-WebSocket-Key")
		switch {
		case req.URL.Path == "/refuse":
			_, _ = io.WriteString(c, "HTTP/1.1 403 Forbidden\r\nContent-Length: 4\r\n\r\nnope")
		case req.URL.Path == "/badaccept":
			_, _ = fmt.Fprintf(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", acceptFor("other"))
		case req.URL.Path == "/h2c101":
			_, _ = fmt.Fprintf(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", acceptFor(key))
		case len(key) != 24 || req.Header.Get("Upgrade") != "websocket" || req.Method != "GET" || req.Header.Get("Sec-WebSocket-Version") != "13":
			_, _ = io.WriteString(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 3\r\n\r\nbad")
		default:
			_, _ = fmt.Fprintf(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\nSec-WebSocket-Protocol: chat\r\n\r\n", acceptFor(key))
			_, _ = io.Copy(c, br)
		}
	})
	// h2c upstreams: one with extended CONNECT (a second gateway, whose
	// HTTP/2 front advertises it, in front of the same HTTP/1.1 upstream:
	// what reaches that upstream proves the first gateway sent an
	// extended CONNECT), one without (a Framer that never advertises it).
	h2up, admin2 := wsGateway(t, up, "")
	h2old := rawH2Upstream(t, func(fr *http2.Framer, enc func(kv ...string) []byte, id uint32, path string) {
		_ = fr.WriteRSTStream(id, http2.ErrCodeRefusedStream)
	})
	gw, admin := freeAddr(t), freeAddr(t)
	startBinary(t, fmt.Sprintf(`
[admin]
listen = %q
[log]
access_log = false
[[listeners]]
name = "web"
listen = %q
[[listeners.routes]]
path_prefix = "/h2/"
cluster = "h2"
[[listeners.routes]]
path_prefix = "/old/"
cluster = "old"
[[listeners.routes]]
cluster = "h1"
[[clusters]]
name = "h1"
endpoints = [ { address = %q } ]
[[clusters]]
name = "h2"
protocol = "h2c"
endpoints = [ { address = %q } ]
[[clusters]]
name = "old"
protocol = "h2c"
endpoints = [ { address = %q } ]
`, admin, gw, up, h2up, h2old), gw)

	fr := dialH2(t, gw)
	var enabled bool
	fr.until(t, "the gateway's SETTINGS", func(f http2.Frame) bool {
		s, ok := f.(*http2.SettingsFrame)
		if ok && !s.IsAck() {
			v, ok := s.Value(http2.SettingEnableConnectProtocol)
			enabled = ok && v == 1
			return true
		}
		return false
	})
	if !enabled {
		t.Fatal("SETTINGS_ENABLE_CONNECT_PROTOCOL not advertised")
	}
	rd := newGRPCReader(fr) // one HPACK decoder for the connection
	fr.headers(t, 1, false, ":method", "CONNECT", ":authority", "example.com:443")
	if got := rd.outcome(t, 1); got.httpStatus != "501" {
		t.Errorf("plain CONNECT: %+v, want 501", got)
	}
	fr.headers(t, 3, false, ":method", "CONNECT", ":protocol", "connect-udp", ":scheme", "http", ":path", "/x", ":authority", "gw")
	if got := rd.outcome(t, 3); got.httpStatus != "501" {
		t.Errorf("extended CONNECT for connect-udp: %+v, want 501", got)
	}

	tr := h2cTransport(t)
	resp, pw1 := h2Connect(t, tr, gw, "/ws", "websocket")
	if resp.StatusCode != 200 || resp.Header.Get("Sec-Websocket-Protocol") != "chat" || resp.Header.Get("Sec-Websocket-Accept") != "" {
		t.Fatalf("extended CONNECT to HTTP/1.1: %d %v", resp.StatusCode, resp.Header)
	}
	echoCheck(t, pw1, resp.Body, 1<<20)
	for path, want := range map[string]int{"/refuse": 403, "/badaccept": 502, "/h2c101": 502} {
		resp, _ := h2Connect(t, tr, gw, path, "websocket")
		if resp.StatusCode != want {
			t.Errorf("%s: %d, want %d", path, resp.StatusCode, want)
		}
	}

	// To an h2c upstream with extended CONNECT: it stays one (the second
	// gateway makes it the HTTP/1.1 handshake the upstream checks).
	resp, pw := h2Connect(t, tr, gw, "/h2/ws", "websocket")
	if resp.StatusCode != 200 || resp.Header.Get("Sec-Websocket-Protocol") != "chat" {
		t.Fatalf("extended CONNECT to h2c: %d %v", resp.StatusCode, resp.Header)
	}
	echoCheck(t, pw, resp.Body, 4<<20)
	if n := metricSum(t, admin2, `^expressgateway_websocket_tunnels_active$`); n != 1 {
		t.Errorf("the h2c upstream (a gateway) has %v tunnels open, want 1", n)
	}
	if n := metricSum(t, admin, `^expressgateway_websocket_tunnels_active$`); n != 2 {
		t.Errorf("%v tunnels open, want 2 (HTTP/1.1 and h2c upstreams)", n)
	}
	resp, _ = h2Connect(t, tr, gw, "/old/ws", "websocket")
	if resp.StatusCode != 502 {
		t.Errorf("h2c upstream without extended CONNECT: %d, want 502", resp.StatusCode)
	}
	if n := metricSum(t, admin, `^expressgateway_upstream_failures_total\{cluster="h1",reason="bad_upgrade"\}$`); n != 2 {
		t.Errorf("bad_upgrade counted %v times, want 2", n)
	}
	// The client's END_STREAM is the FIN the upstream sees; its close ends
	// both tunnels.
	_, _ = pw1.Close(), pw.Close()
	waitMetric(t, admin, `^expressgateway_websocket_tunnels_active$`, 0)
	waitMetric(t, admin2, `^expressgateway_websocket_tunnels_active$`, 0)
}

// echoCheck writes n random bytes to w and reads them back from r.
func echoCheck(t *testing.T, w io.WriteCloser, r io.Reader, n int) {
	t.Helper()
	msg := make([]byte, n)
	_, _ = rand.Read(msg)
	go func() { _, _ = w.Write(msg) }()
	got := make([]byte, n)
	if _, err := io.ReadFull(r, got); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("echo of %d bytes: %v (equal %v)", n, err, bytes.Equal(got, msg))
	}
}

// TestWebSocketH2ZeroWindow: an HTTP/2 client opens a WebSocket and never
// gives the gateway any window (SETTINGS_INITIAL_WINDOW_SIZE 0) while the
// upstream floods it: the gateway stops reading the upstream (its writes
// stall in TCP), its RSS stays flat, and websocket_idle ends the stalled
// tunnel with RST_STREAM(CANCEL).
func TestWebSocketH2ZeroWindow(t *testing.T) {
	var written atomic.Int64
	up := rawWSUpstream(t, func(c net.Conn, br *bufio.Reader, req *http.Request) {
		_, _ = fmt.Fprintf(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", acceptFor(req.Header.Get("Sec-WebSocket-Key")))
		_ = c.SetWriteDeadline(time.Now().Add(8 * time.Second))
		chunk := make([]byte, 64<<10)
		for written.Load() < 256<<20 {
			n, err := c.Write(chunk)
			written.Add(int64(n))
			if err != nil {
				return
			}
		}
	})
	gw, admin, pid := wsGatewayPID(t, up, `websocket_idle = "2s"`)
	fr := dialH2(t, gw)
	if err := fr.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0}); err != nil {
		t.Fatal(err)
	}
	base := rssBytes(pid)
	peak, stop := sampleRSS(pid)
	start := time.Now()
	fr.headers(t, 1, false, ":method", "CONNECT", ":protocol", "websocket", ":scheme", "http", ":path", "/flood", ":authority", "gw", "sec-websocket-version", "13")
	o := newGRPCReader(fr).outcome(t, 1)
	el := time.Since(start)
	stop()
	if o.httpStatus != "200" || o.rst != "CANCEL" || o.data {
		t.Fatalf("zero-window tunnel: %+v", o)
	}
	if el < 1500*time.Millisecond || el > 6*time.Second {
		t.Errorf("the stalled tunnel ended after %v (websocket_idle 2s)", el)
	}
	if w := written.Load(); w > 32<<20 {
		t.Errorf("the upstream wrote %d MiB to a client with no window: not pushed back", w>>20)
	}
	if g := peak.Load() - base; g > 16<<20 {
		t.Errorf("gateway RSS grew by %d MiB", g>>20)
	}
	t.Logf("upstream wrote %d KiB before TCP pushed back; RSS base %d MiB, peak %d MiB", written.Load()>>10, base>>20, peak.Load()>>20)
	waitMetric(t, admin, `^expressgateway_websocket_tunnels_closed_total\{reason="idle_timeout"\}$`, 1)
}

// TestWebSocketH1ToH2cClusterNotUpgraded: an HTTP/1.1 WebSocket upgrade
// routed to an h2c cluster is not an upgrade there (HTTP/1.1 clients get
// no extended CONNECT): it is served as a plain request without Upgrade or
// Connection, and no tunnel opens.
func TestWebSocketH1ToH2cClusterNotUpgraded(t *testing.T) {
	seen := make(chan http.Header, 1)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case seen <- r.Header.Clone():
		default:
		}
		_, _ = io.WriteString(w, "plain over h2c")
	})}
	srv.Protocols = new(http.Protocols)
	srv.Protocols.SetUnencryptedHTTP2(true)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	gw, admin := freeAddr(t), freeAddr(t)
	startBinary(t, fmt.Sprintf(`
[admin]
listen = %q
[log]
access_log = false
[[listeners]]
name = "web"
listen = %q
[[listeners.routes]]
cluster = "h2"
[[clusters]]
name = "h2"
protocol = "h2c"
endpoints = [ { address = %q } ]
`, admin, gw, ln.Addr().String()), gw)
	got := rawExchange(t, gw, wsUpgradeRequest)
	if !strings.HasPrefix(got, "HTTP/1.1 200 ") || !strings.HasSuffix(got, "plain over h2c") {
		t.Fatalf("upgrade to an h2c cluster: %q", got)
	}
	h := <-seen
	if h.Get("Upgrade") != "" || h.Get("Connection") != "" {
		t.Fatalf("the h2c upstream saw an upgrade: %v", h)
	}
	if n := metricSum(t, admin, `^expressgateway_websocket_tunnels_active$`); n != 0 {
		t.Fatalf("%v tunnels open", n)
	}
}
