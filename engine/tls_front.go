// SPDX-License-Identifier: GPL-3.0-only

package engine

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/expressgateway/expressgateway/codecs/proxyproto"
	"github.com/expressgateway/expressgateway/conf"
	"github.com/expressgateway/expressgateway/guards"
)

// TLS termination (https listeners).
//
// gnet has no TLS. A connection of an https listener is accepted by its
// loop like any other, admitted (connection caps), then its socket leaves
// gnet (dup) for a TLS actor: a goroutine that runs the handshake under
// handshake_timeout and the listener's handshake cap, then bridges the
// plaintext to the loop through a socketpair whose other end is enrolled on
// the same loop. The session on the loop (HTTP/1.1, or HTTP/2 when ALPN chose
// h2) is the same code as for cleartext, with its client address, ALPN and
// verified client identity taken from the actor. Kernel socket buffers on
// both hops carry the backpressure: a session that stops reading fills the
// socketpair, the actor stops reading TLS records, and TCP pushes back on the
// client; a client that stops reading blocks the actor's writes, the
// socketpair fills, and the session sees its output back up as with a slow
// cleartext client. ARCHITECTURE.md ("TLS") gives the measured cost.

// tlsFront is the TLS state of one https listener slot; it lives as long as
// the slot, across reloads, so session ticket keys and handshake slots
// survive a reload.
type tlsFront struct {
	listener string
	cfg      atomic.Pointer[tls.Config]
	certs    atomic.Pointer[certSet]
	opts     atomic.Pointer[conf.ListenerTLS]
	sem      atomic.Pointer[chan struct{}] // handshake slots; replaced when max_handshakes changes

	mu         sync.Mutex
	files      []fileStamp // the certificate and key files, as last loaded
	ticketKeys [][32]byte  // newest first
	ticketAt   time.Time

	m *tlsMetrics
}

// fileStamp is what tells a changed file: size, mtime and inode.
type fileStamp struct {
	path  string
	size  int64
	mtime time.Time
	ino   uint64
}

func stampOf(path string) fileStamp {
	st := fileStamp{path: path}
	fi, err := os.Stat(path)
	if err != nil {
		return st
	}
	st.size, st.mtime = fi.Size(), fi.ModTime()
	if s, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.ino = s.Ino
	}
	return st
}

// certSet is the certificates of a listener with the SNI index.
type certSet struct {
	certs []*tls.Certificate
	files []conf.Certificate
	exact map[string][]int // DNS name → certificates
	wild  map[string][]int // "*.example.com" → certificates
}

func buildCertSet(files []conf.Certificate) (*certSet, error) {
	cs := &certSet{files: files, exact: map[string][]int{}, wild: map[string][]int{}}
	for i, f := range files {
		c, err := conf.LoadKeyPair(f.CertFile, f.KeyFile)
		if err != nil {
			return nil, err
		}
		cs.certs = append(cs.certs, c)
		names := c.Leaf.DNSNames
		if len(names) == 0 && c.Leaf.Subject.CommonName != "" {
			names = []string{c.Leaf.Subject.CommonName}
		}
		for _, n := range names {
			n = strings.ToLower(strings.TrimSuffix(n, "."))
			if strings.HasPrefix(n, "*.") {
				cs.wild[n] = append(cs.wild[n], i)
			} else {
				cs.exact[n] = append(cs.exact[n], i)
			}
		}
	}
	return cs, nil
}

// pick chooses the certificate for a ClientHello: a DNS name equal to the
// SNI, then a wildcard one label up, then the first certificate. Among
// several for the same name, the first the client supports (RSA or ECDSA).
func (cs *certSet) pick(hello *tls.ClientHelloInfo) *tls.Certificate {
	name := strings.ToLower(strings.TrimSuffix(hello.ServerName, "."))
	choose := func(idx []int) *tls.Certificate {
		for _, i := range idx {
			if hello.SupportsCertificate(cs.certs[i]) == nil {
				return cs.certs[i]
			}
		}
		return cs.certs[idx[0]]
	}
	if name != "" {
		if idx := cs.exact[name]; len(idx) > 0 {
			return choose(idx)
		}
		if dot := strings.IndexByte(name, '.'); dot > 0 {
			if idx := cs.wild["*"+name[dot:]]; len(idx) > 0 {
				return choose(idx)
			}
		}
	}
	return cs.certs[0]
}

