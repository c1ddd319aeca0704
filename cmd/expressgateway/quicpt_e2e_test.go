// SPDX-License-Identifier: GPL-3.0-only

package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

// quicPTBackend is a quic-go HTTP/3 server (its default 4-byte connection
// IDs) answering "name remote-addr".
func quicPTBackend(t *testing.T, name string, cert tls.Certificate) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http3.Server{
		TLSConfig: http3.ConfigureTLSConfig(&tls.Config{Certificates: []tls.Certificate{cert}}),
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = fmt.Fprintf(w, "%s %s", name, r.RemoteAddr)
		}),
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(pc) }()
	t.Cleanup(func() { _ = srv.Close(); _ = pc.Close(); <-done })
	return pc.LocalAddr().String()
}

// rebinder relays one client's datagrams to target from an outer socket
// that rebind replaces: a NAT that forgot its mapping.
type rebinder struct {
	inner  *net.UDPConn
	target *net.UDPAddr
	mu     sync.Mutex
	outer  *net.UDPConn
	client *net.UDPAddr
}

func newRebinder(t *testing.T, target string) *rebinder {
	t.Helper()
	inner, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	ta, _ := net.ResolveUDPAddr("udp", target)
	r := &rebinder{inner: inner, target: ta}
	r.rebind(t)
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, from, err := inner.ReadFromUDP(buf)
			if err != nil {
				return
			}
			r.mu.Lock()
			r.client = from
			out := r.outer
			r.mu.Unlock()
			_, _ = out.WriteToUDP(buf[:n], ta)
		}
	}()
	t.Cleanup(func() {
		_ = inner.Close()
		r.mu.Lock()
		_ = r.outer.Close()
		r.mu.Unlock()
	})
	return r
}

func (r *rebinder) rebind(t *testing.T) {
	t.Helper()
	outer, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	if r.outer != nil {
		_ = r.outer.Close()
	}
	r.outer = outer
	r.mu.Unlock()
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, err := outer.Read(buf)
			if err != nil {
				return
			}
			r.mu.Lock()
			c := r.client
			r.mu.Unlock()
			if c != nil {
				_, _ = r.inner.WriteToUDP(buf[:n], c)
			}
		}
	}()
}

// TestQUICPassthroughBinary runs a quic-passthrough listener in the binary
// in front of three quic-go HTTP/3 servers: HTTP/3 terminates on the
// backends, each connection stays on one backend, connections spread; a
// connection whose client address changes twice (NAT rebinding) keeps its
// backend; garbage beside it is counted; and the scrape exports the QUIC
// passthrough families as METRICS.md lists them.
func TestQUICPassthroughBinary(t *testing.T) {
	ca := newTestCA(t, "qp")
	certFile, keyFile, _ := ca.issue(t, "a", "a.test", leafOpts{dns: []string{"a.test"}})
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	var eps []string
	for _, n := range []string{"a", "b", "c"} {
		eps = append(eps, fmt.Sprintf("{ address = %q }", quicPTBackend(t, n, cert)))
	}
	lis, admin := freeUDPAddr(t), freeAddr(t)
	startBinary(t, fmt.Sprintf(`
[admin]
listen = %q
[engine]
event_loops = 2
[log]
access_log = false
[[listeners]]
name = "quic-lb"
listen = %q
protocol = "quic-passthrough"
cluster = "h3-backends"
[[clusters]]
name = "h3-backends"
lb = "maglev"
endpoints = [ %s ]
`, admin, lis, strings.Join(eps, ", ")), admin)
	waitReady(t, admin)

	client := func(dial string) *http.Client {
		tr := &http3.Transport{
			TLSClientConfig: &tls.Config{RootCAs: ca.pool, ServerName: "a.test"},
			Dial: func(ctx context.Context, _ string, tlsCfg *tls.Config, cfg *quic.Config) (*quic.Conn, error) {
				return quic.DialAddr(ctx, dial, tlsCfg, cfg)
			},
		}
		t.Cleanup(func() { _ = tr.Close() })
		return &http.Client{Timeout: 10 * time.Second, Transport: tr}
	}
	ask := func(c *http.Client) string {
		t.Helper()
		resp, err := c.Get("https://a.test/")
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || resp.Proto != "HTTP/3.0" {
			t.Fatalf("%d %s %q", resp.StatusCode, resp.Proto, b)
		}
		return string(b)
	}

	seen := map[string]int{}
	for i := range 9 {
		c := client(lis)
		first := ask(c)
		for range 2 {
			if got := ask(c); got != first {
				t.Fatalf("connection %d: %q, then %q", i, first, got)
			}
		}
		seen[strings.Fields(first)[0]]++
	}
	t.Logf("9 connections: %v", seen)
	if len(seen) < 2 {
		t.Errorf("connections reached %d backends", len(seen))
	}

	nat := newRebinder(t, lis)
	c := client(nat.inner.LocalAddr().String())
	first := ask(c)
	junk, err := net.Dial("udp", lis)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = junk.Close() }()
	for i := range 2 {
		nat.rebind(t)
		for j := range 20 {
			d := make([]byte, 1+j*3)
			_, _ = rand.Read(d)
			_, _ = junk.Write(d)
		}
		if got := ask(c); got != first {
			t.Fatalf("after rebinding %d: %q, before %q", i+1, got, first)
		}
	}

	m := scrape(t, admin)
	checkScrapeAgainstDoc(t, m, metricsDoc(t), func(d docFamily) bool { return d.section == "QUIC passthrough" })
	if v := metricValue(m, `expressgateway_quic_passthrough_flows_total{listener="quic-lb"}`); v != 10 {
		t.Errorf("flows_total = %v, want 10", v)
	}
	if v := metricValue(m, `expressgateway_quic_passthrough_migrations_total{listener="quic-lb"}`); v != 2 {
		t.Errorf("migrations = %v, want 2", v)
	}
	drops := 0.0
	for _, r := range []string{"truncated", "garbage", "unknown_cid"} {
		drops += metricValue(m, fmt.Sprintf(`expressgateway_quic_passthrough_drops_total{listener="quic-lb",reason=%q}`, r))
	}
	if drops < 38 {
		t.Errorf("drops = %v of 40 junk datagrams", drops)
	}
}
