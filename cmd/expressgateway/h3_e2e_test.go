// SPDX-License-Identifier: GPL-3.0-only

package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"github.com/quic-go/quic-go"
	"io"
	"net"
	"net/http"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"bufio"
	"errors"
	h3codec "github.com/expressgateway/expressgateway/codecs/h3"
	"github.com/quic-go/qpack"
	"github.com/quic-go/quic-go/http3"
	"github.com/quic-go/quic-go/quicvarint"
)

// h3Setup is a gateway with an h3 listener and an https listener that
// announces it, in front of one origin.
type h3Setup struct {
	ca         *testCA
	h3, https  string
	admin      string
	origin     string
	originHits func() int64
	cmd        *exec.Cmd
}

func startH3Gateway(t *testing.T, h2cOrigin bool, quicExtra string) *h3Setup {
	t.Helper()
	return startH3GatewayEngine(t, h2cOrigin, quicExtra, "")
}

// startH3GatewayEngine is startH3Gateway with extra [engine] keys.
func startH3GatewayEngine(t *testing.T, h2cOrigin bool, quicExtra, engineExtra string) *h3Setup {
	t.Helper()
	origin, reqs, _ := originServe(t, h2cOrigin)
	proto := "http1"
	if h2cOrigin {
		proto = "h2c"
	}
	s := startH3GatewayAt(t, origin, proto, quicExtra, engineExtra)
	s.originHits = reqs.Load
	return s
}

// startH3GatewayAt starts the gateway in front of origin, spoken to with
// proto (a cluster protocol).
func startH3GatewayAt(t *testing.T, origin, proto, quicExtra, engineExtra string) *h3Setup {
	t.Helper()
	return startH3GatewayFull(t, origin, proto, quicExtra, engineExtra, "")
}

// startH3GatewayAtTimeouts is startH3GatewayAt with the h3 listener's
// [listeners.timeouts] keys.
func startH3GatewayAtTimeouts(t *testing.T, origin, timeouts string) *h3Setup {
	t.Helper()
	return startH3GatewayFull(t, origin, "http1", "", "", timeouts)
}

func startH3GatewayFull(t *testing.T, origin, proto, quicExtra, engineExtra, timeouts string) *h3Setup {
	t.Helper()
	s := &h3Setup{ca: newTestCA(t, "h3"), origin: origin}
	cert, key, _ := s.ca.issue(t, "a", "a.test", leafOpts{dns: []string{"a.test"}})
	s.h3, s.https, s.admin = freeUDPAddr(t), freeAddr(t), freeAddr(t)
	s.cmd = startBinary(t, fmt.Sprintf(`
[admin]
listen = %q
[engine]
event_loops = 2
%s
[log]
access_log = false
[[listeners]]
name = "h3"
listen = %q
protocol = "h3"
max_connections = 1000
[listeners.timeouts]
body_min_rate = 0
%s
[listeners.tls]
[[listeners.tls.certificates]]
cert_file = %q
key_file = %q
[listeners.quic]
max_streams = 150
%s
[[listeners.routes]]
cluster = "app"
[[listeners]]
name = "tls"
listen = %q
protocol = "https"
alt_svc = "h3"
max_connections = 1000
[listeners.tls]
[[listeners.tls.certificates]]
cert_file = %q
key_file = %q
[[listeners.routes]]
cluster = "app"
[[clusters]]
name = "app"
protocol = %q
endpoints = [ { address = %q } ]
`, s.admin, engineExtra, s.h3, timeouts, cert, key, quicExtra, s.https, cert, key, proto, origin), s.admin)
	waitReady(t, s.admin)
	return s
}

// freeUDPAddr is a loopback UDP address nobody listens on.
func freeUDPAddr(t *testing.T) string {
	t.Helper()
	return unclaimedAddr(t, func() (string, func() error, error) {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return "", nil, err
		}
		return "udp/" + pc.LocalAddr().String(), pc.Close, nil
	})[len("udp/"):]
}

func h3Client(ca *testCA) (*http.Client, *http3.Transport) {
	tr := &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool, ServerName: "a.test"}}
	return &http.Client{Timeout: 30 * time.Second, Transport: tr}, tr
}

