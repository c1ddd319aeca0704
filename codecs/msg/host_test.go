// SPDX-License-Identifier: GPL-3.0-only

package msg

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
)

var hostCases = []struct {
	in   string
	want string // normalised authority when err is nil
	host string // its host part when different from want
	err  *Error
}{
	{in: "", want: ""},
	{in: "example.com", want: "example.com"},
	{in: "Internal.Example.COM.", want: "internal.example.com"},
	{in: "internal.example.com.", want: "internal.example.com"},
	{in: "internal.example.com.:8443", want: "internal.example.com:8443", host: "internal.example.com"},
	{in: "a", want: "a"},
	{in: "A:80", want: "a:80", host: "a"},
	{in: "a:080", want: "a:80", host: "a"},
	{in: "a:00080", want: "a:80", host: "a"},
	{in: "a:1", want: "a:1", host: "a"},
	{in: "a:65535", want: "a:65535", host: "a"},
	{in: "a:0000000000065535", want: "a:65535", host: "a"},
	{in: "127.0.0.1", want: "127.0.0.1"},
	{in: "127.0.0.1:8080", want: "127.0.0.1:8080", host: "127.0.0.1"},
	{in: "under_score.example", want: "under_score.example"},
	{in: "x-y~z.example", want: "x-y~z.example"},
	{in: "a!$&'()*+,;=b", want: "a!$&'()*+,;=b"}, // sub-delims are reg-name
	{in: "%41dmin.Example.com", want: "admin.example.com"},
	{in: "a%2eb", want: "a.b"},
	{in: "a%2E", want: "a"},
	{in: "caf%c3%a9.example", want: "caf%C3%A9.example"},

	// IPv6 literals: RFC 5952 form, in brackets.
	{in: "[::1]", want: "[::1]"},
	{in: "[::1]:8080", want: "[::1]:8080", host: "[::1]"},
	{in: "[2001:DB8::1]", want: "[2001:db8::1]"},
	{in: "[2001:0db8:0000:0000:0000:0000:0000:0001]:443", want: "[2001:db8::1]:443", host: "[2001:db8::1]"},
	{in: "[::FFFF:192.0.2.1]", want: "[::ffff:192.0.2.1]"},
	{in: "[::ffff:ffff:ffff]", want: "[::ffff:255.255.255.255]"},
	{in: "[::1", err: ErrBadHost},
	{in: "[::1:80", err: ErrBadHost},
	{in: "[]", err: ErrBadHost},
	{in: "[::1]x", err: ErrBadHost},
	{in: "[::1]]", err: ErrBadHost},
	{in: "[::1]:", err: ErrBadPort},
	{in: "[::1]:0", err: ErrBadPort},
	{in: "[fe80::1%25eth0]", err: ErrBadHost},
	{in: "[fe80::1%eth0]", err: ErrBadHost},
	{in: "[1.2.3.4]", err: ErrBadHost},
	{in: "[v1.fe80::a+en1]", err: ErrBadHost},
	{in: "[::g]", err: ErrBadHost},
	{in: "[" + strings.Repeat("0", 60) + "]", err: ErrBadHost},
	{in: "::1", err: ErrBadHost},

	// Names.
	{in: ".", err: ErrBadHost},
	{in: ".:80", err: ErrBadHost},
	{in: "..", err: ErrBadHost},
	{in: "a..b", err: ErrBadHost},
	{in: "a..", err: ErrBadHost},
	{in: ".a", err: ErrBadHost},
	{in: "a%2e%2eb", err: ErrBadHost},
	{in: ":80", err: ErrBadHost},
	{in: "user@a", err: ErrBadHost},
	{in: "user:pass@a:80", err: ErrBadHost},
	{in: "a b", err: ErrBadHost},
	{in: "a/b", err: ErrBadHost},
	{in: "a\\b", err: ErrBadHost},
	{in: "a#b", err: ErrBadHost},
	{in: "a?b", err: ErrBadHost},
	{in: "a]", err: ErrBadHost},
	{in: "a[b]", err: ErrBadHost},
	{in: "a\x00", err: ErrBadHost},
	{in: "caf\xc3\xa9", err: ErrBadHost},
	{in: "a%", err: ErrBadHost},
	{in: "a%4", err: ErrBadHost},
	{in: "a%zz", err: ErrBadHost},

	// Ports.
	{in: "a:80:90", err: ErrBadPort},
	{in: "a:", err: ErrBadPort},
	{in: "a:0", err: ErrBadPort},
	{in: "a:000", err: ErrBadPort},
	{in: "a:65536", err: ErrBadPort},
	{in: "a:99999999999999999999", err: ErrBadPort},
	{in: "a:x", err: ErrBadPort},
	{in: "a:+80", err: ErrBadPort},
	{in: "a:-1", err: ErrBadPort},
	{in: "a: 80", err: ErrBadPort},
	{in: "a:80 ", err: ErrBadPort},
	{in: "a::80", err: ErrBadPort},
}

