package h1

import (
	"bufio"
	"bytes"
	"errors"
	"github.com/expressgateway/expressgateway/codecs/msg"
	"io"
	"net/http"
	"net/http/httputil"
	"testing"
)

var bigLimits = Limits{MaxRequestLine: 1 << 20, MaxHeaderBytes: 1 << 20, MaxHeaderCount: 1 << 10}

// checkParseResult asserts the contract shared by both parsers.
func checkParseResult(t *testing.T, inLen, n int, done bool, err error, response bool) {
	t.Helper()
	if n < 0 || n > inLen {
		t.Fatalf("n=%d outside [0,%d]", n, inLen)
	}
	if done != (n > 0) || (done && err != nil) {
		t.Fatalf("n=%d done=%v err=%v", n, done, err)
	}
	if err != nil {
		var he *Error
		if !errors.As(err, &he) || n != 0 {
			t.Fatalf("error %T %v with n=%d", err, err, n)
		}
		if response && he.Status != 502 {
			t.Fatalf("response error status %d", he.Status)
		}
		switch he.Status {
		case 400, 413, 414, 431, 501, 502, 505:
		default:
			t.Fatalf("status %d", he.Status)
		}
	}
}

func sameOutcome(a, b error) bool {
	if a == nil || b == nil {
		return a == b
	}
	return errors.Is(a, b)
}

