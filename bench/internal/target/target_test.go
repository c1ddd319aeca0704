package target

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPeerConfigsAreValid renders each peer's config for both protocols and
// has the peer itself check it (haproxy -c, nginx -t). Skips a peer that is
// not installed, saying so.
func TestPeerConfigsAreValid(t *testing.T) {
	for _, proto := range []string{ProtoH1, ProtoH2C} {
		env := Env{Listen: "127.0.0.1:1", Upstream: "127.0.0.1:2", Workers: 2, Protocol: proto, NoFile: 4096}
		t.Run("haproxy-"+proto, func(t *testing.T) {
			bin, err := exec.LookPath("haproxy")
			if err != nil {
				t.Skip("haproxy not installed")
			}
			env.Dir = t.TempDir()
			var b strings.Builder
			if err := haproxyConfig.Execute(&b, env); err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"nbthread 2", "http-reuse always", "bind 127.0.0.1:1", "server app1 127.0.0.1:2"} {
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
		t.Run("nginx-"+proto, func(t *testing.T) {
			if _, err := exec.LookPath("nginx"); err != nil {
				t.Skip("nginx not installed")
			}
			env.Dir = t.TempDir()
			// Start does the rendering; check the file with nginx -t instead of running it.
			p, err := Nginx{}.render(env)
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"worker_processes 2;", "access_log off;", "keepalive 1024;", `proxy_set_header Connection "";`} {
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
	if !g.Supports(ProtoH1) || g.Supports(ProtoH3) {
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

// TestGatewayConfigIsValid has the gateway validate both of its configs when
// it is built (bin/expressgateway, as `make build` leaves it).
func TestGatewayConfigIsValid(t *testing.T) {
	bin, err := filepath.Abs("../../../bin/expressgateway")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Skip("bin/expressgateway not built")
	}
	for _, l4 := range []bool{false, true} {
		var b strings.Builder
		env := Env{Listen: "127.0.0.1:1", Upstream: "127.0.0.1:2", Workers: 1, Protocol: ProtoH1}
		if err := gatewayConfig.Execute(&b, struct {
			Env   Env
			Admin string
			L4    bool
		}{env, "127.0.0.1:3", l4}); err != nil {
			t.Fatal(err)
		}
		cfg := filepath.Join(t.TempDir(), "eg.toml")
		if err := writeConfig(cfg, b.String()); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(bin, "validate", "--config", cfg).CombinedOutput(); err != nil {
			t.Errorf("l4=%v: validate: %v\n%s\n%s", l4, err, out, b.String())
		}
	}
}
