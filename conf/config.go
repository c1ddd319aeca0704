// SPDX-License-Identifier: GPL-3.0-only

package conf

// This file is the schema. Every field carries the doc comment an operator
// reads (CONFIG.md repeats it, and a test keeps the two in step), and every
// struct's defaults sit right below it in setDefaults. A default is applied
// before the file's keys are laid over it, so a key absent from the file keeps
// the value written here.

// Load-balancing algorithm names accepted by Cluster.LB.
const (
	LBRoundRobin         = "round_robin"
	LBWeightedRoundRobin = "weighted_round_robin"
	LBRandom             = "random"
	LBWeightedRandom     = "weighted_random"
	LBP2C                = "p2c"
	LBMaglev             = "maglev"
	LBRingHash           = "ring_hash"
	LBEWMA               = "ewma"
	LBLeastConnections   = "least_connections"
	LBLeastRequests      = "least_requests"
	LBSessionAffinity    = "session_affinity"
)

// LBNames lists every load-balancing algorithm name, in documentation order.
var LBNames = []string{
	LBRoundRobin, LBWeightedRoundRobin, LBRandom, LBWeightedRandom, LBP2C,
	LBMaglev, LBRingHash, LBEWMA, LBLeastConnections, LBLeastRequests,
	LBSessionAffinity,
}

// Listener and VIP protocols.
const (
	ProtocolHTTP  = "http"
	ProtocolHTTPS = "https"
	ProtocolH3    = "h3"
	ProtocolTCP   = "tcp"
	ProtocolUDP   = "udp"
	// ProtocolQUICPassthrough routes QUIC datagrams to a cluster by their
	// connection IDs without decrypting them (engine/l4_quic.go).
	ProtocolQUICPassthrough = "quic-passthrough"
)

// IsHTTP reports whether a listener protocol is L7 HTTP (http, https or h3).
func IsHTTP(protocol string) bool {
	return protocol == ProtocolHTTP || protocol == ProtocolHTTPS || protocol == ProtocolH3
}

// Config is the whole file. Its zero value is not useful: configs come from
// Parse or Load, which apply the defaults and validate.
type Config struct {
	// Admin is the admin listener (/metrics, /livez, /healthz, /readyz,
	// /debug/pprof/).
	Admin Admin `koanf:"admin"`
	// Log controls the process log and the access log.
	Log Log `koanf:"log"`
	// Engine sizes the event loops and the process-wide limits.
	Engine Engine `koanf:"engine"`
	// Process is the pid file, config-file watching and binary upgrades.
	Process Process `koanf:"process"`
	// Demo is the tiny built-in upstream used by the default config.
	Demo Demo `koanf:"demo"`
	// Listeners are the L7 (http, https, h3) and userspace L4 (tcp, udp,
	// quic-passthrough) listeners.
	Listeners []Listener `koanf:"listeners"`
	// Clusters are the named groups of upstream endpoints that routes,
	// tcp/udp listeners and XDP VIPs send traffic to.
	Clusters []Cluster `koanf:"clusters"`
	// XDP is the kernel L4 load balancer. Absent means disabled.
	XDP XDP `koanf:"xdp"`
	// ControlPlane says where the config lives: this file (standalone) or
	// etcd (HA, shared by every node).
	ControlPlane ControlPlane `koanf:"control_plane"`
}

func (c *Config) setDefaults() {}

// Admin is the [admin] section.
type Admin struct {
	// Listen is the host:port of the admin HTTP listener; "" disables it.
	// Default: "127.0.0.1:9901".
	Listen string `koanf:"listen"`
	// Pprof serves /debug/pprof/ on the admin listener. When unset it is on
	// only if admin.listen is a loopback address; in a Snapshot it is never
	// nil. Default: auto.
	Pprof *bool `koanf:"pprof"`
	// TokenFile is the path of a file whose trimmed contents are the admin
	// bearer token; when set, every admin endpoint but /healthz and /readyz
	// needs "Authorization: Bearer <token>" (401 otherwise). "" means no
	// token. Default: "".
	TokenFile string `koanf:"token_file"`

	// loopback is set by validation: admin.listen binds loopback
	// addresses only.
	loopback bool
}

func (a *Admin) setDefaults() {
	a.Listen = "127.0.0.1:9901"
	a.Pprof = nil
	a.TokenFile = ""
}

// Loopback reports whether admin.listen binds loopback addresses only (as
// resolved when the config was validated).
func (a *Admin) Loopback() bool { return a.loopback }

// Log is the [log] section.
type Log struct {
	// Level is the minimum level written to stderr: debug, info, warn or
	// error. Default: "info".
	Level string `koanf:"level"`
	// AccessLog writes one JSON line per request; listeners inherit it unless
	// they set their own access_log. Default: true.
	AccessLog bool `koanf:"access_log"`
	// AccessLogFile is the file access-log lines are appended to; "" writes
	// them to stderr with the process log. The file is reopened on SIGUSR1
	// (logrotate's postrotate). Default: "".
	AccessLogFile string `koanf:"access_log_file"`
	// AccessLogBuffer is how much access log each event loop holds while a
	// single writer catches up, 64KiB to 64MiB; when it is full, lines are
	// dropped and counted, never waited for. Default: "256KiB".
	AccessLogBuffer Size `koanf:"access_log_buffer"`
}

func (l *Log) setDefaults() {
	l.Level = "info"
	l.AccessLog = true
	l.AccessLogFile = ""
	l.AccessLogBuffer = 256 * KiB
}

// Engine is the [engine] section.
type Engine struct {
	// EventLoops is the number of event loops; 0 means one per CPU.
	// Default: 0.
	EventLoops int `koanf:"event_loops"`
	// RingSize is the capacity of each per-loop bounded ring between pipeline
	// stages; a power of two from 2 to 65536. A full ring is backpressure.
	// Default: 1024.
	RingSize int `koanf:"ring_size"`
	// DrainSettle is how long SIGTERM keeps serving normally after /readyz
	// turns 503, so that load balancers in front notice and stop sending
	// before the drain starts. SIGINT skips it. Default: "5s".
	DrainSettle Duration `koanf:"drain_settle"`
	// DrainTimeout is how long shutdown and reload wait for in-flight
	// connections before closing them. Default: "30s".
	DrainTimeout Duration `koanf:"drain_timeout"`
	// MaxConnections caps client connections across the whole process.
	// Default: 100000.
	MaxConnections int `koanf:"max_connections"`
}

func (e *Engine) setDefaults() {
	e.EventLoops = 0
	e.RingSize = 1024
	e.DrainSettle = Duration(5 * second)
	e.DrainTimeout = Duration(30 * second)
	e.MaxConnections = 100000
}

// Process is the [process] section.
type Process struct {
	// PIDFile is a file the process writes its PID to once it serves and
	// removes when it exits; after a USR2 upgrade the new process writes its
	// own PID there. "" writes none. Default: "".
	PIDFile string `koanf:"pid_file"`
	// WatchConfig polls the config file every second and reloads it when
	// its content changed, as SIGHUP does. Default: true.
	WatchConfig bool `koanf:"watch_config"`
	// UpgradeTimeout is how long a USR2 upgrade waits for the new process to
	// report that it serves; after it the new process is killed and the
	// running one keeps serving. Default: "10s".
	UpgradeTimeout Duration `koanf:"upgrade_timeout"`
}

func (p *Process) setDefaults() {
	p.PIDFile = ""
	p.WatchConfig = true
	p.UpgradeTimeout = Duration(10 * second)
}

