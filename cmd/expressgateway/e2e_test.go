// SPDX-License-Identifier: GPL-3.0-only

package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// buildBinary compiles the gateway once per test run.
var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func gatewayBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "eg-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "expressgateway")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// localListener listens on a free loopback port until the test ends.
func localListener(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	return ln
}

func freeAddr(t *testing.T) string {
	t.Helper()
	return unclaimedAddr(t, func() (string, func() error, error) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", nil, err
		}
		return ln.Addr().String(), ln.Close, nil
	})
}

// claimedAddrs holds every address freeAddr and freeUDPAddr have handed out
// in this test process. A port is free again once its probe socket closes,
// so two calls in a row can get the same one from the kernel (CI saw a
// listener and the admin listener both given 127.0.0.1:38767).
var claimedAddrs sync.Map

// unclaimedAddr probes with listen until it gets an address no earlier call
// handed out.
func unclaimedAddr(t *testing.T, probe func() (string, func() error, error)) string {
	t.Helper()
	for range 100 {
		addr, closeFn, err := probe()
		if err != nil {
			t.Fatal(err)
		}
		_ = closeFn()
		if _, dup := claimedAddrs.LoadOrStore(addr, struct{}{}); !dup {
			return addr
		}
	}
	t.Fatal("no unclaimed loopback port in 100 tries")
	return ""
}

// startBinary runs `expressgateway run --config` on cfg and waits for addr.
func startBinary(t *testing.T, cfg string, waitAddr string) *exec.Cmd {
	t.Helper()
	cmd, _ := startBinaryLog(t, cfg, waitAddr)
	return cmd
}

// startBinaryLog is startBinary that also returns the path of the log file;
// an empty cfg runs the embedded default config.
func startBinaryLog(t *testing.T, cfg string, waitAddr string) (*exec.Cmd, string) {
	t.Helper()
	args := []string{"run"}
	if cfg != "" {
		args = append(args, "--config", writeFile(t, "gw.toml", cfg))
	}
	cmd := exec.Command(gatewayBinary(t), args...)
	logf, _ := os.Create(filepath.Join(t.TempDir(), "gw.log"))
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			if len(b) > 40000 {
				b = b[len(b)-40000:]
			}
			t.Logf("gateway log tail:\n%s", b)
		}
	})
	// Up means something accepts on waitAddr and this gateway has logged
	// it: the port came from freeAddr, and until the gateway binds it a
	// test in another package can hold it for a moment (the dial alone
	// once returned before this gateway had started).
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", waitAddr)
		if err == nil {
			_ = c.Close()
			if b, _ := os.ReadFile(logf.Name()); bytes.Contains(b, []byte(`"`+waitAddr+`"`)) {
				return cmd, logf.Name()
			}
			err = fmt.Errorf("something accepts, but the gateway has not logged %s", waitAddr)
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway did not listen on %s: %v", waitAddr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func rssBytes(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// pattern fills b with deterministic bytes for offset off (8-byte counters).
func pattern(b []byte, off int64) {
	for i := 0; i+8 <= len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], uint64(off+int64(i))*0x9E3779B97F4A7C15)
	}
}

// patternReader yields n bytes of pattern data and hashes them.
type patternReader struct {
	n, off int64
	h      hash.Hash
}

func (p *patternReader) Read(b []byte) (int, error) {
	if p.off >= p.n {
		return 0, io.EOF
	}
	if rem := p.n - p.off; int64(len(b)) > rem {
		b = b[:rem]
	}
	b = b[:len(b)&^7]
	if len(b) == 0 {
		return 0, io.EOF
	}
	pattern(b, p.off)
	p.off += int64(len(b))
	p.h.Write(b)
	return len(b), nil
}

