package h1

import (
	"errors"
	"strings"
	"testing"
)

type respWant struct {
	status    int
	reason    string
	version   Version
	body      BodyKind
	cl        int64
	keepAlive bool
}

var validResponses = []struct {
	name   string
	method string
	raw    []byte
	want   respWant
}{
	{"ok-cl", "GET", crlf("HTTP/1.1 200 OK\nContent-Length: 5\nContent-Type: text/plain\n\n"), respWant{200, "OK", Version11, BodyLength, 5, true}},
	{"chunked", "GET", crlf("HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n"), respWant{200, "OK", Version11, BodyChunked, -1, true}},
	{"gzip-chunked", "GET", crlf("HTTP/1.1 200 OK\nTransfer-Encoding: gzip, chunked\n\n"), respWant{200, "OK", Version11, BodyChunked, -1, true}},
	{"until-close", "GET", crlf("HTTP/1.1 200 OK\nServer: x\n\n"), respWant{200, "OK", Version11, BodyUntilClose, -1, false}},
	{"gzip-until-close", "GET", crlf("HTTP/1.1 200 OK\nTransfer-Encoding: gzip\n\n"), respWant{200, "OK", Version11, BodyUntilClose, -1, false}},
	{"head", "HEAD", crlf("HTTP/1.1 200 OK\nContent-Length: 1234\n\n"), respWant{200, "OK", Version11, BodyNone, 1234, true}},
	{"head-chunked", "HEAD", crlf("HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n"), respWant{200, "OK", Version11, BodyNone, -1, true}},
	{"204", "GET", crlf("HTTP/1.1 204 No Content\n\n"), respWant{204, "No Content", Version11, BodyNone, -1, true}},
	{"304", "GET", crlf("HTTP/1.1 304 Not Modified\nContent-Length: 99\n\n"), respWant{304, "Not Modified", Version11, BodyNone, 99, true}},
	{"100", "PUT", crlf("HTTP/1.1 100 Continue\n\n"), respWant{100, "Continue", Version11, BodyNone, -1, true}},
	{"101", "GET", crlf("HTTP/1.1 101 Switching Protocols\nConnection: Upgrade\nUpgrade: websocket\n\n"), respWant{101, "Switching Protocols", Version11, BodyNone, -1, true}},
	{"connect-200", "CONNECT", crlf("HTTP/1.1 200 Connection Established\n\n"), respWant{200, "Connection Established", Version11, BodyNone, -1, true}},
	{"close", "GET", crlf("HTTP/1.1 200 OK\nConnection: close\nContent-Length: 0\n\n"), respWant{200, "OK", Version11, BodyLength, 0, false}},
	{"http10", "GET", crlf("HTTP/1.0 200 OK\nContent-Length: 2\n\n"), respWant{200, "OK", Version10, BodyLength, 2, false}},
	{"http10-keepalive", "GET", crlf("HTTP/1.0 200 OK\nConnection: keep-alive\nContent-Length: 2\n\n"), respWant{200, "OK", Version10, BodyLength, 2, true}},
	{"no-reason", "GET", crlf("HTTP/1.1 404\nContent-Length: 0\n\n"), respWant{404, "", Version11, BodyLength, 0, true}},
	{"empty-reason", "GET", crlf("HTTP/1.1 404 \nContent-Length: 0\n\n"), respWant{404, "", Version11, BodyLength, 0, true}},
	{"reason-obs-text", "GET", crlf("HTTP/1.1 200 \xc3\xa7a va\tbien\nContent-Length: 0\n\n"), respWant{200, "\xc3\xa7a va\tbien", Version11, BodyLength, 0, true}},
}

func checkResponse(t *testing.T, r *Response, w respWant) {
	t.Helper()
	if r.Status != w.status || string(r.Reason) != w.reason || r.Version != w.version ||
		r.Body != w.body || r.ContentLength != w.cl || r.KeepAlive != w.keepAlive {
		t.Fatalf("got %d %q v=%d body=%v cl=%d ka=%v, want %+v",
			r.Status, r.Reason, r.Version, r.Body, r.ContentLength, r.KeepAlive, w)
	}
}

func TestParseResponseValid(t *testing.T) {
	for _, tc := range validResponses {
		t.Run(tc.name, func(t *testing.T) {
			var p ResponseParser
			var r Response
			n, done, err := p.Parse(append(append([]byte{}, tc.raw...), "body"...), []byte(tc.method), &r)
			if err != nil || !done || n != len(tc.raw) {
				t.Fatalf("Parse = %d, %v, %v", n, done, err)
			}
			checkResponse(t, &r, tc.want)
		})
	}
}

func TestParseResponseTruncation(t *testing.T) {
	for _, tc := range validResponses {
		t.Run(tc.name, func(t *testing.T) {
			var grow ResponseParser
			var r Response
			for i := 0; i < len(tc.raw); i++ {
				var fresh ResponseParser
				if n, done, err := fresh.Parse(tc.raw[:i], []byte(tc.method), &r); n != 0 || done || err != nil {
					t.Fatalf("fresh prefix %d: %d, %v, %v", i, n, done, err)
				}
				if n, done, err := grow.Parse(tc.raw[:i], []byte(tc.method), &r); n != 0 || done || err != nil {
					t.Fatalf("growing prefix %d: %d, %v, %v", i, n, done, err)
				}
			}
			n, done, err := grow.Parse(tc.raw, []byte(tc.method), &r)
			if err != nil || !done || n != len(tc.raw) {
				t.Fatalf("full: %d, %v, %v", n, done, err)
			}
			checkResponse(t, &r, tc.want)
		})
	}
}

