// SPDX-License-Identifier: GPL-3.0-only

package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// emptyBodyUpstream answers every request on a keep-alive connection with
// a 200 and "Content-Length: 0"; with closeAfter, a 400 with
// "Content-Length: 0" and a close, before the request body has arrived
// (a bench upstream's answer to a chunked request).
func emptyBodyUpstream(t *testing.T, closeAfter bool) string {
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
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					if closeAfter {
						_, _ = io.WriteString(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
						return
					}
					_, _ = io.Copy(io.Discard, req.Body)
					_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// TestEmptyBodyResponseCompletes: a response with "Content-Length: 0" is
// complete with its head. The exchange ends there, so the next request on
// the client's connection is served at once (it used to wait behind an
// exchange that waited for a body byte that never comes), and an upstream
// that answers so and closes before the request body is in gives the
// client that answer, not a reset.
func TestEmptyBodyResponseCompletes(t *testing.T) {
	t.Parallel()
	gw, _ := secGateway(t, "", oneCluster(emptyBodyUpstream(t, false)))
	c, err := net.Dial("tcp", gw)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	br := bufio.NewReader(c)
	for i := 0; i < 3; i++ {
		_ = c.SetDeadline(time.Now().Add(3 * time.Second))
		_, _ = fmt.Fprintf(c, "GET /%d HTTP/1.1\r\nHost: a\r\n\r\n", i)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d on one keep-alive connection: %v", i, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != 200 || resp.ContentLength != 0 {
			t.Fatalf("request %d: %d, Content-Length %d", i, resp.StatusCode, resp.ContentLength)
		}
	}

	// An upload larger than max_inflight_bytes goes upstream off the loop
	// (h1_pump.go), and so does its response: the same empty answer ends
	// it there too.
	gwp, _ := secGateway(t, `[listeners.limits]
max_inflight_bytes = "4KiB"`, oneCluster(emptyBodyUpstream(t, false)))
	cp, err := net.Dial("tcp", gwp)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cp.Close() }()
	bp := bufio.NewReader(cp)
	body := strings.Repeat("x", 64<<10)
	for i := 0; i < 2; i++ {
		_ = cp.SetDeadline(time.Now().Add(3 * time.Second))
		_, _ = fmt.Fprintf(cp, "POST /up%d HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n%s", i, len(body), body)
		resp, err := http.ReadResponse(bp, nil)
		if err != nil {
			t.Fatalf("upload %d off the loop: %v", i, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != 200 || resp.ContentLength != 0 {
			t.Fatalf("upload %d off the loop: %d, Content-Length %d", i, resp.StatusCode, resp.ContentLength)
		}
	}

	// The same over HTTP/2 (h2c) and HTTP/3 fronts: each response ends
	// the stream (END_STREAM, FIN), several times on one connection.
	h2 := &http.Client{Transport: h2cTransport(t), Timeout: 3 * time.Second}
	hs := startH3GatewayAt(t, emptyBodyUpstream(t, false), "http1", "", "")
	h3c, h3tr := h3Client(hs.ca)
	defer func() { _ = h3tr.Close() }()
	h3c.Timeout = 3 * time.Second
	for _, tc := range []struct {
		name string
		c    *http.Client
		base string
	}{{"h2c", h2, "http://" + gw}, {"h3", h3c, "https://" + hs.h3}} {
		for i := 0; i < 3; i++ {
			resp, err := tc.c.Get(fmt.Sprintf("%s/%d", tc.base, i))
			if err != nil {
				t.Fatalf("%s request %d: %v", tc.name, i, err)
			}
			b, err := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if err != nil || resp.StatusCode != 200 || len(b) != 0 {
				t.Fatalf("%s request %d: %d, %d bytes, %v", tc.name, i, resp.StatusCode, len(b), err)
			}
		}
	}

	// An upstream that answers 400 with "Content-Length: 0" and closes at
	// once, before it read the body (the bench upstream's answer to a
	// chunked body): the client gets that 400, not a reset.
	gw2, _ := secGateway(t, "", oneCluster(emptyBodyUpstream(t, true)))
	hs2 := startH3GatewayAt(t, emptyBodyUpstream(t, true), "http1", "", "")
	h3c2, h3tr2 := h3Client(hs2.ca)
	defer func() { _ = h3tr2.Close() }()
	h3c2.Timeout = 3 * time.Second
	for _, tc := range []struct {
		name string
		c    *http.Client
		url  string
	}{{"h1", &http.Client{Timeout: 3 * time.Second}, "http://" + gw2 + "/up"}, {"h2c", h2, "http://" + gw2 + "/up"}, {"h3", h3c2, "https://" + hs2.h3 + "/up"}} {
		// A body of unknown length, in two parts: it goes upstream
		// chunked (HTTP/1.1), and the upstream answers before its end.
		pr, pw := io.Pipe()
		go func() {
			_, _ = io.WriteString(pw, "hello")
			time.Sleep(100 * time.Millisecond)
			_, _ = io.WriteString(pw, "world")
			_ = pw.Close()
		}()
		req, _ := http.NewRequest("POST", tc.url, pr)
		resp, err := tc.c.Do(req)
		if err != nil {
			t.Fatalf("%s early empty answer: %v", tc.name, err)
		}
		b, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil || resp.StatusCode != 400 || len(b) != 0 {
			t.Fatalf("%s early empty answer: %d, %d bytes, %v; want the upstream's 400", tc.name, resp.StatusCode, len(b), err)
		}
	}
}
