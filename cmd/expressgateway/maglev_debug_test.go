// SPDX-License-Identifier: GPL-3.0-only

package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/VictoriaMetrics/metrics"
	"github.com/rs/zerolog"

	"github.com/expressgateway/expressgateway/conf"
	"github.com/expressgateway/expressgateway/engine"
	"github.com/expressgateway/expressgateway/xdp"
)

// GET /debug/maglev: the L7 table digest of a maglev cluster and the XDP
// table digest of a VIP both follow health, and the XDP one is the table
// of the healthy backends alone.
func TestDebugMaglevFollowsHealth(t *testing.T) {
	snap, err := conf.Parse("t.toml", []byte(`
[[listeners]]
name = "web"
listen = "127.0.0.1:8080"
[[listeners.routes]]
cluster = "app"
[[clusters]]
name = "app"
lb = "maglev"
endpoints = [ { address = "10.0.0.1:80" }, { address = "10.0.0.2:80" }, { address = "10.0.0.3:80", weight = 2 } ]
[clusters.maglev]
table_size = 1009
[xdp]
interface = "lo"
[[xdp.vips]]
name = "v"
address = "198.18.0.10"
port = 80
mode = "dsr"
cluster = "app"
`))
	if err != nil {
		t.Fatal(err)
	}
	clusters, err := engine.NewClusters(snap, metrics.NewSet(), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer clusters.Close()
	mux := http.NewServeMux()
	handleMaglev(mux, &reloader{cur: snap}, clusters)
	get := func() (l7, vip string) {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest("GET", "/debug/maglev", nil))
		var v struct {
			Clusters map[string]string `json:"clusters"`
			VIPs     map[string]string `json:"xdp_vips"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
			t.Fatalf("%v: %s", err, rec.Body.String())
		}
		return v.Clusters["app"], v.VIPs["v"]
	}
	l7, vip := get()
	if len(l7) != 64 || len(vip) != 64 {
		t.Fatalf("digests %q %q", l7, vip)
	}
	clusters.Get("app").LB.SetPeerDown("10.0.0.2:80", true)
	l7b, vipb := get()
	if l7b == l7 || vipb == vip {
		t.Fatal("a digest did not move with the endpoint's health")
	}
	want := xdpTableDigest(xdp.VIP{TableSize: 1009, Backends: []xdp.Backend{
		{Name: "10.0.0.1:80", Weight: 1, Healthy: true}, {Name: "10.0.0.3:80", Weight: 2, Healthy: true}}})
	if vipb != want {
		t.Fatalf("XDP digest %s, want the table of the two healthy backends %s", vipb, want)
	}
	clusters.Get("app").LB.SetPeerDown("10.0.0.2:80", false)
	if l7c, vipc := get(); l7c != l7 || vipc != vip {
		t.Fatal("digests not back after the endpoint came back")
	}
}
