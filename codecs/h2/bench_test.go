// SPDX-License-Identifier: GPL-3.0-only

package h2

import (
	"testing"
)

// browserRequest is a typical browser GET, as h1's benchmark uses.
var browserRequest = []string{
	":method", "GET", ":scheme", "https", ":authority", "www.example.com", ":path", "/assets/app.js?v=3",
	"user-agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
	"accept", "*/*",
	"accept-language", "en-US,en;q=0.5",
	"accept-encoding", "gzip, deflate, br, zstd",
	"referer", "https://www.example.com/",
	"cookie", "session=0123456789abcdef; theme=dark",
	"sec-fetch-dest", "script",
	"sec-fetch-mode", "no-cors",
	"if-none-match", `"5f2b-1a"`,
}

var smallResponse = &Head{Status: 200, Fields: []Field{
	{Name: []byte("content-type"), Value: []byte("application/javascript")},
	{Name: []byte("cache-control"), Value: []byte("max-age=3600")},
	{Name: []byte("etag"), Value: []byte(`"5f2b-1a"`)},
	{Name: []byte("server"), Value: []byte("expressgateway")},
}}

// benchHandler is the owner in benchmarks: it answers or resets each
// request (so streams do not pile up) and consumes DATA at once.
type benchHandler struct {
	NopHandler
	c       *Conn
	respond *Head
	keep    bool // leave streams open
	data    int
}

func (h *benchHandler) OnHeaders(id uint32, hd *Head, end bool) {
	switch {
	case h.keep:
	case h.respond != nil:
		_ = h.c.WriteHeaders(id, h.respond, true)
	default:
		_ = h.c.WriteRST(id, ErrCodeNo)
	}
}

func (h *benchHandler) OnData(id uint32, data []byte, end bool) {
	h.data += len(data)
	h.c.Consumed(id, len(data))
}

func benchServer(tb testing.TB, h *benchHandler) *Conn {
	c := NewConn(RoleServer, Limits{}, h, t0)
	h.c = c
	feedAll(tb, c, cat(clientStart(), AppendSettingsAck(nil)))
	c.Advance(len(c.Output()))
	return c
}

// setStreamID rewrites the stream identifier of the frame at the start of b.
func setStreamID(b []byte, id uint32) {
	b[5], b[6], b[7], b[8] = byte(id>>24), byte(id>>16), byte(id>>8), byte(id)
}

// An op is one benchmarked operation on a prepared Conn; size is the bytes
// it carries (0: do not report throughput).
type op struct {
	run  func()
	size int
}

// feedEach feeds frame again and again on new stream ids.
func feedEach(tb testing.TB, c *Conn, frame []byte, id uint32) op {
	return op{size: len(frame), run: func() {
		setStreamID(frame, id)
		if n, err := c.Feed(frame, t0); err != nil || n != len(frame) {
			tb.Fatal(n, err)
		}
		c.Advance(len(c.Output()))
		id += 2
	}}
}

// opFeedHeaders: one HEADERS frame with a typical request per op, in
// steady state: the peer's encoder has indexed every field, as a browser's
// does from its second request on. The handler resets each stream.
func opFeedHeaders(tb testing.TB, respond *Head) op {
	c := benchServer(tb, &benchHandler{respond: respond})
	e := newEnc()
	feedAll(tb, c, headersFrame(1, e.block(browserRequest...), true))
	return feedEach(tb, c, headersFrame(3, e.block(browserRequest...), true), 3)
}

// opFeedHeadersLiteral: the same request when nothing is indexed (a peer
// encoder with a zero table): every literal costs x/net's decoder a string.
func opFeedHeadersLiteral(tb testing.TB) op {
	c := benchServer(tb, &benchHandler{})
	e := newEnc()
	e.e.SetMaxDynamicTableSizeLimit(0)
	e.e.SetMaxDynamicTableSize(0)
	return feedEach(tb, c, headersFrame(1, e.block(browserRequest...)[1:], true), 1) // [1:]: no size update
}

// opFeedData: one DATA frame per op on an open stream, consumed at once
// (the WINDOW_UPDATEs that follow included).
func opFeedData(tb testing.TB, size int) op {
	h := &benchHandler{keep: true}
	c := benchServer(tb, h)
	e := newEnc()
	feedAll(tb, c, headersFrame(1, e.block(post()...), false))
	frame := AppendData(nil, 1, make([]byte, size), false)
	return op{size: size, run: func() {
		if n, err := c.Feed(frame, t0); err != nil || n != len(frame) || h.data == 0 {
			tb.Fatal(n, err)
		}
		c.Advance(len(c.Output()))
	}}
}

// opWriteData: 16 KiB through WriteData per op, the peer's windows kept
// open by a WINDOW_UPDATE pair fed back each time.
func opWriteData(tb testing.TB) op {
	c := benchServer(tb, &benchHandler{keep: true})
	e := newEnc()
	feedAll(tb, c, cat(headersFrame(1, e.block(req()...), true), AppendWindowUpdate(nil, 0, 1<<20), AppendWindowUpdate(nil, 1, 1<<20)))
	_ = c.WriteHeaders(1, &Head{Status: 200}, false)
	c.Advance(len(c.Output()))
	data := make([]byte, 16384)
	grant := cat(AppendWindowUpdate(nil, 0, 16384), AppendWindowUpdate(nil, 1, 16384))
	return op{size: len(data), run: func() {
		if n, err := c.WriteData(1, data, false); err != nil || n != len(data) {
			tb.Fatal(n, err)
		}
		c.Advance(len(c.Output()))
		feedAll(tb, c, grant)
	}}
}

func bench(b *testing.B, o op) {
	if o.size > 0 {
		b.SetBytes(int64(o.size))
	}
	b.ReportAllocs()
	for b.Loop() {
		o.run()
	}
}

func BenchmarkFeedHeaders(b *testing.B)        { bench(b, opFeedHeaders(b, nil)) }
func BenchmarkFeedHeadersLiteral(b *testing.B) { bench(b, opFeedHeadersLiteral(b)) }
func BenchmarkRequestResponse(b *testing.B)    { bench(b, opFeedHeaders(b, smallResponse)) }
func BenchmarkFeedData1K(b *testing.B)         { bench(b, opFeedData(b, 1024)) }
func BenchmarkFeedData16K(b *testing.B)        { bench(b, opFeedData(b, 16384)) }
func BenchmarkWriteData16K(b *testing.B)       { bench(b, opWriteData(b)) }

// TestZeroAllocs pins the steady-state paths the benchmarks show at zero
// allocations.
func TestZeroAllocs(t *testing.T) {
	for name, o := range map[string]op{
		"FeedHeaders":     opFeedHeaders(t, nil),
		"RequestResponse": opFeedHeaders(t, smallResponse),
		"FeedData1K":      opFeedData(t, 1024),
		"WriteData16K":    opWriteData(t),
	} {
		o.run() // warm the buffers
		if a := testing.AllocsPerRun(500, o.run); a != 0 {
			t.Errorf("%s: %v allocs", name, a)
		}
	}
}