// TestH3 sends HTTP/3 requests through the gateway to an HTTP/1.1 and to
// an h2c upstream: GET, several MiB up and down with hashes, 100
// concurrent streams on one connection, the forwarding headers.
func TestH3(t *testing.T) {
	for _, h2c := range []bool{false, true} {
		name := "http1"
		if h2c {
			name = "h2c"
		}
		t.Run(name, func(t *testing.T) {
			s := startH3Gateway(t, h2c, "")
			c, tr := h3Client(s.ca)
			defer func() { _ = tr.Close() }()
			base := "https://" + s.h3

			// Upload: 8 MiB with a hash.
			const up = 8 << 20
			h := sha256.New()
			resp, err := c.Post(base+"/upload", "application/octet-stream", &patternReader{n: up, h: h})
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			want := fmt.Sprintf("POST /upload %d %s", up, hex.EncodeToString(h.Sum(nil)))
			if resp.StatusCode != 200 || !strings.HasPrefix(string(body), want) {
				t.Fatalf("upload: %d %q, want prefix %q", resp.StatusCode, body, want)
			}
			if resp.Proto != "HTTP/3.0" {
				t.Fatalf("proto %q", resp.Proto)
			}

			// Download: 16 MiB with a hash.
			const down = 16 << 20
			resp, err = c.Get(base + "/download?n=" + strconv.Itoa(down))
			if err != nil {
				t.Fatal(err)
			}
			dh := sha256.New()
			n, err := io.Copy(dh, resp.Body)
			_ = resp.Body.Close()
			wh := sha256.New()
			_, _ = io.Copy(wh, &patternReader{n: down, h: sha256.New()})
			if err != nil || n != down || !bytes.Equal(dh.Sum(nil), wh.Sum(nil)) {
				t.Fatalf("download: %d bytes, err %v, hash match %v", n, err, bytes.Equal(dh.Sum(nil), wh.Sum(nil)))
			}

			// 100 concurrent streams on the one connection.
			var wg sync.WaitGroup
			errs := make(chan error, 100)
			for i := range 100 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					resp, err := c.Get(fmt.Sprintf("%s/c/%d", base, i))
					if err != nil {
						errs <- err
						return
					}
					b, _ := io.ReadAll(resp.Body)
					_ = resp.Body.Close()
					if resp.StatusCode != 200 || !strings.HasPrefix(string(b), fmt.Sprintf("GET /c/%d 0 ", i)) {
						errs <- fmt.Errorf("stream %d: %d %q", i, resp.StatusCode, b)
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			m := scrape(t, s.admin)
			checkScrapeAgainstDoc(t, m, metricsDoc(t), func(d docFamily) bool { return d.section == "HTTP/3" })
			if v := metricValue(m, `expressgateway_h3_connections_total{listener="h3"}`); v != 1 {
				t.Errorf("h3 connections: %v, want 1 (all streams on one connection)", v)
			}
			if v := metricValue(m, `expressgateway_requests_total{listener="h3",route="0",class="2xx"}`); v != 102 {
				t.Errorf("h3 2xx requests: %v, want 102\n%s", v, grepLines(m, "requests_total"))
			}
		})
	}
}

// TestH3ForwardingAndAltSvc checks what the upstream sees of an HTTP/3
// request and the Alt-Svc announcement on the https listener.
func TestH3ForwardingAndAltSvc(t *testing.T) {
	s := startH3Gateway(t, false, "")
	c, tr := h3Client(s.ca)
	defer func() { _ = tr.Close() }()
	resp, err := c.Get("https://" + s.h3 + "/fwd")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if !strings.Contains(string(b), "GET /fwd 0 ") || !strings.Contains(string(b), "host="+s.h3+" proto=HTTP/1.1") {
		t.Errorf("upstream saw %q, want GET /fwd with host %s over HTTP/1.1", b, s.h3)
	}
	if v := resp.Header.Get("X-Seen-Via"); v != "3 expressgateway" {
		t.Errorf("upstream Via %q, want %q", v, "3 expressgateway")
	}
	// X-Forwarded-Proto and X-Forwarded-For, from an origin that echoes them.
	echo, _ := tlsOrigin(t, "X-Client-Identity")
	s2 := startH3GatewayAt(t, echo, "http1", "", "")
	c2, tr2 := h3Client(s2.ca)
	defer func() { _ = tr2.Close() }()
	req, _ := http.NewRequest("GET", "https://"+s2.h3+"/xf", nil)
	req.Header.Set("X-Forwarded-For", "203.0.113.7")
	resp, err = c2.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if want := "xfp=https\nxff=203.0.113.7, 127.0.0.1\n"; !strings.Contains(string(b), want) {
		t.Errorf("upstream saw %q, want %q", b, want)
	}
	_, port, _ := net.SplitHostPort(s.h3)
	hc := tlsClient(s.ca, "a.test", false)
	code, _, hr := getBody(t, hc, "https://"+s.https+"/x")
	want := fmt.Sprintf(`h3=":%s"; ma=86400`, port)
	if code != 200 || hr.Header.Get("Alt-Svc") != want {
		t.Errorf("https response: %d Alt-Svc %q, want %q", code, hr.Header.Get("Alt-Svc"), want)
	}
	hc2 := tlsClient(s.ca, "a.test", true)
	_, _, hr = getBody(t, hc2, "https://"+s.https+"/x")
	if hr.ProtoMajor != 2 || hr.Header.Get("Alt-Svc") != want {
		t.Errorf("https h2 response: %s Alt-Svc %q, want %q", hr.Proto, hr.Header.Get("Alt-Svc"), want)
	}
}

// TestH3MaxRequestsPerConnection: after the cap the gateway sends GOAWAY
// and the client continues on a fresh connection; every request succeeds.
func TestH3MaxRequestsPerConnection(t *testing.T) {
	s := startH3Gateway(t, false, "max_requests_per_connection = 3")
	c, tr := h3Client(s.ca)
	defer func() { _ = tr.Close() }()
	for i := range 10 {
		resp, err := c.Get(fmt.Sprintf("https://%s/r/%d", s.h3, i))
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: %d", i, resp.StatusCode)
		}
	}
	m := scrape(t, s.admin)
	if v := metricValue(m, `expressgateway_h3_connections_total{listener="h3"}`); v != 4 {
		t.Errorf("connections: %v, want 4 (3 requests each)", v)
	}
	if v := metricValue(m, `expressgateway_h3_goaway_total{listener="h3",reason="max_requests"}`); v < 3 {
		t.Errorf("GOAWAY for max_requests: %v, want >= 3", v)
	}
}

// TestH3BadInput: garbage datagrams to the QUIC port do not hurt the
// gateway; they are counted, an unknown version gets Version Negotiation,
// and a real client is served afterwards.
func TestH3BadInput(t *testing.T) {
	s := startH3Gateway(t, false, "")
	uc, err := net.Dial("udp", s.h3)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = uc.Close() }()
	junk := [][]byte{
		{0x00}, []byte("GET / HTTP/1.1\r\n\r\n"), bytes.Repeat([]byte{0xff}, 1200),
		append([]byte{0xc0, 0x00, 0x00, 0x00, 0x01}, bytes.Repeat([]byte{0x01}, 1200)...), // Initial, garbage
		append([]byte{0x40}, bytes.Repeat([]byte{0x11}, 40)...),                           // short header, unknown CID
	}
	for range 50 {
		for _, j := range junk {
			_, _ = uc.Write(j)
		}
	}
	time.Sleep(300 * time.Millisecond)
	// An Initial-sized long-header packet of a version nobody speaks gets a
	// Version Negotiation packet (RFC 9000 §6, §17.2.1): version 0, our
	// CIDs echoed swapped, QUIC v1 offered.
	vc, err := net.Dial("udp", s.h3)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = vc.Close() }()
	dcid, scid := []byte{1, 2, 3, 4, 5, 6, 7, 8}, []byte{9, 10, 11, 12}
	probe := []byte{0xc0, 0x1a, 0x2a, 0x3a, 0x4a, byte(len(dcid))}
	probe = append(append(append(probe, dcid...), byte(len(scid))), scid...)
	probe = append(probe, make([]byte, 1200-len(probe))...)
	if _, err := vc.Write(probe); err != nil {
		t.Fatal(err)
	}
	_ = vc.SetReadDeadline(time.Now().Add(3 * time.Second))
	vn := make([]byte, 1500)
	n, err := vc.Read(vn)
	if err != nil {
		t.Fatalf("no version negotiation for an unknown version: %v", err)
	}
	vn = vn[:n]
	wantHead := append(append(append([]byte{0, 0, 0, 0, byte(len(scid))}, scid...), byte(len(dcid))), dcid...)
	if n < 1+len(wantHead)+4 || vn[0]&0x80 == 0 || !bytes.Equal(vn[1:1+len(wantHead)], wantHead) {
		t.Fatalf("version negotiation packet % x, want long header, version 0, CIDs % x", vn, wantHead)
	}
	offered := false
	for v := vn[1+len(wantHead):]; len(v) >= 4; v = v[4:] {
		if bytes.Equal(v[:4], []byte{0, 0, 0, 1}) {
			offered = true
		}
	}
	if !offered {
		t.Fatalf("version negotiation % x does not offer QUIC v1", vn)
	}
	c, tr := h3Client(s.ca)
	defer func() { _ = tr.Close() }()
	resp, err := c.Get("https://" + s.h3 + "/after")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("after garbage: %d", resp.StatusCode)
	}
	m := scrape(t, s.admin)
	total := 0.0
	for _, line := range strings.Split(m, "\n") {
		if strings.HasPrefix(line, `expressgateway_h3_packets_dropped_total{listener="h3"`) {
			f := strings.Fields(line)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			total += v
		}
	}
	if total < 100 {
		t.Errorf("dropped datagrams counted: %v, want >= 100\n%s", total, grepLines(m, "h3_packets"))
	}
}

