// SPDX-License-Identifier: GPL-3.0-only

package main

// HTTP/2 through the real binary, against real peers: the x/net/http2
// client, curl, nghttp and h2spec in front; Go's HTTP/1.1 server behind.

import (
	"bytes"
	"context"
	"crypto/sha256"
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
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// h2Client speaks HTTP/2 with prior knowledge over cleartext; dials counts
// the connections it opened.
func h2Client(dials *atomic.Int64) *http.Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if dials != nil {
				dials.Add(1)
			}
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
		HTTP2: &http.HTTP2Config{StrictMaxConcurrentRequests: true},
	}
	tr.Protocols = new(http.Protocols)
	tr.Protocols.SetUnencryptedHTTP2(true)
	return &http.Client{Timeout: 120 * time.Second, Transport: tr}
}

// h1Origin is the HTTP/1.1 upstream of the HTTP/2 tests.
//
//	/echo      answers method, path, body length and SHA-256, the request
//	           trailer X-Sum, and the Host it saw
//	/download  ?n=N bytes of pattern data with Content-Length
//	/trailers  a chunked body with the trailer X-Checksum
func h1Origin(t *testing.T) (addr string, requests *atomic.Int64) {
	addr, requests, _ = h1OriginComplete(t)
	return addr, requests
}

// h1OriginComplete is h1Origin that also counts the requests whose body
// arrived whole (as its framing said).
func h1OriginComplete(t *testing.T) (addr string, requests, complete *atomic.Int64) {
	return originServe(t, false)
}

// originServe starts the test origin on HTTP/1.1, or with h2c on HTTP/2
// with prior knowledge only.
func originServe(t *testing.T, h2c bool) (addr string, requests, complete *atomic.Int64) {
	t.Helper()
	requests, complete = new(atomic.Int64), new(atomic.Int64)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		switch r.URL.Path {
		case "/download":
			n, _ := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
			w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
			_, _ = io.Copy(w, &patternReader{n: n, h: sha256.New()})
		case "/trailers":
			w.Header().Set("Trailer", "X-Checksum")
			_, _ = io.WriteString(w, "part one;")
			w.(http.Flusher).Flush()
			_, _ = io.WriteString(w, "part two")
			w.Header().Set("X-Checksum", "abc123")
		case "/slowsink":
			// Takes the body at about 16 MiB/s, far slower than loopback
			// sends it.
			h := sha256.New()
			buf := make([]byte, 32<<10)
			var n int64
			for {
				k, err := r.Body.Read(buf)
				h.Write(buf[:k])
				n += int64(k)
				if err != nil {
					break
				}
				time.Sleep(2 * time.Millisecond)
			}
			_, _ = fmt.Fprintf(w, "%d %s", n, hex.EncodeToString(h.Sum(nil)))
		case "/hang":
			w.WriteHeader(200)
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				hangCancelled.Add(1)
			case <-time.After(10 * time.Second):
			}
		default:
			h := sha256.New()
			n, err := io.Copy(h, r.Body)
			if err != nil {
				return
			}
			complete.Add(1)
			w.Header().Set("X-Seen-Via", r.Header.Get("Via"))
			_, _ = fmt.Fprintf(w, "%s %s %d %s trailer=%s host=%s proto=%s", r.Method, r.URL.RequestURI(), n,
				hex.EncodeToString(h.Sum(nil)), r.Trailer.Get("X-Sum"), r.Host, r.Proto)
		}
	}), ReadHeaderTimeout: 5 * time.Second}
	if h2c {
		srv.Protocols = new(http.Protocols)
		srv.Protocols.SetUnencryptedHTTP2(true)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String(), requests, complete
}

// hangCancelled counts /hang requests the origin saw cancelled.
var hangCancelled atomic.Int64

func h2Gateway(t *testing.T, origin, listenerExtra string) (gw, admin string, cmd *exec.Cmd) {
	return h2GatewayCluster(t, origin, listenerExtra, "")
}

