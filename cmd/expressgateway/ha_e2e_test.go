// SPDX-License-Identifier: GPL-3.0-only

package main

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/expressgateway/expressgateway/conf"
	"github.com/expressgateway/expressgateway/conf/etcdtest"
)

// haDoc is the document the HA tests push: one listener shared by every
// node (SO_REUSEPORT), a maglev cluster of the given backends with an
// active health check, and a zone-aware cluster of the same backends, one
// in each of the zones za, zb, zc. Its one route serves /vGEN/, so a test can tell
// which document a node runs.
func haDoc(etcdURL, listen string, bs []*backend, gen int) string {
	var eps, zoned []string
	for i, b := range bs {
		eps = append(eps, fmt.Sprintf("{ address = %q }", b.addr))
		zoned = append(zoned, fmt.Sprintf(`{ address = %q, zone = "z%c", region = "r1" }`, b.addr, 'a'+i))
	}
	return fmt.Sprintf(`
[control_plane]
backend = "etcd"
endpoints = [%q]
prefix = "/eg"

[engine]
event_loops = 1

[log]
access_log = false

[[listeners]]
name = "web"
listen = %q
reuse_port = true
max_connections_per_ip = 0

[[listeners.routes]]
cluster = "app"
path_prefix = "/v%d/"

[[clusters]]
name = "app"
lb = "maglev"
endpoints = [ %s ]

[clusters.maglev]
table_size = 1009

[clusters.health_check]
type = "http"
path = "/healthz"
interval = "150ms"
timeout = "100ms"
unhealthy_threshold = 2
healthy_threshold = 2

[[clusters]]
name = "zoned"
zone_aware = true
zone_aware_min_size = 1
endpoints = [ %s ]
`, etcdURL, listen, gen, strings.Join(eps, ", "), strings.Join(zoned, ", "))
}

// haNodeFile is a node's own file.
func haNodeFile(etcdURL, id, zone, admin string) string {
	return fmt.Sprintf(`
[control_plane]
backend = "etcd"
endpoints = [%q]
prefix = "/eg"
node_id = %q
lease_ttl = "2s"
request_timeout = "500ms"
zone = %q
region = "r1"

[admin]
listen = %q
`, etcdURL, id, zone, admin)
}

// runPush runs `expressgateway config push --config FILE`.
func runPush(t *testing.T, text string) (code int, stdout, stderr string) {
	t.Helper()
	p := writeFile(t, "push.toml", text)
	cmd := exec.Command(gatewayBinary(t), "config", "push", "--config", p)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	code = 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, strings.ReplaceAll(o.String(), p, "FILE"), strings.ReplaceAll(e.String(), p, "FILE")
}

// getStatus sends GET path to the shared listener on a new connection
// (so the kernel picks a node each time) and returns the status.
func getStatus(t *testing.T, addr, path string) int {
	t.Helper()
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get("http://" + addr + path)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode
}

// openStoreForTest opens the test etcd as a node would, prefix /eg.
func openStoreForTest(t *testing.T, url string) *conf.EtcdStore {
	t.Helper()
	cp, err := conf.ReadControlPlane("t", []byte(fmt.Sprintf("[control_plane]\nbackend = \"etcd\"\nendpoints = [%q]\nprefix = \"/eg\"\n", url)))
	if err != nil {
		t.Fatal(err)
	}
	st, err := conf.OpenEtcd(cp)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func haGet(admin, path string) (int, []byte) {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + admin + path)
	if err != nil {
		return 0, nil
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// metricValue is the value of one series in the node's scrape (-1 when
// absent).
func haMetric(admin, series string) float64 {
	_, b := haGet(admin, "/metrics")
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			v, err := strconv.ParseFloat(rest, 64)
			if err == nil {
				return v
			}
		}
	}
	return -1
}

// zoneShares is GET /debug/zones for one cluster's priority 0.
func zoneShares(admin, cluster string) map[string]float64 {
	_, b := haGet(admin, "/debug/zones")
	var v map[string]map[string]map[string]float64
	if json.Unmarshal(b, &v) != nil {
		return nil
	}
	return v[cluster]["0"]
}

type nodeRow struct {
	ID    string `json:"id"`
	Since string `json:"since"`
	Zone  string `json:"zone"`
}

func liveNodes(admin string) []string {
	code, b := haGet(admin, "/nodes")
	if code != http.StatusOK {
		return nil
	}
	var rows []nodeRow
	if json.Unmarshal(b, &rows) != nil {
		return nil
	}
	var ids []string
	for _, r := range rows {
		if _, err := time.Parse(time.RFC3339, r.Since); err != nil {
			return nil
		}
		ids = append(ids, r.ID+"@"+r.Zone)
	}
	return ids
}

