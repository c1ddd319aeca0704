// SPDX-License-Identifier: GPL-3.0-only

package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// tlsOrigin is an HTTP/1.1 upstream that answers with what it saw of the
// request: the protocol, X-Forwarded-Proto, X-Forwarded-For and the
// identity header, one per line.
func tlsOrigin(t *testing.T, identity string) (addr string, hits *atomic.Int64) {
	t.Helper()
	hits = new(atomic.Int64)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		ids := r.Header.Values(identity)
		_, _ = fmt.Fprintf(w, "proto=%s\nxfp=%s\nxff=%s\nidentity=%s\nidentities=%d\npath=%s\n",
			r.Proto, r.Header.Get("X-Forwarded-Proto"), r.Header.Get("X-Forwarded-For"),
			strings.Join(ids, "|"), len(ids), r.URL.Path)
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String(), hits
}

// tlsSetup is a gateway with an https listener and its test PKI.
type tlsSetup struct {
	ca         *testCA
	gw, admin  string
	cmd        *exec.Cmd
	log        string
	certA      string // cert file of "a.test" (the first, default certificate)
	keyA       string
	origin     string
	originHits *atomic.Int64
}

// startTLSGateway starts the binary with an https listener "tls" holding
// two certificates: a.test (first, the default) and *.b.test; tlsExtra goes
// into [listeners.tls], listenerExtra into [[listeners]].
func startTLSGateway(t *testing.T, listenerExtra, tlsExtra string) *tlsSetup {
	t.Helper()
	s := &tlsSetup{ca: newTestCA(t, "front")}
	s.certA, s.keyA, _ = s.ca.issue(t, "a", "a.test", leafOpts{dns: []string{"a.test"}})
	certB, keyB, _ := s.ca.issue(t, "b", "b wildcard", leafOpts{dns: []string{"*.b.test"}})
	s.origin, s.originHits = tlsOrigin(t, "X-Client-Identity")
	s.gw, s.admin = freeAddr(t), freeAddr(t)
	s.cmd, s.log = startBinaryLog(t, fmt.Sprintf(`
[admin]
listen = %q
[engine]
event_loops = 2
[log]
access_log = false
[[listeners]]
name = "tls"
listen = %q
protocol = "https"
max_connections = 2000
max_connections_per_ip = 0
%s
[listeners.timeouts]
body_min_rate = 0
[listeners.tls]
handshake_timeout = "1s"
%s
[[listeners.tls.certificates]]
cert_file = %q
key_file = %q
[[listeners.tls.certificates]]
cert_file = %q
key_file = %q
[[listeners.routes]]
cluster = "app"
[[clusters]]
name = "app"
endpoints = [ { address = %q } ]
`, s.admin, s.gw, listenerExtra, tlsExtra, s.certA, s.keyA, certB, keyB, s.origin), s.admin)
	waitReady(t, s.admin)
	return s
}

// tlsClient is an HTTP client over TLS trusting ca, speaking HTTP/2 when
// h2, HTTP/1.1 otherwise, sending serverName as SNI.
func tlsClient(ca *testCA, serverName string, h2 bool, certs ...tls.Certificate) *http.Client {
	cfg := &tls.Config{RootCAs: ca.pool, ServerName: serverName, Certificates: certs}
	if h2 {
		tr := &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true, Protocols: new(http.Protocols)}
		tr.Protocols.SetHTTP2(true)
		return &http.Client{Timeout: 10 * time.Second, Transport: tr}
	}
	cfg.NextProtos = []string{"http/1.1"}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: false, MaxIdleConnsPerHost: 64}}
}

func getBody(t *testing.T, c *http.Client, url string, hdr ...string) (int, string, *http.Response) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp
}

