package h1

import (
	"strings"
	"testing"
)

func mustParseRequest(t testing.TB, raw []byte) *Request {
	t.Helper()
	var p RequestParser
	r := new(Request)
	if _, done, err := p.Parse(raw, r); !done || err != nil {
		t.Fatalf("parse %q: %v %v", raw, done, err)
	}
	return r
}

func mustParseResponse(t testing.TB, raw []byte, method string) *Response {
	t.Helper()
	var p ResponseParser
	r := new(Response)
	if _, done, err := p.Parse(raw, []byte(method), r); !done || err != nil {
		t.Fatalf("parse %q: %v %v", raw, done, err)
	}
	return r
}

var testOpts = &ProxyOptions{ClientIP: []byte("203.0.113.7"), Proto: "https", Via: "1.1 expressgateway"}

func TestAppendProxyRequestHeadGolden(t *testing.T) {
	cases := []struct {
		name string
		in   string
		opts *ProxyOptions
		want string
	}{
		{"browser-get", `GET /index.html?q=1 HTTP/1.1
Host: example.com
User-Agent: UA
Accept: */*
Connection: keep-alive
Keep-Alive: timeout=5

`, testOpts, `GET /index.html?q=1 HTTP/1.1
Host: example.com
User-Agent: UA
Accept: */*
X-Forwarded-For: 203.0.113.7
X-Forwarded-Proto: https
Via: 1.1 expressgateway

`},
		{"hop-by-hop-and-merge", `POST /api HTTP/1.1
X-Forwarded-For: 10.0.0.1
host: api.local
Connection: close, X-Secret
X-Secret: s
TE: trailers
Trailer: X-Sum
Proxy-Connection: keep-alive
Upgrade: h2c
X-Forwarded-Proto: http
Via: 1.0 edge
X-Forwarded-For: 10.0.0.2
content-length: 0007
Authorization: Bearer t

`, testOpts, `POST /api HTTP/1.1
Host: api.local
Trailer: X-Sum
Authorization: Bearer t
Content-Length: 7
X-Forwarded-For: 10.0.0.1, 10.0.0.2, 203.0.113.7
X-Forwarded-Proto: https
Via: 1.0 edge, 1.1 expressgateway

`},
		{"chunked-codings-canonical", `PUT /up HTTP/1.1
Host: h
Transfer-Encoding: GZIP;q=1 , identity
Transfer-Encoding: Chunked;ext

`, nil, `PUT /up HTTP/1.1
Host: h
Transfer-Encoding: gzip, chunked

`},
		{"upgrade-stripped", `GET /ws HTTP/1.1
Host: h
Connection: Upgrade
Upgrade: websocket
Sec-WebSocket-Key: k

`, &ProxyOptions{Via: "1.1 eg"}, `GET /ws HTTP/1.1
Host: h
Sec-WebSocket-Key: k
Via: 1.1 eg

`},
		{"http10-close-client", `GET / HTTP/1.0
Host: h
Connection: close

`, nil, `GET / HTTP/1.1
Host: h

`},
		{"http10-no-host", `GET /x HTTP/1.0

`, nil, `GET /x HTTP/1.1
Host: 

`},
		{"absolute-form", `GET http://Origin.example:8080?a=b HTTP/1.1
Host: other

`, nil, `GET /?a=b HTTP/1.1
Host: Origin.example:8080

`},
		{"absolute-form-path", `GET https://o.example/p/q HTTP/1.1
Host: o.example

`, nil, `GET /p/q HTTP/1.1
Host: o.example

`},
		{"connect", `CONNECT o.example:443 HTTP/1.1
Host: o.example:443

`, nil, `CONNECT o.example:443 HTTP/1.1
Host: o.example:443

`},
		{"options-star", `OPTIONS * HTTP/1.1
Host: h

`, nil, `OPTIONS * HTTP/1.1
Host: h

`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := mustParseRequest(t, crlf(tc.in))
			got := string(AppendProxyRequestHead([]byte("prefix:"), r, tc.opts))
			want := "prefix:" + string(crlf(tc.want))
			if got != want {
				t.Fatalf("got\n%s\nwant\n%s", got, want)
			}
			// What we send must parse back with the same framing.
			r2 := mustParseRequest(t, []byte(got[len("prefix:"):]))
			if r2.Body != r.Body || r2.ContentLength != r.ContentLength || string(r2.Method) != string(r.Method) {
				t.Fatalf("reparse framing %v/%d vs %v/%d", r2.Body, r2.ContentLength, r.Body, r.ContentLength)
			}
		})
	}
}

