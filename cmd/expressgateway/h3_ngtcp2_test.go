// SPDX-License-Identifier: GPL-3.0-only

package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestH3Ngtcp2Client drives the h3 front with an HTTP/3 stack that is not
// quic-go: ngtcp2 + nghttp3 + GnuTLS. Several requests on one connection,
// a 1 MiB download saved to disk and checked by size and content, and a
// GET whose answer from the origin must arrive whole.
func TestH3Ngtcp2Client(t *testing.T) {
	// ngtcp2's example client (Debian ngtcp2-client: ngtcp2, nghttp3, GnuTLS).
	bin := requireTool(t, "gtlsclient", "ngtcp2-client")
	s := startH3Gateway(t, false, "")
	host, port, ok := strings.Cut(s.h3, ":")
	if !ok {
		t.Fatalf("bad address %q", s.h3)
	}
	dir := t.TempDir()
	const size = 1 << 20
	auth := "a.test:" + port
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-q", "--exit-on-all-streams-close", "--timeout=10s",
		"--download", dir, host, port,
		fmt.Sprintf("https://%s/download?n=%d", auth, size),
		fmt.Sprintf("https://%s/hello", auth),
		fmt.Sprintf("https://%s/again", auth))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("gtlsclient: %v\n%s", err, out)
	}
	got, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("download?n=%d", size)))
	if err != nil {
		entries, _ := os.ReadDir(dir)
		t.Fatalf("downloaded file: %v (dir holds %v)\n%s", err, entries, out)
	}
	if len(got) != size {
		t.Fatalf("downloaded %d bytes, want %d", len(got), size)
	}
	want := make([]byte, size)
	pattern(want, 0)
	if string(got) != string(want) {
		t.Fatal("downloaded body differs from what the origin sent")
	}
	for _, name := range []string{"hello", "again"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("%s: %v\n%s", name, err, out)
		}
		if !strings.HasPrefix(string(b), "GET /"+name+" 0 ") || !strings.Contains(string(b), "proto=HTTP/1.1") {
			t.Fatalf("%s: origin answer %q", name, b)
		}
	}
	if hits := s.originHits(); hits != 3 {
		t.Fatalf("origin saw %d requests, want 3", hits)
	}
}
