// SPDX-License-Identifier: GPL-3.0-only

package engine

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"runtime"
	"testing"
	"time"
)

// fixedOrigin answers every request on a connection with the same 64-byte
// response, without allocating per request (so that allocation counts of
// the process are the gateway's).
func fixedOrigin(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Length: 64\r\n\r\n" + string(bytes.Repeat([]byte("x"), 64)))
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer func() { _ = c.Close() }()
				buf := make([]byte, 64<<10)
				have := 0
				for {
					n, err := c.Read(buf[have:])
					if err != nil {
						return
					}
					have += n
					for {
						i := bytes.Index(buf[:have], []byte("\r\n\r\n"))
						if i < 0 {
							break
						}
						if _, err := c.Write(resp); err != nil {
							return
						}
						have = copy(buf, buf[i+4:have])
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// keepAliveRound sends n GETs on c one after the other, reading each
// 64-byte response, with preallocated buffers.
func keepAliveRound(t testing.TB, c net.Conn, br *bufio.Reader, n int) {
	req := []byte("GET /a HTTP/1.1\r\nHost: bench\r\nUser-Agent: alloc-test\r\n\r\n")
	body := make([]byte, 64)
	for i := 0; i < n; i++ {
		if _, err := c.Write(req); err != nil {
			t.Fatal(err)
		}
		for {
			line, err := br.ReadSlice('\n')
			if err != nil {
				t.Fatal(err)
			}
			if len(line) == 2 {
				break
			}
		}
		if _, err := io.ReadFull(br, body); err != nil {
			t.Fatal(err)
		}
	}
}

// TestH1SteadyStateAllocations: a keep-alive HTTP/1.1 request through the
// engine allocates nothing in steady state (the whole process is counted:
// the client and the origin here allocate nothing per request either).
func TestH1SteadyStateAllocations(t *testing.T) {
	for _, accessLog := range []bool{false, true} {
		t.Run(map[bool]string{false: "access log off", true: "access log on"}[accessLog], func(t *testing.T) {
			steadyStateAllocs(t, accessLog)
		})
	}
}

func steadyStateAllocs(t *testing.T, accessLog bool) {
	extra := ""
	if accessLog {
		extra = "access_log = true"
	}
	g := startGWLoops(t, 1, []string{fixedOrigin(t)}, extra, "", nil)
	c, err := net.Dial("tcp", g.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReaderSize(c, 4096)
	keepAliveRound(t, c, br, 2000) // warm: pools, scratch buffers, maps
	const n = 5000
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	keepAliveRound(t, c, br, n)
	runtime.ReadMemStats(&after)
	per := float64(after.Mallocs-before.Mallocs) / n
	t.Logf("%.3f allocations per request over %d requests", per, n)
	// The 50 ms sweep and the runtime allocate a little over time; a
	// per-request allocation would show as ≥ 1.
	if per >= 0.5 {
		t.Fatalf("%.3f allocations per request, want 0 in steady state", per)
	}
}

// BenchmarkH1KeepAlive measures one keep-alive request through the
// in-process engine (client, engine and origin share the machine: compare
// runs, not absolute numbers).
func BenchmarkH1KeepAlive(b *testing.B) {
	g := startGWLoops(b, 1, []string{fixedOrigin(b)}, "", "", nil)
	c, err := net.Dial("tcp", g.addr)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	br := bufio.NewReaderSize(c, 4096)
	keepAliveRound(b, c, br, 1000)
	b.ReportAllocs()
	b.ResetTimer()
	keepAliveRound(b, c, br, b.N)
}