// slowReader reads r at about rate bytes per second.
func slowCopy(dst io.Writer, src io.Reader, rate int64) (int64, error) {
	buf := make([]byte, 64<<10)
	start := time.Now()
	var n int64
	for {
		m, err := src.Read(buf)
		if m > 0 {
			if _, err := dst.Write(buf[:m]); err != nil {
				return n, err
			}
			n += int64(m)
			if ahead := time.Duration(n*int64(time.Second)/rate) - time.Since(start); ahead > 0 {
				time.Sleep(ahead)
			}
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// sampleRSS records the peak RSS of pid every 100 ms until stop is called
// (stop waits for the sampler to end).
func sampleRSS(pid int) (peak *atomic.Int64, stop func()) {
	peak = new(atomic.Int64)
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			if r := rssBytes(pid); r > peak.Load() {
				peak.Store(r)
			}
			select {
			case <-quit:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return peak, func() { close(quit); <-done }
}

func envInt(name string, def int64) int64 {
	if v, err := strconv.ParseInt(os.Getenv(name), 10, 64); err == nil && v > 0 {
		return v
	}
	return def
}

// TestStreamingMemoryBounded moves 1 GiB up to an upstream that reads at
// ~10 MiB/s and 1 GiB down to a client that reads at ~10 MiB/s, at the same
// time, through the real binary, and checks the bytes (SHA-256) and that the
// gateway's RSS grows by less than 64 MiB. EG_STREAM_BYTES and
// EG_STREAM_RATE override the size and the rate.
func TestStreamingMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("streams 2 GiB at 10 MiB/s (about 110 s); skipped with -short")
	}
	size := envInt("EG_STREAM_BYTES", 1<<30)
	rate := envInt("EG_STREAM_RATE", 10<<20)

	// The upstream: /upload reads slowly and answers the hash; /download
	// sends pattern data as fast as the gateway takes it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/upload":
			h := sha256.New()
			n, err := slowCopy(h, r.Body, rate)
			if err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
			_, _ = fmt.Fprintf(w, "%d %s", n, hex.EncodeToString(h.Sum(nil)))
		case "/download":
			w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
			_, _ = io.Copy(w, &patternReader{n: size, h: sha256.New()})
		}
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	gwAddr := freeAddr(t)
	cmd := startBinary(t, fmt.Sprintf(`
[admin]
listen = ""
[engine]
event_loops = 2
[log]
access_log = false
[[listeners]]
name = "web"
listen = %q
[listeners.timeouts]
body_min_rate = 0
[[listeners.routes]]
cluster = "app"
[[clusters]]
name = "app"
endpoints = [ { address = %q } ]
`, gwAddr, ln.Addr().String()), gwAddr)
	pid := cmd.Process.Pid

	// Warm up and take the baseline.
	resp, err := http.Get("http://" + gwAddr + "/warm")
	if err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
	}
	time.Sleep(200 * time.Millisecond)
	base := rssBytes(pid)
	peak, stopSampling := sampleRSS(pid)

	var wg sync.WaitGroup
	wg.Add(2)
	var upErr, downErr error
	go func() { // upload
		defer wg.Done()
		src := &patternReader{n: size, h: sha256.New()}
		req, _ := http.NewRequest("POST", "http://"+gwAddr+"/upload", src)
		req.ContentLength = size
		resp, err := (&http.Client{Transport: &http.Transport{DisableCompression: true}}).Do(req)
		if err != nil {
			upErr = err
			return
		}
		defer func() { _ = resp.Body.Close() }()
		body, _ := io.ReadAll(resp.Body)
		want := fmt.Sprintf("%d %s", size, hex.EncodeToString(src.h.Sum(nil)))
		if resp.StatusCode != 200 || string(body) != want {
			upErr = fmt.Errorf("upload: status %d body %q, want %q", resp.StatusCode, body, want)
		}
	}()
	go func() { // download, read slowly
		defer wg.Done()
		c, err := net.Dial("tcp", gwAddr)
		if err != nil {
			downErr = err
			return
		}
		defer func() { _ = c.Close() }()
		// A small receive buffer so the gateway sees the slow reader.
		if err := c.(*net.TCPConn).SetReadBuffer(256 << 10); err != nil {
			downErr = err
			return
		}
		if _, err := fmt.Fprintf(c, "GET /download HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			downErr = err
			return
		}
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			downErr = err
			return
		}
		h := sha256.New()
		n, err := slowCopy(h, resp.Body, rate)
		want := sha256.New()
		_, _ = io.Copy(io.Discard, &patternReader{n: size, h: want})
		if err != nil || n != size || hex.EncodeToString(h.Sum(nil)) != hex.EncodeToString(want.Sum(nil)) {
			downErr = fmt.Errorf("download: %d bytes, err %v, hash match %v", n, err, hex.EncodeToString(h.Sum(nil)) == hex.EncodeToString(want.Sum(nil)))
		}
	}()
	wg.Wait()
	stopSampling()
	if upErr != nil {
		t.Error(upErr)
	}
	if downErr != nil {
		t.Error(downErr)
	}
	growth := peak.Load() - base
	t.Logf("streamed %d MiB each way at %d MiB/s: gateway RSS baseline %d MiB, peak %d MiB, growth %d MiB",
		size>>20, rate>>20, base>>20, peak.Load()>>20, growth>>20)
	if growth >= 64<<20 {
		t.Fatalf("gateway RSS grew by %d MiB (limit 64 MiB)", growth>>20)
	}
}
