// SPDX-License-Identifier: GPL-3.0-only

package h2

import (
	"fmt"
	"strings"
	"testing"
)

var getReq = []string{":method", "GET", ":scheme", "https", ":authority", "example.com", ":path", "/"}

func req(extra ...string) []string { return append(append([]string{}, getReq...), extra...) }

func post(extra ...string) []string {
	return append([]string{":method", "POST", ":scheme", "https", ":authority", "example.com", ":path", "/"}, extra...)
}

func headString(h *Head) string {
	var b strings.Builder
	switch h.Kind {
	case KindRequest:
		fmt.Fprintf(&b, "req %s %s %s %s", h.Method, h.Scheme, h.Authority, h.Path)
		if h.Protocol != nil {
			fmt.Fprintf(&b, " protocol=%s", h.Protocol)
		}
	case KindResponse, KindInformational:
		fmt.Fprintf(&b, "resp %d", h.Status)
	case KindTrailers:
		b.WriteString("trailers")
	}
	for _, f := range h.Fields {
		fmt.Fprintf(&b, " %s=%s", f.Name, f.Value)
	}
	return b.String()
}

func build(mode blockMode, allowProtocol, endStream bool, kv ...string) (*Head, *StreamError) {
	var b headBuilder
	b.reset(mode, allowProtocol)
	for i := 0; i+1 < len(kv); i += 2 {
		b.add(kv[i], kv[i+1])
	}
	h := &Head{}
	return h, b.finish(h, endStream)
}

func TestValidRequests(t *testing.T) {
	for _, tc := range []struct {
		name     string
		protocol bool
		kv       []string
		want     string
	}{
		{"plain", false, req("accept", "*/*"), "req GET https example.com / accept=*/*"},
		{"no authority", false, []string{":method", "GET", ":scheme", "http", ":path", "/x?y"}, "req GET http  /x?y"},
		{"OPTIONS *", false, []string{":method", "OPTIONS", ":scheme", "https", ":path", "*"}, "req OPTIONS https  *"},
		{"CONNECT", false, []string{":method", "CONNECT", ":authority", "example.com:443"}, "req CONNECT  example.com:443 "},
		{"extended CONNECT", true, []string{":method", "CONNECT", ":protocol", "websocket", ":scheme", "https", ":path", "/chat", ":authority", "h"},
			"req CONNECT https h /chat protocol=websocket"},
		{"te trailers", false, req("te", "Trailers"), "req GET https example.com / te=Trailers"},
		{"empty value", false, req("x", ""), "req GET https example.com / x="},
		{"obs-text and inner space", false, req("x", "a b\xff"), "req GET https example.com / x=a b\xff"},
		{"pseudo order free", false, []string{":path", "/", ":authority", "h", ":scheme", "https", ":method", "GET"}, "req GET https h /"},
		{"non-http scheme, relative path", false, []string{":method", "GET", ":scheme", "foo", ":path", "bar"}, "req GET foo  bar"},
	} {
		h, err := build(modeRequest, tc.protocol, true, tc.kv...)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if got := headString(h); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestHeadContentLength(t *testing.T) {
	h, err := build(modeRequest, false, false, post("content-length", "42")...)
	if err != nil || h.ContentLength != 42 {
		t.Fatal(h.ContentLength, err)
	}
	h, _ = build(modeRequest, false, false, post()...)
	if h.ContentLength != -1 {
		t.Fatal(h.ContentLength)
	}
	for _, v := range []string{"", "+1", "1 ", "0x1", "1,1", "1234567890123456789"} {
		if _, err := build(modeRequest, false, false, post("content-length", v)...); err == nil {
			t.Errorf("%q accepted", v)
		}
	}
}

func TestResponses(t *testing.T) {
	h, err := build(modeResponse, false, true, ":status", "204", "server", "x")
	if err != nil || h.Kind != KindResponse || h.Status != 204 || string(h.Get("server")) != "x" {
		t.Fatalf("%+v %v", h, err)
	}
	h, err = build(modeResponse, false, false, ":status", "103", "link", "</a>")
	if err != nil || h.Kind != KindInformational || h.Status != 103 {
		t.Fatalf("%+v %v", h, err)
	}
	for _, st := range []string{"20", "2000", "099", "600", "101", "abc", "-20"} {
		if _, err := build(modeResponse, false, true, ":status", st); err != ErrBadStatus {
			t.Errorf("%q: %v", st, err)
		}
	}
	if _, err := build(modeResponse, false, true, ":status", "200", ":status", "200"); err != ErrDuplicatePseudo {
		t.Error(err)
	}
	if _, err := build(modeResponse, false, true, ":path", "/"); err != ErrUnknownPseudo {
		t.Error(err)
	}
}

func TestTrailers(t *testing.T) {
	h, err := build(modeTrailers, false, true, "grpc-status", "0")
	if err != nil || h.Kind != KindTrailers || string(h.Get("grpc-status")) != "0" {
		t.Fatal(h, err)
	}
	if _, err := build(modeTrailers, false, true, ":status", "200"); err != ErrPseudoInTrailers {
		t.Fatal(err)
	}
	if _, err := build(modeTrailers, false, false, "x", "1"); err != ErrTrailersNoEndStream {
		t.Fatal(err)
	}
}

// TestFirstErrorWins: later fields do not mask the first problem.
func TestFirstErrorWins(t *testing.T) {
	if _, err := build(modeRequest, false, true, append(req("X", "1"), "connection", "close")...); err != ErrUppercaseHeader {
		t.Fatal(err)
	}
}

func TestHostConflict(t *testing.T) {
	for _, tc := range []struct {
		kv   []string
		want bool
	}{
		{req(), false},
		{req("host", "Example.COM"), false},
		{req("host", "other.example"), true},
		{[]string{":method", "GET", ":scheme", "https", ":path", "/", "host", "h"}, false},
	} {
		h, err := build(modeRequest, false, true, tc.kv...)
		if err != nil || h.HostConflict() != tc.want {
			t.Errorf("%q: %v %v", tc.kv, h.HostConflict(), err)
		}
	}
}
