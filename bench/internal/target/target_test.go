// SPDX-License-Identifier: GPL-3.0-only

package target

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testEnvs are the client-side setups the peers' configs are checked with:
// h1, h2c, and https with and without session resumption (with a
// certificate written into a temporary directory).
func testEnvs(t *testing.T) map[string]Env {
	cert, err := WriteCert(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	noResume := cert
	noResume.NoResumption = true
	envs := map[string]Env{}
	for name, e := range map[string]struct {
		proto string
		tls   *TLS
	}{"h1": {ProtoH1, nil}, "h2c": {ProtoH2C, nil}, "https": {ProtoTLS, &cert}, "https-noresume": {ProtoTLS, &noResume}} {
		envs[name] = Env{Listen: "127.0.0.1:1", Upstream: "127.0.0.1:2", Workers: 2, Protocol: e.proto, TLS: e.tls, NoFile: 4096}
	}
	return envs
}

// TestPeerConfigsAreValid renders each peer's config for every protocol and
// has the peer itself check it (haproxy -c, nginx -t). Skips a peer that is
// not installed, saying so.
func TestPeerConfigsAreValid(t *testing.T) {
	for name, env := range testEnvs(t) {
		t.Run("haproxy-"+name, func(t *testing.T) {
			bin, err := exec.LookPath("haproxy")
			if err != nil {
				t.Skip("haproxy not installed")
			}
			env.Dir = t.TempDir()
			var b strings.Builder
			if err := haproxyConfig.Execute(&b, env); err != nil {
				t.Fatal(err)
			}
			wants := []string{"nbthread 2", "http-reuse always", "bind 127.0.0.1:1", "server app1 127.0.0.1:2"}
			if env.TLS != nil {
				wants = append(wants, "ssl crt "+env.TLS.PEMFile+" alpn h2,http/1.1 ciphersuites "+tls13Suites)
				if env.TLS.NoResumption {
					wants = append(wants, "tune.ssl.cachesize 0", "no-tls-tickets")
				}
			}
			for _, want := range wants {
				if !strings.Contains(b.String(), want) {
					t.Errorf("config lacks %q", want)
				}
			}
			if strings.Contains(b.String(), "\n    log ") {
				t.Error("haproxy config logs")
			}
			cfg := env.Dir + "/haproxy.cfg"
			if err := writeConfig(cfg, b.String()); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(bin, "-c", "-f", cfg).CombinedOutput(); err != nil {
				t.Fatalf("haproxy -c: %v\n%s\n%s", err, out, b.String())
			}
		})
		t.Run("haproxy-tcp-"+name, func(t *testing.T) {
			if env.Protocol != ProtoH1 {
				if (HAProxy{TCP: true}).Supports(env.Protocol) {
					t.Fatalf("haproxy-tcp claims %s", env.Protocol)
				}
				return
			}
			bin, err := exec.LookPath("haproxy")
			if err != nil {
				t.Skip("haproxy not installed")
			}
			env.Dir = t.TempDir()
			var b strings.Builder
			if err := haproxyTCPConfig.Execute(&b, env); err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"nbthread 2", "mode tcp", "bind 127.0.0.1:1", "server app1 127.0.0.1:2"} {
				if !strings.Contains(b.String(), want) {
					t.Errorf("config lacks %q", want)
				}
			}
			if strings.Contains(b.String(), "mode http") || strings.Contains(b.String(), "\n    log ") {
				t.Error("haproxy-tcp config speaks HTTP or logs")
			}
			cfg := env.Dir + "/haproxy.cfg"
			if err := writeConfig(cfg, b.String()); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(bin, "-c", "-f", cfg).CombinedOutput(); err != nil {
				t.Fatalf("haproxy -c: %v\n%s\n%s", err, out, b.String())
			}
		})
		t.Run("nginx-"+name, func(t *testing.T) {
			if _, err := exec.LookPath("nginx"); err != nil {
				t.Skip("nginx not installed")
			}
			env.Dir = t.TempDir()
			// Start does the rendering; check the file with nginx -t instead of running it.
			p, err := Nginx{}.render(env)
			if err != nil {
				t.Fatal(err)
			}
			wants := []string{"worker_processes 2;", "access_log off;", "keepalive 1024;", `proxy_set_header Connection "";`}
			if env.TLS != nil {
				wants = append(wants, "listen 127.0.0.1:1 ssl http2", "ssl_certificate "+env.TLS.CertFile+";",
					"ssl_certificate_key "+env.TLS.KeyFile+";", "ssl_conf_command Ciphersuites "+tls13Suites+";")
				if env.TLS.NoResumption {
					wants = append(wants, "ssl_session_cache off;", "ssl_session_tickets off;")
				}
			}
			for _, want := range wants {
				if !strings.Contains(p.content, want) {
					t.Errorf("config lacks %q", want)
				}
			}
			out, err := exec.Command("nginx", "-t", "-p", p.dir, "-e", p.dir+"/error.log", "-c", p.file).CombinedOutput()
			if err != nil {
				t.Fatalf("nginx -t: %v\n%s\n%s", err, out, p.content)
			}
		})
	}
}

