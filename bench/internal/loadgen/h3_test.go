// SPDX-License-Identifier: GPL-3.0-only

package loadgen

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"

	"github.com/expressgateway/expressgateway/bench/internal/target"
)

// TestH3 runs the HTTP/3 load for a second against a local quic-go server
// and checks that what it counts is what the server served.
func TestH3(t *testing.T) {
	cert, err := target.WriteCert(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	kp, err := tls.LoadX509KeyPair(cert.CertFile, cert.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var served, teapots atomic.Uint64
	srv := &http3.Server{
		TLSConfig: http3.ConfigureTLSConfig(&tls.Config{Certificates: []tls.Certificate{kp}}),
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/teapot" {
				teapots.Add(1)
				w.WriteHeader(http.StatusTeapot)
				return
			}
			served.Add(1)
			_, _ = w.Write(make([]byte, 64))
		}),
	}
	go func() { _ = srv.Serve(pc) }()
	defer func() { _ = srv.Close() }()
	url := "https://" + pc.LocalAddr().String()

	r := H3(context.Background(), Options{URL: url + "/", Duration: time.Second, Connections: 2, Streams: 4, Timeout: time.Second})
	if r.Requests == 0 || r.Errors() != 0 || r.Non2xx != 0 {
		t.Fatalf("%+v", r)
	}
	if got := served.Load(); got < r.Requests || got > r.Requests+8 { // at most one cut short per stream
		t.Errorf("server served %d, load counted %d", got, r.Requests)
	}
	if r.Bytes < 64*r.Requests || r.P50 <= 0 || r.P50 > r.P99 || r.P99 > r.P999 || r.P999 > r.Max || r.RPS <= 0 {
		t.Errorf("figures: %+v", r)
	}
	if r.Duration < time.Second || r.Duration > 3*time.Second {
		t.Errorf("duration %v", r.Duration)
	}

	r = H3(context.Background(), Options{URL: url + "/teapot", Duration: 200 * time.Millisecond, Connections: 1, Streams: 1, Timeout: time.Second})
	if r.Requests == 0 || r.Non2xx != r.Requests || r.Requests != teapots.Load() {
		t.Errorf("non-2xx: %+v (server: %d)", r, teapots.Load())
	}

	// Nothing listens: every dial fails and counts, nothing completes.
	dead, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := dead.LocalAddr().String()
	_ = dead.Close()
	r = H3(context.Background(), Options{URL: "https://" + addr + "/", Duration: 300 * time.Millisecond, Connections: 1, Streams: 1, Timeout: time.Second})
	if r.Requests != 0 || r.ConnectErrors == 0 {
		t.Errorf("dead target: %+v", r)
	}
}
