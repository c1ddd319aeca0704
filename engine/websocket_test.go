// SPDX-License-Identifier: GPL-3.0-only

package engine

import (
	"testing"

	"github.com/expressgateway/expressgateway/codecs/h1"
	"github.com/expressgateway/expressgateway/codecs/msg"
)

func TestWSAcceptRFC6455Example(t *testing.T) {
	// RFC 6455 section 1.3.
	if got := string(wsAccept(nil, []byte("dGhlIHNhbXBsZSBub25jZQ=="))); got != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("accept %q", got)
	}
}

func TestWSRequested(t *testing.T) {
	key := h1.Header{Name: []byte("Sec-WebSocket-Key"), Value: []byte("dGhlIHNhbXBsZSBub25jZQ==")}
	ver := h1.Header{Name: []byte("Sec-WebSocket-Version"), Value: []byte("13")}
	base := func(up string) h1.Request {
		return h1.Request{Method: []byte("GET"), Version: h1.Version11, Upgrade: []byte(up), Headers: []h1.Header{key, ver}}
	}
	for _, tc := range []struct {
		name string
		r    h1.Request
		want bool
	}{
		{"websocket", base("websocket"), true},
		{"case and list", base("h2c, WebSocket "), true},
		{"h2c only", base("h2c"), false},
		{"versioned token", base("websocket/13"), false},
		{"no upgrade", base(""), false},
		{"POST", func() h1.Request { r := base("websocket"); r.Method = []byte("POST"); return r }(), false},
		{"HTTP/1.0", func() h1.Request { r := base("websocket"); r.Version = h1.Version10; return r }(), false},
		{"body", func() h1.Request { r := base("websocket"); r.Body = h1.BodyChunked; return r }(), false},
		{"no key", func() h1.Request { r := base("websocket"); r.Headers = r.Headers[1:]; return r }(), false},
	} {
		if tc.name == "no upgrade" {
			tc.r.Upgrade = nil
		}
		if got := wsRequested(&tc.r); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestWS101Valid(t *testing.T) {
	key := []byte("dGhlIHNhbXBsZSBub25jZQ==")
	f := func(kv ...string) []msg.Field {
		var fs []msg.Field
		for i := 0; i < len(kv); i += 2 {
			fs = append(fs, msg.Field{Name: []byte(kv[i]), Value: []byte(kv[i+1])})
		}
		return fs
	}
	good := f("Upgrade", "websocket", "Connection", "keep-alive, Upgrade", "Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
	if !ws101Valid(good, key) {
		t.Fatal("a valid 101 refused")
	}
	for name, fs := range map[string][]msg.Field{
		"wrong accept":  f("Upgrade", "websocket", "Connection", "Upgrade", "Sec-WebSocket-Accept", "AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
		"no accept":     f("Upgrade", "websocket", "Connection", "Upgrade"),
		"h2c":           f("Upgrade", "h2c", "Connection", "Upgrade", "Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
		"no connection": f("Upgrade", "websocket", "Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
	} {
		if ws101Valid(fs, key) {
			t.Errorf("%s: accepted", name)
		}
	}
	if ws101Valid(good, nil) {
		t.Error("accepted without a key")
	}
}
