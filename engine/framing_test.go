// SPDX-License-Identifier: GPL-3.0-only

package engine

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestResponseFramingEdgeCases(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/head":
			w.Header().Set("Content-Length", "5")
			if r.Method != "HEAD" {
				_, _ = io.WriteString(w, "hello")
			}
		case "/204":
			w.WriteHeader(204)
		case "/304":
			w.WriteHeader(304)
		case "/chunked":
			_, _ = io.WriteString(w, "part1-")
			w.(http.Flusher).Flush()
			_, _ = io.WriteString(w, "part2")
		}
	})
	g := startGW(t, []string{o.addr()}, "", "", nil)

	t.Run("HEAD has no body", func(t *testing.T) {
		c := dialRaw(t, g.addr)
		c.send(t, "HEAD /head HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, body := c.readResponse(t, "HEAD")
		if resp.StatusCode != 200 || body != "" || resp.ContentLength != 5 {
			t.Fatalf("%d %q cl=%d", resp.StatusCode, body, resp.ContentLength)
		}
		c.send(t, "GET /head HTTP/1.1\r\nHost: x\r\n\r\n")
		if _, body := c.readResponse(t, "GET"); body != "hello" {
			t.Fatalf("next response on the connection: %q", body)
		}
	})
	for _, p := range []string{"/204", "/304"} {
		t.Run(p, func(t *testing.T) {
			c := dialRaw(t, g.addr)
			c.send(t, "GET "+p+" HTTP/1.1\r\nHost: x\r\n\r\n")
			resp, _ := c.readResponse(t, "GET")
			if resp.StatusCode != map[string]int{"/204": 204, "/304": 304}[p] {
				t.Fatalf("status %d", resp.StatusCode)
			}
			c.send(t, "GET /head HTTP/1.1\r\nHost: x\r\n\r\n")
			if _, body := c.readResponse(t, "GET"); body != "hello" {
				t.Fatalf("connection broken after %s: %q", p, body)
			}
		})
	}
	t.Run("HTTP/1.0 client gets a chunked response until close", func(t *testing.T) {
		c := dialRaw(t, g.addr)
		c.send(t, "GET /chunked HTTP/1.0\r\nHost: x\r\n\r\n")
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		all, err := io.ReadAll(c.r)
		if err != nil {
			t.Fatal(err)
		}
		s := string(all)
		if !strings.HasSuffix(s, "\r\n\r\npart1-part2") || strings.Contains(strings.ToLower(s), "transfer-encoding") {
			t.Fatalf("response to HTTP/1.0:\n%q", s)
		}
	})
	t.Run("Connection: close from the client", func(t *testing.T) {
		c := dialRaw(t, g.addr)
		c.send(t, "GET /head HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		resp, body := c.readResponse(t, "GET")
		if body != "hello" || !resp.Close {
			t.Fatalf("%q close=%v", body, resp.Close)
		}
		if !c.closedByPeer(2 * time.Second) {
			t.Fatal("not closed")
		}
	})
}