func maglevDigest(admin, cluster string) string {
	_, b := haGet(admin, "/debug/maglev")
	var v struct {
		Clusters map[string]string `json:"clusters"`
	}
	if json.Unmarshal(b, &v) != nil {
		return ""
	}
	return v.Clusters[cluster]
}

func eventually(t *testing.T, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > within {
			t.Fatalf("not within %v: %s", within, what)
		}
		time.Sleep(25 * time.Millisecond)
	}
	return time.Since(start)
}

// probeOwner tells which gateway process holds the client side of a
// loopback connection, from /proc: the socket whose local port is the
// request's remote port, and the process with that socket open.
func probeOwner(remote string, backendPort string, pids map[int]string) string {
	_, rport, _ := strings.Cut(remote, ":")
	rp, _ := strconv.Atoi(rport)
	bp, _ := strconv.Atoi(backendPort)
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return ""
	}
	inode := ""
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 10 {
			continue
		}
		if strings.HasSuffix(f[1], fmt.Sprintf(":%04X", rp)) && strings.HasSuffix(f[2], fmt.Sprintf(":%04X", bp)) {
			inode = f[9]
			break
		}
	}
	if inode == "" {
		return ""
	}
	want := "socket:[" + inode + "]"
	for pid, name := range pids {
		fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		for _, fd := range fds {
			if l, _ := os.Readlink(filepath.Join(fmt.Sprintf("/proc/%d/fd", pid), fd.Name())); l == want {
				return name
			}
		}
	}
	return ""
}

