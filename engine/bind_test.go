// SPDX-License-Identifier: GPL-3.0-only

package engine

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/rs/zerolog"

	"github.com/expressgateway/expressgateway/conf"
)

// TestDispatchByExactAddress: an http listener on 127.0.0.2:P beside tcp and
// udp listeners on localhost:P (127.0.0.1:P). Each connection goes to the
// listener whose socket accepted it; dispatch by port would relay the HTTP
// connections raw to the tcp cluster.
func TestDispatchByExactAddress(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "http ok") })
	tcpBack := tcpBackend(t, namedEcho("tcp"))
	udpBack := udpBackend(t, "udp", nil)
	_, port, _ := net.SplitHostPort(freePort(t))
	startL4(t, 2, fmt.Sprintf(`
[[listeners]]
name = "web"
listen = "127.0.0.2:%[1]s"
[[listeners.routes]]
cluster = "app"
[[listeners]]
name = "raw"
listen = "localhost:%[1]s"
protocol = "tcp"
cluster = "rawc"
[[listeners]]
name = "dgram"
listen = "localhost:%[1]s"
protocol = "udp"
cluster = "udpc"
[[clusters]]
name = "app"
endpoints = [ { address = %[2]q } ]
[[clusters]]
name = "rawc"
endpoints = [ { address = %[3]q } ]
[[clusters]]
name = "udpc"
endpoints = [ { address = %[4]q } ]
`, port, o.addr(), tcpBack, udpBack))
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for i := range 8 { // several connections: both loops
		resp, err := client.Get("http://127.0.0.2:" + port + "/")
		if err != nil {
			t.Fatalf("http %d: %v", i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if string(body) != "http ok" {
			t.Fatalf("http %d: %d %q", i, resp.StatusCode, body)
		}
		r := bufio.NewReader(dialTCP(t, "127.0.0.1:"+port))
		if name, err := r.ReadString('\n'); err != nil || name != "tcp\n" {
			t.Fatalf("tcp %d: %q, %v", i, name, err)
		}
	}
	if got := udpAsk(t, dialUDP(t, "127.0.0.1:"+port), "x", 2*time.Second); got != "udp|x" {
		t.Errorf("udp: %q", got)
	}
}

// TestBindFailureIsReported: a port taken by another socket fails Serve with
// an error naming the listener, and Ready never reports success.
func TestBindFailureIsReported(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = held.Close() }()
	text := fmt.Sprintf(`
[admin]
listen = ""
[engine]
event_loops = 2
[[listeners]]
name = "free"
listen = %q
[[listeners.routes]]
cluster = "app"
[[listeners]]
name = "taken"
listen = %q
protocol = "tcp"
cluster = "app"
[[clusters]]
name = "app"
endpoints = [ { address = "127.0.0.1:9" } ]
`, freePort(t), held.Addr().String())
	snap, err := conf.Parse("test.toml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	set := metrics.NewSet()
	cl, err := NewClusters(snap, set, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	eng, err := New(Options{Snapshot: snap, Log: zerolog.Nop(), Metrics: NewMetrics(set), Clusters: cl})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- eng.Serve() }()
	berr := eng.Bound()
	if berr == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = eng.Stop(ctx)
		t.Fatal("Bound() = nil with the port taken")
	}
	want := "listener taken: tcp " + held.Addr().String() + ": bind: address already in use"
	if berr.Error() != want {
		t.Errorf("Bound() = %q, want %q", berr, want)
	}
	select {
	case serr := <-done:
		if serr == nil || !strings.Contains(serr.Error(), "listener taken") {
			t.Errorf("Serve() = %v", serr)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
	}
}
