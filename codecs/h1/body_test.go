package h1

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
)

// decodeAll runs a decoder over in, handing it at most step bytes more than
// it left unconsumed each time (step 0: everything at once), the way a
// caller's inbound buffer grows. It returns the payload, the bytes consumed,
// and whether the body completed.
func decodeAll(d *BodyDecoder, in []byte, step int) (payload []byte, used int, done bool, err error) {
	avail := len(in)
	if step > 0 {
		avail = 0
	}
	for guard := 0; guard < 10*len(in)+10; guard++ {
		if step > 0 && avail < len(in) {
			avail = min(avail+step, len(in))
		}
		n, data, fin, e := d.Decode(in[used:avail])
		if e != nil {
			return payload, used, false, e
		}
		if n < len(data) || n > avail-used {
			panic("consumed out of range")
		}
		payload = append(payload, data...)
		used += n
		if fin {
			return payload, used, true, nil
		}
		if n == 0 && avail == len(in) {
			return payload, used, false, nil
		}
	}
	panic("no progress")
}

var validChunked = []struct {
	name     string
	raw      string
	payload  string
	trailers []string // "Name: Value"
}{
	{"simple", "5\r\nhello\r\n0\r\n\r\n", "hello", nil},
	{"two", "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "hello world", nil},
	{"hex-upper-lower", "A\r\n0123456789\r\na\r\nabcdefghij\r\n0\r\n\r\n", "0123456789abcdefghij", nil},
	{"leading-zeros", "0005\r\nhello\r\n000\r\n\r\n", "hello", nil},
	{"extensions", "5;name=value;q=\"a b\"\r\nhello\r\n0;last\r\n\r\n", "hello", nil},
	{"bws-before-ext", "5 ;x\r\nhello\r\n0\t;y\r\n\r\n", "hello", nil},
	{"trailers", "3\r\nabc\r\n0\r\nX-Checksum: 42\r\nX-Other:\tv \r\n\r\n", "abc", []string{"X-Checksum: 42", "X-Other: v"}},
	{"empty", "0\r\n\r\n", "", nil},
	{"crlf-in-data", "4\r\n\r\n\r\n\r\n0\r\n\r\n", "\r\n\r\n", nil},
}

func TestBodyChunkedValid(t *testing.T) {
	for _, tc := range validChunked {
		for _, step := range []int{0, 1, 2, 3, 7} {
			var d BodyDecoder
			d.Reset(BodyChunked, -1, DefaultLimits())
			in := tc.raw + "NEXT"
			payload, used, done, err := decodeAll(&d, []byte(in), step)
			if err != nil || !done || used != len(tc.raw) || string(payload) != tc.payload {
				t.Fatalf("%s step %d: payload %q used %d done %v err %v", tc.name, step, payload, used, done, err)
			}
			var got []string
			for _, h := range d.Trailers() {
				got = append(got, string(h.Name)+": "+string(h.Value))
			}
			if strings.Join(got, "|") != strings.Join(tc.trailers, "|") {
				t.Fatalf("%s: trailers %q", tc.name, got)
			}
			if !d.Done() {
				t.Fatal("Done")
			}
			// Once done, Decode consumes nothing more.
			if n, data, fin, err := d.Decode([]byte("NEXT")); n != 0 || data != nil || !fin || err != nil {
				t.Fatal("after done", n, data, fin, err)
			}
		}
	}
}

// TestBodyChunkedTruncation: every proper prefix leaves the body incomplete
// with no error, fed at once to a fresh decoder.
func TestBodyChunkedTruncation(t *testing.T) {
	for _, tc := range validChunked {
		for i := 0; i < len(tc.raw); i++ {
			var d BodyDecoder
			d.Reset(BodyChunked, -1, DefaultLimits())
			_, _, done, err := decodeAll(&d, []byte(tc.raw[:i]), 0)
			if done || err != nil {
				t.Fatalf("%s prefix %d: done %v err %v", tc.name, i, done, err)
			}
		}
	}
}

func TestBodyTrailersCopied(t *testing.T) {
	in := []byte("0\r\nX-T: v\r\n\r\n")
	var d BodyDecoder
	d.Reset(BodyChunked, -1, DefaultLimits())
	if _, _, done, err := decodeAll(&d, in, 1); !done || err != nil {
		t.Fatal(done, err)
	}
	for i := range in {
		in[i] = 0
	}
	if tr := d.Trailers(); len(tr) != 1 || string(tr[0].Value) != "v" {
		t.Fatalf("trailers %q", tr)
	}
}

func TestBodyOneSegmentPerCall(t *testing.T) {
	in := []byte("3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n")
	var d BodyDecoder
	d.Reset(BodyChunked, -1, DefaultLimits())
	n, data, done, err := d.Decode(in)
	// The first call stops before the second chunk's data, after its size line.
	if string(data) != "abc" || done || err != nil || n != len("3\r\nabc\r\n3\r\n") {
		t.Fatalf("%d %q %v %v", n, data, done, err)
	}
	n2, data, done, err := d.Decode(in[n:])
	if string(data) != "def" || !done || err != nil || n+n2 != len(in) {
		t.Fatalf("%d %q %v %v", n2, data, done, err)
	}
}

func TestBodyLength(t *testing.T) {
	for _, step := range []int{0, 1, 4} {
		var d BodyDecoder
		d.Reset(BodyLength, 10, DefaultLimits())
		payload, used, done, err := decodeAll(&d, []byte("0123456789GET /"), step)
		if string(payload) != "0123456789" || used != 10 || !done || err != nil {
			t.Fatalf("step %d: %q %d %v %v", step, payload, used, done, err)
		}
	}
	var d BodyDecoder
	d.Reset(BodyLength, 0, DefaultLimits())
	if n, data, done, err := d.Decode([]byte("x")); n != 0 || data != nil || !done || err != nil {
		t.Fatal("zero length")
	}
	d.Reset(BodyNone, 0, DefaultLimits())
	if n, _, done, err := d.Decode([]byte("x")); n != 0 || !done || err != nil {
		t.Fatal("none")
	}
}

func TestBodyUntilClose(t *testing.T) {
	var d BodyDecoder
	d.ResetResponse(BodyUntilClose, -1, DefaultLimits())
	n, data, done, err := d.Decode([]byte("abc"))
	if n != 3 || string(data) != "abc" || done || err != nil {
		t.Fatal(n, data, done, err)
	}
	lim := DefaultLimits()
	lim.MaxBodyBytes = 4
	d.ResetResponse(BodyUntilClose, -1, lim)
	if _, _, _, err := d.Decode([]byte("abc")); err != nil {
		t.Fatal(err)
	}
	_, _, _, err = d.Decode([]byte("de"))
	var he *Error
	if !errors.As(err, &he) || he.Status != 502 || he.Token != "body_too_large" {
		t.Fatal(err)
	}
}

func TestBodyErrors(t *testing.T) {
	lim := DefaultLimits()
	lim.MaxBodyBytes = 100
	lim.MaxChunkExtension = 16
	lim.MaxTrailerBytes = 32
	lim.MaxHeaderCount = 3
	cases := []struct {
		name, raw, token string
		status           int
	}{
		{"empty-size", "\r\n", "bad_chunk_size", 400},
		{"non-hex", "g\r\n", "bad_chunk_size", 400},
		{"negative", "-5\r\n", "bad_chunk_size", 400},
		{"prefix-0x", "0x5\r\n", "bad_chunk_size", 400},
		{"overflow", "10000000000000000\r\n", "bad_chunk_size", 400},
		{"too-many-digits", "00000000000000001\r\n", "bad_chunk_size", 400},
		{"overflow-high-bit", "8000000000000000\r\n", "bad_chunk_size", 400},
		{"size-bare-lf", "5\nhello\r\n", "bad_chunk_size", 400},
		{"size-cr-no-lf", "5\rhello\r\n", "bad_chunk_size", 400},
		{"space-no-ext", "5 \r\nhello\r\n", "bad_chunk_size", 400},
		{"ext-only", ";x\r\n", "bad_chunk_size", 400},
		{"ext-ctl", "5;a\x01b\r\nhello\r\n", "bad_chunk_ext", 400},
		{"ext-bare-lf", "5;a\nb\r\nhello\r\n", "bad_chunk_ext", 400},
		{"ext-too-long", "5;" + strings.Repeat("e", 17) + "\r\nhello\r\n", "chunk_ext_too_long", 400},
		{"ext-abuse-total", strings.Repeat("1;"+strings.Repeat("e", 15)+"\r\nx\r\n", 4), "chunk_ext_too_long", 400},
		{"data-no-crlf", "5\r\nhelloX\r\n", "bad_chunk_crlf", 400},
		{"data-cr-no-lf", "5\r\nhello\rX", "bad_chunk_crlf", 400},
		{"data-bare-lf", "5\r\nhello\n0\r\n\r\n", "bad_chunk_crlf", 400},
		{"too-large", "65\r\n", "body_too_large", 413},
		{"too-large-sum", "32\r\n" + strings.Repeat("a", 50) + "\r\n33\r\n", "body_too_large", 413},
		{"trailer-bare-lf", "0\r\nX: y\n\r\n", "bare_lf", 400},
		{"trailer-end-bare-lf", "0\r\n\n", "bare_lf", 400},
		{"trailer-obs-fold", "0\r\nX: y\r\n z\r\n\r\n", "obs_fold", 400},
		{"trailer-bad-name", "0\r\nX Y: z\r\n\r\n", "bad_header_name", 400},
		{"trailer-bad-value", "0\r\nX: a\x00\r\n\r\n", "bad_header_value", 400},
		{"trailer-cl", "0\r\nContent-Length: 5\r\n\r\n", "forbidden_trailer", 400},
		{"trailer-te", "0\r\nTransfer-Encoding: chunked\r\n\r\n", "forbidden_trailer", 400},
		{"trailer-host", "0\r\nHost: x\r\n\r\n", "forbidden_trailer", 400},
		{"trailer-too-large", "0\r\nX: " + strings.Repeat("v", 40) + "\r\n\r\n", "trailers_too_large", 431},
		{"trailer-too-large-no-lf", "0\r\nX: " + strings.Repeat("v", 40), "trailers_too_large", 431},
		{"trailer-count", "0\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\n\r\n", "too_many_headers", 431},
	}
	for _, tc := range cases {
		for _, step := range []int{0, 1} {
			for _, resp := range []bool{false, true} {
				var d BodyDecoder
				want := tc.status
				if resp {
					d.ResetResponse(BodyChunked, -1, lim)
					want = 502
				} else {
					d.Reset(BodyChunked, -1, lim)
				}
				_, _, _, err := decodeAll(&d, []byte(tc.raw), step)
				var he *Error
				if !errors.As(err, &he) || he.Token != tc.token || he.Status != want {
					t.Fatalf("%s step %d resp %v: got %v, want %d %s", tc.name, step, resp, err, want, tc.token)
				}
				// The decoder stays failed.
				if _, _, _, err2 := d.Decode([]byte("0\r\n\r\n")); !errors.Is(err2, he) {
					t.Fatalf("%s: not sticky: %v", tc.name, err2)
				}
			}
		}
	}
	var d BodyDecoder
	d.Reset(BodyLength, 101, lim)
	if _, _, _, err := d.Decode(nil); !errors.Is(err, ErrBodyTooLarge) {
		t.Fatal(err)
	}
}

// TestBodyChunkedRandomSplits round-trips random payloads through
// AppendChunk/AppendLastChunk and the decoder with random read sizes.
func TestBodyChunkedRandomSplits(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for iter := 0; iter < 200; iter++ {
		var wire, want []byte
		for c := rng.IntN(6); c > 0; c-- {
			part := make([]byte, rng.IntN(300))
			for i := range part {
				part[i] = byte(rng.IntN(256))
			}
			want = append(want, part...)
			wire = AppendChunk(wire, part)
		}
		wire = AppendLastChunk(wire, []Header{{Name: []byte("X-Sum"), Value: []byte("1")}})
		var d BodyDecoder
		d.Reset(BodyChunked, -1, DefaultLimits())
		got, used, done, err := decodeAll(&d, wire, 1+rng.IntN(64))
		if err != nil || !done || used != len(wire) || string(got) != string(want) || len(d.Trailers()) != 1 {
			t.Fatalf("iter %d: %v %v %d/%d", iter, err, done, used, len(wire))
		}
	}
}

func TestAppendChunkGolden(t *testing.T) {
	cases := []struct{ got, want string }{
		{string(AppendChunk([]byte("x"), []byte("hello"))), "x5\r\nhello\r\n"},
		{string(AppendChunk(nil, make([]byte, 255))[:4]), "ff\r\n"},
		{string(AppendChunk([]byte("x"), nil)), "x"},
		{string(AppendLastChunk(nil, nil)), "0\r\n\r\n"},
		{string(AppendLastChunk(nil, []Header{{Name: []byte("A"), Value: []byte("1")}, {Name: []byte("b-c"), Value: []byte("")}})), "0\r\nA: 1\r\nb-c: \r\n\r\n"},
	}
	for _, c := range cases {
		if c.got != c.want {
			t.Errorf("got %q want %q", c.got, c.want)
		}
	}
}
