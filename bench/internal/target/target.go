// SPDX-License-Identifier: GPL-3.0-only

// Package target starts the things a load run is pointed at: the upstream
// itself (the ceiling), expressgateway, HAProxy and nginx, each configured
// the same way (same worker count, upstream keep-alive on, access logs off).
package target

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/quic-go/quic-go/http3"
)

// Protocols a scenario can ask a target to speak on its client side.
const (
	ProtoH1  = "h1"
	ProtoH2C = "h2c"
	// ProtoH2CToH2C is h2c on both sides: the target proxies to the bench's
	// h2c upstream.
	ProtoH2CToH2C = "h2c-h2c"
	// ProtoTLS is HTTPS: TLS 1.2/1.3, then HTTP/2 or HTTP/1.1 as ALPN
	// chooses (HTTP/1.1 for a client that offers no ALPN).
	ProtoTLS       = "https"
	ProtoH3        = "h3"
	ProtoGRPC      = "grpc"
	ProtoWebSocket = "websocket"
)

// Env is what a target needs to start.
type Env struct {
	Dir      string // scratch directory for configs and logs
	Listen   string // address the target listens on for clients
	Upstream string // the bench upstream
	Workers  int    // event loops / threads / worker processes
	Protocol string // client-side protocol of the scenario
	// UpstreamProto is "h2c" when Upstream speaks HTTP/2 with prior
	// knowledge, "" for HTTP/1.1.
	UpstreamProto string
	// TLS is the certificate to serve for ProtoTLS, nil otherwise.
	TLS    *TLS
	Pin    []string // command prefix that pins the process ("taskset -c 0"), or nil
	NoFile uint64   // RLIMIT_NOFILE the target inherits
}

// Target is one column of the comparison.
type Target interface {
	// Name is the short name used in flags, tables and JSON.
	Name() string
	// Supports reports whether the target can serve the protocol today.
	Supports(proto string) bool
	// Probe returns the target's version, or an error saying why it cannot
	// run (not installed, not built).
	Probe(ctx context.Context) (version string, err error)
	// Start launches the target and returns once it serves requests. A
	// target without a process of its own (the upstream) returns nil.
	Start(ctx context.Context, env Env) (*Process, error)
}

// ErrUnavailable wraps the reasons a target cannot run at all.
var ErrUnavailable = errors.New("unavailable")

// Process is a started target.
type Process struct {
	Cmd         *exec.Cmd
	CommandLine string
	ConfigFile  string
	Config      string
	stderr      *tailBuffer
	done        chan struct{}
	waitErr     error
}

// PID returns the process id of the target's main process.
func (p *Process) PID() int { return p.Cmd.Process.Pid }

// Exited reports whether the process has already exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// exitText describes how the process ended; call it after it exited.
func (p *Process) exitText() string {
	if p.waitErr == nil {
		return "exit status 0"
	}
	return p.waitErr.Error()
}

// Stderr returns the tail of the process's stderr and stdout.
func (p *Process) Stderr() string { return strings.TrimSpace(p.stderr.String()) }

// Stop asks the process group to terminate, then kills it after a grace period.
func (p *Process) Stop() {
	if p == nil || p.Cmd.Process == nil {
		return
	}
	pgid := p.Cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(3 * time.Second):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
	// Workers re-parented away from the group leader get the same signal.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
}

// Launch starts argv (after the pin prefix) in its own process group, with
// stdout and stderr kept in a bounded buffer and in dir/NAME.log.
func Launch(argv []string, pin []string, dir string) (*Process, error) {
	return launchEnv(argv, pin, dir, nil)
}

// launchEnv is Launch with the environment env (nil: the harness's own).
func launchEnv(argv []string, pin []string, dir string, env []string) (*Process, error) {
	full := append(append([]string{}, pin...), argv...)
	cmd := exec.Command(full[0], full[1:]...)
	cmd.Dir = dir
	cmd.Env = env
	tb := &tailBuffer{max: 16 << 10}
	var out io.Writer = tb
	logFile, err := os.Create(filepath.Join(dir, filepath.Base(argv[0])+".log"))
	if err == nil {
		out = io.MultiWriter(tb, logFile)
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		if logFile != nil {
			_ = logFile.Close()
		}
		return nil, fmt.Errorf("start %s: %w", argv[0], err)
	}
	p := &Process{Cmd: cmd, CommandLine: ShellJoin(full), stderr: tb, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		if logFile != nil {
			_ = logFile.Close()
		}
		close(p.done)
	}()
	return p, nil
}

