package h1

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// crlf turns a readable message with "\n" line ends into wire form.
func crlf(s string) []byte { return []byte(strings.ReplaceAll(s, "\n", "\r\n")) }

type reqWant struct {
	method, target, host string
	version              Version
	body                 BodyKind
	cl                   int64
	keepAlive            bool
	expect               bool
	upgrade              string // "" means nil
	nheaders             int
}

var validRequests = []struct {
	name string
	raw  []byte
	want reqWant
}{
	{"get", crlf("GET /index.html HTTP/1.1\nHost: example.com\n\n"),
		reqWant{"GET", "/index.html", "example.com", Version11, BodyNone, -1, true, false, "", 1}},
	{"post-cl", crlf("POST /submit HTTP/1.1\nHost: a\nContent-Length: 5\n\n"),
		reqWant{"POST", "/submit", "a", Version11, BodyLength, 5, true, false, "", 2}},
	{"post-cl-zero", crlf("POST / HTTP/1.1\nHost: a\nContent-Length: 0\n\n"),
		reqWant{"POST", "/", "a", Version11, BodyLength, 0, true, false, "", 2}},
	{"get-cl-zero", crlf("GET / HTTP/1.1\nHost: a\nContent-Length: 0\n\n"),
		reqWant{"GET", "/", "a", Version11, BodyLength, 0, true, false, "", 2}},
	{"post-chunked", crlf("POST /up HTTP/1.1\nHost: a\nTransfer-Encoding: chunked\n\n"),
		reqWant{"POST", "/up", "a", Version11, BodyChunked, -1, true, false, "", 2}},
	{"te-list-mixed-case", crlf("PUT /x HTTP/1.1\nHost: a\nTrAnSfEr-EnCoDiNg: gzip , ChUnKeD\n\n"),
		reqWant{"PUT", "/x", "a", Version11, BodyChunked, -1, true, false, "", 2}},
	{"te-split-fields", crlf("PUT /x HTTP/1.1\nHost: a\nTransfer-Encoding: gzip\nTransfer-Encoding: chunked;p\n\n"),
		reqWant{"PUT", "/x", "a", Version11, BodyChunked, -1, true, false, "", 3}},
	{"close", crlf("GET / HTTP/1.1\nHost: a\nConnection: close\n\n"),
		reqWant{"GET", "/", "a", Version11, BodyNone, -1, false, false, "", 2}},
	{"http10", crlf("GET / HTTP/1.0\n\n"),
		reqWant{"GET", "/", "", Version10, BodyNone, -1, false, false, "", 0}},
	{"http10-keepalive", crlf("GET / HTTP/1.0\nConnection: Keep-Alive\nHost: h\n\n"),
		reqWant{"GET", "/", "h", Version10, BodyNone, -1, true, false, "", 2}},
	{"expect", crlf("PUT /f HTTP/1.1\nHost: a\nExpect: 100-Continue\nContent-Length: 10\n\n"),
		reqWant{"PUT", "/f", "a", Version11, BodyLength, 10, true, true, "", 3}},
	{"websocket", crlf("GET /ws HTTP/1.1\nHost: a\nConnection: keep-alive, Upgrade\nUpgrade: websocket\n\n"),
		reqWant{"GET", "/ws", "a", Version11, BodyNone, -1, true, false, "websocket", 3}},
	{"upgrade-not-in-connection", crlf("GET /ws HTTP/1.1\nHost: a\nUpgrade: websocket\n\n"),
		reqWant{"GET", "/ws", "a", Version11, BodyNone, -1, true, false, "", 2}},
	{"absolute-form", crlf("GET http://Example.org:8080?q=1 HTTP/1.1\nHost: ignored\n\n"),
		reqWant{"GET", "http://Example.org:8080?q=1", "Example.org:8080", Version11, BodyNone, -1, true, false, "", 1}},
	{"options-star", crlf("OPTIONS * HTTP/1.1\nHost: a\n\n"),
		reqWant{"OPTIONS", "*", "a", Version11, BodyNone, -1, true, false, "", 1}},
	{"connect", crlf("CONNECT example.com:443 HTTP/1.1\nHost: example.com:443\n\n"),
		reqWant{"CONNECT", "example.com:443", "example.com:443", Version11, BodyNone, -1, true, false, "", 1}},
	{"leading-crlf", crlf("\n\nGET / HTTP/1.1\nHost: a\n\n"),
		reqWant{"GET", "/", "a", Version11, BodyNone, -1, true, false, "", 1}},
	{"ows-and-obs-text", crlf("GET /%E2%82%AC?a=b#f HTTP/1.1\nHost: [::1]:80\nX-A:\t v\xe9l ue \t\nX-Empty:\n\n"),
		reqWant{"GET", "/%E2%82%AC?a=b#f", "[::1]:80", Version11, BodyNone, -1, true, false, "", 3}},
	{"empty-host", crlf("GET / HTTP/1.1\nHost:\n\n"),
		reqWant{"GET", "/", "", Version11, BodyNone, -1, true, false, "", 1}},
}

