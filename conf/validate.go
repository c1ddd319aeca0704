// SPDX-License-Identifier: GPL-3.0-only

package conf

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// validator checks a decoded Config and normalizes the few values that have a
// canonical form (route hosts lowercased, listener access_log resolved). It
// collects every problem.
type validator struct {
	file     string
	problems []Problem
	// present is the set of key paths found in the file (from the decoder).
	present map[string]bool
	// quicEarly: the h3 listener being checked has quic.early_data.
	quicEarly bool
	// resolved caches listen host names looked up during this validation.
	resolved map[string][]netip.Addr
}

func (v *validator) addf(key, format string, args ...any) {
	v.problems = append(v.problems, Problem{File: v.file, Key: key, Msg: fmt.Sprintf(format, args...)})
}

func idx(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }

func (v *validator) oneOf(key, val string, allowed ...string) {
	if !slices.Contains(allowed, val) {
		v.addf(key, "must be one of %s, got %q", quoteList(allowed), val)
	}
}

func quoteList(vals []string) string {
	q := make([]string, len(vals))
	for i, s := range vals {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, ", ")
}

func (v *validator) intRange(key string, n, lo, hi int) {
	if n < lo || n > hi {
		v.addf(key, "must be between %d and %d, got %d", lo, hi, n)
	}
}

func (v *validator) sizeRange(key string, n, lo, hi Size) {
	if n < lo || n > hi {
		v.addf(key, "must be between %s and %s, got %s", lo, hi, n)
	}
}

func (v *validator) floatRange(key string, f, lo, hi float64) {
	if f < lo || f > hi {
		v.addf(key, "must be between %g and %g, got %g", lo, hi, f)
	}
}

func (v *validator) positive(key string, d Duration) {
	if d <= 0 {
		v.addf(key, "must be greater than 0s")
	}
}

func (v *validator) required(key, val string) bool {
	if val == "" {
		v.addf(key, "is required")
		return false
	}
	return true
}

// listenAddr checks a host:port to bind; the host may be empty (all
// addresses) and the port must be 1-65535.
func (v *validator) listenAddr(key, addr string) bool {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		v.addf(key, "invalid address %q: want host:port, such as \"127.0.0.1:8080\" or \"[::1]:8080\"", addr)
		return false
	}
	if host != "" && !validHost(host) {
		v.addf(key, "invalid address %q: bad host %q", addr, host)
		return false
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		v.addf(key, "invalid address %q: port must be 1-65535", addr)
		return false
	}
	return true
}

// validHost accepts an IP literal or a DNS name.
func validHost(h string) bool {
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	if len(h) > 253 || strings.HasSuffix(h, ".") && len(h) == 1 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// isToken reports whether s is an RFC 9110 token (method, header name,
// cookie name).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			continue
		}
		if !strings.ContainsRune("!#$%&'*+-.^_`|~", rune(c)) {
			return false
		}
	}
	return true
}

// validFieldValue reports whether s may be sent as an HTTP field value: no
// CTL (other than HTAB), no DEL, no leading or trailing whitespace.
func validFieldValue(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return strings.TrimSpace(s) == s
}

func (v *validator) config(c *Config) {
	v.admin(&c.Admin)
	v.log(&c.Log)
	v.engine(&c.Engine)
	v.process(&c.Process)
	v.demo(&c.Demo)
	v.controlPlane(&c.ControlPlane)

	clusters := make(map[string]int, len(c.Clusters))
	for i := range c.Clusters {
		name := c.Clusters[i].Name
		key := idx("clusters", i) + ".name"
		if name == "" {
			continue // reported by cluster()
		}
		if j, dup := clusters[name]; dup {
			v.addf(key, "duplicate cluster name %q (also clusters[%d])", name, j)
			continue
		}
		clusters[name] = i
	}
	// usedByL7 marks clusters that routes or tcp/udp listeners send to;
	// only clusters used solely by XDP VIPs may have port-0 endpoints.
	usedByUserspace := make(map[string]bool)
	usedByXDP := make(map[string]bool)

	listenerNames := make(map[string]int, len(c.Listeners))
	for i := range c.Listeners {
		l := &c.Listeners[i]
		path := idx("listeners", i)
		v.listener(path, l, c.Log.AccessLog, clusters)
		if l.Name != "" {
			if j, dup := listenerNames[l.Name]; dup {
				v.addf(path+".name", "duplicate listener name %q (also listeners[%d])", l.Name, j)
			} else {
				listenerNames[l.Name] = i
			}
		}
		if l.Cluster != "" {
			usedByUserspace[l.Cluster] = true
		}
		if j, ok := clusters[l.Cluster]; ok && l.Protocol == ProtocolQUICPassthrough {
			if alg := c.Clusters[j].LB; alg != LBMaglev && alg != LBRingHash {
				v.addf(path+".cluster", "cluster %q has lb = %q: a quic-passthrough listener needs lb = \"maglev\" or \"ring_hash\" (new QUIC connections are placed by a hash of their destination connection ID, so that a retransmitted Initial and every node pick the same endpoint)", l.Cluster, alg)
			}
		}
		for _, r := range l.Routes {
			usedByUserspace[r.Cluster] = true
		}
	}
	for i := range c.Listeners {
		l := &c.Listeners[i]
		if l.AltSvc == "" {
			continue
		}
		j, ok := listenerNames[l.AltSvc]
		if !ok || c.Listeners[j].Protocol != ProtocolH3 {
			v.addf(idx("listeners", i)+".alt_svc", "must name an h3 listener, not %q", l.AltSvc)
			continue
		}
		if _, port, err := net.SplitHostPort(c.Listeners[j].Listen); err == nil {
			l.altSvcValue = `h3=":` + port + `"; ma=86400`
		}
	}
	v.h3NeedsLoops(c)
	if len(c.Listeners) == 0 {
		v.addf("listeners", "at least one [[listeners]] entry is required: without one the gateway serves nothing")
	}
	v.addressConflicts(c)
	if c.Admin.Pprof == nil {
		// Default: on only where the admin listener is not reachable from
		// the network.
		on := c.Admin.Listen != "" && c.Admin.loopback
		c.Admin.Pprof = &on
	}

	for _, vip := range c.XDP.VIPs {
		usedByXDP[vip.Cluster] = true
	}
	for i := range c.Clusters {
		cl := &c.Clusters[i]
		xdpOnly := usedByXDP[cl.Name] && !usedByUserspace[cl.Name]
		v.cluster(idx("clusters", i), cl, xdpOnly)
	}
	v.xdp(&c.XDP, c.Clusters, clusters)
}