// h2GatewayCluster is h2Gateway with extra keys for the cluster (such as
// protocol = "h2c").
func h2GatewayCluster(t *testing.T, origin, listenerExtra, clusterExtra string) (gw, admin string, cmd *exec.Cmd) {
	t.Helper()
	gw, admin = freeAddr(t), freeAddr(t)
	cmd = startBinary(t, fmt.Sprintf(`
[admin]
listen = %q
[engine]
event_loops = 2
[log]
access_log = false
[[listeners]]
name = "web"
listen = %q
max_connections_per_ip = 0
%s
[listeners.timeouts]
body_min_rate = 0
[[listeners.routes]]
cluster = "app"
[[clusters]]
name = "app"
endpoints = [ { address = %q } ]
%s
`, admin, gw, listenerExtra, origin, clusterExtra), gw)
	return gw, admin, cmd
}

// TestH2ToHTTP1 sends HTTP/2 requests through the gateway to an HTTP/1.1
// upstream: GET, 200 concurrent streams on one connection, 32 MiB up and
// down with hashes, trailers both ways, and curl and nghttp as clients.
func TestH2ToHTTP1(t *testing.T) {
	origin, _ := h1Origin(t)
	gw, admin, _ := h2Gateway(t, origin, "[listeners.http2]\nmax_concurrent_streams = 250")
	var dials atomic.Int64
	c := h2Client(&dials)
	base := "http://" + gw

	t.Run("get", func(t *testing.T) {
		resp, err := c.Get(base + "/echo?x=1")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != 200 || resp.ProtoMajor != 2 {
			t.Fatalf("status %d proto %s", resp.StatusCode, resp.Proto)
		}
		if want := "GET /echo?x=1 0 "; !strings.HasPrefix(string(body), want) || !strings.Contains(string(body), "host="+gw) || !strings.Contains(string(body), "proto=HTTP/1.1") {
			t.Fatalf("body %q", body)
		}
		if resp.Header.Get("Via") == "" {
			t.Errorf("no Via on the response: %v", resp.Header)
		}
	})

	t.Run("200 concurrent streams", func(t *testing.T) {
		before := dials.Load()
		if failed := concurrentEchoGETs(c, base, 200); failed != 0 {
			t.Fatalf("%d of 200 streams failed", failed)
		}
		if d := dials.Load() - before; d > 0 {
			t.Errorf("the 200 streams opened %d new connections, want them multiplexed on the first", d)
		}
	})

	t.Run("32 MiB up and down", func(t *testing.T) {
		const size = 32 << 20
		src := &patternReader{n: size, h: sha256.New()}
		req, _ := http.NewRequest("POST", base+"/echo", src)
		req.ContentLength = size
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		want := fmt.Sprintf("POST /echo %d %s ", size, hex.EncodeToString(src.h.Sum(nil)))
		if !strings.HasPrefix(string(body), want) {
			t.Fatalf("upload: %q, want prefix %q", body, want)
		}
		resp, err = c.Get(fmt.Sprintf("%s/download?n=%d", base, size))
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		n, err := io.Copy(h, resp.Body)
		_ = resp.Body.Close()
		ref := sha256.New()
		_, _ = io.Copy(io.Discard, &patternReader{n: size, h: ref})
		if err != nil || n != size || !bytes.Equal(h.Sum(nil), ref.Sum(nil)) {
			t.Fatalf("download: %d bytes, %v, hash equal %v", n, err, bytes.Equal(h.Sum(nil), ref.Sum(nil)))
		}
		if resp.ContentLength != size {
			t.Errorf("content-length %d", resp.ContentLength)
		}
	})

	t.Run("trailers both ways", func(t *testing.T) {
		pr, pw := io.Pipe()
		req, _ := http.NewRequest("POST", base+"/echo", pr)
		req.Trailer = http.Header{"X-Sum": nil}
		go func() {
			_, _ = io.WriteString(pw, "hello")
			req.Trailer.Set("X-Sum", "5")
			_ = pw.Close()
		}()
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if !strings.Contains(string(body), " 5 ") || !strings.Contains(string(body), "trailer=5") {
			t.Fatalf("request trailers did not arrive: %q", body)
		}
		resp, err = c.Get(base + "/trailers")
		if err != nil {
			t.Fatal(err)
		}
		body, _ = io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if string(body) != "part one;part two" || resp.Trailer.Get("X-Checksum") != "abc123" {
			t.Fatalf("response %q trailers %v", body, resp.Trailer)
		}
	})

	t.Run("curl", func(t *testing.T) {
		out, err := exec.Command("curl", "-sS", "--http2-prior-knowledge", "-w", "\n%{http_version} %{http_code}", base+"/echo?via=curl").CombinedOutput()
		if err != nil {
			t.Fatalf("curl: %v\n%s", err, out)
		}
		if !strings.HasPrefix(string(out), "GET /echo?via=curl 0 ") || !strings.HasSuffix(string(out), "\n2 200") {
			t.Fatalf("curl: %q", out)
		}
	})

	t.Run("nghttp", func(t *testing.T) {
		out, err := exec.Command("nghttp", "-nv", base+"/echo?via=nghttp").CombinedOutput()
		if err != nil {
			t.Fatalf("nghttp: %v\n%s", err, out)
		}
		if !strings.Contains(string(out), ":status: 200") || !strings.Contains(string(out), "END_STREAM") {
			t.Fatalf("nghttp: %s", out)
		}
	})

	if n := metricSum(t, admin, `^expressgateway_http2_streams_total$`); n < 200 {
		t.Errorf("http2_streams_total %v", n)
	}
}