// Control-plane backends accepted by ControlPlane.Backend.
const (
	BackendFile = "file"
	BackendEtcd = "etcd"
)

// ControlPlane is the [control_plane] section.
type ControlPlane struct {
	// Backend is where the config lives: "file" (this file, standalone) or
	// "etcd" (the rest of the config is read from etcd and watched there;
	// a node's own file then holds only [control_plane], [admin] and
	// [log]). Default: "file".
	Backend string `koanf:"backend"`
	// Endpoints are the etcd client URLs, http://host:port. Default: ["http://127.0.0.1:2379"].
	Endpoints []string `koanf:"endpoints"`
	// Prefix is the etcd key prefix every key of the gateway lives under:
	// PREFIX/config, PREFIX/nodes/ID, PREFIX/health/ID. It starts with "/"
	// and does not end with one. Default: "/expressgateway".
	Prefix string `koanf:"prefix"`
	// NodeID names this node in the membership and the shared health; ""
	// means the host name. Letters, digits, ".", "_" and "-", at most 128.
	// Default: "".
	NodeID string `koanf:"node_id"`
	// LeaseTTL is the membership lease: a node that stops renewing it
	// leaves GET /nodes, and its health reports are dropped, this long
	// after, 2s to 1h. Default: "10s".
	LeaseTTL Duration `koanf:"lease_ttl"`
	// RequestTimeout bounds each etcd request (connect, read, write,
	// lease grant); a store that does not answer within it counts as
	// unreachable. 100ms to 1m. Default: "2s".
	RequestTimeout Duration `koanf:"request_timeout"`
	// Username is the etcd user the gateway authenticates as (etcd's
	// auth, with a role limited to the prefix); "" sends no credentials.
	// Default: "".
	Username string `koanf:"username"`
	// PasswordFile is a file whose trimmed contents are the etcd user's
	// password; required with username. Default: "".
	PasswordFile string `koanf:"password_file"`
	// Zone is this node's zone, for zone-aware routing (clusters with
	// zone_aware) and GET /nodes. Default: "".
	Zone string `koanf:"zone"`
	// Region is this node's region, for zone-aware routing and GET
	// /nodes. Default: "".
	Region string `koanf:"region"`
}

func (c *ControlPlane) setDefaults() {
	c.Backend = BackendFile
	c.Endpoints = []string{"http://127.0.0.1:2379"}
	c.Prefix = "/expressgateway"
	c.NodeID = ""
	c.LeaseTTL = Duration(10 * second)
	c.RequestTimeout = Duration(2 * second)
	c.Username = ""
	c.PasswordFile = ""
	c.Zone = ""
	c.Region = ""
}

// Demo is the [demo] section: a tiny built-in upstream for trying things out.
type Demo struct {
	// Enabled starts the built-in demo upstream. Default: false.
	Enabled bool `koanf:"enabled"`
	// Listen is the host:port the demo upstream listens on.
	// Default: "127.0.0.1:9000".
	Listen string `koanf:"listen"`
}

func (d *Demo) setDefaults() {
	d.Enabled = false
	d.Listen = "127.0.0.1:9000"
}

// Listener is one [[listeners]] entry.
type Listener struct {
	// Name identifies the listener in logs and metrics; required and unique.
	Name string `koanf:"name"`
	// Listen is the host:port to bind; required. An empty host binds all
	// addresses. The port must be 1-65535.
	Listen string `koanf:"listen"`
	// Protocol is http (L7 with routes), https (the same over TLS: see
	// [listeners.tls]), h3 (HTTP/3 over QUIC on a UDP port: see
	// [listeners.tls] and [listeners.quic]), tcp or udp (userspace L4
	// straight to a cluster), or quic-passthrough (QUIC routed to a cluster
	// by connection ID without decrypting: see [listeners.quic_passthrough]).
	// Default: "http".
	Protocol string `koanf:"protocol"`
	// ReusePort opens one SO_REUSEPORT socket per event loop, so the kernel
	// spreads new connections over the loops; false opens one socket that
	// every loop accepts from. udp and quic-passthrough listeners always use
	// one socket per loop. Default: true.
	ReusePort bool `koanf:"reuse_port"`
	// Cluster is where tcp, udp and quic-passthrough listeners send
	// traffic; required for those, not allowed for http (use routes).
	Cluster string `koanf:"cluster"`
	// MaxConnections caps this listener's open client connections (tcp:
	// connection pairs; udp: sessions; quic-passthrough: QUIC connections,
	// the size of its connection ID table) (1 or more). Default: 10000.
	MaxConnections int `koanf:"max_connections"`
	// MaxConnectionsPerIP caps open client connections per client IP (http
	// and tcp; udp listeners use max_sessions_per_ip); 0 means unlimited.
	// Default: 256.
	MaxConnectionsPerIP int `koanf:"max_connections_per_ip"`
	// MaxRequestsPerConnection closes a keep-alive connection after this many
	// requests; 0 means unlimited. Default: 0.
	MaxRequestsPerConnection int `koanf:"max_requests_per_connection"`
	// QueueSize caps the pending requests of this listener per event loop;
	// when it is full new requests get 503 with Retry-After. Default: 1024.
	QueueSize int `koanf:"queue_size"`
	// MergeSlashes turns runs of "/" in request paths into one before
	// routing and forwarding (Envoy's merge_slashes); http only.
	// Default: false.
	MergeSlashes bool `koanf:"merge_slashes"`
	// EscapedSlashes is what happens to %2F and %5C in request paths: "keep"
	// (forwarded as they are, not path separators), "reject" (400) or
	// "unescape" (become "/" before dot-segment removal); http only.
	// Default: "keep".
	EscapedSlashes string `koanf:"escaped_slashes"`
	// AllowGetBody forwards GET and HEAD requests that carry a body (search
	// APIs use them). Off by default because an upstream that ignores such
	// a body reads it as the next request; TRACE never takes one; http
	// only. Default: false.
	AllowGetBody bool `koanf:"allow_get_body"`
	// HTTPVersions are the HTTP versions an http listener speaks on its
	// port: "1.1" (with 1.0) and "2" (HTTP/2 with prior knowledge, told
	// apart by its connection preface). With only "2", a connection that
	// does not open with the preface is closed without a response; http
	// only. Default: ["1.1", "2"].
	HTTPVersions []string `koanf:"http_versions"`
	// AccessLog overrides log.access_log for this listener. When unset it
	// inherits log.access_log; in a Snapshot it is never nil.
	// Default: inherit.
	AccessLog *bool `koanf:"access_log"`
	// UDPSessionTimeout ends a UDP session after this long without a
	// datagram in either direction; udp listeners only. Default: "60s".
	UDPSessionTimeout Duration `koanf:"udp_session_timeout"`
	// MaxSessionsPerIP caps the open UDP sessions of one client IP (over it,
	// datagrams from new source ports of that IP are dropped); udp listeners
	// and, counting the QUIC connections opened from the IP,
	// quic-passthrough listeners; 0 means unlimited. Default: 64.
	MaxSessionsPerIP int `koanf:"max_sessions_per_ip"`
	// Timeouts are the client and upstream timeouts.
	Timeouts Timeouts `koanf:"timeouts"`
	// Limits are the HTTP/1 parsing and buffering limits.
	Limits Limits `koanf:"limits"`
	// HTTP2 are the HTTP/2 limits of an http listener (HTTP/2 with prior
	// knowledge is spoken on the same port as HTTP/1.1).
	HTTP2 HTTP2 `koanf:"http2"`
	// Guards are the listener's DoS guards beyond the limits above
	// (connection and request rates).
	Guards Guards `koanf:"guards"`
	// TLS is the TLS of an https listener: required for https, not allowed
	// otherwise.
	TLS *ListenerTLS `koanf:"tls"`
	// QUIC are the QUIC and HTTP/3 settings of an h3 listener; only
	// allowed for protocol = "h3".
	QUIC ListenerQUIC `koanf:"quic"`
	// QUICPassthrough are the settings of a quic-passthrough listener; only
	// allowed for protocol = "quic-passthrough".
	QUICPassthrough QUICPassthrough `koanf:"quic_passthrough"`
	// AltSvc names an h3 listener that an http or https listener announces
	// to its clients: responses carry `Alt-Svc: h3=":PORT"; ma=86400` with
	// that listener's port. Empty: no announcement. Default: "".
	AltSvc string `koanf:"alt_svc"`
	// altSvcValue is the Alt-Svc field value alt_svc resolves to (set by
	// validation, which sees the h3 listener's port).
	altSvcValue string
	// ProxyProtocol accepts a PROXY protocol v1/v2 header from trusted L4
	// balancers in front (http, https and tcp listeners); the client
	// address it carries is the one routing, per-IP limits,
	// X-Forwarded-For and the access log use. Absent means off.
	ProxyProtocol *ProxyProtocol `koanf:"proxy_protocol"`
	// Routes are tried in order and the first match wins; no match answers
	// 404. http listeners need at least one; tcp and udp take none.
	Routes []Route `koanf:"routes"`
}

