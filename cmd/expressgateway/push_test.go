// SPDX-License-Identifier: GPL-3.0-only

package main

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

func TestValidateNodeFile(t *testing.T) {
	node := `
[control_plane]
backend = "etcd"
node_id = "gw-1"
[admin]
listen = "127.0.0.1:9911"
`
	p := writeFile(t, "node.toml", node)
	var out, errb bytes.Buffer
	if code := run([]string{"validate", "--config", p}, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), p+": ok (a node file") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out.String(), errb.String())
	}
	p = writeFile(t, "node.toml", node+"[engine]\nevent_loops = 1\n[control_plane.x]\n")
	out.Reset()
	errb.Reset()
	code := run([]string{"validate", "--config", p}, &out, &errb)
	lines := strings.Split(strings.TrimSpace(errb.String()), "\n")
	if code != 1 || len(lines) != 2 || lines[1] != p+": control_plane.x: unknown key" ||
		!strings.HasPrefix(lines[0], p+`: engine: not allowed in a node file whose control_plane.backend is "etcd"`) {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
}

func TestConfigPushUsageAndErrors(t *testing.T) {
	var out, errb bytes.Buffer
	for _, args := range [][]string{{"config"}, {"config", "pull"}, {"config", "push"}} {
		if code := run(args, &out, &errb); code != 2 {
			t.Fatalf("%q: exit %d, want 2", args, code)
		}
	}
	// etcd is not there: nothing is pushed, and it says so within the
	// request timeout.
	p := writeFile(t, "push.toml", fmt.Sprintf(`
[control_plane]
backend = "etcd"
endpoints = ["http://%s"]
request_timeout = "300ms"
[[listeners]]
name = "web"
listen = "127.0.0.1:8080"
[[listeners.routes]]
cluster = "app"
[[clusters]]
name = "app"
endpoints = [ { address = "127.0.0.1:9001" } ]
`, freeAddr(t)))
	errb.Reset()
	if code := run([]string{"config", "push", "--config", p}, &out, &errb); code != 1 || !strings.HasPrefix(errb.String(), p+": not pushed: etcd:/expressgateway/config: ") {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
}