// scrape returns the admin /metrics text.
func scrape(t *testing.T, admin string) string {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// goroutines reads the gateway's goroutine count from its pprof endpoint.
// goroutineDump is the gateway's goroutine profile, grouped by stack
// (debug=1), for a failure message.
func goroutineDump(admin string) string {
	resp, err := http.Get("http://" + admin + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		return err.Error()
	}
	defer func() { _ = resp.Body.Close() }()
	dump, err := io.ReadAll(resp.Body)
	if err != nil {
		return err.Error()
	}
	return string(dump)
}

func goroutines(t *testing.T, admin string) int {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	dump, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`^goroutine profile: total (\d+)`).FindSubmatch(dump)
	if m == nil {
		t.Fatalf("goroutine profile: %.80q", dump)
	}
	n, _ := strconv.Atoi(string(m[1]))
	// Pooled goroutines waiting for work (engine/gopool.go, and gnet's
	// ants pool, whose idle workers expire after 10 s) are bounded and
	// belong to no stream: a group whose innermost frame is a pool's wait
	// is not counted.
	for _, g := range regexp.MustCompile(`(?m)^(\d+) @ [^\n]*\n#\s+0x[0-9a-f]+\s+(\S+)`).FindAllSubmatch(dump, -1) {
		if strings.HasPrefix(string(g[2]), "github.com/expressgateway/expressgateway/engine.(*goPool).worker+") ||
			strings.HasPrefix(string(g[2]), "github.com/panjf2000/ants/v2.(*goWorker).run.func1+") {
			k, _ := strconv.Atoi(string(g[1]))
			n -= k
		}
	}
	return n
}

