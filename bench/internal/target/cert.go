// SPDX-License-Identifier: GPL-3.0-only

package target

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// TLS is what a target needs to serve an https scenario: one certificate
// and key that every target of the run serves, and whether to offer session
// resumption.
type TLS struct {
	CertFile string // PEM certificate, a self-signed leaf
	KeyFile  string // PEM PKCS #8 private key
	PEMFile  string // the certificate then the key in one file, as HAProxy's crt takes them
	// NoResumption turns session tickets and session caches off, so that
	// every new connection is a full handshake whatever the client offers.
	NoResumption bool
}

// WriteCert generates a self-signed ECDSA P-256 certificate for 127.0.0.1,
// ::1 and localhost, valid from an hour ago for a day, and writes it, its key
// and the two together into dir (bench.crt, bench.key, bench.pem).
func WriteCert(dir string) (TLS, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return TLS{}, fmt.Errorf("generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return TLS{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "expressgateway bench"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return TLS{}, fmt.Errorf("create certificate: %w", err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return TLS{}, fmt.Errorf("marshal key: %w", err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})
	abs, err := filepath.Abs(dir)
	if err != nil {
		return TLS{}, err
	}
	t := TLS{
		CertFile: filepath.Join(abs, "bench.crt"),
		KeyFile:  filepath.Join(abs, "bench.key"),
		PEMFile:  filepath.Join(abs, "bench.pem"),
	}
	for _, f := range []struct {
		path string
		data []byte
	}{{t.CertFile, certPEM}, {t.KeyFile, keyPEM}, {t.PEMFile, append(append([]byte{}, certPEM...), keyPEM...)}} {
		if err := os.WriteFile(f.path, f.data, 0o600); err != nil {
			return TLS{}, err
		}
	}
	return t, nil
}
