// SPDX-License-Identifier: GPL-3.0-only

package upstream

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func serve(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() { _ = New().Serve(ln) }()
	return ln.Addr().String()
}

func TestResponses(t *testing.T) {
	addr := serve(t)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	// Pipelined: a body to skip, three paths, then a close.
	reqs := "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello" +
		"GET /large HTTP/1.1\r\nHost: x\r\n\r\n" +
		"GET /bytes/3?x=1 HTTP/1.1\r\nHost: x\r\n\r\n" +
		"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n" +
		"GET / HTTP/1.1\r\nHost: x\r\nconnection: Close\r\n\r\n"
	if _, err := io.WriteString(c, reqs); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	for _, want := range []struct {
		status, size int
		close        bool
	}{{200, SmallBody, false}, {200, LargeBody, false}, {200, 3, false}, {404, 0, false}, {200, SmallBody, true}} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != want.status || len(body) != want.size || resp.Close != want.close {
			t.Fatalf("got %d, %d bytes, close %v; want %+v", resp.StatusCode, len(body), resp.Close, want)
		}
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("connection not closed after Connection: close: %v", err)
	}
}

func TestHTTP10AndBadRequests(t *testing.T) {
	addr := serve(t)
	for req, want := range map[string]string{
		"GET / HTTP/1.0\r\n\r\n": "HTTP/1.1 200 OK",
		"GARBAGE\r\n\r\n":        "HTTP/1.1 400",
		"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n":    "HTTP/1.1 400",
		"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n":             "HTTP/1.1 400",
		"GET / HTTP/1.1\r\nX: " + strings.Repeat("a", 70<<10) + "": "HTTP/1.1 400",
	} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		go func() { _, _ = io.WriteString(c, req) }()
		got, err := io.ReadAll(c) // every case ends with a close
		_ = c.Close()
		if err != nil || !strings.HasPrefix(string(got), want) {
			t.Errorf("%.40q: got %.40q, %v; want %q", req, got, err, want)
		}
	}
}

func TestParseRequestTruncations(t *testing.T) {
	full := []byte("GET /x HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n")
	for i := range len(full) {
		if _, ok, err := parseRequest(full[:i]); ok || err != nil {
			t.Fatalf("prefix %q: ok=%v err=%v", full[:i], ok, err)
		}
	}
	r, ok, err := parseRequest(full)
	if !ok || err != nil || r.path != "/x" || r.bodyLen != 2 || !r.keepAlive || r.headLen != len(full) {
		t.Fatalf("got %+v %v %v", r, ok, err)
	}
}
