// SPDX-License-Identifier: GPL-3.0-only

package engine

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// The listening sockets are ours; gnet only polls them. gnet v2.9.7 binds
// its listeners itself, at engine start, and offers no way to add, remove
// or adopt one later, so each of our single-loop gnet engines is started
// on placeholder addresses and our sockets are grafted in place of gnet's:
//
//   - Graft (in OnBoot): gnet has created its placeholder listener fds but
//     not yet registered them with the loop's epoll (a reuse-port engine's
//     loop registers the engine's listener fds when it starts, after
//     OnBoot). Engine.DupListener names the placeholder's socket; its
//     inode finds gnet's fd number in /proc/self/fd; dup3(ours, gnet's)
//     makes that number refer to our socket, and the loop then registers
//     and accepts from it natively, with no extra hop or syscall per
//     connection.
//   - Ungraft (listener removed, shutdown, upgrade): epoll keeps watching a
//     socket as long as any fd in any process refers to it, so closing
//     gnet's fd is not enough once the socket was handed to a new process.
//     The loop's epoll fd is found in /proc/self/fdinfo (the entry whose
//     target is gnet's fd number and our socket's inode), the socket is
//     removed from it with EPOLL_CTL_DEL, and gnet's fd number is pointed
//     at an idle, non-blocking AF_UNIX socket on which accept(2) and
//     recvfrom(2) say EAGAIN: an event the loop fetched just before the
//     EPOLL_CTL_DEL then finds nothing, and gnet closes that placeholder
//     when the engine stops.
//
// This relies on gnet v2.9.7 internals (checked against its source):
// listener fds created before OnBoot and registered after it; an accept
// error other than EAGAIN/EINTR/ECONNRESET/ECONNABORTED ends the loop; the
// epoll event data is the fd number. The engine tests exercise each step.

// socketInode is the inode of the socket fd refers to.
func socketInode(fd int) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return 0, fmt.Errorf("fstat %d: %w", fd, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return 0, fmt.Errorf("fd %d is not a socket", fd)
	}
	return st.Ino, nil
}

// fdsOfInodes maps each wanted socket inode to an fd of this process that
// refers to it, skipping the fds in skip.
func fdsOfInodes(want map[uint64]bool, skip map[int]bool) (map[uint64]int, error) {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return nil, fmt.Errorf("list /proc/self/fd: %w", err)
	}
	out := make(map[uint64]int, len(want))
	for _, ent := range ents {
		fd, err := strconv.Atoi(ent.Name())
		if err != nil || skip[fd] {
			continue
		}
		link, err := os.Readlink("/proc/self/fd/" + ent.Name())
		if err != nil || !strings.HasPrefix(link, "socket:[") {
			continue
		}
		ino, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]"), 10, 64)
		if err == nil && want[ino] {
			out[ino] = fd
		}
	}
	return out, nil
}

// graftFD makes fd number gfd (gnet's) refer to our socket fd.
func graftFD(ours, gfd int) error {
	if err := unix.Dup3(ours, gfd, unix.O_CLOEXEC); err != nil {
		return fmt.Errorf("dup3 %d onto %d: %w", ours, gfd, err)
	}
	return nil
}

// epollOf finds the epoll fd of this process that watches fd number tfd
// referring to the socket with inode ino.
func epollOf(tfd int, ino uint64) (int, error) {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1, fmt.Errorf("list /proc/self/fd: %w", err)
	}
	wantTFD, wantIno := strconv.Itoa(tfd), "ino:"+strconv.FormatUint(ino, 16)
	for _, ent := range ents {
		link, err := os.Readlink("/proc/self/fd/" + ent.Name())
		if err != nil || link != "anon_inode:[eventpoll]" {
			continue
		}
		if epollWatches(ent.Name(), wantTFD, wantIno) {
			fd, _ := strconv.Atoi(ent.Name())
			return fd, nil
		}
	}
	return -1, fmt.Errorf("no epoll instance watches fd %d", tfd)
}

// epollWatches reads /proc/self/fdinfo/name: lines such as
// "tfd:        9 events:       19 data:                9  pos:0 ino:61a9 sdev:8".
func epollWatches(name, tfd, ino string) bool {
	f, err := os.Open("/proc/self/fdinfo/" + name)
	if err != nil {
		return false
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 2 || fs[0] != "tfd:" || fs[1] != tfd {
			continue
		}
		for _, w := range fs[2:] {
			if w == ino {
				return true
			}
		}
	}
	return false
}

var (
	idleOnce     sync.Once
	idleStream   = -1
	idleDatagram = -1
	idleErr      error
)

// idleSockets are the process's two AF_UNIX sockets that never have
// anything to accept or read: a listening stream socket and a datagram
// socket, both non-blocking and bound to kernel-chosen abstract names.
func idleSockets() (stream, dgram int, err error) {
	idleOnce.Do(func() {
		mk := func(typ int) (int, error) {
			fd, err := unix.Socket(unix.AF_UNIX, typ|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return -1, fmt.Errorf("socket: %w", err)
			}
			// An empty address autobinds to a unique abstract name.
			if err := unix.Bind(fd, &unix.SockaddrUnix{}); err != nil {
				closeFD(fd)
				return -1, fmt.Errorf("bind: %w", err)
			}
			if typ == unix.SOCK_STREAM {
				if err := unix.Listen(fd, 1); err != nil {
					closeFD(fd)
					return -1, fmt.Errorf("listen: %w", err)
				}
			}
			return fd, nil
		}
		if idleStream, idleErr = mk(unix.SOCK_STREAM); idleErr == nil {
			idleDatagram, idleErr = mk(unix.SOCK_DGRAM)
		}
		if idleErr != nil {
			idleErr = fmt.Errorf("idle placeholder socket: %w", idleErr)
		}
	})
	return idleStream, idleDatagram, idleErr
}

