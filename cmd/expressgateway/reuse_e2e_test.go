// SPDX-License-Identifier: GPL-3.0-only

package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestH1StateReuseNeverCrossesClients attacks the reuse of HTTP/1.1
// request state (the per-loop free list) and of pooled upstream
// connections through the binary: concurrent keep-alive clients mix plain
// GETs, bodies long enough to leave the loop, pipelined pairs, slow readers
// of large responses, partial heads, and
// clients that vanish mid-exchange. Every response must be the one its own
// request asked for: the origin echoes the client and sequence number from
// the path and the client's own header, and the client checks both.
func TestH1StateReuseNeverCrossesClients(t *testing.T) {
	origin := reuseOrigin(t)
	gw, admin := freeAddr(t), freeAddr(t)
	startBinary(t, fmt.Sprintf(`
[admin]
listen = %q
[engine]
event_loops = 2
[log]
access_log = true
[[listeners]]
name = "web"
listen = %q
max_connections_per_ip = 0
[listeners.limits]
max_inflight_bytes = "16KiB"
[listeners.timeouts]
body_min_rate = 0
[[listeners.routes]]
cluster = "app"
[[clusters]]
name = "app"
endpoints = [ { address = %q } ]
`, admin, gw, origin), gw)

	const clients, rounds = 24, 30
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := reuseClient(gw, c, rounds); err != nil {
				errs <- fmt.Errorf("client %d: %w", c, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// The mix reached the path that matters most: exchanges that left the
	// loop for their bodies and came back to take the next request.
	if n := metricSum(t, admin, `^expressgateway_stream_detach_total\{direction="request"\}$`); n == 0 {
		t.Error("no exchange left the loop: the test missed the pump path")
	}
	if n := metricSum(t, admin, `^expressgateway_panics_total$`); n != 0 {
		t.Errorf("%v panics", n)
	}
}

// reuseClient runs rounds of mixed exchanges as client id.
func reuseClient(gw string, id, rounds int) error {
	rng := rand.New(rand.NewPCG(uint64(id), 7))
	var c net.Conn
	var br *bufio.Reader
	dial := func() error {
		if c != nil {
			_ = c.Close()
		}
		var err error
		if c, err = net.Dial("tcp", gw); err != nil {
			return err
		}
		_ = c.SetDeadline(time.Now().Add(60 * time.Second))
		// A small receive buffer: a slow reader pushes back at once.
		_ = c.(*net.TCPConn).SetReadBuffer(16 << 10)
		br = bufio.NewReader(c)
		return nil
	}
	if err := dial(); err != nil {
		return err
	}
	defer func() { _ = c.Close() }()
	for s := range rounds {
		tok := fmt.Sprintf("C=%d S=%d", id, s)
		get := func(path string) string {
			return fmt.Sprintf("GET /%s/%d/%d HTTP/1.1\r\nHost: a\r\nX-Client: %d\r\n\r\n", path, id, s, id)
		}
		var err error
		switch op := rng.IntN(6); op {
		case 0: // plain GET
			_, _ = io.WriteString(c, get("echo"))
			err = expectToken(br, tok, 0)
		case 1: // a body longer than max_inflight_bytes: the exchange leaves the loop
			body := bytes.Repeat([]byte{byte('a' + id%26)}, 64<<10)
			_, _ = fmt.Fprintf(c, "POST /echo/%d/%d HTTP/1.1\r\nHost: a\r\nX-Client: %d\r\nContent-Length: %d\r\n\r\n", id, s, id, len(body))
			_, _ = c.Write(body)
			err = expectToken(br, tok+" B="+strconv.Itoa(len(body)), 0)
		case 2: // a pipelined pair
			_, _ = io.WriteString(c, get("echo")+fmt.Sprintf("GET /echo/%d/%d HTTP/1.1\r\nHost: a\r\nX-Client: %d\r\n\r\n", id, s+1000, id))
			if err = expectToken(br, tok, 0); err == nil {
				err = expectToken(br, fmt.Sprintf("C=%d S=%d", id, s+1000), 0)
			}
		case 3: // a slow reader of a large response
			_, _ = io.WriteString(c, get("big"))
			err = expectToken(br, tok, 2*time.Millisecond)
		case 4: // a client that vanishes mid-exchange, then comes back
			_, _ = io.WriteString(c, get("big"))
			if err = dial(); err == nil {
				_, _ = io.WriteString(c, get("echo"))
				err = expectToken(br, tok, 0)
			}
		case 5: // a head in two parts
			h := get("echo")
			_, _ = io.WriteString(c, h[:10])
			time.Sleep(5 * time.Millisecond)
			_, _ = io.WriteString(c, h[10:])
			err = expectToken(br, tok, 0)
		}
		if err != nil {
			return fmt.Errorf("round %d: %w", s, err)
		}
	}
	return nil
}

// expectToken reads one response and checks that its body starts with tok
// and names the client's own header; slow > 0 reads the body in 16 KiB
// steps with that pause.
func expectToken(br *bufio.Reader, tok string, slow time.Duration) error {
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	var body []byte
	if slow > 0 {
		buf := make([]byte, 16<<10)
		for {
			n, err := resp.Body.Read(buf)
			body = append(body, buf[:n]...)
			if err == io.EOF {
				break
			}
			if err != nil {
				return err
			}
			time.Sleep(slow)
		}
	} else if body, err = io.ReadAll(resp.Body); err != nil {
		return err
	}
	line, _, _ := strings.Cut(string(body), "\n")
	if resp.StatusCode != 200 || !strings.HasPrefix(line, tok+" ") && line != tok {
		return fmt.Errorf("want %q, got %d %q", tok, resp.StatusCode, line)
	}
	c := strings.Fields(tok)[0][2:]
	if !strings.HasSuffix(line, " H="+c) {
		return fmt.Errorf("want header of client %s, got %q", c, line)
	}
	return nil
}

// reuseOrigin answers /echo/C/S and /big/C/S with a first line
// "C=<C> S=<S> B=<request body length> H=<X-Client>"; /big adds 512 KiB.
func reuseOrigin(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/"), "/")
		if len(parts) != 3 {
			http.Error(w, "bad path", 400)
			return
		}
		n, _ := io.Copy(io.Discard, r.Body)
		_, _ = fmt.Fprintf(w, "C=%s S=%s B=%d H=%s\n", parts[1], parts[2], n, r.Header.Get("X-Client"))
		if parts[0] == "big" {
			_, _ = w.Write(bytes.Repeat([]byte("z"), 512<<10))
		}
	}), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}
