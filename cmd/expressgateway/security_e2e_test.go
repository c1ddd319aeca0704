// SPDX-License-Identifier: GPL-3.0-only

package main

// Regression tests for the outside review's findings (SECURITY.md "Fixed"),
// each through the real binary with the misbehaving peer written here.

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// smuggled is what a broken upstream appends past the end of a response: if
// the gateway pooled that connection, the next client would get it.
const smuggled = "HTTP/1.1 200 OK\r\nContent-Length: 23\r\n\r\nyou asked for /SMUGGLED"

// seenRequest is one request as a raw upstream received it.
type seenRequest struct {
	Method, URI, Host string
	Header, Trailer   http.Header
	Body              string
}

// rawUpstream is an HTTP/1.1 server written by hand so that it can break
// the protocol on purpose, chosen by the request path.
type rawUpstream struct {
	name  string
	ln    net.Listener
	mu    sync.Mutex
	seen  []seenRequest
	conns int
}

func newRawUpstream(t *testing.T, name string) *rawUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &rawUpstream{name: name, ln: ln}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u.mu.Lock()
			u.conns++
			u.mu.Unlock()
			go u.serve(c)
		}
	}()
	return u
}

func (u *rawUpstream) addr() string { return u.ln.Addr().String() }

func (u *rawUpstream) requests() []seenRequest {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]seenRequest(nil), u.seen...)
}

func (u *rawUpstream) serve(c net.Conn) {
	defer func() { _ = c.Close() }()
	br := bufio.NewReader(c)
	for {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		body, _ := io.ReadAll(req.Body)
		u.mu.Lock()
		u.seen = append(u.seen, seenRequest{req.Method, req.RequestURI, req.Host, req.Header.Clone(), req.Trailer.Clone(), string(body)})
		u.mu.Unlock()
		normal := func() string {
			b := u.name + " you asked for " + req.RequestURI
			return fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(b), b)
		}
		var out string
		switch {
		case req.Method == "CONNECT":
			// A forward proxy honouring CONNECT: the connection would
			// become a tunnel to whatever the client named.
			out = "HTTP/1.1 200 Connection established\r\n\r\n" + smuggled
		case req.URL.Path == "/bad/204":
			out = "HTTP/1.1 204 No Content\r\n\r\n" + smuggled
		case req.URL.Path == "/bad/304":
			out = "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n" + smuggled
		case req.URL.Path == "/bad/head" && req.Method == "HEAD":
			out = fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(smuggled), smuggled)
		case req.URL.Path == "/bad/long":
			out = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" + smuggled
		case req.URL.Path == "/bad/crlf":
			out = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok\r\n"
		case req.URL.Path == "/bad/late":
			if _, err := io.WriteString(c, normal()); err != nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
			out = smuggled // on the connection the gateway now holds idle
		case req.URL.Path == "/upgrade101":
			out = "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\n" + smuggled
		default:
			out = normal()
		}
		if _, err := io.WriteString(c, out); err != nil {
			return
		}
	}
}