func checkRequest(t *testing.T, r *Request, w reqWant) {
	t.Helper()
	if string(r.Method) != w.method || string(r.Target) != w.target || string(r.Host) != w.host ||
		r.Version != w.version || r.Body != w.body || r.ContentLength != w.cl ||
		r.KeepAlive != w.keepAlive || r.ExpectContinue != w.expect || string(r.Upgrade) != w.upgrade ||
		(w.upgrade == "") != (r.Upgrade == nil) || len(r.Headers) != w.nheaders {
		t.Fatalf("got method=%q target=%q host=%q v=%d body=%v cl=%d ka=%v expect=%v upgrade=%q nh=%d\nwant %+v",
			r.Method, r.Target, r.Host, r.Version, r.Body, r.ContentLength, r.KeepAlive,
			r.ExpectContinue, r.Upgrade, len(r.Headers), w)
	}
}

func TestParseRequestValid(t *testing.T) {
	for _, tc := range validRequests {
		t.Run(tc.name, func(t *testing.T) {
			var p RequestParser
			var r Request
			// Body bytes after the head must be left alone.
			in := append(append([]byte{}, tc.raw...), "tail"...)
			n, done, err := p.Parse(in, &r)
			if err != nil || !done || n != len(tc.raw) {
				t.Fatalf("Parse = %d, %v, %v; want %d, true, nil", n, done, err, len(tc.raw))
			}
			checkRequest(t, &r, tc.want)
		})
	}
}

// TestParseRequestTruncation feeds every prefix, each time to a fresh parser
// and to one parser that sees the buffer grow (the gnet Peek pattern).
func TestParseRequestTruncation(t *testing.T) {
	for _, tc := range validRequests {
		t.Run(tc.name, func(t *testing.T) {
			var grow RequestParser
			var r Request
			for i := 0; i < len(tc.raw); i++ {
				var fresh RequestParser
				if n, done, err := fresh.Parse(tc.raw[:i], &r); n != 0 || done || err != nil {
					t.Fatalf("fresh prefix %d: %d, %v, %v", i, n, done, err)
				}
				if n, done, err := grow.Parse(tc.raw[:i], &r); n != 0 || done || err != nil {
					t.Fatalf("growing prefix %d: %d, %v, %v", i, n, done, err)
				}
			}
			n, done, err := grow.Parse(tc.raw, &r)
			if err != nil || !done || n != len(tc.raw) {
				t.Fatalf("full: %d, %v, %v", n, done, err)
			}
			checkRequest(t, &r, tc.want)
		})
	}
}

// TestParseRequestCopies checks the head survives the caller reusing its buffer.
func TestParseRequestCopies(t *testing.T) {
	raw := crlf("GET /a HTTP/1.1\nHost: h\nX-K: v\n\n")
	var p RequestParser
	var r Request
	if _, done, err := p.Parse(raw, &r); !done || err != nil {
		t.Fatal(done, err)
	}
	for i := range raw {
		raw[i] = 'Z'
	}
	if string(r.Target) != "/a" || string(r.Header("x-k")) != "v" || string(r.Host) != "h" {
		t.Fatalf("head not copied: %q %q", r.Target, r.Header("x-k"))
	}
}

