// SPDX-License-Identifier: GPL-3.0-only

package target

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestCaddyConfig checks the JSON Caddy gets for h3: HTTP/3 only on the
// listen address, the bench certificate, automatic HTTPS and the admin
// endpoint off, and a keep-alive pool to the upstream. With BENCH_CADDY_BIN
// naming a Caddy binary (the harness caches one under the user cache
// directory), Caddy itself validates it; `make test` never builds Caddy.
func TestCaddyConfig(t *testing.T) {
	env := testEnvs(t)["https"]
	env.Protocol, env.Dir = ProtoH3, t.TempDir()
	data, err := CaddyConfig(env)
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Admin struct {
			Disabled bool `json:"disabled"`
		} `json:"admin"`
		Apps struct {
			TLS struct {
				Certificates struct {
					LoadFiles []struct{ Certificate, Key string } `json:"load_files"`
				} `json:"certificates"`
			} `json:"tls"`
			HTTP struct {
				Servers map[string]struct {
					Listen         []string `json:"listen"`
					Protocols      []string `json:"protocols"`
					AutomaticHTTPS struct {
						Disable bool `json:"disable"`
					} `json:"automatic_https"`
					Routes []struct {
						Handle []struct {
							Handler   string `json:"handler"`
							Upstreams []struct {
								Dial string `json:"dial"`
							} `json:"upstreams"`
							Transport struct {
								Protocol  string `json:"protocol"`
								KeepAlive struct {
									Enabled             bool `json:"enabled"`
									MaxIdleConnsPerHost int  `json:"max_idle_conns_per_host"`
								} `json:"keep_alive"`
							} `json:"transport"`
						} `json:"handle"`
					} `json:"routes"`
				} `json:"servers"`
			} `json:"http"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		t.Fatal(err)
	}
	srv, ok := cfg.Apps.HTTP.Servers["bench"]
	if !ok || !cfg.Admin.Disabled || !srv.AutomaticHTTPS.Disable {
		t.Fatalf("config:\n%s", data)
	}
	if strings.Join(srv.Listen, ",") != env.Listen || strings.Join(srv.Protocols, ",") != "h3" {
		t.Errorf("listen %q protocols %q", srv.Listen, srv.Protocols)
	}
	if lf := cfg.Apps.TLS.Certificates.LoadFiles; len(lf) != 1 || lf[0].Certificate != env.TLS.CertFile || lf[0].Key != env.TLS.KeyFile {
		t.Errorf("certificates: %+v", lf)
	}
	if len(srv.Routes) != 1 || len(srv.Routes[0].Handle) != 1 {
		t.Fatalf("routes:\n%s", data)
	}
	h := srv.Routes[0].Handle[0]
	if h.Handler != "reverse_proxy" || len(h.Upstreams) != 1 || h.Upstreams[0].Dial != env.Upstream ||
		h.Transport.Protocol != "http" || !h.Transport.KeepAlive.Enabled || h.Transport.KeepAlive.MaxIdleConnsPerHost != 1024 {
		t.Errorf("proxy: %+v", h)
	}
	if _, err := CaddyConfig(Env{Protocol: ProtoH3}); err == nil {
		t.Error("a config without a certificate")
	}
	https := env
	https.Protocol = ProtoTLS
	https.TLS = &TLS{CertFile: env.TLS.CertFile, KeyFile: env.TLS.KeyFile, NoResumption: true}
	data2, err := CaddyConfig(https)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"protocols": [
            "h1",
            "h2"
          ]`, `"session_tickets": {
        "disabled": true
      }`} {
		if !strings.Contains(string(data2), want) {
			t.Errorf("https config lacks %s:\n%s", want, data2)
		}
	}
	c := Caddy{}
	if !c.Supports(ProtoH3) || !c.Supports(ProtoTLS) || c.Supports(ProtoH1) || c.Supports(ProtoH2C) {
		t.Error("caddy protocols")
	}
	if _, err := c.Probe(context.Background()); err == nil || !strings.Contains(err.Error(), "not built") {
		t.Errorf("probe of an unbuilt caddy: %v", err)
	}

	bin := os.Getenv("BENCH_CADDY_BIN")
	if bin == "" {
		t.Log("BENCH_CADDY_BIN not set: Caddy does not validate the config")
		return
	}
	for name, cfg := range map[string][]byte{"h3": data, "https": data2} {
		path := env.Dir + "/caddy-" + name + ".json"
		if err := writeConfig(path, string(cfg)); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "validate", "--config", path)
		cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+env.Dir, "XDG_DATA_HOME="+env.Dir)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s: caddy validate: %v\n%s", name, err, out)
		}
	}
	if v, err := (Caddy{Bin: bin}).Probe(context.Background()); err != nil || v != "caddy "+CaddyVersion {
		t.Errorf("probe: %q, %v", v, err)
	}
}
