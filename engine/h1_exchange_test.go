// SPDX-License-Identifier: GPL-3.0-only

package engine

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// h1States reports, on the loops, how many client connections hold a
// request state and how many states wait on the free lists.
func h1States(t *testing.T, e *Engine) (held, conns, free int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	type r struct{ held, conns, free int }
	ch := make(chan r, 64)
	e.eachLoop(ctx, func(lp *loop) {
		var x r
		for cc := range lp.clients {
			x.conns++
			if cc.r != nil {
				x.held++
			}
		}
		x.free = len(lp.h1free)
		ch <- x
	})
	close(ch)
	for x := range ch {
		held, conns, free = held+x.held, conns+x.conns, free+x.free
	}
	return held, conns, free
}

// TestH1IdleConnectionHoldsNoRequestState: a keep-alive connection between
// requests holds no per-request state (issue 15 §5); the states are reused
// across connections, and a reused state carries nothing of its previous
// connection: each client sees only its own request echoed, with its own
// address in X-Forwarded-For and none of another client's headers.
func TestH1IdleConnectionHoldsNoRequestState(t *testing.T) {
	origin := echoHeadersOrigin(t)
	g := startGWLoops(t, 1, []string{origin}, "", "", nil)
	const n = 40
	conns := make([]net.Conn, n)
	brs := make([]*bufio.Reader, n)
	for round := range 3 {
		for i := range n {
			if conns[i] == nil {
				c, err := net.Dial("tcp", g.addr)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = c.Close() })
				conns[i], brs[i] = c, bufio.NewReader(c)
			}
			c := conns[i]
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			// Every other client sends a body and an extra header: a reused
			// state must not carry either to the next client.
			req := fmt.Sprintf("GET /c%d/r%d HTTP/1.1\r\nHost: a\r\n\r\n", i, round)
			if i%2 == 0 {
				req = fmt.Sprintf("POST /c%d/r%d HTTP/1.1\r\nHost: a\r\nX-Secret: s%d\r\nContent-Length: 5\r\n\r\nhello", i, round, i)
			}
			if _, err := io.WriteString(c, req); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(brs[i], nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			got := string(body)
			if !strings.Contains(got, fmt.Sprintf(" /c%d/r%d ", i, round)) {
				t.Fatalf("client %d round %d got another request's answer: %q", i, round, got)
			}
			wantSecret := fmt.Sprintf("x-secret=s%d", i)
			if i%2 == 1 {
				wantSecret = "x-secret="
			}
			if !strings.Contains(got, wantSecret+";") {
				t.Fatalf("client %d round %d: want %q in %q", i, round, wantSecret, got)
			}
		}
		held, open, free := h1States(t, g.eng)
		if open != n {
			t.Fatalf("round %d: %d client connections, want %d", round, open, n)
		}
		if held != 0 {
			t.Fatalf("round %d: %d of %d idle connections hold a request state", round, held, open)
		}
		// One request at a time: one state served all n connections.
		if free != 1 {
			t.Fatalf("round %d: %d states on the free list, want 1 (reused)", round, free)
		}
	}
}

// echoHeadersOrigin answers each request with "METHOD URI x-secret=V;
// body=B;" (V empty without the header).
func echoHeadersOrigin(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		_, _ = fmt.Fprintf(w, "%s %s x-secret=%s; body=%s;", r.Method, r.RequestURI, r.Header.Get("X-Secret"), b)
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}