// TestH3Drain: SIGTERM sends GOAWAY on open HTTP/3 connections (new
// requests on them are refused by the client, which would reconnect), a
// response in flight completes, and the process exits in time.
func TestH3Drain(t *testing.T) {
	s := startH3GatewayEngine(t, false, "", "drain_settle = \"100ms\"\ndrain_timeout = \"10s\"")
	exited := make(chan error, 1)
	go func() { exited <- s.cmd.Wait() }()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	qc, err := quic.DialAddr(ctx, s.h3, &tls.Config{RootCAs: s.ca.pool, ServerName: "a.test", NextProtos: []string{http3.NextProtoH3}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http3.Transport{}
	cc := tr.NewClientConn(qc)
	const size = 8 << 20
	req, _ := http.NewRequest("GET", "https://a.test/download?n="+strconv.Itoa(size), nil)
	resp, err := cc.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	first := make([]byte, 64<<10)
	if _, err := io.ReadFull(resp.Body, first); err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// The GOAWAY arrives: the client refuses new requests on the connection.
	refused := false
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		r2, _ := http.NewRequest("GET", "https://a.test/after-term", nil)
		rs, err := cc.RoundTrip(r2)
		if err != nil {
			if strings.Contains(err.Error(), "H3_REQUEST_REJECTED") {
				continue // sent before the GOAWAY arrived: refused unprocessed
			}
			if !strings.Contains(err.Error(), "graceful shutdown") {
				t.Fatalf("request after SIGTERM: %v, want the GOAWAY refusal", err)
			}
			refused = true
			break
		}
		_, _ = io.Copy(io.Discard, rs.Body)
		_ = rs.Body.Close()
	}
	if !refused {
		t.Fatal("no GOAWAY within 3 s of SIGTERM")
	}
	// The response in flight completes, even when its client pauses for
	// longer than the gateway waits after a stream ends.
	time.Sleep(700 * time.Millisecond)
	h := sha256.New()
	h.Write(first)
	n, err := io.Copy(h, resp.Body)
	_ = resp.Body.Close()
	wh := sha256.New()
	_, _ = io.Copy(wh, &patternReader{n: size, h: sha256.New()})
	if err != nil || n+int64(len(first)) != size || !bytes.Equal(h.Sum(nil), wh.Sum(nil)) {
		t.Fatalf("in-flight download: %d bytes, err %v", n+int64(len(first)), err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit: %v", err)
		}
	case <-time.After(8 * time.Second):
		t.Fatal("the gateway did not exit after the drain")
	}
}

// TestH3PerIPCap: quic.max_connections_per_ip refuses the connection over
// the cap during its handshake; closing one lets a new one in.
func TestH3PerIPCap(t *testing.T) {
	s := startH3Gateway(t, false, "max_connections_per_ip = 2")
	tlsConf := &tls.Config{RootCAs: s.ca.pool, ServerName: "a.test", NextProtos: []string{http3.NextProtoH3}}
	dial := func() (*quic.Conn, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		return quic.DialAddr(ctx, s.h3, tlsConf, &quic.Config{HandshakeIdleTimeout: 2 * time.Second})
	}
	var open []*quic.Conn
	for i := range 2 {
		qc, err := dial()
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		open = append(open, qc)
	}
	if qc, err := dial(); err == nil {
		_ = qc.CloseWithError(0, "")
		t.Fatal("a third connection from one IP was accepted")
	}
	// Another client IP has slots of its own.
	pc2, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)})
	if err != nil {
		t.Fatal(err)
	}
	qtr := &quic.Transport{Conn: pc2}
	defer func() { _ = qtr.Close() }()
	ua, _ := net.ResolveUDPAddr("udp", s.h3)
	ctx2, cancel2 := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel2()
	other, err := qtr.Dial(ctx2, ua, tlsConf, nil)
	if err != nil {
		t.Fatalf("a connection from 127.0.0.2 while 127.0.0.1 is at its cap: %v", err)
	}
	_ = other.CloseWithError(0, "")
	// The slot comes back once the gateway dropped the closed connection
	// (after QUIC's closing period, three probe timeouts).
	_ = open[0].CloseWithError(0, "")
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		var qc *quic.Conn
		if qc, err = dial(); err == nil {
			open = append(open, qc)
			break
		}
	}
	if err != nil {
		t.Fatalf("after one closed: %v", err)
	}
	for _, qc := range open[1:] {
		_ = qc.CloseWithError(0, "")
	}
	if v := metricValue(scrape(t, s.admin), `expressgateway_guard_tripped_total{guard="max_connections_per_ip"}`); v < 1 {
		t.Errorf("per-IP refusals counted: %v", v)
	}
}

// TestH3RetryAlways: with retry = "always" every connection first proves
// its address with a Retry round trip (quic-go's client follows it).
func TestH3RetryAlways(t *testing.T) {
	s := startH3Gateway(t, false, "retry = \"always\"")
	c, tr := h3Client(s.ca)
	defer func() { _ = tr.Close() }()
	resp, err := c.Get("https://" + s.h3 + "/r")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if v := metricValue(scrape(t, s.admin), `expressgateway_h3_retries_total{listener="h3"}`); v < 1 {
		t.Errorf("retries: %v, want >= 1", v)
	}
}

