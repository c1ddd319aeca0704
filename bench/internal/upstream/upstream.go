// SPDX-License-Identifier: GPL-3.0-only

// Package upstream is the origin server every target proxies to: a minimal
// HTTP/1.1 responder with precomputed responses, so that the upstream costs
// as little CPU as possible and the figures measure the proxy in front of it.
//
// Paths:
//
//	/          a small body (SmallBody bytes)
//	/large     1 MiB
//	/bytes/N   N bytes (N <= 64 MiB)
//
// It understands keep-alive, "Connection: close", HTTP/1.0, pipelining and
// request bodies with Content-Length. Anything else gets a 400 and a close.
package upstream

import (
	"bytes"
	"errors"
	"net"
	"strconv"
	"sync"
)

// SmallBody is the size of the body served on "/".
const SmallBody = 64

// LargeBody is the size of the body served on "/large".
const LargeBody = 1 << 20

const (
	maxBytesBody  = 64 << 20
	maxHeaderSize = 64 << 10
	readBufSize   = 4 << 10
)

// Server serves precomputed responses.
type Server struct {
	mu    sync.Mutex
	cache map[string]*response // path -> response
}

type response struct {
	keepAlive []byte
	close     []byte
}

// New returns a Server with "/" and "/large" prepared.
func New() *Server {
	s := &Server{cache: map[string]*response{}}
	s.cache["/"] = build(SmallBody)
	s.cache["/large"] = build(LargeBody)
	return s
}

func build(n int) *response {
	body := bytes.Repeat([]byte("x"), n)
	if n > 0 {
		body[n-1] = '\n'
	}
	head := "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " + strconv.Itoa(n) + "\r\n"
	ka := append([]byte(head+"\r\n"), body...)
	cl := append([]byte(head+"Connection: close\r\n\r\n"), body...)
	return &response{keepAlive: ka, close: cl}
}

var (
	badRequest = []byte("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
	notFound   = []byte("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
)

func (s *Server) lookup(path string) *response {
	if i := bytes.IndexByte([]byte(path), '?'); i >= 0 {
		path = path[:i]
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.cache[path]; ok {
		return r
	}
	if n, ok := bytesPath(path); ok {
		r := build(n)
		s.cache[path] = r
		return r
	}
	return nil
}

func bytesPath(path string) (int, bool) {
	const prefix = "/bytes/"
	if len(path) <= len(prefix) || path[:len(prefix)] != prefix {
		return 0, false
	}
	n, err := strconv.Atoi(path[len(prefix):])
	if err != nil || n < 0 || n > maxBytesBody {
		return 0, false
	}
	return n, true
}

// Serve accepts connections until ln is closed.
func (s *Server) Serve(ln net.Listener) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		go s.serveConn(c)
	}
}

// request is one parsed request head.
type request struct {
	path      string
	keepAlive bool
	bodyLen   int
	headLen   int
}

var errBadRequest = errors.New("bad request")

// parseRequest parses one request head from b. It returns ok=false when the
// head is not complete yet.
func parseRequest(b []byte) (request, bool, error) {
	var r request
	end := bytes.Index(b, []byte("\r\n\r\n"))
	if end < 0 {
		if len(b) > maxHeaderSize {
			return r, false, errBadRequest
		}
		return r, false, nil
	}
	r.headLen = end + 4
	head := b[:end]
	lineEnd := bytes.Index(head, []byte("\r\n"))
	line := head
	if lineEnd >= 0 {
		line = head[:lineEnd]
	}
	sp1 := bytes.IndexByte(line, ' ')
	sp2 := bytes.LastIndexByte(line, ' ')
	if sp1 <= 0 || sp2 <= sp1 {
		return r, false, errBadRequest
	}
	r.path = string(line[sp1+1 : sp2])
	proto := line[sp2+1:]
	r.keepAlive = bytes.Equal(proto, []byte("HTTP/1.1"))
	if lineEnd < 0 {
		return r, true, nil
	}
	for _, h := range bytes.Split(head[lineEnd+2:], []byte("\r\n")) {
		colon := bytes.IndexByte(h, ':')
		if colon <= 0 {
			return r, false, errBadRequest
		}
		name, value := h[:colon], bytes.TrimSpace(h[colon+1:])
		switch {
		case bytes.EqualFold(name, []byte("Connection")):
			if bytes.EqualFold(value, []byte("close")) {
				r.keepAlive = false
			} else if bytes.EqualFold(value, []byte("keep-alive")) {
				r.keepAlive = true
			}
		case bytes.EqualFold(name, []byte("Content-Length")):
			n, err := strconv.Atoi(string(value))
			if err != nil || n < 0 {
				return r, false, errBadRequest
			}
			r.bodyLen = n
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			return r, false, errBadRequest
		}
	}
	return r, true, nil
}

func (s *Server) serveConn(c net.Conn) {
	defer func() { _ = c.Close() }()
	buf := make([]byte, readBufSize)
	var n int        // bytes buffered in buf
	var skip int     // request body bytes still to discard
	var out [][]byte // responses queued for one write
	for {
		m, err := c.Read(buf[n:])
		if m == 0 && err != nil {
			return
		}
		n += m
		start := 0
		closeAfter := false
		for start < n && !closeAfter {
			if skip > 0 {
				d := min(skip, n-start)
				skip -= d
				start += d
				continue
			}
			req, ok, perr := parseRequest(buf[start:n])
			if perr != nil {
				out = append(out, badRequest)
				closeAfter = true
				break
			}
			if !ok {
				break
			}
			start += req.headLen
			skip = req.bodyLen
			resp := s.lookup(req.path)
			switch {
			case resp == nil:
				out = append(out, notFound)
			case req.keepAlive:
				out = append(out, resp.keepAlive)
			default:
				out = append(out, resp.close)
				closeAfter = true
			}
		}
		if len(out) > 0 {
			bufs := net.Buffers(out)
			if _, err := bufs.WriteTo(c); err != nil {
				return
			}
			clear(out)
			out = out[:0]
		}
		if closeAfter {
			return
		}
		// Keep the unparsed tail at the front of buf; grow for big heads.
		copy(buf, buf[start:n])
		n -= start
		if n == len(buf) {
			if len(buf) >= maxHeaderSize+readBufSize {
				_, _ = c.Write(badRequest)
				return
			}
			buf = append(buf, make([]byte, len(buf))...)
		}
		if err != nil {
			return // EOF or a broken connection: either way, done
		}
	}
}