// concurrentEchoGETs sends n GET /echo?i=N at once through c and returns
// how many did not come back 200 with their own echo.
func concurrentEchoGETs(c *http.Client, base string, n int) int64 {
	var wg sync.WaitGroup
	var failed atomic.Int64
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			resp, err := c.Get(fmt.Sprintf("%s/echo?i=%d", base, i))
			if err != nil {
				failed.Add(1)
				return
			}
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode != 200 || !strings.HasPrefix(string(body), fmt.Sprintf("GET /echo?i=%d ", i)) {
				failed.Add(1)
			}
		}(i)
	}
	wg.Wait()
	return failed.Load()
}

// h2Framer opens a raw HTTP/2 connection (preface and SETTINGS sent, the
// server's SETTINGS acknowledged as they come) for frame-level tests.
type h2Framer struct {
	c   net.Conn
	fr  *http2.Framer
	enc *hpack.Encoder
	buf bytes.Buffer
}

func dialH2(t *testing.T, addr string) *h2Framer {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return dialH2On(t, c)
}

// dialH2On is dialH2 over an open connection (TLS with ALPN h2, say).
func dialH2On(t *testing.T, c net.Conn) *h2Framer {
	t.Helper()
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	f := &h2Framer{c: c, fr: http2.NewFramer(c, c)}
	f.enc = hpack.NewEncoder(&f.buf)
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	if err := f.fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	return f
}

// headers sends one HEADERS frame with fields given as name, value pairs
// exactly as written (no validation: that is what is being tested).
func (f *h2Framer) headers(t *testing.T, id uint32, end bool, kv ...string) {
	t.Helper()
	f.buf.Reset()
	for i := 0; i+1 < len(kv); i += 2 {
		_ = f.enc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
	}
	if err := f.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: f.buf.Bytes(), EndStream: end, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
}

// until reads frames until match accepts one (answering SETTINGS) and
// returns it, or fails on EOF.
func (f *h2Framer) until(t *testing.T, what string, match func(http2.Frame) bool) http2.Frame {
	t.Helper()
	for {
		fr, err := f.fr.ReadFrame()
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if s, ok := fr.(*http2.SettingsFrame); ok && !s.IsAck() {
			_ = f.fr.WriteSettingsAck()
		}
		if p, ok := fr.(*http2.PingFrame); ok && !p.IsAck() {
			_ = f.fr.WritePing(true, p.Data)
		}
		if match(fr) {
			return fr
		}
	}
}