// AltSvcValue is the Alt-Svc field value an http or https listener adds to
// its responses (alt_svc resolved to the h3 listener's port); "" for none.
func (l *Listener) AltSvcValue() string { return l.altSvcValue }

func (l *Listener) setDefaults() {
	l.Protocol = ProtocolHTTP
	l.ReusePort = true
	l.MaxConnections = 10000
	l.MaxConnectionsPerIP = 256
	l.MaxRequestsPerConnection = 0
	l.QueueSize = 1024
	l.MergeSlashes = false
	l.EscapedSlashes = "keep"
	l.AllowGetBody = false
	l.HTTPVersions = []string{"1.1", "2"}
	l.AccessLog = nil
	l.UDPSessionTimeout = Duration(60 * second)
	l.MaxSessionsPerIP = 64
}

// Timeouts is a listener's [listeners.timeouts] table.
type Timeouts struct {
	// HeaderRead is the time a client has to send the whole request line and
	// header section (slow-loris guard: 408 and close). Default: "10s".
	HeaderRead Duration `koanf:"header_read"`
	// BodyIdle is the longest pause allowed while a client sends a request
	// body, and while an HTTP/1.1 client takes no byte of a response that
	// waits for it (slow read: guard send_stall). It also bounds how long an
	// HTTP/2 or HTTP/3 GET-like request (GET, HEAD, OPTIONS, DELETE, TRACE
	// without content-length) whose head came without its stream end is
	// held for that end or a body byte before 408. Default: "30s".
	BodyIdle Duration `koanf:"body_idle"`
	// BodyMinRate is the minimum request-body rate in bytes per second,
	// checked after body_min_rate_grace (slow-POST guard); 0 disables.
	// Default: "1KiB".
	BodyMinRate Size `koanf:"body_min_rate"`
	// BodyMinRateGrace is how long a body may be slower than body_min_rate
	// before the rate is enforced. Default: "10s".
	BodyMinRateGrace Duration `koanf:"body_min_rate_grace"`
	// IdleKeepalive closes a client keep-alive connection idle this long.
	// Default: "60s".
	IdleKeepalive Duration `koanf:"idle_keepalive"`
	// UpstreamConnect is the dial timeout to an endpoint; on expiry the
	// client gets 502. Default: "3s".
	UpstreamConnect Duration `koanf:"upstream_connect"`
	// UpstreamResponseHeader is the time an upstream has to send its response
	// header section after the request was sent; on expiry the client gets
	// 504. Default: "30s".
	UpstreamResponseHeader Duration `koanf:"upstream_response_header"`
	// UpstreamIdle closes a pooled idle upstream connection after this long.
	// Default: "60s".
	UpstreamIdle Duration `koanf:"upstream_idle"`
	// TCPIdle closes a tcp listener's proxied connection pair after this long
	// without traffic in either direction. Default: "5m".
	TCPIdle Duration `koanf:"tcp_idle"`
	// WebSocketIdle closes a WebSocket tunnel (after the upstream's 101, or
	// an HTTP/2 extended CONNECT's 200) after this long without a byte in
	// either direction. Default: "1h".
	WebSocketIdle Duration `koanf:"websocket_idle"`
	// WebSocketMaxDuration closes a WebSocket tunnel this long after it
	// opened, busy or not; "0s" means no limit. Default: "0s".
	WebSocketMaxDuration Duration `koanf:"websocket_max_duration"`
}

func (t *Timeouts) setDefaults() {
	t.HeaderRead = Duration(10 * second)
	t.BodyIdle = Duration(30 * second)
	t.BodyMinRate = 1 * KiB
	t.BodyMinRateGrace = Duration(10 * second)
	t.IdleKeepalive = Duration(60 * second)
	t.UpstreamConnect = Duration(3 * second)
	t.UpstreamResponseHeader = Duration(30 * second)
	t.UpstreamIdle = Duration(60 * second)
	t.TCPIdle = Duration(5 * minute)
	t.WebSocketIdle = Duration(60 * minute)
	t.WebSocketMaxDuration = 0
}

