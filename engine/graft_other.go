// SPDX-License-Identifier: GPL-3.0-only

//go:build !linux

package engine

import (
	"errors"
	"syscall"
)

// The engine grafts its own listening sockets into gnet's loops through
// /proc/self/fd, /proc/self/fdinfo and epoll (graft_linux.go): Linux only.
var errNeedsLinux = errors.New("engine: listeners need Linux (/proc and epoll)")

func socketInode(int) (uint64, error)                                   { return 0, errNeedsLinux }
func fdsOfInodes(map[uint64]bool, map[int]bool) (map[uint64]int, error) { return nil, errNeedsLinux }
func graftFD(int, int) error                                            { return errNeedsLinux }
func epollOf(int, uint64) (int, error)                                  { return -1, errNeedsLinux }
func ungraftFD(int, int, bool) error                                    { return errNeedsLinux }
func listenSocket(bool, string, bool) (int, error)                      { return -1, errNeedsLinux }
func adoptSocket(int, bool) error                                       { return errNeedsLinux }
func reusesPort(int) bool                                               { return false }
func closeFD(fd int)                                                    { _ = syscall.Close(fd) }
