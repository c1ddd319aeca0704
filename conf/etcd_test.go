// SPDX-License-Identifier: GPL-3.0-only

package conf

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/expressgateway/expressgateway/conf/etcdtest"
)

func openTestEtcd(t *testing.T, url string) *EtcdStore {
	t.Helper()
	cp := ControlPlane{}
	cp.setDefaults()
	cp.Backend, cp.Endpoints, cp.Prefix = BackendEtcd, []string{url}, "/eg-test"
	s, err := OpenEtcd(cp)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// waitFor polls cond every 20ms for up to d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestEtcdStoreConfig(t *testing.T) {
	e := etcdtest.Start(t)
	s := openTestEtcd(t, e.ClientURL)
	ctx := t.Context()
	if _, err := s.Load(ctx); !errors.Is(err, ErrNoConfig) {
		t.Fatalf("empty store: %v, want ErrNoConfig", err)
	}
	if s.Name() != "etcd:/eg-test/config" {
		t.Fatalf("name %q", s.Name())
	}
	if err := s.Save(ctx, []byte("one")); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var seen []string
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.WatchConfig(wctx, func(b []byte) { mu.Lock(); seen = append(seen, string(b)); mu.Unlock() }, nil)
	}()
	last := func() string {
		mu.Lock()
		defer mu.Unlock()
		if len(seen) == 0 {
			return ""
		}
		return seen[len(seen)-1]
	}
	waitFor(t, 5*time.Second, "the watch did not start with the stored document", func() bool { return last() == "one" })
	if err := s.Save(ctx, []byte("two")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "the watch did not see the write", func() bool { return last() == "two" })
	// The store goes away and comes back: the watch carries on and sees
	// a write made after.
	e.Stop()
	if err := s.Ping(ctx); err == nil {
		t.Fatal("ping succeeded with etcd stopped")
	}
	e.Restart()
	waitFor(t, 10*time.Second, "no ping after the restart", func() bool { return s.Ping(ctx) == nil })
	if err := s.Save(ctx, []byte("three")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the watch did not see the write after the restart", func() bool { return last() == "three" })
	cancel()
	<-done
}

func TestEtcdMembershipAndHealth(t *testing.T) {
	e := etcdtest.Start(t)
	s := openTestEtcd(t, e.ClientURL)
	ctx := t.Context()
	since := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	a, err := s.Register(ctx, Member{ID: "a", Since: since, Zone: "z1"}, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Register(ctx, Member{ID: "b", Since: since}, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ms, err := s.Members(ctx)
	if err != nil || len(ms) != 2 || ms[0].ID != "a" || ms[0].Zone != "z1" || !ms[0].Since.Equal(since) || ms[1].ID != "b" {
		t.Fatalf("members %+v %v", ms, err)
	}
	var mu sync.Mutex
	var view map[string]HealthReport
	go s.WatchHealth(ctx, func(r map[string]HealthReport, _ []string) { mu.Lock(); view = r; mu.Unlock() }, nil)
	if err := a.PutHealth(ctx, HealthReport{Down: map[string][]string{"app": {"127.0.0.1:1"}}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "health report not seen", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(view["a"].Down["app"]) == 1
	})
	// b leaves cleanly: at once. a stops renewing (its process would be
	// gone): its key and its report go when the lease expires.
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	a.stop()
	start := time.Now()
	waitFor(t, 6*time.Second, "a's lease did not expire", func() bool {
		ms, err := s.Members(ctx)
		return err == nil && len(ms) == 0
	})
	if time.Since(start) < time.Second {
		t.Fatalf("a left after %v, before its lease ran out", time.Since(start))
	}
	waitFor(t, 2*time.Second, "a's report outlived its lease", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(view) == 0
	})
	select {
	case <-a.Lost():
	case <-time.After(5 * time.Second):
		t.Fatal("Lost did not close")
	}
}

// With etcd's auth on, the store works as a user whose role reaches the
// prefix, and refuses without the right password.
func TestEtcdAuth(t *testing.T) {
	e := etcdtest.Start(t)
	root := openTestEtcd(t, e.ClientURL)
	ctx := t.Context()
	for _, step := range []func() error{
		func() error { _, err := root.cli.RoleAdd(ctx, "root"); return err },
		func() error { _, err := root.cli.UserAdd(ctx, "root", "rootpw"); return err },
		func() error { _, err := root.cli.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := root.cli.RoleAdd(ctx, "gw"); return err },
		func() error {
			_, err := root.cli.RoleGrantPermission(ctx, "gw", "/eg-test", clientv3.GetPrefixRangeEnd("/eg-test"), clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		},
		func() error { _, err := root.cli.UserAdd(ctx, "gw", "s3cret"); return err },
		func() error { _, err := root.cli.UserGrantRole(ctx, "gw", "gw"); return err },
		func() error { _, err := root.cli.AuthEnable(ctx); return err },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	open := func(password string) (*EtcdStore, error) {
		p := filepath.Join(dir, "pw")
		if err := os.WriteFile(p, []byte(password+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cp := ControlPlane{}
		cp.setDefaults()
		cp.Backend, cp.Endpoints, cp.Prefix, cp.Username, cp.PasswordFile = BackendEtcd, []string{e.ClientURL}, "/eg-test", "gw", p
		// OpenEtcd authenticates within the request timeout: give a
		// loaded test machine room for it.
		cp.RequestTimeout = Duration(15 * time.Second)
		return OpenEtcd(cp)
	}
	s, err := open("s3cret")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	if err := s.Save(ctx, []byte("doc")); err != nil {
		t.Fatalf("save as gw: %v", err)
	}
	if b, err := s.Load(ctx); err != nil || string(b) != "doc" {
		t.Fatalf("load as gw: %q %v", b, err)
	}
	if bad, err := open("wrong"); err == nil {
		defer func() { _ = bad.Close() }()
		if err := bad.Save(ctx, []byte("x")); err == nil {
			t.Fatal("save with a wrong password succeeded")
		}
	}
	if _, err := open(""); err == nil || !strings.Contains(err.Error(), "is empty") {
		t.Fatalf("empty password file: %v", err)
	}
}