func (v *validator) admin(a *Admin) {
	if a.Listen != "" {
		v.listenAddr("admin.listen", a.Listen)
	}
	if a.TokenFile != "" {
		if _, err := ReadToken(a.TokenFile); err != nil {
			v.addf("admin.token_file", "%v", err)
		}
	}
}

// ReadToken reads the admin bearer token from path: the file's contents
// with surrounding whitespace trimmed, which must be one non-empty run of
// visible ASCII characters.
func ReadToken(path string) (string, error) { return readSecret(path, "token") }

// ReadPassword reads the etcd password from path, as ReadToken reads a
// token.
func ReadPassword(path string) (string, error) { return readSecret(path, "password") }

func readSecret(path, what string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", what, err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("%s file %q is empty", what, path)
	}
	for i := 0; i < len(tok); i++ {
		if tok[i] <= 0x20 || tok[i] >= 0x7f {
			return "", fmt.Errorf("%s file %q: the %s must be one word of visible ASCII characters", what, path, what)
		}
	}
	return tok, nil
}

func (v *validator) controlPlane(c *ControlPlane) {
	v.oneOf("control_plane.backend", c.Backend, BackendFile, BackendEtcd)
	if len(c.Endpoints) == 0 {
		v.addf("control_plane.endpoints", "at least one etcd URL is required")
	}
	for i, e := range c.Endpoints {
		u, err := url.Parse(e)
		if err != nil || u.Scheme != "http" || u.Host == "" || (u.Path != "" && u.Path != "/") {
			v.addf(idx("control_plane.endpoints", i), "invalid etcd URL %q: want http://host:port (TLS to etcd is not supported yet)", e)
		}
	}
	if !strings.HasPrefix(c.Prefix, "/") || (len(c.Prefix) > 1 && strings.HasSuffix(c.Prefix, "/")) || c.Prefix == "/" {
		v.addf("control_plane.prefix", "must start with \"/\", not end with \"/\" and not be \"/\" alone, got %q", c.Prefix)
	} else if strings.ContainsAny(c.Prefix, "\x00 ") {
		v.addf("control_plane.prefix", "must not contain spaces or NUL bytes, got %q", c.Prefix)
	}
	if c.NodeID != "" && !ValidNodeID(c.NodeID) {
		v.addf("control_plane.node_id", "must be 1 to 128 letters, digits, \".\", \"_\" or \"-\", got %q", c.NodeID)
	}
	if c.LeaseTTL < Duration(2*second) || c.LeaseTTL > Duration(hour) {
		v.addf("control_plane.lease_ttl", "must be between 2s and 1h, got %s", c.LeaseTTL)
	}
	if c.RequestTimeout < Duration(100*time.Millisecond) || c.RequestTimeout > Duration(minute) {
		v.addf("control_plane.request_timeout", "must be between 100ms and 1m, got %s", c.RequestTimeout)
	}
	switch {
	case c.Username != "" && c.PasswordFile == "":
		v.addf("control_plane.password_file", "is required with control_plane.username")
	case c.Username == "" && c.PasswordFile != "":
		v.addf("control_plane.username", "is required with control_plane.password_file")
	case c.PasswordFile != "":
		if _, err := ReadPassword(c.PasswordFile); err != nil {
			v.addf("control_plane.password_file", "%v", err)
		}
	}
	for _, kv := range []struct{ key, val string }{{"control_plane.zone", c.Zone}, {"control_plane.region", c.Region}} {
		if !validLocality(kv.val) {
			v.addf(kv.key, "must be at most 128 bytes without control characters, got %q", kv.val)
		}
	}
}

