// SPDX-License-Identifier: GPL-3.0-only

//go:build !linux

package xdp

import (
	"fmt"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/rs/zerolog"
)

// XDP exists only on Linux; elsewhere Load reports ErrUnsupported so the
// caller falls back to the userspace L4 path. The API matches lb_linux.go.

// Option tunes Load.
type Option func(*options)

type options struct{}

// WithMetrics exports the expressgateway_xdp_* families into s.
func WithMetrics(s *metrics.Set) Option { return func(*options) {} }

// WithStatsInterval sets how often the counters are read into the metrics set.
func WithStatsInterval(d time.Duration) Option { return func(*options) {} }

// WithLogger sets the logger for attach, update and health events.
func WithLogger(l zerolog.Logger) Option { return func(*options) {} }

// LB is a loaded and attached XDP load balancer (never, off Linux).
type LB struct{}

// Load always fails off Linux.
func Load(cfg Config, opts ...Option) (*LB, error) {
	return nil, fmt.Errorf("%w: xdp needs linux", ErrUnsupported)
}

// Mode reports the attach mode in effect.
func (l *LB) Mode() string { return "" }

// Update applies a new configuration.
func (l *LB) Update(cfg Config) error { return ErrClosed }

// SetHealthy marks a backend healthy or not.
func (l *LB) SetHealthy(vip, backend string, ok bool) error { return ErrClosed }

// Stats reads the counters now.
func (l *LB) Stats() (Stats, error) { return Stats{}, ErrClosed }

// CollectStats reads the counters into the metrics set.
func (l *LB) CollectStats() error { return ErrClosed }

// Close detaches the program.
func (l *LB) Close() error { return nil }