// endToEnd returns the headers a proxy forwards unchanged, by name and value.
func endToEnd(hs []Header, o *ProxyOptions) []string {
	fs, _, added := msg.ForwardRequest(nil, nil, hs, o)
	var out []string
	for _, h := range fs[:added] {
		out = append(out, string(h.Name)+"\x00"+string(h.Value))
	}
	return out
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func FuzzRequestParser(f *testing.F) {
	for _, tc := range validRequests {
		f.Add(tc.raw)
	}
	for _, tc := range badRequests {
		f.Add(crlf(tc.raw))
	}
	f.Add(crlf(browserGET))
	f.Fuzz(func(t *testing.T, data []byte) {
		var p RequestParser
		var r Request
		n, done, err := p.Parse(data, &r)
		checkParseResult(t, len(data), n, done, err, false)

		// Feeding the same bytes as a growing buffer gives the same outcome.
		var q RequestParser
		var r1 Request
		step := 1 + len(data)/128 // bounded work per exec; unit tests go byte by byte
		n1, done1, err1 := 0, false, error(nil)
		for i := 0; i <= len(data); i += step {
			n1, done1, err1 = q.Parse(data[:i], &r1)
			if done1 || err1 != nil {
				break
			}
		}
		if !done1 && err1 == nil {
			n1, done1, err1 = q.Parse(data, &r1)
		}
		if !sameOutcome(err, err1) || (done && (!done1 || n1 != n)) {
			// A prefix may complete an earlier head only if the full
			// buffer completes the same one.
			t.Fatalf("one-shot (%d %v %v) vs incremental (%d %v %v)", n, done, err, n1, done1, err1)
		}
		if !done {
			return
		}
		differentialNetHTTP(t, data[:n], &r)

		// The forwarded head parses back to the same request.
		head := AppendProxyRequestHead(nil, &r, testOpts)
		p2 := RequestParser{Limits: bigLimits}
		var r2 Request
		n2, done2, err2 := p2.Parse(head, &r2)
		if err2 != nil || !done2 || n2 != len(head) {
			t.Fatalf("forwarded head: %v %v %d/%d\n%q\nfrom %q", err2, done2, n2, len(head), head, data[:n])
		}
		origin := appendOriginForm(nil, r.Method, r.Target)
		if string(r2.Method) != string(r.Method) || string(r2.Target) != string(origin) ||
			string(r2.Host) != string(r.Host) || r2.Body != r.Body || r2.ContentLength != r.ContentLength ||
			r2.Upgrade != nil || r2.Version != Version11 || !r2.KeepAlive {
			t.Fatalf("forwarded head differs:\n%q\nfrom %q", head, data[:n])
		}
		if a, b := endToEnd(r.Headers, testOpts), endToEnd(r2.Headers, testOpts); !equalStrings(a, b) {
			t.Fatalf("headers differ: %q vs %q", a, b)
		}
		if xff := r2.Header("x-forwarded-for"); !bytes.HasSuffix(xff, testOpts.ClientIP) {
			t.Fatalf("x-forwarded-for %q", xff)
		}
	})
}

func FuzzResponseParser(f *testing.F) {
	for _, tc := range validResponses {
		f.Add(tc.raw, byte(0))
		f.Add(tc.raw, byte(1))
	}
	f.Add(crlf("HTTP/1.1 200 OK\nContent-Length: 3\nTransfer-Encoding: chunked\n\n"), byte(0))
	f.Add(crlf("HTTP/1.1 200 OK\nConnection: close, x-a\nX-A: 1\n\n"), byte(2))
	methods := [...]string{"GET", "HEAD", "CONNECT", "POST"}
	f.Fuzz(func(t *testing.T, data []byte, m byte) {
		method := []byte(methods[int(m)%len(methods)])
		var p ResponseParser
		var r Response
		n, done, err := p.Parse(data, method, &r)
		checkParseResult(t, len(data), n, done, err, true)
		if !done {
			return
		}
		differentialNetHTTPResponse(t, data[:n], string(method), &r)
		head := AppendProxyResponseHead(nil, &r, testOpts, Version11, r.Body, r.KeepAlive)
		p2 := ResponseParser{Limits: bigLimits}
		var r2 Response
		n2, done2, err2 := p2.Parse(head, method, &r2)
		if err2 != nil || !done2 || n2 != len(head) {
			t.Fatalf("forwarded head: %v\n%q\nfrom %q", err2, head, data[:n])
		}
		if r2.Status != r.Status || r2.Body != r.Body ||
			(r.Body == BodyLength && r2.ContentLength != r.ContentLength) ||
			(r.Body != BodyUntilClose && r.Status != 101 && r2.KeepAlive != r.KeepAlive) {
			t.Fatalf("forwarded head differs:\n%q\nfrom %q", head, data[:n])
		}
		if a, b := endToEnd(r.Headers, testOpts), endToEnd(r2.Headers, testOpts); !equalStrings(a, b) {
			t.Fatalf("headers differ: %q vs %q", a, b)
		}
	})
}

func FuzzBodyDecoder(f *testing.F) {
	for _, tc := range validChunked {
		f.Add([]byte(tc.raw), byte(1))
	}
	f.Add([]byte("5;"+string(bytes.Repeat([]byte("e"), 300))+"\r\nhello\r\n0\r\n\r\n"), byte(3))
	f.Add([]byte("0\r\nX: y\r\nZ: w\r\n\r\n"), byte(0))
	f.Fuzz(func(t *testing.T, data []byte, step byte) {
		lim := DefaultLimits()
		lim.MaxBodyBytes = 1 << 16
		var d1, d2 BodyDecoder
		d1.Reset(BodyChunked, -1, lim)
		d2.Reset(BodyChunked, -1, lim)
		p1, u1, done1, err1 := decodeAll(&d1, data, 0)
		p2, u2, done2, err2 := decodeAll(&d2, data, 1+int(step%16))
		if !sameOutcome(err1, err2) || done1 != done2 || (err1 == nil && (u1 != u2 || !bytes.Equal(p1, p2))) {
			t.Fatalf("at once (%d %v %v) vs split (%d %v %v)", u1, done1, err1, u2, done2, err2)
		}
		if err1 != nil {
			var he *Error
			if !errors.As(err1, &he) || (he.Status != 400 && he.Status != 413 && he.Status != 431) {
				t.Fatalf("error %v", err1)
			}
			return
		}
		if !done1 {
			return
		}
		// net/http's chunked reader, when it accepts the body, reads the same
		// payload.
		if ref, err := io.ReadAll(httputil.NewChunkedReader(bytes.NewReader(data[:u1]))); err == nil && !bytes.Equal(ref, p1) {
			t.Fatalf("net/http payload %q, ours %q", ref, p1)
		}
		// Re-encoding the payload and trailers decodes to the same thing.
		wire := AppendLastChunk(AppendChunk(nil, p1), d1.Trailers())
		var d3 BodyDecoder
		d3.Reset(BodyChunked, -1, lim)
		p3, u3, done3, err3 := decodeAll(&d3, wire, 0)
		if err3 != nil || !done3 || u3 != len(wire) || !bytes.Equal(p3, p1) || len(d3.Trailers()) != len(d1.Trailers()) {
			t.Fatalf("re-encode: %v %v %q", err3, done3, wire)
		}
	})
}

// differentialNetHTTP compares a head we accepted with what net/http reads
// from the same bytes. net/http refuses some heads we take (transfer codings
// before chunked, for instance), which is fine; when both accept, they must
// agree on method, host and, above all, body framing.
func differentialNetHTTP(t *testing.T, head []byte, r *Request) {
	t.Helper()
	req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(head)))
	if err != nil {
		return
	}
	chunked := len(req.TransferEncoding) > 0 && req.TransferEncoding[0] == "chunked"
	wantCL := r.ContentLength
	if r.Body == BodyNone || r.Body == BodyChunked {
		wantCL = 0
		if chunked {
			wantCL = -1
		}
	}
	if req.Method != string(r.Method) || req.Host != string(r.Host) ||
		chunked != (r.Body == BodyChunked) || req.ContentLength != wantCL {
		t.Fatalf("net/http disagrees: method %q host %q te %q cl %d; we: %q %q %v %d\n%q",
			req.Method, req.Host, req.TransferEncoding, req.ContentLength,
			r.Method, r.Host, r.Body, r.ContentLength, head)
	}
}

// differentialNetHTTPResponse is differentialNetHTTP for responses: when
// net/http also accepts the head, both must find the same status and the
// same body length.
func differentialNetHTTPResponse(t *testing.T, head []byte, method string, r *Response) {
	t.Helper()
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(head)), &http.Request{Method: method})
	if err != nil {
		return
	}
	chunked := len(resp.TransferEncoding) > 0 && resp.TransferEncoding[0] == "chunked"
	ok := resp.StatusCode == r.Status
	switch r.Body {
	case BodyChunked:
		ok = ok && chunked
	case BodyLength:
		ok = ok && !chunked && resp.ContentLength == r.ContentLength
	case BodyUntilClose:
		ok = ok && !chunked && resp.ContentLength == -1
	}
	if !ok {
		t.Fatalf("net/http disagrees: status %d te %q cl %d; we: %d %v %d\n%q",
			resp.StatusCode, resp.TransferEncoding, resp.ContentLength, r.Status, r.Body, r.ContentLength, head)
	}
}