// ValidNodeID reports whether id may name a node: 1 to 128 letters,
// digits, ".", "_" or "-" (it is an etcd key segment).
func ValidNodeID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// validLocality accepts a zone or region label: at most 128 bytes, no
// control character.
func validLocality(s string) bool {
	if len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}

func (v *validator) log(l *Log) {
	v.oneOf("log.level", l.Level, "debug", "info", "warn", "error")
	if strings.ContainsRune(l.AccessLogFile, 0) {
		v.addf("log.access_log_file", "must not contain a NUL byte")
	}
	v.sizeRange("log.access_log_buffer", l.AccessLogBuffer, 64*KiB, 64*MiB)
}

func (v *validator) engine(e *Engine) {
	v.intRange("engine.event_loops", e.EventLoops, 0, 1024)
	if e.RingSize < 2 || e.RingSize > 65536 || e.RingSize&(e.RingSize-1) != 0 {
		v.addf("engine.ring_size", "must be a power of two between 2 and 65536, got %d", e.RingSize)
	}
	v.intRange("engine.max_connections", e.MaxConnections, 1, 100_000_000)
}

func (v *validator) process(p *Process) {
	if strings.ContainsFunc(p.PIDFile, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		v.addf("process.pid_file", "must not contain control characters")
	}
	v.positive("process.upgrade_timeout", p.UpgradeTimeout)
}

func (v *validator) demo(d *Demo) {
	if d.Enabled || v.present["demo.listen"] {
		v.listenAddr("demo.listen", d.Listen)
	}
}

func (v *validator) listener(path string, l *Listener, accessLog bool, clusters map[string]int) {
	v.required(path+".name", l.Name)
	if v.required(path+".listen", l.Listen) {
		v.listenAddr(path+".listen", l.Listen)
	}
	v.oneOf(path+".protocol", l.Protocol, ProtocolHTTP, ProtocolHTTPS, ProtocolH3, ProtocolTCP, ProtocolUDP, ProtocolQUICPassthrough)
	v.oneOf(path+".escaped_slashes", l.EscapedSlashes, "keep", "reject", "unescape")
	switch l.Protocol {
	case ProtocolHTTP, ProtocolHTTPS, ProtocolH3:
		if l.Cluster != "" {
			v.addf(path+".cluster", "not allowed for protocol = %q (send traffic to clusters with [[listeners.routes]])", l.Protocol)
		}
		if len(l.Routes) == 0 {
			v.addf(path+".routes", "an http listener needs at least one [[listeners.routes]] entry")
		}
	case ProtocolTCP, ProtocolUDP, ProtocolQUICPassthrough:
		if v.required(path+".cluster", l.Cluster) {
			v.clusterRef(path+".cluster", l.Cluster, clusters)
		}
		if len(l.Routes) > 0 {
			v.addf(path+".routes", "not allowed for protocol = %q (set cluster instead)", l.Protocol)
		}
	}
	switch {
	case (l.Protocol == ProtocolHTTPS || l.Protocol == ProtocolH3) && l.TLS == nil:
		v.addf(path+".tls", "an %s listener needs a [listeners.tls] table with its certificates", l.Protocol)
	case l.Protocol == ProtocolHTTPS:
		v.listenerTLS(path+".tls", l.TLS)
	case l.Protocol == ProtocolH3:
		v.quicEarly = l.QUIC.EarlyData
		v.listenerTLSQUIC(path+".tls", l.TLS)
	case l.TLS != nil:
		v.addf(path+".tls", "only allowed for protocol = \"https\" or \"h3\"")
	}
	if l.Protocol == ProtocolH3 {
		v.quic(path+".quic", &l.QUIC)
		if l.ProxyProtocol != nil {
			v.addf(path+".proxy_protocol", "not allowed for protocol = \"h3\"")
		}
		for _, k := range []string{"http_versions", "http2", "max_connections_per_ip", "max_requests_per_connection", "reuse_port"} {
			if v.present[path+"."+k] {
				v.addf(path+"."+k, "not used by h3 listeners (see [listeners.quic])")
			}
		}
	} else if v.present[path+".quic"] {
		v.addf(path+".quic", "only allowed for protocol = \"h3\"")
	}
	if l.AltSvc != "" && l.Protocol != ProtocolHTTP && l.Protocol != ProtocolHTTPS {
		v.addf(path+".alt_svc", "only allowed for protocol = \"http\" or \"https\"")
	}
	if l.ProxyProtocol != nil {
		if l.Protocol == ProtocolUDP || l.Protocol == ProtocolQUICPassthrough {
			v.addf(path+".proxy_protocol", "not allowed for protocol = %q", l.Protocol)
		}
		v.proxyProtocol(path+".proxy_protocol", l.ProxyProtocol)
	}
	if l.Protocol == ProtocolHTTP {
		if len(l.HTTPVersions) == 0 {
			v.addf(path+".http_versions", "needs at least one of \"1.1\", \"2\"")
		}
		for i, ver := range l.HTTPVersions {
			v.oneOf(fmt.Sprintf("%s.http_versions[%d]", path, i), ver, "1.1", "2")
		}
	}
	if l.Protocol == ProtocolHTTPS && v.present[path+".http_versions"] {
		v.addf(path+".http_versions", "not used by https listeners: ALPN chooses (set tls.alpn)")
	}
	for _, k := range []string{"merge_slashes", "escaped_slashes", "allow_get_body", "http_versions", "http2"} {
		if !IsHTTP(l.Protocol) && v.present[path+"."+k] {
			v.addf(path+"."+k, "only allowed for protocol = \"http\" or \"https\"")
		}
	}
	if l.Protocol != ProtocolUDP && v.present[path+".udp_session_timeout"] {
		v.addf(path+".udp_session_timeout", "only allowed for protocol = \"udp\"")
	}
	if l.Protocol != ProtocolUDP && l.Protocol != ProtocolQUICPassthrough && v.present[path+".max_sessions_per_ip"] {
		v.addf(path+".max_sessions_per_ip", "only allowed for protocol = \"udp\" or \"quic-passthrough\"")
	}
	if l.Protocol == ProtocolQUICPassthrough {
		for _, k := range []string{"max_connections_per_ip", "max_requests_per_connection", "queue_size", "reuse_port"} {
			if v.present[path+"."+k] {
				v.addf(path+"."+k, "not used by quic-passthrough listeners (see max_connections, max_sessions_per_ip and [listeners.quic_passthrough])")
			}
		}
		v.positive(path+".quic_passthrough.idle_timeout", l.QUICPassthrough.IdleTimeout)
	} else if v.present[path+".quic_passthrough"] {
		v.addf(path+".quic_passthrough", "only allowed for protocol = \"quic-passthrough\"")
	}
	v.intRange(path+".max_connections", l.MaxConnections, 1, 100_000_000)
	v.intRange(path+".max_connections_per_ip", l.MaxConnectionsPerIP, 0, 100_000_000)
	v.intRange(path+".max_sessions_per_ip", l.MaxSessionsPerIP, 0, 100_000_000)
	v.intRange(path+".max_requests_per_connection", l.MaxRequestsPerConnection, 0, 1<<31-1)
	v.intRange(path+".queue_size", l.QueueSize, 1, 1<<20)
	if l.AccessLog == nil {
		inherit := accessLog
		l.AccessLog = &inherit
	}
	v.positive(path+".udp_session_timeout", l.UDPSessionTimeout)
	v.timeouts(path+".timeouts", &l.Timeouts)
	v.limits(path+".limits", &l.Limits)
	v.http2(path+".http2", &l.HTTP2)
	v.guards(path+".guards", &l.Guards)
	for i := range l.Routes {
		v.route(idx(path+".routes", i), &l.Routes[i], clusters)
	}
}

