// SPDX-License-Identifier: GPL-3.0-only

package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/rs/zerolog"

	"github.com/expressgateway/expressgateway/conf"
	"github.com/expressgateway/expressgateway/engine"
	"github.com/expressgateway/expressgateway/lb"
)

// haNode is a gateway node of an HA group on etcd (control_plane.backend
// = "etcd"). It
//
//   - watches PREFIX/config and hands every new document to the reloader,
//     the same path as SIGHUP (a bad document is refused there, counted
//     and logged, and the running config stays);
//   - holds a lease with PREFIX/nodes/ID attached (GET /nodes lists the
//     live nodes), registering again whenever the lease is lost;
//   - publishes under the same lease, as PREFIX/health/ID, the endpoints
//     its own checks see down, and marks down on this node every endpoint
//     that any other live node reports down (the shared view: see
//     applyReports for why "any");
//   - follows the membership: the live nodes' zones are the fleet that
//     zone-aware routing plans with (the same plan on every node);
//   - pings the store every second: expressgateway_control_plane_connected
//     and one log line per change of state; when the store comes back it
//     reads the document and the reports again, so nothing written
//     meanwhile is missed.
//
// Losing the store changes nothing that serves: the last good config and
// the last shared view stay in use, and /readyz stays ready.
type haNode struct {
	st       *conf.EtcdStore
	cp       conf.ControlPlane
	id       string
	since    time.Time
	rl       *reloader
	clusters *engine.Clusters
	log      zerolog.Logger

	connected atomic.Bool
	lease     atomic.Pointer[conf.Lease]
	republish chan struct{} // asks the publisher to write its report again

	mu        sync.Mutex
	reports   map[string]conf.HealthReport // the other nodes' last reports; guarded by mu
	badSeen   map[string]bool              // nodes whose report was not JSON last time; guarded by mu
	fleet     map[lb.Locality]float64      // live nodes per locality; guarded by mu
	peerDown  atomic.Int64                 // endpoints down in the shared view only
	published atomic.Pointer[string]       // the report last written

	errs map[string]*metrics.Counter // by op
}

// haOps are the op labels of expressgateway_control_plane_errors_total.
var haOps = []string{"ping", "watch", "register", "lease_lost", "publish", "bad_report"}

func newHANode(st *conf.EtcdStore, cp conf.ControlPlane, rl *reloader, clusters *engine.Clusters,
	log zerolog.Logger, set *metrics.Set) (*haNode, error) {
	id := cp.NodeID
	if id == "" {
		host, err := os.Hostname()
		if err != nil {
			return nil, err
		}
		if !conf.ValidNodeID(host) {
			return nil, errors.New("control_plane.node_id: the host name " + host + " cannot name a node; set node_id")
		}
		id = host
	}
	h := &haNode{st: st, cp: cp, id: id, since: time.Now().UTC().Truncate(time.Second), rl: rl, clusters: clusters,
		log: log.With().Str("node_id", id).Logger(), republish: make(chan struct{}, 1),
		reports: map[string]conf.HealthReport{}, badSeen: map[string]bool{}, errs: map[string]*metrics.Counter{}}
	h.connected.Store(true) // the start read the document from the store
	set.NewGauge("expressgateway_control_plane_connected", func() float64 {
		if h.connected.Load() {
			return 1
		}
		return 0
	})
	set.NewGauge("expressgateway_shared_health_peer_down_endpoints", func() float64 { return float64(h.peerDown.Load()) })
	for _, op := range haOps {
		h.errs[op] = set.NewCounter(`expressgateway_control_plane_errors_total{op="` + op + `"}`)
	}
	return h, nil
}

// run starts the loops; they end with ctx, the membership lease revoked
// (the node leaves /nodes at once). wait returns when they have.
func (h *haNode) run(ctx context.Context) (wait func()) {
	var wg sync.WaitGroup
	for _, f := range []func(context.Context){h.watchConfig, h.member, h.publish, h.watchHealth, h.watchMembers, h.ping} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(ctx)
		}()
	}
	return wg.Wait
}

// count counts a failed control-plane request and logs it, unless the
// store is known to be unreachable: the ping's one line covers an outage,
// and the loops retrying every second would repeat it.
func (h *haNode) count(op string, err error, msg string) {
	h.errs[op].Inc()
	if h.connected.Load() {
		h.log.Warn().Err(err).Str("op", op).Msg(msg)
	}
}

// badReports counts and logs the reports that are not valid JSON; a node
// whose report stays bad is logged once, not on every change of another.
func (h *haNode) badReports(bad []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := make(map[string]bool, len(bad))
	for _, id := range bad {
		now[id] = true
		h.errs["bad_report"].Inc()
		if !h.badSeen[id] {
			h.log.Warn().Str("op", "bad_report").Str("reporter", id).
				Msg("control plane: a node's health report is not valid JSON; ignored")
		}
	}
	h.badSeen = now
}

func (h *haNode) watchConfig(ctx context.Context) {
	h.st.WatchConfig(ctx, func(data []byte) { h.rl.offer("etcd", data) },
		func(err error) { h.count("watch", err, "control plane: config watch broken; reading again") })
}

