// SPDX-License-Identifier: GPL-3.0-only

package engine

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// h2Client speaks HTTP/2 with prior knowledge (h2c) and keeps one
// connection.
func h2Client() *http.Client {
	tr := &http.Transport{MaxConnsPerHost: 1}
	tr.Protocols = new(http.Protocols)
	tr.Protocols.SetUnencryptedHTTP2(true)
	return &http.Client{Timeout: 5 * time.Second, Transport: tr}
}

// h2Get fetches url and reports the body, the protocol and whether the
// request went on a connection used before.
func h2Get(t *testing.T, client *http.Client, url string) (body, proto string, reused bool) {
	t.Helper()
	trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused }}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b), resp.Proto, reused
}

// TestReloadRoutesReachOpenH2Connections: after a reload, a new stream on
// an HTTP/2 connection opened before it uses the new routes.
func TestReloadRoutesReachOpenH2Connections(t *testing.T) {
	a, b := namedOrigin(t, "a"), namedOrigin(t, "b")
	addr := freePort(t)
	text := func(cl string) string {
		return httpConfig(2, []string{"web=" + addr + ">" + cl}, []string{"ca=" + a.addr(), "cb=" + b.addr()}, "")
	}
	g := runEngine(t, text("ca"), nil)
	waitListening(t, addr)
	client := h2Client()
	if body, proto, _ := h2Get(t, client, "http://"+addr+"/"); body != "a" || proto != "HTTP/2.0" {
		t.Fatalf("before: %q over %s", body, proto)
	}
	if err := g.reload(t, text("cb")); err != nil {
		t.Fatal(err)
	}
	body, proto, reused := h2Get(t, client, "http://"+addr+"/")
	if body != "b" || proto != "HTTP/2.0" || !reused {
		t.Fatalf("open HTTP/2 connection after the reload: %q over %s (reused %v)", body, proto, reused)
	}
}

// TestReloadRemovedListenerSendsH2GoAway: an HTTP/2 connection of a
// listener a reload removed is told GOAWAY, and closed once the drain
// budget is spent.
func TestReloadRemovedListenerSendsH2GoAway(t *testing.T) {
	a := namedOrigin(t, "a")
	addr, other := freePort(t), freePort(t)
	g := runEngine(t, httpConfig(2, []string{"web=" + addr + ">ca"}, []string{"ca=" + a.addr()}, ""), nil)
	waitListening(t, addr)
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	// The preface and an empty SETTINGS frame: an idle HTTP/2 session.
	if _, err := io.WriteString(c, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00"); err != nil {
		t.Fatal(err)
	}
	// The gateway's SETTINGS: the session is up.
	if err := c.SetReadDeadline(time.Now().Add(3 * time.Second)); err != nil {
		t.Fatal(err)
	}
	var first [9]byte
	if _, err := io.ReadFull(c, first[:]); err != nil || first[3] != 0x4 {
		t.Fatalf("first frame %x, %v", first, err)
	}
	if _, err := io.CopyN(io.Discard, c, int64(first[0])<<16|int64(first[1])<<8|int64(first[2])); err != nil {
		t.Fatal(err)
	}
	if err := g.reload(t, httpConfig(2, []string{"other=" + other + ">ca"}, []string{"ca=" + a.addr()}, "")); err != nil {
		t.Fatal(err)
	}
	// This client never answers the shutdown PING, so the session is
	// closed when the removed listener's drain budget (3 s) is spent.
	if err := c.SetReadDeadline(time.Now().Add(6 * time.Second)); err != nil {
		t.Fatal(err)
	}
	goaway := false
	var hdr [9]byte
	var rerr error
	for {
		if _, rerr = io.ReadFull(c, hdr[:]); rerr != nil {
			break // closed by the gateway
		}
		n := int(hdr[0])<<16 | int(hdr[1])<<8 | int(hdr[2])
		if hdr[3] == 0x7 {
			goaway = true
		}
		if _, rerr = io.CopyN(io.Discard, c, int64(n)); rerr != nil {
			break
		}
	}
	if !goaway {
		t.Fatal("no GOAWAY on the HTTP/2 connection of a removed listener")
	}
	if ne, ok := rerr.(net.Error); ok && ne.Timeout() {
		t.Fatal("the HTTP/2 connection of a removed listener was not closed after its drain budget")
	}
}

// h2cOrigin is an h2c (HTTP/2 without TLS) origin answering with its name;
// closed counts the connections it saw end.
type h2cOrigin struct {
	srv    *httptest.Server
	conns  atomic.Int64
	closed atomic.Int64
}

func newH2COrigin(t *testing.T, name string) *h2cOrigin {
	t.Helper()
	o := &h2cOrigin{}
	o.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = fmt.Fprintf(w, "%s %s", name, r.Proto)
	}))
	o.srv.Config.Protocols = new(http.Protocols)
	o.srv.Config.Protocols.SetHTTP1(true)
	o.srv.Config.Protocols.SetUnencryptedHTTP2(true)
	o.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			o.conns.Add(1)
		case http.StateClosed, http.StateHijacked:
			o.closed.Add(1)
		}
	}
	o.srv.Start()
	t.Cleanup(o.srv.Close)
	return o
}

func (o *h2cOrigin) addr() string { return strings.TrimPrefix(o.srv.URL, "http://") }

// TestReloadClosesH2CConnectionsOfRemovedEndpoints: the pooled h2c
// connections to an endpoint a reload removed are closed, and the next
// request goes to the endpoint that replaced it.
func TestReloadClosesH2CConnectionsOfRemovedEndpoints(t *testing.T) {
	a, b := newH2COrigin(t, "a"), newH2COrigin(t, "b")
	addr := freePort(t)
	text := func(ep string) string {
		return fmt.Sprintf(`[admin]
listen = ""
[engine]
event_loops = 1
[log]
access_log = false
[[listeners]]
name = "web"
listen = %q
[[listeners.routes]]
cluster = "up"
[[clusters]]
name = "up"
protocol = "h2c"
endpoints = [ { address = %q } ]
`, addr, ep)
	}
	g := runEngine(t, text(a.addr()), nil)
	waitListening(t, addr)
	client := &http.Client{Timeout: 5 * time.Second}
	get := func() string {
		t.Helper()
		resp, err := client.Get("http://" + addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		body, _ := io.ReadAll(resp.Body)
		return string(body)
	}
	if body := get(); body != "a HTTP/2.0" {
		t.Fatalf("before: %q", body)
	}
	if a.conns.Load() != 1 || a.closed.Load() != 0 {
		t.Fatalf("endpoint a: %d connections, %d closed", a.conns.Load(), a.closed.Load())
	}
	if err := g.reload(t, text(b.addr())); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for a.closed.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the pooled h2c connection to the removed endpoint is still open")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if body := get(); body != "b HTTP/2.0" {
		t.Fatalf("after: %q", body)
	}
}
