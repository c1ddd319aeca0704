// SPDX-License-Identifier: GPL-3.0-only

package scenario

import (
	"testing"

	"github.com/expressgateway/expressgateway/bench/internal/target"
)

func TestRegistry(t *testing.T) {
	seen := map[string]bool{}
	for _, s := range All {
		if seen[s.Name] {
			t.Errorf("%s registered twice", s.Name)
		}
		seen[s.Name] = true
		if s.Protocol == "" || s.Driver == "" || s.Path == "" || s.Description == "" {
			t.Errorf("%s: incomplete: %+v", s.Name, s)
		}
	}
	for _, slot := range []string{"h2c", "tls-h1", "tls-h2", "tls-handshake", "h3", "grpc", "websocket"} {
		if !seen[slot] {
			t.Errorf("slot %s missing", slot)
		}
	}
	for _, name := range Default {
		if s, ok := Lookup(name); !ok || s.Pending || !target.NewGatewaySupports(s.Protocol) {
			t.Errorf("default %s: %+v", name, s)
		}
	}
	if got, err := Select("all"); err != nil || len(got) != len(All) {
		t.Fatalf("all: %d, %v", len(got), err)
	}
	if got, err := Select("h1-close, h1-large"); err != nil || len(got) != 2 || got[1].Path != "/large" {
		t.Fatalf("select: %+v, %v", got, err)
	}
	for g, names := range Groups {
		if seen[g] {
			t.Errorf("group %s shadows a scenario", g)
		}
		for _, n := range names {
			if !seen[n] {
				t.Errorf("group %s: unknown scenario %s", g, n)
			}
		}
	}
	got, err := Select("tls")
	if err != nil || len(got) != 3 || got[2].Name != "tls-handshake" || !got[2].NoResumption || got[0].NoResumption {
		t.Fatalf("select tls: %+v, %v", got, err)
	}
	for _, bad := range []string{"h9", "", " , "} {
		if _, err := Select(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
