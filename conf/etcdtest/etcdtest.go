// SPDX-License-Identifier: GPL-3.0-only

// Package etcdtest runs a one-member etcd inside a test process, on
// loopback ports, with its data in a test's temporary directory. Only
// tests import it: the gateway itself links the etcd client alone.
package etcdtest

import (
	"fmt"
	"net"
	"net/url"
	"testing"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Etcd is a running (or stopped) embedded member.
type Etcd struct {
	t         testing.TB
	dir       string
	client    url.URL
	peer      url.URL
	e         *embed.Etcd
	ClientURL string // http://127.0.0.1:PORT
}

// Start runs a member on two free loopback ports; it stops at the end of
// the test.
func Start(t testing.TB) *Etcd {
	t.Helper()
	x := &Etcd{t: t, dir: t.TempDir(), client: freeURL(t), peer: freeURL(t)}
	x.ClientURL = x.client.String()
	x.Restart()
	t.Cleanup(x.Stop)
	return x
}

// freeURL is an http URL on a loopback port that was free a moment ago.
func freeURL(t testing.TB) url.URL {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return url.URL{Scheme: "http", Host: addr}
}

// Restart starts the member again, on the same ports and data; it is how
// Start starts it the first time.
func (x *Etcd) Restart() {
	x.t.Helper()
	if x.e != nil {
		x.t.Fatal("etcdtest: Restart of a running member")
	}
	cfg := embed.NewConfig()
	cfg.Name = "test"
	cfg.Dir = x.dir
	cfg.ListenClientUrls = []url.URL{x.client}
	cfg.AdvertiseClientUrls = []url.URL{x.client}
	cfg.ListenPeerUrls = []url.URL{x.peer}
	cfg.AdvertisePeerUrls = []url.URL{x.peer}
	cfg.InitialCluster = fmt.Sprintf("test=%s", x.peer.String())
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	cfg.BcryptCost = 4 // the minimum: auth tests under the race detector stay fast
	var e *embed.Etcd
	var err error
	// The port of a member stopped a moment ago may still be taken.
	for try := 0; try < 50; try++ {
		if e, err = embed.StartEtcd(cfg); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		x.t.Fatalf("etcdtest: start: %v", err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(20 * time.Second):
		e.Close()
		x.t.Fatal("etcdtest: not ready after 20s")
	}
	x.e = e
}

// Stop stops the member (its data stays for Restart).
func (x *Etcd) Stop() {
	if x.e != nil {
		x.e.Close()
		x.e = nil
	}
}
