// SPDX-License-Identifier: GPL-3.0-only

package h2

import (
	"encoding/hex"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
)

// unhex decodes hex written with spaces for readability.
func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

type appender interface {
	Frame
	Append([]byte) []byte
}

// goldenFrame is one frame, its encoding, and the value parsing that
// encoding gives back.
type goldenFrame struct {
	name string
	f    appender // what Append encodes
	hex  string
	back Frame // what parseFrame returns (a value type)
}

// checkGolden compares Append's output with the golden hex (also when
// appending after existing bytes), parses it back, and checks that every
// truncation is "need more" without a panic.
func checkGolden(t *testing.T, cases []goldenFrame) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			want := unhex(t, tc.hex)
			got := tc.f.Append(nil)
			if hex.EncodeToString(got) != hex.EncodeToString(want) {
				t.Fatalf("Append\n got %x\nwant %x", got, want)
			}
			prefixed := tc.f.Append([]byte{0xee})
			if string(prefixed[1:]) != string(want) || prefixed[0] != 0xee {
				t.Fatalf("Append after existing bytes: %x", prefixed)
			}
			if h := tc.f.Header(); h.Length != uint32(len(want)-frameHeaderLen) {
				t.Fatalf("Header().Length %d, payload %d", h.Length, len(want)-frameHeaderLen)
			}
			f, n, err := parseFrame(want, maxFrameSizeLimit)
			if err != nil || n != len(want) {
				t.Fatalf("parseFrame: n=%d err=%v", n, err)
			}
			if !reflect.DeepEqual(f, tc.back) {
				t.Fatalf("parsed\n got %#v\nwant %#v", f, tc.back)
			}
			for i := range want {
				f, n, err := parseFrame(want[:i], maxFrameSizeLimit)
				if f != nil || n != 0 || err != nil {
					t.Fatalf("truncated to %d: f=%v n=%d err=%v", i, f, n, err)
				}
			}
		})
	}
}

// badFrame is a frame that must be refused with exactly err.
type badFrame struct {
	name string
	hex  string
	err  error
}

func checkBad(t *testing.T, cases []badFrame) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := unhex(t, tc.hex)
			_, n, err := parseFrame(b, defaultMaxFrame)
			if err != tc.err {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if n != len(b) && !errors.Is(err, ErrFrameTooLarge) {
				t.Fatalf("n = %d, want %d", n, len(b))
			}
		})
	}
}

func TestFrameHeader(t *testing.T) {
	h := FrameHeader{Length: 0x123456, Type: FrameHeaders, Flags: FlagEndHeaders | FlagEndStream, StreamID: 0x7fffffff}
	b := AppendFrameHeader(nil, h)
	if got := hex.EncodeToString(b); got != "12345601057fffffff" {
		t.Fatalf("encoded %s", got)
	}
	back, ok := parseFrameHeader(b)
	if !ok || back != h {
		t.Fatalf("parsed %+v %v", back, ok)
	}
	// The reserved bit is dropped on receipt.
	back, _ = parseFrameHeader(unhex(t, "000000 00 00 80000003"))
	if back.StreamID != 3 {
		t.Fatalf("reserved bit kept: %d", back.StreamID)
	}
	for i := range frameHeaderLen {
		if _, ok := parseFrameHeader(b[:i]); ok {
			t.Fatalf("parsed a %d-byte header", i)
		}
	}
}

func TestFrameTooLarge(t *testing.T) {
	b := AppendFrameHeader(nil, FrameHeader{Length: defaultMaxFrame + 1, Type: FrameData, StreamID: 1})
	// Refused on the header alone: no need to buffer the payload first.
	if _, _, err := parseFrame(b, defaultMaxFrame); err != ErrFrameTooLarge {
		t.Fatalf("err = %v", err)
	}
}

func TestUnknownFrameType(t *testing.T) {
	b := unhex(t, "000003 fa 07 00000005 616263")
	f, n, err := parseFrame(b, defaultMaxFrame)
	if err != nil || n != len(b) {
		t.Fatalf("n=%d err=%v", n, err)
	}
	u, ok := f.(UnknownFrame)
	if !ok || u.Type != 0xfa || string(u.Payload) != "abc" || u.StreamID != 5 {
		t.Fatalf("got %#v", f)
	}
	if FrameType(0xfa).String() != "UNKNOWN_0xfa" || FrameContinuation.String() != "CONTINUATION" {
		t.Fatal("FrameType.String")
	}
}

func TestErrCodeString(t *testing.T) {
	for code, want := range map[ErrCode]string{
		ErrCodeNo: "NO_ERROR", ErrCodeProtocol: "PROTOCOL_ERROR", ErrCodeEnhanceYourCalm: "ENHANCE_YOUR_CALM",
		ErrCodeHTTP11Required: "HTTP_1_1_REQUIRED", 0x1f: "ERR_0x1f",
	} {
		if got := code.String(); got != want {
			t.Errorf("%d: %q, want %q", uint32(code), got, want)
		}
	}
}

// TestErrorTokensUnique: a token names one failure path, so a metric label
// never conflates two. The conn and stream variants of the same condition
// (window_update_zero, window_overflow) deliberately share one.
func TestErrorTokensUnique(t *testing.T) {
	seen := map[string]bool{}
	for _, e := range allConnErrors {
		if seen[e.Token] {
			t.Errorf("duplicate conn token %q", e.Token)
		}
		seen[e.Token] = true
	}
	shared := map[string]bool{"window_update_zero": true, "window_overflow": true}
	for _, e := range allStreamErrors {
		if seen[e.Token] && !shared[e.Token] {
			t.Errorf("duplicate stream token %q", e.Token)
		}
		seen[e.Token] = true
	}
	for tok := range seen {
		if tok == "" || strings.ToLower(tok) != tok || strings.ContainsAny(tok, " -") {
			t.Errorf("token %q is not lower_snake", tok)
		}
	}
}

func TestErrorsIs(t *testing.T) {
	se := &StreamError{StreamID: 7, Code: ErrCodeProtocol, Token: ErrUppercaseHeader.Token}
	if !errors.Is(se, ErrUppercaseHeader) || errors.Is(se, ErrBadHeaderName) {
		t.Fatal("StreamError.Is")
	}
	if !strings.Contains(se.Error(), "stream 7") || !strings.Contains(se.Error(), "uppercase_header") {
		t.Fatalf("Error() = %q", se.Error())
	}
	var ce error = ErrBadPreface
	if !errors.Is(ce, &ConnError{Token: "bad_preface"}) || errors.Is(ce, ErrControlFlood) {
		t.Fatal("ConnError.Is")
	}
}

// TestREADMEListsTokens keeps the README's error tables complete.
func TestREADMEListsTokens(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range allConnErrors {
		if !strings.Contains(string(readme), "`"+e.Token+"`") {
			t.Errorf("README lacks connection error token %q", e.Token)
		}
	}
	for _, e := range allStreamErrors {
		if !strings.Contains(string(readme), "`"+e.Token+"`") {
			t.Errorf("README lacks stream error token %q", e.Token)
		}
	}
}