func (f *h2Framer) response(t *testing.T, id uint32) string {
	t.Helper()
	var status string
	dec := hpack.NewDecoder(4096, func(hf hpack.HeaderField) {
		if hf.Name == ":status" {
			status = hf.Value
		}
	})
	f.until(t, "a response or reset", func(fr http2.Frame) bool {
		switch fr := fr.(type) {
		case *http2.HeadersFrame:
			if fr.StreamID == id {
				_, _ = dec.Write(fr.HeaderBlockFragment())
				return true
			}
		case *http2.RSTStreamFrame:
			if fr.StreamID == id {
				status = "RST " + fr.ErrCode.String()
				return true
			}
		case *http2.GoAwayFrame:
			status = "GOAWAY " + fr.ErrCode.String()
			return true
		}
		return false
	})
	return status
}

// TestH2MalformedNeverForwarded: every malformation of RFC 9113 sections
// 8.2 and 8.3 (and the gateway's own host rules) is refused at the frame
// level, the connection and its other streams go on, and nothing reaches
// the upstream.
func TestH2MalformedNeverForwarded(t *testing.T) {
	origin, requests, complete := h1OriginComplete(t)
	gw, admin, _ := h2Gateway(t, origin, "")
	ok := []string{":method", "GET", ":scheme", "http", ":authority", "a.test", ":path", "/ok"}
	cases := []struct {
		name string
		kv   []string
		want string
	}{
		{"uppercase name", append(ok[:8:8], "X-Upper", "1"), "RST PROTOCOL_ERROR"},
		{"connection field", append(ok[:8:8], "connection", "close"), "RST PROTOCOL_ERROR"},
		{"keep-alive field", append(ok[:8:8], "keep-alive", "5"), "RST PROTOCOL_ERROR"},
		{"transfer-encoding field", append(ok[:8:8], "transfer-encoding", "chunked"), "RST PROTOCOL_ERROR"},
		{"upgrade field", append(ok[:8:8], "upgrade", "h2c"), "RST PROTOCOL_ERROR"},
		{"te gzip", append(ok[:8:8], "te", "gzip"), "RST PROTOCOL_ERROR"},
		{"CR in value", append(ok[:8:8], "x-a", "1\r\nx-b: 2"), "RST PROTOCOL_ERROR"},
		{"NUL in value", append(ok[:8:8], "x-a", "1\x002"), "RST PROTOCOL_ERROR"},
		{"leading space in value", append(ok[:8:8], "x-a", " 1"), "RST PROTOCOL_ERROR"},
		{"pseudo after regular", []string{":method", "GET", ":scheme", "http", "x-a", "1", ":path", "/ok", ":authority", "a.test"}, "RST PROTOCOL_ERROR"},
		{"missing :path", []string{":method", "GET", ":scheme", "http", ":authority", "a.test"}, "RST PROTOCOL_ERROR"},
		{"duplicate :path", append(ok[:8:8], ":path", "/again"), "RST PROTOCOL_ERROR"},
		{"unknown pseudo", append(ok[:8:8], ":evil", "1"), "RST PROTOCOL_ERROR"},
		{"authority and host differ", append(ok[:8:8], "host", "admin.test"), "400"},
		{"fragment", []string{":method", "GET", ":scheme", "http", ":authority", "a.test", ":path", "/a#frag"}, "400"},
		{"backslash path", []string{":method", "GET", ":scheme", "http", ":authority", "a.test", ":path", "/..\\admin"}, "400"},
		{"bad port", []string{":method", "GET", ":scheme", "http", ":authority", "a.test:99999", ":path", "/ok"}, "400"},
		{"CONNECT", []string{":method", "CONNECT", ":authority", "evil.test:443"}, "501"},
	}
	f := dialH2(t, gw)
	id := uint32(1)
	for _, tc := range cases {
		before := requests.Load()
		f.headers(t, id, true, tc.kv...)
		if got := f.response(t, id); got != tc.want {
			t.Errorf("%s: got %s, want %s", tc.name, got, tc.want)
		}
		if requests.Load() != before {
			t.Errorf("%s: reached the upstream", tc.name)
		}
		id += 2
	}
	// The same connection still serves a good request.
	f.headers(t, id, true, ok...)
	if got := f.response(t, id); got != "200" {
		t.Fatalf("after the malformed streams: %s", got)
	}
	id += 2
	// content-length that the DATA does not match: the head may already
	// be upstream, but the upstream never gets a complete request.
	before := complete.Load()
	f.headers(t, id, false, ":method", "POST", ":scheme", "http", ":authority", "a.test", ":path", "/cl", "content-length", "10")
	if err := f.fr.WriteData(id, true, []byte("12345")); err != nil {
		t.Fatal(err)
	}
	got := f.response(t, id)
	if got != "RST PROTOCOL_ERROR" {
		// The head may have been forwarded before the short body ended;
		// the upstream must then never see a complete request.
		if !strings.HasPrefix(got, "RST") && got != "502" {
			t.Errorf("content-length mismatch: %s", got)
		}
	}
	time.Sleep(200 * time.Millisecond)
	if complete.Load() != before {
		t.Errorf("content-length mismatch: the upstream got a complete request")
	}
	if n := metricSum(t, admin, `^expressgateway_guard_tripped_total\{guard="h2_.*"\}$`); n < 13 {
		t.Errorf("h2 guard hits %v, want at least 13", n)
	}
}