func TestParseRequestPipelined(t *testing.T) {
	a := crlf("POST /a HTTP/1.1\nHost: h\nContent-Length: 3\n\n")
	b := crlf("GET /b HTTP/1.1\nHost: h\n\n")
	buf := append(append(append([]byte{}, a...), "xyz"...), b...)
	var p RequestParser
	var r Request
	n, done, err := p.Parse(buf, &r)
	if !done || err != nil || n != len(a) || r.ContentLength != 3 {
		t.Fatal(n, done, err)
	}
	buf = buf[n+3:]
	n, done, err = p.Parse(buf, &r)
	if !done || err != nil || n != len(b) || string(r.Target) != "/b" {
		t.Fatal(n, done, err, string(r.Target))
	}
}

func TestRequestHeaderLookup(t *testing.T) {
	var p RequestParser
	var r Request
	if _, _, err := p.Parse(crlf("GET / HTTP/1.1\nHost: h\nX-Dup: 1\nx-dup: 2\n\n"), &r); err != nil {
		t.Fatal(err)
	}
	if string(r.Header("X-DUP")) != "1" || r.Header("missing") != nil || string(r.Headers[2].Name) != "x-dup" {
		t.Fatalf("lookup: %q", r.Header("X-DUP"))
	}
}

var badRequests = []struct {
	name  string
	raw   string // "\n" becomes CRLF unless raw has a literal "\r"
	token string
}{
	{"cl-and-te", "POST / HTTP/1.1\nHost: a\nContent-Length: 3\nTransfer-Encoding: chunked\n\n", "cl_and_te"},
	{"te-and-cl", "POST / HTTP/1.1\nHost: a\nTransfer-Encoding: chunked\nContent-Length: 3\n\n", "cl_and_te"},
	{"cl-twice-same", "POST / HTTP/1.1\nHost: a\nContent-Length: 3\nContent-Length: 3\n\n", "multiple_content_length"},
	{"cl-twice-differ", "POST / HTTP/1.1\nHost: a\nContent-Length: 3\nContent-Length: 4\n\n", "multiple_content_length"},
	{"cl-list", "POST / HTTP/1.1\nHost: a\nContent-Length: 42, 42\n\n", "bad_content_length"},
	{"cl-nonnumeric", "POST / HTTP/1.1\nHost: a\nContent-Length: 4x\n\n", "bad_content_length"},
	{"cl-negative", "POST / HTTP/1.1\nHost: a\nContent-Length: -1\n\n", "bad_content_length"},
	{"cl-plus", "POST / HTTP/1.1\nHost: a\nContent-Length: +1\n\n", "bad_content_length"},
	{"cl-empty", "POST / HTTP/1.1\nHost: a\nContent-Length:\n\n", "bad_content_length"},
	{"cl-overflow", "POST / HTTP/1.1\nHost: a\nContent-Length: 18446744073709551616\n\n", "bad_content_length"},
	{"cl-19-digits", "POST / HTTP/1.1\nHost: a\nContent-Length: 1000000000000000000\n\n", "bad_content_length"},
	{"te-not-chunked-last", "POST / HTTP/1.1\nHost: a\nTransfer-Encoding: chunked, gzip\n\n", "te_not_chunked"},
	{"te-gzip-only", "POST / HTTP/1.1\nHost: a\nTransfer-Encoding: gzip\n\n", "te_not_chunked"},
	{"te-unknown", "POST / HTTP/1.1\nHost: a\nTransfer-Encoding: xchunked\n\n", "te_unknown"},
	{"te-chunked-twice", "POST / HTTP/1.1\nHost: a\nTransfer-Encoding: chunked\nTransfer-Encoding: chunked\n\n", "te_chunked_twice"},
	{"te-empty", "POST / HTTP/1.1\nHost: a\nTransfer-Encoding: \n\n", "bad_transfer_encoding"},
	{"te-bad-char", "POST / HTTP/1.1\nHost: a\nTransfer-Encoding: chunked\xa0\n\n", "bad_transfer_encoding"},
	{"te-http10", "POST / HTTP/1.0\nTransfer-Encoding: chunked\n\n", "te_http10"},
	{"obs-fold", "GET / HTTP/1.1\nHost: a\nX-A: b\n  c\n\n", "obs_fold"},
	{"obs-fold-first", "GET / HTTP/1.1\n Host: a\n\n", "obs_fold"},
	{"space-before-colon", "GET / HTTP/1.1\nHost: a\nTransfer-Encoding : chunked\n\n", "space_before_colon"},
	{"tab-before-colon", "GET / HTTP/1.1\nHost\t: a\n\n", "space_before_colon"},
	{"name-non-token", "GET / HTTP/1.1\nHost: a\nX(A): b\n\n", "bad_header_name"},
	{"name-space-inside", "GET / HTTP/1.1\nHost: a\nTransfer- Encoding: chunked\n\n", "bad_header_name"},
	{"name-no-colon", "GET / HTTP/1.1\nHost: a\nNoColon\n\n", "bad_header_name"},
	{"name-empty", "GET / HTTP/1.1\nHost: a\n: v\n\n", "empty_header_name"},
	{"name-lookalike-underscore", "POST / HTTP/1.1\nHost: a\nTransfer_Encoding: chunked\n\n", "suspicious_framing_header"},
	{"name-lookalike-cl", "POST / HTTP/1.1\nHost: a\nContent--Length: 1\n\n", "suspicious_framing_header"},
	{"value-nul", "GET / HTTP/1.1\nHost: a\nX-A: b\x00c\n\n", "bad_header_value"},
	{"value-ctl", "GET / HTTP/1.1\nHost: a\nX-A: \x01b\n\n", "bad_header_value"},
	{"value-del", "GET / HTTP/1.1\nHost: a\nX-A: b\x7f\n\n", "bad_header_value"},
	{"value-bare-cr", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\rc\r\n\r\n", "bad_header_value"},
	{"bare-lf-header", "GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n", "bare_lf"},
	{"bare-lf-request-line", "GET / HTTP/1.1\nHost: a\r\n\r\n", "bare_lf"},
	{"bare-lf-end", "GET / HTTP/1.1\r\nHost: a\r\n\n", "bare_lf"},
	{"missing-host", "GET / HTTP/1.1\nX: y\n\n", "missing_host"},
	{"duplicate-host", "GET / HTTP/1.1\nHost: a\nHost: a\n\n", "duplicate_host"},
	{"duplicate-host-http10", "GET / HTTP/1.0\nHost: a\nhost: b\n\n", "duplicate_host"},
	{"bad-host", "GET / HTTP/1.1\nHost: a b\n\n", "bad_host"},
	{"bad-host-userinfo", "GET / HTTP/1.1\nHost: u@a\n\n", "bad_host"},
	{"bad-host-pct", "GET / HTTP/1.1\nHost: %61\n\n", "bad_host"},
	{"bad-target-absolute-pct-host", "GET http://%61/ HTTP/1.1\nHost: a\n\n", "bad_target"},
	{"bad-method", "G@T / HTTP/1.1\nHost: a\n\n", "bad_method"},
	{"empty-method", " / HTTP/1.1\nHost: a\n\n", "bad_method"},
	{"bad-target-space", "GET /a b HTTP/1.1\nHost: a\n\n", "bad_target"},
	{"bad-target-double-space", "GET  / HTTP/1.1\nHost: a\n\n", "bad_target"},
	{"bad-target-empty", "GET  HTTP/1.1\nHost: a\n\n", "bad_target"},
	{"bad-target-tab", "GET /a\tb HTTP/1.1\nHost: a\n\n", "bad_target"},
	{"bad-target-ctl", "GET /a\x01 HTTP/1.1\nHost: a\n\n", "bad_target"},
	{"bad-target-relative", "GET a/b HTTP/1.1\nHost: a\n\n", "bad_target"},
	{"bad-target-star-get", "GET * HTTP/1.1\nHost: a\n\n", "bad_target"},
	{"bad-target-connect-path", "CONNECT /x HTTP/1.1\nHost: a\n\n", "bad_target"},
	{"bad-target-connect-noport", "CONNECT example.com HTTP/1.1\nHost: a\n\n", "bad_target"},
	{"bad-target-absolute-userinfo", "GET http://u:p@a/ HTTP/1.1\nHost: a\n\n", "bad_target"},
	{"bad-target-absolute-ftp", "GET ftp://a/ HTTP/1.1\nHost: a\n\n", "bad_target"},
	{"bad-target-absolute-empty", "GET http:///x HTTP/1.1\nHost: a\n\n", "bad_target"},
	{"no-version", "GET /\n\n", "bad_request_line"},
	{"no-space", "GET\n\n", "bad_request_line"},
	{"version-12", "GET / HTTP/1.2\nHost: a\n\n", "version_unsupported"},
	{"version-20", "GET / HTTP/2.0\nHost: a\n\n", "version_unsupported"},
	{"version-09", "GET / HTTP/0.9\n\n", "version_unsupported"},
	{"version-lower", "GET / http/1.1\nHost: a\n\n", "bad_version"},
	{"version-garbage", "GET / HTTP/1.1x\nHost: a\n\n", "bad_version"},
	{"version-trailing-space", "GET / HTTP/1.1 \nHost: a\n\n", "bad_target"},
	{"version-two-digits", "GET / HTTP/10.1\nHost: a\n\n", "bad_version"},
	{"get-with-cl", "GET / HTTP/1.1\nHost: a\nContent-Length: 5\n\n", "unexpected_body"},
	{"head-with-te", "HEAD / HTTP/1.1\nHost: a\nTransfer-Encoding: chunked\n\n", "unexpected_body"},
	{"trace-with-cl", "TRACE / HTTP/1.1\nHost: a\nContent-Length: 1\n\n", "unexpected_body"},
}

func TestParseRequestErrors(t *testing.T) {
	statusOf := map[string]int{}
	for _, e := range allErrors {
		statusOf[e.Token] = e.Status
	}
	for _, tc := range badRequests {
		t.Run(tc.name, func(t *testing.T) {
			raw := []byte(tc.raw)
			if !strings.Contains(tc.raw, "\r") {
				raw = crlf(tc.raw)
			}
			var p RequestParser
			var r Request
			n, done, err := p.Parse(raw, &r)
			var he *Error
			if !errors.As(err, &he) || n != 0 || done {
				t.Fatalf("Parse = %d, %v, %v; want error %s", n, done, err, tc.token)
			}
			if he.Token != tc.token || he.Status != statusOf[tc.token] {
				t.Fatalf("got %d %s (%v), want %s", he.Status, he.Token, err, tc.token)
			}
			if he.Status < 400 || he.Status > 505 {
				t.Fatalf("status %d", he.Status)
			}
		})
	}
}

func TestErrorsIsAcrossVariants(t *testing.T) {
	if !errors.Is(forResponse(ErrBareLF), ErrBareLF) || errors.Is(ErrBareLF, ErrObsFold) {
		t.Fatal("errors.Is by token")
	}
	if forResponse(ErrBodyTooLarge).Status != 502 || ErrBodyTooLarge.Status != 413 {
		t.Fatal("response variant")
	}
	seen := map[string]bool{}
	for _, e := range allErrors {
		if seen[e.Token] {
			t.Fatalf("duplicate token %s", e.Token)
		}
		seen[e.Token] = true
		if !strings.HasPrefix(e.Error(), "h1: "+e.Token+": ") {
			t.Fatal(e.Error())
		}
	}
}

func TestParseRequestLimits(t *testing.T) {
	lim := DefaultLimits()
	lim.MaxRequestLine = 64
	lim.MaxHeaderBytes = 128
	lim.MaxHeaderCount = 4
	lim.MaxBodyBytes = 1000
	cases := []struct {
		name   string
		raw    []byte
		status int
		token  string
	}{
		// Incomplete heads already over a limit are refused without waiting.
		{"long-target-incomplete", []byte("GET /" + strings.Repeat("a", 64)), 414, "request_line_too_long"},
		{"long-target-complete", crlf("GET /" + strings.Repeat("a", 60) + " HTTP/1.1\nHost: a\n\n"), 414, "request_line_too_long"},
		{"endless-crlf", bytes.Repeat([]byte("\r\n"), 40), 414, "request_line_too_long"},
		{"big-headers-incomplete", crlf("GET / HTTP/1.1\nX: " + strings.Repeat("b", 130)), 431, "headers_too_large"},
		{"big-headers-complete", crlf("GET / HTTP/1.1\nHost: a\nX: " + strings.Repeat("b", 120) + "\n\n"), 431, "headers_too_large"},
		{"too-many-headers", crlf("GET / HTTP/1.1\nHost: a\nA: 1\nB: 1\nC: 1\nD: 1\n\n"), 431, "too_many_headers"},
		{"too-many-headers-incomplete", crlf("GET / HTTP/1.1\nHost: a\nA: 1\nB: 1\nC: 1\nD: 1\n"), 431, "too_many_headers"},
		{"body-too-large", crlf("POST / HTTP/1.1\nHost: a\nContent-Length: 1001\n\n"), 413, "body_too_large"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := RequestParser{Limits: lim}
			var r Request
			_, _, err := p.Parse(tc.raw, &r)
			var he *Error
			if !errors.As(err, &he) || he.Status != tc.status || he.Token != tc.token {
				t.Fatalf("got %v, want %d %s", err, tc.status, tc.token)
			}
		})
	}
	// Exactly at the limits is fine.
	p := RequestParser{Limits: lim}
	var r Request
	ok := crlf("POST /" + strings.Repeat("a", 64-len("POST / HTTP/1.1\n\n")) + " HTTP/1.1\nHost: a\nA: 1\nB: 1\nContent-Length: 1000\n\n")
	if _, done, err := p.Parse(ok, &r); !done || err != nil {
		t.Fatalf("at limits: %v", err)
	}
}

