// SPDX-License-Identifier: GPL-3.0-only

package lb

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// checker probes one endpoint on its own goroutine (a probe blocks, so it
// lives off the event loops) and moves it in and out of the pick set after
// the configured number of consecutive results.
type checker struct {
	c      *Cluster
	e      *Endpoint
	spec   *HealthCheckSpec
	probe  func(ctx context.Context) error
	close  func()
	ok     int // consecutive successes
	failed int // consecutive failures
}

func newChecker(c *Cluster, e *Endpoint) *checker {
	hc := c.spec.HealthCheck
	k := &checker{c: c, e: e, spec: hc, close: func() {}}
	switch hc.Type {
	case "tcp":
		k.probe = k.probeTCP
	case "grpc":
		// NewClient connects lazily, reconnects by itself and speaks h2c
		// with insecure credentials (or TLS with the cluster's);
		// passthrough skips name resolution.
		creds := insecure.NewCredentials()
		if hc.TLS != nil {
			creds = credentials.NewTLS(tlsFor(hc.TLS, e.addr, "h2"))
		}
		conn, err := grpc.NewClient("passthrough:///"+e.addr, grpc.WithTransportCredentials(creds))
		if err != nil {
			k.probe = func(context.Context) error { return fmt.Errorf("health check: grpc client: %w", err) }
			break
		}
		k.close = func() { _ = conn.Close() }
		client := healthpb.NewHealthClient(conn)
		k.probe = func(ctx context.Context) error { return probeGRPC(ctx, client, hc.GRPCService) }
	case "http":
		if hc.H3 {
			k.h3Probe(hc)
			break
		}
		k.httpProbe(hc)
	default:
		k.httpProbe(hc)
	}
	return k
}

// httpProbe makes k's probe an HTTP/1.1 (or, over TLS, HTTP/2) GET.
func (k *checker) httpProbe(hc *HealthCheckSpec) {
	e := k.e
	ranges, _ := parseStatusRanges(hc.ExpectedStatuses) // validated in New
	client := &http.Client{
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: hc.Timeout}).DialContext,
			MaxIdleConnsPerHost: 1,
			IdleConnTimeout:     2*hc.Interval + time.Second,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	k.close = client.CloseIdleConnections
	url := "http://" + e.addr + hc.Path
	if hc.TLS != nil {
		tr := client.Transport.(*http.Transport)
		tr.TLSClientConfig = tlsFor(hc.TLS, e.addr, "h2", "http/1.1")
		tr.ForceAttemptHTTP2 = true
		url = "https://" + e.addr + hc.Path
	}
	k.probe = func(ctx context.Context) error { return probeHTTP(ctx, client, url, hc.Host, ranges) }
}

// h3Probe makes k's probe an HTTP/3 GET to the endpoint's UDP address (an
// h3 cluster), on a QUIC connection kept between probes.
func (k *checker) h3Probe(hc *HealthCheckSpec) {
	ranges, _ := parseStatusRanges(hc.ExpectedStatuses) // validated in New
	base := hc.TLS
	if base == nil {
		base = &tls.Config{MinVersion: tls.VersionTLS13}
	}
	tr := &http3.Transport{
		TLSClientConfig: tlsFor(base, k.e.addr, "h3"),
		QUICConfig:      &quic.Config{HandshakeIdleTimeout: hc.Timeout, MaxIdleTimeout: 2*hc.Interval + time.Second},
	}
	client := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	k.close = func() { _ = tr.Close() }
	url := "https://" + k.e.addr + hc.Path
	k.probe = func(ctx context.Context) error { return probeHTTP(ctx, client, url, hc.Host, ranges) }
}

func (k *checker) run(ctx context.Context) {
	defer func() { k.close() }()
	// Spread the first probes of many endpoints over one interval.
	wait := time.Duration(rand.Int64N(int64(k.spec.Interval)/4 + 1))
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, k.spec.Timeout)
		err := k.probe(pctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		k.record(err)
		next := k.spec.Interval
		if k.spec.Jitter > 0 {
			next += time.Duration(rand.Int64N(int64(k.spec.Jitter)))
		}
		t.Reset(next)
	}
}

// record counts a probe result and flips the endpoint's active health when
// a threshold is reached.
func (k *checker) record(err error) {
	down := k.e.state.Load()&stateActiveDown != 0
	if err == nil {
		k.failed = 0
		k.ok++
		if down && k.ok >= k.spec.HealthyThreshold {
			k.c.activeCheckPassed(k.e)
		}
		return
	}
	k.ok = 0
	k.failed++
	if !down && k.failed >= k.spec.UnhealthyThreshold {
		k.c.setState(k.e, stateActiveDown, true, "active_check_failed", err)
	}
}

func (k *checker) probeTCP(ctx context.Context) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", k.e.addr)
	if err != nil {
		return err
	}
	if k.spec.TLS != nil {
		tc := tls.Client(conn, tlsFor(k.spec.TLS, k.e.addr))
		err = tc.HandshakeContext(ctx)
		_ = tc.Close()
		return err
	}
	return conn.Close()
}

// tlsFor is the probe config for an endpoint: base with ServerName set
// (the endpoint's host when base has none) and the ALPN protocols given.
func tlsFor(base *tls.Config, addr string, alpn ...string) *tls.Config {
	c := base.Clone()
	if c.ServerName == "" {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			host = addr
		}
		c.ServerName = host
	}
	if len(alpn) > 0 {
		c.NextProtos = alpn
	}
	return c
}

// errStatus is a probe answered with an unexpected HTTP status.
type errStatus int

func (e errStatus) Error() string { return fmt.Sprintf("health check: unexpected status %d", int(e)) }

func probeHTTP(ctx context.Context, client *http.Client, url, host string, ranges []statusRange) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if host != "" {
		req.Host = host
	}
	req.Header.Set("User-Agent", "expressgateway-health-check")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	// Drain a little so the connection can be reused; a large body just
	// costs the connection.
	_, _ = io.CopyN(io.Discard, resp.Body, 4096)
	_ = resp.Body.Close()
	if !statusIn(ranges, resp.StatusCode) {
		return errStatus(resp.StatusCode)
	}
	return nil
}

// errNotServing is a gRPC health answer other than SERVING.
var errNotServing = errors.New("health check: grpc status not SERVING")

func probeGRPC(ctx context.Context, client healthpb.HealthClient, service string) error {
	resp, err := client.Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		return err
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("%w: %s", errNotServing, resp.GetStatus())
	}
	return nil
}