func TestAppendProxyResponseHeadGolden(t *testing.T) {
	cases := []struct {
		name          string
		in            string
		method        string
		clientVersion Version
		out           BodyKind
		keepAlive     bool
		want          string
	}{
		{"cl-keepalive", `HTTP/1.1 200 OK
Content-Type: text/html
Content-Length: 12
Keep-Alive: timeout=5
Connection: keep-alive

`, "GET", Version11, BodyLength, true, `HTTP/1.1 200 OK
Content-Type: text/html
Content-Length: 12
Via: 1.1 expressgateway

`},
		{"chunked-to-http10", `HTTP/1.1 200 OK
Transfer-Encoding: chunked
Trailer: X-Sum
Via: 1.1 origin-cache

`, "GET", Version10, BodyUntilClose, true, `HTTP/1.1 200 OK
Trailer: X-Sum
Connection: close
Via: 1.1 origin-cache, 1.1 expressgateway

`},
		{"gzip-chunked", `HTTP/1.1 200 Fine
Transfer-Encoding: gzip, chunked

`, "GET", Version11, BodyChunked, true, `HTTP/1.1 200 Fine
Transfer-Encoding: gzip, chunked
Via: 1.1 expressgateway

`},
		{"gzip-until-close", `HTTP/1.1 200 OK
Transfer-Encoding: gzip

`, "GET", Version11, BodyUntilClose, false, `HTTP/1.1 200 OK
Transfer-Encoding: gzip
Connection: close
Via: 1.1 expressgateway

`},
		{"http10-keepalive", `HTTP/1.1 404 Not Found
Content-Length: 0

`, "GET", Version10, BodyLength, true, `HTTP/1.1 404 Not Found
Content-Length: 0
Connection: keep-alive
Via: 1.1 expressgateway

`},
		{"close", `HTTP/1.0 500
Content-Length: 2
X-Drop: 1
Connection: x-drop

`, "GET", Version11, BodyLength, false, `HTTP/1.1 500 Internal Server Error
Content-Length: 2
Connection: close
Via: 1.1 expressgateway

`},
		{"head-keeps-length", `HTTP/1.1 200 OK
Content-Length: 1234

`, "HEAD", Version11, BodyNone, true, `HTTP/1.1 200 OK
Content-Length: 1234
Via: 1.1 expressgateway

`},
		{"204-no-length", `HTTP/1.1 204 No Content
Content-Length: 0

`, "GET", Version11, BodyNone, true, `HTTP/1.1 204 No Content
Via: 1.1 expressgateway

`},
		{"101-upgrade", `HTTP/1.1 101 Switching Protocols
Connection: Upgrade
Upgrade: websocket
Sec-WebSocket-Accept: a

`, "GET", Version11, BodyNone, true, `HTTP/1.1 101 Switching Protocols
Sec-WebSocket-Accept: a
Connection: upgrade
Upgrade: websocket
Via: 1.1 expressgateway

`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := mustParseResponse(t, crlf(tc.in), tc.method)
			got := string(AppendProxyResponseHead(nil, r, testOpts, tc.clientVersion, tc.out, tc.keepAlive))
			if want := string(crlf(tc.want)); got != want {
				t.Fatalf("got\n%s\nwant\n%s", got, want)
			}
			r2 := mustParseResponse(t, []byte(got), tc.method)
			if r2.Status != r.Status || r2.Body != tc.out && !(tc.out == BodyNone && r2.Body == BodyNone) {
				t.Fatalf("reparse: %d %v", r2.Status, r2.Body)
			}
		})
	}
}