// TestH2SpecConformance runs h2spec (pinned in tools/h2spec.mod) against an
// HTTP/2-only listener: every case must pass. On the shared HTTP/1.1 + 2
// port the one difference is "invalid connection preface", which gets an
// HTTP/1.1 400 there by design.
func TestH2SpecConformance(t *testing.T) {
	origin, _ := h1Origin(t)
	gw, _, _ := h2Gateway(t, origin, `http_versions = ["2"]`)
	bin := filepath.Join(t.TempDir(), "h2spec")
	build := exec.Command("go", "build", "-modfile=../../tools/h2spec.mod", "-o", bin, "github.com/summerwind/h2spec/cmd/h2spec")
	build.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building h2spec: %v\n%s", err, out)
	}
	host, port, _ := net.SplitHostPort(gw)
	out, err := exec.Command(bin, "-h", host, "-p", port, "-o", "2").CombinedOutput()
	m := regexp.MustCompile(`(\d+) tests, (\d+) passed, (\d+) skipped, (\d+) failed`).FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("h2spec: %v\n%s", err, out)
	}
	if m[4] != "0" || m[2] == "0" {
		t.Fatalf("h2spec: %s\n%s", m[0], out)
	}
	t.Logf("h2spec: %s", m[0])
}

// TestH2MemoryBounded: 1 GiB up to an upstream reading at ~10 MiB/s and
// 1 GiB down to a client reading at ~10 MiB/s, each over one HTTP/2 stream
// and at the same time, hashes equal and gateway RSS growth under 64 MiB;
// then 100 concurrent 10 MiB downloads on one connection, RSS growth under
// 128 MiB. Flow control is the only thing that bounds the gateway here.
// EG_STREAM_BYTES and EG_STREAM_RATE override the size and the rate.
func TestH2MemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("streams 2 GiB at 10 MiB/s (about 110 s); skipped with -short")
	}
	size := envInt("EG_STREAM_BYTES", 1<<30)
	rate := envInt("EG_STREAM_RATE", 10<<20)
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
	gw, _, cmd := h2Gateway(t, ln.Addr().String(), "")
	pid := cmd.Process.Pid
	c := h2Client(nil)
	if resp, err := c.Get("http://" + gw + "/download?n=1"); err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
	}
	time.Sleep(200 * time.Millisecond)
	base := rssBytes(pid)
	peak, stopSampling := sampleRSS(pid)
	refSum := func(n int64) []byte {
		h := sha256.New()
		_, _ = io.Copy(io.Discard, &patternReader{n: n, h: h})
		return h.Sum(nil)
	}
	var wg sync.WaitGroup
	var upErr, downErr error
	wg.Add(2)
	go func() {
		defer wg.Done()
		src := &patternReader{n: size, h: sha256.New()}
		req, _ := http.NewRequest("POST", "http://"+gw+"/upload", src)
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
		resp, err := h2Client(nil).Get(fmt.Sprintf("http://%s/download?n=%d", gw, size))
		if err != nil {
			downErr = err
			return
		}
		h := sha256.New()
		n, err := slowCopy(h, resp.Body, rate)
		_ = resp.Body.Close()
		if err != nil || n != size || !bytes.Equal(h.Sum(nil), refSum(size)) {
			downErr = fmt.Errorf("download: %d bytes, %v", n, err)
		}
	}()
	wg.Wait()
	grow1 := peak.Load() - base
	if upErr != nil || downErr != nil {
		t.Fatalf("upload: %v; download: %v", upErr, downErr)
	}
	t.Logf("%d MiB each way over single streams: RSS %d MiB → peak %d MiB (growth %d MiB)", size>>20, base>>20, peak.Load()>>20, grow1>>20)
	if grow1 > 64<<20 {
		t.Errorf("RSS grew by %d MiB, want < 64", grow1>>20)
	}

	// 100 concurrent 10 MiB downloads on one connection.
	const each = 10 << 20
	ref := refSum(each)
	var dials atomic.Int64
	mc := h2Client(&dials)
	// One request first, so that the 100 find the connection up.
	if resp, err := mc.Get("http://" + gw + "/download?n=1"); err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
	}
	var failed atomic.Int64
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := mc.Get(fmt.Sprintf("http://%s/download?n=%d", gw, each))
			if err != nil {
				failed.Add(1)
				return
			}
			h := sha256.New()
			n, err := io.Copy(h, resp.Body)
			_ = resp.Body.Close()
			if err != nil || n != each || !bytes.Equal(h.Sum(nil), ref) {
				failed.Add(1)
			}
		}()
	}
	wg.Wait()
	stopSampling()
	grow2 := peak.Load() - base
	t.Logf("100 × 10 MiB on %d connection(s): peak RSS %d MiB (growth %d MiB)", dials.Load(), peak.Load()>>20, grow2>>20)
	if failed.Load() != 0 {
		t.Fatalf("%d of 100 downloads failed", failed.Load())
	}
	if dials.Load() != 1 {
		t.Errorf("the downloads used %d connections, want 1", dials.Load())
	}
	if grow2 > 128<<20 {
		t.Errorf("RSS grew by %d MiB, want < 128", grow2>>20)
	}
}