// TestH3MemoryBounded streams a large body each way through an HTTP/3
// connection while the far side is slow (an upstream that reads the upload
// at a fixed rate, a client that reads the download at that rate): the
// gateway's memory stays bounded (QUIC stream credit and the per-stream
// bounds are the backpressure), and both bodies arrive whole.
func TestH3MemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("streams 2 × 128 MiB at 16 MiB/s (about 10 s); skipped with -short")
	}
	size := envInt("EG_H3_STREAM_BYTES", 128<<20)
	rate := envInt("EG_H3_STREAM_RATE", 16<<20)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/upload":
			h := sha256.New()
			n, err := slowCopy(h, r.Body, rate)
			if err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
			_, _ = fmt.Fprintf(w, "%d %s", n, hex.EncodeToString(h.Sum(nil)))
		case "/download":
			n, _ := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
			w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
			_, _ = io.Copy(w, &patternReader{n: n, h: sha256.New()})
		}
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	s := startH3GatewayAt(t, ln.Addr().String(), "http1", "", "")
	pid := s.cmd.Process.Pid
	c, tr := h3Client(s.ca)
	defer func() { _ = tr.Close() }()
	base := "https://" + s.h3
	if resp, err := c.Get(base + "/download?n=8"); err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
	}
	time.Sleep(200 * time.Millisecond)
	rss0 := rssBytes(pid)
	peak, stopSampling := sampleRSS(pid)
	var wg sync.WaitGroup
	var upErr, downErr error
	wg.Add(2)
	go func() {
		defer wg.Done()
		src := &patternReader{n: size, h: sha256.New()}
		req, _ := http.NewRequest("POST", base+"/upload", src)
		req.ContentLength = size
		resp, err := c.Do(req)
		if err != nil {
			upErr = err
			return
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if want := fmt.Sprintf("%d %s", size, hex.EncodeToString(src.h.Sum(nil))); string(body) != want {
			upErr = fmt.Errorf("upload: %d %q, want %q", resp.StatusCode, body, want)
		}
	}()
	go func() {
		defer wg.Done()
		resp, err := c.Get(base + "/download?n=" + strconv.FormatInt(size, 10))
		if err != nil {
			downErr = err
			return
		}
		defer func() { _ = resp.Body.Close() }()
		h := sha256.New()
		n, err := slowCopy(h, resp.Body, rate)
		want := sha256.New()
		_, _ = io.Copy(io.Discard, &patternReader{n: size, h: want})
		if err != nil || n != size || !bytes.Equal(h.Sum(nil), want.Sum(nil)) {
			downErr = fmt.Errorf("download: %d of %d bytes, err %v, hash match %v", n, size, err, bytes.Equal(h.Sum(nil), want.Sum(nil)))
		}
	}()
	wg.Wait()
	stopSampling()
	if upErr != nil {
		t.Error(upErr)
	}
	if downErr != nil {
		t.Error(downErr)
	}
	grew := peak.Load() - rss0
	t.Logf("RSS %d MiB at rest, peak %d MiB while streaming 2 × %d MiB", rss0>>20, peak.Load()>>20, size>>20)
	if grew > 64<<20 {
		t.Errorf("RSS grew by %d MiB while streaming: not bounded", grew>>20)
	}
}

// h3Raw is a QUIC connection to the gateway on which the test writes
// HTTP/3 frames by hand.
type h3Raw struct {
	t  *testing.T
	qc *quic.Conn
}

func dialH3Raw(t *testing.T, s *h3Setup) *h3Raw {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	qc, err := quic.DialAddr(ctx, s.h3, &tls.Config{RootCAs: s.ca.pool, ServerName: "a.test", NextProtos: []string{http3.NextProtoH3}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = qc.CloseWithError(0, "") })
	return &h3Raw{t: t, qc: qc}
}

// request opens a stream and writes a HEADERS frame with fields (and data
// as one DATA frame when not nil); fin ends the stream.
func (r *h3Raw) request(fields []string, data []byte, fin bool) *quic.Stream {
	r.t.Helper()
	st, err := r.qc.OpenStreamSync(context.Background())
	if err != nil {
		r.t.Fatal(err)
	}
	var blk bytes.Buffer
	enc := qpack.NewEncoder(&blk)
	for i := 0; i+1 < len(fields); i += 2 {
		_ = enc.WriteField(qpack.HeaderField{Name: fields[i], Value: fields[i+1]})
	}
	b := h3codec.AppendFrameHeader(nil, h3codec.FrameHeaders, uint64(blk.Len()))
	b = append(b, blk.Bytes()...)
	if data != nil {
		b = h3codec.AppendData(b, data)
	}
	if _, err := st.Write(b); err != nil {
		r.t.Fatal(err)
	}
	if fin {
		_ = st.Close()
	}
	return st
}

// status reads the response head of st: its :status, or the stream error
// code when the gateway reset the stream.
func (r *h3Raw) status(st *quic.Stream) (status int, resetCode quic.StreamErrorCode) {
	r.t.Helper()
	_ = st.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(st)
	for {
		typ, err := quicvarint.Read(br)
		if err != nil {
			var se *quic.StreamError
			if errors.As(err, &se) {
				return 0, se.ErrorCode
			}
			r.t.Fatalf("reading the response: %v", err)
		}
		n, err := quicvarint.Read(br)
		if err != nil {
			r.t.Fatal(err)
		}
		p := make([]byte, n)
		if _, err := io.ReadFull(br, p); err != nil {
			r.t.Fatal(err)
		}
		if h3codec.FrameType(typ) != h3codec.FrameHeaders {
			continue
		}
		next := qpack.NewDecoder().Decode(p)
		for {
			f, err := next()
			if err != nil {
				r.t.Fatalf("no :status in the response head: %v", err)
			}
			if f.Name == ":status" {
				v, _ := strconv.Atoi(f.Value)
				return v, 0
			}
		}
	}
}