func TestGatewayNotBuilt(t *testing.T) {
	g := &Gateway{}
	if _, err := g.Probe(context.Background()); err == nil || !strings.Contains(err.Error(), "not built") {
		t.Fatalf("probe of an unbuilt gateway: %v", err)
	}
	if !g.Supports(ProtoH1) || !g.Supports(ProtoH3) || (&Gateway{L4: true}).Supports(ProtoH3) {
		t.Fatal("gateway protocols")
	}
}

func TestLaunchReportsEarlyExit(t *testing.T) {
	p, err := Launch([]string{"sh", "-c", "echo bad config >&2; exit 3"}, nil, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	err = WaitReady(context.Background(), p, "127.0.0.1:1", ProtoH1, 5*time.Second)
	if err == nil || !strings.Contains(err.Error(), "bad config") {
		t.Fatalf("WaitReady: %v", err)
	}
}

func TestShellJoin(t *testing.T) {
	got := ShellJoin([]string{"wrk", "-H", "Connection: close", "it's", "http://127.0.0.1:1/"})
	want := `wrk -H 'Connection: close' 'it'\''s' http://127.0.0.1:1/`
	if got != want {
		t.Fatalf("got %s", got)
	}
}

// TestGatewayConfigIsValid has the gateway validate its configs (L4, and L7
// for every protocol) when it is built (bin/expressgateway, as `make build`
// leaves it).
func TestGatewayConfigIsValid(t *testing.T) {
	bin, err := filepath.Abs("../../../bin/expressgateway")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Skip("bin/expressgateway not built")
	}
	envs := testEnvs(t)
	h3 := envs["https"]
	h3.Protocol = ProtoH3
	envs["h3"] = h3
	for _, c := range []struct {
		name   string
		l4, al bool
	}{{"h1", true, false}, {"h1", false, false}, {"h1", false, true}, {"h2c", false, false}, {"https", false, false}, {"https-noresume", false, false}, {"h3", false, false}} {
		env, l4 := envs[c.name], c.l4
		env.Workers = 1
		env.NoFile = 20000
		text, err := (&Gateway{L4: l4, AccessLog: c.al}).config(env, "127.0.0.1:3")
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		b.WriteString(text)
		if c.al && !strings.Contains(text, "access_log = true") {
			t.Errorf("access-log row: %s", text)
		}
		cfg := filepath.Join(t.TempDir(), "eg.toml")
		if err := writeConfig(cfg, b.String()); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(bin, "validate", "--config", cfg).CombinedOutput(); err != nil {
			t.Errorf("%s l4=%v: validate: %v\n%s\n%s", c.name, l4, err, out, b.String())
		}
		if env.Protocol == ProtoH3 {
			continue // TestGatewayH3Config
		}
		if env.TLS != nil {
			for _, want := range []string{`protocol = "https"`, `cert_file = "` + env.TLS.CertFile + `"`,
				fmt.Sprintf("session_tickets = %v", !env.TLS.NoResumption)} {
				if !strings.Contains(b.String(), want) {
					t.Errorf("%s: config lacks %q", c.name, want)
				}
			}
		}
	}
}

// TestGatewayH3Config checks the h3 scenario's config: an h3 listener with
// the bench certificate on the port of a cleartext http listener, both
// routing to the upstream; other protocols get no h3 listener.
func TestGatewayH3Config(t *testing.T) {
	envs := testEnvs(t)
	env := envs["https"]
	env.Protocol = ProtoH3
	g := &Gateway{}
	cfg, err := g.config(env, "127.0.0.1:3")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"name = \"web\"\nlisten = \"127.0.0.1:1\"\nprotocol = \"http\"",
		"name = \"h3\"\nlisten = \"127.0.0.1:1\"\nprotocol = \"h3\"",
		`cert_file = "` + env.TLS.CertFile + `"`, `key_file = "` + env.TLS.KeyFile + `"`,
		"[listeners.quic]\nmax_connections_per_ip = 0", `address = "127.0.0.1:2"`,
	} {
		if !strings.Contains(cfg, want) {
			t.Errorf("config lacks %q:\n%s", want, cfg)
		}
	}
	if n := strings.Count(cfg, "[listeners.tls]"); n != 1 {
		t.Errorf("%d tls tables, want 1 (the h3 listener's)", n)
	}
	if n := strings.Count(cfg, "cluster = \"app\""); n != 2 {
		t.Errorf("%d routes to app, want 2", n)
	}
	for name, e := range envs {
		text, err := g.config(e, "127.0.0.1:3")
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(text, `protocol = "h3"`) {
			t.Errorf("%s: config has an h3 listener:\n%s", name, text)
		}
	}
	noCert := env
	noCert.TLS = nil
	if _, err := g.config(noCert, "127.0.0.1:3"); err == nil {
		t.Error("h3 without a certificate rendered")
	}
}
