// SPDX-License-Identifier: GPL-3.0-only

package main

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/rs/zerolog"

	"github.com/expressgateway/expressgateway/conf"
)

// Binary upgrade without a gap (SIGUSR2), nginx style: the running process
// starts the binary at its own path (os.Executable, resolved at start) with
// the same arguments, handing over every listening socket (the engine's tcp
// and udp sockets, the admin and demo listeners) as inherited fds, named in
// an environment variable. The new process adopts them instead of binding,
// so the kernel's accept queues are shared and no connection attempt is
// refused or lost; when it serves it writes a line to a pipe passed as
// another fd. The old process then stops accepting, drains within
// engine.drain_timeout and exits. A new process that exits, or is not ready
// within process.upgrade_timeout, is killed, and the old one keeps serving.

const (
	// envInherit names the inherited sockets: "KIND ADDR=FD,FD;..." with
	// KIND tcp, udp (engine listeners), admin or demo.
	envInherit = "EXPRESSGATEWAY_INHERIT"
	// envReadyFD is the fd of the pipe the new process reports on.
	envReadyFD = "EXPRESSGATEWAY_READY_FD"
	// envQUICGen is the generation bit (0 or 1) of the new process's QUIC
	// connection IDs: the other value than the old process's
	// (engine/h3_steer.go).
	envQUICGen = "EXPRESSGATEWAY_QUIC_GEN"
)

// inherited is what a process started by an upgrade received.
type inherited struct {
	socks   map[string][]int // "tcp ADDR" → fds
	ready   *os.File         // nil when not started by an upgrade
	quicGen byte             // the generation bit of this process's QUIC connection IDs
	parent  int              // the pid of the process that started this one by an upgrade
}

// takeInherited reads (and clears) the upgrade environment. Without it the
// process was not started by an upgrade and the result is empty.
func takeInherited() (*inherited, error) {
	in := &inherited{socks: map[string][]int{}}
	spec, ok := os.LookupEnv(envInherit)
	readyFD := os.Getenv(envReadyFD)
	gen := os.Getenv(envQUICGen)
	_ = os.Unsetenv(envInherit)
	_ = os.Unsetenv(envReadyFD)
	_ = os.Unsetenv(envQUICGen)
	if !ok && readyFD == "" {
		return in, nil
	}
	switch gen {
	case "", "0":
	case "1":
		in.quicGen = 1
	default:
		return nil, fmt.Errorf("%s: bad value %q, want 0 or 1", envQUICGen, gen)
	}
	in.parent = os.Getppid()
	for _, item := range strings.Split(spec, ";") {
		if item == "" {
			continue
		}
		key, fds, ok := strings.Cut(item, "=")
		if !ok {
			return nil, fmt.Errorf("%s: bad entry %q", envInherit, item)
		}
		for _, f := range strings.Split(fds, ",") {
			fd, err := strconv.Atoi(f)
			if err != nil || fd < 3 {
				return nil, fmt.Errorf("%s: bad fd %q in %q", envInherit, f, item)
			}
			syscall.CloseOnExec(fd)
			in.socks[key] = append(in.socks[key], fd)
		}
	}
	if readyFD != "" {
		fd, err := strconv.Atoi(readyFD)
		if err != nil || fd < 3 {
			return nil, fmt.Errorf("%s: bad fd %q", envReadyFD, readyFD)
		}
		syscall.CloseOnExec(fd)
		in.ready = os.NewFile(uintptr(fd), "upgrade-ready")
	}
	return in, nil
}

// upgraded reports whether the process was started by an upgrade.
func (in *inherited) upgraded() bool { return in.ready != nil }

// engineSockets hands the engine its sockets (the engine owns them from
// then on).
func (in *inherited) engineSockets() map[string][]int {
	out := map[string][]int{}
	for k, fds := range in.socks {
		if strings.HasPrefix(k, "tcp ") || strings.HasPrefix(k, "udp ") {
			out[k] = fds
			delete(in.socks, k)
		}
	}
	return out
}

