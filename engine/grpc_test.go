// SPDX-License-Identifier: GPL-3.0-only

package engine

import (
	"testing"
	"time"

	"github.com/expressgateway/expressgateway/codecs/msg"
)

func TestParseGRPCTimeout(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"1H": time.Hour, "2M": 2 * time.Minute, "3S": 3 * time.Second, "300m": 300 * time.Millisecond,
		"5u": 5 * time.Microsecond, "99999999n": 99999999, "0m": 0,
	} {
		if got, ok := parseGRPCTimeout([]byte(in)); !ok || got != want {
			t.Errorf("%q: %v %v, want %v", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "m", "1", "1x", "123456789S", "-1S", "1.5S", " 1S"} {
		if _, ok := parseGRPCTimeout([]byte(in)); ok {
			t.Errorf("%q accepted", in)
		}
	}
}

func TestAppendGRPCTimeout(t *testing.T) {
	for d, want := range map[time.Duration]string{
		300 * time.Millisecond: "300m", 0: "1m", -time.Second: "1m", 2 * time.Hour: "7200000m",
		48 * time.Hour: "172800S",
	} {
		got := string(appendGRPCTimeout(nil, d))
		if got != want {
			t.Errorf("%v: %q, want %q", d, got, want)
		}
		if v, ok := parseGRPCTimeout([]byte(got)); !ok || (d > time.Millisecond && v > d) {
			t.Errorf("%v: %q parses as %v %v", d, got, v, ok)
		}
	}
}

func TestIsGRPC(t *testing.T) {
	for ct, want := range map[string][2]bool{
		"application/grpc":            {true, true},
		"application/grpc+proto":      {true, true},
		"Application/GRPC; charset=x": {true, true},
		"application/grpc-web+proto":  {true, false},
		"application/grpcx":           {false, false},
		"application/json":            {false, false},
		"":                            {false, false},
	} {
		if g, n := isGRPC([]byte(ct)), isGRPCNative([]byte(ct)); g != want[0] || n != want[1] {
			t.Errorf("%q: grpc %v native %v, want %v", ct, g, n, want)
		}
	}
}

func TestGRPCCodeFor(t *testing.T) {
	for _, tc := range []struct {
		status int
		reason string
		want   int
	}{
		{404, "no_route", grpcUnimplemented},
		{503, "no_healthy_endpoint", grpcUnavailable},
		{502, "upstream_connect_failed", grpcUnavailable},
		{504, "deadline_exceeded", grpcDeadlineExceeded},
		{504, "upstream_response_header_timeout", grpcDeadlineExceeded},
		{503, "queue_full", grpcResourceExhausted},
		{431, "codec_header_too_large", grpcResourceExhausted},
		{502, "upstream_h2_connection_header", grpcInternal},
		{502, "upstream_bad_response", grpcInternal},
		{400, "h2_bad_path", grpcInternal},
	} {
		if got := grpcCodeFor(tc.status, tc.reason); got != tc.want {
			t.Errorf("%d %s: %d, want %d", tc.status, tc.reason, got, tc.want)
		}
	}
}

func TestGRPCStatusField(t *testing.T) {
	f := func(v string) []msg.Field { return []msg.Field{{Name: []byte("grpc-status"), Value: []byte(v)}} }
	if got := grpcStatusField(f("14")); got != 14 {
		t.Errorf("14: %d", got)
	}
	if got := grpcStatusField(f("x")); grpcCodeName(got) != "other" {
		t.Errorf("x: %d", got)
	}
	if got := grpcStatusField(nil); grpcCodeName(got) != "none" {
		t.Errorf("none: %d", got)
	}
}

func TestGRPCWebContentTypes(t *testing.T) {
	for in, want := range map[string]string{
		"application/grpc-web":              "application/grpc",
		"application/grpc-web+proto":        "application/grpc+proto",
		"Application/GRPC-Web+json":         "application/grpc+json",
		"application/grpc-web;charset=utf8": "application/grpc;charset=utf8",
		"application/grpc-web-text":         "",
		"application/grpc-web-text+proto":   "",
		"application/grpc":                  "",
		"text/plain":                        "",
	} {
		if got := string(grpcWebNative([]byte(in))); got != want {
			t.Errorf("grpcWebNative(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{
		"application/grpc":       "application/grpc-web",
		"application/grpc+proto": "application/grpc-web+proto",
		"":                       "application/grpc-web+proto",
	} {
		if got := string(grpcWebCT([]byte(in))); got != want {
			t.Errorf("grpcWebCT(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestGRPCWebTrailerFrame(t *testing.T) {
	got := appendGRPCWebTrailers([]byte("x"), []msg.Field{
		{Name: []byte("grpc-status"), Value: []byte("0")},
		{Name: []byte("Grpc-Message"), Value: []byte("ok")},
	})
	body := "grpc-status: 0\r\ngrpc-message: ok\r\n"
	want := append([]byte{'x', 0x80, 0, 0, 0, byte(len(body))}, body...)
	if string(got) != string(want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	if got := appendGRPCWebTrailers(nil, nil); string(got) != "\x80\x00\x00\x00\x00" {
		t.Fatalf("empty trailers: %q", got)
	}
}