func (v *validator) timeouts(path string, t *Timeouts) {
	v.positive(path+".header_read", t.HeaderRead)
	v.positive(path+".body_idle", t.BodyIdle)
	v.positive(path+".idle_keepalive", t.IdleKeepalive)
	v.positive(path+".upstream_connect", t.UpstreamConnect)
	v.positive(path+".upstream_response_header", t.UpstreamResponseHeader)
	v.positive(path+".upstream_idle", t.UpstreamIdle)
	v.positive(path+".tcp_idle", t.TCPIdle)
	v.positive(path+".websocket_idle", t.WebSocketIdle)
	// body_min_rate (0 disables) and body_min_rate_grace may be zero;
	// the decoder already refused negative values.
}

func (v *validator) limits(path string, l *Limits) {
	v.sizeRange(path+".max_request_line", l.MaxRequestLine, 64, 1*MiB)
	v.sizeRange(path+".max_header_bytes", l.MaxHeaderBytes, 1*KiB, 16*MiB)
	v.intRange(path+".max_header_count", l.MaxHeaderCount, 1, 10000)
	v.sizeRange(path+".max_chunk_extension", l.MaxChunkExtension, 0, 64*KiB)
	v.sizeRange(path+".max_trailer_bytes", l.MaxTrailerBytes, 0, 16*MiB)
	v.sizeRange(path+".max_inflight_bytes", l.MaxInflightBytes, 4*KiB, 1*GiB)
}