// member keeps this node registered.
func (h *haNode) member(ctx context.Context) {
	m := conf.Member{ID: h.id, Since: h.since, Zone: h.cp.Zone, Region: h.cp.Region}
	failing := false
	for ctx.Err() == nil {
		l, err := h.st.Register(ctx, m, h.cp.LeaseTTL.Std())
		if err != nil {
			h.errs["register"].Inc()
			if !failing {
				h.log.Error().Err(err).Msg("control plane: cannot register this node; retrying every second")
				failing = true
			}
			if !sleep(ctx, time.Second) {
				return
			}
			continue
		}
		if failing {
			h.log.Info().Msg("control plane: node registered again")
		}
		failing = false
		h.lease.Store(l)
		h.kick()
		select {
		case <-l.Lost():
			h.lease.Store(nil)
			h.count("lease_lost", nil, "control plane: membership lease lost; registering again")
		case <-ctx.Done():
			bg, cancel := context.WithTimeout(context.Background(), h.cp.RequestTimeout.Std())
			if err := l.Close(bg); err != nil {
				h.log.Warn().Err(err).Msg("control plane: lease not revoked; the node leaves when it expires")
			}
			cancel()
			return
		}
	}
}

func (h *haNode) kick() {
	select {
	case h.republish <- struct{}{}:
	default:
	}
}

// localReport lists what this node's own checks hold down, sorted.
func (h *haNode) localReport() conf.HealthReport {
	r := conf.HealthReport{Down: map[string][]string{}}
	for _, c := range h.clusters.All() {
		for _, e := range c.LB.Endpoints() {
			if !e.LocallyHealthy() {
				r.Down[c.Name] = append(r.Down[c.Name], e.Address())
			}
		}
	}
	for _, v := range r.Down {
		sort.Strings(v)
	}
	return r
}

// publish writes this node's report whenever it changes (checked every
// 200ms) and after each new lease.
func (h *haNode) publish(ctx context.Context) {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	force := true
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-h.republish:
			force = true
		}
		l := h.lease.Load()
		if l == nil {
			continue
		}
		r := h.localReport()
		b, err := json.Marshal(r)
		if err != nil {
			continue
		}
		s := string(b)
		if last := h.published.Load(); !force && last != nil && *last == s {
			continue
		}
		if err := l.PutHealth(ctx, r); err != nil {
			if !force {
				h.count("publish", err, "control plane: health report not written; trying again")
			} else {
				h.errs["publish"].Inc()
			}
			force = true // again at the next tick, logged once per streak
			continue
		}
		h.published.Store(&s)
		force = false
	}
}

func (h *haNode) watchHealth(ctx context.Context) {
	h.st.WatchHealth(ctx, func(reports map[string]conf.HealthReport, bad []string) {
		h.setReports(reports, bad)
	}, func(err error) { h.count("watch", err, "control plane: health watch broken; reading again") })
}

// setReports takes the live nodes' reports (this node's own is dropped)
// and applies them.
func (h *haNode) setReports(reports map[string]conf.HealthReport, bad []string) {
	h.badReports(bad)
	delete(reports, h.id)
	h.mu.Lock()
	h.reports = reports
	h.mu.Unlock()
	h.applyReports()
}

// watchMembers follows the live nodes: their spread over the zones is the
// fleet zone-aware routing plans with (lb.Cluster.SetFleet), the same on
// every node.
func (h *haNode) watchMembers(ctx context.Context) {
	h.st.WatchMembers(ctx, func(ms []conf.Member) {
		fleet := make(map[lb.Locality]float64, len(ms))
		for _, m := range ms {
			fleet[lb.Locality{Region: m.Region, Zone: m.Zone}]++
		}
		h.mu.Lock()
		h.fleet = fleet
		h.mu.Unlock()
		h.applyFleet()
	}, func(err error) { h.count("watch", err, "control plane: membership watch broken; reading again") })
}

// applyFleet gives every cluster the fleet last seen; after each change of
// the membership and after every reload.
func (h *haNode) applyFleet() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.fleet == nil {
		return
	}
	for _, c := range h.clusters.All() {
		c.LB.SetFleet(h.fleet)
	}
}

// afterReload re-applies the shared view and the fleet to the clusters a
// reload built.
func (h *haNode) afterReload() {
	h.applyReports()
	h.applyFleet()
}

