// SPDX-License-Identifier: GPL-3.0-only

package engine

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

// Real HTTP/3 through a quic-passthrough listener: quic-go servers as the
// backends (their default 4-byte connection IDs) and quic-go clients.

// h3PTCert is a self-signed certificate for "quic.test" and the pool that
// trusts it.
func h3PTCert(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "quic.test"},
		DNSNames: []string{"quic.test"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// h3PTBackend is an HTTP/3 server answering "name remote-addr".
func h3PTBackend(t *testing.T, name string, cert tls.Certificate) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http3.Server{
		TLSConfig: http3.ConfigureTLSConfig(&tls.Config{Certificates: []tls.Certificate{cert}}),
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = fmt.Fprintf(w, "%s %s", name, r.RemoteAddr)
		}),
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(pc) }()
	t.Cleanup(func() { _ = srv.Close(); _ = pc.Close(); <-done })
	return pc.LocalAddr().String()
}

// h3PTBackendRetry is h3PTBackend that validates every client address
// with a Retry first (quic-go Transport.VerifySourceAddress), so a
// connection's second Initial goes to the CID of the backend's Retry, and
// that uses 8-byte connection IDs.
func h3PTBackendRetry(t *testing.T, name string, cert tls.Certificate) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tr := &quic.Transport{Conn: pc, ConnectionIDLength: 8, VerifySourceAddress: func(net.Addr) bool { return true }}
	ln, err := tr.ListenEarly(http3.ConfigureTLSConfig(&tls.Config{Certificates: []tls.Certificate{cert}}), &quic.Config{})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http3.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = fmt.Fprintf(w, "%s %s", name, r.RemoteAddr)
	})}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.ServeListener(ln) }()
	t.Cleanup(func() { _ = srv.Close(); _ = ln.Close(); _ = tr.Close(); <-done })
	return pc.LocalAddr().String()
}

// h3PTClient is an HTTP/3 client whose connections go to dialAddr (the
// gateway, or a forwarder in front of it) whatever the URL says.
func h3PTClient(t *testing.T, pool *x509.CertPool, dialAddr string, qc *quic.Config) (*http.Client, *http3.Transport) {
	t.Helper()
	tr := &http3.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "quic.test"},
		QUICConfig:      qc,
		Dial: func(ctx context.Context, _ string, tlsCfg *tls.Config, cfg *quic.Config) (*quic.Conn, error) {
			return quic.DialAddr(ctx, dialAddr, tlsCfg, cfg)
		},
	}
	t.Cleanup(func() { _ = tr.Close() })
	return &http.Client{Timeout: 10 * time.Second, Transport: tr}, tr
}

// h3Get returns the body of GET https://quic.test/ (name and the remote
// address the backend saw), or the error.
func h3Get(c *http.Client) (string, error) {
	resp, err := c.Get("https://quic.test/")
	if err != nil {
		return "", err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != 200 || resp.Proto != "HTTP/3.0" {
		return "", fmt.Errorf("status %d proto %s", resp.StatusCode, resp.Proto)
	}
	return string(b), nil
}

// TestQUICPassthroughHTTP3: HTTP/3 terminates on the backends through the
// listener; every request of one connection reaches the same backend over
// the same upstream socket, and connections spread over the backends.
func TestQUICPassthroughHTTP3(t *testing.T) {
	cert, pool := h3PTCert(t)
	var backs []string
	for _, n := range []string{"a", "b", "c"} {
		backs = append(backs, h3PTBackend(t, n, cert))
	}
	addr := freeUDPPort(t)
	g := startL4(t, 2, quicPTTOML(addr, backs, ""))

	const conns = 12
	seen := map[string]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, _ := h3PTClient(t, pool, addr, nil)
			first := ""
			for j := range 5 {
				body, err := h3Get(c)
				if err != nil {
					errs <- fmt.Errorf("connection %d request %d: %v", i, j, err)
					return
				}
				if first == "" {
					first = body
				} else if body != first {
					errs <- fmt.Errorf("connection %d request %d: %q, first was %q", i, j, body, first)
					return
				}
			}
			mu.Lock()
			seen[strings.Fields(first)[0]]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("%d connections over the backends: %v", conns, seen)
	if len(seen) < 2 {
		t.Errorf("connections reached %d backends: %v", len(seen), seen)
	}
	if v := g.metric(`expressgateway_quic_passthrough_flows_total{listener="qp"}`); v != conns {
		t.Errorf("flows_total = %v, want %d", v, conns)
	}
	// Each quic-go server chose 4-byte CIDs the table learnt.
	if v := g.metric(`expressgateway_quic_passthrough_cids{listener="qp"}`); v < 2*conns {
		t.Errorf("cids = %v, want at least %d", v, 2*conns)
	}
	if v := g.metric(`expressgateway_quic_passthrough_routed_total{listener="qp",by="cid"}`); v < conns*5 {
		t.Errorf("routed by cid = %v", v)
	}
}

// natForwarder relays datagrams between one client and target through an
// outer socket that rebind replaces, as a NAT that forgets its mapping
// does: the gateway sees the client's address change mid-connection.
type natForwarder struct {
	t      *testing.T
	inner  *net.UDPConn
	target *net.UDPAddr
	client atomic.Pointer[net.UDPAddr]
	mu     sync.Mutex
	outer  *net.UDPConn
	wg     sync.WaitGroup
}

func newNATForwarder(t *testing.T, target string) *natForwarder {
	t.Helper()
	inner, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	ta, err := net.ResolveUDPAddr("udp", target)
	if err != nil {
		t.Fatal(err)
	}
	f := &natForwarder{t: t, inner: inner, target: ta}
	f.rebind()
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		buf := make([]byte, 64<<10)
		for {
			n, from, err := inner.ReadFromUDP(buf)
			if err != nil {
				return
			}
			f.client.Store(from)
			f.mu.Lock()
			out := f.outer
			f.mu.Unlock()
			_, _ = out.WriteToUDP(buf[:n], ta)
		}
	}()
	t.Cleanup(func() {
		_ = inner.Close()
		f.mu.Lock()
		_ = f.outer.Close()
		f.mu.Unlock()
		f.wg.Wait()
	})
	return f
}

