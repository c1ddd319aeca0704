// SPDX-License-Identifier: GPL-3.0-only

package engine

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/expressgateway/expressgateway/stages"
)

func echoOrigin(t *testing.T) *origin {
	return newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Path", r.URL.Path)
		w.Header().Set("X-XFF", r.Header.Get("X-Forwarded-For"))
		w.Header().Set("X-XFP", r.Header.Get("X-Forwarded-Proto"))
		w.Header().Set("X-Via", r.Header.Get("Via"))
		w.Header().Set("X-Conn-Hdr", r.Header.Get("X-Hop"))
		w.Header().Set("X-Trailer", r.Trailer.Get("X-Sum"))
		_, _ = fmt.Fprintf(w, "%s %s %d:%s", r.Method, r.URL.Path, len(body), body)
	})
}

func TestKeepAliveReusesUpstream(t *testing.T) {
	o := echoOrigin(t)
	g := startGW(t, []string{o.addr()}, "", "", nil)
	c := dialRaw(t, g.addr)
	for i := 0; i < 5; i++ {
		c.send(t, fmt.Sprintf("GET /k%d HTTP/1.1\r\nHost: x\r\n\r\n", i))
		resp, body := c.readResponse(t, "GET")
		if resp.StatusCode != 200 || body != fmt.Sprintf("GET /k%d 0:", i) {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
		}
		if resp.Header.Get("X-XFF") != "127.0.0.1" || resp.Header.Get("X-XFP") != "http" || !strings.Contains(resp.Header.Get("X-Via"), "expressgateway") {
			t.Fatalf("forwarding headers missing: %v", resp.Header)
		}
		if !strings.Contains(resp.Header.Get("Via"), "expressgateway") {
			t.Fatalf("response Via missing: %v", resp.Header)
		}
	}
	if n := o.conns.Load(); n != 1 {
		t.Fatalf("upstream saw %d connections for 5 keep-alive requests, want 1", n)
	}
	if r := g.waitMetric(`expressgateway_upstream_reuses_total{cluster="app"}`, 4); r != 4 {
		t.Fatalf("reuses = %v, want 4", r)
	}
	if v := g.waitMetric(`expressgateway_requests_total{listener="web",route="0",class="2xx"}`, 5); v != 5 {
		t.Fatalf("requests_total 2xx = %v, want 5", v)
	}
}

func TestHopByHopStripped(t *testing.T) {
	o := echoOrigin(t)
	g := startGW(t, []string{o.addr()}, "", "", nil)
	c := dialRaw(t, g.addr)
	c.send(t, "GET /h HTTP/1.1\r\nHost: x\r\nConnection: X-Hop\r\nX-Hop: secret\r\nX-Forwarded-For: 10.9.9.9\r\n\r\n")
	resp, _ := c.readResponse(t, "GET")
	if resp.Header.Get("X-Conn-Hdr") != "" {
		t.Fatal("a header named in Connection reached the upstream")
	}
	if got := resp.Header.Get("X-XFF"); got != "10.9.9.9, 127.0.0.1" {
		t.Fatalf("X-Forwarded-For = %q", got)
	}
}

func TestPipeliningKeepsOrder(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if d, _ := strconv.Atoi(r.URL.Query().Get("sleep")); d > 0 {
			time.Sleep(time.Duration(d) * time.Millisecond)
		}
		_, _ = io.WriteString(w, r.URL.Path)
	})
	g := startGW(t, []string{o.addr()}, "", "", nil)
	c := dialRaw(t, g.addr)
	c.send(t, "GET /one?sleep=150 HTTP/1.1\r\nHost: x\r\n\r\nGET /two HTTP/1.1\r\nHost: x\r\n\r\nGET /three?sleep=20 HTTP/1.1\r\nHost: x\r\n\r\n")
	for _, want := range []string{"/one", "/two", "/three"} {
		_, body := c.readResponse(t, "GET")
		if body != want {
			t.Fatalf("got %q, want %q: pipelined responses out of order", body, want)
		}
	}
}

