// SPDX-License-Identifier: GPL-3.0-only

package h2

import (
	"errors"
	"strings"
	"testing"

	"golang.org/x/net/http2/hpack"
)

// TestPeerHeaderTableSize: the peer's SETTINGS_HEADER_TABLE_SIZE reaches our
// encoder, which announces it at the start of the next block.
func TestPeerHeaderTableSize(t *testing.T) {
	c, _ := newServer(t, Limits{})
	e := newEnc()
	feedAll(t, c, cat(settingsFrame(Setting{SettingHeaderTableSize, 0}), headersFrame(1, e.block(req()...), true)))
	outFrames(t, c)
	if err := c.WriteHeaders(1, &Head{Status: 200, Fields: []Field{{Name: []byte("server"), Value: []byte("eg")}}}, true); err != nil {
		t.Fatal(err)
	}
	fs := outFrames(t, c)
	block := append([]byte{}, fs[0].(HeadersFrame).Fragment...)
	if block[0] != 0x20 {
		t.Fatalf("block %x does not start with a size update to 0", block)
	}
	d := hpack.NewDecoder(4096, nil)
	wantStrings(t, "fields", decodeBlock(t, d, block), ":status=200", "server=eg")
	// With a zero table nothing is indexed: the same head encodes alike.
	feedAll(t, c, headersFrame(3, e.block(req()...), true))
	_ = c.WriteHeaders(3, &Head{Status: 200, Fields: []Field{{Name: []byte("server"), Value: []byte("eg")}}}, true)
	block2 := outFrames(t, c)[0].(HeadersFrame).Fragment
	if string(block2) != string(block[1:]) {
		t.Fatalf("second block %x, first %x", block2, block)
	}
}

// TestLocalHeaderTableSize: when we advertise a table smaller than the
// default, the peer's first block after its ACK must shrink the table.
func TestLocalHeaderTableSize(t *testing.T) {
	newConn := func() (*Conn, *recorder) {
		r := &recorder{}
		c := NewConn(RoleServer, Limits{HeaderTableSize: 1024}, r, t0)
		feedAll(t, c, clientStart())
		return c, r
	}
	c, r := newConn()
	if c.local.HeaderTableSize != 1024 || !strings.Contains(strings.Join(frameStrings(outFrames(t, c)), " "), "HEADER_TABLE_SIZE=1024") {
		t.Fatal("not advertised")
	}
	e := newEnc()
	// Before the ACK the default 4096 still holds.
	feedAll(t, c, headersFrame(1, e.block(req("x-a", strings.Repeat("a", 3000))...), true))
	feedAll(t, c, AppendSettingsAck(nil))
	r.take()
	if _, err := c.Feed(headersFrame(3, e.block(req()...), true), t0); !errors.Is(err, ErrHPACKMissingSizeUpdate) {
		t.Fatalf("err = %v", err)
	}

	c, r = newConn()
	feedAll(t, c, AppendSettingsAck(nil))
	e = newEnc()
	e.e.SetMaxDynamicTableSizeLimit(1024)
	e.e.SetMaxDynamicTableSize(1024)
	feedAll(t, c, headersFrame(1, e.block(req()...), true))
	wantStrings(t, "events", r.strings(), "settings", "headers 1 req GET https example.com / end=true")
	// A size update above what we allow is a decoding error.
	c, _ = newConn()
	feedAll(t, c, AppendSettingsAck(nil))
	if _, err := c.Feed(headersFrame(1, []byte{0x3f, 0xe1, 0x1f, 0x82}, true), t0); !errors.Is(err, ErrHPACKDecode) {
		t.Fatalf("err = %v", err)
	}
}

// TestHeaderListLimitKeepsHPACKState: a block over the list limit resets its
// stream but is fully decoded, so the next block that refers to its table
// entries decodes right.
func TestHeaderListLimitKeepsHPACKState(t *testing.T) {
	c, r := newServer(t, Limits{MaxHeaderListSize: 1000})
	e := newEnc()
	feedAll(t, c, headersFrame(1, e.block(req("x-a", strings.Repeat("a", 500), "x-b", strings.Repeat("b", 500))...), true))
	feedAll(t, c, headersFrame(3, e.block(req("x-b", strings.Repeat("b", 500))...), true))
	ev := r.strings()
	if len(ev) != 2 || ev[0] != "streamerr 1 PROTOCOL_ERROR header_list_too_large" ||
		ev[1] != "headers 3 req GET https example.com / x-b="+strings.Repeat("b", 500)+" end=true" {
		t.Fatalf("events %q", ev)
	}
}

// TestHPACKRatioFloor: a tiny block referring to big table entries is fine
// below the floor.
func TestHPACKRatioFloor(t *testing.T) {
	c, r := newServer(t, Limits{})
	e := newEnc()
	cookie := strings.Repeat("c", 3000)
	feedAll(t, c, headersFrame(1, e.block(req("cookie", cookie)...), true))
	b := e.block(req("cookie", cookie)...)
	if len(b) > 10 {
		t.Fatalf("second block not indexed: %d octets", len(b))
	}
	feedAll(t, c, headersFrame(3, b, true))
	if ev := r.strings(); len(ev) != 2 || !strings.HasPrefix(ev[1], "headers 3") {
		t.Fatalf("events %q", ev)
	}
}

