// SPDX-License-Identifier: GPL-3.0-only

package engine

import (
	"fmt"
	"maps"
	"sync"
	"sync/atomic"

	"github.com/VictoriaMetrics/metrics"
)

// Metrics holds the engine's Prometheus families. Counters on the request path
// are created once (per listener, route and status class) so that counting
// never allocates.
type Metrics struct {
	Set *metrics.Set

	h3m map[string]*h3Metrics // h3 listeners' families (h3_metrics.go)

	Panics *metrics.Counter
	// ShutdownAborted counts the client connections Drain found still open
	// when its budget ran out; Stop closes them.
	ShutdownAborted *metrics.Counter

	mu         sync.Mutex
	local      map[string]*metrics.Counter
	upConnects map[string]*metrics.Counter
	upFailures map[string]*metrics.Counter
	upActive   map[string]*atomic.Int64
	cliActive  map[string]*atomic.Int64
	detach     map[string]*metrics.Counter
	h2events   map[string]*metrics.Counter

	// HTTP/2 sessions (h2_conn.go).
	H2Connections *atomic.Int64
	H2Streams     *atomic.Int64
	H2StreamsOpen *metrics.Counter
	h2FramesIn    [h2FrameTypes]*metrics.Counter
	h2FramesOut   [h2FrameTypes]*metrics.Counter
	H2UpStreams   *metrics.Counter
	h2StallReq    *metrics.Counter
	h2StallResp   *metrics.Counter

	// HTTP/3 upstreams (up_h3.go).
	H3UpStreams     *metrics.Counter
	H3UpGoAway      *metrics.Counter
	H3UpStreamLimit *metrics.Counter
	H3UpFlowStall   *metrics.Counter

	// WebSocket tunnels (tunnel.go).
	WSActive *atomic.Int64
	// WSBytes are the tunnel bytes relayed, indexed by the side read:
	// [tunClient] client → upstream, [tunUpstream] upstream → client.
	WSBytes  [2]*metrics.Counter
	wsClosed map[string]*metrics.Counter
}

// h2FrameTypes are the frame types counted by name; others count as
// "unknown".
const h2FrameTypes = 11

var h2FrameNames = [h2FrameTypes]string{"data", "headers", "priority", "rst_stream", "settings", "push_promise", "ping", "goaway", "window_update", "continuation", "unknown"}

// NewMetrics registers the engine families in set.
func NewMetrics(set *metrics.Set) *Metrics {
	m := &Metrics{
		Set:        set,
		Panics:     set.NewCounter("expressgateway_panic_total"),
		local:      map[string]*metrics.Counter{},
		upConnects: map[string]*metrics.Counter{},
		upFailures: map[string]*metrics.Counter{},
		upActive:   map[string]*atomic.Int64{},
		cliActive:  map[string]*atomic.Int64{},
		detach:     map[string]*metrics.Counter{},
		h2events:   map[string]*metrics.Counter{},
		wsClosed:   map[string]*metrics.Counter{},

		H2Connections: new(atomic.Int64),
		H2Streams:     new(atomic.Int64),
		H2StreamsOpen: set.NewCounter("expressgateway_http2_streams_total"),
		H2UpStreams:   set.NewCounter("expressgateway_upstream_http2_streams_total"),
		h2StallReq:    set.NewCounter(`expressgateway_http2_flow_control_stalls_total{direction="request"}`),
		h2StallResp:   set.NewCounter(`expressgateway_http2_flow_control_stalls_total{direction="response"}`),

		H3UpStreams:     set.NewCounter("expressgateway_upstream_http3_streams_total"),
		H3UpGoAway:      set.NewCounter("expressgateway_upstream_http3_goaway_total"),
		H3UpStreamLimit: set.NewCounter("expressgateway_upstream_http3_stream_limit_total"),
		H3UpFlowStall:   set.NewCounter("expressgateway_upstream_http3_flow_stalls_total"),
	}
	set.NewGauge("expressgateway_http2_connections_active", func() float64 { return float64(m.H2Connections.Load()) })
	set.NewGauge("expressgateway_http2_streams_active", func() float64 { return float64(m.H2Streams.Load()) })
	// The most common h2c upstream events, registered up front so that the
	// families are always exported.
	m.H2UpReset("sent", "CANCEL")
	m.H2UpGoAway("NO_ERROR")
	m.H3UpReset("sent", "H3_REQUEST_CANCELLED")
	for i, n := range h2FrameNames {
		m.h2FramesIn[i] = set.NewCounter(fmt.Sprintf(`expressgateway_http2_frames_total{direction="received",type=%q}`, n))
		m.h2FramesOut[i] = set.NewCounter(fmt.Sprintf(`expressgateway_http2_frames_total{direction="sent",type=%q}`, n))
	}
	m.ShutdownAborted = set.NewCounter("expressgateway_shutdown_aborted_connections_total")
	m.WSActive = new(atomic.Int64)
	set.NewGauge("expressgateway_websocket_tunnels_active", func() float64 { return float64(m.WSActive.Load()) })
	m.WSBytes[tunClient] = set.NewCounter(`expressgateway_websocket_bytes_total{direction="client_to_upstream"}`)
	m.WSBytes[tunUpstream] = set.NewCounter(`expressgateway_websocket_bytes_total{direction="upstream_to_client"}`)
	m.WSClosed("closed")
	return m
}