func (v *validator) http2(path string, h *HTTP2) {
	v.intRange(path+".max_concurrent_streams", h.MaxConcurrentStreams, 1, 10000)
	v.sizeRange(path+".stream_window", h.StreamWindow, 16*KiB, 16*MiB)
	v.sizeRange(path+".connection_window", h.ConnectionWindow, 64*KiB, 1*GiB)
	v.sizeRange(path+".max_frame_size", h.MaxFrameSize, 16*KiB, 16*MiB-1)
	v.sizeRange(path+".max_header_list_size", h.MaxHeaderListSize, 1*KiB, 16*MiB)
	v.intRange(path+".max_continuation_frames", h.MaxContinuationFrames, 1, 10000)
	v.positive(path+".settings_timeout", h.SettingsTimeout)
	v.intRange(path+".premature_reset_streams", h.PrematureResetStreams, 10, 1024)
	v.positive(path+".premature_reset_lifetime", h.PrematureResetLifetime)
	if h.MaxStreamsPerRead != 0 {
		v.intRange(path+".max_streams_per_read", h.MaxStreamsPerRead, 1, 100000)
	}
	v.intRange(path+".max_control_frames_per_second", h.MaxControlFramesPerSecond, 10, 1000000)
	v.intRange(path+".max_window_updates_per_second", h.MaxWindowUpdatesPerSecond, 10, 1000000)
	if h.GlitchThreshold != 0 {
		v.intRange(path+".glitch_threshold", h.GlitchThreshold, 10, 1000000)
	}
	v.positive(path+".stall_timeout", h.StallTimeout)
}

func (v *validator) guards(path string, g *Guards) {
	v.intRange(path+".new_connections_per_second", g.NewConnectionsPerSecond, 0, 1000000)
	v.intRange(path+".new_connections_burst", g.NewConnectionsBurst, 0, 1000000)
	v.intRange(path+".tracked_clients", g.TrackedClients, 1024, 16<<20)
	if g.Penalty > Duration(hour) {
		v.addf(path+".penalty", "must be at most 1h, got %s", g.Penalty.Std())
	}
	v.rateLimit(path+".rate_limit", &g.RateLimit)
}

func (v *validator) rateLimit(path string, r *RateLimit) {
	v.intRange(path+".requests_per_second", r.RequestsPerSecond, 0, 1000000)
	v.intRange(path+".burst", r.Burst, 0, 1000000)
	if name, ok := strings.CutPrefix(r.Key, "header:"); ok {
		if !isToken(name) {
			v.addf(path+".key", "invalid header name %q in %q", name, r.Key)
		}
	} else if r.Key != "client_ip" {
		v.addf(path+".key", "must be \"client_ip\" or \"header:NAME\", got %q", r.Key)
	}
}

func (v *validator) clusterRef(key, name string, clusters map[string]int) {
	if _, ok := clusters[name]; !ok {
		v.addf(key, "unknown cluster %q", name)
	}
}

func (v *validator) route(path string, r *Route, clusters map[string]int) {
	r.Host = strings.ToLower(r.Host)
	switch {
	case r.Host == "*":
	case strings.HasPrefix(r.Host, "*."):
		if !validHost(r.Host[2:]) {
			v.addf(path+".host", "invalid host pattern %q: want \"*\", an exact name or \"*.suffix\"", r.Host)
		}
	default:
		if !validHost(r.Host) {
			v.addf(path+".host", "invalid host pattern %q: want \"*\", an exact name or \"*.suffix\"", r.Host)
		}
	}
	if r.Path != "" && r.PathPrefix != "" {
		v.addf(path+".path_prefix", "path and path_prefix are mutually exclusive")
	}
	if r.Path != "" && !validPath(r.Path) {
		v.addf(path+".path", "must start with \"/\" and contain no spaces or control characters, got %q", r.Path)
	}
	if r.PathPrefix != "" && !validPath(r.PathPrefix) {
		v.addf(path+".path_prefix", "must start with \"/\" and contain no spaces or control characters, got %q", r.PathPrefix)
	}
	for i, m := range r.Methods {
		if !isToken(m) {
			v.addf(idx(path+".methods", i), "invalid method %q: must be a token such as \"GET\"", m)
		} else if up := strings.ToUpper(m); up != m {
			// Methods are case-sensitive (RFC 9110, section 9.1): "get"
			// never matches a GET request.
			v.addf(idx(path+".methods", i), "method %q never matches: methods are case-sensitive (did you mean %q?)", m, up)
		}
	}
	names := make([]string, 0, len(r.Headers))
	for name := range r.Headers {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		key := path + ".headers." + name
		if !isToken(name) {
			v.addf(key, "invalid header name %q", name)
		} else if !validFieldValue(r.Headers[name]) {
			v.addf(key, "invalid header value %q: no control characters or surrounding whitespace", r.Headers[name])
		}
	}
	if v.required(path+".cluster", r.Cluster) {
		v.clusterRef(path+".cluster", r.Cluster, clusters)
	}
	v.rateLimit(path+".rate_limit", &r.RateLimit)
}

func validPath(p string) bool {
	if !strings.HasPrefix(p, "/") {
		return false
	}
	for i := 0; i < len(p); i++ {
		if p[i] <= 0x20 || p[i] == 0x7f {
			return false
		}
	}
	return true
}

// isPrime reports whether n is prime (trial division; n ≤ 1<<20 here).
func isPrime(n int) bool {
	if n < 2 {
		return false
	}
	for d := 2; d*d <= n; d++ {
		if n%d == 0 {
			return false
		}
	}
	return true
}