// HTTP2 is a listener's [listeners.http2] table. The defaults follow
// Envoy's guidance for an edge proxy.
type HTTP2 struct {
	// MaxConcurrentStreams is SETTINGS_MAX_CONCURRENT_STREAMS: streams a
	// client may have open on one connection; more are refused with
	// RST_STREAM(REFUSED_STREAM). 1 to 10000. Default: 100.
	MaxConcurrentStreams int `koanf:"max_concurrent_streams"`
	// StreamWindow is the flow-control window of each stream: how much
	// request body a client may send before the gateway returns credit,
	// which it does only as the upstream takes the bytes. 16KiB to 16MiB.
	// Default: "64KiB".
	StreamWindow Size `koanf:"stream_window"`
	// ConnectionWindow is the flow-control window of the whole connection.
	// 64KiB to 1GiB. Default: "1MiB".
	ConnectionWindow Size `koanf:"connection_window"`
	// MaxFrameSize is SETTINGS_MAX_FRAME_SIZE, the largest frame a client
	// may send. 16KiB to 16MiB. Default: "16KiB".
	MaxFrameSize Size `koanf:"max_frame_size"`
	// MaxHeaderListSize is SETTINGS_MAX_HEADER_LIST_SIZE, the decoded size
	// of one header block; larger blocks reset their stream. 1KiB to
	// 16MiB. Default: "64KiB".
	MaxHeaderListSize Size `koanf:"max_header_list_size"`
	// MaxContinuationFrames caps the CONTINUATION frames of one header
	// block (CONTINUATION flood). 1 to 10000. Default: 32.
	MaxContinuationFrames int `koanf:"max_continuation_frames"`
	// SettingsTimeout closes a connection whose client does not acknowledge
	// the gateway's SETTINGS within it (SETTINGS_TIMEOUT). Default: "10s".
	SettingsTimeout Duration `koanf:"settings_timeout"`
	// PrematureResetStreams is the window of the Rapid Reset guard: when
	// more than half of a connection's last this many streams were reset
	// (by the client, or by the gateway because of the client's frames)
	// within premature_reset_lifetime of opening, the connection gets
	// GOAWAY ENHANCE_YOUR_CALM and is closed. 10 to 1024. Default: 100.
	PrematureResetStreams int `koanf:"premature_reset_streams"`
	// PrematureResetLifetime is how young a reset stream must be to count
	// as a premature reset. Default: "1s".
	PrematureResetLifetime Duration `koanf:"premature_reset_lifetime"`
	// MaxStreamsPerRead caps the new streams one read of the socket may
	// open; more are refused with RST_STREAM(REFUSED_STREAM) and count as
	// premature resets. 0 means twice max_concurrent_streams (nginx's
	// rule); else 1 to 100000. Default: 0.
	MaxStreamsPerRead int `koanf:"max_streams_per_read"`
	// MaxControlFramesPerSecond caps the SETTINGS, PING, PRIORITY,
	// RST_STREAM, empty DATA and unknown frames a client sends in any one
	// second (CVE-2019-9512, -9514, -9515, -9518 and kin); more is GOAWAY
	// ENHANCE_YOUR_CALM and close. 10 to 1000000. Default: 1000.
	MaxControlFramesPerSecond int `koanf:"max_control_frames_per_second"`
	// MaxWindowUpdatesPerSecond caps the WINDOW_UPDATE frames a client
	// sends in any one second beyond the two (stream and connection) that
	// each DATA frame the gateway sent earns it; more is GOAWAY
	// ENHANCE_YOUR_CALM and close. 10 to 1000000. Default: 10000.
	MaxWindowUpdatesPerSecond int `koanf:"max_window_updates_per_second"`
	// GlitchThreshold closes a connection (GOAWAY ENHANCE_YOUR_CALM) whose
	// glitch score reaches it: every stream error the client caused, stream
	// refused for concurrency, premature reset, empty DATA frame and
	// unknown frame counts one (HAProxy's glitches), so an attacker mixing
	// small abuses is still closed. 0 disables; else 10 to 1000000.
	// Default: 1000.
	GlitchThreshold int `koanf:"glitch_threshold"`
	// StallTimeout resets a stream whose response DATA waits behind the
	// client's zero flow-control window, without progress, this long, and
	// closes a connection whose socket takes no byte for this long while
	// output is pending (zero-window stall, slow read). Default: "30s".
	StallTimeout Duration `koanf:"stall_timeout"`
}

func (h *HTTP2) setDefaults() {
	h.MaxConcurrentStreams = 100
	h.StreamWindow = 64 * KiB
	h.ConnectionWindow = 1 * MiB
	h.MaxFrameSize = 16 * KiB
	h.MaxHeaderListSize = 64 * KiB
	h.MaxContinuationFrames = 32
	h.SettingsTimeout = Duration(10 * second)
	h.PrematureResetStreams = 100
	h.PrematureResetLifetime = Duration(1 * second)
	h.MaxStreamsPerRead = 0
	h.MaxControlFramesPerSecond = 1000
	h.MaxWindowUpdatesPerSecond = 10000
	h.GlitchThreshold = 1000
	h.StallTimeout = Duration(30 * second)
}

// Guards is a listener's [listeners.guards] table: the DoS guards that are
// not tied to one protocol's table (guards/README.md is the catalog). The
// rates are off by default, as in Envoy, HAProxy and nginx: many clients
// can share one address behind NAT, and max_connections_per_ip already
// bounds what one address holds.
type Guards struct {
	// NewConnectionsPerSecond caps how fast one client IP may open
	// connections (a token bucket; http and tcp listeners); over it the
	// connection is closed at accept. 0 disables; else 1 to 1000000.
	// Default: 0.
	NewConnectionsPerSecond int `koanf:"new_connections_per_second"`
	// NewConnectionsBurst is the bucket depth of new_connections_per_second;
	// 0 means the rate itself. 0 to 1000000. Default: 0.
	NewConnectionsBurst int `koanf:"new_connections_burst"`
	// RateLimit caps the requests per second of each client IP (or header
	// value) on this listener, before routing; over it a request gets 429
	// with Retry-After. Off unless requests_per_second is set.
	RateLimit RateLimit `koanf:"rate_limit"`
	// TrackedClients is the number of keys (client IPs, header values) each
	// rate table holds; the tables never grow beyond it, whatever the
	// number of addresses an attacker has. 1024 to 16777216.
	// Default: 65536.
	TrackedClients int `koanf:"tracked_clients"`
	// Penalty is how long a client IP opens no new connection on this
	// listener after a connection guard closed one of its connections for
	// an attack (Rapid Reset, a frame flood, the glitch score); "0s"
	// disables. Up to "1h". Default: "1s".
	Penalty Duration `koanf:"penalty"`
}

func (g *Guards) setDefaults() {
	g.TrackedClients = 64 << 10
	g.Penalty = Duration(1 * second)
	g.RateLimit.setDefaults()
}

// RateLimit is a token-bucket request rate limit: a [listeners.guards]
// rate_limit or a route's rate_limit = { requests_per_second, burst, key }.
type RateLimit struct {
	// RequestsPerSecond is the refill rate; 0 disables the limit; else 1 to
	// 1000000. Default: 0.
	RequestsPerSecond int `koanf:"requests_per_second"`
	// Burst is the bucket depth; 0 means requests_per_second. 0 to 1000000.
	// Default: 0.
	Burst int `koanf:"burst"`
	// Key is what a bucket belongs to: "client_ip", or "header:NAME" (the
	// value of request header NAME; requests without it share one bucket).
	// Default: "client_ip".
	Key string `koanf:"key"`
}

func (r *RateLimit) setDefaults() {
	r.Key = "client_ip"
}

// Limits is a listener's [listeners.limits] table.
type Limits struct {
	// MaxRequestLine caps the request line (method, target, version); longer
	// gets 414. 64 bytes to 1MiB. Default: "8KiB".
	MaxRequestLine Size `koanf:"max_request_line"`
	// MaxHeaderBytes caps the request header section; larger gets 431. 1KiB
	// to 16MiB. Default: "64KiB".
	MaxHeaderBytes Size `koanf:"max_header_bytes"`
	// MaxHeaderCount caps the number of request header fields; more gets 431.
	// 1 to 10000. Default: 100.
	MaxHeaderCount int `koanf:"max_header_count"`
	// MaxBodyBytes caps a request body; larger gets 413. 0 means unlimited.
	// Default: 0.
	MaxBodyBytes Size `koanf:"max_body_bytes"`
	// MaxChunkExtension caps the extension bytes of one chunk-size line;
	// more is a 400 (chunk extension abuse). 0 to 64KiB. Default: 256.
	MaxChunkExtension Size `koanf:"max_chunk_extension"`
	// MaxTrailerBytes caps a chunked body's trailer section. 0 to 16MiB.
	// Default: "16KiB".
	MaxTrailerBytes Size `koanf:"max_trailer_bytes"`
	// MaxInflightBytes is how many bytes of one connection the gateway
	// buffers before it applies backpressure. An HTTP/1.1 client's upload
	// that runs four times this ahead of an h2c, h2 or h3 endpoint's flow
	// control (or of an upstream dial) moves the client's socket to a
	// reader goroutine that stops while this much waits, so TCP holds the
	// client back (metric stream_detach_total{direction="request_bridge"}).
	// 4KiB to 1GiB. Default: "1MiB".
	MaxInflightBytes Size `koanf:"max_inflight_bytes"`
}

