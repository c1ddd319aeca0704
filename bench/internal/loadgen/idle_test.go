// SPDX-License-Identifier: GPL-3.0-only

package loadgen

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/expressgateway/expressgateway/bench/internal/upstream"
)

func TestOpenIdle(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	go func() { _ = upstream.New().Serve(ln) }()

	ic := OpenIdle(context.Background(), ln.Addr().String(), "/", 50, 8)
	defer ic.Close()
	if ic.Opened != 50 || ic.Failed != 0 || ic.Alive() != 50 {
		t.Fatalf("opened %d, failed %d (%s), alive %d", ic.Opened, ic.Failed, ic.First, ic.Alive())
	}

	bad := OpenIdle(context.Background(), ln.Addr().String(), "/nope", 3, 2)
	defer bad.Close()
	if bad.Opened != 0 || bad.Failed != 3 {
		t.Fatalf("a 404 counted as an idle connection: %+v", bad)
	}
}

func TestAliveSeesClose(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	// A server that answers once and then closes: no connection stays alive.
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, 512)
			_, _ = c.Read(buf)
			_, _ = c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
			_ = c.Close()
		}
	}()
	ic := OpenIdle(context.Background(), ln.Addr().String(), "/", 5, 5)
	defer ic.Close()
	if ic.Opened != 5 {
		t.Fatalf("opened %d: %s", ic.Opened, ic.First)
	}
	deadline := time.Now().Add(2 * time.Second)
	for ic.Alive() != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := ic.Alive(); n != 0 {
		t.Fatalf("%d closed connections counted alive", n)
	}
}