// checkHost normalises in after a non-empty prefix and checks what every
// result must satisfy; it returns the normalised authority and host length.
func checkHost(t *testing.T, in []byte) ([]byte, int, *Error) {
	t.Helper()
	const prefix = "Host: "
	dst := append(make([]byte, 0, 8), prefix...)
	out, n, err := NormalizeHost(dst, in)
	if err != nil {
		if string(out) != prefix {
			t.Fatalf("%q: error %v but out = %q", in, err, out)
		}
		return nil, 0, err
	}
	if !bytes.HasPrefix(out, []byte(prefix)) {
		t.Fatalf("%q: prefix lost: %q", in, out)
	}
	got := out[len(prefix):]
	if len(got) > len(in)+6 {
		t.Fatalf("%q: result %q longer than the input by more than 6", in, got)
	}
	if n > len(got) || (n < len(got) && got[n] != ':') || (n == 0) != (len(in) == 0) {
		t.Fatalf("%q: hostLen %d wrong for %q", in, n, got)
	}
	host := got[:n]
	if len(host) > 0 && host[0] == '[' {
		a, err := netip.ParseAddr(string(host[1 : len(host)-1]))
		if err != nil || !a.Is6() || "["+a.String()+"]" != string(host) {
			t.Fatalf("%q: %q is not an IPv6 literal in RFC 5952 form", in, got)
		}
	}
	if len(host) > 0 && host[0] != '[' {
		for _, c := range host {
			if !regName[c] && c != '%' {
				t.Fatalf("%q: %q is not a reg-name", in, got)
			}
		}
		if host[len(host)-1] == '.' || bytes.Contains(host, []byte("..")) {
			t.Fatalf("%q: dots left in %q", in, got)
		}
		for i := 0; i < len(host); i++ {
			if host[i] == '%' {
				i += 2
			} else if host[i] >= 'A' && host[i] <= 'Z' {
				t.Fatalf("%q: not lower-cased: %q", in, got)
			}
		}
	}
	if n < len(got) && (got[n+1] == '0' || len(got)-n-1 > 5) {
		t.Fatalf("%q: port not normal: %q", in, got)
	}
	again, n2, err2 := NormalizeHost(nil, got)
	if err2 != nil || !bytes.Equal(again, got) || n2 != n {
		t.Fatalf("%q: not idempotent: %q -> %q, %d, %v", in, got, again, n2, err2)
	}
	return got, n, nil
}

func TestNormalizeHost(t *testing.T) {
	for _, c := range hostCases {
		t.Run(c.in, func(t *testing.T) {
			got, n, err := checkHost(t, []byte(c.in))
			if err != c.err {
				t.Fatalf("err = %v, want %v", err, c.err)
			}
			if err != nil {
				return
			}
			host := c.host
			if host == "" {
				host = c.want
			}
			if string(got) != c.want || string(got[:n]) != host {
				t.Fatalf("got %q (host %q), want %q (host %q)", got, got[:n], c.want, host)
			}
		})
	}
}

// Every prefix of every input normalises or fails cleanly.
func TestNormalizeHostTruncations(t *testing.T) {
	for _, c := range hostCases {
		for k := 0; k <= len(c.in); k++ {
			_, _, _ = checkHost(t, []byte(c.in[:k]))
		}
	}
}

func TestNormalizeHostNoAllocs(t *testing.T) {
	dst := make([]byte, 0, 64)
	for _, in := range []string{"api.example.com", "Internal.Example.COM.:8443", "[2001:db8::1]:443", "[::ffff:ffff:ffff]", "a:80:90", "[fe80::1%25eth0]"} {
		b := []byte(in)
		if n := testing.AllocsPerRun(100, func() { _, _, _ = NormalizeHost(dst, b) }); n != 0 {
			t.Errorf("%q: %v allocs, want 0", in, n)
		}
	}
}

func benchmarkHost(b *testing.B, in string) {
	authority := []byte(in)
	dst := make([]byte, 0, len(authority)+6)
	b.SetBytes(int64(len(authority)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := NormalizeHost(dst, authority); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNormalizeHostName(b *testing.B) { benchmarkHost(b, "api.example.com:8443") }

func BenchmarkNormalizeHostDirty(b *testing.B) { benchmarkHost(b, "Internal.Example.COM.:08443") }

func BenchmarkNormalizeHostIPv6(b *testing.B) { benchmarkHost(b, "[2001:DB8:0:0::1]:443") }

func FuzzNormalizeHost(f *testing.F) {
	for _, c := range hostCases {
		f.Add([]byte(c.in))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		_, _, _ = checkHost(t, in)
	})
}