func TestChunkedBothWaysWithTrailers(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Trailer", "X-Echo-Sum")
		w.Header().Set("X-Req-Trailer", r.Trailer.Get("X-Sum"))
		w.Header().Set("X-Req-TE", strings.Join(r.TransferEncoding, ","))
		for i := 0; i < 3; i++ {
			_, _ = fmt.Fprintf(w, "[%s]", body)
			w.(http.Flusher).Flush()
		}
		w.Header().Set("X-Echo-Sum", strconv.Itoa(len(body)))
	})
	g := startGW(t, []string{o.addr()}, "", "", nil)
	c := dialRaw(t, g.addr)
	c.send(t, "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 11\r\n\r\n")
	resp, body := c.readResponse(t, "POST")
	if body != "[hello world][hello world][hello world]" {
		t.Fatalf("body %q", body)
	}
	if len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" {
		t.Fatalf("response not chunked: %v", resp.TransferEncoding)
	}
	if resp.Header.Get("X-Req-TE") != "chunked" || resp.Header.Get("X-Req-Trailer") != "11" {
		t.Fatalf("request framing/trailer not forwarded: %v", resp.Header)
	}
	if resp.Trailer.Get("X-Echo-Sum") != "11" {
		t.Fatalf("response trailer lost: %v", resp.Trailer)
	}
	// The connection is still usable.
	c.send(t, "GET /after HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, _ := c.readResponse(t, "GET"); resp.StatusCode != 200 {
		t.Fatal("connection not reusable after chunked exchange")
	}
}

func TestExpect100Continue(t *testing.T) {
	o := echoOrigin(t)
	g := startGW(t, []string{o.addr()}, "", "", nil)
	c := dialRaw(t, g.addr)
	c.send(t, "POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	line, err := c.r.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "HTTP/1.1 100") {
		t.Fatalf("want 100 Continue first, got %q %v", line, err)
	}
	if l2, _ := c.r.ReadString('\n'); l2 != "\r\n" {
		// skip any interim headers
		for l2 != "\r\n" {
			l2, _ = c.r.ReadString('\n')
		}
	}
	c.send(t, "hello")
	resp, body := c.readResponse(t, "POST")
	if resp.StatusCode != 200 || body != "POST /e 5:hello" {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
}

func TestLimitsAnswer431414413(t *testing.T) {
	o := echoOrigin(t)
	g := startGW(t, []string{o.addr()}, `
[listeners.limits]
max_request_line = "1KiB"
max_header_bytes = "4KiB"
max_body_bytes = 100
`, "", nil)
	cases := []struct {
		name, req string
		status    int
	}{
		{"431", "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 5000) + "\r\n\r\n", 431},
		{"414", "GET /" + strings.Repeat("a", 2000) + " HTTP/1.1\r\nHost: x\r\n\r\n", 414},
		{"413", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n", 413},
		{"413 chunked", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + "65\r\n" + strings.Repeat("b", 101) + "\r\n0\r\n\r\n", 413},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, g.addr)
			c.send(t, tc.req)
			resp, _ := c.readResponse(t, "GET")
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if !c.closedByPeer(2 * time.Second) {
				t.Fatal("connection left open after a limit response")
			}
		})
	}
	// The chunked 413 is detected mid-body, after the head went upstream;
	// the others never reach it.
	if n := o.requests.Load(); n > 1 {
		t.Fatalf("upstream handled %d oversize requests", n)
	}
}

