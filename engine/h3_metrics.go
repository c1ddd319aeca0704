// SPDX-License-Identifier: GPL-3.0-only

package engine

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/VictoriaMetrics/metrics"
)

// h3MetricsHelp is the HELP text of the h3 families (METRICS.md, "HTTP/3").
var h3MetricsHelp = map[string]string{
	"expressgateway_h3_connections_active":      "open QUIC connections of h3 listeners.",
	"expressgateway_h3_connections_total":       "QUIC connections accepted (handshake complete) by h3 listeners.",
	"expressgateway_h3_streams_active":          "open HTTP/3 request streams.",
	"expressgateway_h3_goaway_total":            "HTTP/3 GOAWAY frames, by reason: max_requests (quic.max_requests_per_connection reached), drain (shutdown or listener removed), received (from a client).",
	"expressgateway_h3_stream_errors_total":     "HTTP/3 request streams reset or refused, by reason.",
	"expressgateway_h3_connection_errors_total": "QUIC connections the gateway closed for an HTTP/3 protocol error, by reason.",
	"expressgateway_h3_packets_dropped_total":   "UDP datagrams of h3 listeners that quic-go dropped without a connection (garbage, unknown connection IDs, unsupported versions), by reason.",
	"expressgateway_h3_retries_total":           "QUIC Retry packets sent to validate a client's address (quic.retry).",
	"expressgateway_h3_handover_total":          "USR2 upgrades in which this process, started by the upgrade, bound an h3 listener beside its predecessor's, by result: steered (the reuseport program keeps the predecessor's QUIC connections on its socket), failed (not attached: the predecessor's connections may break; the log says why).",
	"expressgateway_h3_early_requests_total":    "requests read from 0-RTT data before the handshake completed (quic.early_data), by what happened: forwarded (GET, HEAD, OPTIONS, with Early-Data: 1), waited (other methods, held until the handshake completed), too_early (the handshake did not complete within tls.handshake_timeout: 425).",
}

// h3Metrics are one h3 listener's families.
type h3Metrics struct {
	set        *metrics.Set
	listener   string
	conns      atomic.Int64
	streams    atomic.Int64
	connsTotal *metrics.Counter
	retries    *metrics.Counter

	mu    sync.Mutex
	byKey map[string]*metrics.Counter
}

var h3MetricsMu sync.Mutex

// h3 returns the families of h3 listener name, registering them on first use.
func (m *Metrics) h3(name string) *h3Metrics {
	h3MetricsMu.Lock()
	defer h3MetricsMu.Unlock()
	if m.h3m == nil {
		m.h3m = map[string]*h3Metrics{}
	}
	if hm := m.h3m[name]; hm != nil {
		return hm
	}
	set := m.Set
	hm := &h3Metrics{
		set: set, listener: name, byKey: map[string]*metrics.Counter{},
		connsTotal: set.GetOrCreateCounter(fmt.Sprintf(`expressgateway_h3_connections_total{listener=%q}`, name)),
		retries:    set.GetOrCreateCounter(fmt.Sprintf(`expressgateway_h3_retries_total{listener=%q}`, name)),
	}
	set.GetOrCreateGauge(fmt.Sprintf(`expressgateway_h3_connections_active{listener=%q}`, name), func() float64 { return float64(hm.conns.Load()) })
	set.GetOrCreateGauge(fmt.Sprintf(`expressgateway_h3_streams_active{listener=%q}`, name), func() float64 { return float64(hm.streams.Load()) })
	hm.early("forwarded")
	hm.early("waited")
	hm.early("too_early")
	hm.goAway("max_requests")
	hm.handover("steered")
	hm.handover("failed")
	hm.goAway("drain")
	hm.streamError("rejected_after_goaway")
	hm.counter("drop unknown_connection_id", `expressgateway_h3_packets_dropped_total{listener=%q,reason="unknown_connection_id"}`)
	hm.counter("conn control_stream_closed", `expressgateway_h3_connection_errors_total{listener=%q,reason="control_stream_closed"}`)
	m.h3m[name] = hm
	return hm
}

func (hm *h3Metrics) counter(key, format string, args ...any) *metrics.Counter {
	hm.mu.Lock()
	defer hm.mu.Unlock()
	c := hm.byKey[key]
	if c == nil {
		c = hm.set.GetOrCreateCounter(fmt.Sprintf(format, append([]any{hm.listener}, args...)...))
		hm.byKey[key] = c
	}
	return c
}

func (hm *h3Metrics) goAway(reason string) *metrics.Counter {
	return hm.counter("goaway "+reason, `expressgateway_h3_goaway_total{listener=%q,reason=%q}`, reason)
}

func (hm *h3Metrics) early(result string) *metrics.Counter {
	return hm.counter("early "+result, `expressgateway_h3_early_requests_total{listener=%q,result=%q}`, result)
}

func (hm *h3Metrics) streamError(reason string) *metrics.Counter {
	return hm.counter("stream "+reason, `expressgateway_h3_stream_errors_total{listener=%q,reason=%q}`, reason)
}

// H3PacketDropped counts a datagram quic-go dropped, by reason.
func (m *Metrics) H3PacketDropped(listener, reason string) *metrics.Counter {
	hm := m.h3(listener)
	return hm.counter("drop "+reason, `expressgateway_h3_packets_dropped_total{listener=%q,reason=%q}`, reason)
}

// H3Handover counts the steering of a USR2 hand-over on listener, by
// result ("steered" or "failed").
func (m *Metrics) H3Handover(listener, result string) *metrics.Counter {
	return m.h3(listener).handover(result)
}

func (hm *h3Metrics) handover(result string) *metrics.Counter {
	return hm.counter("handover "+result, `expressgateway_h3_handover_total{listener=%q,result=%q}`, result)
}

// H3ConnError counts a connection closed for a protocol error, by reason.
func (m *Metrics) H3ConnError(listener, reason string) *metrics.Counter {
	hm := m.h3(listener)
	return hm.counter("conn "+reason, `expressgateway_h3_connection_errors_total{listener=%q,reason=%q}`, reason)
}