// TestH3MalformedNeverForwarded: heads RFC 9114 calls malformed reset the
// stream with H3_MESSAGE_ERROR and never reach the upstream; the
// connection and its other streams go on. Over-long heads get 431; a
// stalled head or body is cut by header_read and body_idle.
func TestH3MalformedNeverForwarded(t *testing.T) {
	s := startH3GatewayEngine(t, false, "max_field_section_size = \"4KiB\"", "")
	r := dialH3Raw(t, s)
	ok := []string{":method", "GET", ":scheme", "https", ":authority", "a.test", ":path", "/ok"}
	bad := map[string][]string{
		"uppercase name":       append(append([]string{}, ok...), "X-Up", "1"),
		"connection header":    append(append([]string{}, ok...), "connection", "keep-alive"),
		"transfer-encoding":    append(append([]string{}, ok...), "transfer-encoding", "chunked"),
		"pseudo after regular": {":method", "GET", "x-a", "1", ":scheme", "https", ":path", "/"},
		"no :path":             {":method", "GET", ":scheme", "https", ":authority", "a.test"},
		"unknown pseudo":       append(append([]string{}, ok...), ":foo", "1"),
		"two content-lengths":  append(append([]string{}, ok...), "content-length", "1", "content-length", "2"),
		"CRLF in a value":      append(append([]string{}, ok...), "x-a", "1\r\nx-injected: evil"),
		"LF in a value":        append(append([]string{}, ok...), "x-a", "1\nx-injected: evil"),
		"leading space":        append(append([]string{}, ok...), "x-a", " 1"),
		"space in a name":      append(append([]string{}, ok...), "x a", "1"),
	}
	before := s.originHits()
	for name, fields := range bad {
		st := r.request(fields, nil, true)
		if code, reset := r.status(st); code != 0 || reset != quic.StreamErrorCode(h3codec.ErrCodeMessage) {
			t.Errorf("%s: status %d, reset 0x%x, want a H3_MESSAGE_ERROR reset", name, code, reset)
		}
	}
	st := r.request(append(append([]string{}, ok...), "x-big", strings.Repeat("a", 5000)), nil, true)
	if code, _ := r.status(st); code != 431 {
		t.Errorf("over max_field_section_size: %d, want 431", code)
	}
	st = r.request(append(append([]string{":method", "POST"}, ok[2:]...), "content-length", "3"), []byte("abcd"), true)
	if code, reset := r.status(st); code == 200 {
		t.Errorf("DATA beyond content-length: status %d (reset 0x%x), want refused", code, reset)
	}
	if got := s.originHits() - before; got != 0 {
		t.Errorf("%d malformed requests reached the upstream", got)
	}
	st = r.request(ok, nil, true)
	if code, _ := r.status(st); code != 200 {
		t.Fatalf("a good request on the same connection: %d", code)
	}
	m := scrape(t, s.admin)
	if v := metricValue(m, `expressgateway_guard_tripped_total{guard="h3_uppercase_name"}`); v != 1 {
		t.Errorf("h3_uppercase_name guard hits: %v", v)
	}
	if v := metricValue(m, `expressgateway_guard_tripped_total{guard="h3_field_section_too_large"}`); v != 1 {
		t.Errorf("h3_field_section_too_large guard hits: %v", v)
	}
}

// TestH3Stalls: a stream that never completes its head is reset after
// timeouts.header_read; a body that stops is answered 408 after
// timeouts.body_idle.
func TestH3Stalls(t *testing.T) {
	origin, _, _ := originServe(t, false)
	s := startH3GatewayAtTimeouts(t, origin, "header_read = \"300ms\"\nbody_idle = \"300ms\"")
	r := dialH3Raw(t, s)
	st, err := r.qc.OpenStreamSync(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Write([]byte{0x01, 0x20}); err != nil { // HEADERS of 32 bytes, never sent
		t.Fatal(err)
	}
	start := time.Now()
	if code, reset := r.status(st); code != 0 || reset != quic.StreamErrorCode(h3codec.ErrCodeRequestIncomplete) {
		t.Errorf("stalled head: status %d reset 0x%x, want H3_REQUEST_INCOMPLETE", code, reset)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("stalled head cut after %v", d)
	}
	st = r.request([]string{":method", "POST", ":scheme", "https", ":authority", "a.test", ":path", "/up", "content-length", "100"}, []byte("0123456789"), false)
	if code, _ := r.status(st); code != 408 {
		t.Errorf("stalled body: %d, want 408", code)
	}
	m := scrape(t, s.admin)
	if v := metricValue(m, `expressgateway_guard_tripped_total{guard="h3_slow_loris"}`); v != 1 {
		t.Errorf("h3_slow_loris: %v", v)
	}
	if v := metricValue(m, `expressgateway_guard_tripped_total{guard="body_idle"}`); v != 1 {
		t.Errorf("body_idle: %v", v)
	}
}

// TestH3Reload: a reload that changes an h3 listener's routes reaches its
// open QUIC connection at the next request; one that adds an h3 listener
// serves it; one that removes it drains it.
func TestH3Reload(t *testing.T) {
	ca := newTestCA(t, "h3")
	cert, key, _ := ca.issue(t, "a", "a.test", leafOpts{dns: []string{"a.test"}})
	originA, _, _ := originServe(t, false)
	originB, _, _ := originServe(t, true)
	h3a, h3b, web, admin := freeUDPAddr(t), freeUDPAddr(t), freeAddr(t), freeAddr(t)
	cfg := func(cluster string, second bool) string {
		extra := ""
		if second {
			extra = fmt.Sprintf(`
[[listeners]]
name = "h3b"
listen = %q
protocol = "h3"
max_connections = 100
[listeners.tls]
[[listeners.tls.certificates]]
cert_file = %q
key_file = %q
[[listeners.routes]]
cluster = "b"
`, h3b, cert, key)
		}
		return fmt.Sprintf(`
[admin]
listen = %q
[engine]
event_loops = 2
[log]
access_log = false
[[listeners]]
name = "web"
listen = %q
max_connections = 100
[[listeners.routes]]
cluster = "a"
[[listeners]]
name = "h3"
listen = %q
protocol = "h3"
max_connections = 100
[listeners.tls]
[[listeners.tls.certificates]]
cert_file = %q
key_file = %q
[[listeners.routes]]
cluster = %q
%s
[[clusters]]
name = "a"
endpoints = [ { address = %q } ]
[[clusters]]
name = "b"
protocol = "h2c"
endpoints = [ { address = %q } ]
`, admin, web, h3a, cert, key, cluster, extra, originA, originB)
	}
	g := startFromFile(t, gatewayBinary(t), cfg("a", false), admin, admin)
	waitReady(t, admin)
	c, tr := &http.Client{Timeout: 10 * time.Second}, &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool, ServerName: "a.test"}}
	c.Transport = tr
	defer func() { _ = tr.Close() }()
	proto := func(addr string) string {
		t.Helper()
		resp, err := c.Get("https://" + addr + "/p")
		if err != nil {
			t.Fatalf("GET via %s: %v", addr, err)
		}
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		i := strings.Index(string(b), "proto=")
		if i < 0 {
			t.Fatalf("response %q", b)
		}
		return string(b[i+len("proto="):])
	}
	if p := proto(h3a); p != "HTTP/1.1" {
		t.Fatalf("before the reload: upstream saw %s, want HTTP/1.1 (cluster a)", p)
	}
	g.reload(t, cfg("b", true))
	if p := proto(h3a); p != "HTTP/2.0" {
		t.Errorf("after the reload, same connection: upstream saw %s, want HTTP/2.0 (cluster b)", p)
	}
	if v := metricValue(scrape(t, admin), `expressgateway_h3_connections_total{listener="h3"}`); v != 1 {
		t.Errorf("h3 connections: %v, want 1 (the reload kept the connection)", v)
	}
	if p := proto(h3b); p != "HTTP/2.0" {
		t.Errorf("the h3 listener added by reload: upstream saw %s", p)
	}
	g.reload(t, cfg("b", false))
	// The removed listener drains: its connection gets GOAWAY, the client
	// opens a new one that nobody accepts.
	time.Sleep(300 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if qc, err := quic.DialAddr(ctx, h3b, &tls.Config{RootCAs: ca.pool, ServerName: "a.test", NextProtos: []string{http3.NextProtoH3}}, nil); err == nil {
		_ = qc.CloseWithError(0, "")
		t.Error("a removed h3 listener still accepts connections")
	}
	if p := proto(h3a); p != "HTTP/2.0" {
		t.Errorf("the kept h3 listener after the second reload: %s", p)
	}
}

