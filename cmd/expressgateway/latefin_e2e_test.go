// SPDX-License-Identifier: GPL-3.0-only

package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync"
	"testing"
	"time"

	h3codec "github.com/expressgateway/expressgateway/codecs/h3"
)

// headUpstream is an HTTP/1.1 upstream that records each request's raw
// head and its body (chunked or by Content-Length) and answers 200 "ok".
type headUpstream struct {
	ln    net.Listener
	mu    sync.Mutex
	heads map[string]string // path → raw head
	body  map[string]string // path → body
}

func newHeadUpstream(t *testing.T) *headUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	u := &headUpstream{ln: ln, heads: map[string]string{}, body: map[string]string{}}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go u.serve(c)
		}
	}()
	return u
}

func (u *headUpstream) serve(c net.Conn) {
	defer func() { _ = c.Close() }()
	br := bufio.NewReader(c)
	for {
		var head strings.Builder
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			head.WriteString(line)
			if line == "\r\n" {
				break
			}
		}
		h := head.String()
		path := strings.Fields(h)[1]
		req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(h)))
		if err != nil {
			return
		}
		var body []byte
		switch {
		case strings.Contains(strings.ToLower(h), "transfer-encoding: chunked"):
			body, err = io.ReadAll(httputil.NewChunkedReader(br))
			if err != nil {
				return
			}
			if _, err := br.ReadString('\n'); err != nil { // the chunked body's last CRLF
				return
			}
		case req.ContentLength > 0:
			body = make([]byte, req.ContentLength)
			if _, err := io.ReadFull(br, body); err != nil {
				return
			}
		}
		u.mu.Lock()
		u.heads[path], u.body[path] = h, string(body)
		u.mu.Unlock()
		if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"); err != nil {
			return
		}
	}
}

func (u *headUpstream) seen(path string) (head, body string, ok bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	head, ok = u.heads[path]
	return head, u.body[path], ok
}

// TestLateEndOfGetStream: an HTTP/2 or HTTP/3 GET whose stream end comes
// apart from its HEADERS (a loaded quic-go client sends the FIN in a later
// packet) is held until that end and goes upstream without a body, not
// with "Transfer-Encoding: chunked", which strict servers refuse for a GET
// (the bench upstream answered 400 and closed). A GET that does send a
// body after its head still has it forwarded, and one that sends neither
// body nor end is answered 408 after body_idle without reaching the
// upstream.
func TestLateEndOfGetStream(t *testing.T) {
	t.Parallel()
	u := newHeadUpstream(t)
	gw, _ := secGateway(t, "[listeners.timeouts]\nbody_idle = \"600ms\"\nbody_min_rate = 0", oneCluster(u.ln.Addr().String()))
	hs := startH3GatewayAtTimeouts(t, u.ln.Addr().String(), "body_idle = \"600ms\"")

	check := func(front, path string, wantBody string, chunked bool) {
		t.Helper()
		head, body, ok := u.seen(path)
		if !ok {
			t.Errorf("%s %s: never reached the upstream", front, path)
			return
		}
		if got := strings.Contains(strings.ToLower(head), "transfer-encoding"); got != chunked {
			t.Errorf("%s %s: Transfer-Encoding upstream = %v, want %v; head:\n%s", front, path, got, chunked, head)
		}
		if body != wantBody {
			t.Errorf("%s %s: upstream body %q, want %q", front, path, body, wantBody)
		}
	}

	// HTTP/2 (h2c), frame by frame.
	f := dialH2(t, gw)
	get := func(path string) []string {
		return []string{":method", "GET", ":scheme", "http", ":authority", "a", ":path", path}
	}
	f.headers(t, 1, false, get("/h2/late")...)
	time.Sleep(150 * time.Millisecond)
	if err := f.fr.WriteData(1, true, nil); err != nil {
		t.Fatal(err)
	}
	if st := f.response(t, 1); st != "200" {
		t.Errorf("h2 GET with a late END_STREAM: %s", st)
	}
	check("h2", "/h2/late", "", false)
	f.headers(t, 3, false, get("/h2/body")...)
	time.Sleep(150 * time.Millisecond)
	if err := f.fr.WriteData(3, true, []byte("abc")); err != nil {
		t.Fatal(err)
	}
	if st := f.response(t, 3); st != "200" {
		t.Errorf("h2 GET with a late body: %s", st)
	}
	check("h2", "/h2/body", "abc", true)
	start := time.Now()
	f.headers(t, 5, false, get("/h2/stuck")...)
	if st := f.response(t, 5); st != "408" {
		t.Errorf("h2 GET that never ends: %s, want 408", st)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("h2 GET that never ends answered after %v", d)
	}
	if _, _, ok := u.seen("/h2/stuck"); ok {
		t.Error("h2 GET that never ends reached the upstream")
	}

	// HTTP/3, frame by frame.
	r := dialH3Raw(t, hs)
	get3 := func(path string) []string {
		return []string{":method", "GET", ":scheme", "https", ":authority", "a.test", ":path", path}
	}
	st := r.request(get3("/h3/late"), nil, false)
	time.Sleep(150 * time.Millisecond)
	_ = st.Close()
	if code, reset := r.status(st); code != 200 {
		t.Errorf("h3 GET with a late FIN: status %d, reset 0x%x", code, reset)
	}
	check("h3", "/h3/late", "", false)
	st = r.request(get3("/h3/body"), nil, false)
	time.Sleep(150 * time.Millisecond)
	if _, err := st.Write(h3codec.AppendData(nil, []byte("abc"))); err != nil {
		t.Fatal(err)
	}
	_ = st.Close()
	if code, reset := r.status(st); code != 200 {
		t.Errorf("h3 GET with a late body: status %d, reset 0x%x", code, reset)
	}
	check("h3", "/h3/body", "abc", true)
	start = time.Now()
	st = r.request(get3("/h3/stuck"), nil, false)
	if code, reset := r.status(st); code != 408 {
		t.Errorf("h3 GET that never ends: status %d, reset 0x%x, want 408", code, reset)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("h3 GET that never ends answered after %v", d)
	}
	if _, _, ok := u.seen("/h3/stuck"); ok {
		t.Error("h3 GET that never ends reached the upstream")
	}
	m := scrape(t, hs.admin)
	if v := metricValue(m, `expressgateway_guard_tripped_total{guard="body_idle"}`); v != 1 {
		t.Errorf("h3 body_idle guard hits: %v, want 1", v)
	}
}
