// SPDX-License-Identifier: GPL-3.0-only

package engine

import (
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestL4Measure prints figures for the userspace TCP relay: request/response
// rate and CPU per request (direct, through the gateway, and through a
// goroutine-per-direction io.Copy proxy for comparison), bulk throughput,
// and memory per session. Everything runs in this process, so CPU figures
// include the load generator and the backend: compare the rows, not the
// absolute values. Not a timed test: set EG_L4_MEASURE=1 to run it.
func TestL4Measure(t *testing.T) {
	if os.Getenv("EG_L4_MEASURE") == "" {
		t.Skip("set EG_L4_MEASURE=1 to measure")
	}
	echo := tcpBackend(t, func(c *net.TCPConn) {
		_ = c.SetDeadline(time.Time{})
		_, _ = io.Copy(c, c)
	})
	gwAddr := freePort(t)
	startL4(t, runtime.NumCPU(), tcpListenerTOML(gwAddr, []string{echo}, "max_connections_per_ip = 0"))
	goAddr := goProxy(t, echo)

	const conns, dur = 50, 3 * time.Second
	if os.Getenv("EG_L4_MEASURE") == "connect" {
		// For a profile of the gateway's connection setup alone.
		n, cpu := connPerRequest(t, gwAddr, 16, 64, 2*dur)
		t.Logf("conn/request gateway %8.0f req/s  %5.1f CPU-µs/req (whole process)", float64(n)/dur.Seconds()/2, cpu.Seconds()*1e6/float64(n))
		return
	}
	for round := range 2 {
		for _, tc := range []struct{ name, addr string }{{"direct", echo}, {"gateway", gwAddr}, {"go io.Copy proxy", goAddr}} {
			n, cpu := pingPong(t, tc.addr, conns, 64, dur)
			t.Logf("round %d %-17s %8.0f req/s  %5.1f CPU-µs/req (whole process)", round, tc.name, float64(n)/dur.Seconds(), cpu.Seconds()*1e6/float64(n))
		}
	}

	for _, tc := range []struct{ name, addr string }{{"direct", echo}, {"gateway", gwAddr}, {"go io.Copy proxy", goAddr}} {
		n, cpu := connPerRequest(t, tc.addr, 16, 64, dur)
		t.Logf("conn/request %-17s %8.0f req/s  %5.1f CPU-µs/req (whole process)", tc.name, float64(n)/dur.Seconds(), cpu.Seconds()*1e6/float64(n))
	}
	sink := tcpBackend(t, func(c *net.TCPConn) {
		_ = c.SetDeadline(time.Time{})
		_, _ = io.Copy(io.Discard, c)
	})
	gwSink := freePort(t)
	startL4(t, runtime.NumCPU(), tcpListenerTOML(gwSink, []string{sink}, "max_connections_per_ip = 0"))
	goSink := goProxy(t, sink)
	for _, tc := range []struct{ name, addr string }{{"direct", sink}, {"gateway", gwSink}, {"go io.Copy proxy", goSink}} {
		const size = 2 << 30
		c := dialTCP(t, tc.addr)
		_ = c.SetDeadline(time.Time{})
		start, cpu0 := time.Now(), cpuTime()
		if _, err := io.CopyN(c, zeroReader{}, size); err != nil {
			t.Fatal(err)
		}
		el, cpu := time.Since(start), cpuTime()-cpu0
		t.Logf("bulk %-17s %6.0f MiB/s  %4.2f CPU-s/GiB", tc.name, size/el.Seconds()/(1<<20), cpu.Seconds()/(size>>30))
		_ = c.Close()
	}

	// Memory per session: idle pairs on the loop, then pairs off the loop.
	for _, tc := range []struct{ name, addr string }{{"direct", echo}, {"gateway (on loop)", gwAddr}} {
		const n = 2000
		before := memNow()
		var cs []net.Conn
		for range n {
			c, err := net.Dial("tcp", tc.addr)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Write([]byte("x")); err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
				t.Fatal(err)
			}
			cs = append(cs, c)
		}
		after := memNow()
		t.Logf("%d idle sessions %-17s heap+stacks %+6.1f KiB/session, RSS %+6.1f KiB/session",
			n, tc.name, float64(after.heapStacks-before.heapStacks)/n/1024, float64(after.rss-before.rss)/n/1024)
		for _, c := range cs {
			_ = c.Close()
		}
		time.Sleep(200 * time.Millisecond)
	}
	{
		const n = 200
		flood := tcpBackend(t, func(c *net.TCPConn) {
			_ = c.SetDeadline(time.Time{})
			_, _ = io.Copy(c, zeroReader{}) // until the client goes away
		})
		gwFlood := freePort(t)
		startL4(t, runtime.NumCPU(), tcpListenerTOML(gwFlood, []string{flood}, "max_connections_per_ip = 0"))
		for _, tc := range []struct{ name, addr string }{{"direct", flood}, {"gateway (off loop)", gwFlood}} {
			before := memNow()
			var cs []net.Conn
			for range n {
				c, err := net.Dial("tcp", tc.addr)
				if err != nil {
					t.Fatal(err)
				}
				cs = append(cs, c) // never read: every pair stalls with full buffers
			}
			time.Sleep(time.Second)
			after := memNow()
			t.Logf("%d stalled 'slow reader' sessions %-18s heap+stacks %+6.1f KiB/session, RSS %+6.1f KiB/session",
				n, tc.name, float64(after.heapStacks-before.heapStacks)/n/1024, float64(after.rss-before.rss)/n/1024)
			for _, c := range cs {
				_ = c.Close()
			}
			time.Sleep(300 * time.Millisecond)
		}
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

type memFigures struct{ heapStacks, rss int64 }

func memNow() memFigures {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	b, _ := os.ReadFile("/proc/self/statm")
	var size, res int64
	_, _ = fmt.Sscan(string(b), &size, &res)
	return memFigures{heapStacks: int64(m.HeapInuse + m.StackInuse), rss: res * int64(os.Getpagesize())}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// pingPong runs conns connections each doing size-byte request/response
// exchanges for dur; it returns the exchanges done and the CPU used.
func pingPong(t *testing.T, addr string, conns, size int, dur time.Duration) (int64, time.Duration) {
	t.Helper()
	var total atomic.Int64
	var wg sync.WaitGroup
	stop := time.Now().Add(dur)
	cpu0 := cpuTime()
	for range conns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { _ = c.Close() }()
			buf := make([]byte, size)
			n := int64(0)
			for time.Now().Before(stop) {
				if _, err := c.Write(buf); err != nil {
					return
				}
				if _, err := io.ReadFull(c, buf); err != nil {
					return
				}
				n++
			}
			total.Add(n)
		}()
	}
	wg.Wait()
	return total.Load(), cpuTime() - cpu0
}

// connPerRequest is pingPong with a new connection per exchange.
func connPerRequest(t *testing.T, addr string, conns, size int, dur time.Duration) (int64, time.Duration) {
	t.Helper()
	var total atomic.Int64
	var wg sync.WaitGroup
	stop := time.Now().Add(dur)
	cpu0 := cpuTime()
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, size)
			n := int64(0)
			for time.Now().Before(stop) {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Error(err)
					return
				}
				_, err = c.Write(buf)
				if err == nil {
					_, err = io.ReadFull(c, buf)
				}
				_ = c.Close()
				if err != nil {
					t.Error(err)
					return
				}
				n++
			}
			total.Add(n)
		}()
	}
	wg.Wait()
	return total.Load(), cpuTime() - cpu0
}

// goProxy is the classic Go relay: a goroutine per direction with io.Copy
// (splice on Linux) and CloseWrite, for comparison.
func goProxy(t *testing.T, backend string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				u, err := net.Dial("tcp", backend)
				if err != nil {
					_ = c.Close()
					return
				}
				done := make(chan struct{})
				go func() {
					_, _ = io.Copy(u, c)
					_ = u.(*net.TCPConn).CloseWrite()
					close(done)
				}()
				_, _ = io.Copy(c, u)
				_ = c.(*net.TCPConn).CloseWrite()
				<-done
				_ = c.Close()
				_ = u.Close()
			}()
		}
	}()
	return ln.Addr().String()
}
