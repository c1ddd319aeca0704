// SPDX-License-Identifier: GPL-3.0-only

package engine

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A long upload pipelined behind a response the client has not read yet
// must wait for that response to drain before the exchange leaves the loop
// (gnet's close would drop what its outbound buffer still holds); then both
// arrive intact.
func TestLongUploadWaitsForPipelinedResponseToDrain(t *testing.T) {
	const respSize = 6 << 20
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/big" {
			_, _ = io.WriteString(w, strings.Repeat("r", respSize))
			return
		}
		h := sha256.New()
		_, _ = io.Copy(h, r.Body)
		_, _ = io.WriteString(w, hex.EncodeToString(h.Sum(nil)))
	})
	g := startGW(t, []string{o.addr()}, `
[listeners.limits]
max_inflight_bytes = "8MiB"
`, "", nil)
	c := dialRaw(t, g.addr)
	// A modest receive buffer, so that part of the response stays in gnet's
	// outbound buffer while the client does not read.
	if err := c.Conn.(*net.TCPConn).SetReadBuffer(64 << 10); err != nil {
		t.Fatal(err)
	}
	const bodySize = 16 << 20
	body := []byte(strings.Repeat("u", bodySize))
	c.send(t, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
	time.Sleep(200 * time.Millisecond) // the response fills the socket buffers
	c.send(t, "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 16777216\r\n\r\n")
	if _, err := c.Write(body[:1<<20]); err != nil {
		t.Fatal(err)
	}
	if g.waitMetric(`expressgateway_guard_tripped_total{guard="detach_wait"}`, 1) != 1 {
		t.Fatal("the upload did not wait for the pipelined response to drain")
	}
	resp, got := c.readResponse(t, "GET")
	if resp.StatusCode != 200 || len(got) != respSize || strings.Trim(got, "r") != "" {
		t.Fatalf("pipelined response damaged: %d, %d bytes", resp.StatusCode, len(got))
	}
	go func() { _, _ = c.Write(body[1<<20:]) }() // the upload's checksum below tells whether it all arrived
	resp, sum := c.readResponse(t, "POST")
	want := sha256.Sum256(body)
	if resp.StatusCode != 200 || sum != hex.EncodeToString(want[:]) {
		t.Fatalf("upload: %d %q", resp.StatusCode, sum)
	}
	if g.metric(`expressgateway_stream_detach_total{direction="request"}`) != 1 {
		t.Fatal("the upload did not leave the loop")
	}
}

// saturatedListener returns an address whose accept queue is full, so that
// a dial to it hangs (its SYNs are dropped) until the dialer's timeout.
func saturatedListener(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, _ := syscall.Getsockname(fd)
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
	for i := 0; i < 4; i++ { // fill the queue; later SYNs are dropped
		d := net.Dialer{Timeout: 200 * time.Millisecond}
		if c, err := d.Dial("tcp", addr); err == nil {
			t.Cleanup(func() { _ = c.Close() })
		}
	}
	return addr
}

// A long body that keeps arriving while its upstream is still being dialed
// is bounded: past max_header_bytes + 4 × max_inflight_bytes the client's
// socket moves to a paced reader (request_bridge) and TCP holds the client
// back, with nothing cut. When the dial then times out, the client gets an
// error response and the connection closes.
func TestLongBodyWhileDialingIsBounded(t *testing.T) {
	g := startGW(t, []string{saturatedListener(t)}, `
[listeners.limits]
max_header_bytes = "4KiB"
max_inflight_bytes = "64KiB"
[listeners.timeouts]
upstream_connect = "3s"
`, "", nil)
	c := dialRaw(t, g.addr)
	c.send(t, "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 4194304\r\n\r\n")
	sent := make(chan int64, 1)
	go func() {
		// Stops once TCP holds it back; fails when the gateway closes.
		n, _ := c.Write([]byte(strings.Repeat("u", 4<<20)))
		sent <- int64(n)
	}()
	if g.waitMetric(`expressgateway_stream_detach_total{direction="request_bridge"}`, 1) != 1 {
		t.Fatal("the body beyond the dial-wait bound did not move to a paced reader")
	}
	if v := g.metric(`expressgateway_guard_tripped_total{guard="dial_wait_overflow"}`); v != 0 {
		t.Fatalf("dial_wait_overflow tripped %v times: the body was cut", v)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(c.r, &http.Request{Method: "POST"})
	if err != nil {
		t.Fatalf("after the dial timed out: %v", err)
	}
	_, _ = io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode < 500 || !resp.Close {
		t.Fatalf("after the dial timed out: %d (close %v), want a 5xx and Connection: close", resp.StatusCode, resp.Close)
	}
	if !c.closedByPeer(2 * time.Second) {
		t.Fatal("connection left open")
	}
	<-sent
}
