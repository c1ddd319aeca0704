// SPDX-License-Identifier: GPL-3.0-only

package conf

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

// minimalTOML is the minimal file from the foundation issue, verbatim.
const minimalTOML = `
[admin]
listen = "127.0.0.1:9901"

[[listeners]]
name = "web"
listen = "127.0.0.1:8080"
protocol = "http"

[[listeners.routes]]
host = "*"
path_prefix = "/"
cluster = "app"

[[clusters]]
name = "app"
lb = "round_robin"
endpoints = [ { address = "127.0.0.1:9001" }, { address = "127.0.0.1:9002", weight = 2 } ]
`

func mustParse(t *testing.T, name, data string) *Snapshot {
	t.Helper()
	s, err := Parse(name, []byte(data))
	if err != nil {
		t.Fatalf("Parse(%s): %v", name, err)
	}
	return s
}

func TestMinimalExampleLoadsWithDefaults(t *testing.T) {
	before := time.Now()
	s := mustParse(t, "minimal.toml", minimalTOML)
	if s.Source != "minimal.toml" || s.LoadedAt.Before(before) {
		t.Errorf("Source %q LoadedAt %v", s.Source, s.LoadedAt)
	}
	c := s.Config
	if c.Admin.Listen != "127.0.0.1:9901" || c.Log.Level != "info" || !c.Log.AccessLog {
		t.Errorf("admin/log: %+v %+v", c.Admin, c.Log)
	}
	if c.Engine != (Engine{EventLoops: 0, RingSize: 1024, DrainSettle: Duration(5 * time.Second), DrainTimeout: Duration(30 * time.Second), MaxConnections: 100000}) {
		t.Errorf("engine defaults: %+v", c.Engine)
	}
	if c.Demo.Enabled || c.Demo.Listen != "127.0.0.1:9000" {
		t.Errorf("demo defaults: %+v", c.Demo)
	}
	if c.XDP.Enabled || c.XDP.AttachMode != "auto" || c.XDP.ConntrackSize != 65536 || len(c.XDP.VIPs) != 0 {
		t.Errorf("xdp defaults: %+v", c.XDP)
	}

	l := s.Listener("web")
	if l == nil || len(c.Listeners) != 1 || l != &s.Config.Listeners[0] {
		t.Fatalf("Listener(web) = %v", l)
	}
	if l.Protocol != ProtocolHTTP || !l.ReusePort || l.MaxConnections != 10000 || l.MaxConnectionsPerIP != 256 ||
		l.MaxRequestsPerConnection != 0 || l.QueueSize != 1024 || l.UDPSessionTimeout != Duration(60*time.Second) {
		t.Errorf("listener defaults: %+v", l)
	}
	if l.AccessLog == nil || !*l.AccessLog {
		t.Errorf("listener access_log should inherit true, got %v", l.AccessLog)
	}
	wantTimeouts := Timeouts{
		HeaderRead: Duration(10 * time.Second), BodyIdle: Duration(30 * time.Second),
		BodyMinRate: 1024, BodyMinRateGrace: Duration(10 * time.Second),
		IdleKeepalive: Duration(60 * time.Second), UpstreamConnect: Duration(3 * time.Second),
		UpstreamResponseHeader: Duration(30 * time.Second), UpstreamIdle: Duration(60 * time.Second),
		TCPIdle: Duration(5 * time.Minute), WebSocketIdle: Duration(time.Hour),
	}
	if l.Timeouts != wantTimeouts {
		t.Errorf("timeouts:\n got %+v\nwant %+v", l.Timeouts, wantTimeouts)
	}
	wantLimits := Limits{MaxRequestLine: 8192, MaxHeaderBytes: 65536, MaxHeaderCount: 100, MaxBodyBytes: 0,
		MaxChunkExtension: 256, MaxTrailerBytes: 16384, MaxInflightBytes: 1 << 20}
	if l.Limits != wantLimits {
		t.Errorf("limits:\n got %+v\nwant %+v", l.Limits, wantLimits)
	}
	wantRoutes := []Route{{Host: "*", PathPrefix: "/", Cluster: "app", RateLimit: RateLimit{Key: "client_ip"}}}
	if !reflect.DeepEqual(l.Routes, wantRoutes) {
		t.Errorf("routes: %+v", l.Routes)
	}

	cl := s.Cluster("app")
	if cl == nil || cl != &s.Config.Clusters[0] {
		t.Fatalf("Cluster(app) = %v", cl)
	}
	if s.Cluster("nope") != nil || s.Listener("nope") != nil {
		t.Error("lookup of a missing name should be nil")
	}
	wantEndpoints := []Endpoint{{Address: "127.0.0.1:9001", Weight: 1}, {Address: "127.0.0.1:9002", Weight: 2}}
	if !reflect.DeepEqual(cl.Endpoints, wantEndpoints) {
		t.Errorf("endpoints: %+v", cl.Endpoints)
	}
	if cl.LB != LBRoundRobin || cl.HashKey != "source_ip" || cl.MaxIdlePerEndpoint != 64 || cl.PanicThreshold != 50 ||
		cl.OnPanic != "all" || cl.OverprovisioningFactor != 1.4 {
		t.Errorf("cluster defaults: %+v", cl)
	}
	if cl.Maglev != (Maglev{TableSize: 65537}) || cl.RingHash != (RingHash{MinRingSize: 1024, MaxRingSize: 8388608}) ||
		cl.EWMA != (EWMA{Decay: Duration(10 * time.Second)}) {
		t.Errorf("algorithm defaults: %+v %+v %+v", cl.Maglev, cl.RingHash, cl.EWMA)
	}
	if cl.Affinity != (Affinity{CookieName: "EG_AFFINITY", TTL: Duration(time.Hour), HTTPOnly: true, Path: "/"}) {
		t.Errorf("affinity defaults: %+v", cl.Affinity)
	}
	if cl.HealthCheck != nil {
		t.Errorf("absent health_check must stay nil")
	}
	// Without the table the connect-failure trigger still runs (the 5xx one
	// does not): one dead endpoint must not cost client errors.
	wantOutlier := OutlierDetection{Consecutive5xx: 0, ConsecutiveConnectFailures: 3, BaseEjectionTime: Duration(10 * time.Second), MaxEjectionPercent: 50}
	if cl.OutlierDetection == nil || *cl.OutlierDetection != wantOutlier {
		t.Errorf("absent outlier_detection: %+v, want %+v", cl.OutlierDetection, wantOutlier)
	}
	wantRetry := Retry{MaxRetries: 1, BudgetPercent: 20, MinRetriesPerSecond: 10, RetryOn: []string{"connect-failure", "reset", "502", "503"}}
	if !reflect.DeepEqual(cl.Retry, wantRetry) {
		t.Errorf("retry defaults: %+v", cl.Retry)
	}
}

