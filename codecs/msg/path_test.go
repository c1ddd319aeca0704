// SPDX-License-Identifier: GPL-3.0-only

package msg

import (
	"bytes"
	"strings"
	"testing"
)

type targetCase struct {
	in    string
	merge bool
	mode  EscapedSlashes
	want  string // normalised target when err is nil
	err   *Error
}

var (
	keep     = EscapedSlashesKeep
	reject   = EscapedSlashesReject
	unescape = EscapedSlashesUnescape
)

var targetCases = []targetCase{
	// Already normal: the fast path.
	{in: "/", want: "/"},
	{in: "/admin/users", want: "/admin/users"},
	{in: "/a/b/", want: "/a/b/"},
	{in: "/a?", want: "/a?"},
	{in: "/a?x=1&y=2", want: "/a?x=1&y=2"},
	{in: "/caf\xc3\xa9", want: "/caf\xc3\xa9"}, // obs-text is left to the codecs
	{in: "/a.b/c..d/e.", want: "/a.b/c..d/e."},
	{in: "/.well-known/x", want: "/.well-known/x"},
	{in: "/...", want: "/..."},
	{in: "/a/.../b", want: "/a/.../b"},

	// The bypasses from the review.
	{in: "/x/../admin", want: "/admin"},
	{in: "/%61dmin", want: "/admin"},
	{in: "/./admin", want: "/admin"},
	{in: "//admin", want: "//admin"},
	{in: "//admin", merge: true, want: "/admin"},
	{in: "/a/%2e%2e/admin", want: "/admin"},
	{in: "/a/%2E./b", want: "/b"},
	{in: "/a/.%2e/b", want: "/b"},
	{in: "/%2e/admin", want: "/admin"},

	// Escaped slashes.
	{in: "/%2fadmin", mode: keep, want: "/%2Fadmin"},
	{in: "/%2fadmin", mode: reject, err: ErrEscapedSlash},
	{in: "/%2fadmin", mode: unescape, want: "//admin"},
	{in: "/%2fadmin", mode: unescape, merge: true, want: "/admin"},
	{in: "/%5cadmin", mode: keep, want: "/%5Cadmin"},
	{in: "/%5Cadmin", mode: reject, err: ErrEscapedSlash},
	{in: "/%5cadmin", mode: unescape, want: "//admin"},
	{in: "/a/..%2F..%2Fadmin", mode: keep, want: "/a/..%2F..%2Fadmin"},
	{in: "/a/..%2F..%2Fadmin", mode: reject, err: ErrEscapedSlash},
	{in: "/a/..%2F..%2Fadmin", mode: unescape, want: "/admin"},
	{in: "/a/..%5c..%5cadmin", mode: unescape, want: "/admin"},
	{in: "/a%2F", mode: unescape, want: "/a/"},
	{in: "/a%2F..", mode: unescape, want: "/"},
	{in: "/%2F%2F", mode: unescape, merge: true, want: "/"},
	{in: "/a?%2F", mode: reject, want: "/a?%2F"}, // the query is not the path

	// The query is never touched.
	{in: "/a?x=/../y", want: "/a?x=/../y"},
	{in: "/a/../b?x=/../y&%7e=%zz", want: "/b?x=/../y&%7e=%zz"},
	{in: "/a?b?c", want: "/a?b?c"},
	{in: "/a?\\", want: "/a?\\"},
	{in: "//a?//b", merge: true, want: "/a?//b"},

	// Fragments.
	{in: "/a#f", err: ErrFragment},
	{in: "/a?q#f", err: ErrFragment},
	{in: "/#", err: ErrFragment},
	{in: "/%zz#f", err: ErrFragment}, // checked first
	{in: "#", err: ErrFragment},
	{in: "a#", err: ErrFragment},

	// Percent-encoding.
	{in: "/%zz", err: ErrBadPercent},
	{in: "/%4", err: ErrBadPercent},
	{in: "/%", err: ErrBadPercent},
	{in: "/%%41", err: ErrBadPercent},
	{in: "/%4g", err: ErrBadPercent},
	{in: "/%7e", want: "/~"},
	{in: "/%7E%2D%2e%5F%30%39%41%5a%61%7A", want: "/~-._09AZaz"},
	{in: "/%3a", want: "/%3A"},
	{in: "/%3A", want: "/%3A"},
	{in: "/%e2%82%ac", want: "/%E2%82%AC"},
	{in: "/%25", want: "/%25"},
	{in: "/%252e%252e/a", want: "/%252e%252e/a"}, // decoded once, never twice
	{in: "/%00", want: "/%00"},
	{in: "/%3f%23", want: "/%3F%23"},
	{in: "/%2E%2E%2F", mode: keep, want: "/..%2F"},

	// Bytes no URI contains.
	{in: "", err: ErrBadPath},
	{in: "a", err: ErrBadPath},
	{in: "*", err: ErrBadPath},
	{in: "http://x/a", err: ErrBadPath},
	{in: "?a", err: ErrBadPath},
	{in: "/a\\b", err: ErrBadPath},
	{in: "/\\admin", err: ErrBadPath},
	{in: "/a b", err: ErrBadPath},
	{in: "/a\r\nX: y", err: ErrBadPath},
	{in: "/a\x00", err: ErrBadPath},
	{in: "/a\x7f", err: ErrBadPath},
	{in: "/a?b c", err: ErrBadPath},
	{in: "/a?b\n", err: ErrBadPath},
	{in: "/%zz\\", err: ErrBadPercent}, // the leftmost offence wins
	{in: "/\\%zz", err: ErrBadPath},

	// Dot segments: trailing ones leave the directory, ".." stops at the root.
	{in: "/a/b/..", want: "/a/"},
	{in: "/a/b/.", want: "/a/b/"},
	{in: "/a/..", want: "/"},
	{in: "/..", want: "/"},
	{in: "/.", want: "/"},
	{in: "/./", want: "/"},
	{in: "/../", want: "/"},
	{in: "/../a", want: "/a"},
	{in: "/../../../a", want: "/a"},
	{in: "/a/b/../..", want: "/"},
	{in: "/a/b/../../..", want: "/"},
	{in: "/a/./b/./c", want: "/a/b/c"},
	{in: "/a//../b", want: "/a/b"}, // ".." removes the empty segment
	{in: "/a//../b", merge: true, want: "/a/b"},
	{in: "/a/..//b", want: "//b"},
	{in: "/a/..//b", merge: true, want: "/b"},
	{in: "/a//.//b", merge: true, want: "/a/b"},
	{in: "/.//a", want: "//a"},
	{in: "/a/.?x", want: "/a/?x"},
	{in: "/a/..?x", want: "/?x"},
	{in: "///", want: "///"},
	{in: "///", merge: true, want: "/"},
	{in: "/a///b//", merge: true, want: "/a/b/"},

	// RFC 3986 section 5.2.4.
	{in: "/a/b/c/./../../g", want: "/a/g"},
	{in: "/mid/content=5/../6", want: "/mid/6"},
	// RFC 3986 sections 5.4.1 and 5.4.2, base "http://a/b/c/d;p?q": each
	// reference merged with the base path "/b/c/" (section 5.2.3), then dot
	// segments removed.
	{in: "/b/c/g", want: "/b/c/g"},
	{in: "/b/c/./g", want: "/b/c/g"},
	{in: "/b/c/g/", want: "/b/c/g/"},
	{in: "/b/c/.", want: "/b/c/"},
	{in: "/b/c/./", want: "/b/c/"},
	{in: "/b/c/..", want: "/b/"},
	{in: "/b/c/../", want: "/b/"},
	{in: "/b/c/../g", want: "/b/g"},
	{in: "/b/c/../..", want: "/"},
	{in: "/b/c/../../", want: "/"},
	{in: "/b/c/../../g", want: "/g"},
	{in: "/b/c/../../../g", want: "/g"},
	{in: "/b/c/../../../../g", want: "/g"},
	{in: "/./g", want: "/g"},
	{in: "/../g", want: "/g"},
	{in: "/b/c/g.", want: "/b/c/g."},
	{in: "/b/c/.g", want: "/b/c/.g"},
	{in: "/b/c/g..", want: "/b/c/g.."},
	{in: "/b/c/..g", want: "/b/c/..g"},
	{in: "/b/c/./../g", want: "/b/g"},
	{in: "/b/c/./g/.", want: "/b/c/g/"},
	{in: "/b/c/g/./h", want: "/b/c/g/h"},
	{in: "/b/c/g/../h", want: "/b/c/h"},
	{in: "/b/c/g;x=1/./y", want: "/b/c/g;x=1/y"},
	{in: "/b/c/g;x=1/../y", want: "/b/c/y"},
	{in: "/b/c/g?y/./x", want: "/b/c/g?y/./x"},
	{in: "/b/c/g?y/../x", want: "/b/c/g?y/../x"},
	{in: "/b/c/g#s/./x", err: ErrFragment},
	{in: "/b/c/g#s/../x", err: ErrFragment},
}