func (l *Limits) setDefaults() {
	l.MaxRequestLine = 8 * KiB
	l.MaxHeaderBytes = 64 * KiB
	l.MaxHeaderCount = 100
	l.MaxBodyBytes = 0
	l.MaxChunkExtension = 256
	l.MaxTrailerBytes = 16 * KiB
	l.MaxInflightBytes = 1 * MiB
}

// Route is one [[listeners.routes]] entry. All its conditions must hold.
type Route struct {
	// Host matches the normalised request host (port ignored,
	// case-insensitive, a trailing dot removed): "*" for any, an exact name,
	// or "*.suffix" for any name ending in ".suffix". Stored lowercased.
	// Default: "*".
	Host string `koanf:"host"`
	// Path matches the normalised request path (the one forwarded) exactly;
	// it must start with "/". Not together with path_prefix; with neither,
	// any path matches. Default: "".
	Path string `koanf:"path"`
	// PathPrefix matches normalised request paths that start with it; it
	// must start with "/". Not together with path; with neither, any path
	// matches. Default: "".
	PathPrefix string `koanf:"path_prefix"`
	// Methods, when not empty, restricts the route to these methods
	// (case-sensitive tokens such as "GET"; one with lower-case letters
	// would never match and is refused); empty matches any method.
	// Default: [].
	Methods []string `koanf:"methods"`
	// Headers, when not empty, requires each named request header to be
	// present with exactly this value (names are case-insensitive), as in
	// headers = { "x-env" = "prod" }. Default: {}.
	Headers map[string]string `koanf:"headers"`
	// Cluster receives the matching requests; required, must name a
	// [[clusters]] entry.
	Cluster string `koanf:"cluster"`
	// Timeout bounds each exchange on this route from its request head to
	// the end of its response (the upstream leg's deadline: 504, or
	// DEADLINE_EXCEEDED for gRPC); a gRPC request's grpc-timeout shortens
	// it, never lengthens it. A WebSocket tunnel, once open, is bounded by
	// websocket_idle and websocket_max_duration instead. "0s" means none.
	// Default: "0s".
	Timeout Duration `koanf:"timeout"`
	// RateLimit caps the requests per second of this route per key, as in
	// rate_limit = { requests_per_second = 100, burst = 200, key =
	// "client_ip" }; over it a request gets 429 with Retry-After. Each route
	// has its own table of listeners.guards.tracked_clients keys. Off unless
	// requests_per_second is set.
	RateLimit RateLimit `koanf:"rate_limit"`
}

func (r *Route) setDefaults() {
	r.Host = "*"
	r.RateLimit.setDefaults()
}

// Cluster is one [[clusters]] entry.
type Cluster struct {
	// Name identifies the cluster; required and unique.
	Name string `koanf:"name"`
	// LB is the load-balancing algorithm: round_robin, weighted_round_robin,
	// random, weighted_random, p2c, maglev, ring_hash, ewma,
	// least_connections, least_requests or session_affinity.
	// Default: "round_robin".
	LB string `koanf:"lb"`
	// HashKey is what maglev and ring_hash hash: "source_ip", "path",
	// "header:NAME" or "cookie:NAME". Default: "source_ip".
	HashKey string `koanf:"hash_key"`
	// Endpoints are the upstream addresses; at least one.
	Endpoints []Endpoint `koanf:"endpoints"`
	// Protocol is what the gateway speaks to the endpoints: "http1"
	// (HTTP/1.1, a pooled connection per request in flight; over TLS when
	// tls is enabled), "h2c" (HTTP/2 with prior knowledge, streams
	// multiplexed on pooled connections), "h2" (HTTP/2 over TLS, by
	// ALPN; needs tls) or "h3" (HTTP/3 over QUIC: the endpoint addresses
	// are UDP; streams multiplexed on one QUIC connection per event loop
	// and endpoint, more when the endpoint's stream limit is reached;
	// needs tls, spoken as TLS 1.3 with ALPN h3 whatever min_version
	// says; a health_check must be of type "http", and probes over
	// HTTP/3 too). Any client protocol goes to any. Default: "http1".
	Protocol string `koanf:"protocol"`
	// TLS is TLS to the endpoints, as an inline table: tls = { enabled =
	// true, ca_file = "ca.pem", server_name = "api.internal" }. Absent
	// means cleartext.
	TLS *ClusterTLS `koanf:"tls"`
	// ProxyProtocol sends a PROXY protocol header with the client's address
	// at the start of every upstream connection: "" (none), "v1" or "v2".
	// With it, upstream connections are not shared between clients (each
	// request has its own); http1 (and tcp listeners) only. Default: "".
	ProxyProtocol string `koanf:"proxy_protocol"`
	// MaxStreamsPerConnection caps the concurrent streams the gateway opens
	// on one h2c, h2 or h3 upstream connection (the endpoint's own
	// SETTINGS_MAX_CONCURRENT_STREAMS, or QUIC MAX_STREAMS, caps it too);
	// more open another connection. h2c, h2 and h3 only. 1 to 10000.
	// Default: 100.
	MaxStreamsPerConnection int `koanf:"max_streams_per_connection"`
	// MaxIdlePerEndpoint caps idle pooled upstream connections per endpoint
	// and per event loop; 0 disables pooling. 0 to 100000. Default: 64.
	MaxIdlePerEndpoint int `koanf:"max_idle_per_endpoint"`
	// PanicThreshold is the healthy percentage (0 to 100) below which the
	// cluster is in panic and on_panic applies. Default: 50.0.
	PanicThreshold float64 `koanf:"panic_threshold"`
	// OnPanic is what a panicking cluster does: "all" routes to every
	// endpoint regardless of health, "fail" answers 503. Default: "all".
	OnPanic string `koanf:"on_panic"`
	// OverprovisioningFactor scales a priority level's healthy share before
	// traffic spills to the next level (1 or more, like Envoy's).
	// Default: 1.4.
	OverprovisioningFactor float64 `koanf:"overprovisioning_factor"`
	// ZoneAware turns on zone-aware routing: each priority level keeps the
	// traffic of this node in its own zone (control_plane.zone) while that
	// zone holds its share of the level's healthy capacity, and spills the
	// rest by spare capacity to the zones of its region, then to other
	// regions. Default: false.
	ZoneAware bool `koanf:"zone_aware"`
	// ZoneAwareMinSize is the number of endpoints a priority level needs
	// for zone-aware routing (Envoy's min_cluster_size); a smaller level
	// routes over every zone. 1 to 100000. Default: 6.
	ZoneAwareMinSize int `koanf:"zone_aware_min_size"`
	// Maglev tunes lb = "maglev" (and the XDP Maglev tables).
	Maglev Maglev `koanf:"maglev"`
	// RingHash tunes lb = "ring_hash".
	RingHash RingHash `koanf:"ring_hash"`
	// EWMA tunes lb = "ewma".
	EWMA EWMA `koanf:"ewma"`
	// Affinity tunes lb = "session_affinity".
	Affinity Affinity `koanf:"affinity"`
	// HealthCheck is the active health check; nil (table absent) means none.
	HealthCheck *HealthCheck `koanf:"health_check"`
	// OutlierDetection is passive health checking. Without the table a
	// cluster still ejects an endpoint after consecutive connect failures
	// (DefaultOutlierDetection); in a Snapshot it is never nil.
	OutlierDetection *OutlierDetection `koanf:"outlier_detection"`
	// Retry is the retry policy: connect failures for every method, other
	// failures for idempotent requests.
	Retry Retry `koanf:"retry"`
}