// ungraftFD stops epfd from watching gnet's fd number gfd and points gfd
// at an idle socket. epfd < 0 skips the EPOLL_CTL_DEL (not found).
func ungraftFD(epfd, gfd int, udp bool) error {
	var errs []error
	if epfd >= 0 {
		if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_DEL, gfd, nil); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("epoll_ctl del %d: %w", gfd, err))
		}
	}
	stream, dgram, err := idleSockets()
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	idle := stream
	if udp {
		idle = dgram
	}
	if err := unix.Dup3(idle, gfd, unix.O_CLOEXEC); err != nil {
		errs = append(errs, fmt.Errorf("dup3 onto %d: %w", gfd, err))
	}
	return errors.Join(errs...)
}

// listenSocket opens a non-blocking, close-on-exec listening socket (tcp)
// or bound datagram socket (udp) on addr, as gnet would: SO_REUSEADDR,
// TCP_NODELAY (accepted connections inherit it), SO_REUSEPORT when
// reusePort. A wildcard host binds IPv6 and IPv4 (dual stack) where the
// host has IPv6.
func listenSocket(udp bool, addr string, reusePort bool) (int, error) {
	network := "tcp"
	if udp {
		network = "udp"
	}
	var ip net.IP
	var port int
	if udp {
		a, err := net.ResolveUDPAddr(network, addr)
		if err != nil {
			return -1, err
		}
		ip, port = a.IP, a.Port
	} else {
		a, err := net.ResolveTCPAddr(network, addr)
		if err != nil {
			return -1, err
		}
		ip, port = a.IP, a.Port
	}
	if len(ip) == 0 || ip.IsUnspecified() && ip.To4() == nil {
		fd, err := listenFamily(unix.AF_INET6, udp, &unix.SockaddrInet6{Port: port}, reusePort, true)
		if err == nil || !errors.Is(err, unix.EAFNOSUPPORT) {
			return fd, err
		}
		return listenFamily(unix.AF_INET, udp, &unix.SockaddrInet4{Port: port}, reusePort, false)
	}
	if ip4 := ip.To4(); ip4 != nil {
		sa := &unix.SockaddrInet4{Port: port}
		copy(sa.Addr[:], ip4)
		return listenFamily(unix.AF_INET, udp, sa, reusePort, false)
	}
	sa := &unix.SockaddrInet6{Port: port}
	copy(sa.Addr[:], ip.To16())
	return listenFamily(unix.AF_INET6, udp, sa, reusePort, false)
}

func listenFamily(family int, udp bool, sa unix.Sockaddr, reusePort, dualStack bool) (fd int, err error) {
	typ, proto := unix.SOCK_STREAM, unix.IPPROTO_TCP
	if udp {
		typ, proto = unix.SOCK_DGRAM, unix.IPPROTO_UDP
	}
	fd, err = unix.Socket(family, typ|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, proto)
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	defer func() {
		if err != nil {
			closeFD(fd)
			fd = -1
		}
	}()
	set := func(level, opt, v int, name string) error {
		if err := unix.SetsockoptInt(fd, level, opt, v); err != nil {
			return fmt.Errorf("setsockopt %s: %w", name, err)
		}
		return nil
	}
	if dualStack {
		if err = set(unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0, "IPV6_V6ONLY"); err != nil {
			return
		}
	}
	if err = set(unix.SOL_SOCKET, unix.SO_REUSEADDR, 1, "SO_REUSEADDR"); err != nil {
		return
	}
	if reusePort {
		if err = set(unix.SOL_SOCKET, unix.SO_REUSEPORT, 1, "SO_REUSEPORT"); err != nil {
			return
		}
	}
	if !udp {
		if err = set(unix.IPPROTO_TCP, unix.TCP_NODELAY, 1, "TCP_NODELAY"); err != nil {
			return
		}
	}
	if err = unix.Bind(fd, sa); err != nil {
		return fd, fmt.Errorf("bind: %w", err)
	}
	if !udp {
		if err = unix.Listen(fd, listenBacklog()); err != nil {
			return fd, fmt.Errorf("listen: %w", err)
		}
	}
	return fd, nil
}

// listenBacklog is net.core.somaxconn, as Go and gnet use.
func listenBacklog() int {
	b, err := os.ReadFile("/proc/sys/net/core/somaxconn")
	if err != nil {
		return unix.SOMAXCONN
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || n <= 0 {
		return unix.SOMAXCONN
	}
	return min(n, 1<<16-1)
}

// adoptSocket checks that fd, inherited from the process being upgraded,
// is a socket of the expected kind (a listening stream socket, or a
// datagram socket) and marks it close-on-exec and non-blocking.
func adoptSocket(fd int, udp bool) error {
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return fmt.Errorf("inherited fd %d: %w", fd, err)
	}
	want := unix.SOCK_STREAM
	if udp {
		want = unix.SOCK_DGRAM
	}
	if typ != want {
		return fmt.Errorf("inherited fd %d: socket type %d, want %d", fd, typ, want)
	}
	if !udp {
		if on, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN); err != nil || on != 1 {
			return fmt.Errorf("inherited fd %d is not listening", fd)
		}
	}
	unix.CloseOnExec(fd)
	if err := unix.SetNonblock(fd, true); err != nil {
		return fmt.Errorf("inherited fd %d: %w", fd, err)
	}
	return nil
}

// reusesPort reports whether fd has SO_REUSEPORT, so that more sockets
// can join its group.
func reusesPort(fd int) bool {
	v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT)
	return err == nil && v == 1
}

func closeFD(fd int) { _ = unix.Close(fd) }