func TestSmugglingShapesRefused(t *testing.T) {
	o := echoOrigin(t)
	g := startGW(t, []string{o.addr()}, `
[listeners.limits]
max_chunk_extension = 64
`, "", nil)
	shapes := map[string]string{
		"CL.TE":            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nX",
		"TE.CL":            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n1\r\nZ\r\n0\r\n\r\n",
		"CL.CL differing":  "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
		"CL non-numeric":   "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3a\r\n\r\nabc",
		"TE not chunked":   "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
		"TE in HTTP/1.0":   "POST / HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"obs-fold":         "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n",
		"space before :":   "GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
		"bad name char":    "GET / HTTP/1.1\r\nHost: x\r\nX(A): a\r\n\r\n",
		"CTL in value":     "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n",
		"NUL in value":     "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n",
		"bare CR in value": "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n",
		"bad chunk size":   "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
		"chunk ext abuse":  "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1;" + strings.Repeat("a=b;", 100) + "\r\nx\r\n0\r\n\r\n",
	}
	for name, req := range shapes {
		t.Run(name, func(t *testing.T) {
			before := o.requests.Load()
			c := dialRaw(t, g.addr)
			c.send(t, req)
			resp, _ := c.readResponse(t, "POST")
			if resp.StatusCode != 400 && resp.StatusCode != 501 {
				t.Fatalf("status %d, want 400", resp.StatusCode)
			}
			if !c.closedByPeer(2 * time.Second) {
				t.Fatal("connection left open")
			}
			if o.requests.Load() != before {
				t.Fatal("the request reached the upstream handler")
			}
		})
	}
}

func TestUnknownVersion505(t *testing.T) {
	o := echoOrigin(t)
	g := startGW(t, []string{o.addr()}, "", "", nil)
	c := dialRaw(t, g.addr)
	c.send(t, "GET / HTTP/1.7\r\nHost: x\r\n\r\n")
	resp, _ := c.readResponse(t, "GET")
	if resp.StatusCode != 505 {
		t.Fatalf("status %d, want 505", resp.StatusCode)
	}
}

func TestNoRoute404(t *testing.T) {
	o := echoOrigin(t)
	g := startGW(t, []string{o.addr()}, "", "", nil)
	// The harness routes "/" prefix; a request target without a leading
	// slash (asterisk-form) does not match.
	c := dialRaw(t, g.addr)
	c.send(t, "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, _ := c.readResponse(t, "OPTIONS")
	if resp.StatusCode != 404 {
		t.Fatalf("status %d, want 404", resp.StatusCode)
	}
}

func TestUpstreamDownFast502(t *testing.T) {
	dead := freePort(t) // nothing listens there
	g := startGW(t, []string{dead}, "", "", nil)
	c := dialRaw(t, g.addr)
	start := time.Now()
	c.send(t, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, _ := c.readResponse(t, "GET")
	if resp.StatusCode != 502 {
		t.Fatalf("status %d, want 502", resp.StatusCode)
	}
	if el := time.Since(start); el > time.Second {
		t.Fatalf("502 took %v", el)
	}
	if g.metric(`expressgateway_upstream_failures_total{cluster="app",reason="connect_failed"}`) < 1 {
		t.Fatal("connect failure not counted")
	}
}

func TestUpstreamSlow504(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(1500 * time.Millisecond)
		_, _ = io.WriteString(w, "late")
	})
	g := startGW(t, []string{o.addr()}, `
[listeners.timeouts]
upstream_response_header = "300ms"
`, "", nil)
	c := dialRaw(t, g.addr)
	start := time.Now()
	c.send(t, "POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
	resp, _ := c.readResponse(t, "POST")
	if resp.StatusCode != 504 {
		t.Fatalf("status %d, want 504", resp.StatusCode)
	}
	if el := time.Since(start); el < 300*time.Millisecond || el > 1200*time.Millisecond {
		t.Fatalf("504 after %v, want about 300ms", el)
	}
}

func TestSlowLorisClosed(t *testing.T) {
	o := echoOrigin(t)
	g := startGW(t, []string{o.addr()}, `
[listeners.timeouts]
header_read = "300ms"
`, "", nil)
	c := dialRaw(t, g.addr)
	c.send(t, "GET / HTTP/1.1\r\nHost: x\r\n")
	time.Sleep(150 * time.Millisecond)
	c.send(t, "X-A: 1\r\n")
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		t.Fatalf("no 408: %v", err)
	}
	if _, err := io.ReadAll(resp.Body); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 408 {
		t.Fatalf("status %d, want 408", resp.StatusCode)
	}
	if !c.closedByPeer(2 * time.Second) {
		t.Fatal("slow-loris connection not closed")
	}
	if g.waitMetric(`expressgateway_guard_tripped_total{guard="slow_loris"}`, 1) != 1 {
		t.Fatal("slow_loris guard hit not counted")
	}
	if o.requests.Load() != 0 {
		t.Fatal("partial request reached upstream")
	}
}