// tls12Suites are the TLS 1.2 cipher suites offered: ECDHE with AEADs only
// (TLS 1.3 suites are not configurable and all safe).
var tls12Suites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// newTLSFront makes the TLS state of an https listener slot.
func (e *Engine) newTLSFront(name string) *tlsFront {
	return &tlsFront{listener: name, m: e.tlsMetrics(name)}
}

// configure loads the listener's certificates and CA bundle and builds the
// tls.Config new handshakes use. On error nothing changes.
func (f *tlsFront) configure(o *conf.ListenerTLS) error {
	cs, err := buildCertSet(o.Certificates)
	if err != nil {
		return err
	}
	cfg := &tls.Config{
		MinVersion:             conf.TLSVersion(o.MinVersion),
		NextProtos:             append([]string(nil), o.ALPN...),
		CipherSuites:           tls12Suites,
		SessionTicketsDisabled: !o.SessionTickets,
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			return f.certs.Load().pick(hello), nil
		},
	}
	switch o.ClientAuth {
	case "request":
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
	case "require":
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	if o.ClientCAFile != "" {
		pool, err := conf.LoadCAPool(o.ClientCAFile)
		if err != nil {
			return err
		}
		cfg.ClientCAs = pool
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if o.SessionTickets {
		f.rotateTicketsLocked(time.Duration(o.TicketKeyRotation), true)
		cfg.SetSessionTicketKeys(f.ticketKeys)
	}
	if s := f.sem.Load(); s == nil || cap(*s) != o.MaxHandshakes {
		ch := make(chan struct{}, o.MaxHandshakes)
		f.sem.Store(&ch)
	}
	f.files = stampsOf(o.Certificates)
	f.opts.Store(o)
	f.certs.Store(cs)
	f.cfg.Store(cfg)
	f.m.certsLoaded(cs)
	return nil
}

func stampsOf(cs []conf.Certificate) []fileStamp {
	out := make([]fileStamp, 0, 2*len(cs))
	for _, c := range cs {
		out = append(out, stampOf(c.CertFile), stampOf(c.KeyFile))
	}
	return out
}

// rotateTicketsLocked adds a fresh ticket key when the newest is older than
// every (or none exists yet), keeping the two previous ones for tickets
// already issued. It reports whether the keys changed.
func (f *tlsFront) rotateTicketsLocked(every time.Duration, init bool) bool {
	now := time.Now()
	if len(f.ticketKeys) > 0 && (init || now.Sub(f.ticketAt) < every) {
		return false
	}
	var k [32]byte
	if _, err := rand.Read(k[:]); err != nil {
		return false
	}
	f.ticketKeys = append([][32]byte{k}, f.ticketKeys...)
	if len(f.ticketKeys) > 3 {
		f.ticketKeys = f.ticketKeys[:3]
	}
	f.ticketAt = now
	return true
}

// check runs every second: it reloads the certificates whose files changed
// (a bad new pair keeps the old one, logged and counted) and rotates the
// ticket keys when due.
func (f *tlsFront) check(e *Engine) {
	o := f.opts.Load()
	if o == nil {
		return
	}
	f.mu.Lock()
	if o.SessionTickets && f.rotateTicketsLocked(time.Duration(o.TicketKeyRotation), false) {
		if cfg := f.cfg.Load(); cfg != nil {
			cfg.SetSessionTicketKeys(f.ticketKeys)
		}
	}
	changed := false
	now := stampsOf(o.Certificates)
	for i := range now {
		if i >= len(f.files) || now[i] != f.files[i] {
			changed = true
		}
	}
	if changed {
		f.files = now // try each change once; the next change tries again
	}
	f.mu.Unlock()
	if !changed {
		return
	}
	cs, err := buildCertSet(o.Certificates)
	if err != nil {
		f.m.rotation("error").Inc()
		e.log.Error().Str("listener", f.listener).Err(err).Msg("certificate rotation failed; still serving the previous certificates")
		return
	}
	f.certs.Store(cs)
	f.m.certsLoaded(cs)
	f.m.rotation("ok").Inc()
	e.log.Info().Str("listener", f.listener).Int("certificates", len(cs.certs)).Msg("certificates reloaded")
}

// tlsWatch checks the https listeners' certificate files every second.
func (e *Engine) tlsWatch() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for range t.C {
		if e.stopped.Load() {
			return
		}
		for _, f := range e.tlsFronts() {
			f.check(e)
		}
	}
}