// TestTLSFront: an https listener serves HTTP/1.1 and HTTP/2 by ALPN with
// X-Forwarded-Proto: https; SNI picks the certificate (exact, wildcard, the
// first when nothing matches or no SNI); the handshake metrics count.
func TestTLSFront(t *testing.T) {
	s := startTLSGateway(t, "", "")
	base := "https://" + s.gw

	for _, h2 := range []bool{false, true} {
		c := tlsClient(s.ca, "a.test", h2)
		for i := 0; i < 3; i++ {
			code, body, resp := getBody(t, c, base+"/hello", "X-Forwarded-Proto", "http")
			if code != 200 || !strings.Contains(body, "xfp=https\n") || !strings.Contains(body, "path=/hello") {
				t.Fatalf("h2=%v: %d %q", h2, code, body)
			}
			if want := map[bool]int{false: 1, true: 2}[h2]; resp.ProtoMajor != want {
				t.Fatalf("h2=%v: response over HTTP/%d", h2, resp.ProtoMajor)
			}
			if !strings.Contains(body, "xff=127.0.0.1") {
				t.Fatalf("X-Forwarded-For lost: %q", body)
			}
		}
	}

	// SNI.
	for _, tc := range []struct{ sni, want string }{
		{"a.test", "a.test"}, {"x.b.test", "b wildcard"}, {"A.TEST", "a.test"},
		{"none.test", "a.test"}, {"", "a.test"}, {"deep.x.b.test", "a.test"},
	} {
		conn, err := tls.Dial("tcp", s.gw, &tls.Config{ServerName: tc.sni, InsecureSkipVerify: true})
		if err != nil {
			t.Fatalf("SNI %q: %v", tc.sni, err)
		}
		got := conn.ConnectionState().PeerCertificates[0].Subject.CommonName
		_ = conn.Close()
		if got != tc.want {
			t.Errorf("SNI %q: certificate %q, want %q", tc.sni, got, tc.want)
		}
	}

	// TLS 1.2 and 1.3 both negotiate; ALPN as offered.
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		for _, alpn := range [][]string{{"h2"}, {"http/1.1"}, nil} {
			conn, err := tls.Dial("tcp", s.gw, &tls.Config{RootCAs: s.ca.pool, ServerName: "a.test", MinVersion: v, MaxVersion: v, NextProtos: alpn})
			if err != nil {
				t.Fatalf("version %x alpn %v: %v", v, alpn, err)
			}
			st := conn.ConnectionState()
			_ = conn.Close()
			want := ""
			if len(alpn) > 0 {
				want = alpn[0]
			}
			if st.Version != v || st.NegotiatedProtocol != want {
				t.Errorf("version %x alpn %v: got version %x alpn %q", v, alpn, st.Version, st.NegotiatedProtocol)
			}
		}
	}
	// A client offering only an unknown protocol is refused.
	if conn, err := tls.Dial("tcp", s.gw, &tls.Config{RootCAs: s.ca.pool, ServerName: "a.test", NextProtos: []string{"spdy/3"}}); err == nil {
		_ = conn.Close()
		t.Error("ALPN spdy/3 accepted")
	}
	// HTTP/1.1 by ALPN must not be turned into HTTP/2 by a preface.
	conn, err := tls.Dial("tcp", s.gw, &tls.Config{RootCAs: s.ca.pool, ServerName: "a.test", NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.WriteString(conn, http2.ClientPreface)
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	line, _ := bufio.NewReader(conn).ReadString('\n')
	_ = conn.Close()
	if !strings.HasPrefix(line, "HTTP/1.1 400") && !strings.HasPrefix(line, "HTTP/1.1 505") {
		t.Errorf("HTTP/2 preface on an http/1.1 ALPN connection: %q", line)
	}

	m := scrape(t, s.admin)
	if v := metricValue(m, `expressgateway_tls_handshakes_total{listener="tls",result="ok"}`); v < 10 {
		t.Errorf("handshakes ok = %v", v)
	}
	if v := metricValue(m, `expressgateway_tls_connections_total{listener="tls",version="1.3",alpn="h2"}`); v < 1 {
		t.Errorf("tls_connections_total 1.3/h2 = %v", v)
	}
	if v := metricValue(m, `expressgateway_tls_connections_total{listener="tls",version="1.2",alpn="http/1.1"}`); v < 1 {
		t.Errorf("tls_connections_total 1.2/http/1.1 = %v", v)
	}
	if v := metricValue(m, `expressgateway_tls_handshakes_total{listener="tls",result="error",reason="alpn"}`); v != 1 {
		t.Errorf("alpn refusals = %v\n%s", v, grepLines(m, "tls_handshakes"))
	}
	if v := metricValue(m, fmt.Sprintf(`expressgateway_tls_certificate_expiry_seconds{listener="tls",certificate=%q}`, s.certA)); v < float64(time.Now().Unix()) {
		t.Errorf("certificate expiry gauge = %v", v)
	}
	checkScrapeAgainstDoc(t, m, metricsDoc(t), func(d docFamily) bool {
		return d.section == "TLS" && !strings.Contains(d.help, "endpoints of clusters")
	})
}

func grepLines(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestTLSBadInput: plaintext HTTP on the TLS port gets a 400 in clear; a
// ClientHello cut short and a silent client are closed at
// handshake_timeout; garbage records are closed at once; each is counted
// and no goroutine is left behind.
func TestTLSBadInput(t *testing.T) {
	s := startTLSGateway(t, "", "")
	// Settle, then count.
	time.Sleep(200 * time.Millisecond)
	before := goroutines(t, s.admin)

	// Plaintext HTTP.
	if line := rawStatusLine(t, s.gw, "GET / HTTP/1.1\r\nHost: a.test\r\n\r\n"); !strings.HasPrefix(line, "HTTP/1.0 400") {
		t.Errorf("plaintext on the TLS port: %q", line)
	}
	// Garbage records.
	closedWithin := func(what string, payload []byte, bound time.Duration) {
		t.Helper()
		c, err := net.Dial("tcp", s.gw)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = c.Close() }()
		start := time.Now()
		if len(payload) > 0 {
			_, _ = c.Write(payload)
		}
		_ = c.SetReadDeadline(time.Now().Add(bound + 2*time.Second))
		_, _ = io.Copy(io.Discard, c)
		if took := time.Since(start); took > bound+500*time.Millisecond {
			t.Errorf("%s: closed after %v, want within %v", what, took, bound)
		}
	}
	closedWithin("garbage record", []byte("\x16\x03\x01\xff\xff"+strings.Repeat("\x00", 64)), 1500*time.Millisecond)
	closedWithin("non-TLS bytes", []byte("\x00\x01\x02\x03\x04\x05\x06\x07"), 500*time.Millisecond)
	// A ClientHello cut short: the first 40 bytes of a real one.
	hello := captureClientHello(t)
	closedWithin("ClientHello cut short", hello[:40], 1500*time.Millisecond)
	closedWithin("silent client", nil, 1500*time.Millisecond)

	// Many at once, then the goroutines must come back down.
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", s.gw)
			if err != nil {
				return
			}
			_, _ = c.Write(hello[:len(hello)/2])
			_ = c.SetReadDeadline(time.Now().Add(4 * time.Second))
			_, _ = io.Copy(io.Discard, c)
			_ = c.Close()
		}()
	}
	wg.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for {
		after := goroutines(t, s.admin)
		if after <= before+2 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("goroutines: %d before, %d after the bad clients left", before, after)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	m := scrape(t, s.admin)
	for reason, min := range map[string]float64{"http_on_tls_port": 1, "not_tls": 1, "timeout": 52} {
		if v := metricValue(m, fmt.Sprintf(`expressgateway_tls_handshakes_total{listener="tls",result="error",reason=%q}`, reason)); v < min {
			t.Errorf("reason %s: %v, want at least %v\n%s", reason, v, min, grepLines(m, "tls_handshakes_total"))
		}
	}
	// Still serving.
	if code, _, _ := getBody(t, tlsClient(s.ca, "a.test", false), "https://"+s.gw+"/"); code != 200 {
		t.Fatalf("after the bad input: %d", code)
	}
}