func (f *natForwarder) addr() string { return f.inner.LocalAddr().String() }

// rebind moves the relay to a new outer socket (a new source port).
func (f *natForwarder) rebind() {
	outer, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		f.t.Fatal(err)
	}
	f.mu.Lock()
	old := f.outer
	f.outer = outer
	f.mu.Unlock()
	if old != nil {
		_ = old.Close()
	}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		buf := make([]byte, 64<<10)
		for {
			n, err := outer.Read(buf)
			if err != nil {
				return
			}
			if c := f.client.Load(); c != nil {
				_, _ = f.inner.WriteToUDP(buf[:n], c)
			}
		}
	}()
}

// TestQUICPassthroughMigration: the client's address changes under a live
// HTTP/3 connection (NAT rebinding: same connection IDs, new source port)
// four times; every request reaches the same backend, which sees the same
// upstream address throughout, and replies follow the new address. With
// two loops, the new address is steered to the other loop's socket about
// half the time, so the hand-off between loops is exercised too.
func TestQUICPassthroughMigration(t *testing.T) {
	cert, pool := h3PTCert(t)
	backs := []string{h3PTBackend(t, "a", cert), h3PTBackend(t, "b", cert), h3PTBackend(t, "c", cert)}
	addr := freeUDPPort(t)
	g := startL4(t, 2, quicPTTOML(addr, backs, ""))
	for conn := range 3 {
		nat := newNATForwarder(t, addr)
		c, _ := h3PTClient(t, pool, nat.addr(), nil)
		first, err := h3Get(c)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 4 {
			nat.rebind()
			body, err := h3Get(c)
			if err != nil {
				t.Fatalf("connection %d after rebinding %d: %v", conn, i+1, err)
			}
			if body != first {
				t.Fatalf("connection %d after rebinding %d: %q, before %q", conn, i+1, body, first)
			}
		}
	}
	if v := g.metric(`expressgateway_quic_passthrough_migrations_total{listener="qp"}`); v != 12 {
		t.Errorf("migrations = %v, want 12", v)
	}
	if v := g.metric(`expressgateway_quic_passthrough_flows_total{listener="qp"}`); v != 3 {
		t.Errorf("flows_total = %v, want 3 (a migrated connection is not a new one)", v)
	}
	t.Logf("hand-offs between loops: %v", g.metric(`expressgateway_quic_passthrough_handoffs_total{listener="qp"}`))
}

// TestQUICPassthroughHTTP3Garbage: random garbage and truncated datagrams
// sent to the listener beside a live HTTP/3 connection are counted and do
// not disturb it.
func TestQUICPassthroughHTTP3Garbage(t *testing.T) {
	cert, pool := h3PTCert(t)
	backs := []string{h3PTBackend(t, "a", cert), h3PTBackend(t, "b", cert)} // bound before the listener's port is picked
	addr := freeUDPPort(t)
	g := startL4(t, 1, quicPTTOML(addr, backs, ""))
	nat := newNATForwarder(t, addr)
	c, _ := h3PTClient(t, pool, nat.addr(), nil)
	first, err := h3Get(c)
	if err != nil {
		t.Fatal(err)
	}
	junk := dialUDP(t, addr)
	for i := range 200 {
		d := make([]byte, 1+i%60)
		_, _ = rand.Read(d)
		if i%2 == 0 {
			d[0] |= 0x80 // long header: random version and lengths
		} else {
			d[0] &^= 0x80
		}
		_, _ = junk.Write(d)
	}
	for i := range 5 {
		body, err := h3Get(c)
		if err != nil || body != first {
			t.Fatalf("request %d after the garbage: %q %v", i, body, err)
		}
	}
	drops := 0.0
	for _, r := range []string{"truncated", "garbage", "unknown_cid"} {
		drops += g.metric(fmt.Sprintf(`expressgateway_quic_passthrough_drops_total{listener="qp",reason=%q}`, r))
	}
	if drops < 190 { // a random short header may hit a 4-byte CID of the live connection: rare
		t.Errorf("drops = %v of 200 junk datagrams", drops)
	}
	if v := g.metric(`expressgateway_quic_passthrough_flows_active{listener="qp"}`); v != 1 {
		t.Errorf("flows_active = %v, want 1", v)
	}
}

// TestQUICPassthroughRetry: backends that send a Retry before every
// connection (the client's second Initial goes to the Retry's CID) and
// use 8-byte CIDs: connections complete through the listener and stay on
// their backend.
func TestQUICPassthroughRetry(t *testing.T) {
	cert, pool := h3PTCert(t)
	backs := []string{h3PTBackendRetry(t, "a", cert), h3PTBackendRetry(t, "b", cert)}
	addr := freeUDPPort(t)
	g := startL4(t, 2, quicPTTOML(addr, backs, ""))
	for i := range 6 {
		c, _ := h3PTClient(t, pool, addr, nil)
		first, err := h3Get(c)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		if again, err := h3Get(c); err != nil || again != first {
			t.Fatalf("connection %d: %q then %q %v", i, first, again, err)
		}
	}
	if v := g.metric(`expressgateway_quic_passthrough_flows_total{listener="qp"}`); v != 6 {
		t.Errorf("flows_total = %v, want 6 (the Initial after a Retry is the same connection)", v)
	}
}
