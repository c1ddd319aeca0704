// SPDX-License-Identifier: GPL-3.0-only

package main

import (
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestH3HeadNotHeldForBody: an HTTP/3 client gets a response's head (and
// a first chunk) as soon as the upstream sent it, not when the body
// follows. The upstream sends the rest only once the client has read what
// came before, so a head or chunk held back until more arrives would
// never reach the client (the upstream gives up after 5 s and the
// client's read fails). The upstream speaks HTTP/1.1 and h2c.
func TestH3HeadNotHeldForBody(t *testing.T) {
	for _, proto := range []string{"http1", "h2c"} {
		t.Run(proto, func(t *testing.T) {
			gotHead := make(chan struct{}, 8)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				if r.URL.Path == "/chunked" {
					_, _ = io.WriteString(w, "first;") // head and a first chunk in one read
				} else {
					w.Header().Set("Content-Length", "5")
					w.WriteHeader(200)
				}
				w.(http.Flusher).Flush()
				select {
				case <-gotHead:
				case <-time.After(5 * time.Second):
					return // the body never goes: the client's read fails
				}
				_, _ = io.WriteString(w, "hello")
			}), ReadHeaderTimeout: 5 * time.Second}
			if proto == "h2c" {
				srv.Protocols = new(http.Protocols)
				srv.Protocols.SetUnencryptedHTTP2(true)
			}
			go func() { _ = srv.Serve(ln) }()
			t.Cleanup(func() { _ = srv.Close() })

			s := startH3GatewayAt(t, ln.Addr().String(), proto, "", "")
			c, tr := h3Client(s.ca)
			defer func() { _ = tr.Close() }()
			for _, tc := range []struct{ path, head, want string }{
				{"/length", "", "hello"},
				{"/chunked", "first;", "first;hello"},
			} {
				start := time.Now()
				resp, err := c.Get("https://" + s.h3 + tc.path)
				if err != nil {
					t.Fatalf("%s: %v", tc.path, err)
				}
				if d := time.Since(start); d > 3*time.Second {
					t.Errorf("%s: the head took %v (held for the body)", tc.path, d)
				}
				if tc.head != "" {
					b := make([]byte, len(tc.head))
					if _, err := io.ReadFull(resp.Body, b); err != nil || string(b) != tc.head {
						t.Errorf("%s: first chunk %q %v, want %q before the rest is sent", tc.path, b, err, tc.head)
					}
				}
				gotHead <- struct{}{}
				rest, err := io.ReadAll(resp.Body)
				_ = resp.Body.Close()
				if body := tc.head + string(rest); err != nil || resp.StatusCode != 200 || body != tc.want {
					t.Errorf("%s: %d %q %v, want 200 %q", tc.path, resp.StatusCode, tc.head+string(rest), err, tc.want)
				}
			}
		})
	}
}
