// SPDX-License-Identifier: GPL-3.0-only

package loadgen

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func readTestdata(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The testdata files are real outputs of wrk 4.1.0 (Debian) captured on the
// bench machines, with and without the harness's Lua script.
func TestParseWrk(t *testing.T) {
	mb, mib := 2.61, float64(1<<20)
	mib261 := uint64(mb * mib) // "2.61MB read"
	ms, us := time.Millisecond, time.Microsecond
	tests := []struct {
		file string
		want Result
	}{
		{"wrk-keepalive-script.txt", Result{
			Requests: 171740, Duration: 3003885 * us, Bytes: 22154460,
			P50: 1070 * us, P90: 1378 * us, P99: 2242 * us, P999: 3755 * us, Max: 5072 * us,
		}},
		{"wrk-large-script.txt", Result{
			Requests: 4269, Duration: 3039193 * us, Bytes: 4477687736,
			P50: 38398 * us, P90: 74093 * us, P99: 105038 * us, P999: 126328 * us, Max: 131255 * us,
		}},
		{"wrk-404-noscript.txt", Result{
			Requests: 60773, Duration: 1100 * ms, Bytes: mib261, RPS: 55179.31,
			P50: 86 * us, P90: 403 * us, P99: 37640 * us, Non2xx: 60773,
		}},
		{"wrk-close-noscript.txt", Result{}}, // checked loosely below
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := ParseWrk(readTestdata(t, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if tt.want == (Result{}) {
				if got.Requests == 0 || got.RPS == 0 || got.P50 == 0 || got.P99 < got.P50 {
					t.Fatalf("implausible: %+v", got)
				}
				return
			}
			if tt.want.RPS == 0 { // from the script: derived
				tt.want.RPS = float64(tt.want.Requests) / tt.want.Duration.Seconds()
			}
			if got != tt.want {
				t.Fatalf("got\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func TestParseWrkErrors(t *testing.T) {
	if _, err := ParseWrk(readTestdata(t, "wrk-connect-errors.txt")); err == nil {
		t.Fatal("a wrk that could not connect parsed as a result")
	}
	// Socket errors appear in the text and in the script line.
	text := readTestdata(t, "wrk-404-noscript.txt")
	text = strings.Replace(text, "  Non-2xx", "  Socket errors: connect 1, read 2, write 3, timeout 4\n  Non-2xx", 1)
	r, err := ParseWrk(text)
	if err != nil {
		t.Fatal(err)
	}
	if r.ConnectErrors != 1 || r.ReadErrors != 2 || r.WriteErrors != 3 || r.Timeouts != 4 || r.Errors() != 10 {
		t.Fatalf("socket errors: %+v", r)
	}
	// Every truncation of a real output either parses or fails cleanly.
	full := readTestdata(t, "wrk-keepalive-script.txt")
	for i := range full {
		_, _ = ParseWrk(full[:i])
	}
}

func TestParseWrkDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"86.00us": 86 * time.Microsecond, "1.07ms": 1070 * time.Microsecond,
		"3.00s": 3 * time.Second, "1.50m": 90 * time.Second,
	} {
		if got, err := parseWrkDuration(in); err != nil || got != want {
			t.Errorf("%s: got %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := parseWrkDuration("12xs"); err == nil {
		t.Error("bad unit accepted")
	}
}

func TestWrkArgs(t *testing.T) {
	got := strings.Join(WrkArgs(Options{URL: "http://127.0.0.1:1/", Duration: 2500 * time.Millisecond,
		Connections: 64, Threads: 2, Headers: []string{"Connection: close"}, Timeout: 5 * time.Second}, "/x/bench.lua"), " ")
	want := "wrk -t 2 -c 64 -d 3s --latency --timeout 5s -H Connection: close -s /x/bench.lua http://127.0.0.1:1/"
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}