// tlsAccepted is what the TLS actor hands the loop with a new connection.
type tlsAccepted struct {
	slot        *listenerSlot
	ip          netip.Addr
	peer, local netip.AddrPort
	info        *tlsInfo
	// release gives back the admission slots when the loop does not make
	// the connection a session (its listener left meanwhile).
	release func()
}

// tlsInfo is what a session knows of its TLS connection.
type tlsInfo struct {
	version  string // "1.2", "1.3"
	alpn     string // "h2", "http/1.1" or ""
	identity []byte // the verified client certificate, as client_identity_header carries it
}

// acceptTLS admits a connection of an https listener and hands its socket to
// a TLS actor. It runs in OnOpen; the caller returns gnet.Close, which
// closes gnet's fd only (the actor holds a dup).
func (e *Engine) acceptTLS(c gnet.Conn, s *listenerSlot) {
	l := s.http.Load()
	if l == nil || s.tls == nil {
		return
	}
	ip := addrIP(c.RemoteAddr())
	if ok, g := guards.Admit(e.global, l.limiter, s.connRate.Load(), s.penalty, ip, time.Now()); !ok {
		e.guards.Hit(g, guards.Connection, l.cfg.Name, ip)
		return
	}
	release := func() {
		l.limiter.Release(ip)
		e.global.Release(ip)
	}
	nc, err := dupConn(c)
	if err != nil {
		release()
		e.log.Warn().Err(err).Str("listener", l.cfg.Name).Msg("TLS connection could not leave the loop")
		return
	}
	lp := e.loopFor(c.EventLoop())
	a := &tlsAccepted{slot: s, ip: ip, peer: addrPort(c.RemoteAddr()), local: addrPort(c.LocalAddr())}
	go s.tls.serve(e, lp, l, nc, a, release)
}

// dupConn wraps a dup of c's socket as a net.Conn (gnet keeps its own fd,
// which the caller closes).
func dupConn(c gnet.Conn) (net.Conn, error) {
	fd, err := c.Dup()
	if err != nil {
		return nil, fmt.Errorf("dup: %w", err)
	}
	f := os.NewFile(uintptr(fd), "tls")
	nc, err := net.FileConn(f)
	_ = f.Close()
	if err != nil {
		return nil, fmt.Errorf("file conn: %w", err)
	}
	return nc, nil
}

