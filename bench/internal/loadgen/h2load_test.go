// SPDX-License-Identifier: GPL-3.0-only

package loadgen

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The testdata files are real outputs of h2load (nghttp2 1.52.0, Debian)
// against HAProxy 2.6 with an h2c frontend.
func TestParseH2load(t *testing.T) {
	tests := []struct {
		file string
		want Result
	}{
		{"h2load-n200.txt", Result{}},
		{"h2load-404.txt", Result{Requests: 100, Duration: 4930 * time.Microsecond, RPS: 20267.53, Bytes: 1360, Non2xx: 100}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := ParseH2load(readTestdata(t, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if tt.want == (Result{}) {
				if got.Requests != 200 || got.Non2xx != 0 || got.RPS == 0 || got.Errors() != 0 {
					t.Fatalf("implausible: %+v", got)
				}
				return
			}
			if got != tt.want {
				t.Fatalf("got\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
	got, err := ParseH2load(readTestdata(t, "h2load-h2c.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if got.Requests == 0 || got.Duration < time.Second || got.Errors() != 0 {
		t.Fatalf("h2c run: %+v", got)
	}
	if _, err := ParseH2load("starting benchmark...\n"); err == nil {
		t.Fatal("output without a summary parsed")
	}
}

func TestParseH2loadLog(t *testing.T) {
	f, err := os.Open(filepath.Join("testdata", "h2load.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	var r Result
	if err := ParseH2loadLog(&r, f); err != nil {
		t.Fatal(err)
	}
	if r.P50 <= 0 || r.P50 > r.P90 || r.P90 > r.P99 || r.P99 > r.P999 || r.P999 > r.Max {
		t.Fatalf("percentiles not ordered: %+v", r)
	}
	// A tiny log with known values.
	log := "1\t200\t100\n2\t200\t300\n3\t200\t200\n4\t200\t400\n"
	r = Result{}
	if err := ParseH2loadLog(&r, strings.NewReader(log)); err != nil {
		t.Fatal(err)
	}
	us := time.Microsecond
	if r.P50 != 200*us || r.P99 != 400*us || r.Max != 400*us {
		t.Fatalf("got %+v", r)
	}
}

func TestPercentile(t *testing.T) {
	var s []time.Duration
	for i := 1; i <= 1000; i++ {
		s = append(s, time.Duration(i))
	}
	for p, want := range map[float64]time.Duration{50: 500, 99: 990, 99.9: 999, 100: 1000, 0: 1} {
		if got := Percentile(s, p); got != want {
			t.Errorf("p%v: got %v want %v", p, got, want)
		}
	}
	if Percentile(nil, 50) != 0 {
		t.Error("empty")
	}
}

func TestH2loadArgs(t *testing.T) {
	got := strings.Join(H2loadArgs(Options{URL: "http://127.0.0.1:1/", Duration: 3 * time.Second,
		Connections: 8, Threads: 1, Streams: 10}, "/x/log"), " ")
	want := "h2load -t 1 -c 8 -m 10 -D 3s --log-file=/x/log http://127.0.0.1:1/"
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}
