// SPDX-License-Identifier: GPL-3.0-only

package h2

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"
)

// These tests put a real implementation on the other end: net/http's
// HTTP/2 (prior-knowledge h2c, the x/net code bundled in the standard
// library) as a client against our server role, and as a server against
// our client role, over loopback TCP (a net.Pipe has no buffer, and both
// sides legitimately write their preface before reading). The goroutines
// are the test's; the Conn stays sans-IO and is driven by one loop each.

func h2cOnly() *http.Protocols {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	return &p
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Skipf("no loopback TCP: %v", err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	return ln
}

// echoServer is our server-side owner: GET /big answers 1 MiB, POST /echo
// streams the request body back, giving credit only for what it has sent
// on (backpressure end to end).
type echoServer struct {
	NopHandler
	c       *Conn
	big     []byte
	pending map[uint32][]byte // response bytes not yet accepted by WriteData
	ended   map[uint32]bool   // request body complete
	echo    map[uint32]bool
}

func (s *echoServer) OnHeaders(id uint32, h *Head, end bool) {
	if h.Kind != KindRequest {
		return
	}
	switch string(h.Path) {
	case "/big":
		_ = s.c.WriteHeaders(id, &Head{Status: 200, Fields: []Field{{Name: []byte("content-length"), Value: []byte(strconv.Itoa(len(s.big)))}}}, false)
		s.pending[id] = s.big
		s.ended[id] = true
	case "/echo":
		_ = s.c.WriteHeaders(id, &Head{Status: 200, Fields: []Field{{Name: []byte("content-type"), Value: []byte("application/octet-stream")}}}, end)
		s.echo[id] = true
		s.ended[id] = end
	default:
		_ = s.c.WriteHeaders(id, &Head{Status: 404}, true)
	}
	s.flush(id)
}

func (s *echoServer) OnData(id uint32, data []byte, end bool) {
	if s.echo[id] {
		s.pending[id] = append(s.pending[id], data...)
	} else {
		s.c.Consumed(id, len(data))
	}
	s.ended[id] = s.ended[id] || end
	s.flush(id)
}

func (s *echoServer) OnWindowUpdate(id uint32) {
	if id != 0 {
		s.flush(id)
		return
	}
	for id := range s.pending {
		s.flush(id)
	}
}

func (s *echoServer) OnSettings(Settings) {
	for id := range s.pending {
		s.flush(id)
	}
}

func (s *echoServer) flush(id uint32) {
	p := s.pending[id]
	if len(p) == 0 && !s.ended[id] {
		return
	}
	n, err := s.c.WriteData(id, p, s.ended[id])
	if err != nil {
		return
	}
	if s.echo[id] {
		s.c.Consumed(id, n) // credit only what went on to the client
	}
	s.pending[id] = p[n:]
	if n == len(p) && s.ended[id] {
		delete(s.pending, id)
		delete(s.ended, id)
	}
}

// serve runs our server role on nc until it fails or closes.
func serveOurs(nc net.Conn, big []byte, limits Limits) {
	defer func() { _ = nc.Close() }()
	s := &echoServer{big: big, pending: map[uint32][]byte{}, ended: map[uint32]bool{}, echo: map[uint32]bool{}}
	c := NewConn(RoleServer, limits, s, time.Now())
	s.c = c
	var buf []byte
	tmp := make([]byte, 32<<10)
	for {
		if out := c.Output(); len(out) > 0 {
			if _, err := nc.Write(out); err != nil {
				return
			}
			c.Advance(len(out))
		}
		if c.Err() != nil {
			return
		}
		n, err := nc.Read(tmp)
		if err != nil {
			return
		}
		buf = append(buf, tmp[:n]...)
		k, _ := c.Feed(buf, time.Now())
		buf = append(buf[:0], buf[k:]...)
	}
}

func TestInteropHTTPClient(t *testing.T) {
	big := randomBody(1<<20, 5)
	ln := listen(t)
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go serveOurs(nc, big, Limits{})
		}
	}()
	tr := &http.Transport{Protocols: h2cOnly(), DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", ln.Addr().String())
	}}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 20 * time.Second}

	resp, err := client.Get("http://example.test/big")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil || !bytes.Equal(got, big) || resp.StatusCode != 200 || resp.ProtoMajor != 2 {
		t.Fatalf("GET /big: %v, %d octets, status %d", err, len(got), resp.StatusCode)
	}

	upload := randomBody(1<<20, 6)
	resp, err = client.Post("http://example.test/echo", "application/octet-stream", bytes.NewReader(upload))
	if err != nil {
		t.Fatal(err)
	}
	got, err = io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil || !bytes.Equal(got, upload) {
		t.Fatalf("POST /echo: %v, %d octets", err, len(got))
	}

	// Several requests at once on the one connection.
	done := make(chan error, 8)
	for range 8 {
		go func() {
			resp, err := client.Get("http://example.test/big")
			if err == nil {
				var b []byte
				b, err = io.ReadAll(resp.Body)
				_ = resp.Body.Close()
				if err == nil && !bytes.Equal(b, big) {
					err = io.ErrUnexpectedEOF
				}
			}
			done <- err
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

// ourClient drives our client role over nc: one request, until its
// response has ended.
func ourClient(t *testing.T, nc net.Conn, req *Head, body []byte) (head, trailers *Head, _ []byte) {
	t.Helper()
	h := newInteropHandler()
	c := NewConn(RoleClient, Limits{}, h, time.Now())
	h.c = c
	chunks := make(chan []byte, 16)
	go func() {
		defer close(chunks)
		for {
			b := make([]byte, 32<<10)
			n, err := nc.Read(b)
			if n > 0 {
				chunks <- b[:n]
			}
			if err != nil {
				return
			}
		}
	}()
	id, err := c.WriteRequest(req, body == nil)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		h.sending[id] = body
		h.push()
	}
	var buf []byte
	timeout := time.After(20 * time.Second)
	for !h.ended[id] {
		if out := c.Output(); len(out) > 0 {
			if _, err := nc.Write(out); err != nil {
				t.Fatal(err)
			}
			c.Advance(len(out))
		}
		select {
		case b, ok := <-chunks:
			if !ok {
				t.Fatal("connection closed")
			}
			buf = append(buf, b...)
		case <-timeout:
			t.Fatal("timeout")
		}
		k, err := c.Feed(buf, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		buf = append(buf[:0], buf[k:]...)
		h.consume()
	}
	var got []byte
	if h.bodies[id] != nil {
		got = h.bodies[id].Bytes()
	}
	return h.heads[id], h.trailers[id], got
}

func TestInteropHTTPServer(t *testing.T) {
	big := randomBody(1<<20, 7)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/big":
			w.Header().Set("Content-Length", strconv.Itoa(len(big)))
			_, _ = w.Write(big)
		case "/echo":
			w.Header().Set("X-Method", r.Method)
			w.Header().Set("Trailer", "X-Sum")
			_, _ = io.Copy(w, r.Body)
			w.Header().Set("X-Sum", "ok")
		}
	})
	ln := listen(t)
	srv := &http.Server{Handler: handler, Protocols: h2cOnly()}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	dial := func() net.Conn {
		nc, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = nc.Close() })
		return nc
	}

	head, _, body := ourClient(t, dial(), &Head{Method: []byte("GET"), Scheme: []byte("http"), Authority: []byte("upstream.test"), Path: []byte("/big")}, nil)
	if head.Status != 200 || !bytes.Equal(body, big) || head.ContentLength != 1<<20 {
		t.Fatalf("GET /big: status %d, %d octets", head.Status, len(body))
	}

	upload := randomBody(1<<20, 8)
	head, trailers, body := ourClient(t, dial(), &Head{Method: []byte("POST"), Scheme: []byte("http"), Authority: []byte("upstream.test"), Path: []byte("/echo"),
		Fields: []Field{{Name: []byte("content-length"), Value: []byte(strconv.Itoa(len(upload)))}}}, upload)
	if head.Status != 200 || string(head.Get("x-method")) != "POST" || !bytes.Equal(body, upload) || trailers == nil || string(trailers.Get("x-sum")) != "ok" {
		t.Fatalf("POST /echo: status %d, %d octets, head %s", head.Status, len(body), headString(head))
	}
}