// TestParseRequestIncrementalLinear checks that a head fed a byte at a time
// is scanned once: the scanner never moves backwards.
func TestParseRequestIncrementalLinear(t *testing.T) {
	raw := crlf("GET / HTTP/1.1\nHost: a\n" + strings.Repeat("X-Filler: 0123456789\n", 90) + "\n")
	var p RequestParser
	var r Request
	last := 0
	for i := 1; i < len(raw); i++ {
		if _, done, err := p.Parse(raw[:i], &r); done || err != nil {
			t.Fatal(i, done, err)
		}
		if p.scan.pos != i || p.scan.pos < last {
			t.Fatalf("scanner at %d after %d bytes", p.scan.pos, i)
		}
		last = p.scan.pos
	}
	if n, done, err := p.Parse(raw, &r); !done || err != nil || n != len(raw) || len(r.Headers) != 91 {
		t.Fatal(n, done, err)
	}
}

func TestParseRequestReset(t *testing.T) {
	var p RequestParser
	var r Request
	if _, done, err := p.Parse([]byte("GET /partial HTTP/1.1\r\nHo"), &r); done || err != nil {
		t.Fatal(done, err)
	}
	p.Reset()
	raw := crlf("GET /x HTTP/1.1\nHost: a\n\n")
	if _, done, err := p.Parse(raw, &r); !done || err != nil || string(r.Target) != "/x" {
		t.Fatal(done, err)
	}
	// A shorter buffer than last seen without Reset is detected too.
	if _, done, err := p.Parse([]byte("GET /partial HTTP/1.1\r\nHost: aaaaaaaaaaaaa"), &r); done || err != nil {
		t.Fatal(done, err)
	}
	if _, done, err := p.Parse(raw, &r); !done || err != nil || string(r.Target) != "/x" {
		t.Fatal(done, err)
	}
}
