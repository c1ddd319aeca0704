// SPDX-License-Identifier: GPL-3.0-only

package loadgen

import (
	"crypto/tls"
	"io"
	"log"
	"net"
	"net/http"
	"os/exec"
	"sync/atomic"
	"testing"
	"time"

	"github.com/expressgateway/expressgateway/bench/internal/target"
)

// TestWrkCloseHandshakes checks the premise of the tls-handshake scenario:
// wrk with "Connection: close" over TLS offers its previous session again on
// each reconnect, so it resumes when the server issues tickets, and does a
// full handshake per request when the server offers no resumption.
func TestWrkCloseHandshakes(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	if _, err := exec.LookPath("wrk"); err != nil {
		t.Skip("wrk not installed")
	}
	cert, err := target.WriteCert(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	kp, err := tls.LoadX509KeyPair(cert.CertFile, cert.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, tickets := range []bool{true, false} {
		var full, resumed atomic.Int64
		cfg := &tls.Config{
			Certificates:           []tls.Certificate{kp},
			SessionTicketsDisabled: !tickets,
			VerifyConnection: func(cs tls.ConnectionState) error {
				if cs.DidResume {
					resumed.Add(1)
				} else {
					full.Add(1)
				}
				return nil
			},
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{
			Handler:           http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) }),
			ReadHeaderTimeout: 5 * time.Second,
			ErrorLog:          log.New(io.Discard, "", 0), // wrk closes mid-handshake at its end
		}
		go func() { _ = srv.Serve(tls.NewListener(ln, cfg)) }()
		argv := WrkArgs(Options{URL: "https://" + ln.Addr().String() + "/", Duration: time.Second, Connections: 2,
			Threads: 1, Headers: []string{"Connection: close"}, Timeout: 2 * time.Second}, "")
		out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
		_ = srv.Close()
		if err != nil {
			t.Fatalf("wrk: %v\n%s", err, out)
		}
		f, r := full.Load(), resumed.Load()
		t.Logf("tickets %v: %d full handshakes, %d resumed", tickets, f, r)
		if tickets && r == 0 {
			t.Errorf("tickets on: wrk never resumed (%d full): the scenario's premise changed, see scenario.go", f)
		}
		if !tickets && (r != 0 || f < 10) {
			t.Errorf("tickets off: %d full handshakes, %d resumed; want only full ones", f, r)
		}
	}
}
