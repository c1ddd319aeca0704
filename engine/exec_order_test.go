// SPDX-License-Identifier: GPL-3.0-only

package engine

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"
)

// TestExecKeepsOrder: the goroutines that hand work to a loop (an HTTP/3
// stream's reader posting request DATA, an HTTP/3 upstream's reader
// posting response DATA, the TLS and pump readers) post one chunk after
// another without waiting, and rely on the loop running them in the order
// posted. gnet's Execute does not promise that: past 1024 queued tasks it
// puts new ones on a second queue that runs after the first is drained,
// and a task posted while the first drains runs ahead of older ones there.
// A loop busy enough to queue that many would reorder a stream's body.
// Here 8 producers post 4,000 numbered tasks each to a loop that is held
// for 30 ms first while they keep posting for longer; every producer's tasks
// must run in the order posted.
func TestExecKeepsOrder(t *testing.T) {
	g := startGWLoops(t, 1, []string{"127.0.0.1:9"}, "", "", nil)
	lp := firstLoop(t, g)

	const producers, each = 8, 4000
	last := make([]int, producers) // loop only
	for i := range last {
		last[i] = -1
	}
	var wrong, ran int // loop only
	var wg sync.WaitGroup
	wg.Add(producers * each)
	if !lp.exec("test", func() { time.Sleep(30 * time.Millisecond) }) {
		t.Fatal("loop gone")
	}
	var start sync.WaitGroup
	start.Add(1)
	for p := 0; p < producers; p++ {
		go func() {
			start.Wait()
			for i := 0; i < each; i++ {
				if i%10 == 9 {
					// Paced, so that tasks are still being posted while
					// the loop works through the backlog.
					time.Sleep(100 * time.Microsecond)
				}
				ok := lp.exec("test", func() {
					defer wg.Done()
					if i != last[p]+1 {
						wrong++
					}
					last[p] = i
					ran++
					// Slower than the producers, so that the queue stays long.
					for t0 := time.Now(); time.Since(t0) < 2*time.Microsecond; {
					}
				})
				if !ok {
					t.Error("loop gone")
					for ; i < each; i++ {
						wg.Done()
					}
					return
				}
			}
		}()
	}
	start.Done()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("the loop did not run every task")
	}
	// Read the loop's counters on the loop.
	res := make(chan [2]int, 1)
	lp.exec("test", func() { res <- [2]int{wrong, ran} })
	r := <-res
	if r[1] != producers*each {
		t.Fatalf("ran %d tasks, want %d", r[1], producers*each)
	}
	if r[0] != 0 {
		t.Fatalf("%d of %d tasks ran out of their producer's order", r[0], producers*each)
	}
}

// firstLoop is g's first event loop, once a connection made its state.
func firstLoop(t *testing.T, g *gw) *loop {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; {
		if time.Now().After(deadline) {
			t.Fatal("no loop")
		}
		// A connection makes the loop's state (OnOpen).
		if c, err := net.Dial("tcp", g.addr); err == nil {
			_ = c.Close()
		}
		time.Sleep(10 * time.Millisecond)
		g.eng.loopsMu.Lock()
		var lp *loop
		if len(g.eng.loopsList) > 0 {
			lp = g.eng.loopsList[0]
		}
		g.eng.loopsMu.Unlock()
		if lp != nil {
			return lp
		}
	}
}

// TestTLSOpenAfterFirstDelivery: a TLS connection's first plaintext is
// handed to the loop by its reader (Execute), its open by the handshake
// goroutine (exec) before the reader starts. gnet may still run the
// delivery first (it reorders past 1,024 waiting tasks); the bytes then
// wait in the connection's buffer, and no further delivery comes for
// them: the open must read them, or the request stalls until the
// slow-loris 408.
func TestTLSOpenAfterFirstDelivery(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	g := startGWLoops(t, 1, []string{o.Listener.Addr().String()}, "", "", nil)
	lp := firstLoop(t, g)
	g.eng.lmu.Lock()
	slot := g.eng.slots["web"]
	g.eng.lmu.Unlock()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = client.Close() }()
	sc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	// The client side of the "TLS" connection is plain TCP here: the
	// actor reads and writes it as it would a *tls.Conn.
	tc := sc.(*net.TCPConn)
	tconn := newTLSConn(lp, tc, tc.LocalAddr(), tc.RemoteAddr(), time.Second)
	a := &tlsAccepted{slot: slot, ip: addrIP(tc.RemoteAddr()), peer: addrPort(tc.RemoteAddr()), local: addrPort(tc.LocalAddr()),
		info: &tlsInfo{version: "1.3", alpn: "http/1.1"}, release: func() {}}
	if !lp.exec("test", func() {
		tconn.mu.Lock()
		tconn.pend = append(tconn.pend, "GET /first HTTP/1.1\r\nHost: a\r\n\r\n"...)
		tconn.queued = true
		tconn.mu.Unlock()
		tconn.deliver() // before the open: no session reads it yet
		g.eng.openTLSSession(tconn, a)
	}) {
		t.Fatal("loop gone")
	}
	go tconn.start()
	_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(client), nil)
	if err != nil {
		t.Fatalf("no response to the request delivered before the open: %v", err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64))
	if resp.StatusCode != 200 || string(body) != "ok" {
		t.Fatalf("response %d %q", resp.StatusCode, body)
	}
}
