// SPDX-License-Identifier: GPL-3.0-only

package conf

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

const nodeTOML = `
[control_plane]
backend = "etcd"
endpoints = ["http://127.0.0.1:2379"]
node_id = "gw-1"
zone = "a"
region = "eu"
lease_ttl = "3s"

[admin]
listen = "127.0.0.1:9911"

[log]
level = "warn"
`

func problemsOf(t *testing.T, err error) []string {
	t.Helper()
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("want a *ValidationError, got %v", err)
	}
	out := make([]string, len(ve.Problems))
	for i, p := range ve.Problems {
		out[i] = p.String()
	}
	return out
}

func TestReadControlPlane(t *testing.T) {
	cp, err := ReadControlPlane("node.toml", []byte(nodeTOML))
	if err != nil {
		t.Fatal(err)
	}
	want := ControlPlane{Backend: "etcd", Endpoints: []string{"http://127.0.0.1:2379"}, Prefix: "/expressgateway",
		NodeID: "gw-1", LeaseTTL: Duration(3 * time.Second), RequestTimeout: Duration(2 * time.Second), Zone: "a", Region: "eu"}
	if !reflect.DeepEqual(cp, want) {
		t.Fatalf("got %+v\nwant %+v", cp, want)
	}
	cp, err = ReadControlPlane("plain.toml", []byte(minimalTOML))
	if err != nil || cp.Backend != BackendFile {
		t.Fatalf("a file without [control_plane]: %+v %v", cp, err)
	}
	_, err = ReadControlPlane("bad.toml", []byte(`
[control_plane]
backend = "zookeeper"
endpoints = ["127.0.0.1:2379", "https://x:1"]
prefix = "/eg/"
node_id = "a b"
lease_ttl = "1s"
request_timeout = "2m"
zone = "a\tb"
bogus = 1
`))
	got := problemsOf(t, err)
	for _, w := range []string{
		`bad.toml: control_plane.backend: must be one of "file", "etcd", got "zookeeper"`,
		`bad.toml: control_plane.endpoints[0]: invalid etcd URL "127.0.0.1:2379": want http://host:port (TLS to etcd is not supported yet)`,
		`bad.toml: control_plane.endpoints[1]: invalid etcd URL "https://x:1"`,
		`bad.toml: control_plane.prefix: must start with "/", not end with "/"`,
		`bad.toml: control_plane.node_id: must be 1 to 128 letters`,
		`bad.toml: control_plane.lease_ttl: must be between 2s and 1h, got 1s`,
		`bad.toml: control_plane.request_timeout: must be between 100ms and 1m, got 2m0s`,
		`bad.toml: control_plane.zone: must be at most 128 bytes without control characters`,
		`bad.toml: control_plane.bogus: unknown key`,
	} {
		found := false
		for _, g := range got {
			found = found || strings.HasPrefix(g, w)
		}
		if !found {
			t.Errorf("no problem %q in\n%s", w, strings.Join(got, "\n"))
		}
	}
}

func TestCheckNode(t *testing.T) {
	if _, err := CheckNode("node.toml", []byte(nodeTOML)); err != nil {
		t.Fatal(err)
	}
	_, err := CheckNode("node.toml", []byte(nodeTOML+`
[[listeners]]
name = "x"
listen = "127.0.0.1:1"
[engine]
event_loops = 1
`))
	got := problemsOf(t, err)
	if len(got) != 2 || !strings.HasPrefix(got[0], `node.toml: engine: not allowed in a node file whose control_plane.backend is "etcd"`) ||
		!strings.HasPrefix(got[1], "node.toml: listeners: not allowed") {
		t.Fatalf("problems %q", got)
	}
	_, err = CheckNode("node.toml", []byte(strings.Replace(nodeTOML, `level = "warn"`, `level = "loud"`, 1)))
	if got := problemsOf(t, err); len(got) != 1 || !strings.HasPrefix(got[0], `node.toml: log.level: must be one of`) {
		t.Fatalf("problems %q", got)
	}
}

// The stored document with the node's sections laid over it: the node's
// [control_plane] replaces the document's, its [admin] and [log] keys
// win, everything else is the document's; problems name the file they
// come from.
func TestParseLayered(t *testing.T) {
	doc := minimalTOML + `
[log]
access_log = false
level = "debug"

[control_plane]
backend = "etcd"
node_id = "pusher"
`
	s, err := ParseLayered("etcd:/expressgateway/config", []byte(doc), "node.toml", []byte(nodeTOML))
	if err != nil {
		t.Fatal(err)
	}
	c := &s.Config
	if c.Admin.Listen != "127.0.0.1:9911" || c.Log.Level != "warn" || c.Log.AccessLog || c.ControlPlane.NodeID != "gw-1" ||
		c.ControlPlane.Zone != "a" || len(c.Clusters) != 1 || s.Source != "etcd:/expressgateway/config" {
		t.Fatalf("layered config: admin %q log %+v control_plane %+v clusters %d source %q",
			c.Admin.Listen, c.Log, c.ControlPlane, len(c.Clusters), s.Source)
	}
	bad := strings.Replace(doc, `cluster = "app"`, `cluster = "nope"`, 1)
	_, err = ParseLayered("etcd:/eg/config", []byte(bad), "node.toml", []byte(strings.Replace(nodeTOML, `level = "warn"`, `level = "loud"`, 1)))
	got := problemsOf(t, err)
	if len(got) != 2 || !strings.HasPrefix(got[0], "node.toml: log.level:") ||
		!strings.HasPrefix(got[1], "etcd:/eg/config: listeners[0].routes[0].cluster:") {
		t.Fatalf("problems %q", got)
	}
	_, err = ParseLayered("etcd:/eg/config", []byte(doc), "node.toml", []byte(nodeTOML+"\n[engine]\nevent_loops = 1\n"))
	if got := problemsOf(t, err); len(got) != 1 || !strings.HasPrefix(got[0], "node.toml: engine: not allowed") {
		t.Fatalf("problems %q", got)
	}
	if _, err := ParseLayered("etcd:/eg/config", []byte("[[listeners]\n"), "node.toml", []byte(nodeTOML)); err == nil ||
		!strings.Contains(err.Error(), "etcd:/eg/config: TOML syntax error") {
		t.Fatalf("syntax error: %v", err)
	}
}
