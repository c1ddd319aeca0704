// SPDX-License-Identifier: GPL-3.0-only

//go:build linux

package xdp

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"
)

// Option tunes Load.
type Option func(*options)

type options struct {
	metrics       *metrics.Set
	statsInterval time.Duration
	log           zerolog.Logger
}

// WithMetrics exports the expressgateway_xdp_* families into s.
func WithMetrics(s *metrics.Set) Option { return func(o *options) { o.metrics = s } }

// WithStatsInterval sets how often the per-CPU counters are read into the
// metrics set (default 5s; 0 disables the background reader, CollectStats
// still works).
func WithStatsInterval(d time.Duration) Option { return func(o *options) { o.statsInterval = d } }

// WithLogger sets the logger for attach, update and health events.
func WithLogger(l zerolog.Logger) Option { return func(o *options) { o.log = l } }

// LB is a loaded and attached XDP load balancer. All methods are safe for
// concurrent use.
type LB struct {
	mu     sync.Mutex
	objs   lbObjects
	link   link.Link
	mode   string // the attach mode in effect: "native" or "generic"
	cfg    Config
	closed bool
	log    zerolog.Logger

	vips     map[string]*vipState
	freeVIPs []uint32
	nextVIP  uint32
	slots    slotAllocator
	addrs    map[lbAddrKey]uint32
	deny     map[denyKey]bool
	gen      uint32

	exp  *exporter
	stop chan struct{}
	done chan struct{}
}

type vipState struct {
	id       uint32
	spec     VIP
	key      lbVipKey
	backends []*backendState
	byName   map[string]*backendState
}

type backendState struct {
	spec    Backend
	slot    uint32
	healthy bool
}

// Load validates cfg, loads the program, fills its maps and attaches it to
// cfg.Interface. Errors wrap ErrInvalidConfig, ErrInterfaceNotFound,
// ErrPermission, ErrUnsupported or ErrAttach where they apply.
func Load(cfg Config, opts ...Option) (*LB, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	ifc, err := net.InterfaceByName(cfg.Interface)
	if err != nil {
		return nil, fmt.Errorf("%w: %q: %w", ErrInterfaceNotFound, cfg.Interface, err)
	}
	l, err := newLB(cfg, opts...)
	if err != nil {
		return nil, err
	}
	if err := l.attach(ifc.Index); err != nil {
		l.closeObjects()
		return nil, err
	}
	l.exp.setAttached(cfg.Interface, l.mode, true)
	l.log.Info().Str("interface", cfg.Interface).Str("mode", l.mode).Int("vips", len(cfg.VIPs)).Msg("xdp attached")
	l.startStats()
	return l, nil
}

// newLB loads the objects and fills the maps without attaching; the
// BPF_PROG_TEST_RUN fixtures use it directly.
func newLB(cfg Config, opts ...Option) (*LB, error) {
	o := options{statsInterval: 5 * time.Second, log: zerolog.Nop()}
	for _, opt := range opts {
		opt(&o)
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, classify("remove memlock", err)
	}
	spec, err := loadLb()
	if err != nil {
		return nil, fmt.Errorf("load bpf spec: %w", err)
	}
	// One entry per direction of a NAT flow.
	spec.Maps["flows"].MaxEntries = uint32(2 * cfg.ConntrackSize)
	l := &LB{
		cfg:   cfg,
		log:   o.log,
		vips:  make(map[string]*vipState),
		slots: newSlotAllocator(MaxBackends),
		addrs: make(map[lbAddrKey]uint32),
		deny:  make(map[denyKey]bool),
		exp:   newExporter(o.metrics),
	}
	if err := spec.LoadAndAssign(&l.objs, nil); err != nil {
		return nil, classify("load bpf objects", err)
	}
	l.exp.interval = o.statsInterval
	if err := l.apply(cfg); err != nil {
		l.closeObjects()
		return nil, err
	}
	return l, nil
}

// classify wraps err with the sentinel a caller can act on.
func classify(what string, err error) error {
	switch {
	case errors.Is(err, unix.EPERM):
		return fmt.Errorf("%s: %w: %w", what, ErrPermission, err)
	case errors.Is(err, ebpf.ErrNotSupported):
		return fmt.Errorf("%s: %w: %w", what, ErrUnsupported, err)
	default:
		return fmt.Errorf("%s: %w", what, err)
	}
}