// rawExchange sends raw on a fresh connection and returns everything the
// gateway answered until it closed or went quiet for 500 ms.
func rawExchange(t *testing.T, addr, raw string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
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

// metricSum adds up every sample of a /metrics scrape whose series matches re.
func metricSum(t *testing.T, admin, re string) float64 {
	t.Helper()
	_, body := get(t, "http://"+admin+"/metrics")
	rx := regexp.MustCompile(re)
	sum := 0.0
	for _, line := range strings.Split(body, "\n") {
		i := strings.LastIndexByte(line, ' ')
		if i < 0 || strings.HasPrefix(line, "#") || !rx.MatchString(line[:i]) {
			continue
		}
		v, _ := strconv.ParseFloat(line[i+1:], 64)
		sum += v
	}
	return sum
}

// secGateway starts the binary with one http listener (extra keys appended
// to it), routes (TOML) and clusters (TOML); one event loop, so that every
// request shares one upstream pool.
func secGateway(t *testing.T, listenerExtra, routesAndClusters string) (gw, admin string) {
	t.Helper()
	gw, admin = freeAddr(t), freeAddr(t)
	cfg := fmt.Sprintf(`
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
`, admin, gw, listenerExtra, routesAndClusters)
	startBinary(t, cfg, gw)
	return gw, admin
}

func oneCluster(addr string) string {
	return fmt.Sprintf(`
[[listeners.routes]]
cluster = "app"
[[clusters]]
name = "app"
endpoints = [ { address = %q } ]
`, addr)
}

// TestUpstreamLeftoverBytesNeverReachAnotherClient: a response followed by
// bytes its framing does not allow must not leave those bytes in a pooled
// connection, where the next client would read them as its response.
func TestUpstreamLeftoverBytesNeverReachAnotherClient(t *testing.T) {
	up := newRawUpstream(t, "up1")
	gw, admin := secGateway(t, `[listeners.limits]
max_inflight_bytes = "4KiB"`, oneCluster(up.addr()))
	cases := []struct{ name, req, want string }{
		{"204 then bytes", "GET /bad/204 HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 204 "},
		{"304 then bytes", "GET /bad/304 HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 304 "},
		{"HEAD answered with a body", "HEAD /bad/head HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 200 "},
		{"body longer than Content-Length", "GET /bad/long HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 200 "},
		{"stray CRLF", "GET /bad/crlf HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 200 "},
		{"bytes on the idle pooled connection", "GET /bad/late HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 200 "},
		// A body over max_inflight_bytes takes the off-loop path.
		{"204 then bytes, long upload", "POST /bad/204 HTTP/1.1\r\nHost: a\r\nContent-Length: 16384\r\n\r\n" + strings.Repeat("x", 16384), "HTTP/1.1 204 "},
	}
	before := metricSum(t, admin, `^expressgateway_upstream_failures_total\{cluster="app",reason="extra_bytes"\}$`)
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			alice := rawExchange(t, gw, tc.req)
			if !strings.HasPrefix(alice, tc.want) {
				t.Fatalf("alice got %q", alice)
			}
			if strings.Contains(alice, "SMUGGLED") {
				t.Fatalf("alice got the smuggled bytes: %q", alice)
			}
			time.Sleep(250 * time.Millisecond) // let a late upstream talk
			for j := 0; j < 3; j++ {
				q := fmt.Sprintf("/account?user=bob%d-%d", i, j)
				bob := rawExchange(t, gw, "GET "+q+" HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
				if !strings.HasSuffix(bob, "up1 you asked for "+q) {
					t.Fatalf("bob asked for %s and got %q", q, bob)
				}
			}
		})
	}
	after := metricSum(t, admin, `^expressgateway_upstream_failures_total\{cluster="app",reason="extra_bytes"\}$`)
	if after-before < float64(len(cases)) {
		t.Errorf("extra_bytes counted %v times, want at least %d", after-before, len(cases))
	}
}