func (c targetCase) opts() *PathOptions {
	return &PathOptions{MergeSlashes: c.merge, EscapedSlashes: c.mode}
}

func (c targetCase) name() string {
	return c.mode.String() + "," + map[bool]string{false: "nomerge", true: "merge"}[c.merge] + ":" + c.in
}

// checkTarget normalises in after a non-empty prefix and checks what every
// result must satisfy; it returns the normalised target.
func checkTarget(t *testing.T, in []byte, o *PathOptions) ([]byte, *Error) {
	t.Helper()
	const prefix = "GET "
	dst := append(make([]byte, 0, 8), prefix...)
	out, n, err := NormalizeTarget(dst, in, o)
	ref, refErr := referenceTarget(string(in), o)
	if err != refErr || err == nil && string(out[len(prefix):]) != ref {
		t.Fatalf("%q %+v: got %q, %v; the reference gives %q, %v", in, *o, out, err, ref, refErr)
	}
	if err != nil {
		if len(out) != len(prefix) || string(out) != prefix {
			t.Fatalf("%q: error %v but out = %q", in, err, out)
		}
		return nil, err
	}
	if !bytes.HasPrefix(out, []byte(prefix)) {
		t.Fatalf("%q: prefix lost: %q", in, out)
	}
	got := out[len(prefix):]
	if len(got) == 0 || got[0] != '/' {
		t.Fatalf("%q: result %q does not start with '/'", in, got)
	}
	if len(got) > len(in) {
		t.Fatalf("%q: result %q is longer than the input", in, got)
	}
	if n > len(got) || (n < len(got) && got[n] != '?') || bytes.IndexByte(got[:n], '?') >= 0 {
		t.Fatalf("%q: pathLen %d wrong for %q", in, n, got)
	}
	if q := bytes.IndexByte(in, '?'); q >= 0 && !bytes.Equal(got[n:], in[q:]) {
		t.Fatalf("%q: query changed: %q", in, got[n:])
	}
	if bytes.IndexByte(got, '#') >= 0 {
		t.Fatalf("%q: fragment kept: %q", in, got)
	}
	path := got[:n]
	for _, seg := range bytes.Split(path[1:], []byte("/")) {
		if string(seg) == "." || string(seg) == ".." {
			t.Fatalf("%q: dot segment left in %q", in, got)
		}
	}
	if o.MergeSlashes && bytes.Contains(path, []byte("//")) {
		t.Fatalf("%q: slashes not merged: %q", in, got)
	}
	if o.EscapedSlashes != EscapedSlashesKeep {
		u := strings.ToUpper(string(path))
		if strings.Contains(u, "%2F") || strings.Contains(u, "%5C") {
			t.Fatalf("%q: escaped slash left under %v: %q", in, o.EscapedSlashes, got)
		}
	}
	again, n2, err2 := NormalizeTarget(nil, got, o)
	if err2 != nil || !bytes.Equal(again, got) || n2 != n {
		t.Fatalf("%q: not idempotent: %q -> %q, %d, %v", in, got, again, n2, err2)
	}
	slow, n3, err3 := normalizeSlow(nil, in, o)
	if err3 != nil || !bytes.Equal(slow, got) || n3 != n {
		t.Fatalf("%q: fast path %q disagrees with slow path %q, %d, %v", in, got, slow, n3, err3)
	}
	return got, nil
}

