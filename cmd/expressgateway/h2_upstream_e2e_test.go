// SPDX-License-Identifier: GPL-3.0-only

package main

// The translation matrix through the binary: HTTP/1.1 and HTTP/2 clients to
// HTTP/1.1 and h2c upstreams (net/http's server on both), and what an h2c
// upstream can do to a gateway: GOAWAY with streams it did not process, a
// client that goes away mid-stream.

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// TestTranslationMatrix: every front (h1, h2) to every back (h1, h2c):
// GET, 16 MiB up and down with hashes, trailers both ways where both
// protocols carry them, HEAD and 204 bodyless, 100 concurrent requests.
func TestTranslationMatrix(t *testing.T) {
	for _, back := range []string{"h1", "h2c"} {
		origin, _, _ := originServe(t, back == "h2c")
		clusterExtra := ""
		wantProto := "HTTP/1.1"
		if back == "h2c" {
			clusterExtra = `protocol = "h2c"`
			wantProto = "HTTP/2.0"
		}
		gw, _, _ := h2GatewayCluster(t, origin, "", clusterExtra)
		for _, front := range []string{"h1", "h2"} {
			t.Run(front+"→"+back, func(t *testing.T) {
				var c *http.Client
				if front == "h2" {
					c = h2Client(nil)
				} else {
					c = &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 128}}
				}
				base := "http://" + gw
				resp, err := c.Get(base + "/echo?cell=" + front + back)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "GET /echo?cell="+front+back+" 0 ") || !strings.HasSuffix(string(body), "proto="+wantProto) {
					t.Fatalf("GET: %d %q", resp.StatusCode, body)
				}
				if !strings.Contains(string(body), "host="+gw) {
					t.Errorf("upstream saw another host: %q", body)
				}
				// Via names the version each message was received with.
				reqVia, respVia := "1.1 expressgateway", "1.1 expressgateway"
				if front == "h2" {
					reqVia = "2 expressgateway"
				}
				if back == "h2c" {
					respVia = "2 expressgateway"
				}
				if got := resp.Header.Get("X-Seen-Via"); got != reqVia {
					t.Errorf("the upstream saw Via %q, want %q", got, reqVia)
				}
				if got := resp.Header.Get("Via"); got != respVia {
					t.Errorf("the client saw Via %q, want %q", got, respVia)
				}

				const size = 16 << 20
				src := &patternReader{n: size, h: sha256.New()}
				req, _ := http.NewRequest("PUT", base+"/echo", src)
				req.ContentLength = size
				resp, err = c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ = io.ReadAll(resp.Body)
				_ = resp.Body.Close()
				if want := fmt.Sprintf("PUT /echo %d %s ", size, hex.EncodeToString(src.h.Sum(nil))); !strings.HasPrefix(string(body), want) {
					t.Fatalf("upload: %q", body)
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
					t.Fatalf("download: %d, %v", n, err)
				}

				// Request trailers (chunked from h1, a trailing HEADERS from h2).
				pr, pw := io.Pipe()
				req, _ = http.NewRequest("POST", base+"/echo", pr)
				req.Trailer = http.Header{"X-Sum": nil}
				go func() {
					_, _ = io.WriteString(pw, "hello")
					req.Trailer.Set("X-Sum", "5")
					_ = pw.Close()
				}()
				resp, err = c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ = io.ReadAll(resp.Body)
				_ = resp.Body.Close()
				if !strings.Contains(string(body), "trailer=5") {
					t.Errorf("request trailer lost: %q", body)
				}
				resp, err = c.Get(base + "/trailers")
				if err != nil {
					t.Fatal(err)
				}
				body, _ = io.ReadAll(resp.Body)
				_ = resp.Body.Close()
				if string(body) != "part one;part two" || resp.Trailer.Get("X-Checksum") != "abc123" {
					t.Errorf("response trailers: %q %v", body, resp.Trailer)
				}

				// HEAD keeps its Content-Length and has no body.
				resp, err = c.Head(fmt.Sprintf("%s/download?n=%d", base, 1234))
				if err != nil {
					t.Fatal(err)
				}
				body, _ = io.ReadAll(resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode != 200 || len(body) != 0 || resp.ContentLength != 1234 {
					t.Errorf("HEAD: %d len %d content-length %d", resp.StatusCode, len(body), resp.ContentLength)
				}

				if failed := concurrentEchoGETs(c, base, 100); failed != 0 {
					t.Errorf("%d of 100 concurrent requests failed", failed)
				}
			})
		}
	}
}