// TestConnectRefused: CONNECT never reaches an upstream (whose 200 would
// make a pooled connection a tunnel), and the next client is unaffected.
func TestConnectRefused(t *testing.T) {
	up := newRawUpstream(t, "up1")
	gw, admin := secGateway(t, "", oneCluster(up.addr()))
	for _, target := range []string{"evil.example:443", "127.0.0.1:22"} {
		got := rawExchange(t, gw, "CONNECT "+target+" HTTP/1.1\r\nHost: "+target+"\r\n\r\nGET /victim HTTP/1.1\r\nHost: a\r\n\r\n")
		if !strings.HasPrefix(got, "HTTP/1.1 501 ") {
			t.Fatalf("CONNECT %s: got %q", target, got)
		}
		if strings.Contains(got, "SMUGGLED") || strings.Count(got, "HTTP/1.1") != 1 {
			t.Fatalf("CONNECT %s: more than the refusal came back: %q", target, got)
		}
	}
	bob := rawExchange(t, gw, "GET /account HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
	if !strings.HasSuffix(bob, "up1 you asked for /account") {
		t.Fatalf("bob got %q", bob)
	}
	for _, r := range up.requests() {
		if r.Method == "CONNECT" {
			t.Fatalf("a CONNECT reached the upstream: %+v", r)
		}
	}
	if n := metricSum(t, admin, `^expressgateway_guard_tripped_total\{guard="connect_refused"\}$`); n != 2 {
		t.Errorf("connect_refused counted %v times, want 2", n)
	}
}

// TestUpgradeStripped: Upgrade and HTTP2-Settings never reach an upstream;
// an upstream's unexpected 101 is a 502 that does not eject the endpoint.
func TestUpgradeStripped(t *testing.T) {
	a, b := newRawUpstream(t, "upA"), newRawUpstream(t, "upB")
	gw, admin := secGateway(t, "", fmt.Sprintf(`
[[listeners.routes]]
cluster = "app"
[[clusters]]
name = "app"
lb = "round_robin"
endpoints = [ { address = %q }, { address = %q } ]
[clusters.outlier_detection]
consecutive_5xx = 1
`, a.addr(), b.addr()))
	got := rawExchange(t, gw, "GET /h2c HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n")
	if !strings.HasPrefix(got, "HTTP/1.1 200 ") || !strings.Contains(got, "you asked for /h2c") {
		t.Fatalf("an h2c upgrade request was not served as plain HTTP/1.1: %q", got)
	}
	// WebSocket is the one upgrade forwarded (allow-list): only its token
	// goes on; an upstream that answers 200 is a normal response.
	ws := rawExchange(t, gw, "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c, websocket\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	if !strings.HasPrefix(ws, "HTTP/1.1 200 ") {
		t.Fatalf("websocket upgrade request: %q", ws)
	}
	for _, r := range append(a.requests(), b.requests()...) {
		if r.URI == "/ws" {
			if r.Header.Get("Upgrade") != "websocket" || r.Header.Get("Connection") != "Upgrade" || r.Header.Get("Http2-Settings") != "" {
				t.Fatalf("websocket upgrade forwarded as %+v", r.Header)
			}
			continue
		}
		for _, h := range []string{"Upgrade", "Http2-Settings"} {
			if r.Header.Get(h) != "" {
				t.Fatalf("%s reached the upstream: %+v", h, r)
			}
		}
		if strings.Contains(strings.ToLower(r.Header.Get("Connection")), "upgrade") {
			t.Fatalf("Connection: upgrade reached the upstream: %+v", r)
		}
	}
	// Four 101s, two on each endpoint under round robin: with
	// consecutive_5xx = 1 a 101 counted as a 5xx would eject both.
	for i := 0; i < 4; i++ {
		got := rawExchange(t, gw, "GET /upgrade101 HTTP/1.1\r\nHost: a\r\n\r\n")
		if !strings.HasPrefix(got, "HTTP/1.1 502 ") || strings.Contains(got, "SMUGGLED") {
			t.Fatalf("unexpected 101: got %q", got)
		}
	}
	seen := map[string]int{}
	for i := 0; i < 10; i++ {
		got := rawExchange(t, gw, "GET /after HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
		switch {
		case strings.HasSuffix(got, "upA you asked for /after"):
			seen["upA"]++
		case strings.HasSuffix(got, "upB you asked for /after"):
			seen["upB"]++
		default:
			t.Fatalf("after the 101s: %q", got)
		}
	}
	if seen["upA"] == 0 || seen["upB"] == 0 {
		t.Fatalf("an endpoint was ejected for the upstream's 101: %v", seen)
	}
	if n := metricSum(t, admin, `^expressgateway_upstream_failures_total\{cluster="app",reason="unexpected_upgrade"\}$`); n != 4 {
		t.Errorf("unexpected_upgrade counted %v times, want 4", n)
	}
}

// TestRequestTrailersFiltered: fields RFC 9110 section 6.5.1 forbids in
// trailers are dropped before they reach the upstream.
func TestRequestTrailersFiltered(t *testing.T) {
	up := newRawUpstream(t, "up1")
	gw, _ := secGateway(t, "", oneCluster(up.addr()))
	got := rawExchange(t, gw, "POST /t HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"+
		"5\r\nhello\r\n0\r\nX-Forwarded-For: 6.6.6.6\r\nAuthorization: Bearer stolen\r\nX-Forwarded-Proto: https\r\nCookie: s=1\r\nVia: 1.1 evil\r\nX-Checksum: abc\r\n\r\n")
	if !strings.HasPrefix(got, "HTTP/1.1 200 ") {
		t.Fatalf("got %q", got)
	}
	rs := up.requests()
	if len(rs) != 1 {
		t.Fatalf("upstream saw %d requests", len(rs))
	}
	r := rs[0]
	if r.Body != "hello" {
		t.Errorf("body %q", r.Body)
	}
	for _, h := range []string{"X-Forwarded-For", "Authorization", "X-Forwarded-Proto", "Cookie", "Via"} {
		if v := r.Trailer.Get(h); v != "" {
			t.Errorf("trailer %s: %q reached the upstream", h, v)
		}
	}
	if r.Trailer.Get("X-Checksum") != "abc" {
		t.Errorf("an allowed trailer was dropped: %v", r.Trailer)
	}
	if xff := r.Header.Get("X-Forwarded-For"); xff != "127.0.0.1" {
		t.Errorf("X-Forwarded-For %q", xff)
	}
	// Framing and routing fields in trailers are the codec's 400.
	for _, tr := range []string{"Host: admin", "Content-Length: 99", "Transfer-Encoding: chunked"} {
		got := rawExchange(t, gw, "POST /t HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n"+tr+"\r\n\r\n")
		if !strings.HasPrefix(got, "HTTP/1.1 400 ") {
			t.Errorf("trailer %q: %q", tr, got)
		}
	}
	if n := len(up.requests()); n != 1 {
		t.Errorf("a request with a framing trailer reached the upstream (%d requests)", n)
	}
}

// TestHeaderTimeoutStartsAtAccept: a connection that sends nothing is held
// for header_read, not for idle_keepalive.
func TestHeaderTimeoutStartsAtAccept(t *testing.T) {
	up := newRawUpstream(t, "up1")
	gw, admin := secGateway(t, `[listeners.timeouts]
header_read = "1s"
idle_keepalive = "60s"`, oneCluster(up.addr()))
	c, err := net.Dial("tcp", gw)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	start := time.Now()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	el := time.Since(start)
	if err != nil {
		t.Fatalf("not closed within 5 s (header_read 1s): %v after %v", err, el)
	}
	if el < 900*time.Millisecond || el > 3*time.Second {
		t.Fatalf("closed after %v, want about header_read (1s)", el)
	}
	if len(b) > 0 && !strings.HasPrefix(string(b), "HTTP/1.1 408 ") {
		t.Fatalf("got %q", b)
	}
	if n := metricSum(t, admin, `^expressgateway_guard_tripped_total\{guard="slow_loris"\}$`); n != 1 {
		t.Errorf("slow_loris counted %v, want 1", n)
	}
}

// TestExpectContinueOneRule: small and long bodies both get the gateway's
// own 100 Continue, and Expect is not forwarded.
func TestExpectContinueOneRule(t *testing.T) {
	up := newRawUpstream(t, "up1")
	gw, _ := secGateway(t, `[listeners.limits]
max_inflight_bytes = "4KiB"`, oneCluster(up.addr()))
	for _, size := range []int{100, 64 << 10} {
		c, err := net.Dial("tcp", gw)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = fmt.Fprintf(c, "PUT /e HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: %d\r\nConnection: close\r\n\r\n", size)
		br := bufio.NewReader(c)
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		line, err := br.ReadString('\n')
		if err != nil || line != "HTTP/1.1 100 Continue\r\n" {
			_ = c.Close()
			t.Fatalf("%d-byte body: first line %q, %v", size, line, err)
		}
		if _, err := br.ReadString('\n'); err != nil { // the blank line
			t.Fatal(err)
		}
		if _, err := io.WriteString(c, strings.Repeat("b", size)); err != nil {
			t.Fatal(err)
		}
		rest, _ := io.ReadAll(br)
		_ = c.Close()
		if !strings.HasPrefix(string(rest), "HTTP/1.1 200 ") || strings.Contains(string(rest), "100 Continue") {
			t.Fatalf("%d-byte body: after the 100: %q", size, rest)
		}
	}
	for _, r := range up.requests() {
		if r.Header.Get("Expect") != "" {
			t.Errorf("Expect reached the upstream: %+v", r.Header)
		}
	}
	if rs := up.requests(); len(rs) != 2 || len(rs[0].Body) != 100 || len(rs[1].Body) != 64<<10 {
		t.Fatalf("upstream saw %d requests", len(rs))
	}
}

// TestGetWithBody: refused by default, forwarded with allow_get_body.
func TestGetWithBody(t *testing.T) {
	up := newRawUpstream(t, "up1")
	gw, _ := secGateway(t, "", oneCluster(up.addr()))
	req := "GET /_search HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: 13\r\nConnection: close\r\n\r\n{\"q\":\"hello\"}"
	if got := rawExchange(t, gw, req); !strings.HasPrefix(got, "HTTP/1.1 400 ") {
		t.Fatalf("default: %q", got)
	}
	if n := len(up.requests()); n != 0 {
		t.Fatalf("a GET with a body reached the upstream by default")
	}
	gw2, _ := secGateway(t, "allow_get_body = true", oneCluster(up.addr()))
	if got := rawExchange(t, gw2, req); !strings.HasPrefix(got, "HTTP/1.1 200 ") {
		t.Fatalf("allow_get_body: %q", got)
	}
	if rs := up.requests(); len(rs) != 1 || rs[0].Body != `{"q":"hello"}` {
		t.Fatalf("upstream saw %+v", rs)
	}
	if got := rawExchange(t, gw2, "TRACE / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi"); !strings.HasPrefix(got, "HTTP/1.1 400 ") {
		t.Fatalf("TRACE with a body under allow_get_body: %q", got)
	}
}

// TestPathAndHostNormalised: routing and forwarding read the same
// normalised path and host, so no shape of "/admin" slips past an /admin
// route into a catch-all whose backend would resolve it to /admin.
func TestPathAndHostNormalised(t *testing.T) {
	admin, other := newRawUpstream(t, "admin"), newRawUpstream(t, "other")
	routes := fmt.Sprintf(`
[[listeners.routes]]
path_prefix = "/admin"
cluster = "admin"
[[listeners.routes]]
host = "internal.example.com"
cluster = "admin"
[[listeners.routes]]
cluster = "other"
[[clusters]]
name = "admin"
endpoints = [ { address = %q } ]
[[clusters]]
name = "other"
endpoints = [ { address = %q } ]
`, admin.addr(), other.addr())
	type shape struct {
		target, host string
		want         string // "admin /path", "other /path" or "400"
		wantHost     string // the Host the upstream must see ("" = same as sent)
	}
	common := []shape{
		{"http://x/admin/users", "y", "admin /admin/users", "x"},
		{"/x/../admin", "a", "admin /admin", ""},
		{"/%61dmin", "a", "admin /admin", ""},
		{"/./admin", "a", "admin /admin", ""},
		{"/%2e%2e/admin?q=/../x", "a", "admin /admin?q=/../x", ""},
		{"/a/.%2E/admin", "a", "admin /admin", ""},
		{"/admin#frag", "a", "400", ""},
		{"/..\\admin", "a", "400", ""},
		{"/%zzadmin", "a", "400", ""},
		{"/public", "internal.example.com.", "admin /public", "internal.example.com"},
		{"/public", "INTERNAL.Example.COM:8080", "admin /public", "internal.example.com:8080"},
		{"/public", "a:80:90", "400", ""},
		{"/public", "a:99999", "400", ""},
	}
	configs := []struct {
		name, listener string
		shapes         []shape
	}{
		{"defaults", "", append(common,
			shape{"//admin", "a", "other //admin", ""},
			shape{"/a/..%2fadmin", "a", "other /a/..%2Fadmin", ""},
		)},
		{"merge_slashes and reject", "merge_slashes = true\nescaped_slashes = \"reject\"", append(common,
			shape{"//admin", "a", "admin /admin", ""},
			shape{"/a/..%2fadmin", "a", "400", ""},
		)},
		{"unescape", "escaped_slashes = \"unescape\"", append(common,
			shape{"/a/..%2fadmin", "a", "admin /admin", ""},
			shape{"/a/..%5Cadmin", "a", "admin /admin", ""},
		)},
	}
	for _, cfg := range configs {
		t.Run(cfg.name, func(t *testing.T) {
			gw, _ := secGateway(t, cfg.listener, routes)
			for _, s := range cfg.shapes {
				na, no := len(admin.requests()), len(other.requests())
				got := rawExchange(t, gw, "GET "+s.target+" HTTP/1.1\r\nHost: "+s.host+"\r\nConnection: close\r\n\r\n")
				if s.want == "400" {
					if !strings.HasPrefix(got, "HTTP/1.1 400 ") {
						t.Errorf("%s (Host %s): got %q, want 400", s.target, s.host, got)
					}
					if len(admin.requests()) != na || len(other.requests()) != no {
						t.Errorf("%s (Host %s): refused but forwarded", s.target, s.host)
					}
					continue
				}
				cluster, path, _ := strings.Cut(s.want, " ")
				if !strings.HasSuffix(got, cluster+" you asked for "+path) {
					t.Errorf("%s (Host %s): got %q, want %s", s.target, s.host, got, s.want)
					continue
				}
				up := admin
				if cluster == "other" {
					up = other
				}
				rs := up.requests()
				r := rs[len(rs)-1]
				wantHost := s.wantHost
				if wantHost == "" {
					wantHost = s.host
				}
				if r.URI != path || r.Host != wantHost {
					t.Errorf("%s (Host %s): upstream saw %s with Host %s, want %s with Host %s", s.target, s.host, r.URI, r.Host, path, wantHost)
				}
			}
		})
	}
}

// TestKeepAliveRace: an upstream that closes a pooled connection as the
// next request arrives on it (before any response byte) costs an idempotent
// request nothing: it goes again on a fresh connection, the endpoint is not
// charged (consecutive_5xx = 1 would eject it) and no retry budget is
// spent; a POST in the same spot gets 502, since the upstream may have
// acted on it.
func TestKeepAliveRace(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	// Each connection answers its first request, then closes as soon as a
	// second request's head arrives, without answering it.
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func(c net.Conn) {
				defer func() { _ = c.Close() }()
				br := bufio.NewReader(c)
				req, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				_, _ = io.Copy(io.Discard, req.Body)
				body := "first on this connection: " + req.URL.Path
				_, _ = fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
				_, _ = http.ReadRequest(br) // the race: close as it arrives
			}(c)
		}
	}()
	gw, admin := secGateway(t, "", fmt.Sprintf(`
[[listeners.routes]]
cluster = "app"
[[clusters]]
name = "app"
endpoints = [ { address = %q } ]
[clusters.outlier_detection]
consecutive_5xx = 1
[clusters.retry]
max_retries = 0
`, ln.Addr().String()))
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	for i := 0; i < 20; i++ {
		resp, err := client.Get(fmt.Sprintf("http://%s/get%d", gw, i))
		if err != nil {
			t.Fatalf("GET %d: %v", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != fmt.Sprintf("first on this connection: /get%d", i) {
			t.Fatalf("GET %d: %d %q", i, resp.StatusCode, b)
		}
	}
	if n := metricSum(t, admin, `^expressgateway_upstream_failures_total\{cluster="app",reason="stale_keepalive"\}$`); n < 19 {
		t.Errorf("stale_keepalive counted %v times, want 19", n)
	}
	if n := metricSum(t, admin, `^expressgateway_lb_ejections_total\{.*\}$`); n != 0 {
		t.Errorf("the endpoint was ejected %v times for the race", n)
	}
	req, _ := http.NewRequest("POST", "http://"+gw+"/post", nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != 502 {
		t.Fatalf("POST on a connection the upstream closed: %d, want 502 (not retried)", resp.StatusCode)
	}
}
