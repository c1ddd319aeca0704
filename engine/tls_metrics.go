// SPDX-License-Identifier: GPL-3.0-only

package engine

import (
	"fmt"
	"sync"

	"github.com/VictoriaMetrics/metrics"
)

// tlsMetrics are one https listener's TLS families.
type tlsMetrics struct {
	set            *metrics.Set
	listener       string
	handshakeOK    *metrics.Counter
	handshakeWaits *metrics.Counter
	duration       *metrics.PrometheusHistogram

	mu       sync.Mutex
	failures map[string]*metrics.Counter
	conns    map[string]*metrics.Counter
	rots     map[string]*metrics.Counter
	expiry   map[string]bool // gauge names currently registered
}

func (e *Engine) tlsMetrics(listener string) *tlsMetrics {
	set := e.m.Set
	m := &tlsMetrics{
		set:            set,
		listener:       listener,
		handshakeOK:    set.GetOrCreateCounter(fmt.Sprintf(`expressgateway_tls_handshakes_total{listener=%q,result="ok"}`, listener)),
		handshakeWaits: set.GetOrCreateCounter(fmt.Sprintf(`expressgateway_tls_handshake_waits_total{listener=%q}`, listener)),
		duration:       set.GetOrCreatePrometheusHistogram(fmt.Sprintf(`expressgateway_tls_handshake_duration_seconds{listener=%q}`, listener)),
		failures:       map[string]*metrics.Counter{},
		conns:          map[string]*metrics.Counter{},
		rots:           map[string]*metrics.Counter{},
		expiry:         map[string]bool{},
	}
	m.failure("timeout")
	m.rotation("ok")
	m.rotation("error")
	return m
}

func (m *tlsMetrics) get(mp map[string]*metrics.Counter, key, name string) *metrics.Counter {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := mp[key]
	if c == nil {
		c = m.set.GetOrCreateCounter(name)
		mp[key] = c
	}
	return c
}

// failure counts a failed handshake by reason.
func (m *tlsMetrics) failure(reason string) *metrics.Counter {
	return m.get(m.failures, reason, fmt.Sprintf(`expressgateway_tls_handshakes_total{listener=%q,result="error",reason=%q}`, m.listener, reason))
}

// connection counts an established TLS connection by version and ALPN.
func (m *tlsMetrics) connection(version, alpn string) *metrics.Counter {
	if alpn == "" {
		alpn = "none"
	}
	return m.get(m.conns, version+" "+alpn, fmt.Sprintf(`expressgateway_tls_connections_total{listener=%q,version=%q,alpn=%q}`, m.listener, version, alpn))
}

// rotation counts a certificate reload by result.
func (m *tlsMetrics) rotation(result string) *metrics.Counter {
	return m.get(m.rots, result, fmt.Sprintf(`expressgateway_tls_certificate_rotations_total{listener=%q,result=%q}`, m.listener, result))
}

// certsLoaded sets the expiry gauges to the certificates now served and
// drops those of certificates no longer configured.
func (m *tlsMetrics) certsLoaded(cs *certSet) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := map[string]bool{}
	for i, c := range cs.certs {
		name := fmt.Sprintf(`expressgateway_tls_certificate_expiry_seconds{listener=%q,certificate=%q}`, m.listener, cs.files[i].CertFile)
		now[name] = true
		m.set.GetOrCreateGauge(name, nil).Set(float64(c.Leaf.NotAfter.Unix()))
	}
	for name := range m.expiry {
		if !now[name] {
			m.set.UnregisterMetric(name)
		}
	}
	m.expiry = now
}