// listen returns the inherited listener of kind ("admin", "demo") on addr,
// or a new one.
func (in *inherited) listen(kind, addr string) (net.Listener, error) {
	key := kind + " " + addr
	if fds := in.socks[key]; len(fds) > 0 {
		delete(in.socks, key)
		for _, fd := range fds[1:] {
			_ = syscall.Close(fd)
		}
		f := os.NewFile(uintptr(fds[0]), key)
		ln, err := net.FileListener(f) // dups the fd
		_ = f.Close()
		if err != nil {
			return nil, fmt.Errorf("inherited %s: %w", key, err)
		}
		return ln, nil
	}
	return net.Listen("tcp", addr)
}

// closeUnused closes the inherited sockets nothing adopted.
func (in *inherited) closeUnused() {
	for k, fds := range in.socks {
		for _, fd := range fds {
			_ = syscall.Close(fd)
		}
		delete(in.socks, k)
	}
}

// signalReady tells the process that started this one that it serves.
func (in *inherited) signalReady() {
	if in.ready == nil {
		return
	}
	_, _ = fmt.Fprintf(in.ready, "ready %d\n", os.Getpid())
	_ = in.ready.Close()
	in.ready = nil
}

// handover is one listening socket passed to the new process.
type handover struct {
	key string
	fd  int
}

// listenerFD is the fd of a Go listener, for a handover.
func listenerFD(ln net.Listener) (int, bool) {
	sc, ok := ln.(syscall.Conn)
	if !ok {
		return -1, false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, false
	}
	fd := -1
	if err := rc.Control(func(f uintptr) { fd = int(f) }); err != nil {
		return -1, false
	}
	return fd, fd >= 0
}

// upgrader starts the new binary on SIGUSR2.
type upgrader struct {
	exe     string
	args    []string
	log     zerolog.Logger
	running atomic.Bool
	child   atomic.Pointer[os.Process] // the new process while it starts
	quicGen byte                       // this process's QUIC generation bit; the new one gets the other
	ok      *metrics.Counter
	failed  *metrics.Counter
	refused *metrics.Counter
}

func newUpgrader(log zerolog.Logger, set *metrics.Set, quicGen byte) *upgrader {
	u := &upgrader{
		args:    os.Args,
		quicGen: quicGen,
		log:     log,
		ok:      set.NewCounter(`expressgateway_upgrade_total{result="ok"}`),
		failed:  set.NewCounter(`expressgateway_upgrade_total{result="error"}`),
		refused: set.NewCounter(`expressgateway_upgrade_total{result="refused"}`),
	}
	if exe, err := os.Executable(); err == nil {
		u.exe = exe
	}
	return u
}

// refuse counts and logs an upgrade that is not even tried.
func (u *upgrader) refuse(why string) {
	u.refused.Inc()
	u.log.Error().Str("reason", why).Msg("upgrade refused; this process keeps serving")
}

