// SPDX-License-Identifier: GPL-3.0-only

package engine

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestHTTPMeasure prints the rate and CPU per request of HTTP/1.1 through
// the engine on keep-alive connections and with a new connection per
// request. Everything runs in this process (clients and origin too):
// compare builds, not absolute values. Set EG_HTTP_MEASURE=1 to run it.
func TestHTTPMeasure(t *testing.T) {
	if os.Getenv("EG_HTTP_MEASURE") == "" {
		t.Skip("set EG_HTTP_MEASURE=1 to measure")
	}
	o := newOrigin(t, func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	g := startGWLoops(t, runtime.NumCPU(), []string{o.addr()}, "max_connections_per_ip = 0", "", nil)
	const dur = 3 * time.Second
	for _, keepAlive := range []bool{true, false} {
		var n atomic.Int64
		var wg sync.WaitGroup
		stop := time.Now().Add(dur)
		cpu0 := cpuTime()
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var c net.Conn
				var r *bufio.Reader
				for time.Now().Before(stop) {
					if c == nil {
						var err error
						if c, err = net.Dial("tcp", g.addr); err != nil {
							continue
						}
						r = bufio.NewReader(c)
					}
					req := "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
					if !keepAlive {
						req = "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
					}
					if _, err := io.WriteString(c, req); err != nil {
						_ = c.Close()
						c = nil
						continue
					}
					resp, err := http.ReadResponse(r, nil)
					if err == nil {
						_, _ = io.Copy(io.Discard, resp.Body)
						_ = resp.Body.Close()
						n.Add(1)
					}
					if err != nil || !keepAlive {
						_ = c.Close()
						c = nil
					}
				}
				if c != nil {
					_ = c.Close()
				}
			}()
		}
		wg.Wait()
		cpu := cpuTime() - cpu0
		t.Logf("keep-alive=%-5v %8.0f req/s  %5.1f CPU-µs/req (whole process)", keepAlive, float64(n.Load())/dur.Seconds(), cpu.Seconds()*1e6/float64(n.Load()))
	}
}
