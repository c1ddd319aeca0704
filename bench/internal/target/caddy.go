// SPDX-License-Identifier: GPL-3.0-only

package target

import (
	"context"
	"debug/buildinfo"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// CaddyVersion is the Caddy release tools/caddy.mod pins.
const CaddyVersion = "v2.11.9"

// Caddy is the HTTP/3 peer: of the proxies the bench runs, the one that
// speaks HTTP/3 here (Debian's HAProxy is built without QUIC, its nginx
// predates HTTP/3). The harness builds it from tools/caddy.mod.
type Caddy struct {
	// Bin is the binary to run; empty means "not built".
	Bin string
	// BuildErr says why the binary could not be built, if it could not.
	BuildErr error
}

// Name implements Target.
func (Caddy) Name() string { return "caddy" }

// Supports implements Target: h3, the scenario it is the reference of, and
// https (HTTP/1.1 and HTTP/2 over TLS), so that its own HTTP/3 and HTTP/2
// rows can be set side by side as the gateway's are.
func (Caddy) Supports(proto string) bool { return proto == ProtoH3 || proto == ProtoTLS }

// Probe implements Target. The version is the one the binary was built
// from (its build information), since `caddy version` prints "unknown" for
// a build outside Caddy's own module.
func (c Caddy) Probe(context.Context) (string, error) {
	if c.BuildErr != nil {
		return "", fmt.Errorf("%w: not built: %v", ErrUnavailable, c.BuildErr)
	}
	if c.Bin == "" {
		return "", fmt.Errorf("%w: not built", ErrUnavailable)
	}
	bi, err := buildinfo.ReadFile(c.Bin)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if bi.Main.Path == "github.com/caddyserver/caddy/v2" {
		return "caddy " + bi.Main.Version, nil
	}
	for _, d := range bi.Deps {
		if d.Path == "github.com/caddyserver/caddy/v2" {
			return "caddy " + d.Version, nil
		}
	}
	return "caddy (unknown version)", nil
}

// CaddyConfig is Caddy's JSON config for env, set up like the gateway: one
// server listening with HTTP/3 only on env.Listen (UDP) for h3, or with
// HTTP/1.1 and HTTP/2 over TLS on it (TCP) for https, the bench
// certificate (loaded from files, no automatic HTTPS, no ACME), access logs
// off (Caddy logs no request unless told to) and its own log at ERROR, the
// admin endpoint off and nothing persisted, keep-alive timeouts as long as
// the gateway's, and reverse_proxy to the HTTP/1.1 upstream with a
// keep-alive pool of 1024 idle connections (the gateway's
// max_idle_per_endpoint). Without resumption, session tickets are off (Go's
// TLS server resumes with tickets only).
func CaddyConfig(env Env) ([]byte, error) {
	if env.TLS == nil {
		return nil, fmt.Errorf("caddy serves h3 and https only and needs a certificate")
	}
	protocols := []string{"h3"}
	if env.Protocol == ProtoTLS {
		protocols = []string{"h1", "h2"}
	}
	type obj = map[string]any
	cfg := obj{
		"admin":   obj{"disabled": true, "config": obj{"persist": false}},
		"logging": obj{"logs": obj{"default": obj{"level": "ERROR"}}},
		"storage": obj{"module": "file_system", "root": filepath.Join(env.Dir, "caddy-data")},
		"apps": obj{
			"tls": obj{
				"certificates":    obj{"load_files": []obj{{"certificate": env.TLS.CertFile, "key": env.TLS.KeyFile}}},
				"session_tickets": obj{"disabled": env.TLS.NoResumption},
			},
			"http": obj{
				"servers": obj{
					"bench": obj{
						"listen":                  []string{env.Listen},
						"protocols":               protocols,
						"idle_timeout":            "300s",
						"automatic_https":         obj{"disable": true},
						"tls_connection_policies": []obj{{}},
						"routes": []obj{{
							"handle": []obj{{
								"handler":   "reverse_proxy",
								"upstreams": []obj{{"dial": env.Upstream}},
								"transport": obj{
									"protocol": "http",
									"keep_alive": obj{
										"enabled":                 true,
										"max_idle_conns":          1024,
										"max_idle_conns_per_host": 1024,
										"idle_timeout":            "300s",
									},
								},
							}},
						}},
					},
				},
			},
		},
	}
	return json.MarshalIndent(cfg, "", "  ")
}

// Start implements Target. XDG_CONFIG_HOME and XDG_DATA_HOME point into
// env.Dir, so that Caddy writes nothing into the home directory.
func (c Caddy) Start(_ context.Context, env Env) (*Process, error) {
	if c.Bin == "" {
		return nil, fmt.Errorf("%w: not built", ErrUnavailable)
	}
	data, err := CaddyConfig(env)
	if err != nil {
		return nil, err
	}
	cfg := filepath.Join(env.Dir, "caddy.json")
	if err := writeConfig(cfg, string(data)); err != nil {
		return nil, err
	}
	xdg := append(os.Environ(), "XDG_CONFIG_HOME="+filepath.Join(env.Dir, "caddy-config"), "XDG_DATA_HOME="+filepath.Join(env.Dir, "caddy-data"))
	p, err := launchEnv([]string{c.Bin, "run", "--config", cfg}, env.Pin, env.Dir, xdg)
	if err != nil {
		return nil, err
	}
	p.ConfigFile, p.Config = cfg, string(data)
	return p, nil
}

var _ Target = Caddy{}
