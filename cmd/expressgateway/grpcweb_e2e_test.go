// SPDX-License-Identifier: GPL-3.0-only

package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/grpc/codes"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/protobuf/proto"
)

// TestGRPCWebToNativeUpstream: gRPC-Web from an HTTP/1.1 client (raw
// requests, as a browser's grpc-web library sends them) through the binary
// to grpc-go's interop server, which speaks native gRPC only: the gateway
// translates (content-type, te, trailers as the body's last frame). Unary
// calls with a payload, initial and binary trailing metadata, an error
// status, an unknown method, and a keep-alive connection carrying them all.
func TestGRPCWebToNativeUpstream(t *testing.T) {
	upstream, _ := interopServer(t)
	gw, admin := grpcGateway(t, grpcFronts[0], "", `
[[listeners.routes]]
cluster = "grpc"
`+h2cCluster("grpc", "round_robin", upstream))
	c, err := net.Dial("tcp", gw)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(c)

	call := func(method string, m proto.Message, extra string) (*http.Response, [][]byte, map[string]string) {
		t.Helper()
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		body := append([]byte{0, 0, 0, 0, 0}, b...)
		binary.BigEndian.PutUint32(body[1:], uint32(len(b)))
		_, _ = fmt.Fprintf(c, "POST /grpc.testing.TestService/%s HTTP/1.1\r\nHost: a\r\nContent-Type: application/grpc-web+proto\r\nX-Grpc-Web: 1\r\nAccept: application/grpc-web+proto\r\n%sContent-Length: %d\r\n\r\n", method, extra, len(body))
		_, _ = c.Write(body)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%s: %v", method, err)
		}
		raw, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil {
			t.Fatalf("%s body: %v", method, err)
		}
		// Split the body into message frames and the trailer frame.
		var msgs [][]byte
		trailers := map[string]string{}
		for len(raw) > 0 {
			if len(raw) < 5 {
				t.Fatalf("%s: truncated frame %x", method, raw)
			}
			n := int(binary.BigEndian.Uint32(raw[1:5]))
			if len(raw) < 5+n {
				t.Fatalf("%s: frame of %d bytes, %d left", method, n, len(raw)-5)
			}
			payload := raw[5 : 5+n]
			if raw[0]&0x80 != 0 {
				for _, line := range strings.Split(string(payload), "\r\n") {
					if k, v, ok := strings.Cut(line, ": "); ok {
						trailers[k] = v
					}
				}
			} else {
				msgs = append(msgs, payload)
			}
			raw = raw[5+n:]
		}
		return resp, msgs, trailers
	}
	// status is the call's grpc-status: from the trailer frame, or from the
	// header section of a trailers-only response.
	status := func(resp *http.Response, trl map[string]string) (string, string) {
		if s, ok := trl["grpc-status"]; ok {
			return s, trl["grpc-message"]
		}
		return resp.Header.Get("Grpc-Status"), resp.Header.Get("Grpc-Message")
	}

	// A unary call with a payload, echoed metadata both ways.
	trailBin := []byte{0, 1, 2, 0xff}
	resp, msgs, trl := call("UnaryCall", &testgrpc.SimpleRequest{ResponseSize: 3000, Payload: &testgrpc.Payload{Body: bytes.Repeat([]byte("q"), 1000)}},
		"X-Grpc-Test-Echo-Initial: hello\r\nX-Grpc-Test-Echo-Trailing-Bin: "+base64.StdEncoding.EncodeToString(trailBin)+"\r\n")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/grpc-web+proto" {
		t.Fatalf("unary: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if resp.Header.Get("X-Grpc-Test-Echo-Initial") != "hello" {
		t.Errorf("initial metadata: %v", resp.Header)
	}
	if len(msgs) != 1 {
		t.Fatalf("unary: %d messages", len(msgs))
	}
	var sr testgrpc.SimpleResponse
	if err := proto.Unmarshal(msgs[0], &sr); err != nil || len(sr.GetPayload().GetBody()) != 3000 {
		t.Fatalf("unary response: %v, %d bytes", err, len(sr.GetPayload().GetBody()))
	}
	if s, _ := status(resp, trl); s != "0" {
		t.Errorf("unary status %q, trailers %v", s, trl)
	}
	if got, _ := base64.RawStdEncoding.DecodeString(strings.TrimRight(trl["x-grpc-test-echo-trailing-bin"], "=")); !bytes.Equal(got, trailBin) {
		t.Errorf("binary trailing metadata: %q", trl["x-grpc-test-echo-trailing-bin"])
	}

	// An error status with a message.
	resp, _, trl = call("UnaryCall", &testgrpc.SimpleRequest{ResponseStatus: &testgrpc.EchoStatus{Code: int32(codes.PermissionDenied), Message: "not you"}}, "")
	if s, m := status(resp, trl); s != fmt.Sprint(int(codes.PermissionDenied)) || m != "not you" {
		t.Errorf("error status: %q %q (trailers %v, header %v)", s, m, trl, resp.Header)
	}

	// An unknown method.
	resp, _, trl = call("NoSuchMethod", &testgrpc.Empty{}, "")
	if s, _ := status(resp, trl); s != fmt.Sprint(int(codes.Unimplemented)) {
		t.Errorf("unknown method: %q (trailers %v, header %v)", s, trl, resp.Header)
	}

	// Counted by grpc-status like native gRPC.
	for code, want := range map[string]float64{"OK": 1, "PERMISSION_DENIED": 1, "UNIMPLEMENTED": 1} {
		if n := metricSum(t, admin, `^expressgateway_grpc_requests_total\{.*code="`+code+`".*\}$`); n != want {
			t.Errorf("gRPC-Web calls with %s counted %v times, want %v", code, n, want)
		}
	}
}

// TestH2UpstreamEmptyResponseToH1Client: an h2c endpoint that ends its
// response on the HEADERS frame without content-length (legal in HTTP/2)
// gives an HTTP/1.1 client "Content-Length: 0", not a body delimited by a
// close that never comes; the keep-alive connection carries the next
// request. A HEAD keeps the length the endpoint announced.
func TestH2UpstreamEmptyResponseToH1Client(t *testing.T) {
	up := rawH2Upstream(t, func(fr *http2.Framer, enc func(kv ...string) []byte, id uint32, path string) {
		kv := []string{":status", "200", "x-path", path}
		if path == "/head" {
			kv = append(kv, "content-length", "42")
		}
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: enc(kv...), EndHeaders: true, EndStream: true})
	})
	gw, _ := grpcGateway(t, grpcFronts[0], "", `
[[listeners.routes]]
cluster = "h2"
`+h2cCluster("h2", "round_robin", up))
	c, err := net.Dial("tcp", gw)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	for i, path := range []string{"/a", "/b", "/head"} {
		method := "GET"
		if path == "/head" {
			method = "HEAD"
		}
		_, _ = fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: a\r\n\r\n", method, path)
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		body, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil || len(body) != 0 || resp.Header.Get("X-Path") != path {
			t.Fatalf("request %d: %v %q %v", i, err, body, resp.Header)
		}
		want := "0"
		if method == "HEAD" {
			want = "42"
		}
		if got := resp.Header.Get("Content-Length"); got != want {
			t.Fatalf("%s %s: Content-Length %q, want %q", method, path, got, want)
		}
	}
}