// captureClientHello returns the bytes of a real ClientHello.
func captureClientHello(t *testing.T) []byte {
	t.Helper()
	a, b := net.Pipe()
	go func() {
		c := tls.Client(a, &tls.Config{ServerName: "a.test", InsecureSkipVerify: true})
		_ = c.HandshakeContext(context.Background())
	}()
	buf := make([]byte, 4096)
	_ = b.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := b.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	_ = a.Close()
	_ = b.Close()
	return buf[:n]
}

// TestTLSPeers: curl (SNI by --resolve, two names and one that matches
// none), openssl s_client (versions and ALPN), h2load over TLS and h2spec
// over TLS, against the binary.
func TestTLSPeers(t *testing.T) {
	s := startTLSGateway(t, "", "")
	_, port, _ := net.SplitHostPort(s.gw)

	for _, tc := range []struct{ name, subject string }{
		{"a.test", "CN=a.test"}, {"x.b.test", "CN=b wildcard"}, {"none.test", "CN=a.test"},
	} {
		out, err := exec.Command("curl", "-sv", "--cacert", s.ca.file, "-k", "--resolve", tc.name+":"+port+":127.0.0.1",
			"https://"+tc.name+":"+port+"/curl").CombinedOutput()
		if err != nil {
			t.Fatalf("curl %s: %v\n%s", tc.name, err, out)
		}
		if !regexp.MustCompile(`subject: .*` + regexp.QuoteMeta(tc.subject) + `\n`).MatchString(string(out)) {
			t.Errorf("curl %s: certificate subject not %s:\n%s", tc.name, tc.subject, out)
		}
		if !strings.Contains(string(out), "xfp=https") {
			t.Errorf("curl %s: body:\n%s", tc.name, out)
		}
	}
	// curl verifying the chain properly for the exact name, over HTTP/2.
	out, err := exec.Command("curl", "-s", "--http2", "--cacert", s.ca.file, "--resolve", "a.test:"+port+":127.0.0.1",
		"-w", "\nversion=%{http_version}\n", "https://a.test:"+port+"/v").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "version=2") {
		t.Errorf("curl --http2 with verification: %v\n%s", err, out)
	}

	for _, tc := range []struct{ flag, alpn, proto, wantALPN string }{
		{"-tls1_2", "h2", "TLSv1.2", "h2"}, {"-tls1_3", "h2", "TLSv1.3", "h2"},
		{"-tls1_3", "http/1.1", "TLSv1.3", "http/1.1"},
	} {
		cmd := exec.Command("openssl", "s_client", "-connect", s.gw, "-servername", "a.test", tc.flag, "-alpn", tc.alpn, "-CAfile", s.ca.file)
		cmd.Stdin = strings.NewReader("")
		out, _ := cmd.CombinedOutput()
		o := string(out)
		if !strings.Contains(o, "ALPN protocol: "+tc.wantALPN) || !strings.Contains(o, tc.proto) || !strings.Contains(o, "Verify return code: 0 (ok)") {
			t.Errorf("openssl s_client %s -alpn %s:\n%s", tc.flag, tc.alpn, o)
		}
	}
	// TLS 1.1 is refused.
	cmd := exec.Command("openssl", "s_client", "-connect", s.gw, "-servername", "a.test", "-tls1_1")
	cmd.Stdin = strings.NewReader("")
	if out, _ := cmd.CombinedOutput(); !strings.Contains(string(out), "Cipher is (NONE)") {
		t.Errorf("TLS 1.1 negotiated:\n%s", out)
	}

	out, err = exec.Command("h2load", "-n", "2000", "-c", "10", "-m", "10", "https://127.0.0.1:"+port+"/h2load").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "2000 succeeded") {
		t.Errorf("h2load over TLS: %v\n%s", err, out)
	}

	bin := filepath.Join(t.TempDir(), "h2spec")
	build := exec.Command("go", "build", "-modfile=../../tools/h2spec.mod", "-o", bin, "github.com/summerwind/h2spec/cmd/h2spec")
	build.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building h2spec: %v\n%s", err, out)
	}
	out, err = exec.Command(bin, "-h", "127.0.0.1", "-p", port, "-t", "-k", "-o", "2").CombinedOutput()
	m := regexp.MustCompile(`(\d+) tests, (\d+) passed, (\d+) skipped, (\d+) failed`).FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("h2spec -t: %v\n%s", err, out)
	}
	if m[4] != "0" || m[2] == "0" {
		t.Fatalf("h2spec -t: %s\n%s", m[0], out)
	}
	t.Logf("h2spec over TLS: %s", m[0])
}