// MetricsHelp returns the HELP text of every family the engine exports,
// keyed by family name. Each is the first sentence of the family's row in
// METRICS.md (a test in cmd/expressgateway keeps the two equal).
func MetricsHelp() map[string]string {
	help := map[string]string{
		"expressgateway_requests_total":                     "requests answered, by listener, route and status class (1xx…5xx).",
		"expressgateway_request_duration_seconds":           "time from the complete request head to the end of the response (Prometheus le buckets from 5 ms to 10 s).",
		"expressgateway_local_responses_total":              "responses the gateway generated itself, by listener and reason.",
		"expressgateway_client_connections_active":          "open client connections, including those whose exchange runs off the event loop.",
		"expressgateway_upstream_connections_active":        "open upstream connections (active and pooled).",
		"expressgateway_upstream_connects_total":            "upstream dials started.",
		"expressgateway_upstream_reuses_total":              "requests sent on a pooled keep-alive connection.",
		"expressgateway_upstream_failures_total":            "upstream failures, by cluster and reason.",
		"expressgateway_stream_detach_total":                "exchanges moved off the event loop for kernel backpressure, by direction.",
		"expressgateway_shutdown_aborted_connections_total": "client connections still open when the drain budget (engine.drain_timeout) ran out at shutdown, and so closed.",
		"expressgateway_l4_sessions_active":                 "open tcp connection pairs or udp sessions.",
		"expressgateway_l4_sessions_total":                  "tcp pairs or udp sessions opened.",
		"expressgateway_l4_bytes_total":                     "payload bytes relayed, by direction: rx client → upstream, tx upstream → client.",
		"expressgateway_l4_udp_drops_total":                 "datagrams dropped, by reason.",
		"expressgateway_guard_tripped_total":                "requests, streams and connections a guard refused or cut, by guard (guards/README.md).",
		"expressgateway_panic_total":                        "panics recovered while handling a connection; each closed only its own connection.",
		"expressgateway_fd_budget":                          "file descriptors the connection and session caps may hold at once, with the idle pools and a margin.",
		"expressgateway_fd_limit":                           "the soft RLIMIT_NOFILE in force, after the start raised it to the hard limit.",
		"expressgateway_http2_connections_active":           "open HTTP/2 client connections.",
		"expressgateway_http2_streams_active":               "open HTTP/2 streams of client connections, including those whose response still drains.",
		"expressgateway_http2_streams_total":                "HTTP/2 streams opened by clients.",
		"expressgateway_http2_frames_total":                 "HTTP/2 frames of client connections, by direction and frame type.",
		"expressgateway_http2_rst_stream_total":             "RST_STREAM frames of client connections, by direction and error code.",
		"expressgateway_http2_goaway_total":                 "GOAWAY frames of client connections, by direction and error code or reason.",
		"expressgateway_http2_flow_control_stalls_total":    "times HTTP/2 data had to wait for flow control, by direction.",
		"expressgateway_upstream_http2_streams_total":       "streams opened on h2c upstream connections.",
		"expressgateway_access_log_written_total":           "access-log lines written to stderr or log.access_log_file.",
		"expressgateway_access_log_dropped_total":           "access-log lines lost, never waited for.",
		"expressgateway_upstream_http2_rst_stream_total":    "RST_STREAM frames on h2c upstream connections, by direction and error code.",
		"expressgateway_upstream_http2_goaway_total":        "GOAWAY frames received from h2c upstreams, by error code.",
		"expressgateway_upstream_http3_streams_total":       "request streams opened on HTTP/3 upstream connections.",
		"expressgateway_upstream_http3_stream_resets_total": "HTTP/3 upstream request streams reset, by direction and error code.",
		"expressgateway_upstream_http3_goaway_total":        "GOAWAY frames received from HTTP/3 upstreams.",
		"expressgateway_upstream_http3_stream_limit_total":  "requests that found an HTTP/3 upstream connection at the endpoint's stream limit (its MAX_STREAMS) and went on another connection.",
		"expressgateway_upstream_http3_flow_stalls_total":   "times response data from an HTTP/3 upstream waited because the client was slower (the endpoint's stream credit was held).",
		"expressgateway_event_loops":                        "gnet event loops running: engine.event_loops per loop set.",
		"expressgateway_config_generation":                  "the generation of the config in use: 1 at start, +1 for every reload applied (also GET /config/generation on the admin listener).",
		"expressgateway_config_reload_total":                "config reloads (SIGHUP or a change of the watched file), by result.",
		"expressgateway_upgrade_total":                      "USR2 binary upgrades, by result.",
		"expressgateway_grpc_requests_total":                "gRPC exchanges finished, by listener and grpc-status.",
		"expressgateway_websocket_tunnels_active":           "open WebSocket tunnels (upgraded HTTP/1.1 connections, relayed on the event loop or off it, and WebSocket streams of HTTP/2 connections).",
		"expressgateway_websocket_tunnels_closed_total":     "WebSocket tunnels ended, by how they ended.",
		"expressgateway_websocket_bytes_total":              "bytes relayed through WebSocket tunnels after the handshake, by direction.",
		"expressgateway_tls_handshakes_total":               "TLS handshakes of https listeners, by result (ok, error) and, for errors, reason: timeout (handshake_timeout), client_closed, http_on_tls_port (plaintext HTTP; answered 400 in clear), not_tls, version, alpn, cipher, client_certificate (mTLS refusal), client_alert, alert_sent, proxy_untrusted (a PROXY header from an address not trusted), handshake_slots (max_handshakes busy for handshake_timeout), protocol.",
		"expressgateway_proxy_protocol_total":               "connections by what their PROXY protocol header did: accepted (a trusted balancer named the client), local (v2 LOCAL or v1 UNKNOWN: the socket's address stands), untrusted (a header from an address not in trusted: refused), missing (a trusted balancer sent none: refused), malformed (refused), timeout (not complete within timeout: closed), over_limit (the named client is over a connection cap: refused).",
		"expressgateway_tls_handshake_duration_seconds":     "time from the start of a handshake (after its slot) to its end, for handshakes that succeeded.",
		"expressgateway_tls_handshake_waits_total":          "handshakes that had to wait for a slot (tls.max_handshakes in progress).",
		"expressgateway_tls_connections_total":              "TLS connections established, by TLS version (1.2, 1.3) and ALPN protocol chosen (h2, http/1.1, none).",
		"expressgateway_tls_certificate_expiry_seconds":     "the Unix time at which each served certificate (by cert_file) expires; RUNBOOK.md alerts 14 days before.",
		"expressgateway_tls_certificate_rotations_total":    "certificate reloads after a change of a watched cert or key file, by result; on error the previous certificates stay in use.",
		"expressgateway_upstream_tls_handshakes_total":      "TLS handshakes to endpoints of clusters with tls enabled, by result and, for errors, reason (verify, name, timeout, closed, alpn, protocol).",
	}
	maps.Copy(help, h3MetricsHelp)
	maps.Copy(help, quicMetricsHelp)
	return help
}

