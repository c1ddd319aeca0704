// SPDX-License-Identifier: GPL-3.0-only

package conf

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

// The etcd key layout, under control_plane.prefix (PREFIX):
//
//	PREFIX/config       the config document (TOML), written by `config push`
//	PREFIX/nodes/ID     a live node: JSON Member, attached to the node's lease
//	PREFIX/health/ID    the endpoints node ID sees down: JSON HealthReport,
//	                    attached to the same lease
//
// A node that stops renewing its lease (killed, partitioned) loses both of
// its keys when the lease expires, so its membership and its health
// opinions go together.
const (
	keyConfig = "/config"
	dirNodes  = "/nodes/"
	dirHealth = "/health/"
)

// EtcdStore is the etcd backend of Store, plus membership and shared
// health. Safe for concurrent use.
type EtcdStore struct {
	cli     *clientv3.Client
	prefix  string
	timeout time.Duration
}

// OpenEtcd connects to the etcd cluster cp names, as control_plane.username
// when set. It does not wait for a connection: the first request does,
// within control_plane.request_timeout.
func OpenEtcd(cp ControlPlane) (*EtcdStore, error) {
	var password string
	if cp.Username != "" {
		var err error
		if password, err = ReadPassword(cp.PasswordFile); err != nil {
			return nil, fmt.Errorf("control_plane.password_file: %w", err)
		}
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   cp.Endpoints,
		Username:    cp.Username,
		Password:    password,
		DialTimeout: cp.RequestTimeout.Std(),
		// The client retries on its own; its log would repeat what the
		// gateway's own lines (and expressgateway_control_plane_connected)
		// say once.
		Logger: zap.NewNop(),
		// gRPC's own reconnect backoff grows to two minutes: after a long
		// outage a node would wait that long to notice etcd is back. Cap
		// it at 2s so nodes catch up within seconds of its return.
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second},
			MinConnectTimeout: cp.RequestTimeout.Std(),
		})},
	})
	if err != nil {
		return nil, fmt.Errorf("etcd %s: %w", strings.Join(cp.Endpoints, ","), err)
	}
	return &EtcdStore{cli: cli, prefix: cp.Prefix, timeout: cp.RequestTimeout.Std()}, nil
}

// Name is "etcd:PREFIX/config".
func (s *EtcdStore) Name() string { return "etcd:" + s.prefix + keyConfig }

// Prefix is control_plane.prefix.
func (s *EtcdStore) Prefix() string { return s.prefix }

func (s *EtcdStore) bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout)
}

// Load returns the stored document, ErrNoConfig when there is none.
func (s *EtcdStore) Load(ctx context.Context) ([]byte, error) {
	data, _, err := s.load(ctx)
	return data, err
}

func (s *EtcdStore) load(ctx context.Context) ([]byte, int64, error) {
	ctx, cancel := s.bounded(ctx)
	defer cancel()
	resp, err := s.cli.Get(ctx, s.prefix+keyConfig)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", s.Name(), err)
	}
	if len(resp.Kvs) == 0 {
		return nil, resp.Header.Revision, fmt.Errorf("%s: %w", s.Name(), ErrNoConfig)
	}
	return resp.Kvs[0].Value, resp.Header.Revision, nil
}

// Save stores data as the document.
func (s *EtcdStore) Save(ctx context.Context, data []byte) error {
	_, err := s.SaveRevision(ctx, data)
	return err
}

// SaveRevision is Save that also returns the etcd revision of the write.
func (s *EtcdStore) SaveRevision(ctx context.Context, data []byte) (int64, error) {
	ctx, cancel := s.bounded(ctx)
	defer cancel()
	resp, err := s.cli.Put(ctx, s.prefix+keyConfig, string(data))
	if err != nil {
		return 0, fmt.Errorf("%s: %w", s.Name(), err)
	}
	return resp.Header.Revision, nil
}

// Ping reads from the cluster with quorum (a linearizable read), so it
// fails when the members this client reaches have no leader, not only when
// none answers.
func (s *EtcdStore) Ping(ctx context.Context) error {
	ctx, cancel := s.bounded(ctx)
	defer cancel()
	if _, err := s.cli.Get(ctx, s.prefix+keyConfig, clientv3.WithCountOnly()); err != nil {
		return fmt.Errorf("etcd: %w", err)
	}
	return nil
}

