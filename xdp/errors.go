// SPDX-License-Identifier: GPL-3.0-only

package xdp

import "errors"

// Sentinel errors; test with errors.Is.
var (
	// ErrInvalidConfig wraps every configuration problem.
	ErrInvalidConfig = errors.New("xdp: invalid config")
	// ErrPermission means the process lacks root or CAP_BPF/CAP_NET_ADMIN.
	ErrPermission = errors.New("xdp: operation not permitted (needs root or CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON)")
	// ErrInterfaceNotFound means Config.Interface does not exist.
	ErrInterfaceNotFound = errors.New("xdp: interface not found")
	// ErrAttach means the program could not be attached in the requested mode.
	ErrAttach = errors.New("xdp: attach failed")
	// ErrUnsupported means the kernel lacks a feature the program needs.
	ErrUnsupported = errors.New("xdp: not supported by this kernel")
	// ErrClosed is returned by methods called after Close.
	ErrClosed = errors.New("xdp: load balancer closed")
	// ErrUnknownVIP means SetHealthy named a VIP that is not configured.
	ErrUnknownVIP = errors.New("xdp: unknown vip")
	// ErrUnknownBackend means SetHealthy named a backend the VIP does not have.
	ErrUnknownBackend = errors.New("xdp: unknown backend")
)
