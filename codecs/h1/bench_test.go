package h1

import (
	"testing"

	"github.com/expressgateway/expressgateway/codecs/msg"
)

const browserGET = `GET /assets/app.js?v=3 HTTP/1.1
Host: www.example.com
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0
Accept: */*
Accept-Language: en-US,en;q=0.5
Accept-Encoding: gzip, deflate, br, zstd
Referer: https://www.example.com/
Connection: keep-alive
Cookie: session=0123456789abcdef; theme=dark
Sec-Fetch-Dest: script
Sec-Fetch-Mode: no-cors
If-None-Match: "5f2b-1a"

`

func BenchmarkParseRequest(b *testing.B) {
	raw := crlf(browserGET)
	var p RequestParser
	var r Request
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, done, err := p.Parse(raw, &r); !done || err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseResponse(b *testing.B) {
	raw := crlf("HTTP/1.1 200 OK\nDate: Thu, 26 Nov 2026 00:00:00 GMT\nContent-Type: application/javascript\nContent-Length: 5120\nCache-Control: max-age=3600\nETag: \"5f2b-1a\"\nVary: Accept-Encoding\nServer: origin\n\n")
	var p ResponseParser
	var r Response
	method := []byte("GET")
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, done, err := p.Parse(raw, method, &r); !done || err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendProxyRequestHead(b *testing.B) {
	r := mustParseRequest(b, crlf(browserGET))
	opts := &ProxyOptions{ClientIP: []byte("2001:db8:85a3::8a2e:370:7334"), Proto: "https", Via: "1.1 expressgateway"}
	dst := make([]byte, 0, 4096)
	var sc msg.Scratch
	b.ReportAllocs()
	for b.Loop() {
		dst = AppendProxyRequestHeadWith(dst[:0], r, opts, &sc)
	}
	b.SetBytes(int64(len(dst)))
}

func BenchmarkBodyDecoderChunked(b *testing.B) {
	var wire []byte
	chunk := make([]byte, 4096)
	for range 16 {
		wire = AppendChunk(wire, chunk)
	}
	wire = AppendLastChunk(wire, nil)
	var d BodyDecoder
	b.SetBytes(int64(len(wire)))
	b.ReportAllocs()
	for b.Loop() {
		d.Reset(BodyChunked, -1, DefaultLimits())
		for in := wire; ; {
			n, _, done, err := d.Decode(in)
			if err != nil {
				b.Fatal(err)
			}
			in = in[n:]
			if done {
				break
			}
		}
	}
}

// TestZeroAllocs pins the steady-state allocation count the benchmarks show.
func TestZeroAllocs(t *testing.T) {
	raw := crlf(browserGET)
	var p RequestParser
	var r Request
	if _, done, err := p.Parse(raw, &r); !done || err != nil { // warm the buffers
		t.Fatal(done, err)
	}
	if a := testing.AllocsPerRun(200, func() { _, _, _ = p.Parse(raw, &r) }); a != 0 {
		t.Errorf("Parse: %v allocs", a)
	}
	// Incomplete heads, as while a head trickles in, allocate nothing either.
	var q RequestParser
	if a := testing.AllocsPerRun(200, func() { _, _, _ = q.Parse(raw[:len(raw)/2], &r); q.Reset() }); a != 0 {
		t.Errorf("partial Parse: %v allocs", a)
	}
	resp := crlf("HTTP/1.1 200 OK\nContent-Length: 5\nX: y\n\n")
	var rp ResponseParser
	var rr Response
	if _, done, err := rp.Parse(resp, []byte("GET"), &rr); !done || err != nil {
		t.Fatal(done, err)
	}
	if a := testing.AllocsPerRun(200, func() { _, _, _ = rp.Parse(resp, []byte("GET"), &rr) }); a != 0 {
		t.Errorf("response Parse: %v allocs", a)
	}
	opts := &ProxyOptions{ClientIP: []byte("2001:db8:85a3::8a2e:370:7334"), Proto: "https", Via: "1.1 expressgateway"}
	var sc msg.Scratch
	dst := AppendProxyRequestHeadWith(nil, &r, opts, &sc)
	if a := testing.AllocsPerRun(200, func() { dst = AppendProxyRequestHeadWith(dst[:0], &r, opts, &sc) }); a != 0 {
		t.Errorf("AppendProxyRequestHead: %v allocs", a)
	}
	if a := testing.AllocsPerRun(200, func() { dst = AppendProxyResponseHeadWith(dst[:0], &rr, opts, Version10, BodyChunked, true, &sc) }); a != 0 {
		t.Errorf("AppendProxyResponseHead: %v allocs", a)
	}
	var d BodyDecoder
	body := []byte("3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n")
	d.Reset(BodyChunked, -1, DefaultLimits())
	if _, _, done, err := decodeAll(&d, body, 0); !done || err != nil {
		t.Fatal(done, err)
	}
	if a := testing.AllocsPerRun(200, func() {
		d.Reset(BodyChunked, -1, DefaultLimits())
		for in := body; ; {
			n, _, done, _ := d.Decode(in)
			in = in[n:]
			if done || n == 0 {
				break
			}
		}
	}); a != 0 {
		t.Errorf("BodyDecoder: %v allocs", a)
	}
}
