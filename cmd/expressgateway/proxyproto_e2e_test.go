// SPDX-License-Identifier: GPL-3.0-only

package main

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/expressgateway/expressgateway/codecs/proxyproto"
)

// proxyOrigin accepts connections that open with a PROXY header (the
// cluster's proxy_protocol), then serves HTTP/1.1 requests on them,
// answering with the header's source, the connection's number and
// X-Forwarded-For. raw makes it a tcp echo that answers the source and
// then echoes.
func proxyOrigin(t *testing.T, raw bool) (addr string, conns *atomic.Int64) {
	t.Helper()
	conns = new(atomic.Int64)
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
			n := conns.Add(1)
			go func() {
				defer func() { _ = c.Close() }()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				br := bufio.NewReader(c)
				peek, _ := br.Peek(16)
				hl := 16
				if len(peek) > 0 && peek[0] == 'P' {
					line, _ := br.Peek(107)
					hl = strings.Index(string(line), "\r\n") + 2
				} else if len(peek) == 16 {
					hl = 16 + int(peek[14])<<8 + int(peek[15])
				}
				hdr, err := br.Peek(hl)
				if err != nil {
					_, _ = io.WriteString(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 9\r\n\r\nno header")
					return
				}
				h, used, err := proxyproto.Parse(hdr)
				if err != nil {
					_, _ = fmt.Fprintf(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 3\r\n\r\nbad")
					return
				}
				_, _ = br.Discard(used)
				src := h.Src.String()
				if raw {
					_, _ = fmt.Fprintf(c, "src=%s v=%d\n", src, h.Version)
					_, _ = io.Copy(c, br)
					return
				}
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					_, _ = io.Copy(io.Discard, req.Body)
					body := fmt.Sprintf("src=%s conn=%d xff=%s", src, n, req.Header.Get("X-Forwarded-For"))
					_, _ = fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
				}
			}()
		}
	}()
	return ln.Addr().String(), conns
}

// dialFrom connects to addr from the loopback address local.
func dialFrom(t *testing.T, local, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 2 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	return c
}

func v1(src string) string {
	ap := netip.MustParseAddrPort(src)
	return string(proxyproto.AppendV1(nil, ap, netip.MustParseAddrPort("198.18.0.1:443")))
}

func v2(src string) string {
	ap := netip.MustParseAddrPort(src)
	dst := netip.MustParseAddrPort("198.18.0.1:443")
	if ap.Addr().Is6() {
		dst = netip.MustParseAddrPort("[2001:db8::1]:443")
	}
	return string(proxyproto.AppendV2(nil, ap, dst))
}