// serve is the TLS actor of one connection: handshake, then the relay.
func (f *tlsFront) serve(e *Engine, lp *loop, l *listenerRT, nc net.Conn, a *tlsAccepted, release func()) {
	defer func() {
		if r := recover(); r != nil {
			e.m.Panics.Inc()
			e.log.Error().Interface("panic", r).Str("listener", f.listener).Msg("panic in a TLS actor; its connection closed")
			_ = nc.Close()
		}
	}()
	ip := a.ip
	if p := l.proxy; p != nil && p.trusts(ip) {
		// A trusted balancer: its PROXY header comes before the TLS
		// handshake, and names the client.
		h, rest, err := p.readProxyHeader(nc)
		if err != nil {
			reason := refuseReason(err)
			if isTimeout(err) {
				reason = "timeout"
			}
			p.count(reason)
			e.guards.Hit(guards.ProxyProtocol(reason), guards.Connection, l.cfg.Name, ip)
			_ = nc.Close()
			release()
			return
		}
		nc = &prefixConn{Conn: nc, prefix: rest}
		if h.Local {
			p.count("local")
		} else {
			to := h.Src.Addr().Unmap()
			if ok, lim := e.readmit(l, ip, to); !ok {
				p.count("over_limit")
				e.guards.Hit(lim, guards.Connection, l.cfg.Name, to)
				_ = nc.Close()
				return // readmit holds nothing now
			}
			p.count("accepted")
			ip, a.ip, a.peer, a.local = to, to, h.Src, h.Dst
			release = func() {
				l.limiter.Release(to)
				e.global.Release(to)
			}
		}
	}
	o := f.opts.Load()
	timeout := time.Duration(o.HandshakeTimeout)
	deadline := time.Now().Add(timeout)
	sem := *f.sem.Load() // a reload may replace it; this handshake gives back what it took
	select {
	case sem <- struct{}{}:
	default:
		f.m.handshakeWaits.Inc()
		t := time.NewTimer(timeout)
		select {
		case sem <- struct{}{}:
			t.Stop()
		case <-t.C:
			f.m.failure("handshake_slots").Inc()
			e.log.Warn().Str("listener", f.listener).Str("client", ip.String()).Int("max_handshakes", cap(sem)).Msg("TLS handshake not started in time: every handshake slot busy")
			_ = nc.Close()
			release()
			return
		}
	}
	start := time.Now()
	_ = nc.SetDeadline(deadline)
	tc := tls.Server(nc, f.cfg.Load())
	err := tc.HandshakeContext(context.Background())
	<-sem
	if err != nil {
		reason := handshakeReason(err)
		f.m.failure(reason).Inc()
		if reason == "proxy_untrusted" && l.proxy != nil {
			l.proxy.count("untrusted")
		}
		if reason == "http_on_tls_port" {
			var rhe tls.RecordHeaderError
			if errors.As(err, &rhe) && rhe.Conn != nil {
				_, _ = io.WriteString(rhe.Conn, "HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nthis port speaks TLS: use https\n")
			}
		}
		e.log.Debug().Str("listener", f.listener).Str("client", ip.String()).Str("reason", reason).Err(err).Msg("TLS handshake failed")
		_ = nc.Close()
		release()
		return
	}
	_ = nc.SetDeadline(time.Time{})
	st := tc.ConnectionState()
	f.m.handshakeOK.Inc()
	f.m.duration.Update(time.Since(start).Seconds())
	info := &tlsInfo{version: tlsVersionName(st.Version), alpn: st.NegotiatedProtocol}
	f.m.connection(info.version, info.alpn).Inc()
	if len(st.VerifiedChains) > 0 && len(st.PeerCertificates) > 0 && o.ClientIdentityHeader != "" {
		info.identity = clientIdentity(st.PeerCertificates[0])
	}
	a.info, a.release = info, release
	t := newTLSConn(lp, tc, nc.LocalAddr(), nc.RemoteAddr(), l.bodyIdle)
	if !lp.exec("tls open", func() { e.openTLSSession(t, a) }) {
		_ = tc.Close()
		release()
		return
	}
	t.start()
}

// tlsRelay bridges a TLS connection and the plaintext socketpair end whose
// other end is on a loop.
type tlsRelay struct {
	tc    *tls.Conn
	outer *net.UnixConn
}

// close drops a relay that will not run.
func (r *tlsRelay) close() {
	_ = r.tc.Close()
	_ = r.outer.Close()
}