func (c *Cluster) setDefaults() {
	c.LB = LBRoundRobin
	c.HashKey = "source_ip"
	c.MaxIdlePerEndpoint = 64
	c.Protocol = "http1"
	c.MaxStreamsPerConnection = 100
	c.PanicThreshold = 50.0
	c.OnPanic = "all"
	c.OverprovisioningFactor = 1.4
	c.ZoneAware = false
	c.ZoneAwareMinSize = 6
}

// Endpoint is one inline table in a cluster's endpoints array.
type Endpoint struct {
	// Address is host:port or ip:port; required. Port 0 is allowed only in
	// clusters used solely by XDP VIPs (the VIP's port is kept).
	Address string `koanf:"address"`
	// Weight is the endpoint's relative share, 1 to 10000. Default: 1.
	Weight int `koanf:"weight"`
	// Zone is the endpoint's zone: a label in metrics and logs, and its
	// locality for zone-aware routing. Default: "".
	Zone string `koanf:"zone"`
	// Region is the region of the endpoint's zone, for zone-aware routing.
	// Default: "".
	Region string `koanf:"region"`
	// Priority is the failover level, 0 (highest) to 127. Default: 0.
	Priority int `koanf:"priority"`
}

func (e *Endpoint) setDefaults() {
	e.Weight = 1
}

// Maglev is a cluster's [clusters.maglev] table.
type Maglev struct {
	// TableSize is the Maglev lookup table size: a prime, at least the number
	// of endpoints, at most 1048576. Default: 65537.
	TableSize int `koanf:"table_size"`
	// Seed perturbs the endpoint permutations; nodes with equal endpoints and
	// seed build byte-identical tables. Default: 0.
	Seed uint64 `koanf:"seed"`
}

func (m *Maglev) setDefaults() {
	m.TableSize = 65537
	m.Seed = 0
}

// RingHash is a cluster's [clusters.ring_hash] table.
type RingHash struct {
	// MinRingSize is the minimum number of virtual nodes on the ring (1 or
	// more). Default: 1024.
	MinRingSize int `koanf:"min_ring_size"`
	// MaxRingSize is the maximum number of virtual nodes on the ring, from
	// min_ring_size to 8388608. Default: 8388608.
	MaxRingSize int `koanf:"max_ring_size"`
}

func (r *RingHash) setDefaults() {
	r.MinRingSize = 1024
	r.MaxRingSize = 8388608
}

// EWMA is a cluster's [clusters.ewma] table.
type EWMA struct {
	// Decay is the time constant of the peak-EWMA latency average (more than
	// 0). Default: "10s".
	Decay Duration `koanf:"decay"`
}

func (e *EWMA) setDefaults() {
	e.Decay = Duration(10 * second)
}

// Affinity is a cluster's [clusters.affinity] table: the session cookie.
type Affinity struct {
	// CookieName is the name of the affinity cookie (a token).
	// Default: "EG_AFFINITY".
	CookieName string `koanf:"cookie_name"`
	// TTL is the cookie's Max-Age; "0s" makes it a session cookie.
	// Default: "1h".
	TTL Duration `koanf:"ttl"`
	// Secure sets the cookie's Secure attribute. Default: false.
	Secure bool `koanf:"secure"`
	// HTTPOnly sets the cookie's HttpOnly attribute. Default: true.
	HTTPOnly bool `koanf:"http_only"`
	// Path is the cookie's Path attribute; must start with "/". Default: "/".
	Path string `koanf:"path"`
}

func (a *Affinity) setDefaults() {
	a.CookieName = "EG_AFFINITY"
	a.TTL = Duration(hour)
	a.Secure = false
	a.HTTPOnly = true
	a.Path = "/"
}

// HealthCheck is a cluster's [clusters.health_check] table.
type HealthCheck struct {
	// Type is the probe: "http" (GET path; over HTTP/3 for an h3
	// cluster), "tcp" (connect) or "grpc" (grpc.health.v1.Health/Check
	// over h2c); an h3 cluster takes "http" only. Default: "http".
	Type string `koanf:"type"`
	// Path is the HTTP probe's request path; must start with "/".
	// Default: "/healthz".
	Path string `koanf:"path"`
	// Host is the HTTP probe's Host header; "" uses the endpoint address.
	// Default: "".
	Host string `koanf:"host"`
	// ExpectedStatuses are the HTTP statuses that count as healthy, each
	// "NNN" or "NNN-NNN" within 100-599. Default: ["200-399"].
	ExpectedStatuses []string `koanf:"expected_statuses"`
	// Interval is the time between probes of one endpoint. Default: "5s".
	Interval Duration `koanf:"interval"`
	// Timeout is how long one probe may take; less than interval.
	// Default: "1s".
	Timeout Duration `koanf:"timeout"`
	// Jitter adds a random delay up to this much to each interval (at most
	// interval). Default: "0s".
	Jitter Duration `koanf:"jitter"`
	// HealthyThreshold is how many consecutive passes bring an endpoint
	// back (1 or more). Default: 2.
	HealthyThreshold int `koanf:"healthy_threshold"`
	// UnhealthyThreshold is how many consecutive failures take an endpoint
	// out (1 or more). Default: 3.
	UnhealthyThreshold int `koanf:"unhealthy_threshold"`
	// GRPCService is the service name sent in the gRPC health request; ""
	// asks about the server as a whole. Default: "".
	GRPCService string `koanf:"grpc_service"`
}

func (h *HealthCheck) setDefaults() {
	h.Type = "http"
	h.Path = "/healthz"
	h.ExpectedStatuses = []string{"200-399"}
	h.Interval = Duration(5 * second)
	h.Timeout = Duration(1 * second)
	h.Jitter = 0
	h.HealthyThreshold = 2
	h.UnhealthyThreshold = 3
}

// OutlierDetection is a cluster's [clusters.outlier_detection] table.
type OutlierDetection struct {
	// Consecutive5xx ejects an endpoint after this many 5xx responses in a
	// row; 0 disables this trigger. Default: 5.
	Consecutive5xx int `koanf:"consecutive_5xx"`
	// ConsecutiveConnectFailures ejects an endpoint after this many failed
	// connects in a row; 0 disables this trigger. Default: 3.
	ConsecutiveConnectFailures int `koanf:"consecutive_connect_failures"`
	// BaseEjectionTime is the ejection time, multiplied by the number of
	// times the endpoint was ejected. Default: "10s".
	BaseEjectionTime Duration `koanf:"base_ejection_time"`
	// MaxEjectionPercent caps the share of a cluster's endpoints ejected at
	// once, 0 to 100; one ejection is always allowed, but never of the last
	// healthy endpoint. Default: 50.
	MaxEjectionPercent int `koanf:"max_ejection_percent"`
}

func (o *OutlierDetection) setDefaults() {
	o.Consecutive5xx = 5
	o.ConsecutiveConnectFailures = 3
	o.BaseEjectionTime = Duration(10 * second)
	o.MaxEjectionPercent = 50
}

// DefaultOutlierDetection is what a cluster without an
// [clusters.outlier_detection] table runs: the table's defaults with the
// 5xx trigger off. A refused or timed-out connect says the endpoint is
// gone, whatever the application does, so it is acted on by default
// (nginx's max_fails=1 fail_timeout=10s); a 5xx is the application's
// answer and ejecting on it is left to an explicit table, as in Envoy.
func DefaultOutlierDetection() *OutlierDetection {
	o := &OutlierDetection{}
	o.setDefaults()
	o.Consecutive5xx = 0
	return o
}

