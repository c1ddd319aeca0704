// SPDX-License-Identifier: GPL-3.0-only

package loadgen

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// WSEcho is the WebSocket load: o.Connections clients each open one
// WebSocket to url (ws://...) and send msgSize-byte binary messages, one in
// flight, reading each echo, for o.Duration. A request is one echoed
// message; latencies are per message.
func WSEcho(ctx context.Context, url string, o Options, msgSize int) Result {
	var (
		mu   sync.Mutex
		lats []time.Duration
		res  Result
		wg   sync.WaitGroup
	)
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second, ReadBufferSize: 4 << 10, WriteBufferSize: 4 << 10}
	start := time.Now()
	deadline := start.Add(o.Duration)
	for range max(o.Connections, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var local []time.Duration
			var errs Result
			defer func() {
				mu.Lock()
				lats = append(lats, local...)
				res.ConnectErrors += errs.ConnectErrors
				res.ReadErrors += errs.ReadErrors
				res.WriteErrors += errs.WriteErrors
				res.Timeouts += errs.Timeouts
				res.Non2xx += errs.Non2xx
				mu.Unlock()
			}()
			c, resp, err := d.DialContext(ctx, url, nil)
			if err != nil {
				if resp != nil {
					errs.Non2xx++
				} else {
					errs.ConnectErrors++
				}
				return
			}
			defer func() { _ = c.Close() }()
			msg := make([]byte, msgSize)
			for time.Now().Before(deadline) && ctx.Err() == nil {
				t0 := time.Now()
				_ = c.SetWriteDeadline(t0.Add(max(o.Timeout, time.Second)))
				if err := c.WriteMessage(websocket.BinaryMessage, msg); err != nil {
					errs.WriteErrors++
					return
				}
				_ = c.SetReadDeadline(t0.Add(max(o.Timeout, time.Second)))
				if _, got, err := c.ReadMessage(); err != nil || len(got) != msgSize {
					if ne, ok := err.(net.Error); ok && ne.Timeout() {
						errs.Timeouts++
					} else {
						errs.ReadErrors++
					}
					return
				}
				local = append(local, time.Since(t0))
			}
		}()
	}
	wg.Wait()
	res.Duration = time.Since(start)
	res.Requests = uint64(len(lats))
	res.Bytes = res.Requests * uint64(msgSize)
	if res.Duration > 0 {
		res.RPS = float64(res.Requests) / res.Duration.Seconds()
	}
	if len(lats) > 0 {
		slices.Sort(lats)
		at := func(q float64) time.Duration { return lats[min(int(q*float64(len(lats))), len(lats)-1)] }
		res.P50, res.P90, res.P99, res.P999, res.Max = at(0.50), at(0.90), at(0.99), at(0.999), lats[len(lats)-1]
	}
	return res
}

// OpenIdleWebSocket is OpenIdle for WebSocket tunnels: each connection
// completes an upgrade handshake on path (101) and then sits idle, holding
// whatever the proxy keeps per tunnel.
func OpenIdleWebSocket(ctx context.Context, addr, path string, n, parallel int) *IdleConns {
	req := []byte("GET " + path + " HTTP/1.1\r\nHost: bench\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	return openIdle(ctx, addr, req, n, parallel, read101)
}

// read101 reads a response head and checks for a 101.
func read101(c net.Conn, _ []byte) error {
	resp, err := http.ReadResponse(bufio.NewReaderSize(c, 512), nil)
	if err != nil {
		return fmt.Errorf("read head: %w", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return fmt.Errorf("status %d, want 101", resp.StatusCode)
	}
	return nil
}