func (l *LB) attach(ifindex int) error {
	try := func(flags link.XDPAttachFlags) (link.Link, error) {
		return link.AttachXDP(link.XDPOptions{Program: l.objs.XdpLb, Interface: ifindex, Flags: flags})
	}
	var err error
	switch l.cfg.AttachMode {
	case AttachNative, AttachAuto:
		if l.link, err = try(link.XDPDriverMode); err == nil {
			l.mode = AttachNative
			return nil
		}
		if l.cfg.AttachMode == AttachNative || errors.Is(err, unix.EPERM) {
			break
		}
		l.log.Warn().Err(err).Str("interface", l.cfg.Interface).Msg("native xdp failed, falling back to generic")
		fallthrough
	case AttachGeneric:
		if l.link, err = try(link.XDPGenericMode); err == nil {
			l.mode = AttachGeneric
			return nil
		}
	}
	if errors.Is(err, unix.EPERM) {
		return fmt.Errorf("attach xdp to %s: %w: %w", l.cfg.Interface, ErrPermission, err)
	}
	return fmt.Errorf("attach xdp to %s (%s): %w: %w", l.cfg.Interface, l.cfg.AttachMode, ErrAttach, err)
}

// Mode reports the attach mode in effect: "native" or "generic".
func (l *LB) Mode() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mode
}

// Update applies a new configuration. Each VIP's Maglev table is replaced
// atomically; established flows keep their backend through conntrack
// (unless that backend became unhealthy). Removed backends drain: their
// established flows continue, new flows go elsewhere. The interface,
// attach mode and conntrack size cannot change without a new Load.
func (l *LB) Update(cfg Config) error {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		l.exp.update(false)
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	if cfg.Interface != l.cfg.Interface || cfg.AttachMode != l.cfg.AttachMode || cfg.ConntrackSize != l.cfg.ConntrackSize {
		l.exp.update(false)
		return fmt.Errorf("%w: interface, attach mode and conntrack size need a restart", ErrInvalidConfig)
	}
	err := l.apply(cfg)
	l.exp.update(err == nil)
	if err != nil {
		l.log.Error().Err(err).Msg("xdp update failed")
		return err
	}
	l.log.Info().Int("vips", len(cfg.VIPs)).Msg("xdp updated")
	return nil
}

// SetHealthy marks a backend of a VIP healthy or not and swaps the VIP's
// Maglev table accordingly.
func (l *LB) SetHealthy(vip, backend string, ok bool) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	v := l.vips[vip]
	if v == nil {
		return fmt.Errorf("%w: %q", ErrUnknownVIP, vip)
	}
	b := v.byName[backend]
	if b == nil {
		return fmt.Errorf("%w: %q in vip %q", ErrUnknownBackend, backend, vip)
	}
	if b.healthy == ok {
		return nil
	}
	b.healthy = ok
	if err := l.writeBackend(b); err != nil {
		return err
	}
	if err := l.writeTable(v); err != nil {
		return err
	}
	l.exp.setHealthy(vip, backend, ok)
	l.log.Info().Str("vip", vip).Str("backend", backend).Bool("healthy", ok).Msg("xdp backend health")
	return nil
}

// Close detaches the program and frees its maps. Safe to call twice.
func (l *LB) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	stop, done := l.stop, l.done
	l.mu.Unlock()
	if stop != nil {
		close(stop)
		<-done
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	var err error
	if l.link != nil {
		if e := l.link.Close(); e != nil {
			err = fmt.Errorf("detach xdp: %w", e)
		}
		l.exp.setAttached(l.cfg.Interface, l.mode, false)
		l.log.Info().Str("interface", l.cfg.Interface).Msg("xdp detached")
	}
	l.closeObjects()
	l.exp.unregisterAll()
	return err
}

func (l *LB) closeObjects() {
	_ = l.objs.Close()
}

func (l *LB) startStats() {
	if l.exp.interval <= 0 || l.exp.set == nil {
		return
	}
	l.stop = make(chan struct{})
	l.done = make(chan struct{})
	go func() {
		defer close(l.done)
		t := time.NewTicker(l.exp.interval)
		defer t.Stop()
		for {
			select {
			case <-l.stop:
				return
			case <-t.C:
				if err := l.CollectStats(); err != nil {
					l.log.Warn().Err(err).Msg("xdp stats")
				}
			}
		}
	}()
}