func TestPanicClosesOnlyThatConnection(t *testing.T) {
	o := echoOrigin(t)
	hook := func(x *stages.Exchange) {
		if string(x.Req.Path) == "/panic" {
			panic("test panic")
		}
	}
	g := startGW(t, []string{o.addr()}, "", "", hook)
	other := dialRaw(t, g.addr)
	other.send(t, "GET /before HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, _ := other.readResponse(t, "GET"); resp.StatusCode != 200 {
		t.Fatal("warm-up failed")
	}
	c := dialRaw(t, g.addr)
	c.send(t, "GET /panic HTTP/1.1\r\nHost: x\r\n\r\n")
	if !c.closedByPeer(3 * time.Second) {
		t.Fatal("panicking connection not closed")
	}
	if g.waitMetric("expressgateway_panic_total", 1) != 1 {
		t.Fatal("panic_total not incremented")
	}
	other.send(t, "GET /after HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, body := other.readResponse(t, "GET"); resp.StatusCode != 200 || !strings.Contains(body, "/after") {
		t.Fatal("other connection broken by the panic")
	}
	c2 := dialRaw(t, g.addr)
	c2.send(t, "GET /new HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, _ := c2.readResponse(t, "GET"); resp.StatusCode != 200 {
		t.Fatal("process stopped serving new connections")
	}
}

func TestConnectionCapPerIP(t *testing.T) {
	o := echoOrigin(t)
	g := startGW(t, []string{o.addr()}, "max_connections_per_ip = 2\n", "", nil)
	// From 127.0.0.2: the harness's readiness probe came from 127.0.0.1.
	a, b := dialRawFrom(t, g.addr, "127.0.0.2"), dialRawFrom(t, g.addr, "127.0.0.2")
	a.send(t, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	a.readResponse(t, "GET")
	b.send(t, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	b.readResponse(t, "GET")
	c := dialRawFrom(t, g.addr, "127.0.0.2")
	if !c.closedByPeer(2 * time.Second) {
		t.Fatal("third connection from the same IP admitted")
	}
	if g.metric(`expressgateway_guard_tripped_total{guard="max_connections_per_ip"}`) < 1 {
		t.Fatal("cap hit not counted")
	}
}

func TestMaxRequestsPerConnection(t *testing.T) {
	o := echoOrigin(t)
	g := startGW(t, []string{o.addr()}, "max_requests_per_connection = 2\n", "", nil)
	c := dialRaw(t, g.addr)
	c.send(t, "GET /1 HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, _ := c.readResponse(t, "GET"); resp.Close {
		t.Fatal("first response closes")
	}
	c.send(t, "GET /2 HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, _ := c.readResponse(t, "GET"); !resp.Close {
		t.Fatal("last allowed response lacks Connection: close")
	}
	if !c.closedByPeer(2 * time.Second) {
		t.Fatal("connection not closed after the cap")
	}
}

func TestMalformedUpstreamResponse502NotReused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	accepted := make(chan struct{}, 10)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- struct{}{}
			go func(c net.Conn) {
				buf := make([]byte, 4096)
				_, _ = c.Read(buf) // the request head; what it says does not matter
				_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc")
				buf2 := make([]byte, 4096)
				if n, _ := c.Read(buf2); n > 0 {
					_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				}
				_ = c.Close()
			}(c)
		}
	}()
	g := startGW(t, []string{ln.Addr().String()}, "", "", nil)
	c := dialRaw(t, g.addr)
	c.send(t, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
	if resp, _ := c.readResponse(t, "POST"); resp.StatusCode != 502 {
		t.Fatalf("status %d, want 502", resp.StatusCode)
	}
	c.send(t, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
	c.readResponse(t, "POST")
	if len(accepted) != 2 {
		t.Fatalf("upstream accepted %d connections, want 2 (the bad one must not be reused)", len(accepted))
	}
}
