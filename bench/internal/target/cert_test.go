// SPDX-License-Identifier: GPL-3.0-only

package target

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"net"
	"testing"
	"time"
)

func TestWriteCert(t *testing.T) {
	c, err := WriteCert(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, pair := range [][2]string{{c.CertFile, c.KeyFile}, {c.PEMFile, c.PEMFile}} {
		kp, err := tls.LoadX509KeyPair(pair[0], pair[1])
		if err != nil {
			t.Fatalf("%s: %v", pair[0], err)
		}
		leaf, err := x509.ParseCertificate(kp.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		pub, ok := leaf.PublicKey.(*ecdsa.PublicKey)
		if !ok || pub.Curve != elliptic.P256() {
			t.Fatalf("key is %T, want ECDSA P-256", leaf.PublicKey)
		}
		if err := leaf.VerifyHostname("127.0.0.1"); err != nil {
			t.Error(err)
		}
		if now := time.Now(); now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
			t.Errorf("not valid now: %v - %v", leaf.NotBefore, leaf.NotAfter)
		}
	}
	// The certificate serves a handshake.
	kp, _ := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{kp}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	go func() {
		if c, err := ln.Accept(); err == nil {
			_ = c.(*tls.Conn).Handshake()
			_ = c.Close()
		}
	}()
	pool := x509.NewCertPool()
	leaf, _ := x509.ParseCertificate(kp.Certificate[0])
	pool.AddCert(leaf)
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", ln.Addr().String(), &tls.Config{RootCAs: pool})
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.Close()
}