// Retry values accepted in Retry.RetryOn.
const (
	RetryOnConnectFailure = "connect-failure"
	RetryOnReset          = "reset"
	RetryOn502            = "502"
	RetryOn503            = "503"
	RetryOn504            = "504"
)

// Retry is a cluster's [clusters.retry] table. A request that could not be
// connected is retried whatever its method (nothing was sent); after any
// other failure only idempotent requests whose body was not yet streamed
// upstream are. Retries go to a different endpoint.
type Retry struct {
	// MaxRetries is the number of retries after the first try, 0 to 10.
	// Default: 1.
	MaxRetries int `koanf:"max_retries"`
	// PerTryTimeout bounds each try; "0s" means only the listener timeouts
	// apply. Default: "0s".
	PerTryTimeout Duration `koanf:"per_try_timeout"`
	// BudgetPercent caps retries as a percentage (0 to 100) of the cluster's
	// recent requests. Default: 20.0.
	BudgetPercent float64 `koanf:"budget_percent"`
	// MinRetriesPerSecond are allowed whatever budget_percent says, so that
	// a quiet cluster can retry at all; 0 means no floor, at most 100000.
	// Default: 10.
	MinRetriesPerSecond int `koanf:"min_retries_per_second"`
	// RetryOn lists the conditions that trigger a retry: "connect-failure",
	// "reset", "502", "503", "504". Default:
	// ["connect-failure", "reset", "502", "503"].
	RetryOn []string `koanf:"retry_on"`
}

func (r *Retry) setDefaults() {
	r.MaxRetries = 1
	r.PerTryTimeout = 0
	r.BudgetPercent = 20.0
	r.MinRetriesPerSecond = 10
	r.RetryOn = []string{RetryOnConnectFailure, RetryOnReset, RetryOn502, RetryOn503}
}

// XDP is the [xdp] section: the kernel L4 load balancer.
type XDP struct {
	// Enabled loads and attaches the XDP program. Default: false.
	Enabled bool `koanf:"enabled"`
	// Interface is the network interface to attach to; required when
	// enabled.
	Interface string `koanf:"interface"`
	// AttachMode is "auto" (native, falling back to generic), "native" or
	// "generic". Default: "auto".
	AttachMode string `koanf:"attach_mode"`
	// ConntrackSize is the number of entries of the per-CPU LRU connection
	// table, 1024 to 67108864. Default: 65536.
	ConntrackSize int `koanf:"conntrack_size"`
	// UDPTimeout ages out UDP conntrack entries idle this long.
	// Default: "30s".
	UDPTimeout Duration `koanf:"udp_timeout"`
	// NewFlowsPerSecondPerCPU caps new flows (TCP SYNs, new UDP tuples) per
	// second on each CPU (SYN-flood guard); 0 means no cap. Default: 0.
	NewFlowsPerSecondPerCPU int `koanf:"new_flows_per_second_per_cpu"`
	// Deny lists source CIDRs ("192.0.2.0/24", "2001:db8::/32") whose
	// packets are dropped. Default: [].
	Deny []string `koanf:"deny"`
	// VIPs are the virtual services the program balances.
	VIPs []VIP `koanf:"vips"`
}

func (x *XDP) setDefaults() {
	x.Enabled = false
	x.AttachMode = "auto"
	x.ConntrackSize = 65536
	x.UDPTimeout = Duration(30 * second)
	x.NewFlowsPerSecondPerCPU = 0
}

// VIP is one [[xdp.vips]] entry.
type VIP struct {
	// Name identifies the VIP in metrics; required and unique.
	Name string `koanf:"name"`
	// Address is the virtual IP (IPv4 or IPv6 literal); required.
	Address string `koanf:"address"`
	// Port is the destination port; 0 matches all ports. Default: 0.
	Port int `koanf:"port"`
	// Protocol is "tcp" or "udp". Default: "tcp".
	Protocol string `koanf:"protocol"`
	// Mode is "nat" (DNAT to the backend, SNAT to snat_address, replies come
	// back through the balancer) or "dsr" (IPIP encapsulation, replies go
	// straight to the client). Default: "nat".
	Mode string `koanf:"mode"`
	// SNATAddress is the balancer's own IP used as the source towards
	// backends in nat mode (required there; same family as address). In dsr
	// mode it is optional: the outer IPIP source. Default: "".
	SNATAddress string `koanf:"snat_address"`
	// Cluster supplies the backends; required, must exist, and its endpoint
	// addresses must be IP literals of the VIP's address family.
	Cluster string `koanf:"cluster"`
}

func (v *VIP) setDefaults() {
	v.Protocol = ProtocolTCP
	v.Mode = "nat"
}

// Every schema struct provides its defaults.
var (
	_ defaulter = (*Config)(nil)
	_ defaulter = (*Admin)(nil)
	_ defaulter = (*Log)(nil)
	_ defaulter = (*Engine)(nil)
	_ defaulter = (*Process)(nil)
	_ defaulter = (*Demo)(nil)
	_ defaulter = (*Listener)(nil)
	_ defaulter = (*Timeouts)(nil)
	_ defaulter = (*Limits)(nil)
	_ defaulter = (*Route)(nil)
	_ defaulter = (*Cluster)(nil)
	_ defaulter = (*Endpoint)(nil)
	_ defaulter = (*Maglev)(nil)
	_ defaulter = (*RingHash)(nil)
	_ defaulter = (*EWMA)(nil)
	_ defaulter = (*Affinity)(nil)
	_ defaulter = (*HealthCheck)(nil)
	_ defaulter = (*OutlierDetection)(nil)
	_ defaulter = (*Retry)(nil)
	_ defaulter = (*XDP)(nil)
	_ defaulter = (*VIP)(nil)
)

// ListenerTLS is an https listener's [listeners.tls] table.
type ListenerTLS struct {
	// MinVersion is the lowest TLS version accepted: "1.2" or "1.3".
	// Default: "1.2".
	MinVersion string `koanf:"min_version"`
	// ALPN are the application protocols offered, in preference order:
	// "h2" and "http/1.1". A client that offers ALPN but none of these is
	// refused; one that offers no ALPN speaks HTTP/1.1.
	// Default: ["h2", "http/1.1"].
	ALPN []string `koanf:"alpn"`
	// HandshakeTimeout closes a connection whose TLS handshake has not
	// completed within it. Default: "5s".
	HandshakeTimeout Duration `koanf:"handshake_timeout"`
	// MaxHandshakes caps the TLS handshakes in progress on this listener; a
	// new connection over it waits for a slot (at most handshake_timeout)
	// instead of taking CPU from the established ones. 1 to 100000.
	// Default: 1024.
	MaxHandshakes int `koanf:"max_handshakes"`
	// ClientAuth is mutual TLS: "none", "request" (a client certificate is
	// asked for and verified against client_ca_file when sent) or
	// "require" (a connection without a valid one is refused).
	// Default: "none".
	ClientAuth string `koanf:"client_auth"`
	// ClientCAFile is the PEM bundle client certificates are verified
	// against; required unless client_auth = "none". Default: "".
	ClientCAFile string `koanf:"client_ca_file"`
	// ClientIdentityHeader, when set, is the request header that carries
	// the verified client certificate's identity upstream, as
	// Hash=<sha256 of the DER, hex>;Subject="<DN>";URI=<uri SAN>;DNS=<dns
	// SAN> (Envoy's X-Forwarded-Client-Cert format). A client-sent header
	// of that name is always removed, with or without a certificate.
	// Default: "".
	ClientIdentityHeader string `koanf:"client_identity_header"`
	// SessionTickets enables TLS session resumption by tickets. The ticket
	// keys are random, shared by the listener's connections, kept across
	// reloads and rotated every ticket_key_rotation (the two previous keys
	// still decrypt). Default: true.
	SessionTickets bool `koanf:"session_tickets"`
	// TicketKeyRotation is how often a new session ticket key is made.
	// Default: "1h".
	TicketKeyRotation Duration `koanf:"ticket_key_rotation"`
	// Certificates are the listener's certificates; at least one. SNI
	// picks the one whose DNS names match (exact, then wildcard); the first
	// one is served when nothing matches or no SNI is sent.
	Certificates []Certificate `koanf:"certificates"`
}