func (v *validator) cluster(path string, c *Cluster, xdpOnly bool) {
	v.required(path+".name", c.Name)
	v.oneOf(path+".lb", c.LB, LBNames...)
	v.oneOf(path+".protocol", c.Protocol, "http1", "h2c", "h2", "h3")
	v.intRange(path+".max_streams_per_connection", c.MaxStreamsPerConnection, 1, 10000)
	if c.Protocol == "http1" && v.present[path+".max_streams_per_connection"] {
		v.addf(path+".max_streams_per_connection", "only allowed for protocol = \"h2c\", \"h2\" or \"h3\"")
	}
	v.clusterTLS(path, c)
	v.oneOf(path+".proxy_protocol", c.ProxyProtocol, "", "v1", "v2")
	if c.ProxyProtocol != "" && c.Protocol != "http1" {
		v.addf(path+".proxy_protocol", "needs protocol = \"http1\": a multiplexed HTTP/2 or HTTP/3 connection carries many clients, and a PROXY header names one")
	}
	if _, _, err := ParseHashKey(c.HashKey); err != nil {
		v.addf(path+".hash_key", "%v", err)
	}
	if len(c.Endpoints) == 0 && !v.present[path+".endpoints"] {
		v.addf(path+".endpoints", "is required: at least one endpoint")
	} else if len(c.Endpoints) == 0 {
		v.addf(path+".endpoints", "must list at least one endpoint")
	}
	seen := make(map[string]int, len(c.Endpoints))
	for i := range c.Endpoints {
		ep := &c.Endpoints[i]
		ekey := idx(path+".endpoints", i)
		v.endpoint(ekey, ep, xdpOnly)
		if ep.Address == "" {
			continue
		}
		if j, dup := seen[ep.Address]; dup {
			v.addf(ekey+".address", "duplicate endpoint %q (also endpoints[%d])", ep.Address, j)
		} else {
			seen[ep.Address] = i
		}
	}
	v.intRange(path+".max_idle_per_endpoint", c.MaxIdlePerEndpoint, 0, 100000)
	v.intRange(path+".zone_aware_min_size", c.ZoneAwareMinSize, 1, 100000)
	v.floatRange(path+".panic_threshold", c.PanicThreshold, 0, 100)
	v.oneOf(path+".on_panic", c.OnPanic, "all", "fail")
	if c.OverprovisioningFactor < 1 || c.OverprovisioningFactor > 100 {
		v.addf(path+".overprovisioning_factor", "must be between 1 and 100, got %g", c.OverprovisioningFactor)
	}

	mk := path + ".maglev.table_size"
	switch ts := c.Maglev.TableSize; {
	case ts < 2 || ts > 1<<20:
		v.addf(mk, "must be a prime between 2 and 1048576, got %d", ts)
	case !isPrime(ts):
		v.addf(mk, "must be a prime number (such as 65537 or 131071), got %d", ts)
	case ts < len(c.Endpoints):
		v.addf(mk, "must be at least the number of endpoints (%d), got %d", len(c.Endpoints), ts)
	}
	if c.RingHash.MinRingSize < 1 || c.RingHash.MinRingSize > 8388608 {
		v.addf(path+".ring_hash.min_ring_size", "must be between 1 and 8388608, got %d", c.RingHash.MinRingSize)
	} else {
		v.intRange(path+".ring_hash.max_ring_size", c.RingHash.MaxRingSize, c.RingHash.MinRingSize, 8388608)
	}
	v.positive(path+".ewma.decay", c.EWMA.Decay)

	a := &c.Affinity
	if !isToken(a.CookieName) {
		v.addf(path+".affinity.cookie_name", "invalid cookie name %q: must be a token", a.CookieName)
	}
	if !validPath(a.Path) || strings.ContainsRune(a.Path, ';') {
		v.addf(path+".affinity.path", "must start with \"/\" and contain no spaces, ';' or control characters, got %q", a.Path)
	}

	if c.HealthCheck != nil {
		v.healthCheck(path+".health_check", c.HealthCheck)
		if c.Protocol == "h3" && c.HealthCheck.Type != "http" {
			v.addf(path+".health_check.type", "must be \"http\" for protocol = \"h3\" (probed over HTTP/3; an h3 endpoint listens on UDP, so a %q probe cannot reach it)", c.HealthCheck.Type)
		}
	}
	if c.OutlierDetection == nil {
		c.OutlierDetection = DefaultOutlierDetection()
	} else {
		o := c.OutlierDetection
		op := path + ".outlier_detection"
		v.intRange(op+".consecutive_5xx", o.Consecutive5xx, 0, 1<<20)
		v.intRange(op+".consecutive_connect_failures", o.ConsecutiveConnectFailures, 0, 1<<20)
		v.positive(op+".base_ejection_time", o.BaseEjectionTime)
		v.intRange(op+".max_ejection_percent", o.MaxEjectionPercent, 0, 100)
	}

	r := &c.Retry
	v.intRange(path+".retry.max_retries", r.MaxRetries, 0, 10)
	v.floatRange(path+".retry.budget_percent", r.BudgetPercent, 0, 100)
	v.intRange(path+".retry.min_retries_per_second", r.MinRetriesPerSecond, 0, 100000)
	for i, cond := range r.RetryOn {
		v.oneOf(idx(path+".retry.retry_on", i), cond,
			RetryOnConnectFailure, RetryOnReset, RetryOn502, RetryOn503, RetryOn504)
	}
}

