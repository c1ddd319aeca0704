// SPDX-License-Identifier: GPL-3.0-only

package engine

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

func TestDrainFinishesInFlightAndClosesIdle(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(400 * time.Millisecond)
		}
		_, _ = io.WriteString(w, r.URL.Path)
	})
	g := startGW(t, []string{o.addr()}, "", "", nil)
	idle := dialRaw(t, g.addr)
	idle.send(t, "GET /warm HTTP/1.1\r\nHost: x\r\n\r\n")
	idle.readResponse(t, "GET")
	busy := dialRaw(t, g.addr)
	busy.send(t, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
	for o.requests.Load() < 2 {
		time.Sleep(5 * time.Millisecond)
	}

	drained := make(chan int, 1)
	start := time.Now()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		drained <- g.eng.Drain(ctx)
	}()

	if !idle.closedByPeer(time.Second) {
		t.Fatal("idle keep-alive connection not closed while draining")
	}
	resp, body := busy.readResponse(t, "GET")
	if resp.StatusCode != 200 || body != "/slow" || !resp.Close {
		t.Fatalf("in-flight request: %d %q close=%v", resp.StatusCode, body, resp.Close)
	}
	if c, err := net.DialTimeout("tcp", g.addr, time.Second); err == nil {
		if err := c.SetReadDeadline(time.Now().Add(time.Second)); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatal("a new connection was served while draining")
		}
		_ = c.Close()
	}
	select {
	case left := <-drained:
		if left != 0 {
			t.Fatalf("%d connections left", left)
		}
	case <-time.After(4 * time.Second):
		t.Fatal("Drain did not return")
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("drain took %v", el)
	}
}

func TestDrainBudgetSpent(t *testing.T) {
	o := echoOrigin(t)
	g := startGW(t, []string{o.addr()}, "", "", nil)
	c := dialRaw(t, g.addr)
	c.send(t, "GET / HTTP/1.1\r\nHost: x\r\n") // a head that never ends
	time.Sleep(50 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if left := g.eng.Drain(ctx); left != 1 {
		t.Fatalf("Drain reported %d connections left, want 1", left)
	}
	if n := g.metric("expressgateway_shutdown_aborted_connections_total"); n != 1 {
		t.Fatalf("expressgateway_shutdown_aborted_connections_total = %v, want 1", n)
	}
}

// While draining, a tcp listener refuses new connections too (a pair that
// is open runs to its end), so the drain cannot be kept alive by newcomers.
func TestDrainRefusesNewL4Connections(t *testing.T) {
	addr := freePort(t)
	g := startL4(t, 1, tcpListenerTOML(addr, []string{tcpBackend(t, namedEcho("a"))}, ""))
	open := dialTCP(t, addr)
	if name, err := bufio.NewReader(open).ReadString('\n'); err != nil || name != "a\n" {
		t.Fatalf("greeting %q, %v", name, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	drained := make(chan int, 1)
	go func() { drained <- g.eng.Drain(ctx) }()
	time.Sleep(100 * time.Millisecond) // Drain has set the engine draining
	// The listening socket is closed while draining, so the connect is
	// refused; a connection the kernel still accepted must not be relayed.
	if late, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		if err := late.SetReadDeadline(time.Now().Add(time.Second)); err != nil {
			t.Fatal(err)
		}
		if n, err := late.Read(make([]byte, 16)); err == nil {
			t.Fatalf("a tcp connection opened while draining was relayed (%d bytes)", n)
		}
		_ = late.Close()
	}
	if left := <-drained; left != 1 {
		t.Fatalf("Drain left %d connections, want the 1 pair open before it", left)
	}
}
