// SPDX-License-Identifier: GPL-3.0-only

package conf

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"
)

// TLSVersion maps "1.2"/"1.3" to the crypto/tls constant.
func TLSVersion(s string) uint16 {
	if s == "1.3" {
		return tls.VersionTLS13
	}
	return tls.VersionTLS12
}

// PrefixesOf parses CIDRs and single addresses (validated already).
func PrefixesOf(list []string) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(list))
	for _, s := range list {
		if p, err := parsePrefixOrAddr(s); err == nil {
			out = append(out, p)
		}
	}
	return out
}

func parsePrefixOrAddr(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// LoadKeyPair reads a PEM certificate chain and its private key and checks
// them: both readable, the key matching the leaf, the leaf valid now. The
// returned certificate has Leaf set.
func LoadKeyPair(certFile, keyFile string) (*tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("certificate %s: %v", certFile, errors.Unwrap(err))
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("key %s: %v", keyFile, errors.Unwrap(err))
	}
	if b, _ := pem.Decode(certPEM); b == nil {
		return nil, fmt.Errorf("certificate %s: no PEM data", certFile)
	}
	if b, _ := pem.Decode(keyPEM); b == nil {
		return nil, fmt.Errorf("key %s: no PEM data (an unreadable or encrypted key?)", keyFile)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		msg := err.Error()
		if strings.Contains(msg, "does not match") {
			return nil, fmt.Errorf("key %s does not match the certificate %s", keyFile, certFile)
		}
		return nil, fmt.Errorf("%s / %s: %s", certFile, keyFile, strings.TrimPrefix(msg, "tls: "))
	}
	leaf := pair.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return nil, fmt.Errorf("certificate %s: %v", certFile, err)
		}
		pair.Leaf = leaf
	}
	now := time.Now()
	if now.After(leaf.NotAfter) {
		return nil, fmt.Errorf("certificate %s expired at %s", certFile, leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if now.Before(leaf.NotBefore) {
		return nil, fmt.Errorf("certificate %s is not valid before %s", certFile, leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	return &pair, nil
}

// LoadCAPool reads a PEM bundle of CA certificates.
func LoadCAPool(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("CA bundle %s: %v", file, errors.Unwrap(err))
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("CA bundle %s: no PEM certificates in it", file)
	}
	return pool, nil
}

func (v *validator) listenerTLS(path string, t *ListenerTLS) {
	v.oneOf(path+".min_version", t.MinVersion, "1.2", "1.3")
	if len(t.ALPN) == 0 {
		v.addf(path+".alpn", "needs at least one of \"h2\", \"http/1.1\"")
	}
	for i, p := range t.ALPN {
		v.oneOf(idx(path+".alpn", i), p, "h2", "http/1.1")
	}
	v.positive(path+".handshake_timeout", t.HandshakeTimeout)
	v.positive(path+".ticket_key_rotation", t.TicketKeyRotation)
	v.intRange(path+".max_handshakes", t.MaxHandshakes, 1, 100000)
	v.oneOf(path+".client_auth", t.ClientAuth, "none", "request", "require")
	switch {
	case t.ClientAuth != "none" && t.ClientCAFile == "":
		v.addf(path+".client_ca_file", "is required when client_auth = %q", t.ClientAuth)
	case t.ClientCAFile != "":
		if _, err := LoadCAPool(t.ClientCAFile); err != nil {
			v.addf(path+".client_ca_file", "%v", err)
		}
	}
	if h := t.ClientIdentityHeader; h != "" && !isToken(h) {
		v.addf(path+".client_identity_header", "invalid header name %q: must be a token", h)
	}
	if len(t.Certificates) == 0 {
		v.addf(path+".certificates", "an https or h3 listener needs at least one [[listeners.tls.certificates]] entry")
	}
	for i := range t.Certificates {
		c := &t.Certificates[i]
		cp := idx(path+".certificates", i)
		okC := v.required(cp+".cert_file", c.CertFile)
		okK := v.required(cp+".key_file", c.KeyFile)
		if !okC || !okK {
			continue
		}
		if _, err := LoadKeyPair(c.CertFile, c.KeyFile); err != nil {
			key := cp + ".cert_file"
			if strings.HasPrefix(err.Error(), "key ") {
				key = cp + ".key_file"
			}
			v.addf(key, "%v", err)
		}
	}
}

func (v *validator) clusterTLS(path string, c *Cluster) {
	t := c.TLS
	if t == nil {
		if c.Protocol == "h2" {
			v.addf(path+".protocol", "\"h2\" needs tls = { enabled = true, ... } (use \"h2c\" for HTTP/2 without TLS)")
		}
		if c.Protocol == "h3" {
			v.addf(path+".protocol", "\"h3\" needs tls = { enabled = true, ... } (QUIC is always TLS 1.3: at least ca_file or the system's roots, and server_name when the endpoint address is not the certificate's name)")
		}
		return
	}
	if c.Protocol == "h2c" && t.Enabled {
		v.addf(path+".protocol", "\"h2c\" is HTTP/2 without TLS; with tls enabled use \"h2\"")
	}
	if (c.Protocol == "h2" || c.Protocol == "h3") && !t.Enabled {
		v.addf(path+".tls.enabled", "must be true for protocol = %q", c.Protocol)
	}
	tp := path + ".tls"
	v.oneOf(tp+".min_version", t.MinVersion, "1.2", "1.3")
	if t.CAFile != "" {
		if _, err := LoadCAPool(t.CAFile); err != nil {
			v.addf(tp+".ca_file", "%v", err)
		}
	}
	if t.ServerName != "" && !validHost(t.ServerName) {
		v.addf(tp+".server_name", "invalid server name %q", t.ServerName)
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		v.addf(tp+".cert_file", "cert_file and key_file go together")
	} else if t.CertFile != "" {
		if _, err := LoadKeyPair(t.CertFile, t.KeyFile); err != nil {
			key := tp + ".cert_file"
			if strings.HasPrefix(err.Error(), "key ") {
				key = tp + ".key_file"
			}
			v.addf(key, "%v", err)
		}
	}
}

func (v *validator) proxyProtocol(path string, p *ProxyProtocol) {
	if p.Accept && len(p.Trusted) == 0 {
		v.addf(path+".trusted", "is required when accept = true: the addresses of the balancers allowed to send the header")
	}
	for i, s := range p.Trusted {
		if _, err := parsePrefixOrAddr(s); err != nil {
			v.addf(idx(path+".trusted", i), "invalid CIDR or address %q", s)
		}
	}
	v.positive(path+".timeout", p.Timeout)
}

// listenerTLSQUIC checks an h3 listener's [listeners.tls]: QUIC is TLS 1.3
// with ALPN "h3" only, so min_version and alpn are not settable.
func (v *validator) listenerTLSQUIC(path string, t *ListenerTLS) {
	if v.present[path+".min_version"] && t.MinVersion != "1.3" {
		v.addf(path+".min_version", "QUIC is TLS 1.3 only: leave it unset or \"1.3\"")
	}
	if v.present[path+".alpn"] {
		v.addf(path+".alpn", "not used by h3 listeners (ALPN is \"h3\")")
	}
	if v.quicEarly && !t.SessionTickets {
		v.addf(path+".session_tickets", "must be true when quic.early_data is (0-RTT resumes a session)")
	}
	saved := t.ALPN
	t.ALPN = []string{"h2"} // what listenerTLS accepts; the engine offers "h3"
	v.listenerTLS(path, t)
	t.ALPN = saved
}

func (v *validator) quic(path string, q *ListenerQUIC) {
	v.intRange(path+".max_streams", q.MaxStreams, 1, 10000)
	v.positive(path+".idle_timeout", q.IdleTimeout)

	v.oneOf(path+".retry", q.Retry, "always", "never", "auto")
	v.intRange(path+".max_connections_per_ip", q.MaxConnectionsPerIP, 0, 100_000_000)
	v.intRange(path+".max_requests_per_connection", q.MaxRequestsPerConnection, 0, 1<<31-1)
	v.sizeRange(path+".max_field_section_size", q.MaxFieldSectionSize, 1*KiB, 16*MiB)
	v.sizeRange(path+".stream_receive_window", q.StreamReceiveWindow, 16*KiB, 64*MiB)
	v.sizeRange(path+".connection_receive_window", q.ConnectionReceiveWindow, 16*KiB, 1*GiB)
	if q.ConnectionReceiveWindow < q.StreamReceiveWindow {
		v.addf(path+".connection_receive_window", "must be at least stream_receive_window (%s), got %s",
			q.StreamReceiveWindow, q.ConnectionReceiveWindow)
	}
}

// h3NeedsLoops: an h3 listener's requests run on the event loops of the
// TCP listeners (http, https, tcp), so at least one must exist.
func (v *validator) h3NeedsLoops(c *Config) {
	h3, tcp := -1, false
	for i, l := range c.Listeners {
		switch l.Protocol {
		case ProtocolH3:
			if h3 < 0 {
				h3 = i
			}
		case ProtocolHTTP, ProtocolHTTPS, ProtocolTCP:
			tcp = true
		}
	}
	if h3 >= 0 && !tcp {
		v.addf(idx("listeners", h3)+".protocol", "an h3 listener needs an http, https or tcp listener beside it (its requests run on their event loops)")
	}
}