// referenceTarget is NormalizeTarget written the slow and obvious way, after
// the letter of RFC 3986, to check the one-pass implementation against.
func referenceTarget(in string, o *PathOptions) (string, *Error) {
	if strings.Contains(in, "#") {
		return "", ErrFragment
	}
	if in == "" || in[0] != '/' {
		return "", ErrBadPath
	}
	path, query, hasQuery := strings.Cut(in, "?")
	if hasQuery {
		query = "?" + query
	}
	// Sections 2.1 and 6.2.2.2, with escaped slashes as configured.
	var p strings.Builder
	for i := 0; i < len(path); i++ {
		c := path[i]
		switch {
		case c == '%':
			if i+2 >= len(path) || !isHex(path[i+1]) || !isHex(path[i+2]) {
				return "", ErrBadPercent
			}
			hex := strings.ToUpper(path[i+1 : i+3])
			v := unhex(hex[0])<<4 | unhex(hex[1])
			i += 2
			switch {
			case hex == "2F" || hex == "5C":
				switch o.EscapedSlashes {
				case EscapedSlashesReject:
					return "", ErrEscapedSlash
				case EscapedSlashesUnescape:
					p.WriteByte('/')
				default:
					p.WriteString("%" + hex)
				}
			case strings.IndexByte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~", v) >= 0:
				p.WriteByte(v)
			default:
				p.WriteString("%" + hex)
			}
		case c == '\\' || c <= ' ' || c == 0x7f:
			return "", ErrBadPath
		default:
			p.WriteByte(c)
		}
	}
	if strings.ContainsFunc(query, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return "", ErrBadPath
	}
	// Section 5.2.4, step by step.
	input, output := p.String(), ""
	removeLast := func() {
		if i := strings.LastIndex(output, "/"); i >= 0 {
			output = output[:i]
		} else {
			output = ""
		}
	}
	for input != "" {
		switch {
		case strings.HasPrefix(input, "../"):
			input = input[3:]
		case strings.HasPrefix(input, "./"):
			input = input[2:]
		case strings.HasPrefix(input, "/./"):
			input = input[2:]
		case input == "/.":
			input = "/"
		case strings.HasPrefix(input, "/../"):
			input = input[3:]
			removeLast()
		case input == "/..":
			input = "/"
			removeLast()
		case input == "." || input == "..":
			input = ""
		default:
			j := strings.IndexByte(input[1:], '/')
			if j < 0 {
				j = len(input)
			} else {
				j++
			}
			output, input = output+input[:j], input[j:]
		}
	}
	if o.MergeSlashes {
		for strings.Contains(output, "//") {
			output = strings.ReplaceAll(output, "//", "/")
		}
	}
	return output + query, nil
}

