// SPDX-License-Identifier: GPL-3.0-only

package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// IdleConns is a set of keep-alive connections that each made one request
// and now sit idle, holding whatever the proxy keeps per connection.
type IdleConns struct {
	conns  []net.Conn
	Opened int    // connections that completed their request
	Failed int    // connections that failed to dial or to get a 200
	First  string // the first failure, for the report
}

// OpenIdle dials n connections to addr, sends one GET for path on each with
// keep-alive, reads the full response, and keeps them open. parallel bounds
// the dials in flight (an accept backlog is finite).
func OpenIdle(ctx context.Context, addr, path string, n, parallel int) *IdleConns {
	ic := &IdleConns{conns: make([]net.Conn, 0, n)}
	req := []byte("GET " + path + " HTTP/1.1\r\nHost: bench\r\n\r\n")
	var mu sync.Mutex
	var next atomic.Int64
	var wg sync.WaitGroup
	for range max(parallel, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 4096)
			for int(next.Add(1)) <= n && ctx.Err() == nil {
				c, err := openOne(ctx, addr, req, buf)
				mu.Lock()
				if err != nil {
					ic.Failed++
					if ic.First == "" {
						ic.First = err.Error()
					}
				} else {
					ic.conns = append(ic.conns, c)
					ic.Opened++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return ic
}

func openOne(ctx context.Context, addr string, req, buf []byte) (net.Conn, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	var c net.Conn
	var err error
	// A full accept queue drops SYNs; retry a few times before counting a failure.
	for attempt := range 3 {
		c, err = d.DialContext(ctx, "tcp", addr)
		if err == nil {
			break
		}
		time.Sleep(time.Duration(attempt+1) * 50 * time.Millisecond)
	}
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(req); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("write: %w", err)
	}
	if err := readResponse(c, buf); err != nil {
		_ = c.Close()
		return nil, err
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}

var errNotOK = errors.New("response status is not 200")

// readResponse reads one response with a Content-Length body (what the bench
// upstream sends) and checks for a 200.
func readResponse(c net.Conn, buf []byte) error {
	n := 0
	for {
		m, err := c.Read(buf[n:])
		n += m
		if end := bytes.Index(buf[:n], []byte("\r\n\r\n")); end >= 0 {
			if !bytes.HasPrefix(buf[:n], []byte("HTTP/1.1 200")) && !bytes.HasPrefix(buf[:n], []byte("HTTP/1.0 200")) {
				return fmt.Errorf("%w: %q", errNotOK, firstLine(string(buf[:min(n, 64)])))
			}
			cl := contentLength(buf[:end])
			if cl < 0 {
				return errors.New("response has no Content-Length")
			}
			rest := n - (end + 4)
			for rest < cl {
				m, err := c.Read(buf)
				rest += m
				if err != nil {
					return fmt.Errorf("read body: %w", err)
				}
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("read head: %w", err)
		}
		if n == len(buf) {
			return errors.New("response head too large")
		}
	}
}

func contentLength(head []byte) int {
	for _, line := range bytes.Split(head, []byte("\r\n")) {
		name, value, ok := bytes.Cut(line, []byte(":"))
		if ok && bytes.EqualFold(bytes.TrimSpace(name), []byte("Content-Length")) {
			n := 0
			for _, b := range bytes.TrimSpace(value) {
				if b < '0' || b > '9' {
					return -1
				}
				n = n*10 + int(b-'0')
			}
			return n
		}
	}
	return -1
}

// Alive counts the connections the proxy has not closed: a non-blocking peek
// finds nothing to read (EAGAIN) on a live idle connection and EOF or an
// error on a closed one.
func (ic *IdleConns) Alive() int {
	alive := 0
	var b [1]byte
	for _, c := range ic.conns {
		sc, ok := c.(syscall.Conn)
		if !ok {
			continue
		}
		raw, err := sc.SyscallConn()
		if err != nil {
			continue
		}
		live := false
		_ = raw.Read(func(fd uintptr) bool {
			_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
			live = errors.Is(err, syscall.EAGAIN)
			return true
		})
		if live {
			alive++
		}
	}
	return alive
}

// Close closes every connection.
func (ic *IdleConns) Close() {
	for _, c := range ic.conns {
		_ = c.Close()
	}
	ic.conns = nil
}