// run copies plaintext both ways until either side ends. A loop side that
// closes gets a close_notify sent to the peer; a peer that ends its side
// ends the loop side's reading.
func (r *tlsRelay) run() {
	tc, outer := r.tc, r.outer
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 16<<10)
		for {
			n, err := tc.Read(buf)
			if n > 0 {
				if _, werr := outer.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		_ = outer.CloseWrite()
	}()
	buf := make([]byte, 16<<10)
	for {
		n, err := outer.Read(buf)
		if n > 0 {
			if _, werr := tc.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	_ = tc.CloseWrite()
	_ = tc.Close()
	<-done
	_ = outer.Close()
}

// socketPair makes a connected AF_UNIX stream pair: inner for the loop,
// outer for the relay.
func socketPair() (inner net.Conn, outer *net.UnixConn, err error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC|syscall.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, nil, err
	}
	fi := os.NewFile(uintptr(fds[0]), "tls-inner")
	fo := os.NewFile(uintptr(fds[1]), "tls-outer")
	defer func() { _ = fi.Close(); _ = fo.Close() }()
	if inner, err = net.FileConn(fi); err != nil {
		return nil, nil, err
	}
	oc, err := net.FileConn(fo)
	if err != nil {
		_ = inner.Close()
		return nil, nil, err
	}
	return inner, oc.(*net.UnixConn), nil
}

// handshakeReason names a handshake failure for the metric.
func handshakeReason(err error) string {
	var rhe tls.RecordHeaderError
	if errors.As(err, &rhe) {
		if looksLikeHTTP(rhe.RecordHeader[:]) {
			return "http_on_tls_port"
		}
		if proxyproto.Looks(rhe.RecordHeader[:]) {
			return "proxy_untrusted" // a PROXY header from an address not trusted
		}
		return "not_tls"
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) {
		return "client_closed"
	}
	var ae tls.AlertError
	if errors.As(err, &ae) {
		return "alert_sent"
	}
	var ce *tls.CertificateVerificationError
	if errors.As(err, &ce) {
		return "client_certificate"
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "certificate"):
		return "client_certificate"
	case strings.Contains(msg, "version"):
		return "version"
	case strings.Contains(msg, "application protocol"):
		return "alpn"
	case strings.Contains(msg, "cipher"):
		return "cipher"
	case strings.Contains(msg, "remote error"):
		return "client_alert"
	}
	return "protocol"
}

// looksLikeHTTP reports whether a record header is really the start of an
// HTTP/1 request line.
func looksLikeHTTP(b []byte) bool {
	for _, m := range []string{"GET ", "POST ", "PUT ", "HEAD ", "DELET", "OPTIO", "PATCH", "CONNE", "TRACE", "PRI *"} {
		if strings.HasPrefix(string(b), m[:min(len(m), len(b))]) {
			return true
		}
	}
	return false
}

func tlsVersionName(v uint16) string {
	switch v {
	case tls.VersionTLS13:
		return "1.3"
	case tls.VersionTLS12:
		return "1.2"
	}
	return "other"
}

// clientIdentity formats a verified client certificate as
// client_identity_header carries it (Envoy's X-Forwarded-Client-Cert
// keys): Hash, Subject, then each URI and DNS SAN.
func clientIdentity(c *x509.Certificate) []byte {
	sum := sha256.Sum256(c.Raw)
	var b strings.Builder
	b.WriteString("Hash=")
	b.WriteString(hex.EncodeToString(sum[:]))
	b.WriteString(`;Subject="`)
	b.WriteString(strings.NewReplacer(`"`, `\"`, "\r", "", "\n", "").Replace(c.Subject.String()))
	b.WriteString(`"`)
	for _, u := range c.URIs {
		b.WriteString(";URI=")
		b.WriteString(sanitizeHeader(u.String()))
	}
	for _, d := range c.DNSNames {
		b.WriteString(";DNS=")
		b.WriteString(sanitizeHeader(d))
	}
	return []byte(b.String())
}

// sanitizeHeader keeps a value to visible ASCII without the separators of
// the identity format.
func sanitizeHeader(s string) string {
	return strings.Map(func(r rune) rune {
		if r <= 0x20 || r >= 0x7f || r == ';' || r == ',' || r == '"' {
			return -1
		}
		return r
	}, s)
}