func TestAppendSimpleResponseGolden(t *testing.T) {
	cases := []struct {
		got, want string
	}{
		{string(AppendSimpleResponse(nil, 400, nil, []byte("bad request\n"), true)),
			"HTTP/1.1 400 Bad Request\r\nContent-Length: 12\r\nConnection: close\r\n\r\nbad request\n"},
		{string(AppendSimpleResponse(nil, 503, []Header{{Name: []byte("Retry-After"), Value: []byte("5")}, {Name: []byte("Content-Type"), Value: []byte("text/plain")}}, []byte("busy"), false)),
			"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\nContent-Type: text/plain\r\nContent-Length: 4\r\n\r\nbusy"},
		{string(AppendSimpleResponse(nil, 404, nil, nil, false)),
			"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"},
		{string(AppendSimpleResponse(nil, 100, nil, []byte("ignored"), false)),
			"HTTP/1.1 100 Continue\r\n\r\n"},
		{string(AppendSimpleResponse(nil, 204, nil, nil, true)),
			"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"},
		{string(AppendSimpleResponse(nil, 599, nil, nil, true)),
			"HTTP/1.1 599 \r\nContent-Length: 0\r\nConnection: close\r\n\r\n"},
	}
	for _, c := range cases {
		if c.got != c.want {
			t.Errorf("got %q\nwant %q", c.got, c.want)
		}
	}
	// Every status we generate locally has a reason and parses back.
	for _, code := range []int{400, 404, 408, 413, 414, 431, 501, 502, 503, 504, 505} {
		if StatusText(code) == "" {
			t.Errorf("no text for %d", code)
		}
		raw := AppendSimpleResponse(nil, code, nil, []byte("x"), true)
		r := mustParseResponse(t, raw, "GET")
		if r.Status != code || r.Body != BodyLength || r.ContentLength != 1 || r.KeepAlive {
			t.Errorf("%d: %+v", code, r)
		}
	}
	if StatusText(299) != "" {
		t.Error("unknown status")
	}
}

func TestProxyRequestDropsConnectionListedOnly(t *testing.T) {
	r := mustParseRequest(t, crlf("GET / HTTP/1.1\nHost: h\nConnection: foo\nFoo: 1\nFoobar: 2\n\n"))
	got := string(AppendProxyRequestHead(nil, r, nil))
	if strings.Contains(got, "Foo: 1") || !strings.Contains(got, "Foobar: 2") {
		t.Fatal(got)
	}
}

func TestFilterTrailers(t *testing.T) {
	in := []Header{
		{Name: []byte("X-Checksum"), Value: []byte("1")},
		{Name: []byte("X-Forwarded-For"), Value: []byte("6.6.6.6")},
		{Name: []byte("x-forwarded-host"), Value: []byte("evil")},
		{Name: []byte("Authorization"), Value: []byte("Bearer x")},
		{Name: []byte("Cookie"), Value: []byte("a=1")},
		{Name: []byte("Via"), Value: []byte("1.1 evil")},
		{Name: []byte("Grpc-Status"), Value: []byte("0")},
		{Name: []byte("HTTP2-Settings"), Value: []byte("AA")},
	}
	out := FilterTrailers(in)
	var names []string
	for _, h := range out {
		names = append(names, string(h.Name))
	}
	if strings.Join(names, ",") != "X-Checksum,Grpc-Status" {
		t.Fatalf("kept %v", names)
	}
}

func TestProxyRequestDropsHTTP2SettingsAndExpect(t *testing.T) {
	var p RequestParser
	var r Request
	raw := "PUT /u HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABk\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n"
	if _, done, err := p.Parse([]byte(raw), &r); !done || err != nil {
		t.Fatal(done, err)
	}
	got := string(AppendProxyRequestHead(nil, &r, &ProxyOptions{DropExpect: true}))
	want := "PUT /u HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\n"
	if got != want {
		t.Fatalf("got %q want %q", got, want)
	}
	got = string(AppendProxyRequestHead(nil, &r, nil))
	if !strings.Contains(got, "Expect: 100-continue\r\n") || strings.Contains(strings.ToLower(got), "upgrade") || strings.Contains(strings.ToLower(got), "http2-settings") {
		t.Fatalf("without DropExpect: %q", got)
	}
}

func TestAllowGetBody(t *testing.T) {
	for _, m := range []string{"GET", "HEAD", "TRACE"} {
		raw := m + " / HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi"
		for _, allow := range []bool{false, true} {
			p := RequestParser{Limits: Limits{AllowGetBody: allow}}
			var r Request
			_, _, err := p.Parse([]byte(raw), &r)
			wantErr := !allow || m == "TRACE"
			if (err != nil) != wantErr {
				t.Errorf("%s allow=%v: err %v", m, allow, err)
			}
		}
	}
}