// TestH3ReloadQUICSettings: a reload that changes [listeners.quic]
// max_streams reaches the connections opened after it (quic-go asks for
// each connection's settings), while an open connection keeps the stream
// credit it was given.
func TestH3ReloadQUICSettings(t *testing.T) {
	ca := newTestCA(t, "h3")
	cert, key, _ := ca.issue(t, "a", "a.test", leafOpts{dns: []string{"a.test"}})
	origin, _, _ := originServe(t, false)
	h3a, web, admin := freeUDPAddr(t), freeAddr(t), freeAddr(t)
	cfg := func(maxStreams int) string {
		return fmt.Sprintf(`
[admin]
listen = %q
[engine]
event_loops = 2
[log]
access_log = false
[[listeners]]
name = "web"
listen = %q
[[listeners.routes]]
cluster = "a"
[[listeners]]
name = "h3"
listen = %q
protocol = "h3"
[listeners.tls]
[[listeners.tls.certificates]]
cert_file = %q
key_file = %q
[listeners.quic]
max_streams = %d
stream_receive_window = "64KiB"
connection_receive_window = "128KiB"
[[listeners.routes]]
cluster = "a"
[[clusters]]
name = "a"
endpoints = [ { address = %q } ]
`, admin, web, h3a, cert, key, maxStreams, origin)
	}
	g := startFromFile(t, gatewayBinary(t), cfg(2), admin, admin)
	waitReady(t, admin)
	dial := func() *quic.Conn {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		qc, err := quic.DialAddr(ctx, h3a, &tls.Config{RootCAs: ca.pool, ServerName: "a.test", NextProtos: []string{http3.NextProtoH3}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = qc.CloseWithError(0, "") })
		return qc
	}
	// credit opens bidirectional streams until the peer's limit refuses one.
	credit := func(qc *quic.Conn) int {
		t.Helper()
		for n := 0; n < 50; n++ {
			if _, err := qc.OpenStream(); err != nil {
				if !strings.Contains(err.Error(), (quic.StreamLimitReachedError{}).Error()) {
					t.Fatalf("stream %d: %v", n, err)
				}
				return n
			}
		}
		return 50
	}
	before := dial()
	if n := credit(before); n != 2 {
		t.Fatalf("max_streams = 2: the client may open %d streams", n)
	}
	after0 := dial()
	g.reload(t, cfg(5))
	if n := credit(dial()); n != 5 {
		t.Fatalf("after a reload to max_streams = 5: a new connection may open %d streams", n)
	}
	if n := credit(after0); n != 2 {
		t.Fatalf("a connection opened before the reload may open %d streams, want the 2 it was given", n)
	}
}

// earlyOrigin records each request's method, path and Early-Data field.
type earlyOrigin struct {
	mu   sync.Mutex
	seen []string
}

func (o *earlyOrigin) start(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		o.mu.Lock()
		o.seen = append(o.seen, r.Method+" "+r.URL.Path+" early="+r.Header.Get("Early-Data"))
		o.mu.Unlock()
		_, _ = io.WriteString(w, "ok")
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

func (o *earlyOrigin) requests() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.seen...)
}

// handshakeDelayProxy relays UDP between one QUIC client and the gateway,
// holding back every client datagram that carries a Handshake packet (the
// client's Finished) for delay, so that what the client sent as 0-RTT
// reaches the gateway well before the handshake can complete (and the
// server's Handshake packets for delay/3, so that the client writes its
// request before it has 1-RTT keys, as 0-RTT). It records
// the client's datagrams that hold only Initial and 0-RTT packets (what an
// attacker on the path could replay).
type handshakeDelayProxy struct {
	pc     net.PacketConn
	target *net.UDPAddr
	delay  time.Duration

	mu      sync.Mutex
	client  net.Addr
	up      *net.UDPConn
	replied bool
	flight  [][]byte
}

func newHandshakeDelayProxy(t *testing.T, target string, delay time.Duration) *handshakeDelayProxy {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ta, _ := net.ResolveUDPAddr("udp", target)
	p := &handshakeDelayProxy{pc: pc, target: ta, delay: delay}
	t.Cleanup(func() { _ = pc.Close() })
	go p.run()
	return p
}

func (p *handshakeDelayProxy) addr() string { return p.pc.LocalAddr().String() }

// reset forgets the client: the next datagram starts a new session.
func (p *handshakeDelayProxy) reset() (flight [][]byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.up != nil {
		_ = p.up.Close()
	}
	flight, p.client, p.up, p.replied, p.flight = p.flight, nil, nil, false, nil
	return flight
}