// TestTLSClientAuth: with client_auth = "require", a client certificate
// from the client CA is accepted and its identity reaches the upstream in
// client_identity_header; a client-sent header of that name never does;
// no certificate, or one from another CA, is refused and counted. With
// "request", a client without a certificate is served, still without the
// forged header.
func TestTLSClientAuth(t *testing.T) {
	clients := newTestCA(t, "clients")
	other := newTestCA(t, "other")
	good := clients.pair(t, "alice", "alice", leafOpts{client: true, uris: []string{"spiffe://test/alice"}, dns: []string{"alice.clients.test"}})
	bad := other.pair(t, "mallory", "mallory", leafOpts{client: true})
	for _, mode := range []string{"require", "request"} {
		t.Run(mode, func(t *testing.T) {
			s := startTLSGateway(t, "", fmt.Sprintf("client_auth = %q\nclient_ca_file = %q\nclient_identity_header = \"X-Client-Identity\"", mode, clients.file))
			url := "https://" + s.gw + "/id"
			for _, h2 := range []bool{false, true} {
				code, body, _ := getBody(t, tlsClient(s.ca, "a.test", h2, good), url, "X-Client-Identity", "Hash=forged;URI=spiffe://test/admin", "x-client-identity", "again")
				if code != 200 || !strings.Contains(body, "identities=1\n") || !strings.Contains(body, "URI=spiffe://test/alice") ||
					!strings.Contains(body, `Subject="CN=alice,O=ExpressGateway tests"`) || !strings.Contains(body, "DNS=alice.clients.test") ||
					strings.Contains(body, "forged") || strings.Contains(body, "again") {
					t.Fatalf("h2=%v with a good certificate: %d %q", h2, code, body)
				}
			}
			noCert := func(h2 bool, certs ...tls.Certificate) (int, string, error) {
				c := tlsClient(s.ca, "a.test", h2)
				if len(certs) > 0 {
					// Sent even though the server names other CAs.
					c.Transport.(*http.Transport).TLSClientConfig.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
						return &certs[0], nil
					}
				}
				req, _ := http.NewRequest("GET", url, nil)
				req.Header.Set("X-Client-Identity", "Hash=forged")
				resp, err := c.Do(req)
				if err != nil {
					return 0, "", err
				}
				defer func() { _ = resp.Body.Close() }()
				b, _ := io.ReadAll(resp.Body)
				return resp.StatusCode, string(b), nil
			}
			code, body, err := noCert(false)
			switch mode {
			case "require":
				if err == nil {
					t.Fatalf("no client certificate: served %d %q", code, body)
				}
			case "request":
				if err != nil || code != 200 || !strings.Contains(body, "identities=0\n") {
					t.Fatalf("no client certificate with request: %v %d %q", err, code, body)
				}
			}
			if code, body, err := noCert(false, bad); err == nil {
				t.Fatalf("a certificate from another CA: served %d %q", code, body)
			}
			deadline := time.Now().Add(3 * time.Second)
			want := map[string]float64{"require": 2, "request": 1}[mode] // no certificate is no refusal with "request"
			for {
				v := metricValue(scrape(t, s.admin), `expressgateway_tls_handshakes_total{listener="tls",result="error",reason="client_certificate"}`)
				if v >= want {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("client_certificate refusals = %v, want %v\n%s", v, want, grepLines(scrape(t, s.admin), "tls_handshakes"))
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}

// TestTLSRotationUnderLoad: 10 s of keep-alive and new-connection load over
// TLS while the certificate is replaced 5 times: no failed request, the new
// certificate is served to new handshakes after each rotation, and a broken
// replacement is ignored (the previous pair stays), counted.
func TestTLSRotationUnderLoad(t *testing.T) {
	s := startTLSGateway(t, "", "")
	url := "https://" + s.gw + "/load"
	stop := make(chan struct{})
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	load := func(c func() *http.Client) {
		defer wg.Done()
		cl := c()
		for {
			select {
			case <-stop:
				return
			default:
			}
			resp, err := cl.Get(url)
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode == 200 {
					ok.Add(1)
					continue
				}
				err = fmt.Errorf("status %d", resp.StatusCode)
			}
			failed.Add(1)
			firstErr.CompareAndSwap(nil, err.Error())
		}
	}
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go load(func() *http.Client { return tlsClient(s.ca, "a.test", i%2 == 1) }) // keep-alive, h1 and h2
	}
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go load(func() *http.Client { // a new connection per request
			c := tlsClient(s.ca, "a.test", false)
			c.Transport.(*http.Transport).DisableKeepAlives = true
			return c
		})
	}
	served := func() string {
		conn, err := tls.Dial("tcp", s.gw, &tls.Config{RootCAs: s.ca.pool, ServerName: "a.test"})
		if err != nil {
			t.Errorf("dial: %v", err)
			return ""
		}
		defer func() { _ = conn.Close() }()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	waitServed := func(serial string) {
		deadline := time.Now().Add(4 * time.Second)
		for served() != serial {
			if time.Now().After(deadline) {
				t.Fatalf("certificate %s not served 4 s after the rotation (still %s)", serial, served())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	start := time.Now()
	var last string
	for i := 0; i < 5; i++ {
		time.Sleep(800 * time.Millisecond)
		// The new pair is issued elsewhere, then moved over the served
		// files (key first, as certbot's deploy hooks and cp do in turn).
		cf, kf, leaf := s.ca.issue(t, fmt.Sprintf("next%d", i), "a.test", leafOpts{dns: []string{"a.test"}})
		must(t, os.Rename(kf, s.keyA))
		must(t, os.Rename(cf, s.certA))
		last = leaf.SerialNumber.String()
		waitServed(last)
	}
	before := metricValue(scrape(t, s.admin), `expressgateway_tls_certificate_rotations_total{listener="tls",result="error"}`)
	must(t, os.WriteFile(s.certA, []byte("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n"), 0o600))
	deadline := time.Now().Add(4 * time.Second)
	for metricValue(scrape(t, s.admin), `expressgateway_tls_certificate_rotations_total{listener="tls",result="error"}`) <= before {
		if time.Now().After(deadline) {
			t.Fatal("a broken certificate file was not counted as a failed rotation")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := served(); got != last {
		t.Fatalf("after a broken replacement the gateway serves %s, want the previous %s", got, last)
	}
	if rest := 10*time.Second - time.Since(start); rest > 0 {
		time.Sleep(rest)
	}
	close(stop)
	wg.Wait()
	if failed.Load() != 0 || ok.Load() < 100 {
		t.Fatalf("under rotation: %d ok, %d failed (first: %v)", ok.Load(), failed.Load(), firstErr.Load())
	}
	if v := metricValue(scrape(t, s.admin), `expressgateway_tls_certificate_rotations_total{listener="tls",result="ok"}`); v < 5 {
		t.Errorf("rotations ok = %v, want at least 5", v)
	}
	t.Logf("%d requests over TLS during 5 rotations and a broken one, 0 failed", ok.Load())
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// tlsUpstreamOrigin is an HTTPS origin with a certificate for api.internal
// from ca, speaking HTTP/2 and HTTP/1.1 by ALPN; it answers with the
// protocol, the SNI it got and the client certificate's CN, and counts
// /healthz probes. requireClient demands a client certificate from
// clientCA.
func tlsUpstreamOrigin(t *testing.T, ca *testCA, clientCA *testCA) (addr string, probes *atomic.Int64) {
	t.Helper()
	probes = new(atomic.Int64)
	cert := ca.pair(t, "api", "api.internal", leafOpts{dns: []string{"api.internal"}})
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}}
	if clientCA != nil {
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
		cfg.ClientCAs = clientCA.pool
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			probes.Add(1)
			return
		}
		cn := ""
		if len(r.TLS.PeerCertificates) > 0 {
			cn = r.TLS.PeerCertificates[0].Subject.CommonName
		}
		_, _ = fmt.Fprintf(w, "proto=%s sni=%s client=%s xfp=%s", r.Proto, r.TLS.ServerName, cn, r.Header.Get("X-Forwarded-Proto"))
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String(), probes
}

// TestTLSUpstream: clusters speak TLS to their endpoints, verified against
// the cluster's CA and name: HTTP/1.1 and HTTP/2 (ALPN h2), a client
// certificate for an endpoint that demands one, health checks over the
// same TLS; a wrong CA or a wrong name answers 502 with the reason counted.
func TestTLSUpstream(t *testing.T) {
	upCA, otherCA, clientCA := newTestCA(t, "upstream"), newTestCA(t, "other"), newTestCA(t, "gwclients")
	origin, probes := tlsUpstreamOrigin(t, upCA, nil)
	mOrigin, _ := tlsUpstreamOrigin(t, upCA, clientCA)
	gwCert, gwKey, _ := clientCA.issue(t, "gateway", "the gateway", leafOpts{client: true})
	gw, admin := freeAddr(t), freeAddr(t)
	cluster := func(name, proto, origin, tlsTable, extra string) string {
		return fmt.Sprintf("[[clusters]]\nname = %q\nprotocol = %q\nendpoints = [ { address = %q } ]\ntls = %s\n%s\n", name, proto, origin, tlsTable, extra)
	}
	cfg := fmt.Sprintf(`
[admin]
listen = %q
[log]
access_log = false
[[listeners]]
name = "web"
listen = %q
[[listeners.routes]]
host = "h1.test"
cluster = "h1"
[[listeners.routes]]
host = "h2.test"
cluster = "h2"
[[listeners.routes]]
host = "wrongca.test"
cluster = "wrongca"
[[listeners.routes]]
host = "wrongname.test"
cluster = "wrongname"
[[listeners.routes]]
host = "mtls.test"
cluster = "mtls"
[[listeners.routes]]
host = "nocert.test"
cluster = "nocert"
`, admin, gw) +
		cluster("h1", "http1", origin, fmt.Sprintf(`{ enabled = true, ca_file = %q, server_name = "api.internal" }`, upCA.file),
			"[clusters.health_check]\ntype = \"http\"\npath = \"/healthz\"\ninterval = \"200ms\"\ntimeout = \"150ms\"") +
		cluster("h2", "h2", origin, fmt.Sprintf(`{ enabled = true, ca_file = %q, server_name = "api.internal" }`, upCA.file), "") +
		cluster("wrongca", "http1", origin, fmt.Sprintf(`{ enabled = true, ca_file = %q, server_name = "api.internal" }`, otherCA.file), "") +
		cluster("wrongname", "http1", origin, fmt.Sprintf(`{ enabled = true, ca_file = %q, server_name = "other.internal" }`, upCA.file), "") +
		cluster("mtls", "h2", mOrigin, fmt.Sprintf(`{ enabled = true, ca_file = %q, server_name = "api.internal", cert_file = %q, key_file = %q }`, upCA.file, gwCert, gwKey), "") +
		cluster("nocert", "http1", mOrigin, fmt.Sprintf(`{ enabled = true, ca_file = %q, server_name = "api.internal" }`, upCA.file), "")
	startBinary(t, cfg, gw)
	waitReady(t, admin)
	c := &http.Client{Timeout: 10 * time.Second}
	get := func(host string) (int, string) {
		req, _ := http.NewRequest("GET", "http://"+gw+"/x", nil)
		req.Host = host
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", host, err)
		}
		defer func() { _ = resp.Body.Close() }()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for i := 0; i < 3; i++ {
		if code, body := get("h1.test"); code != 200 || body != "proto=HTTP/1.1 sni=api.internal client= xfp=http" {
			t.Fatalf("h1 over TLS: %d %q", code, body)
		}
		if code, body := get("h2.test"); code != 200 || body != "proto=HTTP/2.0 sni=api.internal client= xfp=http" {
			t.Fatalf("h2 over TLS: %d %q", code, body)
		}
		if code, body := get("mtls.test"); code != 200 || body != "proto=HTTP/2.0 sni=api.internal client=the gateway xfp=http" {
			t.Fatalf("mTLS upstream: %d %q", code, body)
		}
	}
	for _, host := range []string{"wrongca.test", "wrongname.test", "nocert.test"} {
		if code, body := get(host); code != 502 {
			t.Errorf("%s: %d %q, want 502", host, code, body)
		}
	}
	deadline := time.Now().Add(3 * time.Second)
	for probes.Load() < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("health checks over TLS: %d probes", probes.Load())
		}
		time.Sleep(50 * time.Millisecond)
	}
	m := scrape(t, admin)
	for sample, min := range map[string]float64{
		`expressgateway_upstream_tls_handshakes_total{cluster="wrongca",result="error",reason="verify"}`: 1,
		`expressgateway_upstream_tls_handshakes_total{cluster="wrongname",result="error",reason="name"}`: 1,
		`expressgateway_upstream_tls_handshakes_total{cluster="h2",result="ok"}`:                         1,
		`expressgateway_upstream_failures_total{cluster="wrongca",reason="tls_handshake"}`:               1,
	} {
		if v := metricValue(m, sample); v < min {
			t.Errorf("%s = %v, want at least %v\n%s", sample, v, min, grepLines(m, "tls"))
		}
	}
	checkScrapeAgainstDoc(t, m, metricsDoc(t), func(d docFamily) bool { return strings.Contains(d.help, "endpoints of clusters") })
}

// TestTLSLargeBodiesAndSlowReaders: over TLS, 48 MiB up (past
// max_inflight_bytes, so the exchange leaves the loop) and 48 MiB down to a
// client reading slowly, hashes equal, on HTTP/1.1 and HTTP/2, with
// pipelined keep-alive requests after each; the gateway's RSS stays
// bounded.
func TestTLSLargeBodiesAndSlowReaders(t *testing.T) {
	origin, _ := h1Origin(t)
	ca := newTestCA(t, "large")
	cert, key, _ := ca.issue(t, "large", "large.test", leafOpts{dns: []string{"large.test"}})
	gw, admin := freeAddr(t), freeAddr(t)
	cmd := startBinary(t, fmt.Sprintf(`
[admin]
listen = %q
[log]
access_log = false
[[listeners]]
name = "tls"
listen = %q
protocol = "https"
max_connections = 1000
[listeners.timeouts]
body_min_rate = 0
[listeners.limits]
max_inflight_bytes = "256KiB"
[listeners.tls]
[[listeners.tls.certificates]]
cert_file = %q
key_file = %q
[[listeners.routes]]
cluster = "app"
[[clusters]]
name = "app"
endpoints = [ { address = %q } ]
`, admin, gw, cert, key, origin), admin)
	waitReady(t, admin)
	const size = 48 << 20
	base := rssBytes(cmd.Process.Pid)
	peak, stopRSS := sampleRSS(cmd.Process.Pid)
	for _, h2 := range []bool{false, true} {
		c := tlsClient(ca, "large.test", h2)
		c.Timeout = 60 * time.Second
		// Up.
		pr := &patternReader{n: size, h: sha256.New()}
		ref := &patternReader{n: size, h: sha256.New()}
		_, _ = io.Copy(io.Discard, ref) // the expected hash (pr's is the transport's to write)
		resp, err := c.Post("https://"+gw+"/upload", "application/octet-stream", pr)
		if err != nil {
			t.Fatalf("h2=%v upload: %v", h2, err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		want := fmt.Sprintf("POST /upload %d %s", size, hex.EncodeToString(ref.h.Sum(nil)))
		if resp.StatusCode != 200 || !strings.HasPrefix(string(body), want) {
			t.Fatalf("h2=%v upload: %d %q, want %q", h2, resp.StatusCode, body, want)
		}
		// Down, read at about 16 MiB/s.
		resp, err = c.Get(fmt.Sprintf("https://%s/download?n=%d", gw, size))
		if err != nil {
			t.Fatalf("h2=%v download: %v", h2, err)
		}
		h := sha256.New()
		n, err := slowCopy(h, resp.Body, 16<<20)
		_ = resp.Body.Close()
		if err != nil || n != size || !bytes.Equal(h.Sum(nil), ref.h.Sum(nil)) {
			t.Fatalf("h2=%v download: %d bytes, err %v, hash equal %v", h2, n, err, bytes.Equal(h.Sum(nil), ref.h.Sum(nil)))
		}
		// The connection goes on.
		if code, _, _ := getBody(t, c, "https://"+gw+"/after"); code != 200 {
			t.Fatalf("h2=%v after the large bodies: %d", h2, code)
		}
	}
	stopRSS()
	m := scrape(t, admin)
	for _, dir := range []string{"request", "response"} {
		if v := metricValue(m, fmt.Sprintf(`expressgateway_stream_detach_total{direction=%q}`, dir)); v < 1 {
			t.Errorf("the %s over HTTP/1.1 did not leave the loop (stream_detach_total = %v): the test missed the TLS pump path", dir, v)
		}
	}
	if grew := peak.Load() - base; grew > 96<<20 {
		t.Errorf("RSS grew by %d MiB moving 4 × 48 MiB over TLS", grew>>20)
	}
	t.Logf("RSS %d MiB at start, peak %d MiB", base>>20, peak.Load()>>20)
}