// applyReports marks down every endpoint that another live node reports
// down, and clears the mark from the others. The rule is "any node": an
// endpoint is down in the shared view when at least one live node's own
// checks hold it down. With that rule a node's own view is always
// contained in the shared one, so once the reports have spread every
// node holds exactly the same set down — without ever routing to an
// endpoint its own checks see failing, which a majority rule would
// require (a node in the minority would have to override its own probe).
// Identical down sets give identical pick sets and Maglev tables (L7 and
// XDP) on every node. The cost is that one node with a broken path takes
// an endpoint out for all; the panic threshold still bounds how much of a
// cluster that can remove, and the node's report shows which node it is.
// It runs after every change of the reports and after every reload (new
// clusters and endpoints start healthy).
func (h *haNode) applyReports() {
	h.mu.Lock()
	defer h.mu.Unlock()
	down := map[string]map[string]bool{}
	for _, r := range h.reports {
		for cl, addrs := range r.Down {
			if down[cl] == nil {
				down[cl] = map[string]bool{}
			}
			for _, a := range addrs {
				down[cl][a] = true
			}
		}
	}
	var n int64
	for _, c := range h.clusters.All() {
		for _, e := range c.LB.Endpoints() {
			d := down[c.Name][e.Address()]
			c.LB.SetPeerDown(e.Address(), d)
			if d && e.LocallyHealthy() {
				n++
			}
		}
	}
	h.peerDown.Store(n)
}

// ping checks the store every second and resyncs when it comes back.
func (h *haNode) ping(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := h.st.Ping(ctx)
		if ctx.Err() != nil {
			return
		}
		was := h.connected.Load()
		switch {
		case err != nil && was:
			h.connected.Store(false)
			h.errs["ping"].Inc()
			h.log.Error().Err(err).Strs("endpoints", h.cp.Endpoints).
				Msg("control plane unreachable: the running config and the last shared health view stay in use")
		case err != nil:
			h.errs["ping"].Inc()
		case !was:
			h.connected.Store(true)
			h.log.Info().Msg("control plane reachable again: reading the config and the shared health")
			if data, err := h.st.Load(ctx); err == nil {
				h.rl.offer("etcd", data)
			} else {
				h.log.Warn().Err(err).Msg("control plane: config not read after reconnecting")
			}
			h.kick()
			if reports, _, bad, err := h.st.HealthReports(ctx); err == nil {
				h.setReports(reports, bad)
			}
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// nodeView is one row of GET /nodes.
type nodeView struct {
	ID     string `json:"id"`
	Since  string `json:"since"`
	Zone   string `json:"zone"`
	Region string `json:"region"`
	Self   bool   `json:"self"`
}

// handleNodes serves GET /nodes: the live nodes, read from the store
// (503 with a JSON error when it cannot be read).
func (h *haNode) handleNodes(mux *http.ServeMux) {
	mux.HandleFunc("/nodes", func(w http.ResponseWriter, r *http.Request) {
		ms, err := h.st.Members(r.Context())
		if err != nil {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": "control plane unreachable: " + err.Error()})
			return
		}
		out := make([]nodeView, 0, len(ms))
		for _, m := range ms {
			out = append(out, nodeView{ID: m.ID, Since: m.Since.UTC().Format(time.RFC3339), Zone: m.Zone, Region: m.Region, Self: m.ID == h.id})
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	})
}

// handleDebug serves GET /debug/health: this node's own report and the
// other live nodes' last reports, as the shared view is built from them.
func (h *haNode) handleDebug(mux *http.ServeMux) {
	mux.HandleFunc("/debug/health", func(w http.ResponseWriter, _ *http.Request) {
		h.mu.Lock()
		peers := make(map[string]conf.HealthReport, len(h.reports))
		for id, r := range h.reports {
			peers[id] = r
		}
		h.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(struct {
			Node      string                       `json:"node_id"`
			Connected bool                         `json:"connected"`
			Local     conf.HealthReport            `json:"local"`
			Peers     map[string]conf.HealthReport `json:"peers"`
		}{h.id, h.connected.Load(), h.localReport(), peers})
	})
}

// handleZones serves GET /debug/zones: for every cluster routing
// zone-aware, the share of each "region/zone" per priority level
// (lb.Cluster.ZoneShares).
func handleZones(mux *http.ServeMux, clusters *engine.Clusters) {
	mux.HandleFunc("/debug/zones", func(w http.ResponseWriter, _ *http.Request) {
		out := map[string]map[int]map[string]float64{}
		for _, c := range clusters.All() {
			if sh := c.LB.ZoneShares(); sh != nil {
				out[c.Name] = sh
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	})
}

// handleMaglev serves GET /debug/maglev: for every maglev cluster the
// SHA-256 of the L7 lookup tables in use (lb.Cluster.MaglevDigest), and
// for every XDP VIP the SHA-256 of the Maglev table the XDP loader builds
// from the same config and the same health (the backend owning each slot,
// by address). Nodes whose digests are equal send each flow to the same
// endpoint.
func handleMaglev(mux *http.ServeMux, rl *reloader, clusters *engine.Clusters) {
	mux.HandleFunc("/debug/maglev", func(w http.ResponseWriter, _ *http.Request) {
		out := struct {
			L7  map[string]string `json:"clusters"`
			XDP map[string]string `json:"xdp_vips"`
		}{map[string]string{}, map[string]string{}}
		for _, c := range clusters.All() {
			if d := c.LB.MaglevDigest(); d != "" {
				out.L7[c.Name] = d
			}
		}
		if xc, err := xdpConfig(rl.snapshot(), clusters.Healthy); err == nil {
			for _, v := range xc.VIPs {
				out.XDP[v.Name] = xdpTableDigest(v)
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	})
}
