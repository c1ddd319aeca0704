// SPDX-License-Identifier: GPL-3.0-only

package engine

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/VictoriaMetrics/metrics"
	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/expressgateway/expressgateway/conf"
)

// File descriptors. Every client connection, upstream connection and UDP
// session holds one, and the caps of the config can add up to more than
// RLIMIT_NOFILE allows: then accept and dial fail with EMFILE for everyone
// once the process runs out. At start the soft limit is raised as far as the
// hard limit allows and compared with what the caps may hold:
//
//   - an http listener's own cap needs one descriptor per client connection,
//     a tcp listener's two per pair (client and upstream), a udp listener's
//     one per session (its upstream socket); http and tcp caps count at most
//     engine.max_connections;
//   - the total is two per http or tcp client connection (up to
//     engine.max_connections over all of them), one per udp session, the
//     idle upstream pools of the clusters http routes use
//     (max_idle_per_endpoint × endpoints × event loops) and a margin for
//     listening sockets, pollers, health probes and the process itself.
//
// A listener whose own cap does not fit refuses the start; a total that does
// not fit is one warn line, and expressgateway_fd_budget shows it beside
// expressgateway_fd_limit.

// FDNeed is what one listener's own cap needs.
type FDNeed struct {
	Listener string
	Cap      int // max_connections
	Need     int // file descriptors
}

// FDPlan is what the caps of a config may hold at once.
type FDPlan struct {
	Listeners []FDNeed
	TCP       int // client connections of http and tcp listeners (each two descriptors)
	UDP       int // udp sessions
	Pooled    int // idle pooled upstream connections
	Margin    int
	Total     int
}

// PlanFDs works out the plan for cfg.
func PlanFDs(cfg *conf.Config) FDPlan {
	loops := cfg.Engine.EventLoops
	if loops <= 0 {
		loops = runtime.NumCPU()
	}
	global := cfg.Engine.MaxConnections
	var p FDPlan
	pooled := map[string]bool{}
	for _, l := range cfg.Listeners {
		n := FDNeed{Listener: l.Name, Cap: l.MaxConnections}
		switch l.Protocol {
		case conf.ProtocolUDP, conf.ProtocolQUICPassthrough:
			n.Need = l.MaxConnections
			p.UDP += l.MaxConnections
		case conf.ProtocolTCP:
			n.Need = 2 * min(l.MaxConnections, global)
			p.TCP += l.MaxConnections
		case conf.ProtocolHTTPS:
			// The TCP socket; while an exchange runs off the loop, also
			// the socketpair that bridges its plaintext (tls_conn.go).
			n.Need = 3 * min(l.MaxConnections, global)
			p.TCP += l.MaxConnections
			for _, r := range l.Routes {
				pooled[r.Cluster] = true
			}
		default:
			n.Need = min(l.MaxConnections, global)
			p.TCP += l.MaxConnections
			for _, r := range l.Routes {
				pooled[r.Cluster] = true
			}
		}
		p.Listeners = append(p.Listeners, n)
	}
	p.TCP = min(p.TCP, global)
	endpoints := 0
	for _, c := range cfg.Clusters {
		endpoints += len(c.Endpoints)
		if pooled[c.Name] {
			p.Pooled += c.MaxIdlePerEndpoint * len(c.Endpoints) * loops
		}
	}
	p.Margin = 64 + loops*(len(cfg.Listeners)+2) + endpoints
	p.Total = 2*p.TCP + p.UDP + p.Pooled + p.Margin
	return p
}

// RaiseFDLimit raises the soft RLIMIT_NOFILE to the hard limit and returns
// the soft limit in force.
func RaiseFDLimit() (uint64, error) {
	var r unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &r); err != nil {
		return 0, fmt.Errorf("getrlimit: %w", err)
	}
	if r.Cur < r.Max {
		want := r
		want.Cur = r.Max
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &want); err != nil {
			return r.Cur, fmt.Errorf("setrlimit: %w", err)
		}
		r = want
	}
	return r.Cur, nil
}

// CheckFDs raises the file-descriptor limit and checks the caps of cfg
// against it: an error when one listener's own cap cannot fit, a warn line
// when all of them together may not. It registers expressgateway_fd_budget
// and expressgateway_fd_limit in set, or updates them (a reload checks the
// config it is about to apply too).
func CheckFDs(cfg *conf.Config, log zerolog.Logger, set *metrics.Set) error {
	p := PlanFDs(cfg)
	limit, err := RaiseFDLimit()
	if err != nil {
		if limit == 0 {
			return err
		}
		log.Warn().Err(err).Uint64("fd_limit", limit).Msg("cannot raise the file-descriptor limit")
	}
	g := fdGaugesOf(set)
	g.budget.Store(uint64(p.Total))
	g.limit.Store(limit)
	for _, n := range p.Listeners {
		if uint64(n.Need) > limit {
			return fmt.Errorf("listener %s: max_connections = %d needs %d file descriptors, more than the limit of %d: raise the hard limit (ulimit -Hn, LimitNOFILE=) or lower max_connections",
				n.Listener, n.Cap, n.Need, limit)
		}
	}
	if uint64(p.Total) > limit {
		log.Warn().Uint64("fd_limit", limit).Int("fd_budget", p.Total).
			Int("tcp_connections", p.TCP).Int("udp_sessions", p.UDP).Int("pooled", p.Pooled).Int("margin", p.Margin).
			Msg("the connection and session caps together can exceed the file-descriptor limit: raise it (ulimit -Hn, LimitNOFILE=) or lower the caps")
	}
	return nil
}

// fdGauges are the values behind expressgateway_fd_budget and
// expressgateway_fd_limit of one metrics set, which every CheckFDs (start
// and reloads) updates.
type fdGauges struct{ budget, limit atomic.Uint64 }

var fdGaugeSets sync.Map // *metrics.Set → *fdGauges

func fdGaugesOf(set *metrics.Set) *fdGauges {
	if v, ok := fdGaugeSets.Load(set); ok {
		return v.(*fdGauges)
	}
	g := &fdGauges{}
	if v, loaded := fdGaugeSets.LoadOrStore(set, g); loaded {
		return v.(*fdGauges)
	}
	set.GetOrCreateGauge("expressgateway_fd_budget", func() float64 { return float64(g.budget.Load()) })
	set.GetOrCreateGauge("expressgateway_fd_limit", func() float64 { return float64(g.limit.Load()) })
	return g
}
