// SPDX-License-Identifier: GPL-3.0-only

package engine

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/expressgateway/expressgateway/conf"
	"github.com/expressgateway/expressgateway/lb"
)

// TLS to upstreams. The dial goroutine runs the handshake, then enrolls the
// plaintext end of a socketpair on the loop as the upstream connection and
// stays on as its relay (the same bridge as tls_front.go), so the HTTP/1.1
// and HTTP/2 upstream code is the cleartext code.

// upstreamTLS is a cluster's TLS to its endpoints, rebuilt by a reload.
type upstreamTLS struct {
	cluster    string
	base       *tls.Config
	serverName string // "" → the endpoint's host
	alpn       string // the protocol the endpoint must choose ("h2"), or ""
	hosts      sync.Map
	set        *metrics.Set
	ok         *metrics.Counter
	mu         sync.Mutex
	fails      map[string]*metrics.Counter
}

// newUpstreamTLS loads a cluster's CA bundle and client certificate.
func newUpstreamTLS(c *conf.Cluster, set *metrics.Set) (*upstreamTLS, error) {
	t := c.TLS
	if t == nil || !t.Enabled {
		return nil, nil
	}
	cfg := &tls.Config{
		MinVersion:         conf.TLSVersion(t.MinVersion),
		InsecureSkipVerify: t.InsecureSkipVerify, //nolint:gosec // an operator's explicit choice, logged at start
		ClientSessionCache: tls.NewLRUClientSessionCache(256),
		CipherSuites:       tls12Suites,
	}
	if t.CAFile != "" {
		pool, err := conf.LoadCAPool(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("cluster %s: tls.ca_file: %w", c.Name, err)
		}
		cfg.RootCAs = pool
	}
	if t.CertFile != "" {
		pair, err := conf.LoadKeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("cluster %s: tls.cert_file: %w", c.Name, err)
		}
		cfg.Certificates = []tls.Certificate{*pair}
	}
	u := &upstreamTLS{cluster: c.Name, base: cfg, serverName: t.ServerName, set: set, fails: map[string]*metrics.Counter{},
		ok: set.GetOrCreateCounter(fmt.Sprintf(`expressgateway_upstream_tls_handshakes_total{cluster=%q,result="ok"}`, c.Name))}
	switch c.Protocol {
	case "h2":
		u.alpn = "h2"
		cfg.NextProtos = []string{"h2"}
	case "h3":
		u.alpn = "h3" // checked by dialH3; QUIC is TLS 1.3
		upTLSConfigH3(cfg)
	default:
		cfg.NextProtos = []string{"http/1.1"}
	}
	return u, nil
}

func (u *upstreamTLS) failure(reason string) *metrics.Counter {
	u.mu.Lock()
	defer u.mu.Unlock()
	c := u.fails[reason]
	if c == nil {
		c = u.set.GetOrCreateCounter(fmt.Sprintf(`expressgateway_upstream_tls_handshakes_total{cluster=%q,result="error",reason=%q}`, u.cluster, reason))
		u.fails[reason] = c
	}
	return c
}

// configFor is the client config for an endpoint address: the base with
// ServerName set (server_name, or the address's host).
func (u *upstreamTLS) configFor(addr string) *tls.Config {
	if c, ok := u.hosts.Load(addr); ok {
		return c.(*tls.Config)
	}
	c := u.base.Clone()
	c.ServerName = u.serverName
	if c.ServerName == "" {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			host = addr
		}
		c.ServerName = host
	}
	u.hosts.Store(addr, c)
	return c
}

// upTLSDial is one TLS dial: the config and the protocol required.
type upTLSDial struct {
	u    *upstreamTLS
	addr string
}

func (u *upstreamTLS) dial(ep *lb.Endpoint) *upTLSDial {
	if u == nil {
		return nil
	}
	return &upTLSDial{u: u, addr: ep.Address()}
}

// handshake runs the client handshake on nc within timeout and returns the
// loop's end of the plaintext bridge and the relay to run.
func (d *upTLSDial) handshake(e *Engine, nc net.Conn, timeout time.Duration) (net.Conn, *tlsRelay, error) {
	cfg := d.u.configFor(d.addr)
	_ = nc.SetDeadline(time.Now().Add(timeout))
	tc := tls.Client(nc, cfg)
	err := tc.HandshakeContext(context.Background())
	if err == nil && d.u.alpn != "" && tc.ConnectionState().NegotiatedProtocol != d.u.alpn {
		err = fmt.Errorf("the endpoint did not choose ALPN %q (got %q)", d.u.alpn, tc.ConnectionState().NegotiatedProtocol)
		_ = tc.Close()
		d.u.failure("alpn").Inc()
		e.log.Warn().Str("cluster", d.u.cluster).Str("endpoint", d.addr).Err(err).Msg("upstream TLS handshake failed")
		return nil, nil, err
	}
	if err != nil {
		reason := upHandshakeReason(err)
		d.u.failure(reason).Inc()
		e.log.Warn().Str("cluster", d.u.cluster).Str("endpoint", d.addr).Str("reason", reason).Err(err).Msg("upstream TLS handshake failed")
		_ = nc.Close()
		return nil, nil, err
	}
	_ = nc.SetDeadline(time.Time{})
	d.u.ok.Inc()
	inner, outer, err := socketPair()
	if err != nil {
		_ = tc.Close()
		return nil, nil, err
	}
	return inner, &tlsRelay{tc: tc, outer: outer}, nil
}

func upHandshakeReason(err error) string {
	var ne net.Error
	var ue x509.UnknownAuthorityError
	var he x509.HostnameError
	var ce x509.CertificateInvalidError
	switch {
	case errors.As(err, &he):
		return "name"
	case errors.As(err, &ue), errors.As(err, &ce):
		return "verify"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET):
		return "closed"
	case strings.Contains(err.Error(), "certificate"):
		return "verify"
	}
	return "protocol"
}