// Close closes the client.
func (s *EtcdStore) Close() error { return s.cli.Close() }

// WatchConfig calls fn with the stored document now and each time it is
// written, until ctx ends. A deleted document is not passed on (a node
// keeps the config it runs). When the watch breaks (no leader, a compacted
// revision) it starts again after a second from a fresh read, so nothing
// written meanwhile is missed; onErr, when set, hears why.
func (s *EtcdStore) WatchConfig(ctx context.Context, fn func(data []byte), onErr func(error)) {
	key := s.prefix + keyConfig
	s.watchLoop(ctx, key, false, func() (int64, error) {
		data, rev2, err := s.load(ctx)
		if errors.Is(err, ErrNoConfig) {
			return rev2, nil
		}
		if err != nil {
			return 0, err
		}
		fn(data)
		return rev2, nil
	}, func(evs []*clientv3.Event) {
		for _, ev := range evs {
			if ev.Type == clientv3.EventTypePut {
				fn(ev.Kv.Value)
			}
		}
	}, onErr)
}

// watchLoop runs sync (a full read, returning its revision) and then a
// watch from the next revision, calling each with the events of every
// watch response; it starts
// over after an error until ctx ends.
func (s *EtcdStore) watchLoop(ctx context.Context, key string, prefix bool, sync func() (int64, error),
	each func([]*clientv3.Event), onErr func(error)) {
	report := func(err error) {
		if onErr != nil && ctx.Err() == nil {
			onErr(err)
		}
	}
	for ctx.Err() == nil {
		rev, err := sync()
		if err != nil {
			report(err)
			if !sleepCtx(ctx, time.Second) {
				return
			}
			continue
		}
		opts := []clientv3.OpOption{clientv3.WithRev(rev + 1)}
		if prefix {
			opts = append(opts, clientv3.WithPrefix())
		}
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		for resp := range s.cli.Watch(wctx, key, opts...) {
			if err := resp.Err(); err != nil {
				report(fmt.Errorf("etcd watch %s: %w", key, err))
				break
			}
			if len(resp.Events) > 0 {
				each(resp.Events)
			}
		}
		cancel()
		if !sleepCtx(ctx, time.Second) {
			return
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Member is one live node, the value of PREFIX/nodes/ID.
type Member struct {
	ID     string    `json:"id"`
	Since  time.Time `json:"since"`
	Zone   string    `json:"zone"`
	Region string    `json:"region"`
}

// HealthReport is what one node sees down, the value of PREFIX/health/ID:
// cluster name → the addresses of the endpoints that fail its own health
// checks or that its outlier detection ejected.
type HealthReport struct {
	Down map[string][]string `json:"down"`
}

// Lease is a node's membership: a lease with the node's key (and its
// health report) attached, renewed until Close or until it is lost.
type Lease struct {
	s    *EtcdStore
	id   clientv3.LeaseID
	node string
	lost chan struct{}
	stop context.CancelFunc
}

// Register grants a lease of ttl, writes m under PREFIX/nodes/m.ID with it
// and keeps it alive. Lost() closes when the lease can no longer be
// renewed (the store was unreachable for longer than ttl, or the lease
// expired); register again then.
func (s *EtcdStore) Register(ctx context.Context, m Member, ttl time.Duration) (*Lease, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	rctx, cancel := s.bounded(ctx)
	defer cancel()
	g, err := s.cli.Grant(rctx, int64((ttl+time.Second-1)/time.Second))
	if err != nil {
		return nil, fmt.Errorf("etcd lease grant: %w", err)
	}
	if _, err := s.cli.Put(rctx, s.prefix+dirNodes+m.ID, string(b), clientv3.WithLease(g.ID)); err != nil {
		return nil, fmt.Errorf("etcd register %s: %w", m.ID, err)
	}
	kctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	ka, err := s.cli.KeepAlive(kctx, g.ID)
	if err != nil {
		stop()
		return nil, fmt.Errorf("etcd lease keepalive: %w", err)
	}
	l := &Lease{s: s, id: g.ID, node: m.ID, lost: make(chan struct{}), stop: stop}
	go func() {
		for range ka { //nolint:revive // drain: the channel closes when the lease is lost
		}
		close(l.lost)
	}()
	return l, nil
}

// Lost closes when the lease is gone.
func (l *Lease) Lost() <-chan struct{} { return l.lost }

// PutHealth writes r as this node's health report, under the lease.
func (l *Lease) PutHealth(ctx context.Context, r HealthReport) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	ctx, cancel := l.s.bounded(ctx)
	defer cancel()
	if _, err := l.s.cli.Put(ctx, l.s.prefix+dirHealth+l.node, string(b), clientv3.WithLease(l.id)); err != nil {
		return fmt.Errorf("etcd health report: %w", err)
	}
	return nil
}

// Close stops renewing and revokes the lease, so the node leaves at once
// (a clean stop), within the request timeout.
func (l *Lease) Close(ctx context.Context) error {
	l.stop()
	ctx, cancel := l.s.bounded(ctx)
	defer cancel()
	if _, err := l.s.cli.Revoke(ctx, l.id); err != nil {
		return fmt.Errorf("etcd lease revoke: %w", err)
	}
	return nil
}

// Members lists the live nodes, by ID.
func (s *EtcdStore) Members(ctx context.Context) ([]Member, error) {
	ms, _, err := s.members(ctx)
	return ms, err
}

// WatchMembers calls fn with the live nodes now and after each change,
// until ctx ends; it starts over from a fresh read after the watch
// breaks. onErr, when set, hears why.
func (s *EtcdStore) WatchMembers(ctx context.Context, fn func([]Member), onErr func(error)) {
	sync := func() (int64, error) {
		ms, rev, err := s.members(ctx)
		if err != nil {
			return 0, err
		}
		fn(ms)
		return rev, nil
	}
	s.watchLoop(ctx, s.prefix+dirNodes, true, sync, func([]*clientv3.Event) {
		if _, err := sync(); err != nil && onErr != nil {
			onErr(err)
		}
	}, onErr)
}

func (s *EtcdStore) members(ctx context.Context) ([]Member, int64, error) {
	ctx, cancel := s.bounded(ctx)
	defer cancel()
	resp, err := s.cli.Get(ctx, s.prefix+dirNodes, clientv3.WithPrefix())
	if err != nil {
		return nil, 0, fmt.Errorf("etcd members: %w", err)
	}
	out := make([]Member, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var m Member
		if err := json.Unmarshal(kv.Value, &m); err != nil {
			m = Member{ID: strings.TrimPrefix(string(kv.Key), s.prefix+dirNodes)}
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, resp.Header.Revision, nil
}

// HealthReports reads every live node's health report, by node ID. A
// value that is not a report is skipped and named in bad.
func (s *EtcdStore) HealthReports(ctx context.Context) (reports map[string]HealthReport, rev int64, bad []string, err error) {
	ctx, cancel := s.bounded(ctx)
	defer cancel()
	resp, err := s.cli.Get(ctx, s.prefix+dirHealth, clientv3.WithPrefix())
	if err != nil {
		return nil, 0, nil, fmt.Errorf("etcd health reports: %w", err)
	}
	reports = make(map[string]HealthReport, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		id := strings.TrimPrefix(string(kv.Key), s.prefix+dirHealth)
		var r HealthReport
		if err := json.Unmarshal(kv.Value, &r); err != nil {
			bad = append(bad, id)
			continue
		}
		reports[id] = r
	}
	return reports, resp.Header.Revision, bad, nil
}

// WatchHealth calls fn with every live node's health report now and after
// each change, until ctx ends; it starts over from a fresh read after the
// watch breaks. onErr, when set, hears why.
func (s *EtcdStore) WatchHealth(ctx context.Context, fn func(reports map[string]HealthReport, bad []string), onErr func(error)) {
	sync := func() (int64, error) {
		r, rev, bad, err := s.HealthReports(ctx)
		if err != nil {
			return 0, err
		}
		fn(r, bad)
		return rev, nil
	}
	s.watchLoop(ctx, s.prefix+dirHealth, true, sync, func([]*clientv3.Event) {
		if _, err := sync(); err != nil && onErr != nil {
			onErr(err)
		}
	}, onErr)
}
