// SPDX-License-Identifier: GPL-3.0-only

package h3

import (
	"bytes"
	"errors"
	"io"
	"strconv"
	"testing"

	"github.com/quic-go/qpack"

	"github.com/expressgateway/expressgateway/codecs/msg"
)

func encode(t testing.TB, fields ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := qpack.NewEncoder(&buf)
	for i := 0; i+1 < len(fields); i += 2 {
		if err := enc.WriteField(qpack.HeaderField{Name: fields[i], Value: fields[i+1]}); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

func TestFrameHeaderRoundTrip(t *testing.T) {
	for _, c := range []struct {
		typ FrameType
		n   uint64
	}{{FrameData, 0}, {FrameHeaders, 63}, {FrameData, 64}, {FrameSettings, 16383}, {FrameData, 16384}, {0x21, 1 << 30}} {
		b := AppendFrameHeader(nil, c.typ, c.n)
		typ, n, used, err := ParseFrameHeader(b)
		if err != nil || typ != c.typ || n != c.n || used != len(b) {
			t.Errorf("%v/%d: got %v %d %d %v", c.typ, c.n, typ, n, used, err)
		}
		for i := range b {
			if _, _, _, err := ParseFrameHeader(b[:i]); !errors.Is(err, ErrShort) {
				t.Errorf("%v/%d truncated to %d: %v, want ErrShort", c.typ, c.n, i, err)
			}
		}
	}
}

func TestGoldenFrames(t *testing.T) {
	if got, want := AppendData(nil, []byte("hi")), []byte{0x00, 0x02, 'h', 'i'}; !bytes.Equal(got, want) {
		t.Errorf("DATA % x, want % x", got, want)
	}
	if got, want := AppendGoAway(nil, 8), []byte{0x07, 0x01, 0x08}; !bytes.Equal(got, want) {
		t.Errorf("GOAWAY % x, want % x", got, want)
	}
	// SETTINGS: QPACK_MAX_TABLE_CAPACITY 0, QPACK_BLOCKED_STREAMS 0,
	// MAX_FIELD_SECTION_SIZE 65536 (a 4-byte varint).
	got := AppendSettings(nil, Settings{MaxFieldSectionSize: 65536})
	want := []byte{0x04, 0x09, 0x01, 0x00, 0x07, 0x00, 0x06, 0x80, 0x01, 0x00, 0x00}
	if !bytes.Equal(got, want) {
		t.Errorf("SETTINGS % x, want % x", got, want)
	}
	id, err := ParseGoAway([]byte{0x08})
	if err != nil || id != 8 {
		t.Errorf("ParseGoAway: %d %v", id, err)
	}
	if _, err := ParseGoAway([]byte{0x08, 0x00}); err == nil {
		t.Error("ParseGoAway took trailing bytes")
	}
}

func TestParseSettings(t *testing.T) {
	s, err := ParseSettings(AppendSettings(nil, Settings{MaxFieldSectionSize: 1000})[2:])
	if err != nil || s.MaxFieldSectionSize != 1000 || s.QPACKMaxTableCapacity != 0 {
		t.Fatalf("round trip: %+v %v", s, err)
	}
	for name, p := range map[string][]byte{
		"duplicate":     {0x06, 0x01, 0x06, 0x02},
		"http2 setting": {0x04, 0x01},
		"truncated":     {0x06},
	} {
		if _, err := ParseSettings(p); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if s, err := ParseSettings([]byte{0x21, 0x05}); err != nil || s != (Settings{}) {
		t.Errorf("unknown setting: %+v %v, want ignored", s, err)
	}
}

func TestDecodeRequest(t *testing.T) {
	var h Head
	block := encode(t, ":method", "POST", ":scheme", "https", ":authority", "a.test", ":path", "/x?y",
		"content-length", "5", "x-a", "1", "cookie", "a=1")
	if err := DecodeFields(block, 0, false, &h); err != nil {
		t.Fatal(err)
	}
	if string(h.Method) != "POST" || string(h.Scheme) != "https" || string(h.Authority) != "a.test" || string(h.Path) != "/x?y" ||
		h.ContentLength != 5 || len(h.Fields) != 3 || string(h.Fields[1].Name) != "x-a" || string(h.Fields[1].Value) != "1" {
		t.Fatalf("decoded %+v", h)
	}
	// Reusing the head keeps nothing of the previous request.
	if err := DecodeFields(encode(t, ":method", "GET", ":scheme", "https", ":path", "/"), 0, false, &h); err != nil {
		t.Fatal(err)
	}
	if h.Authority != nil || h.ContentLength != -1 || len(h.Fields) != 0 {
		t.Fatalf("reused head %+v", h)
	}
}

func TestDecodeMalformed(t *testing.T) {
	base := []string{":method", "GET", ":scheme", "https", ":path", "/"}
	cases := map[string]struct {
		fields []string
		token  string
	}{
		"uppercase":                {append(append([]string{}, base...), "X-A", "1"), "uppercase_name"},
		"connection":               {append(append([]string{}, base...), "connection", "close"), "connection_specific_field"},
		"transfer-encoding":        {append(append([]string{}, base...), "transfer-encoding", "chunked"), "connection_specific_field"},
		"te not trailers":          {append(append([]string{}, base...), "te", "gzip"), "connection_specific_field"},
		"pseudo after regular":     {[]string{":method", "GET", "x", "1", ":scheme", "https", ":path", "/"}, "bad_pseudo_header"},
		"duplicate pseudo":         {append(append([]string{}, base...), ":path", "/b"), "bad_pseudo_header"},
		"response pseudo":          {append([]string{":status", "200"}, base...), "bad_pseudo_header"},
		"no method":                {[]string{":scheme", "https", ":path", "/"}, "missing_method"},
		"no path":                  {[]string{":method", "GET", ":scheme", "https"}, "missing_pseudo_header"},
		"empty path":               {[]string{":method", "GET", ":scheme", "https", ":path", ""}, "missing_pseudo_header"},
		"connect with path":        {[]string{":method", "CONNECT", ":authority", "a:443", ":path", "/"}, "bad_connect"},
		"protocol without CONNECT": {append(append([]string{}, base...), ":protocol", "websocket"), "bad_protocol"},
		"bad content-length":       {append(append([]string{}, base...), "content-length", "1x"), "bad_content_length"},
		"CRLF in a value":          {append(append([]string{}, base...), "x-a", "1\r\nx-injected: 2"), "bad_field_value"},
		"LF in a value":            {append(append([]string{}, base...), "x-a", "1\nx: 2"), "bad_field_value"},
		"NUL in a value":           {append(append([]string{}, base...), "x-a", "a\x00b"), "bad_field_value"},
		"DEL in a value":           {append(append([]string{}, base...), "x-a", "a\x7fb"), "bad_field_value"},
		"leading space":            {append(append([]string{}, base...), "x-a", " 1"), "field_value_whitespace"},
		"trailing tab":             {append(append([]string{}, base...), "x-a", "1\t"), "field_value_whitespace"},
		"space in a name":          {append(append([]string{}, base...), "x a", "1"), "bad_field_name"},
		"colon in a name":          {append(append([]string{}, base...), "x:a", "1"), "bad_field_name"},
		"CRLF in the method":       {[]string{":method", "GET\r\nX: y", ":scheme", "https", ":path", "/"}, "bad_field_value"},
		"space in the method":      {[]string{":method", "GET X", ":scheme", "https", ":path", "/"}, "bad_method"},
		"two content-lengths":      {append(append([]string{}, base...), "content-length", "1", "content-length", "2"), "bad_content_length"},
	}
	for name, c := range cases {
		var h Head
		err := DecodeFields(encode(t, c.fields...), 0, false, &h)
		var he *Error
		if !errors.As(err, &he) || he.Token != c.token || he.Code != ErrCodeMessage {
			t.Errorf("%s: %v, want %s (H3_MESSAGE_ERROR)", name, err, c.token)
		}
	}
	var h Head
	if err := DecodeFields(encode(t, ":method", "CONNECT", ":authority", "a:443"), 0, false, &h); err != nil {
		t.Errorf("CONNECT: %v", err)
	}
	if err := DecodeFields(encode(t, ":method", "GET"), 0, true, &h); err == nil {
		t.Error("pseudo-header in trailers accepted")
	}
	if err := DecodeFields([]byte{0x01}, 0, false, &h); err == nil {
		t.Error("a block with a dynamic-table reference accepted")
	}
}

func TestDecodeSizeLimit(t *testing.T) {
	block := encode(t, ":method", "GET", ":scheme", "https", ":path", "/", "x", string(bytes.Repeat([]byte("a"), 1000)))
	var h Head
	// 3 pseudo fields (7+3+32, 7+5+32, 5+1+32) and one of 1+1000+32.
	limit := 42 + 44 + 38 + 1033
	if err := DecodeFields(block, limit, false, &h); err != nil {
		t.Fatalf("at the limit: %v", err)
	}
	err := DecodeFields(block, limit-1, false, &h)
	var he *Error
	if !errors.As(err, &he) || he.Code != ErrCodeExcessiveLoad {
		t.Fatalf("over the limit: %v", err)
	}
}

func TestAppendHeadersRoundTrip(t *testing.T) {
	decode := func(b []byte) []qpack.HeaderField {
		t.Helper()
		typ, n, used, err := ParseFrameHeader(b)
		if err != nil || typ != FrameHeaders || int(n) != len(b)-used {
			t.Fatalf("frame %v %d %d %v", typ, n, used, err)
		}
		var fs []qpack.HeaderField
		next := qpack.NewDecoder().Decode(b[used:])
		for {
			f, err := next()
			if err == io.EOF {
				return fs
			}
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			fs = append(fs, f)
		}
	}
	// Several sections in a row: the pooled encoder starts each with its
	// own prefix and keeps nothing of the previous one; the caller's
	// fields are not changed.
	in := []msg.Field{{Name: []byte("Content-Type"), Value: []byte("text/plain")}, {Name: []byte("X-Long-Custom-Name"), Value: []byte("v")}}
	for i := range 3 {
		fs := decode(AppendHeaders([]byte("prefix"), 200+i, in)[len("prefix"):])
		if len(fs) != 3 || fs[0].Name != ":status" || fs[0].Value != strconv.Itoa(200+i) ||
			fs[1].Name != "content-type" || fs[1].Value != "text/plain" || fs[2].Name != "x-long-custom-name" || fs[2].Value != "v" {
			t.Fatalf("section %d decoded %+v", i, fs)
		}
		tr := decode(AppendHeaders(nil, 0, []msg.Field{{Name: []byte("Grpc-Status"), Value: []byte("0")}}))
		if len(tr) != 1 || tr[0].Name != "grpc-status" || tr[0].Value != "0" {
			t.Fatalf("trailers %d decoded %+v", i, tr)
		}
	}
	if string(in[0].Name) != "Content-Type" || string(in[1].Name) != "X-Long-Custom-Name" {
		t.Fatalf("the caller's fields changed: %q %q", in[0].Name, in[1].Name)
	}
}

func FuzzDecodeFields(f *testing.F) {
	f.Add(encode(f, ":method", "GET", ":scheme", "https", ":path", "/", "a", "b"))
	f.Add([]byte{0x00, 0x00, 0xd1})
	f.Fuzz(func(t *testing.T, b []byte) {
		var h Head
		_ = DecodeFields(b, 1<<16, false, &h)
		_ = DecodeFields(b, 1<<16, true, &h)
	})
}

func FuzzParseSettings(f *testing.F) {
	f.Add(AppendSettings(nil, Settings{MaxFieldSectionSize: 100})[2:])
	f.Fuzz(func(t *testing.T, b []byte) { _, _ = ParseSettings(b) })
}

func TestDecodeResponse(t *testing.T) {
	var r Response
	if err := DecodeResponse(encode(t, ":status", "200", "content-length", "12", "x-a", "1"), 0, false, &r); err != nil {
		t.Fatal(err)
	}
	if r.Status != 200 || r.ContentLength != 12 || len(r.Fields) != 2 || string(r.Fields[1].Name) != "x-a" || string(r.Fields[1].Value) != "1" {
		t.Fatalf("decoded %+v", r)
	}
	if err := DecodeResponse(encode(t, "x-t", "v"), 0, true, &r); err != nil || r.Status != 0 || len(r.Fields) != 1 {
		t.Fatalf("trailers: %+v %v", r, err)
	}
	cases := map[string]struct {
		fields   []string
		trailers bool
		token    string
	}{
		"no status":           {[]string{"x-a", "1"}, false, "missing_status"},
		"two statuses":        {[]string{":status", "200", ":status", "204"}, false, "bad_pseudo_header"},
		"request pseudo":      {[]string{":status", "200", ":path", "/"}, false, "bad_pseudo_header"},
		"pseudo after field":  {[]string{"x-a", "1", ":status", "200"}, false, "bad_pseudo_header"},
		"status in trailers":  {[]string{":status", "200"}, true, "bad_pseudo_header"},
		"bad status":          {[]string{":status", "20x"}, false, "bad_status"},
		"status out of range": {[]string{":status", "999"}, false, "bad_status"},
		"uppercase":           {[]string{":status", "200", "X-A", "1"}, false, "uppercase_name"},
		"connection":          {[]string{":status", "200", "connection", "close"}, false, "connection_specific_field"},
		"te":                  {[]string{":status", "200", "te", "trailers"}, false, "connection_specific_field"},
		"two lengths":         {[]string{":status", "200", "content-length", "1", "content-length", "2"}, false, "bad_content_length"},
		"negative length":     {[]string{":status", "200", "content-length", "-1"}, false, "bad_content_length"},
		"CRLF in a value":     {[]string{":status", "200", "x-a", "1\r\nset-cookie: evil"}, false, "bad_field_value"},
		"CRLF in a trailer":   {[]string{"x-a", "1\r\nx: 2"}, true, "bad_field_value"},
		"space in a name":     {[]string{":status", "200", "x a", "1"}, false, "bad_field_name"},
		"leading space":       {[]string{":status", "200", "x-a", " 1"}, false, "field_value_whitespace"},
	}
	for name, c := range cases {
		err := DecodeResponse(encode(t, c.fields...), 0, c.trailers, &r)
		var he *Error
		if !errors.As(err, &he) || he.Token != c.token {
			t.Errorf("%s: %v, want %s", name, err, c.token)
		}
	}
	big := encode(t, ":status", "200", "x", string(bytes.Repeat([]byte("a"), 1000)))
	var he *Error
	if err := DecodeResponse(big, 500, false, &r); !errors.As(err, &he) || he.Code != ErrCodeExcessiveLoad {
		t.Errorf("over the limit: %v", err)
	}
	if err := DecodeResponse([]byte{0x01}, 0, false, &r); err == nil {
		t.Error("a block with a dynamic-table reference accepted")
	}
}

func TestAppendRequestHeadersRoundTrip(t *testing.T) {
	b := AppendRequestHeaders(nil, &RequestHead{Method: []byte("POST"), Scheme: []byte("https"), Authority: []byte("a.test"),
		Path: []byte("/x"), Fields: []msg.Field{{Name: []byte("X-A"), Value: []byte("1")}}})
	typ, n, used, err := ParseFrameHeader(b)
	if err != nil || typ != FrameHeaders || int(n) != len(b)-used {
		t.Fatalf("frame %v %d %d %v", typ, n, used, err)
	}
	var h Head
	if err := DecodeFields(b[used:], 0, false, &h); err != nil {
		t.Fatal(err)
	}
	if string(h.Method) != "POST" || string(h.Scheme) != "https" || string(h.Authority) != "a.test" || string(h.Path) != "/x" ||
		len(h.Fields) != 1 || string(h.Fields[0].Name) != "x-a" {
		t.Fatalf("decoded %+v", h)
	}
}

func TestErrCodeString(t *testing.T) {
	if ErrCodeRequestRejected.String() != "H3_REQUEST_REJECTED" || ErrCode(0x1f*7+0x21).String() != "unknown" {
		t.Errorf("%s %s", ErrCodeRequestRejected, ErrCode(0x1f*7+0x21))
	}
}

func FuzzDecodeResponse(f *testing.F) {
	f.Add(encode(f, ":status", "200", "a", "b"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Response
		_ = DecodeResponse(b, 1<<16, false, &r)
		_ = DecodeResponse(b, 1<<16, true, &r)
	})
}

// BenchmarkDecodeFields: a typical request head, decoded into one reused
// Head.
func BenchmarkDecodeFields(b *testing.B) {
	t := &testing.T{}
	block := encode(t, ":method", "GET", ":scheme", "https", ":authority", "a.test", ":path", "/index.html?q=1",
		"user-agent", "bench/1.0", "accept", "*/*", "accept-encoding", "gzip, br", "cookie", "session=0123456789abcdef")
	var h Head
	b.ReportAllocs()
	for b.Loop() {
		if err := DecodeFields(block, 0, false, &h); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppendHeaders: a typical response head from an HTTP/1.1
// upstream (mixed-case names).
func BenchmarkAppendHeaders(b *testing.B) {
	fields := []msg.Field{
		{Name: []byte("Content-Type"), Value: []byte("text/html; charset=utf-8")},
		{Name: []byte("Content-Length"), Value: []byte("1234")},
		{Name: []byte("Date"), Value: []byte("Thu, 03 Dec 2026 10:00:00 GMT")},
		{Name: []byte("Server"), Value: []byte("nginx")},
		{Name: []byte("X-Request-Id"), Value: []byte("0123456789abcdef")},
	}
	var out []byte
	b.ReportAllocs()
	for b.Loop() {
		out = AppendHeaders(out[:0], 200, fields)
	}
}