// TestH2DrainTwoStepGoAway: SIGTERM sends GOAWAY the graceful two-step way
// (2^31-1 first, then the last stream id after a PING round trip); the
// stream in flight finishes; the connection then closes and the process
// exits.
func TestH2DrainTwoStepGoAway(t *testing.T) {
	origin, _, _ := originServe(t, false)
	gw, _ := freeAddr(t), ""
	cmd := startBinary(t, fmt.Sprintf(`
[admin]
listen = ""
[engine]
event_loops = 1
drain_settle = "0s"
drain_timeout = "10s"
[log]
access_log = false
[[listeners]]
name = "web"
listen = %q
[listeners.timeouts]
body_min_rate = 0
[[listeners.routes]]
cluster = "app"
[[clusters]]
name = "app"
endpoints = [ { address = %q } ]
`, gw, origin), gw)
	f := dialH2(t, gw)
	f.headers(t, 1, true, ":method", "GET", ":scheme", "http", ":authority", "a.test", ":path", "/download?n=4194304")
	if got := f.response(t, 1); got != "200" {
		t.Fatalf("stream 1: %s", got)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	var goaways []uint32
	var got int
	ended := false
	for !ended || len(goaways) < 2 {
		fr, err := f.fr.ReadFrame()
		if err != nil {
			t.Fatalf("after SIGTERM: %v (GOAWAYs %v, %d bytes, ended %v)", err, goaways, got, ended)
		}
		switch fr := fr.(type) {
		case *http2.GoAwayFrame:
			goaways = append(goaways, fr.LastStreamID)
		case *http2.PingFrame:
			if !fr.IsAck() {
				_ = f.fr.WritePing(true, fr.Data)
			}
		case *http2.DataFrame:
			got += len(fr.Data())
			// Keep the windows open so the download can finish.
			if n := uint32(len(fr.Data())); n > 0 {
				_ = f.fr.WriteWindowUpdate(0, n)
				_ = f.fr.WriteWindowUpdate(1, n)
			}
			ended = fr.StreamEnded()
		}
	}
	if goaways[0] != 1<<31-1 || goaways[1] != 1 {
		t.Fatalf("GOAWAY last stream ids %v, want [2147483647 1]", goaways)
	}
	if got != 4194304 {
		t.Fatalf("stream 1 got %d bytes, want the whole 4 MiB", got)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the gateway did not exit after the drain")
	}
}

// TestH2ConnectionLimits: max_requests_per_connection counts streams and
// ends the connection with GOAWAY once the last stream is done; an idle
// HTTP/2 connection is closed (GOAWAY, then close) after idle_keepalive.
func TestH2ConnectionLimits(t *testing.T) {
	origin, _, _ := originServe(t, false)
	gw := freeAddr(t)
	startBinary(t, fmt.Sprintf(`
[admin]
listen = ""
[log]
access_log = false
[[listeners]]
name = "web"
listen = %q
max_requests_per_connection = 3
[listeners.timeouts]
idle_keepalive = "1s"
[[listeners.routes]]
cluster = "app"
[[clusters]]
name = "app"
endpoints = [ { address = %q } ]
`, gw, origin), gw)
	f := dialH2(t, gw)
	for id := uint32(1); id <= 5; id += 2 {
		f.headers(t, id, true, ":method", "GET", ":scheme", "http", ":authority", "a.test", ":path", "/echo")
		if got := f.response(t, id); got != "200" {
			t.Fatalf("stream %d: %s", id, got)
		}
	}
	start := time.Now()
	var last uint32
	f.until(t, "GOAWAY after the third stream", func(fr http2.Frame) bool {
		if g, ok := fr.(*http2.GoAwayFrame); ok {
			last = g.LastStreamID
			return g.LastStreamID != 1<<31-1
		}
		return false
	})
	if last != 5 {
		t.Fatalf("final GOAWAY last stream %d, want 5", last)
	}
	t.Logf("GOAWAY %v after the third stream", time.Since(start))

	g := dialH2(t, gw)
	g.headers(t, 1, true, ":method", "GET", ":scheme", "http", ":authority", "a.test", ":path", "/echo")
	if got := g.response(t, 1); got != "200" {
		t.Fatal(got)
	}
	idleStart := time.Now()
	for {
		fr, err := g.fr.ReadFrame()
		if err != nil {
			break // closed
		}
		if p, ok := fr.(*http2.PingFrame); ok && !p.IsAck() {
			_ = g.fr.WritePing(true, p.Data)
		}
	}
	if el := time.Since(idleStart); el < 900*time.Millisecond || el > 4*time.Second {
		t.Fatalf("idle connection closed after %v, want about idle_keepalive (1s)", el)
	}
}