func (v *validator) endpoint(path string, ep *Endpoint, xdpOnly bool) {
	key := path + ".address"
	if v.required(key, ep.Address) {
		host, port, err := net.SplitHostPort(ep.Address)
		p, perr := strconv.Atoi(port)
		switch {
		case err != nil:
			v.addf(key, "invalid address %q: want host:port or ip:port, such as \"10.0.0.1:8080\"", ep.Address)
		case host == "" || !validHost(host):
			v.addf(key, "invalid address %q: bad or missing host", ep.Address)
		case perr != nil || p < 0 || p > 65535:
			v.addf(key, "invalid address %q: port must be 1-65535", ep.Address)
		case p == 0 && !xdpOnly:
			v.addf(key, "invalid address %q: port 0 is only allowed in clusters used solely by [[xdp.vips]]", ep.Address)
		}
	}
	v.intRange(path+".weight", ep.Weight, 1, 10000)
	v.intRange(path+".priority", ep.Priority, 0, 127)
	for _, kv := range []struct{ key, val string }{{path + ".zone", ep.Zone}, {path + ".region", ep.Region}} {
		if !validLocality(kv.val) {
			v.addf(kv.key, "must be at most 128 bytes without control characters, got %q", kv.val)
		}
	}
}

func (v *validator) healthCheck(path string, h *HealthCheck) {
	v.oneOf(path+".type", h.Type, "http", "tcp", "grpc")
	if !validPath(h.Path) {
		v.addf(path+".path", "must start with \"/\" and contain no spaces or control characters, got %q", h.Path)
	}
	if h.Host != "" && !validHost(h.Host) {
		if host, port, err := net.SplitHostPort(h.Host); err != nil || !validHost(host) || port == "" {
			v.addf(path+".host", "invalid host %q", h.Host)
		}
	}
	if len(h.ExpectedStatuses) == 0 {
		v.addf(path+".expected_statuses", "must list at least one status or range")
	}
	for i, s := range h.ExpectedStatuses {
		if _, err := ParseStatusRange(s); err != nil {
			v.addf(idx(path+".expected_statuses", i), "%v", err)
		}
	}
	v.positive(path+".interval", h.Interval)
	v.positive(path+".timeout", h.Timeout)
	if h.Interval > 0 && h.Timeout >= h.Interval {
		v.addf(path+".timeout", "must be less than interval (%s), got %s", h.Interval, h.Timeout)
	}
	if h.Jitter > h.Interval {
		v.addf(path+".jitter", "must not exceed interval (%s), got %s", h.Interval, h.Jitter)
	}
	v.intRange(path+".healthy_threshold", h.HealthyThreshold, 1, 1000)
	v.intRange(path+".unhealthy_threshold", h.UnhealthyThreshold, 1, 1000)
}