func TestNormalizeTarget(t *testing.T) {
	for _, c := range targetCases {
		t.Run(c.name(), func(t *testing.T) {
			got, err := checkTarget(t, []byte(c.in), c.opts())
			if err != c.err {
				t.Fatalf("err = %v, want %v", err, c.err)
			}
			if err == nil && string(got) != c.want {
				t.Fatalf("got %q, want %q", got, c.want)
			}
		})
	}
}

// The error of the slow path is the one NormalizeTarget returns, whichever
// path it took; and a nil *PathOptions is the zero value.
func TestNormalizeTargetSlowErrors(t *testing.T) {
	for _, c := range targetCases {
		if c.err == nil || c.in == "" || c.in[0] != '/' {
			continue
		}
		if _, _, err := normalizeSlow(nil, []byte(c.in), c.opts()); err != c.err {
			t.Errorf("%s: slow path err = %v, want %v", c.name(), err, c.err)
		}
	}
	out, n, err := NormalizeTarget(nil, []byte("//a/./b"), nil)
	if err != nil || string(out) != "//a/b" || n != 5 {
		t.Fatalf("nil options: %q, %d, %v", out, n, err)
	}
}

// Every prefix of every input, under every option, normalises or fails
// cleanly, and what normalises obeys the invariants.
func TestNormalizeTargetTruncations(t *testing.T) {
	for _, c := range targetCases {
		for k := 0; k <= len(c.in); k++ {
			in := []byte(c.in[:k])
			for _, mode := range []EscapedSlashes{keep, reject, unescape} {
				for _, merge := range []bool{false, true} {
					_, _ = checkTarget(t, in, &PathOptions{MergeSlashes: merge, EscapedSlashes: mode})
				}
			}
		}
	}
}