// exchange writes raw on c and returns the answer's status line and body
// ("" and the error text when the gateway closed without one).
func exchange(c net.Conn, raw string) (string, string) {
	if _, err := io.WriteString(c, raw); err != nil {
		return "", err.Error()
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return "", err.Error()
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	return resp.Status, string(b)
}

// TestProxyProtocol: http, https (the header before TLS) and tcp listeners
// take PROXY v1 and v2 headers from the trusted balancer (127.0.0.2 here)
// and use the client they name for X-Forwarded-For, per-IP limits and the
// cluster's own PROXY header; a trusted peer without a header, a malformed
// header, and a header from an untrusted address (127.0.0.1) are refused and
// counted; an untrusted peer without one is served as itself.
func TestProxyProtocol(t *testing.T) {
	httpOrigin, httpConns := proxyOrigin(t, false)
	tcpOrigin, _ := proxyOrigin(t, true)
	ca := newTestCA(t, "pp")
	cert, key, _ := ca.issue(t, "pp", "pp.test", leafOpts{dns: []string{"pp.test"}})
	web, tlsL, tcpL, admin := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	pp := `[listeners.proxy_protocol]
accept = true
trusted = ["127.0.0.2/32", "10.0.0.0/8"]
timeout = "1s"`
	startBinary(t, fmt.Sprintf(`
[admin]
listen = %q
[log]
access_log = false
[[listeners]]
name = "web"
listen = %q
max_connections_per_ip = 2
%s
[[listeners.routes]]
cluster = "app"
[[listeners]]
name = "tls"
listen = %q
protocol = "https"
max_connections = 1000
%s
[listeners.tls]
[[listeners.tls.certificates]]
cert_file = %q
key_file = %q
[[listeners.routes]]
cluster = "app"
[[listeners]]
name = "tcp"
listen = %q
protocol = "tcp"
cluster = "raw"
%s
[[clusters]]
name = "app"
proxy_protocol = "v1"
endpoints = [ { address = %q } ]
[[clusters]]
name = "raw"
proxy_protocol = "v2"
endpoints = [ { address = %q } ]
`, admin, web, pp, tlsL, pp, cert, key, tcpL, pp, httpOrigin, tcpOrigin), admin)
	waitReady(t, admin)
	get := "GET /x HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n"

	// Trusted, v1 and v2, IPv4 and IPv6; the client named reaches the
	// origin in X-Forwarded-For (the client's own is kept before it) and
	// in the cluster's PROXY header.
	for _, tc := range []struct{ hdr, want string }{
		{v1("203.0.113.7:4000"), "203.0.113.7"},
		{v2("203.0.113.8:4001"), "203.0.113.8"},
		{v2("[2001:db8::7]:4002"), "2001:db8::7"},
	} {
		c := dialFrom(t, "127.0.0.2", web)
		st, body := exchange(c, tc.hdr+get)
		_ = c.Close()
		src := netip.AddrPortFrom(netip.MustParseAddr(tc.want), 0).Addr()
		srcText := "src=" + src.String() + ":"
		if src.Is6() {
			srcText = "src=[" + src.String() + "]:"
		}
		if !strings.HasPrefix(st, "200") || !strings.Contains(body, srcText) || !strings.Contains(body, "xff=6.6.6.6, "+tc.want) {
			t.Errorf("trusted %q: %s %q", tc.hdr[:12], st, body)
		}
	}
	// Two requests on one client connection; another client: the upstream
	// connections are never shared between them (each request has its own).
	before := httpConns.Load()
	c := dialFrom(t, "127.0.0.2", web)
	_, b1 := exchange(c, v1("203.0.113.20:1")+get)
	_, b2 := exchange(c, get)
	_ = c.Close()
	c = dialFrom(t, "127.0.0.2", web)
	_, b3 := exchange(c, v1("203.0.113.21:1")+get)
	_ = c.Close()
	if httpConns.Load()-before != 3 || !strings.Contains(b1, "src=203.0.113.20") || !strings.Contains(b2, "src=203.0.113.20") || !strings.Contains(b3, "src=203.0.113.21") {
		t.Errorf("upstream PROXY connections: %d new for 3 requests; %q %q %q", httpConns.Load()-before, b1, b2, b3)
	}

	// Refusals: no header from the balancer, a malformed one, one from
	// an untrusted address.
	for _, tc := range []struct{ from, raw, what string }{
		{"127.0.0.2", get, "missing"},
		{"127.0.0.2", "PROXY TCP4 203.0.113.7 198.18.0.1 99999 443\r\n" + get, "malformed"},
		{"127.0.0.1", v1("203.0.113.7:1") + get, "untrusted"},
		{"127.0.0.1", v2("203.0.113.7:1") + get, "untrusted v2"},
	} {
		c := dialFrom(t, tc.from, web)
		st, body := exchange(c, tc.raw)
		_ = c.Close()
		if st != "" {
			t.Errorf("%s: answered %s %q", tc.what, st, body)
		}
	}
	// Untrusted without a header: served as itself.
	c = dialFrom(t, "127.0.0.1", web)
	if st, body := exchange(c, get); !strings.HasPrefix(st, "200") || !strings.Contains(body, "xff=6.6.6.6, 127.0.0.1") {
		t.Errorf("untrusted without a header: %s %q", st, body)
	}
	_ = c.Close()
	// A balancer that says nothing is closed at the timeout.
	c = dialFrom(t, "127.0.0.2", web)
	start := time.Now()
	_, _ = io.Copy(io.Discard, c)
	if took := time.Since(start); took > 2500*time.Millisecond {
		t.Errorf("silent balancer closed after %v", took)
	}
	_ = c.Close()

	// max_connections_per_ip = 2 counts the named client, not the balancer.
	var held []net.Conn
	for i := 0; i < 3; i++ {
		c := dialFrom(t, "127.0.0.2", web)
		held = append(held, c)
		st, body := exchange(c, v1("203.0.113.50:1")+get)
		if i < 2 && !strings.HasPrefix(st, "200") {
			t.Errorf("client 203.0.113.50 connection %d: %s %q", i, st, body)
		}
		if i == 2 && st != "" {
			t.Errorf("third connection of 203.0.113.50 over max_connections_per_ip = 2: %s %q", st, body)
		}
	}
	c = dialFrom(t, "127.0.0.2", web) // a different client through the same balancer
	if st, _ := exchange(c, v1("203.0.113.51:1")+get); !strings.HasPrefix(st, "200") {
		t.Errorf("another client through the balancer: %s", st)
	}
	_ = c.Close()
	for _, c := range held {
		_ = c.Close()
	}

	// TLS behind a v2 header.
	tlsGet := func(from, hdr string) (string, string, error) {
		c := dialFrom(t, from, tlsL)
		defer func() { _ = c.Close() }()
		if _, err := io.WriteString(c, hdr); err != nil {
			return "", "", err
		}
		tc := tls.Client(c, &tls.Config{RootCAs: ca.pool, ServerName: "pp.test", NextProtos: []string{"http/1.1"}})
		if err := tc.Handshake(); err != nil {
			return "", "", err
		}
		st, body := exchange(tc, get)
		return st, body, nil
	}
	if st, body, err := tlsGet("127.0.0.2", v2("203.0.113.9:5")); err != nil || !strings.HasPrefix(st, "200") || !strings.Contains(body, "src=203.0.113.9") || !strings.Contains(body, "xff=6.6.6.6, 203.0.113.9") {
		t.Errorf("TLS behind v2: %v %s %q", err, st, body)
	}
	if _, _, err := tlsGet("127.0.0.1", v2("203.0.113.9:5")); err == nil {
		t.Error("TLS with a PROXY header from an untrusted address: served")
	}
	if _, _, err := tlsGet("127.0.0.2", ""); err == nil {
		t.Error("TLS from the balancer without a PROXY header: served")
	}

	// tcp listener: v1 in, the cluster's v2 out with the named client.
	c = dialFrom(t, "127.0.0.2", tcpL)
	_, _ = io.WriteString(c, v1("203.0.113.77:7777")+"ping\n")
	br := bufio.NewReader(c)
	line, _ := br.ReadString('\n')
	echo, _ := br.ReadString('\n')
	_ = c.Close()
	if line != "src=203.0.113.77:7777 v=2\n" || echo != "ping\n" {
		t.Errorf("tcp listener: %q %q", line, echo)
	}
	c = dialFrom(t, "127.0.0.1", tcpL)
	_, _ = io.WriteString(c, v1("203.0.113.77:7777")+"ping\n")
	// The upstream may greet before the client's first bytes are checked
	// (its greeting names the real client, from our own v2 header); what
	// must never happen is the forged header or anything after it reaching
	// the upstream, which would echo it.
	if b, _ := io.ReadAll(c); len(b) != 0 && !regexp.MustCompile(`^src=127\.0\.0\.1:\d+ v=2\n$`).Match(b) {
		t.Errorf("tcp listener, untrusted header: got %q", b)
	}
	_ = c.Close()

	m := scrape(t, admin)
	for sample, min := range map[string]float64{
		`expressgateway_proxy_protocol_total{listener="web",result="accepted"}`:   6,
		`expressgateway_proxy_protocol_total{listener="web",result="missing"}`:    1,
		`expressgateway_proxy_protocol_total{listener="web",result="malformed"}`:  1,
		`expressgateway_proxy_protocol_total{listener="web",result="untrusted"}`:  2,
		`expressgateway_proxy_protocol_total{listener="web",result="timeout"}`:    1,
		`expressgateway_proxy_protocol_total{listener="web",result="over_limit"}`: 1,
		`expressgateway_proxy_protocol_total{listener="tls",result="accepted"}`:   1,
		`expressgateway_proxy_protocol_total{listener="tls",result="untrusted"}`:  1,
		`expressgateway_proxy_protocol_total{listener="tcp",result="accepted"}`:   1,
		`expressgateway_proxy_protocol_total{listener="tcp",result="untrusted"}`:  1,
	} {
		if v := metricValue(m, sample); v < min {
			t.Errorf("%s = %v, want at least %v", sample, v, min)
		}
	}
	checkScrapeAgainstDoc(t, m, metricsDoc(t), func(d docFamily) bool { return d.section == "PROXY protocol" })
}