func (p *handshakeDelayProxy) run() {
	buf := make([]byte, 65536)
	for {
		n, from, err := p.pc.ReadFrom(buf)
		if err != nil {
			return
		}
		d := append([]byte(nil), buf[:n]...)
		p.mu.Lock()
		if p.up == nil || p.client.String() != from.String() {
			// A new client (or the last datagrams of the previous one):
			// a session of its own, so that replies go back to it.
			if p.up != nil {
				_ = p.up.Close()
			}
			up, err := net.DialUDP("udp", nil, p.target)
			if err != nil {
				p.mu.Unlock()
				continue
			}
			p.client, p.up, p.replied, p.flight = from, up, false, nil
			go p.back(up, from)
		}
		up := p.up
		if len(d) > 0 && d[0]&0x80 != 0 && !carriesHandshake(d) {
			p.flight = append(p.flight, d) // Initial and 0-RTT packets
		}
		p.mu.Unlock()
		if carriesHandshake(d) {
			go func() {
				time.Sleep(p.delay)
				_, _ = up.Write(d)
			}()
			continue
		}
		_, _ = up.Write(d)
	}
}

func (p *handshakeDelayProxy) back(up *net.UDPConn, client net.Addr) {
	buf := make([]byte, 65536)
	for {
		n, err := up.Read(buf)
		if err != nil {
			return
		}
		p.mu.Lock()
		p.replied = true
		p.mu.Unlock()
		if d := append([]byte(nil), buf[:n]...); carriesHandshake(d) {
			// The server's Finished too, a little: until it arrives the
			// client has no 1-RTT keys, so what it writes goes as 0-RTT.
			go func() {
				time.Sleep(p.delay / 3)
				_, _ = p.pc.WriteTo(d, client)
			}()
			continue
		}
		_, _ = p.pc.WriteTo(buf[:n], client)
	}
}

// carriesHandshake reports whether a QUIC v1 datagram holds a Handshake
// packet (long header type 2), walking its coalesced long-header packets.
func carriesHandshake(b []byte) bool {
	for len(b) > 6 && b[0]&0x80 != 0 {
		typ := b[0] >> 4 & 3
		if typ == 2 {
			return true
		}
		if typ == 3 {
			return false
		}
		pos := 6 + int(b[5])
		if pos >= len(b) {
			return false
		}
		pos += 1 + int(b[pos])
		if typ == 0 {
			tl, n, err := quicvarint.Parse(b[min(pos, len(b)):])
			if err != nil {
				return false
			}
			pos += n + int(tl)
		}
		if pos > len(b) {
			return false
		}
		l, n, err := quicvarint.Parse(b[pos:])
		if err != nil {
			return false
		}
		pos += n + int(l)
		if pos > len(b) {
			return false
		}
		b = b[pos:]
	}
	return false
}