// TestHAOnEtcd runs an embedded etcd and three gateway processes (the
// real binary) that take their config from it: a push reaches every node
// within 2s, a bad document in etcd is refused by every node (the old
// config stays), an endpoint failing health on one node only is routed
// around by all of them with byte-identical Maglev tables, losing etcd
// keeps them serving and ready (the connected gauge says so) and they
// catch up once it is back, and a killed node leaves /nodes when its
// lease expires.
func TestHAOnEtcd(t *testing.T) {
	etcd := etcdtest.Start(t)
	bin := gatewayBinary(t)
	listen := freeAddr(t)
	bs := []*backend{newBackend(t, "a"), newBackend(t, "b"), newBackend(t, "c")}

	// Backend c fails the health checks of the node named in failFor.
	var failFor atomic.Pointer[string]
	none := ""
	failFor.Store(&none)
	var pidsMu sync.Mutex
	pids := map[int]string{}
	_, cport, _ := strings.Cut(bs[2].addr, ":")
	bs[2].stop()
	bs[2].srvHandler = func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != "/healthz" || *failFor.Load() == "" {
			return false
		}
		pidsMu.Lock()
		owner := probeOwner(r.RemoteAddr, cport, pids)
		pidsMu.Unlock()
		if owner == *failFor.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return true
		}
		return false
	}
	bs[2].start(t)

	// A push is refused as `validate` would refuse it; a good one is
	// stored.
	bad := strings.Replace(haDoc(etcd.ClientURL, listen, bs, 1), `lb = "maglev"`, `lb = "magic"`, 1)
	code, _, stderr := runPush(t, bad)
	if code != 1 || !strings.HasPrefix(stderr, `FILE: clusters[0].lb: must be one of`) {
		t.Fatalf("bad push: exit %d, stderr %q", code, stderr)
	}
	code, _, stderr = runPush(t, strings.Replace(haDoc(etcd.ClientURL, listen, bs, 1), `backend = "etcd"`, `backend = "file"`, 1))
	if code != 1 || !strings.Contains(stderr, `FILE: control_plane.backend: is "file"`) {
		t.Fatalf("push of a file-backed config: exit %d, stderr %q", code, stderr)
	}
	code, stdout, stderr := runPush(t, haDoc(etcd.ClientURL, listen, bs, 1))
	if code != 0 || !strings.HasPrefix(stdout, "FILE: pushed to etcd:/eg/config (revision ") {
		t.Fatalf("push: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}

	type node struct {
		id, admin string
		g         *gwProc
	}
	var nodes []*node
	for i, zone := range []string{"za", "zb", "zc"} {
		n := &node{id: fmt.Sprintf("n%d", i+1), admin: freeAddr(t)}
		n.g = startFromFile(t, bin, haNodeFile(etcd.ClientURL, n.id, zone, n.admin), n.admin, n.admin)
		pidsMu.Lock()
		pids[n.g.cmd.Process.Pid] = n.id
		pidsMu.Unlock()
		nodes = append(nodes, n)
	}
	waitAccepting(t, listen, 10*time.Second)
	all := func(what string, within time.Duration, cond func(n *node) bool) time.Duration {
		t.Helper()
		return eventually(t, within, what, func() bool {
			for _, n := range nodes {
				if !cond(n) {
					return false
				}
			}
			return true
		})
	}
	all("every node lists the three", 5*time.Second, func(n *node) bool {
		return strings.Join(liveNodes(n.admin), ",") == "n1@za,n2@zb,n3@zc"
	})
	for _, n := range nodes {
		if g := generation(n.admin); g != 1 {
			t.Fatalf("%s: generation %d at start", n.id, g)
		}
	}

	// The metric families of an HA node, against METRICS.md.
	_, scrape := haGet(nodes[0].admin, "/metrics")
	checkScrapeAgainstDoc(t, string(scrape), metricsDoc(t), func(d docFamily) bool { return d.condition == "Control plane (HA on etcd)" })

	t.Run("push reaches every node within 2s", func(t *testing.T) {
		if code, _, stderr := runPush(t, haDoc(etcd.ClientURL, listen, bs, 2)); code != 0 {
			t.Fatalf("push: %s", stderr)
		}
		took := all("generation 2 everywhere", 2*time.Second, func(n *node) bool { return generation(n.admin) == 2 })
		t.Logf("push reached the three nodes in %v", took)
	})

	t.Run("a bad document in etcd is refused by every node", func(t *testing.T) {
		before := map[string]float64{}
		for _, n := range nodes {
			before[n.id] = haMetric(n.admin, `expressgateway_config_reload_total{result="error"}`)
		}
		st := openStoreForTest(t, etcd.ClientURL)
		if err := st.Save(t.Context(), []byte("[[listeners]]\nname = 1\n")); err != nil {
			t.Fatal(err)
		}
		all("every node counts a refused reload", 3*time.Second, func(n *node) bool {
			return haMetric(n.admin, `expressgateway_config_reload_total{result="error"}`) == before[n.id]+1
		})
		for _, n := range nodes {
			if g := generation(n.admin); g != 2 {
				t.Fatalf("%s: generation %d after a bad document, want 2", n.id, g)
			}
			b, _ := os.ReadFile(n.g.log)
			if !bytes.Contains(b, []byte(`etcd:/eg/config: listeners[0].name: expected a string`)) || !bytes.Contains(b, []byte("config reload refused")) {
				t.Fatalf("%s: no refusal line naming the problem in the log", n.id)
			}
		}
		if code := getStatus(t, listen, "/v2/"); code != http.StatusOK {
			t.Fatalf("GET /v2/ %d after a bad document, want the running config's 200", code)
		}
		if code, _, stderr := runPush(t, haDoc(etcd.ClientURL, listen, bs, 3)); code != 0 {
			t.Fatalf("push: %s", stderr)
		}
		all("generation 3 everywhere", 2*time.Second, func(n *node) bool { return generation(n.admin) == 3 })
	})

	t.Run("one node's failing check is everyone's; Maglev tables stay identical", func(t *testing.T) {
		same := func() string {
			d := maglevDigest(nodes[0].admin, "app")
			for _, n := range nodes[1:] {
				if maglevDigest(n.admin, "app") != d {
					return ""
				}
			}
			return d
		}
		var healthy string
		eventually(t, 3*time.Second, "identical digests at the start", func() bool { healthy = same(); return healthy != "" })
		if _, err := hex.DecodeString(healthy); err != nil || len(healthy) != 64 {
			t.Fatalf("digest %q", healthy)
		}
		n1 := "n1"
		failFor.Store(&n1)
		took := eventually(t, 5*time.Second, "every node routes around c with the same table", func() bool {
			d := same()
			return d != "" && d != healthy
		})
		t.Logf("n1's failing check reached every node's table in %v", took)
		for _, n := range nodes[1:] {
			if v := haMetric(n.admin, "expressgateway_shared_health_peer_down_endpoints"); v != 1 {
				t.Fatalf("%s: peer_down_endpoints %v, want 1", n.id, v)
			}
			_, b := haGet(n.admin, "/debug/health")
			if !bytes.Contains(b, []byte(`"n1":{"down":{"app":["`+bs[2].addr+`"]}}`)) {
				t.Fatalf("%s: /debug/health does not show n1's report: %s", n.id, b)
			}
		}
		// Requests, whichever node takes them, never reach c.
		before := bs[2].hits.Load()
		for i := 0; i < 60; i++ {
			if code := getStatus(t, listen, "/v3/"); code != http.StatusOK {
				t.Fatalf("GET /v3/ %d", code)
			}
		}
		if bs[2].hits.Load() != before {
			t.Fatal("a node sent requests to the endpoint n1 reports down")
		}
		failFor.Store(&none)
		eventually(t, 5*time.Second, "the table back as it was on every node", func() bool { return same() == healthy })
	})

	t.Run("etcd lost: nodes serve on; back: they catch up", func(t *testing.T) {
		stopped := time.Now()
		etcd.Stop()
		t.Logf("etcd stopped in %v", time.Since(stopped))
		took := all("the connected gauge at 0", 5*time.Second, func(n *node) bool {
			return haMetric(n.admin, "expressgateway_control_plane_connected") == 0
		})
		t.Logf("every node reported the store unreachable %v after the stop", took)
		for _, n := range nodes {
			if code, _ := haGet(n.admin, "/readyz"); code != http.StatusOK {
				t.Fatalf("%s: /readyz %d with etcd down", n.id, code)
			}
			if code, _ := haGet(n.admin, "/nodes"); code != http.StatusServiceUnavailable {
				t.Fatalf("%s: /nodes %d with etcd down, want 503", n.id, code)
			}
			b, _ := os.ReadFile(n.g.log)
			if !bytes.Contains(b, []byte("control plane unreachable")) {
				t.Fatalf("%s: no log line about the unreachable store", n.id)
			}
		}
		for i := 0; i < 20; i++ {
			if code := getStatus(t, listen, "/v3/"); code != http.StatusOK {
				t.Fatalf("with etcd down: GET /v3/ %d", code)
			}
		}
		time.Sleep(2500 * time.Millisecond) // past lease_ttl: the leases are lost
		restarted := time.Now()
		etcd.Restart()
		t.Logf("etcd restarted in %v", time.Since(restarted))
		took = all("the connected gauge back at 1", 10*time.Second, func(n *node) bool {
			return haMetric(n.admin, "expressgateway_control_plane_connected") == 1
		})
		t.Logf("every node reconnected %v after the restart", took)
		if code, _, stderr := runPush(t, haDoc(etcd.ClientURL, listen, bs, 4)); code != 0 {
			t.Fatalf("push after the restart: %s", stderr)
		}
		all("generation 4 everywhere after the restart", 2*time.Second, func(n *node) bool { return generation(n.admin) == 4 })
		took = all("every node registered again", 10*time.Second, func(n *node) bool {
			return strings.Join(liveNodes(n.admin), ",") == "n1@za,n2@zb,n3@zc"
		})
		t.Logf("every node listed the three again %v after the push", took)
	})

	// One node per zone: each keeps its zone-aware traffic at home.
	for i, n := range nodes {
		zone := fmt.Sprintf("r1/z%c", 'a'+i)
		if sh := zoneShares(n.admin, "zoned"); len(sh) != 1 || sh[zone] != 1 {
			t.Fatalf("%s: zone shares %v, want all to %s", n.id, sh, zone)
		}
	}

	t.Run("a killed node leaves /nodes when its lease expires", func(t *testing.T) {
		killed := nodes[2]
		if err := killed.g.cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		<-killed.g.exited
		start := time.Now()
		eventually(t, 6*time.Second, "n3 gone from /nodes", func() bool {
			return strings.Join(liveNodes(nodes[0].admin), ",") == "n1@za,n2@zb"
		})
		took := time.Since(start)
		t.Logf("n3 left /nodes %v after its kill (lease_ttl 2s)", took)
		// Renewed every lease_ttl/3, the lease had at least 1.3s to run
		// at the kill: a node gone much sooner was not removed by it.
		if took < 500*time.Millisecond {
			t.Fatalf("n3 left after %v, before its lease could expire", took)
		}
		// The fleet is now half za, half zb, while the endpoints are a
		// third in each zone: za's node keeps 2/3 at home and sends zc's
		// spare third there.
		eventually(t, 2*time.Second, "n1 plans with the smaller fleet", func() bool {
			sh := zoneShares(nodes[0].admin, "zoned")
			return math.Abs(sh["r1/za"]-2.0/3) < 1e-9 && math.Abs(sh["r1/zc"]-1.0/3) < 1e-9
		})
	})
}
