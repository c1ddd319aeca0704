// SPDX-License-Identifier: GPL-3.0-only

package loadgen

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

func TestWSEchoAndIdle(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	up := websocket.Upgrader{}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer func() { _ = c.Close() }()
		for {
			mt, m, err := c.ReadMessage()
			if err != nil || c.WriteMessage(mt, m) != nil {
				return
			}
		}
	})}
	go func() { _ = srv.Serve(ln) }()
	defer func() { _ = srv.Close() }()
	r := WSEcho(context.Background(), "ws://"+ln.Addr().String()+"/ws", Options{Duration: 300 * time.Millisecond, Connections: 4, Timeout: time.Second}, 64)
	if r.Requests == 0 || r.Errors() != 0 || r.Non2xx != 0 || r.P50 <= 0 || r.P50 > r.Max || r.Bytes != r.Requests*64 {
		t.Fatalf("%+v", r)
	}
	ic := OpenIdleWebSocket(context.Background(), ln.Addr().String(), "/ws", 20, 4)
	defer ic.Close()
	if ic.Opened != 20 || ic.Failed != 0 || ic.Alive() != 20 {
		t.Fatalf("opened %d failed %d (%s) alive %d", ic.Opened, ic.Failed, ic.First, ic.Alive())
	}
	if ic := OpenIdleWebSocket(context.Background(), "127.0.0.1:1", "/ws", 1, 1); ic.Failed != 1 {
		t.Fatalf("a refused dial counted %+v", ic)
	}
}