func (m *Metrics) counter(mp map[string]*metrics.Counter, key, name string) *metrics.Counter {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := mp[key]
	if c == nil {
		c = m.Set.GetOrCreateCounter(name)
		mp[key] = c
	}
	return c
}

// LocalResponse counts a response the gateway generated itself.
func (m *Metrics) LocalResponse(listener, reason string) *metrics.Counter {
	return m.counter(m.local, listener+"\x00"+reason,
		fmt.Sprintf(`expressgateway_local_responses_total{listener=%q,reason=%q}`, listener, reason))
}

// UpstreamConnect counts new upstream connections per cluster.
func (m *Metrics) UpstreamConnect(cluster string) *metrics.Counter {
	return m.counter(m.upConnects, cluster, fmt.Sprintf(`expressgateway_upstream_connects_total{cluster=%q}`, cluster))
}

// UpstreamFailure counts upstream failures per cluster and reason.
func (m *Metrics) UpstreamFailure(cluster, reason string) *metrics.Counter {
	return m.counter(m.upFailures, cluster+"\x00"+reason,
		fmt.Sprintf(`expressgateway_upstream_failures_total{cluster=%q,reason=%q}`, cluster, reason))
}

// WSClosed counts WebSocket tunnels that ended for reason.
func (m *Metrics) WSClosed(reason string) *metrics.Counter {
	return m.counter(m.wsClosed, reason, fmt.Sprintf(`expressgateway_websocket_tunnels_closed_total{reason=%q}`, reason))
}