// WaitReady polls until the target answers on addr (an HTTP GET / for h1, the
// same over TLS for https, over HTTP/3 on UDP for h3, a TCP connect otherwise) or the process exits or
// the timeout passes.
func WaitReady(ctx context.Context, p *Process, addr, proto string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		if p != nil && p.Exited() {
			return fmt.Errorf("exited during start (%s): %s", p.exitText(), lastLines(p.Stderr(), 3))
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		switch proto {
		case ProtoH1:
			last = ProbeHTTP(addr, "/")
		case ProtoTLS:
			last = ProbeHTTPS(addr, "/")
		case ProtoH3:
			last = ProbeH3(ctx, addr, "/")
		default:
			var c net.Conn
			c, last = net.DialTimeout("tcp", addr, time.Second)
			if last == nil {
				_ = c.Close()
			}
		}
		if last == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	if p != nil && p.Stderr() != "" {
		return fmt.Errorf("not ready after %v: %v (stderr: %s)", timeout, last, lastLines(p.Stderr(), 3))
	}
	return fmt.Errorf("not ready after %v: %v", timeout, last)
}

// ProbeHTTP sends one HTTP/1.1 GET and expects a 200.
func ProbeHTTP(addr, path string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	return probeGET(c, path)
}

// ProbeHTTPS is ProbeHTTP over TLS (ALPN http/1.1). It does not verify the
// certificate: it is the bench's own, on loopback.
func ProbeHTTPS(addr, path string) error {
	d := &net.Dialer{Timeout: time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{
		InsecureSkipVerify: true, // the bench's self-signed certificate, on loopback
		NextProtos:         []string{"http/1.1"},
	})
	if err != nil {
		return err
	}
	return probeGET(c, path)
}

// ProbeH3 is ProbeHTTP over HTTP/3 (QUIC on UDP addr), SNI localhost, not
// verifying the certificate either.
func ProbeH3(ctx context.Context, addr, path string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	tr := &http3.Transport{TLSClientConfig: &tls.Config{
		InsecureSkipVerify: true, // the bench's self-signed certificate, on loopback
		ServerName:         "localhost",
	}}
	defer func() { _ = tr.Close() }()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+path, nil)
	if err != nil {
		return err
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status: %d", resp.StatusCode)
	}
	return nil
}

func probeGET(c net.Conn, path string) error {
	defer func() { _ = c.Close() }()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("GET " + path + " HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")); err != nil {
		return err
	}
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if n == 0 {
		return fmt.Errorf("no response: %v", err)
	}
	if !bytes.HasPrefix(buf[:n], []byte("HTTP/1.1 200")) && !bytes.HasPrefix(buf[:n], []byte("HTTP/1.0 200")) {
		return fmt.Errorf("status: %q", strings.SplitN(string(buf[:n]), "\r\n", 2)[0])
	}
	return nil
}

// FreeAddr returns a loopback address with a port that was free a moment ago.
func FreeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer func() { _ = ln.Close() }()
	return ln.Addr().String(), nil
}

// FreeDualAddr is FreeAddr for a port that was free on both UDP and TCP:
// an h3 target listens on UDP and may put its TCP listener beside it on the
// same port number.
func FreeDualAddr() (string, error) {
	var last error
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		addr := pc.LocalAddr().String()
		ln, err := net.Listen("tcp", addr)
		_ = pc.Close()
		if err != nil {
			last = err
			continue
		}
		_ = ln.Close()
		return addr, nil
	}
	return "", fmt.Errorf("no port free on both udp and tcp: %w", last)
}

// Version runs a command and returns the first non-empty line it prints.
func Version(ctx context.Context, argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	line := ""
	for _, l := range strings.Split(string(out), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			line = l
			break
		}
	}
	if err != nil && line == "" {
		return "", err
	}
	return line, nil
}

// ShellJoin renders argv as a command line a person can paste into a shell.
func ShellJoin(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		if a != "" && strings.IndexFunc(a, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=,@%+", r))
		}) < 0 {
			q[i] = a
			continue
		}
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// lookPath resolves a binary or returns an ErrUnavailable saying it is not installed.
func lookPath(name string) (string, error) {
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%w: not installed (%s not in PATH)", ErrUnavailable, name)
	}
	return p, nil
}

func writeConfig(path, content string) error {
	return os.WriteFile(path, []byte(content), 0o644)
}

// Adopt wraps a command started elsewhere (in its own process group) so it
// can be stopped and measured like a target.
func Adopt(cmd *exec.Cmd, commandLine string) *Process {
	p := &Process{Cmd: cmd, CommandLine: commandLine, stderr: &tailBuffer{max: 1}, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return p
}