func (v *validator) xdp(x *XDP, all []Cluster, clusters map[string]int) {
	if x.Enabled && x.Interface == "" {
		v.addf("xdp.interface", "is required when xdp.enabled = true")
	}
	if x.Interface != "" && (len(x.Interface) > 15 || strings.ContainsAny(x.Interface, "/ \t\n:")) {
		v.addf("xdp.interface", "invalid interface name %q", x.Interface)
	}
	v.oneOf("xdp.attach_mode", x.AttachMode, "auto", "native", "generic")
	v.intRange("xdp.conntrack_size", x.ConntrackSize, 1024, 1<<26)
	v.positive("xdp.udp_timeout", x.UDPTimeout)
	v.intRange("xdp.new_flows_per_second_per_cpu", x.NewFlowsPerSecondPerCPU, 0, 1<<31-1)
	for i, cidr := range x.Deny {
		p, err := netip.ParsePrefix(cidr)
		if err != nil {
			v.addf(idx("xdp.deny", i), "invalid CIDR %q: want such as \"192.0.2.0/24\" or \"2001:db8::/32\"", cidr)
		} else if p.Masked() != p {
			v.addf(idx("xdp.deny", i), "CIDR %q has host bits set (did you mean %q?)", cidr, p.Masked().String())
		}
	}
	type vipKey struct {
		addr     netip.Addr
		port     int
		protocol string
	}
	names := make(map[string]int)
	seen := make(map[vipKey]int)
	for i := range x.VIPs {
		vip := &x.VIPs[i]
		path := idx("xdp.vips", i)
		if v.required(path+".name", vip.Name) {
			if j, dup := names[vip.Name]; dup {
				v.addf(path+".name", "duplicate VIP name %q (also xdp.vips[%d])", vip.Name, j)
			} else {
				names[vip.Name] = i
			}
		}
		var addr netip.Addr
		if v.required(path+".address", vip.Address) {
			a, err := netip.ParseAddr(vip.Address)
			if err != nil || a.Zone() != "" {
				v.addf(path+".address", "invalid IP address %q", vip.Address)
			} else {
				addr = a.Unmap()
			}
		}
		v.intRange(path+".port", vip.Port, 0, 65535)
		v.oneOf(path+".protocol", vip.Protocol, ProtocolTCP, ProtocolUDP)
		v.oneOf(path+".mode", vip.Mode, "nat", "dsr")
		if vip.SNATAddress == "" {
			if vip.Mode == "nat" {
				v.addf(path+".snat_address", "is required when mode = \"nat\"")
			}
		} else if s, err := netip.ParseAddr(vip.SNATAddress); err != nil || s.Zone() != "" {
			v.addf(path+".snat_address", "invalid IP address %q", vip.SNATAddress)
		} else if addr.IsValid() && s.Unmap().Is4() != addr.Is4() {
			v.addf(path+".snat_address", "%q is not in the address family of the VIP %q", vip.SNATAddress, vip.Address)
		}
		if addr.IsValid() {
			k := vipKey{addr, vip.Port, vip.Protocol}
			if j, dup := seen[k]; dup {
				v.addf(path, "duplicate VIP %s port %d/%s (also xdp.vips[%d])", addr, vip.Port, vip.Protocol, j)
			} else {
				seen[k] = i
			}
		}
		if !v.required(path+".cluster", vip.Cluster) {
			continue
		}
		ci, ok := clusters[vip.Cluster]
		if !ok {
			v.addf(path+".cluster", "unknown cluster %q", vip.Cluster)
			continue
		}
		if !addr.IsValid() {
			continue
		}
		for j, ep := range all[ci].Endpoints {
			host, _, err := net.SplitHostPort(ep.Address)
			if err != nil {
				continue // reported with the cluster
			}
			a, err := netip.ParseAddr(host)
			if err != nil || a.Zone() != "" {
				v.addf(path+".cluster", "endpoint clusters[%d].endpoints[%d] %q must be an IP address for an XDP VIP", ci, j, ep.Address)
			} else if a.Unmap().Is4() != addr.Is4() {
				v.addf(path+".cluster", "endpoint clusters[%d].endpoints[%d] %q is not in the address family of the VIP %q", ci, j, ep.Address, vip.Address)
			}
		}
	}
}

// Hash-key kinds returned by ParseHashKey.
const (
	HashSourceIP = "source_ip"
	HashHeader   = "header"
	HashCookie   = "cookie"
	HashPath     = "path"
)

// ParseHashKey splits a cluster's hash_key into its kind (HashSourceIP,
// HashHeader, HashCookie or HashPath) and, for header and cookie, the name.
func ParseHashKey(s string) (kind, name string, err error) {
	switch s {
	case HashSourceIP, HashPath:
		return s, "", nil
	}
	k, n, ok := strings.Cut(s, ":")
	if ok && (k == HashHeader || k == HashCookie) {
		if !isToken(n) {
			return "", "", fmt.Errorf("invalid %s name %q in hash_key %q", k, n, s)
		}
		return k, n, nil
	}
	return "", "", fmt.Errorf("must be \"source_ip\", \"path\", \"header:NAME\" or \"cookie:NAME\", got %q", s)
}

// StatusRange is an inclusive range of HTTP status codes.
type StatusRange struct{ Min, Max int }

// Contains reports whether code is in r.
func (r StatusRange) Contains(code int) bool { return code >= r.Min && code <= r.Max }

// ParseStatusRange parses "NNN" or "NNN-NNN" (100-599, low ≤ high).
func ParseStatusRange(s string) (StatusRange, error) {
	bad := fmt.Errorf("invalid status %q: want \"NNN\" or \"NNN-NNN\" within 100-599", s)
	lo, hi, isRange := strings.Cut(s, "-")
	if !isRange {
		hi = lo
	}
	parse := func(t string) (int, bool) {
		if len(t) != 3 {
			return 0, false
		}
		n, err := strconv.Atoi(t)
		return n, err == nil && n >= 100 && n <= 599
	}
	a, ok1 := parse(lo)
	b, ok2 := parse(hi)
	if !ok1 || !ok2 {
		return StatusRange{}, bad
	}
	if a > b {
		return StatusRange{}, fmt.Errorf("invalid status range %q: low end above high end", s)
	}
	return StatusRange{Min: a, Max: b}, nil
}

// Statuses returns the parsed expected_statuses of a validated health check.
func (h *HealthCheck) Statuses() []StatusRange {
	out := make([]StatusRange, 0, len(h.ExpectedStatuses))
	for _, s := range h.ExpectedStatuses {
		if r, err := ParseStatusRange(s); err == nil {
			out = append(out, r)
		}
	}
	return out
}
