// SPDX-License-Identifier: GPL-3.0-only

package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"
)

// idOrigin echoes what it was sent, tagged with the request's id, so that
// a response that reached the wrong request shows: the path, the x-id
// header, the cookie, and the body's length and hash; /big/ answers n
// bytes of its id repeated; /slow/ answers after 30 ms.
func idOrigin(t *testing.T, h2c bool) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Id")
		w.Header().Set("X-Id", id)
		switch {
		case strings.HasPrefix(r.URL.Path, "/big/"):
			n, _ := strconv.Atoi(r.URL.Query().Get("n"))
			w.Header().Set("Content-Length", strconv.Itoa(n))
			_, _ = w.Write(idBody(id, n))
			return
		case strings.HasPrefix(r.URL.Path, "/slow/"):
			select {
			case <-time.After(30 * time.Millisecond):
			case <-r.Context().Done():
				return
			}
		}
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			return
		}
		_, _ = fmt.Fprintf(w, "%s %s %d %s id=%s cookie=%s", r.Method, r.URL.Path, n, hex.EncodeToString(h.Sum(nil)), id, r.Header.Get("Cookie"))
	}), ReadHeaderTimeout: 5 * time.Second}
	if h2c {
		srv.Protocols = new(http.Protocols)
		srv.Protocols.SetUnencryptedHTTP2(true)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// idBody is n bytes of "id;" repeated.
func idBody(id string, n int) []byte {
	return bytes.Repeat([]byte(id+";"), n/(len(id)+1)+1)[:n]
}

// chunkReader gives its bytes a few at a time, with no length known to
// the client (the request goes without content-length).
type chunkReader struct{ b []byte }

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b[:min(len(r.b), 4096)])
	r.b = r.b[n:]
	return n, nil
}

// TestStreamsKeepClientsApart: HTTP/3 request streams, HTTP/2 streams
// and HTTP/1.1 exchanges are pooled with their buffers and reused by other
// clients' requests. Through the binary, 4 client connections run 24
// concurrent requests each, mixed: GETs with their own header and cookie,
// uploads with and without content-length, downloads past the h3
// direct-write limit (a writer goroutine), downloads the client abandons
// half-read (STOP_SENDING, RST_STREAM, a closed connection), and requests
// it cancels while the upstream waits. Every response that completes must
// be its own request's, byte for byte: from an h3, an h2 and an h1 front,
// to an HTTP/1.1 and to an h2c upstream.
func TestStreamsKeepClientsApart(t *testing.T) {
	for _, h2c := range []bool{false, true} {
		up := "http1"
		if h2c {
			up = "h2c"
		}
		s := startH3GatewayAt(t, idOrigin(t, h2c), up, "", "")
		for _, front := range []string{"h3", "h2", "h1"} {
			t.Run(front+"-to-"+up, func(t *testing.T) {
				keepApart(t, s, front)
			})
		}
		m := scrape(t, s.admin)
		if v := metricValue(m, `expressgateway_panic_total`); v != 0 {
			t.Errorf("panics: %v", v)
		}
	}
}

func keepApart(t *testing.T, s *h3Setup, front string) {
	const clients, workers, each = 4, 24, 30
	var checked, cancelled atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	fail := func(err error) {
		select {
		case errs <- err:
		default:
		}
	}
	for c := range clients {
		var hc *http.Client
		base := "https://" + s.https
		switch front {
		case "h3":
			var tr *http3.Transport
			hc, tr = h3Client(s.ca)
			defer func() { _ = tr.Close() }()
			base = "https://" + s.h3
		default:
			tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.ca.pool, ServerName: "a.test"}, MaxConnsPerHost: 1, ForceAttemptHTTP2: front == "h2"}
			if front == "h1" {
				tr.MaxConnsPerHost = workers
				tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
			}
			defer tr.CloseIdleConnections()
			hc = &http.Client{Timeout: 30 * time.Second, Transport: tr}
		}
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					id := fmt.Sprintf("c%dw%di%d", c, w, i)
					if err := reuseRequest(hc, base, id, (c+w+i)%6, front, &checked, &cancelled); err != nil {
						fail(fmt.Errorf("%s: %w", id, err))
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("%d responses checked, %d requests cancelled or abandoned", checked.Load(), cancelled.Load())
	if checked.Load() < clients*workers*each/2 {
		t.Errorf("only %d responses checked", checked.Load())
	}
}

// reuseRequest sends one request of the given kind and checks that the
// response is its own.
func reuseRequest(hc *http.Client, base, id string, kind int, front string, checked, cancelled *atomic.Int64) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var body io.Reader
	method, path, n := "GET", "/id/"+id, 0
	switch kind {
	case 1: // upload with content-length
		method, n = "POST", 1000+len(id)*997%30000
		body = bytes.NewReader(idBody(id, n))
	case 2: // upload without content-length
		method, n = "POST", 20000+len(id)*131
		body = &chunkReader{b: idBody(id, n)}
	case 3: // download past the direct-write limit
		path = "/big/" + id + "?n=100000"
	case 4: // download abandoned after its first bytes
		path = "/big/" + id + "?n=300000"
	case 5: // cancelled while the upstream waits
		path = "/slow/" + id
		var c2 context.CancelFunc
		ctx, c2 = context.WithTimeout(ctx, 5*time.Millisecond)
		defer c2()
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("X-Id", id)
	req.Header.Set("Cookie", "c="+id)
	resp, err := hc.Do(req)
	if err == nil && resp.ProtoMajor != map[string]int{"h3": 3, "h2": 2, "h1": 1}[front] {
		_ = resp.Body.Close()
		return fmt.Errorf("answered over %s", resp.Proto)
	}
	if err != nil {
		if kind == 5 && errors.Is(err, context.DeadlineExceeded) {
			cancelled.Add(1)
			return nil
		}
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if got := resp.Header.Get("X-Id"); got != id {
		return fmt.Errorf("status %d, response header X-Id %q", resp.StatusCode, got)
	}
	if kind == 4 {
		b := make([]byte, 2000)
		if _, err := io.ReadFull(resp.Body, b); err != nil {
			return err
		}
		if !bytes.Equal(b, idBody(id, len(b))) {
			return fmt.Errorf("abandoned download: %q", b[:64])
		}
		cancelled.Add(1)
		return nil // Close resets the rest
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		if kind == 5 && errors.Is(err, context.DeadlineExceeded) {
			cancelled.Add(1)
			return nil
		}
		return err
	}
	var want []byte
	if kind == 3 {
		want = idBody(id, 100000)
	} else {
		h := sha256.Sum256(idBody(id, n))
		if n == 0 {
			h = sha256.Sum256(nil)
		}
		want = fmt.Appendf(nil, "%s %s %d %s id=%s cookie=c=%s", method, path, n, hex.EncodeToString(h[:]), id, id)
	}
	if resp.StatusCode != 200 || !bytes.Equal(b, want) {
		if len(b) > 200 {
			b = b[:200]
		}
		return fmt.Errorf("status %d, body %q", resp.StatusCode, b)
	}
	checked.Add(1)
	return nil
}