// TestH3EarlyData: with early_data, a resumed client's 0-RTT GET goes
// upstream before the handshake completes, with Early-Data: 1; a 0-RTT POST
// waits for the handshake and goes without it; replaying the POST's first
// flight (Initial and 0-RTT, as an attacker who captured it would) gets
// nothing forwarded: the replay cannot complete the handshake.
func TestH3EarlyData(t *testing.T) {
	o := &earlyOrigin{}
	origin := o.start(t)
	ca := newTestCA(t, "h3")
	cert, key, _ := ca.issue(t, "a", "a.test", leafOpts{dns: []string{"a.test"}})
	h3addr, web, admin := freeUDPAddr(t), freeAddr(t), freeAddr(t)
	startBinary(t, fmt.Sprintf(`
[admin]
listen = %q
[engine]
event_loops = 2
[log]
access_log = false
[[listeners]]
name = "web"
listen = %q
max_connections = 100
[[listeners.routes]]
cluster = "app"
[[listeners]]
name = "h3"
listen = %q
protocol = "h3"
max_connections = 100
[listeners.tls]
handshake_timeout = "3s"
[[listeners.tls.certificates]]
cert_file = %q
key_file = %q
[listeners.quic]
early_data = true
[[listeners.routes]]
cluster = "app"
[[clusters]]
name = "app"
endpoints = [ { address = %q } ]
`, admin, web, h3addr, cert, key, origin), admin)
	waitReady(t, admin)
	tlsConf := &tls.Config{RootCAs: ca.pool, ServerName: "a.test", NextProtos: []string{http3.NextProtoH3}, ClientSessionCache: tls.NewLRUClientSessionCache(8)}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	get := []string{":method", "GET", ":scheme", "https", ":authority", "a.test", ":path", "/early"}
	post := []string{":method", "POST", ":scheme", "https", ":authority", "a.test", ":path", "/unsafe", "content-length", "1"}

	// A first, full handshake gets a session ticket.
	qc, err := quic.DialAddr(ctx, h3addr, tlsConf, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := &h3Raw{t: t, qc: qc}
	if code, _ := r.status(r.request(append(append([]string{}, get[:6]...), ":path", "/first"), nil, true)); code != 200 {
		t.Fatalf("first request: %d", code)
	}
	time.Sleep(200 * time.Millisecond) // the ticket arrives after the handshake
	_ = qc.CloseWithError(0, "")

	proxy := newHandshakeDelayProxy(t, h3addr, 300*time.Millisecond)
	zeroRTT := func(fields []string, body []byte) (*quic.Conn, int, time.Duration) {
		t.Helper()
		qc, err := quic.DialAddrEarly(ctx, proxy.addr(), tlsConf, nil)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		r := &h3Raw{t: t, qc: qc}
		code, reset := r.status(r.request(fields, body, true))
		if reset != 0 {
			t.Fatalf("0-RTT request reset: 0x%x", reset)
		}
		took := time.Since(start)
		<-qc.HandshakeComplete()
		if !qc.ConnectionState().Used0RTT {
			t.Fatal("the gateway did not accept 0-RTT")
		}
		time.Sleep(200 * time.Millisecond) // a fresh ticket for the next one
		return qc, code, took
	}

	qc, code, took := zeroRTT(get, nil)
	_ = qc.CloseWithError(0, "")
	if code != 200 || took > 250*time.Millisecond {
		t.Errorf("0-RTT GET: %d after %v, want 200 before the handshake completed (300 ms)", code, took)
	}
	proxy.reset()
	qc, code, took = zeroRTT(post, []byte("x"))
	_ = qc.CloseWithError(0, "")
	if code != 200 || took < 280*time.Millisecond {
		t.Errorf("0-RTT POST: %d after %v, want 200 once the handshake completed (300 ms)", code, took)
	}
	flight := proxy.reset()
	if len(flight) == 0 {
		t.Fatal("no first flight recorded")
	}
	if v := metricValue(scrape(t, admin), `expressgateway_h3_early_requests_total{listener="h3",result="waited"}`); v != 1 {
		t.Fatalf("the POST was not read from 0-RTT data (waited %v)", v)
	}
	want := []string{"GET /first early=", "GET /early early=1", "POST /unsafe early="}
	if got := o.requests(); !slices.Equal(got, want) {
		t.Fatalf("upstream saw %q, want %q", got, want)
	}

	// Replay the POST's Initial and 0-RTT packets from another address,
	// as an attacker would, until the gateway has forgotten the connection
	// they belonged to and takes them as a new one (a few tries, 2 s apart).
	conns := metricValue(scrape(t, admin), `expressgateway_h3_connections_total{listener="h3"}`)
	var tooEarly float64
	for try := 0; try < 4 && tooEarly < 1; try++ {
		time.Sleep(2 * time.Second)
		rc, err := net.Dial("udp", h3addr)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range flight {
			_, _ = rc.Write(d)
		}
		time.Sleep(300 * time.Millisecond)
		if metricValue(scrape(t, admin), `expressgateway_h3_connections_total{listener="h3"}`) == conns {
			_ = rc.Close()
			continue // not taken as a new connection yet: try again later
		}
		// Taken: its 0-RTT POST must wait for a handshake that never
		// completes (tls.handshake_timeout), and is then refused.
		for deadline := time.Now().Add(6 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if tooEarly = metricValue(scrape(t, admin), `expressgateway_h3_early_requests_total{listener="h3",result="too_early"}`); tooEarly >= 1 {
				break
			}
		}
		_ = rc.Close()
	}
	if tooEarly < 1 {
		t.Errorf("the replayed 0-RTT POST was not held back as too early (metric %v; connections %v before the replay, %v after)", tooEarly,
			conns, metricValue(scrape(t, admin), `expressgateway_h3_connections_total{listener="h3"}`))
	}
	if got := o.requests(); !slices.Equal(got, want) {
		t.Errorf("after the replay the upstream saw %q, want %q (nothing more)", got, want)
	}
	m := scrape(t, admin)
	if v := metricValue(m, `expressgateway_h3_early_requests_total{listener="h3",result="forwarded"}`); v != 1 {
		t.Errorf("forwarded early: %v", v)
	}
	if v := metricValue(m, `expressgateway_h3_early_requests_total{listener="h3",result="waited"}`); v != 1 {
		t.Errorf("waited early: %v", v)
	}
}

// TestH3ConnectRefused: an h3 listener does not offer RFC 9220's extended
// CONNECT (quic-go's client refuses to send one), and a CONNECT on it,
// plain or extended, is answered 501 without reaching an upstream.
func TestH3ConnectRefused(t *testing.T) {
	s := startH3Gateway(t, false, "")
	before := s.originHits()
	tr := &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: s.ca.pool, ServerName: "a.test"}}
	defer func() { _ = tr.Close() }()
	req, _ := http.NewRequest(http.MethodConnect, "https://"+s.h3, nil)
	req.Proto = "websocket"
	if resp, err := tr.RoundTrip(req); err == nil {
		_ = resp.Body.Close()
		t.Fatalf("an extended CONNECT was sent and answered %d: the listener must not enable it", resp.StatusCode)
	} else if !strings.Contains(err.Error(), "Extended CONNECT") {
		t.Fatalf("extended CONNECT: %v, want the client's refusal (the server did not enable it)", err)
	}
	r := dialH3Raw(t, s)
	for _, fields := range [][]string{
		{":method", "CONNECT", ":authority", "internal.example:22"},
		{":method", "CONNECT", ":protocol", "websocket", ":scheme", "https", ":authority", "a.test", ":path", "/chat"},
	} {
		if code, reset := r.status(r.request(fields, nil, false)); code != 501 {
			t.Errorf("%v: status %d (reset %v), want 501", fields, code, reset)
		}
	}
	if n := s.originHits() - before; n != 0 {
		t.Errorf("%d CONNECTs reached the upstream", n)
	}
}

// TestH3ClientCancelReachesUpstream: a client that gives up on a GET (its
// stream ended with the head) while the upstream still thinks ends the
// upstream request: the gateway closes the upstream connection, and the
// connection to the client goes on. The gateway writes such a response
// from its event loop with no goroutine waiting on the stream, so the
// client's STOP_SENDING has to reach the loop on its own.
func TestH3ClientCancelReachesUpstream(t *testing.T) {
	t.Parallel()
	arrived := make(chan struct{}, 4)
	cancelled := make(chan struct{}, 4)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/hang" {
			_, _ = io.WriteString(w, "ok")
			return
		}
		arrived <- struct{}{}
		select {
		case <-r.Context().Done():
			cancelled <- struct{}{}
		case <-time.After(20 * time.Second):
		}
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	s := startH3GatewayAt(t, ln.Addr().String(), "http1", "", "")
	r := dialH3Raw(t, s)
	get := func(path string) *quic.Stream {
		return r.request([]string{":method", "GET", ":scheme", "https", ":authority", "a.test", ":path", path}, nil, true)
	}
	for i := 0; i < 2; i++ {
		st := get("/hang")
		select {
		case <-arrived:
		case <-time.After(5 * time.Second):
			t.Fatal("the request did not reach the upstream")
		}
		if i == 0 {
			st.CancelRead(quic.StreamErrorCode(h3codec.ErrCodeRequestCancelled)) // STOP_SENDING
		} else {
			// The whole connection goes away this time.
			_ = r.qc.CloseWithError(0, "")
		}
		select {
		case <-cancelled:
		case <-time.After(5 * time.Second):
			t.Fatalf("round %d: the upstream request went on after the client gave up", i)
		}
		if i == 0 {
			// The connection is unharmed: the next request on it is served.
			if code, reset := r.status(get("/next")); code != 200 {
				t.Fatalf("after a cancelled stream: status %d, reset %d", code, reset)
			}
		}
	}
}