func (t *ListenerTLS) setDefaults() {
	t.MinVersion = "1.2"
	t.ALPN = []string{"h2", "http/1.1"}
	t.HandshakeTimeout = Duration(5 * second)
	t.MaxHandshakes = 1024
	t.ClientAuth = "none"
	t.SessionTickets = true
	t.TicketKeyRotation = Duration(60 * minute)
}

// Certificate is one [[listeners.tls.certificates]] entry.
type Certificate struct {
	// CertFile is the PEM certificate chain, leaf first; required. It is
	// watched: a changed file is loaded, checked and served to new
	// handshakes (a bad one keeps the old pair).
	CertFile string `koanf:"cert_file"`
	// KeyFile is the PEM private key of the leaf; required.
	KeyFile string `koanf:"key_file"`
}

// ClusterTLS is a cluster's tls table: TLS to its endpoints.
type ClusterTLS struct {
	// Enabled speaks TLS to the endpoints (and to their health checks).
	// Default: false.
	Enabled bool `koanf:"enabled"`
	// CAFile is the PEM bundle endpoint certificates are verified against;
	// "" uses the system's roots. Default: "".
	CAFile string `koanf:"ca_file"`
	// ServerName is the name sent as SNI and verified in the endpoint's
	// certificate; "" uses the endpoint address's host. Default: "".
	ServerName string `koanf:"server_name"`
	// InsecureSkipVerify turns certificate verification off (tests and
	// migrations only; logged at start). Default: false.
	InsecureSkipVerify bool `koanf:"insecure_skip_verify"`
	// CertFile and KeyFile are an optional client certificate presented to
	// endpoints that ask for one (mTLS upstream). Default: "".
	CertFile string `koanf:"cert_file"`
	// KeyFile is the client certificate's private key. Default: "".
	KeyFile string `koanf:"key_file"`
	// MinVersion is the lowest TLS version spoken: "1.2" or "1.3".
	// Default: "1.2".
	MinVersion string `koanf:"min_version"`
}

func (t *ClusterTLS) setDefaults() {
	t.MinVersion = "1.2"
}

// ListenerQUIC is an h3 listener's [listeners.quic] table.
type ListenerQUIC struct {
	// MaxStreams caps the concurrent request streams (bidirectional) of
	// one connection; the client is given that much stream credit
	// (1 to 10000). Default: 100.
	MaxStreams int `koanf:"max_streams"`
	// IdleTimeout closes a connection after this long without a packet.
	// Default: "30s".
	IdleTimeout Duration `koanf:"idle_timeout"`
	// EarlyData accepts 0-RTT (TLS early data) from resuming clients
	// (needs tls.session_tickets). 0-RTT can be replayed by anyone who
	// captured it, so only GET, HEAD and OPTIONS requests are forwarded
	// before the handshake completes, with "Early-Data: 1" (RFC 8470) for
	// the upstream to answer 425 if it must; other methods wait for the
	// handshake to complete (a replayed flight never completes it), or are
	// answered 425 after tls.handshake_timeout. Default: false.
	EarlyData bool `koanf:"early_data"`
	// Retry is QUIC address validation with a Retry packet before a
	// connection is accepted: "always", "never", or "auto" (only while
	// more handshakes are in progress than half of tls.max_handshakes).
	// Default: "auto".
	Retry string `koanf:"retry"`
	// MaxConnectionsPerIP caps the open QUIC connections of one client IP;
	// 0 means unlimited. Default: 64.
	MaxConnectionsPerIP int `koanf:"max_connections_per_ip"`
	// MaxRequestsPerConnection ends a connection after this many requests:
	// the last one is followed by an HTTP/3 GOAWAY and the client opens a
	// fresh connection; 0 means unlimited. Default: 0.
	MaxRequestsPerConnection int `koanf:"max_requests_per_connection"`
	// MaxFieldSectionSize caps a request's (and trailers') field section as
	// RFC 9114 counts it (name + value + 32 per field), announced in
	// SETTINGS_MAX_FIELD_SECTION_SIZE; larger sections are answered 431.
	// The QPACK dynamic table is not used (capacity 0 is announced).
	// Default: "64KiB".
	MaxFieldSectionSize Size `koanf:"max_field_section_size"`
	// StreamReceiveWindow caps the request body bytes a client may send on
	// one stream ahead of the gateway reading them (QUIC stream flow
	// control; the window starts at 256 KiB, or this if smaller, and grows
	// up to it as the round-trip time requires). 16KiB to 64MiB.
	// Default: "1MiB".
	StreamReceiveWindow Size `koanf:"stream_receive_window"`
	// ConnectionReceiveWindow is the same for all the streams of one
	// connection together: the most a connection's uploads can make the
	// gateway buffer. At least stream_receive_window, up to 1GiB.
	// Default: "16MiB".
	ConnectionReceiveWindow Size `koanf:"connection_receive_window"`
}

func (q *ListenerQUIC) setDefaults() {
	q.MaxStreams = 100
	q.IdleTimeout = Duration(30 * second)
	q.EarlyData = false
	q.Retry = "auto"
	q.MaxConnectionsPerIP = 64
	q.MaxRequestsPerConnection = 0
	q.MaxFieldSectionSize = 64 << 10
	q.StreamReceiveWindow = 1 << 20
	q.ConnectionReceiveWindow = 16 << 20
}

// QUICPassthrough is a quic-passthrough listener's
// [listeners.quic_passthrough] table.
type QUICPassthrough struct {
	// IdleTimeout forgets a QUIC connection (its connection IDs, its client
	// address and its upstream socket) after this long without a datagram
	// in either direction; set it to at least the backends' QUIC idle
	// timeout. Default: "30s".
	IdleTimeout Duration `koanf:"idle_timeout"`
}

func (q *QUICPassthrough) setDefaults() {
	q.IdleTimeout = Duration(30 * second)
}

// ProxyProtocol is a listener's proxy_protocol table: accepting the PROXY
// protocol header (HAProxy's v1 text or v2 binary) from an L4 balancer in
// front.
type ProxyProtocol struct {
	// Accept expects a PROXY protocol header at the start of every
	// connection from a trusted address (one without it is refused); a
	// connection from any other address is served with its own address,
	// and refused if it sends a header. Default: false.
	Accept bool `koanf:"accept"`
	// Trusted are the CIDRs (or single addresses) of the balancers allowed
	// to send the header. Required when accept is true. Default: [].
	Trusted []string `koanf:"trusted"`
	// Timeout is how long a trusted peer has to send the whole header.
	// Default: "5s".
	Timeout Duration `koanf:"timeout"`
}

func (p *ProxyProtocol) setDefaults() {
	p.Timeout = Duration(5 * second)
}