func TestParseResponseCopies(t *testing.T) {
	raw := crlf("HTTP/1.1 200 Fine\nX-K: v\nContent-Length: 0\n\n")
	var p ResponseParser
	var r Response
	if _, done, err := p.Parse(raw, []byte("GET"), &r); !done || err != nil {
		t.Fatal(done, err)
	}
	for i := range raw {
		raw[i] = 'Z'
	}
	if string(r.Reason) != "Fine" || string(r.Header("x-k")) != "v" {
		t.Fatalf("head not copied: %q %q", r.Reason, r.Header("x-k"))
	}
}

func TestParseResponseErrors(t *testing.T) {
	cases := []struct {
		name, method, raw, token string
	}{
		{"cl-and-te", "GET", "HTTP/1.1 200 OK\nContent-Length: 3\nTransfer-Encoding: chunked\n\n", "cl_and_te"},
		{"cl-and-te-on-204", "GET", "HTTP/1.1 204 No Content\nContent-Length: 3\nTransfer-Encoding: chunked\n\n", "cl_and_te"},
		{"cl-conflict", "GET", "HTTP/1.1 200 OK\nContent-Length: 3\nContent-Length: 4\n\n", "multiple_content_length"},
		{"cl-bad", "GET", "HTTP/1.1 200 OK\nContent-Length: 3 4\n\n", "bad_content_length"},
		{"cl-bad-on-head", "HEAD", "HTTP/1.1 200 OK\nContent-Length: x\n\n", "bad_content_length"},
		{"te-chunked-twice", "GET", "HTTP/1.1 200 OK\nTransfer-Encoding: chunked, chunked\n\n", "te_chunked_twice"},
		{"te-chunked-not-last", "GET", "HTTP/1.1 200 OK\nTransfer-Encoding: chunked, gzip\n\n", "te_not_chunked"},
		{"te-http10", "GET", "HTTP/1.0 200 OK\nTransfer-Encoding: chunked\n\n", "te_http10"},
		{"te-bad", "GET", "HTTP/1.1 200 OK\nTransfer-Encoding: chun ked\n\n", "bad_transfer_encoding"},
		{"status-2-digits", "GET", "HTTP/1.1 20 OK\n\n", "bad_status_line"},
		{"status-4-digits", "GET", "HTTP/1.1 2000 OK\n\n", "bad_status_line"},
		{"status-letters", "GET", "HTTP/1.1 2x0 OK\n\n", "bad_status_line"},
		{"status-range", "GET", "HTTP/1.1 099 OK\n\n", "bad_status"},
		{"status-600", "GET", "HTTP/1.1 600 OK\n\n", "bad_status"},
		{"no-space", "GET", "HTTP/1.1200 OK\n\n", "bad_status_line"},
		{"garbage", "GET", "ICY 200 OK\n\n", "bad_status_line"},
		{"version", "GET", "HTTP/2.0 200 OK\n\n", "version_unsupported"},
		{"version-bad", "GET", "HTTP/1.x 200 OK\n\n", "bad_version"},
		{"reason-ctl", "GET", "HTTP/1.1 200 O\x01K\n\n", "bad_status_line"},
		{"leading-crlf", "GET", "\nHTTP/1.1 200 OK\n\n", "bad_status_line"},
		{"obs-fold", "GET", "HTTP/1.1 200 OK\nX: a\n b\n\n", "obs_fold"},
		{"space-before-colon", "GET", "HTTP/1.1 200 OK\nContent-Length : 1\n\n", "space_before_colon"},
		{"value-nul", "GET", "HTTP/1.1 200 OK\nX: a\x00\n\n", "bad_header_value"},
		{"lookalike", "GET", "HTTP/1.1 200 OK\nContent_Length: 1\n\n", "suspicious_framing_header"},
		{"bare-lf", "GET", "HTTP/1.1 200 OK\r\nX: a\n\r\n", "bare_lf"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			raw := []byte(tc.raw)
			if !strings.Contains(tc.raw, "\r") {
				raw = crlf(tc.raw)
			}
			var p ResponseParser
			var r Response
			n, done, err := p.Parse(raw, []byte(tc.method), &r)
			var he *Error
			if !errors.As(err, &he) || he.Status != 502 || he.Token != tc.token || n != 0 || done {
				t.Fatalf("got %d %v %v, want 502 %s", n, done, err, tc.token)
			}
		})
	}
}

func TestParseResponseLimits(t *testing.T) {
	lim := Limits{MaxRequestLine: 32, MaxHeaderBytes: 64, MaxHeaderCount: 2, MaxBodyBytes: 10}
	cases := []struct{ name, raw, token string }{
		{"status-line", "HTTP/1.1 200 " + strings.Repeat("K", 40), "status_line_too_long"},
		{"headers", "HTTP/1.1 200 OK\r\nX: " + strings.Repeat("v", 70), "headers_too_large"},
		{"count", "HTTP/1.1 200 OK\r\nA: 1\r\nB: 1\r\nC: 1\r\n", "too_many_headers"},
		{"body", "HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n", "body_too_large"},
	}
	for _, tc := range cases {
		p := ResponseParser{Limits: lim}
		var r Response
		_, _, err := p.Parse([]byte(tc.raw), []byte("GET"), &r)
		var he *Error
		if !errors.As(err, &he) || he.Status != 502 || he.Token != tc.token {
			t.Errorf("%s: got %v, want 502 %s", tc.name, err, tc.token)
		}
	}
}