// start runs the new binary with the sockets and waits until it serves,
// exits, or timeout passes. On success the caller hands over (stops
// accepting, drains, exits); on error the new process is gone and nothing
// changed here.
func (u *upgrader) start(socks []handover, timeout time.Duration) (pid int, err error) {
	if u.exe == "" {
		return 0, errors.New("the path of this binary is unknown")
	}
	sort.SliceStable(socks, func(i, j int) bool { return socks[i].key < socks[j].key })
	r, w, err := os.Pipe()
	if err != nil {
		return 0, fmt.Errorf("pipe: %w", err)
	}
	defer func() { _ = r.Close() }()
	// syscall.ForkExec, not os/exec: (*os.File).Fd, which os/exec calls on
	// ExtraFiles, puts a file in blocking mode, and the sockets' file
	// status is shared with the loops that accept from them.
	files := []uintptr{0, 1, 2, w.Fd()}
	byKey := map[string][]string{}
	var keys []string
	for _, h := range socks {
		if _, ok := byKey[h.key]; !ok {
			keys = append(keys, h.key)
		}
		byKey[h.key] = append(byKey[h.key], strconv.Itoa(len(files)))
		files = append(files, uintptr(h.fd))
	}
	var spec []string
	for _, k := range keys {
		spec = append(spec, k+"="+strings.Join(byKey[k], ","))
	}
	env := []string{envInherit + "=" + strings.Join(spec, ";"), envReadyFD + "=3",
		envQUICGen + "=" + strconv.Itoa(int(1-u.quicGen))}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, envInherit+"=") && !strings.HasPrefix(kv, envReadyFD+"=") &&
			!strings.HasPrefix(kv, envQUICGen+"=") {
			env = append(env, kv)
		}
	}
	pid, err = syscall.ForkExec(u.exe, u.args, &syscall.ProcAttr{Env: env, Files: files})
	_ = w.Close()
	if err != nil {
		return 0, fmt.Errorf("start %s: %w", u.exe, err)
	}
	proc, err := os.FindProcess(pid)
	if err != nil {
		return 0, fmt.Errorf("new process %d: %w", pid, err)
	}
	u.child.Store(proc)
	defer u.child.Store(nil)
	exited := make(chan error, 1)
	go func() {
		st, err := proc.Wait()
		if err == nil {
			err = fmt.Errorf("new process exited (%s) before it was ready", st)
		}
		exited <- err
	}()
	ready := make(chan error, 1)
	go func() {
		_ = r.SetReadDeadline(time.Now().Add(timeout))
		line, err := bufio.NewReader(r).ReadString('\n')
		if err == nil && strings.HasPrefix(line, "ready ") {
			ready <- nil
			return
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			err = fmt.Errorf("new process not ready within %s", timeout)
		} else if err == nil {
			err = fmt.Errorf("new process said %q", line)
		}
		ready <- err
	}()
	fail := func(err error) (int, error) {
		_ = proc.Kill()
		select {
		case xerr := <-exited: // killed: the exit matters only without a cause of our own
			if err == nil {
				err = xerr
			}
		case <-time.After(2 * time.Second):
		}
		return 0, err
	}
	select {
	case err := <-ready:
		if err != nil {
			select {
			case xerr := <-exited: // EOF because it exited: say how
				return 0, xerr
			case <-time.After(100 * time.Millisecond):
			}
			return fail(err)
		}
		return pid, nil
	case err := <-exited:
		return 0, err
	}
}

// abort kills the new process while it is still starting (this one is
// shutting down); start then reports the failure.
func (u *upgrader) abort() {
	if p := u.child.Load(); p != nil {
		_ = p.Kill()
	}
}

// sdNotify sends a state line to systemd when the service runs with
// Type=notify ($NOTIFY_SOCKET), e.g. "READY=1" or "MAINPID=123\nREADY=1".
func sdNotify(state string) {
	sock := os.Getenv("NOTIFY_SOCKET")
	if sock == "" {
		return
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		return
	}
	defer func() { _ = c.Close() }()
	_, _ = c.Write([]byte(state))
}

// writePIDFile writes the PID to path atomically (a temporary file, then
// rename).
func writePIDFile(path string) error {
	if path == "" {
		return nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".expressgateway-pid-")
	if err != nil {
		return fmt.Errorf("pid file: %w", err)
	}
	_, err = fmt.Fprintf(tmp, "%d\n", os.Getpid())
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("pid file: %w", err)
	}
	return nil
}

// removePIDFile removes path if it still names this process (after an
// upgrade it names the new one).
func removePIDFile(path string) {
	if path == "" {
		return
	}
	b, err := os.ReadFile(path)
	if err == nil && strings.TrimSpace(string(b)) == strconv.Itoa(os.Getpid()) {
		_ = os.Remove(path)
	}
}

// quicBusy says why an upgrade must wait while the process that started
// this one (parent, 0 if none) still drains: its h3 sockets share the
// ports, and one generation bit of the QUIC connection IDs can tell apart
// two processes, not three. Empty when the upgrade may go on.
func (u *upgrader) quicBusy(parent int, snap *conf.Snapshot) string {
	if parent <= 1 || os.Getppid() != parent {
		return "" // not started by an upgrade, or the predecessor has exited (we were reparented)
	}
	for i := range snap.Config.Listeners {
		if snap.Config.Listeners[i].Protocol == conf.ProtocolH3 {
			return fmt.Sprintf("the previous process (pid %d) still drains its HTTP/3 connections; upgrade again once it has exited", parent)
		}
	}
	return ""
}