func TestDefaultTOMLLoads(t *testing.T) {
	s := mustParse(t, "default.toml", string(DefaultTOML()))
	c := s.Config
	if c.Admin.Listen != "127.0.0.1:9901" {
		t.Errorf("admin.listen = %q", c.Admin.Listen)
	}
	if !c.Demo.Enabled || c.Demo.Listen != "127.0.0.1:9000" {
		t.Errorf("demo = %+v", c.Demo)
	}
	l := s.Listener("web")
	if l == nil || l.Listen != "127.0.0.1:8080" || l.Protocol != ProtocolHTTP || len(l.Routes) != 1 || l.Routes[0].Cluster != "demo" {
		t.Fatalf("listener web = %+v", l)
	}
	cl := s.Cluster("demo")
	if cl == nil || len(cl.Endpoints) != 1 || cl.Endpoints[0].Address != c.Demo.Listen {
		t.Fatalf("cluster demo = %+v", cl)
	}
	// The caller owns the returned bytes.
	b := DefaultTOML()
	b[0] = 'X'
	if DefaultTOML()[0] == 'X' {
		t.Error("DefaultTOML returned the embedded slice itself")
	}
}

// TestConfigMDExamplesLoad parses every ```toml block of CONFIG.md, so the
// examples operators copy are known to work.
func TestConfigMDExamplesLoad(t *testing.T) {
	md, err := os.ReadFile("../CONFIG.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```toml\n(.*?)```").FindAllSubmatch(md, -1)
	if len(blocks) < 3 {
		t.Fatalf("found %d toml blocks in CONFIG.md", len(blocks))
	}
	sawMinimal := false
	for i, b := range blocks {
		name := "CONFIG.md block " + string(rune('0'+i))
		check := Parse
		if cp, _ := ReadControlPlane(name, b[1]); cp.Backend == BackendEtcd {
			check = func(name string, data []byte) (*Snapshot, error) { _, err := CheckNode(name, data); return nil, err }
		}
		if _, err := check(name, b[1]); err != nil {
			t.Errorf("%v", err)
		}
		if strings.TrimSpace(string(b[1])) == strings.TrimSpace(minimalTOML) {
			sawMinimal = true
		}
	}
	if !sawMinimal {
		t.Error("CONFIG.md does not show the minimal example verbatim")
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.toml")
	if err := os.WriteFile(good, []byte(minimalTOML), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Load(good)
	if err != nil || s.Source != good {
		t.Fatalf("Load(good) = %v, %v", s, err)
	}

	bad := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(bad, []byte("[admin]\nlisten = 1\n"+aListener), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load(bad)
	var ve *ValidationError
	if !errors.As(err, &ve) || len(ve.Problems) != 1 || ve.Problems[0].File != bad {
		t.Fatalf("Load(bad) error = %#v", err)
	}
	if want := bad + ": admin.listen: expected a string, got integer 1"; err.Error() != want {
		t.Errorf("Load(bad) = %q, want %q", err, want)
	}

	_, err = Load(filepath.Join(dir, "missing.toml"))
	if !errors.Is(err, fs.ErrNotExist) || errors.As(err, &ve) {
		t.Errorf("Load(missing) = %v, want a wrapped fs.ErrNotExist", err)
	}
	if Problems(err) != nil {
		t.Errorf("Problems(os error) should be nil")
	}
}

// aListener is the one listener every config needs, with a cluster of its
// own, appended to cases about other sections (its cluster comes last, so
// the case's cluster indices stay as written).
const aListener = `
[[listeners]]
name = "l"
listen = "127.0.0.1:8081"
protocol = "tcp"
cluster = "l"
[[clusters]]
name = "l"
endpoints = [ { address = "127.0.0.1:9009" } ]
`

// base is a valid config the problem cases below add to: one http listener
// routing to cluster "app", one tcp listener, and cluster "app".
const base = `
[[listeners]]
name = "web"
listen = "127.0.0.1:8080"
[[listeners.routes]]
cluster = "app"

[[clusters]]
name = "app"
endpoints = [ { address = "127.0.0.1:9001" } ]
`

func TestProblems(t *testing.T) {
	tests := []struct {
		name string
		toml string
		want []string // Problem strings, in order
	}{
		{"syntax error", "[admin\nlisten = 1", []string{
			"t.toml: TOML syntax error at line 1, column 7: expected character ]",
		}},
		{"duplicate key", "[admin]\nlisten = \"a:1\"\nlisten = \"b:2\"", []string{
			"t.toml: TOML error: key listen is already defined",
		}},
		{"no listeners", "", []string{
			"t.toml: listeners: at least one [[listeners]] entry is required: without one the gateway serves nothing",
		}},
		{"unknown top-level section", "[admn]\nlisten = \"x\"" + aListener, []string{
			`t.toml: admn: unknown key (did you mean "admin"?)`,
		}},
		{"unknown key in table", "[engine]\nring = 8" + aListener, []string{
			"t.toml: engine.ring: unknown key",
		}},
		{"unknown key in array of tables", base + "[[listeners]]\nname = \"x\"\nlisten = \":1\"\nprotocol = \"tcp\"\ncluster = \"app\"\nreuseport = false", []string{
			`t.toml: listeners[1].reuseport: unknown key (did you mean "reuse_port"?)`,
		}},
		{"misspelt key: its default applies, which may cause more problems", base + "[[listeners]]\nname = \"x\"\nlisten = \":1\"\nprotocl = \"tcp\"\ncluster = \"app\"", []string{
			`t.toml: listeners[1].cluster: not allowed for protocol = "http" (send traffic to clusters with [[listeners.routes]])`,
			"t.toml: listeners[1].routes: an http listener needs at least one [[listeners.routes]] entry",
			`t.toml: listeners[1].protocl: unknown key (did you mean "protocol"?)`,
		}},
		{"unknown key in inline table", base + "[[clusters]]\nname = \"b\"\nendpoints = [ { address = \"1.2.3.4:80\", wieght = 2 } ]", []string{
			`t.toml: clusters[1].endpoints[0].wieght: unknown key (did you mean "weight"?)`,
		}},
		{"unknown key in nested sub-table", base + "[clusters.retry]\nretries = 3", []string{
			"t.toml: clusters[0].retry.retries: unknown key",
		}},
		{"wrong types", `
[admin]
listen = 9901
[log]
access_log = "yes"
[engine]
event_loops = 2.5
drain_timeout = 30
max_connections = "many"
[demo]
enabled = 1
` + aListener, []string{
			"t.toml: admin.listen: expected a string, got integer 9901",
			`t.toml: log.access_log: expected a boolean, got string "yes"`,
			"t.toml: engine.event_loops: expected an integer, got float 2.5",
			`t.toml: engine.drain_timeout: expected a duration string such as "5s", got integer 30`,
			`t.toml: engine.max_connections: expected an integer, got string "many"`,
			"t.toml: demo.enabled: expected a boolean, got integer 1",
		}},
		{"section of wrong type", "admin = 5\nlisteners = \"web\"", []string{
			"t.toml: admin: expected a table, got integer 5",
			`t.toml: listeners: expected an array, got string "web"`,
		}},
		{"bad duration and size strings", base + `
[listeners.timeouts]
header_read = "10 seconds"
idle_keepalive = "-5s"
body_min_rate = "1KB"
[listeners.limits]
max_body_bytes = -1
max_header_bytes = true
`, []string{
			`t.toml: listeners[0].timeouts.header_read: invalid duration "10 seconds" (use a number with a unit: ns, us, ms, s, m, h, e.g. "250ms")`,
			`t.toml: listeners[0].timeouts.body_min_rate: invalid size "1KB" (use an integer number of bytes or a number with a unit: B, KiB, MiB, GiB, TiB, e.g. "64KiB")`,
			`t.toml: listeners[0].timeouts.idle_keepalive: invalid duration "-5s": must not be negative`,
			`t.toml: listeners[0].limits.max_header_bytes: expected a size (integer bytes or a string such as "64KiB"), got boolean true`,
			"t.toml: listeners[0].limits.max_body_bytes: size must not be negative, got -1",
		}},
		{"wrong type suppresses the follow-on complaint", base + "[[listeners.routes]]\ncluster = 7", []string{
			"t.toml: listeners[0].routes[1].cluster: expected a string, got integer 7",
		}},
		{"log level and ring size", "[log]\nlevel = \"verbose\"\naccess_log_buffer = \"4KiB\"\n[engine]\nring_size = 1000\nevent_loops = -1\nmax_connections = 0" + aListener, []string{
			`t.toml: log.level: must be one of "debug", "info", "warn", "error", got "verbose"`,
			"t.toml: log.access_log_buffer: must be between 64KiB and 64MiB, got 4KiB",
			"t.toml: engine.event_loops: must be between 0 and 1024, got -1",
			"t.toml: engine.ring_size: must be a power of two between 2 and 65536, got 1000",
			"t.toml: engine.max_connections: must be between 1 and 100000000, got 0",
		}},
		{"bad addresses", `
[admin]
listen = "localhost"
[demo]
enabled = true
listen = "127.0.0.1:0"
[[listeners]]
name = "a"
listen = "127.0.0.1:99999"
[[listeners.routes]]
cluster = "app"
[[listeners]]
name = "b"
listen = "bad host!:80"
[[listeners.routes]]
cluster = "app"
[[clusters]]
name = "app"
endpoints = [ { address = "10.0.0.1" }, { address = ":80" }, { address = "10.0.0.1:0" }, { address = "10.0.0.1:http" } ]
`, []string{
			`t.toml: admin.listen: invalid address "localhost": want host:port, such as "127.0.0.1:8080" or "[::1]:8080"`,
			`t.toml: demo.listen: invalid address "127.0.0.1:0": port must be 1-65535`,
			`t.toml: listeners[0].listen: invalid address "127.0.0.1:99999": port must be 1-65535`,
			`t.toml: listeners[1].listen: invalid address "bad host!:80": bad host "bad host!"`,
			`t.toml: clusters[0].endpoints[0].address: invalid address "10.0.0.1": want host:port or ip:port, such as "10.0.0.1:8080"`,
			`t.toml: clusters[0].endpoints[1].address: invalid address ":80": bad or missing host`,
			`t.toml: clusters[0].endpoints[2].address: invalid address "10.0.0.1:0": port 0 is only allowed in clusters used solely by [[xdp.vips]]`,
			`t.toml: clusters[0].endpoints[3].address: invalid address "10.0.0.1:http": port must be 1-65535`,
		}},
		{"missing required keys", "[[listeners]]\n[[listeners.routes]]\n[[clusters]]", []string{
			"t.toml: listeners[0].name: is required",
			"t.toml: listeners[0].listen: is required",
			"t.toml: listeners[0].routes[0].cluster: is required",
			"t.toml: clusters[0].name: is required",
			"t.toml: clusters[0].endpoints: is required: at least one endpoint",
		}},
		{"duplicate names and addresses", base + `
[[listeners]]
name = "web"
listen = "127.0.0.1:8080"
[[listeners.routes]]
cluster = "app"
[[clusters]]
name = "app"
endpoints = [ { address = "127.0.0.1:9001" }, { address = "127.0.0.1:9001" } ]
`, []string{
			`t.toml: listeners[1].name: duplicate listener name "web" (also listeners[0])`,
			`t.toml: listeners[1].listen: listener "web" at "127.0.0.1:8080" overlaps listener "web" at "127.0.0.1:8080" (listeners[0].listen): both would take 127.0.0.1:8080`,
			`t.toml: clusters[1].name: duplicate cluster name "app" (also clusters[0])`,
			`t.toml: clusters[1].endpoints[1].address: duplicate endpoint "127.0.0.1:9001" (also endpoints[0])`,
		}},
		{"routes referencing missing clusters", base + `
[[listeners.routes]]
path = "/x"
cluster = "ghost"
[[listeners]]
name = "db"
listen = ":5432"
protocol = "tcp"
cluster = "gone"
`, []string{
			`t.toml: listeners[0].routes[1].cluster: unknown cluster "ghost"`,
			`t.toml: listeners[1].cluster: unknown cluster "gone"`,
		}},
		{"protocol rules", `
[[listeners]]
name = "h"
listen = ":80"
cluster = "app"
udp_session_timeout = "5s"
[[listeners]]
name = "t"
listen = ":81"
protocol = "tcp"
max_sessions_per_ip = 8
[[listeners.routes]]
cluster = "app"
[[listeners]]
name = "q"
listen = ":82"
protocol = "quic"
[[clusters]]
name = "app"
endpoints = [ { address = "127.0.0.1:9001" } ]
`, []string{
			`t.toml: listeners[0].cluster: not allowed for protocol = "http" (send traffic to clusters with [[listeners.routes]])`,
			"t.toml: listeners[0].udp_session_timeout: only allowed for protocol = \"udp\"",
			"t.toml: listeners[0].routes: an http listener needs at least one [[listeners.routes]] entry",
			"t.toml: listeners[1].cluster: is required",
			"t.toml: listeners[1].max_sessions_per_ip: only allowed for protocol = \"udp\" or \"quic-passthrough\"",
			`t.toml: listeners[1].routes: not allowed for protocol = "tcp" (set cluster instead)`,
			`t.toml: listeners[2].protocol: must be one of "http", "https", "h3", "tcp", "udp", "quic-passthrough", got "quic"`,
		}},
		{"quic-passthrough rules", `
[[listeners]]
name = "q"
listen = ":443"
protocol = "quic-passthrough"
cluster = "rr"
reuse_port = false
udp_session_timeout = "5s"
[listeners.quic_passthrough]
idle_timeout = "0s"
[listeners.proxy_protocol]
accept = true
trusted = ["10.0.0.1"]
[[listeners]]
name = "u"
listen = ":444"
protocol = "udp"
cluster = "h3"
[listeners.quic_passthrough]
idle_timeout = "5s"
[[listeners]]
name = "ok"
listen = ":445"
protocol = "quic-passthrough"
cluster = "h3"
max_sessions_per_ip = 4
[[clusters]]
name = "rr"
endpoints = [ { address = "127.0.0.1:9001" } ]
[[clusters]]
name = "h3"
lb = "maglev"
endpoints = [ { address = "127.0.0.1:9001" } ]
`, []string{
			"t.toml: listeners[0].reuse_port: not used by quic-passthrough listeners (see max_connections, max_sessions_per_ip and [listeners.quic_passthrough])",
			`t.toml: listeners[0].cluster: cluster "rr" has lb = "round_robin": a quic-passthrough listener needs lb = "maglev" or "ring_hash" (new QUIC connections are placed by a hash of their destination connection ID, so that a retransmitted Initial and every node pick the same endpoint)`,
			"t.toml: listeners[0].udp_session_timeout: only allowed for protocol = \"udp\"",
			"t.toml: listeners[0].quic_passthrough.idle_timeout: must be greater than 0s",
			`t.toml: listeners[0].proxy_protocol: not allowed for protocol = "quic-passthrough"`,
			"t.toml: listeners[1].quic_passthrough: only allowed for protocol = \"quic-passthrough\"",
		}},
		{"out-of-range limits", `
[[clusters]]
name = "app"
endpoints = [ { address = "127.0.0.1:9001" } ]
[[listeners]]
name = "web"
listen = "127.0.0.1:8080"
[[listeners.routes]]
cluster = "app"
[[listeners]]
name = "web2"
listen = "127.0.0.1:8081"
max_connections = 0
max_connections_per_ip = -1
queue_size = 0
[listeners.timeouts]
header_read = "0s"
[listeners.limits]
max_request_line = 10
max_header_bytes = "32MiB"
max_header_count = 0
max_chunk_extension = "1MiB"
max_inflight_bytes = "2GiB"
[[listeners.routes]]
cluster = "app"
`, []string{
			"t.toml: listeners[1].max_connections: must be between 1 and 100000000, got 0",
			"t.toml: listeners[1].max_connections_per_ip: must be between 0 and 100000000, got -1",
			"t.toml: listeners[1].queue_size: must be between 1 and 1048576, got 0",
			"t.toml: listeners[1].timeouts.header_read: must be greater than 0s",
			"t.toml: listeners[1].limits.max_request_line: must be between 64B and 1MiB, got 10B",
			"t.toml: listeners[1].limits.max_header_bytes: must be between 1KiB and 16MiB, got 32MiB",
			"t.toml: listeners[1].limits.max_header_count: must be between 1 and 10000, got 0",
			"t.toml: listeners[1].limits.max_chunk_extension: must be between 0B and 64KiB, got 1MiB",
			"t.toml: listeners[1].limits.max_inflight_bytes: must be between 4KiB and 1GiB, got 2GiB",
		}},
		{"route matchers", base + `
[[listeners.routes]]
host = "exa mple.com"
path = "x"
path_prefix = "/y"
methods = ["GET", "BAD METHOD", "get", "Patch"]
headers = { "x.trace" = "ok", "bad name" = "v", x-ok = " padded" }
cluster = "app"
[[listeners.routes]]
host = "*."
cluster = "app"
`, []string{
			`t.toml: listeners[0].routes[1].host: invalid host pattern "exa mple.com": want "*", an exact name or "*.suffix"`,
			`t.toml: listeners[0].routes[1].path: must start with "/" and contain no spaces or control characters, got "x"`,
			"t.toml: listeners[0].routes[1].path_prefix: path and path_prefix are mutually exclusive",
			`t.toml: listeners[0].routes[1].methods[1]: invalid method "BAD METHOD": must be a token such as "GET"`,
			`t.toml: listeners[0].routes[1].methods[2]: method "get" never matches: methods are case-sensitive (did you mean "GET"?)`,
			`t.toml: listeners[0].routes[1].methods[3]: method "Patch" never matches: methods are case-sensitive (did you mean "PATCH"?)`,
			`t.toml: listeners[0].routes[1].headers.bad name: invalid header name "bad name"`,
			`t.toml: listeners[0].routes[1].headers.x-ok: invalid header value " padded": no control characters or surrounding whitespace`,
			`t.toml: listeners[0].routes[2].host: invalid host pattern "*.": want "*", an exact name or "*.suffix"`,
		}},
		{"cluster algorithm settings", `
[[clusters]]
name = "a"
lb = "least_conn"
hash_key = "query"
panic_threshold = 101
on_panic = "drop"
overprovisioning_factor = 0.5
max_idle_per_endpoint = -1
endpoints = [ { address = "10.0.0.1:80", weight = 0, priority = 128 } ]
[clusters.maglev]
table_size = 65536
[clusters.ring_hash]
min_ring_size = 2048
max_ring_size = 1024
[clusters.ewma]
decay = "0s"
[clusters.affinity]
cookie_name = "bad cookie"
path = "nope"
[[clusters]]
name = "b"
hash_key = "header:"
endpoints = [ { address = "10.0.0.1:80" } ]
[clusters.maglev]
table_size = 2097143
[[clusters]]
name = "c"
hash_key = "cookie:sid"
endpoints = [ { address = "10.0.0.1:80" }, { address = "10.0.0.2:80" }, { address = "10.0.0.3:80" } ]
[clusters.maglev]
table_size = 2
` + aListener, []string{
			`t.toml: clusters[0].lb: must be one of "round_robin", "weighted_round_robin", "random", "weighted_random", "p2c", "maglev", "ring_hash", "ewma", "least_connections", "least_requests", "session_affinity", got "least_conn"`,
			`t.toml: clusters[0].hash_key: must be "source_ip", "path", "header:NAME" or "cookie:NAME", got "query"`,
			"t.toml: clusters[0].endpoints[0].weight: must be between 1 and 10000, got 0",
			"t.toml: clusters[0].endpoints[0].priority: must be between 0 and 127, got 128",
			"t.toml: clusters[0].max_idle_per_endpoint: must be between 0 and 100000, got -1",
			"t.toml: clusters[0].panic_threshold: must be between 0 and 100, got 101",
			`t.toml: clusters[0].on_panic: must be one of "all", "fail", got "drop"`,
			"t.toml: clusters[0].overprovisioning_factor: must be between 1 and 100, got 0.5",
			"t.toml: clusters[0].maglev.table_size: must be a prime number (such as 65537 or 131071), got 65536",
			"t.toml: clusters[0].ring_hash.max_ring_size: must be between 2048 and 8388608, got 1024",
			"t.toml: clusters[0].ewma.decay: must be greater than 0s",
			`t.toml: clusters[0].affinity.cookie_name: invalid cookie name "bad cookie": must be a token`,
			`t.toml: clusters[0].affinity.path: must start with "/" and contain no spaces, ';' or control characters, got "nope"`,
			`t.toml: clusters[1].hash_key: invalid header name "" in hash_key "header:"`,
			"t.toml: clusters[1].maglev.table_size: must be a prime between 2 and 1048576, got 2097143",
			"t.toml: clusters[2].maglev.table_size: must be at least the number of endpoints (3), got 2",
		}},
		{"health check", base + `
[clusters.health_check]
type = "icmp"
path = "healthz"
expected_statuses = ["200", "2xx", "500-400", "600"]
interval = "1s"
timeout = "1s"
jitter = "2s"
healthy_threshold = 0
[[clusters]]
name = "b"
endpoints = [ { address = "10.0.0.1:80" } ]
[clusters.health_check]
expected_statuses = []
timeout = "10s"
`, []string{
			`t.toml: clusters[0].health_check.type: must be one of "http", "tcp", "grpc", got "icmp"`,
			`t.toml: clusters[0].health_check.path: must start with "/" and contain no spaces or control characters, got "healthz"`,
			`t.toml: clusters[0].health_check.expected_statuses[1]: invalid status "2xx": want "NNN" or "NNN-NNN" within 100-599`,
			`t.toml: clusters[0].health_check.expected_statuses[2]: invalid status range "500-400": low end above high end`,
			`t.toml: clusters[0].health_check.expected_statuses[3]: invalid status "600": want "NNN" or "NNN-NNN" within 100-599`,
			"t.toml: clusters[0].health_check.timeout: must be less than interval (1s), got 1s",
			"t.toml: clusters[0].health_check.jitter: must not exceed interval (1s), got 2s",
			"t.toml: clusters[0].health_check.healthy_threshold: must be between 1 and 1000, got 0",
			"t.toml: clusters[1].health_check.expected_statuses: must list at least one status or range",
			"t.toml: clusters[1].health_check.timeout: must be less than interval (5s), got 10s",
		}},
		{"h3 clusters", base + `
[[clusters]]
name = "q1"
protocol = "h3"
endpoints = [ { address = "10.0.0.1:443" } ]
[[clusters]]
name = "q2"
protocol = "h3"
tls = { enabled = false }
endpoints = [ { address = "10.0.0.1:443" } ]
[[clusters]]
name = "q3"
protocol = "h3"
tls = { enabled = true }
proxy_protocol = "v2"
endpoints = [ { address = "10.0.0.1:443" } ]
[clusters.health_check]
type = "tcp"
`, []string{
			`t.toml: clusters[1].protocol: "h3" needs tls = { enabled = true, ... } (QUIC is always TLS 1.3: at least ca_file or the system's roots, and server_name when the endpoint address is not the certificate's name)`,
			`t.toml: clusters[2].tls.enabled: must be true for protocol = "h3"`,
			`t.toml: clusters[3].proxy_protocol: needs protocol = "http1": a multiplexed HTTP/2 or HTTP/3 connection carries many clients, and a PROXY header names one`,
			`t.toml: clusters[3].health_check.type: must be "http" for protocol = "h3" (probed over HTTP/3; an h3 endpoint listens on UDP, so a "tcp" probe cannot reach it)`,
		}},
		{"h3 listener windows", base + `
[[listeners]]
name = "q"
listen = "127.0.0.1:8443"
protocol = "h3"
[listeners.tls]
[listeners.quic]
stream_receive_window = "8KiB"
connection_receive_window = "4KiB"
[[listeners.routes]]
cluster = "app"
[[listeners]]
name = "q2"
listen = "127.0.0.1:8444"
protocol = "h3"
[listeners.tls]
[listeners.quic]
stream_receive_window = "2MiB"
connection_receive_window = "1MiB"
[[listeners.routes]]
cluster = "app"
`, []string{
			"t.toml: listeners[1].tls.certificates: an https or h3 listener needs at least one [[listeners.tls.certificates]] entry",
			"t.toml: listeners[1].quic.stream_receive_window: must be between 16KiB and 64MiB, got 8KiB",
			"t.toml: listeners[1].quic.connection_receive_window: must be between 16KiB and 1GiB, got 4KiB",
			"t.toml: listeners[1].quic.connection_receive_window: must be at least stream_receive_window (8KiB), got 4KiB",
			"t.toml: listeners[2].tls.certificates: an https or h3 listener needs at least one [[listeners.tls.certificates]] entry",
			"t.toml: listeners[2].quic.connection_receive_window: must be at least stream_receive_window (2MiB), got 1MiB",
		}},
		{"outlier detection and retry", base + `
[clusters.outlier_detection]
base_ejection_time = "0s"
max_ejection_percent = 150
[clusters.retry]
max_retries = 11
budget_percent = -1.0
min_retries_per_second = -1
retry_on = ["reset", "timeout"]
`, []string{
			"t.toml: clusters[0].outlier_detection.base_ejection_time: must be greater than 0s",
			"t.toml: clusters[0].outlier_detection.max_ejection_percent: must be between 0 and 100, got 150",
			"t.toml: clusters[0].retry.max_retries: must be between 0 and 10, got 11",
			"t.toml: clusters[0].retry.budget_percent: must be between 0 and 100, got -1",
			"t.toml: clusters[0].retry.min_retries_per_second: must be between 0 and 100000, got -1",
			`t.toml: clusters[0].retry.retry_on[1]: must be one of "connect-failure", "reset", "502", "503", "504", got "timeout"`,
		}},
		{"xdp", `
[xdp]
enabled = true
attach_mode = "offload"
conntrack_size = 10
deny = ["10.0.0.0/8", "10.1.2.3/8", "nonsense"]
[[xdp.vips]]
name = "v4"
address = "198.18.0.10"
port = 80
mode = "nat"
cluster = "mixed"
[[xdp.vips]]
name = "v4"
address = "198.18.0.10"
port = 80
mode = "dsr"
snat_address = "2001:db8::1"
cluster = "ghost"
[[xdp.vips]]
name = "v6"
address = "not-an-ip"
port = 70000
protocol = "sctp"
cluster = "mixed"
snat_address = "198.18.0.2"
[[clusters]]
name = "mixed"
endpoints = [ { address = "198.18.1.1:0" }, { address = "2001:db8::2:80" }, { address = "[2001:db8::2]:80" }, { address = "backend.local:80" } ]
` + aListener, []string{
			`t.toml: clusters[0].endpoints[1].address: invalid address "2001:db8::2:80": want host:port or ip:port, such as "10.0.0.1:8080"`,
			"t.toml: xdp.interface: is required when xdp.enabled = true",
			`t.toml: xdp.attach_mode: must be one of "auto", "native", "generic", got "offload"`,
			"t.toml: xdp.conntrack_size: must be between 1024 and 67108864, got 10",
			`t.toml: xdp.deny[1]: CIDR "10.1.2.3/8" has host bits set (did you mean "10.0.0.0/8"?)`,
			`t.toml: xdp.deny[2]: invalid CIDR "nonsense": want such as "192.0.2.0/24" or "2001:db8::/32"`,
			`t.toml: xdp.vips[0].snat_address: is required when mode = "nat"`,
			`t.toml: xdp.vips[0].cluster: endpoint clusters[0].endpoints[2] "[2001:db8::2]:80" is not in the address family of the VIP "198.18.0.10"`,
			`t.toml: xdp.vips[0].cluster: endpoint clusters[0].endpoints[3] "backend.local:80" must be an IP address for an XDP VIP`,
			`t.toml: xdp.vips[1]: duplicate VIP 198.18.0.10 port 80/tcp (also xdp.vips[0])`,
			`t.toml: xdp.vips[1].name: duplicate VIP name "v4" (also xdp.vips[0])`,
			`t.toml: xdp.vips[1].snat_address: "2001:db8::1" is not in the address family of the VIP "198.18.0.10"`,
			`t.toml: xdp.vips[1].cluster: unknown cluster "ghost"`,
			`t.toml: xdp.vips[2].address: invalid IP address "not-an-ip"`,
			"t.toml: xdp.vips[2].port: must be between 0 and 65535, got 70000",
			`t.toml: xdp.vips[2].protocol: must be one of "tcp", "udp", got "sctp"`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Parse("t.toml", []byte(tt.toml))
			if err == nil {
				t.Fatalf("Parse succeeded (%+v), want problems", s.Config)
			}
			if s != nil {
				t.Error("Parse returned a snapshot together with an error")
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("error %T is not a *ValidationError: %v", err, err)
			}
			var got []string
			for _, p := range ve.Problems {
				got = append(got, p.String())
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("problems:\n got:\n\t%s\nwant:\n\t%s", strings.Join(got, "\n\t"), strings.Join(tt.want, "\n\t"))
			}
			if err.Error() != strings.Join(got, "\n") {
				t.Errorf("Error() does not join the problems with newlines: %q", err.Error())
			}
		})
	}
}

func TestValidVariants(t *testing.T) {
	tests := []struct{ name, toml string }{
		{"one listener", aListener},
		{"an h3 cluster", base + `
[[clusters]]
name = "q"
protocol = "h3"
max_streams_per_connection = 50
tls = { enabled = true, server_name = "api.internal" }
endpoints = [ { address = "10.0.0.1:443" } ]
[clusters.health_check]
path = "/healthz"
`},
		{"admin disabled", `[admin]` + "\n" + `listen = ""` + aListener},
		{"tcp and udp listeners", base + `
[[listeners]]
name = "t"
listen = ":9000"
protocol = "tcp"
cluster = "app"
[[listeners]]
name = "u"
listen = ":9000"
protocol = "udp"
cluster = "app"
udp_session_timeout = "5s"
access_log = false
`},
		{"xdp port-0 backends and ipv6", `
[xdp]
enabled = true
interface = "veth0"
deny = ["192.0.2.0/24", "2001:db8::/32"]
[[xdp.vips]]
name = "v4"
address = "198.18.0.10"
snat_address = "198.18.0.2"
cluster = "v4"
[[xdp.vips]]
name = "v6"
address = "2001:db8::10"
port = 53
protocol = "udp"
mode = "dsr"
cluster = "v6"
[[clusters]]
name = "v4"
lb = "maglev"
endpoints = [ { address = "198.18.1.1:0" }, { address = "198.18.1.2:0" } ]
[[clusters]]
name = "v6"
endpoints = [ { address = "[2001:db8::1]:53" } ]
` + aListener},
		{"every lb name", func() string {
			var b strings.Builder
			for _, n := range LBNames {
				b.WriteString("[[clusters]]\nname = \"" + n + "\"\nlb = \"" + n + "\"\nendpoints = [ { address = \"h.example:1\" } ]\n")
			}
			return b.String() + aListener
		}()},
		{"sizes as integers and arrays of tables for endpoints", base + `
[listeners.limits]
max_body_bytes = 1073741824
max_request_line = "4KiB"
[[clusters]]
name = "b"
hash_key = "header:X-User"
[[clusters.endpoints]]
address = "10.0.0.1:80"
weight = 10000
priority = 127
zone = "a"
`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Parse("t.toml", []byte(tt.toml)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestNormalization(t *testing.T) {
	s := mustParse(t, "t.toml", `
[log]
access_log = false
[[listeners]]
name = "a"
listen = ":80"
[[listeners.routes]]
host = "*.Example.COM"
headers = { "x.dotted" = "v" }
cluster = "c"
[[listeners]]
name = "b"
listen = ":81"
access_log = true
[[listeners.routes]]
cluster = "c"
[[clusters]]
name = "c"
endpoints = [ { address = "h:1" } ]
[clusters.health_check]
expected_statuses = ["200", "300-399"]
`)
	a, b := s.Listener("a"), s.Listener("b")
	if *a.AccessLog || !*b.AccessLog {
		t.Errorf("access_log: a=%v (inherit false) b=%v (set true)", *a.AccessLog, *b.AccessLog)
	}
	r := a.Routes[0]
	if r.Host != "*.example.com" {
		t.Errorf("host = %q, want lowercased", r.Host)
	}
	// A dotted header name must survive koanf intact.
	if !reflect.DeepEqual(r.Headers, map[string]string{"x.dotted": "v"}) {
		t.Errorf("headers = %v", r.Headers)
	}
	hc := s.Cluster("c").HealthCheck
	if hc == nil || hc.Type != "http" || hc.Path != "/healthz" || hc.Interval != Duration(5*time.Second) {
		t.Fatalf("health check defaults: %+v", hc)
	}
	want := []StatusRange{{200, 200}, {300, 399}}
	if got := hc.Statuses(); !reflect.DeepEqual(got, want) {
		t.Errorf("Statuses() = %v, want %v", got, want)
	}
	if !want[1].Contains(302) || want[1].Contains(400) {
		t.Error("StatusRange.Contains")
	}
}

func TestParseSize(t *testing.T) {
	good := map[string]Size{"0": 0, "1024": 1024, "512B": 512, "64KiB": 64 << 10, "1MiB": 1 << 20, "1GiB": 1 << 30, "2TiB": 2 << 40, " 8 KiB ": 8 << 10}
	for in, want := range good {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "KiB", "-1", "+1", "1KB", "1.5MiB", "1 k", "99999999999TiB"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) succeeded", in)
		}
	}
	for s, want := range map[Size]string{0: "0B", 1000: "1000B", 1024: "1KiB", 1536: "1536B", 1 << 20: "1MiB", 3 << 30: "3GiB"} {
		if s.String() != want {
			t.Errorf("Size(%d).String() = %q, want %q", int64(s), s.String(), want)
		}
	}
}

func TestParseDuration(t *testing.T) {
	if d, err := ParseDuration("1m30s"); err != nil || d.Std() != 90*time.Second || d.String() != "1m30s" {
		t.Errorf("ParseDuration(1m30s) = %v, %v", d, err)
	}
	for _, in := range []string{"", "5", "-1s", "5 s", "1d"} {
		if _, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) succeeded", in)
		}
	}
}

func TestParseHashKey(t *testing.T) {
	tests := []struct{ in, kind, name string }{
		{"source_ip", HashSourceIP, ""}, {"path", HashPath, ""},
		{"header:X-User", HashHeader, "X-User"}, {"cookie:sid", HashCookie, "sid"},
	}
	for _, tt := range tests {
		k, n, err := ParseHashKey(tt.in)
		if err != nil || k != tt.kind || n != tt.name {
			t.Errorf("ParseHashKey(%q) = %q, %q, %v", tt.in, k, n, err)
		}
	}
	for _, in := range []string{"", "header", "header:", "cookie:a b", "query:x", "Source_IP"} {
		if _, _, err := ParseHashKey(in); err == nil {
			t.Errorf("ParseHashKey(%q) succeeded", in)
		}
	}
}

func TestProblemString(t *testing.T) {
	if got := (Problem{File: "f", Key: "a.b", Msg: "bad"}).String(); got != "f: a.b: bad" {
		t.Errorf("got %q", got)
	}
	if got := (Problem{File: "f", Msg: "bad"}).String(); got != "f: bad" {
		t.Errorf("got %q", got)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(minimalTOML))
	f.Add(DefaultTOML())
	f.Add([]byte(base + "[clusters.health_check]\ninterval = \"1s\""))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse("fuzz.toml", data)
		if (s == nil) == (err == nil) {
			t.Fatalf("Parse returned snapshot %v and error %v", s, err)
		}
		if err != nil && len(Problems(err)) == 0 {
			t.Fatalf("error without problems: %v", err)
		}
	})
}

// overlapTOML is a config with the admin listener on admin ("" disables
// it), the demo upstream on demo ("" leaves it off) and one listener per
// {protocol, listen} pair, named l0, l1, ...
func overlapTOML(admin, demo string, ls ...[2]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[admin]\nlisten = %q\n", admin)
	if demo != "" {
		fmt.Fprintf(&b, "[demo]\nenabled = true\nlisten = %q\n", demo)
	}
	for i, l := range ls {
		fmt.Fprintf(&b, "[[listeners]]\nname = \"l%d\"\nlisten = %q\nprotocol = %q\n", i, l[1], l[0])
		if l[0] == ProtocolHTTP {
			b.WriteString("[[listeners.routes]]\ncluster = \"app\"\n")
		} else {
			b.WriteString("cluster = \"app\"\n")
		}
	}
	b.WriteString("[[clusters]]\nname = \"app\"\nendpoints = [ { address = \"127.0.0.1:9001\" } ]\n")
	return b.String()
}

// TestListenAddressOverlaps: two sockets of one transport whose addresses
// overlap once resolved are refused, naming both; sockets that do not
// overlap are accepted.
func TestListenAddressOverlaps(t *testing.T) {
	// "dual.test" stands for a name with an IPv4 and an IPv6 address.
	orig := lookupHost
	lookupHost = func(ctx context.Context, host string) ([]netip.Addr, error) {
		switch host {
		case "dual.test":
			return []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")}, nil
		case "nowhere.test":
			return nil, errors.New("no such host")
		}
		return orig(ctx, host)
	}
	t.Cleanup(func() { lookupHost = orig })
	type l = [2]string
	http, tcp, udp := ProtocolHTTP, ProtocolTCP, ProtocolUDP
	bad := []struct {
		name        string
		admin, demo string
		ls          []l
		want        string // the one problem
	}{
		{"http and tcp on one address", "", "", []l{{http, "127.0.0.1:8080"}, {tcp, "127.0.0.1:8080"}},
			`listeners[1].listen: listener "l1" at "127.0.0.1:8080" overlaps listener "l0" at "127.0.0.1:8080" (listeners[0].listen): both would take 127.0.0.1:8080`},
		{"an address beside a name that resolves to it", "", "", []l{{http, "127.0.0.1:8080"}, {http, "localhost:8080"}},
			`listeners[1].listen: listener "l1" at "localhost:8080" overlaps listener "l0" at "127.0.0.1:8080" (listeners[0].listen): both would take 127.0.0.1:8080`},
		{"admin on a listener's port", "127.0.0.1:8080", "", []l{{http, "127.0.0.1:8080"}},
			`listeners[0].listen: listener "l0" at "127.0.0.1:8080" overlaps the admin listener at "127.0.0.1:8080" (admin.listen): both would take 127.0.0.1:8080`},
		{"admin by name beside a wildcard listener", "localhost:9901", "", []l{{tcp, "0.0.0.0:9901"}},
			`listeners[0].listen: listener "l0" at "0.0.0.0:9901" overlaps the admin listener at "localhost:9901" (admin.listen): both would take 127.0.0.1:9901`},
		{"IPv4 wildcard beside a specific address", "", "", []l{{tcp, "0.0.0.0:8080"}, {http, "127.0.0.1:8080"}},
			`listeners[1].listen: listener "l1" at "127.0.0.1:8080" overlaps listener "l0" at "0.0.0.0:8080" (listeners[0].listen): both would take 127.0.0.1:8080`},
		{"empty host beside IPv6 loopback", "", "", []l{{http, ":8080"}, {tcp, "[::1]:8080"}},
			`listeners[1].listen: listener "l1" at "[::1]:8080" overlaps listener "l0" at ":8080" (listeners[0].listen): both would take [::1]:8080`},
		{"IPv6 wildcard beside IPv6 loopback", "", "", []l{{http, "[::]:8080"}, {http, "[::1]:8080"}},
			`listeners[1].listen: listener "l1" at "[::1]:8080" overlaps listener "l0" at "[::]:8080" (listeners[0].listen): both would take [::1]:8080`},
		{"two wildcards", "", "", []l{{http, "0.0.0.0:8080"}, {tcp, ":8080"}},
			`listeners[1].listen: listener "l1" at ":8080" overlaps listener "l0" at "0.0.0.0:8080" (listeners[0].listen): both would take every IPv4 address on port 8080`},
		{"dual-stack admin wildcard beside an IPv4 listener", "[::]:8080", "", []l{{http, "127.0.0.1:8080"}},
			`listeners[0].listen: listener "l0" at "127.0.0.1:8080" overlaps the admin listener at "[::]:8080" (admin.listen): both would take 127.0.0.1:8080`},
		{"IPv4-mapped IPv6 is IPv4", "", "", []l{{tcp, "[::ffff:127.0.0.1]:8080"}, {http, "127.0.0.1:8080"}},
			`listeners[1].listen: listener "l1" at "127.0.0.1:8080" overlaps listener "l0" at "[::ffff:127.0.0.1]:8080" (listeners[0].listen): both would take 127.0.0.1:8080`},
		{"demo upstream beside a wildcard tcp listener", "", "127.0.0.1:9000", []l{{tcp, "0.0.0.0:9000"}},
			`listeners[0].listen: listener "l0" at "0.0.0.0:9000" overlaps the demo upstream at "127.0.0.1:9000" (demo.listen): both would take 127.0.0.1:9000`},
		{"two udp listeners", "", "", []l{{udp, "127.0.0.1:5353"}, {udp, "localhost:5353"}},
			`listeners[1].listen: listener "l1" at "localhost:5353" overlaps listener "l0" at "127.0.0.1:5353" (listeners[0].listen): both would take 127.0.0.1:5353`},
		{"a name with two families takes both", "", "", []l{{http, "dual.test:8080"}, {tcp, "[::1]:8080"}},
			`listeners[1].listen: listener "l1" at "[::1]:8080" overlaps listener "l0" at "dual.test:8080" (listeners[0].listen): both would take [::1]:8080`},
		{"a name that does not resolve", "", "", []l{{http, "nowhere.test:8080"}},
			`listeners[0].listen: cannot resolve host "nowhere.test": no such host`},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("t.toml", []byte(overlapTOML(tc.admin, tc.demo, tc.ls...)))
			ps := Problems(err)
			if len(ps) != 1 || ps[0].String() != "t.toml: "+tc.want {
				t.Fatalf("problems %v\nwant t.toml: %s", ps, tc.want)
			}
		})
	}
	good := []struct {
		name        string
		admin, demo string
		ls          []l
	}{
		{"tcp and udp on one address", "", "", []l{{tcp, "127.0.0.1:8080"}, {udp, "127.0.0.1:8080"}}},
		{"admin beside a udp listener on its port", "127.0.0.1:9901", "", []l{{udp, "127.0.0.1:9901"}}},
		{"two loopback addresses", "", "", []l{{http, "127.0.0.1:8080"}, {tcp, "127.0.0.2:8080"}}},
		{"two ports", "", "", []l{{http, "127.0.0.1:8080"}, {http, "localhost:8081"}}},
		{"two families", "", "", []l{{http, "[::1]:8080"}, {http, "127.0.0.1:8080"}}},
		// Listeners bind IPv6 addresses with IPV6_V6ONLY.
		{"IPv6 and IPv4 wildcards", "", "", []l{{http, "[::]:8080"}, {tcp, "0.0.0.0:8080"}}},
	}
	for _, tc := range good {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Parse("t.toml", []byte(overlapTOML(tc.admin, tc.demo, tc.ls...))); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestAdminPprofDefault: /debug/pprof/ is on by default only where the
// admin listener takes loopback addresses alone.
func TestAdminPprofDefault(t *testing.T) {
	for _, tc := range []struct {
		admin, extra   string
		loopback, want bool
	}{
		{"127.0.0.1:9901", "", true, true},
		{"localhost:9901", "", true, true},
		{"[::1]:9901", "", true, true},
		{"0.0.0.0:9901", "", false, false},
		{":9901", "", false, false},
		{"192.0.2.1:9901", "", false, false},
		{"", "", false, false},
		{"0.0.0.0:9901", "pprof = true", false, true},
		{"127.0.0.1:9901", "pprof = false", true, false},
	} {
		s := mustParse(t, "t.toml", fmt.Sprintf("[admin]\nlisten = %q\n%s\n", tc.admin, tc.extra)+aListener)
		a := s.Config.Admin
		if a.Loopback() != tc.loopback || a.Pprof == nil || *a.Pprof != tc.want {
			t.Errorf("admin %q %s: loopback %v pprof %v, want %v %v", tc.admin, tc.extra, a.Loopback(), a.Pprof, tc.loopback, tc.want)
		}
	}
}

func TestAdminTokenFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good", "  s3cr3t-token\n")
	if tok, err := ReadToken(good); err != nil || tok != "s3cr3t-token" {
		t.Fatalf("ReadToken = %q, %v", tok, err)
	}
	mustParse(t, "t.toml", fmt.Sprintf("[admin]\ntoken_file = %q\n", good)+aListener)
	for _, tc := range []struct{ path, want string }{
		{filepath.Join(dir, "missing"), "read token: open " + filepath.Join(dir, "missing") + ": no such file or directory"},
		{write("empty", " \n\t\n"), fmt.Sprintf("token file %q is empty", filepath.Join(dir, "empty"))},
		{write("two", "two words\n"), fmt.Sprintf("token file %q: the token must be one word of visible ASCII characters", filepath.Join(dir, "two"))},
	} {
		_, err := Parse("t.toml", []byte(fmt.Sprintf("[admin]\ntoken_file = %q\n", tc.path)+aListener))
		ps := Problems(err)
		if len(ps) != 1 || ps[0].String() != "t.toml: admin.token_file: "+tc.want {
			t.Errorf("%s: problems %v, want %q", tc.path, ps, tc.want)
		}
	}
}