// Detach counts connections moved off the event loop for a long stream.
func (m *Metrics) Detach(direction string) *metrics.Counter {
	return m.counter(m.detach, direction, fmt.Sprintf(`expressgateway_stream_detach_total{direction=%q}`, direction))
}

func (m *Metrics) gauge(mp map[string]*atomic.Int64, key, name string) *atomic.Int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	g := mp[key]
	if g == nil {
		g = new(atomic.Int64)
		mp[key] = g
		m.Set.GetOrCreateGauge(name, func() float64 { return float64(g.Load()) })
	}
	return g
}

// UpstreamActive is the gauge of open upstream connections of a cluster.
func (m *Metrics) UpstreamActive(cluster string) *atomic.Int64 {
	return m.gauge(m.upActive, cluster, fmt.Sprintf(`expressgateway_upstream_connections_active{cluster=%q}`, cluster))
}

// ClientActive is the gauge of open client connections of a listener.
func (m *Metrics) ClientActive(listener string) *atomic.Int64 {
	return m.gauge(m.cliActive, listener, fmt.Sprintf(`expressgateway_client_connections_active{listener=%q}`, listener))
}

// requestCounters are the per-route, per-status-class request counters.
type requestCounters struct {
	byClass [6]*metrics.Counter // index: status/100, 0 unused
}

func newRequestCounters(set *metrics.Set, listener, route string) *requestCounters {
	rc := &requestCounters{}
	for c := 1; c <= 5; c++ {
		rc.byClass[c] = set.GetOrCreateCounter(fmt.Sprintf(
			`expressgateway_requests_total{listener=%q,route=%q,class="%dxx"}`, listener, route, c))
	}
	return rc
}

func (rc *requestCounters) inc(status int) {
	c := status / 100
	if c < 1 || c > 5 {
		c = 5
	}
	rc.byClass[c].Inc()
}

// H2Reset counts RST_STREAM frames by direction ("sent", "received") and
// error code.
func (m *Metrics) H2Reset(direction, code string) *metrics.Counter {
	return m.counter(m.h2events, "rst\x00"+direction+"\x00"+code,
		fmt.Sprintf(`expressgateway_http2_rst_stream_total{direction=%q,code=%q}`, direction, code))
}

// H2GoAway counts GOAWAY frames by direction and error code (or, for ours,
// the connection error's token).
func (m *Metrics) H2GoAway(direction, code string) *metrics.Counter {
	return m.counter(m.h2events, "goaway\x00"+direction+"\x00"+code,
		fmt.Sprintf(`expressgateway_http2_goaway_total{direction=%q,code=%q}`, direction, code))
}

// H2UpReset counts RST_STREAM frames on h2c upstream connections, by
// direction and error code.
func (m *Metrics) H2UpReset(direction, code string) *metrics.Counter {
	return m.counter(m.h2events, "uprst\x00"+direction+"\x00"+code,
		fmt.Sprintf(`expressgateway_upstream_http2_rst_stream_total{direction=%q,code=%q}`, direction, code))
}

// H2UpGoAway counts GOAWAY frames received from h2c upstreams, by error
// code.
func (m *Metrics) H2UpGoAway(code string) *metrics.Counter {
	return m.counter(m.h2events, "upgoaway\x00"+code,
		fmt.Sprintf(`expressgateway_upstream_http2_goaway_total{code=%q}`, code))
}

// H3UpReset counts resets of HTTP/3 upstream request streams, by
// direction and error code name.
func (m *Metrics) H3UpReset(direction, code string) *metrics.Counter {
	return m.counter(m.h2events, "h3uprst\x00"+direction+"\x00"+code,
		fmt.Sprintf(`expressgateway_upstream_http3_stream_resets_total{direction=%q,code=%q}`, direction, code))
}

// H2FlowStall counts the times a stream's data had to wait for flow
// control: "request" (credit held while the upstream drains), "response"
// (DATA pending on the client's window).
func (m *Metrics) H2FlowStall(direction string) *metrics.Counter {
	if direction == "request" {
		return m.h2StallReq
	}
	return m.h2StallResp
}

// h2CountFrames counts the frames in b, a run of whole HTTP/2 frames,
// as received or sent.
func (m *Metrics) h2CountFrames(b []byte, sent bool) {
	cs := &m.h2FramesIn
	if sent {
		cs = &m.h2FramesOut
	}
	for len(b) >= 9 {
		n := int(b[0])<<16 | int(b[1])<<8 | int(b[2])
		t := int(b[3])
		if t >= h2FrameTypes-1 {
			t = h2FrameTypes - 1
		}
		cs[t].Inc()
		if 9+n > len(b) {
			return
		}
		b = b[9+n:]
	}
}