// Every option set agrees with the fast path on every table input: the
// options only ever make the slow path act where the fast path declines.
func TestNormalizeTargetAllOptions(t *testing.T) {
	for _, c := range targetCases {
		for _, mode := range []EscapedSlashes{keep, reject, unescape} {
			for _, merge := range []bool{false, true} {
				_, _ = checkTarget(t, []byte(c.in), &PathOptions{MergeSlashes: merge, EscapedSlashes: mode})
			}
		}
	}
}

func TestNormalizeTargetNoAllocs(t *testing.T) {
	o := &PathOptions{MergeSlashes: true, EscapedSlashes: EscapedSlashesUnescape}
	dst := make([]byte, 0, 256)
	for _, in := range []string{cleanPath, dirtyPath, "/%zz", "/a#b"} {
		b := []byte(in)
		if n := testing.AllocsPerRun(100, func() { _, _, _ = NormalizeTarget(dst, b, o) }); n != 0 {
			t.Errorf("%q: %v allocs, want 0", in, n)
		}
	}
}

func TestParseEscapedSlashes(t *testing.T) {
	for _, e := range []EscapedSlashes{keep, reject, unescape} {
		got, err := ParseEscapedSlashes(e.String())
		if err != nil || got != e {
			t.Errorf("%v: got %v, %v", e, got, err)
		}
	}
	for _, s := range []string{"", "Keep", "decode", "keep "} {
		if _, err := ParseEscapedSlashes(s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
	if s := EscapedSlashes(9).String(); s != "EscapedSlashes(9)" {
		t.Errorf("String() = %q", s)
	}
}

func TestErrorString(t *testing.T) {
	if s := ErrFragment.Error(); s != "msg: fragment: fragment in request target" {
		t.Errorf("Error() = %q", s)
	}
	seen := map[string]bool{}
	for _, e := range []*Error{ErrFragment, ErrBadPercent, ErrEscapedSlash, ErrBadPath, ErrBadHost, ErrBadPort} {
		if e.Status != 400 || e.Token == "" || seen[e.Token] {
			t.Errorf("%+v: status or token", e)
		}
		seen[e.Token] = true
	}
}

const (
	cleanPath = "/api/v1/users/12345/orders?limit=50&cursor=eyJpZCI6MTIzfQ"
	dirtyPath = "/api/./v1//users/%7Ealice/../12345/orders/%2e%2e/%2fitems?limit=50&cursor=eyJpZCI6MTIzfQ"
)

func benchmarkTarget(b *testing.B, in string, o *PathOptions) {
	target := []byte(in)
	dst := make([]byte, 0, len(target))
	b.SetBytes(int64(len(target)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := NormalizeTarget(dst, target, o); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNormalizeTargetClean(b *testing.B) {
	benchmarkTarget(b, cleanPath, &PathOptions{MergeSlashes: true})
}

func BenchmarkNormalizeTargetDirty(b *testing.B) {
	benchmarkTarget(b, dirtyPath, &PathOptions{MergeSlashes: true, EscapedSlashes: EscapedSlashesUnescape})
}

func FuzzNormalizeTarget(f *testing.F) {
	for _, c := range targetCases {
		f.Add([]byte(c.in), c.merge, uint8(c.mode))
	}
	f.Add([]byte(dirtyPath), true, uint8(EscapedSlashesUnescape))
	f.Fuzz(func(t *testing.T, in []byte, merge bool, mode uint8) {
		o := &PathOptions{MergeSlashes: merge, EscapedSlashes: EscapedSlashes(mode % 3)}
		_, _ = checkTarget(t, in, o)
	})
}