// TestWriteHeadersContinuation: a head larger than the peer's frame size
// goes out as HEADERS plus CONTINUATION frames that reassemble.
func TestWriteHeadersContinuation(t *testing.T) {
	c, _ := newServer(t, Limits{})
	e := newEnc()
	feedAll(t, c, headersFrame(1, e.block(req()...), true))
	outFrames(t, c)
	var fields []Field
	for i := range 5 {
		fields = append(fields, Field{Name: []byte("x-big-" + string(rune('a'+i))), Value: []byte(strings.Repeat("v", 10000))})
	}
	if err := c.WriteHeaders(1, &Head{Status: 200, Fields: fields}, true); err != nil {
		t.Fatal(err)
	}
	fs := outFrames(t, c)
	var block []byte
	var kinds []string
	for _, f := range fs {
		switch f := f.(type) {
		case HeadersFrame:
			block = append(block, f.Fragment...)
		case ContinuationFrame:
			block = append(block, f.Fragment...)
		}
	}
	kinds = frameStrings(fs)
	if len(kinds) < 3 || kinds[0] != "HEADERS 1 end=true endh=false" || kinds[len(kinds)-1] != "CONTINUATION 1 endh=true" {
		t.Fatalf("frames %q", kinds)
	}
	for _, k := range kinds[1 : len(kinds)-1] {
		if k != "CONTINUATION 1 endh=false" {
			t.Fatalf("frames %q", kinds)
		}
	}
	for _, f := range fs {
		if f.Header().Length > defaultMaxFrame {
			t.Fatalf("frame of %d octets", f.Header().Length)
		}
	}
	got := decodeBlock(t, hpack.NewDecoder(4096, nil), block)
	if len(got) != 6 || got[0] != ":status=200" || got[5] != "x-big-e="+strings.Repeat("v", 10000) {
		t.Fatalf("decoded %d fields", len(got))
	}
}

func TestWriteHeadersFieldHandling(t *testing.T) {
	c, _ := newServer(t, Limits{})
	e := newEnc()
	feedAll(t, c, headersFrame(1, e.block(req()...), true))
	outFrames(t, c)
	h := &Head{Status: 200, Fields: []Field{
		{Name: []byte("Content-Type"), Value: []byte("text/plain")},
		{Name: []byte("Connection"), Value: []byte("keep-alive")},
		{Name: []byte("Keep-Alive"), Value: []byte("5")},
		{Name: []byte("Transfer-Encoding"), Value: []byte("chunked")},
		{Name: []byte("TE"), Value: []byte("trailers")},
		{Name: []byte("X-Obs"), Value: []byte("caf\xe9")},
	}}
	if err := c.WriteHeaders(1, h, true); err != nil {
		t.Fatal(err)
	}
	d := hpack.NewDecoder(4096, nil)
	wantStrings(t, "fields", decodeBlock(t, d, outFrames(t, c)[0].(HeadersFrame).Fragment),
		":status=200", "content-type=text/plain", "te=trailers", "x-obs=caf\xe9")

	feedAll(t, c, headersFrame(3, e.block(req()...), true))
	for name, h := range map[string]*Head{
		"CR in a value":    {Status: 200, Fields: []Field{{Name: []byte("x"), Value: []byte("a\r\nb: c")}}},
		"space in a name":  {Status: 200, Fields: []Field{{Name: []byte("a b"), Value: []byte("c")}}},
		"pseudo in Fields": {Status: 200, Fields: []Field{{Name: []byte(":path"), Value: []byte("/")}}},
		"status 99":        {Status: 99},
		"status 101":       {Status: 101},
		"status 600":       {Status: 600},
	} {
		if err := c.WriteHeaders(3, h, false); err != ErrInvalidHead {
			t.Errorf("%s: %v", name, err)
		}
	}
	if len(c.Output()) != 0 {
		t.Fatal("a refused head left output")
	}
	// The peer's SETTINGS_MAX_HEADER_LIST_SIZE binds us.
	feedAll(t, c, settingsFrame(Setting{SettingMaxHeaderListSize, 100}))
	outFrames(t, c)
	if err := c.WriteHeaders(3, &Head{Status: 200, Fields: []Field{{Name: []byte("x"), Value: []byte(strings.Repeat("v", 50))}}}, true); err != ErrPeerHeaderListSize {
		t.Fatalf("err = %v", err)
	}
	if err := c.WriteHeaders(3, &Head{Status: 200, Fields: []Field{{Name: []byte("x"), Value: []byte("v")}}}, true); err != nil {
		t.Fatal(err)
	}
}

func TestInternCache(t *testing.T) {
	var e encoder
	e.init(4096)
	a := e.str([]byte("text/html"))
	if b := e.str([]byte("text/html")); b != a || testing.AllocsPerRun(10, func() { e.str([]byte("text/html")) }) != 0 {
		t.Fatal("cached string not reused")
	}
	long := []byte(strings.Repeat("x", internMaxLen+1))
	if e.str(long) != string(long) || e.str([]byte{}) != "" {
		t.Fatal("wrong string")
	}
	// Whatever the collisions, the answer is always the input.
	for i := range 1000 {
		v := []byte(strings.Repeat("k", i%70))
		if e.str(v) != string(v) {
			t.Fatal(i)
		}
	}
}