// TestH2UpstreamClientCancel: a client that goes away mid-response (an
// HTTP/2 RST_STREAM, or an HTTP/1 connection closed) reaches the h2c
// upstream as RST_STREAM(CANCEL): its handler's context ends.
func TestH2UpstreamClientCancel(t *testing.T) {
	origin, _, _ := originServe(t, true)
	gw, admin, _ := h2GatewayCluster(t, origin, "", `protocol = "h2c"`)
	before := hangCancelled.Load()
	// HTTP/2 client: open /hang, then reset the stream.
	f := dialH2(t, gw)
	f.headers(t, 1, true, ":method", "GET", ":scheme", "http", ":authority", "a.test", ":path", "/hang")
	if got := f.response(t, 1); got != "200" {
		t.Fatalf("hang: %s", got)
	}
	if err := f.fr.WriteRSTStream(1, http2.ErrCodeCancel); err != nil {
		t.Fatal(err)
	}
	// HTTP/1 client: open /hang, read the head, close.
	c, err := net.Dial("tcp", gw)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.WriteString(c, "GET /hang HTTP/1.1\r\nHost: a.test\r\n\r\n")
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || !strings.HasPrefix(line, "HTTP/1.1 200") {
		t.Fatalf("h1 hang: %q %v", line, err)
	}
	_ = c.Close()
	deadline := time.Now().Add(3 * time.Second)
	for hangCancelled.Load()-before < 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := hangCancelled.Load() - before; n != 2 {
		t.Fatalf("the upstream saw %d cancellations, want 2", n)
	}
	if n := metricSum(t, admin, `^expressgateway_upstream_http2_rst_stream_total\{direction="sent",code="CANCEL"\}$`); n < 2 {
		t.Errorf("RST_STREAM(CANCEL) sent upstream %v times", n)
	}
}

// TestH2UpstreamGoAwayRetriesUnprocessed: an h2c upstream that answers
// GOAWAY(last=1) with streams 1 and 3 open: stream 1 finishes, stream 3 (a
// POST without a body: not idempotent, but never processed) goes again on
// a new connection, and the client sees two 200s.
func TestH2UpstreamGoAwayRetriesUnprocessed(t *testing.T) {
	ln := localListener(t)
	var conns atomic.Int64
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go serveGoAwayOnce(nc, conns.Add(1) == 1)
		}
	}()
	gw, _, _ := h2GatewayCluster(t, ln.Addr().String(), "", `protocol = "h2c"`)
	c := h2Client(nil)
	var wg sync.WaitGroup
	results := make([]string, 2)
	for i, m := range []string{"GET", "POST"} {
		wg.Add(1)
		go func(i int, m string) {
			defer wg.Done()
			if i == 1 {
				time.Sleep(100 * time.Millisecond) // the second stream opens after the first
			}
			req, _ := http.NewRequest(m, "http://"+gw+"/"+strings.ToLower(m), nil)
			resp, err := c.Do(req)
			if err != nil {
				results[i] = err.Error()
				return
			}
			b, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			results[i] = fmt.Sprintf("%d %s", resp.StatusCode, b)
		}(i, m)
	}
	wg.Wait()
	if !strings.HasPrefix(results[0], "200 conn1") || !strings.HasPrefix(results[1], "200 conn2") {
		t.Fatalf("results %q (conn1 answers stream 1 then GOAWAY; conn2 answers the retry)", results)
	}
}

// serveGoAwayOnce is a minimal h2c upstream: the first connection answers
// its first stream only after a second one arrived, and sends
// GOAWAY(last = first) before; later connections answer every stream.
func serveGoAwayOnce(nc net.Conn, first bool) {
	defer func() { _ = nc.Close() }()
	fr := acceptH2(nc)
	if fr == nil {
		return
	}
	name := "conn2"
	if first {
		name = "conn1"
	}
	answer := func(id uint32) {
		var buf bytes.Buffer
		enc := hpack.NewEncoder(&buf)
		_ = enc.WriteField(hpack.HeaderField{Name: ":status", Value: "200"})
		_ = enc.WriteField(hpack.HeaderField{Name: "content-length", Value: fmt.Sprint(len(name))})
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: buf.Bytes(), EndHeaders: true})
		_ = fr.WriteData(id, true, []byte(name))
	}
	var open []uint32
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return
		}
		answerControl(fr, f)
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			if !first {
				answer(f.StreamID)
				continue
			}
			open = append(open, f.StreamID)
			if len(open) == 2 {
				_ = fr.WriteGoAway(open[0], http2.ErrCodeNo, nil)
				answer(open[0])
			}
		}
	}
}

// acceptH2 starts a Framer-made h2c endpoint on nc (10 s deadline): it
// reads the client preface and sends empty SETTINGS; nil if the preface
// does not come.
func acceptH2(nc net.Conn) *http2.Framer {
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	pre := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(nc, pre); err != nil {
		return nil
	}
	fr := http2.NewFramer(nc, nc)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	_ = fr.WriteSettings()
	return fr
}

// answerControl acknowledges a peer's SETTINGS and PING for a Framer-made
// endpoint.
func answerControl(fr *http2.Framer, f http2.Frame) {
	switch f := f.(type) {
	case *http2.SettingsFrame:
		if !f.IsAck() {
			_ = fr.WriteSettingsAck()
		}
	case *http2.PingFrame:
		if !f.IsAck() {
			_ = fr.WritePing(true, f.Data)
		}
	}
}

// TestH1UploadOutrunsMuxedUpstream: an HTTP/1.1 client uploads 24 MiB as
// fast as loopback goes to an h2c endpoint that takes about 16 MiB/s, with
// max_inflight_bytes at 64 KiB. gnet never stops reading a socket, so the
// gateway used to cut such an upload (guard upstream_window_overflow) once
// it ran 4 × max_inflight_bytes ahead of the endpoint's flow control. The
// client's socket now leaves gnet for a reader that stops while the loop
// holds max_inflight_bytes, and TCP holds the client back: the whole body
// arrives with its hash, the connection serves a second request, and the
// gateway's RSS stays far below the body.
func TestH1UploadOutrunsMuxedUpstream(t *testing.T) {
	origin, _, _ := originServe(t, true)
	gw, admin, cmd := h2GatewayCluster(t, origin, "[listeners.limits]\nmax_inflight_bytes = \"64KiB\"", `protocol = "h2c"`)
	rssBefore := rssBytes(cmd.Process.Pid)
	c, err := net.Dial("tcp", gw)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	const size = 24 << 20
	src := &patternReader{n: size, h: sha256.New()}
	werr := make(chan error, 1)
	go func() {
		if _, err := fmt.Fprintf(c, "PUT /slowsink HTTP/1.1\r\nHost: a.test\r\nContent-Length: %d\r\n\r\n", size); err != nil {
			werr <- err
			return
		}
		_, err := io.Copy(c, src)
		werr <- err
	}()
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("upload response: %v (guards: overflow %v)", err,
			metricSum(t, admin, `^expressgateway_guard_tripped_total\{guard="upstream_window_overflow"\}$`))
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err := <-werr; err != nil {
		t.Fatalf("sending the body: %v", err)
	}
	if want := fmt.Sprintf("%d %s", size, hex.EncodeToString(src.h.Sum(nil))); resp.StatusCode != 200 || string(body) != want {
		t.Fatalf("upload: %d %q, want %q", resp.StatusCode, body, want)
	}
	rssAfter := rssBytes(cmd.Process.Pid)
	if grew := rssAfter - rssBefore; grew > 16<<20 {
		t.Errorf("gateway RSS grew by %d MiB for a %d MiB upload", grew>>20, size>>20)
	}
	if n := metricSum(t, admin, `^expressgateway_stream_detach_total\{direction="request_bridge"\}$`); n != 1 {
		t.Errorf("request_bridge detaches = %v, want 1", n)
	}
	if n := metricSum(t, admin, `^expressgateway_guard_tripped_total\{guard="upstream_window_overflow"\}$`); n != 0 {
		t.Errorf("upstream_window_overflow tripped %v times", n)
	}
	// The same connection, now read by the bridge, serves the next request.
	if _, err := io.WriteString(c, "GET /echo?second HTTP/1.1\r\nHost: a.test\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err = http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("second request: %v", err)
	}
	body, _ = io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "GET /echo?second 0 ") {
		t.Fatalf("second request: %d %q", resp.StatusCode, body)
	}
}
