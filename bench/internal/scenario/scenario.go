// SPDX-License-Identifier: GPL-3.0-only

// Package scenario is the one table of load scenarios. A later protocol adds
// its scenario here in a few lines; until the targets support the protocol,
// the harness reports "not supported yet" for them instead of failing.
package scenario

import (
	"fmt"
	"sort"
	"strings"

	"github.com/expressgateway/expressgateway/bench/internal/target"
)

// Driver names the load generator a scenario uses.
type Driver string

// Drivers.
const (
	Wrk    Driver = "wrk"     // HTTP/1.1 load, latency histogram
	H2load Driver = "h2load"  // HTTP/2 load (h2c prior knowledge)
	Idle   Driver = "idle"    // the harness opens idle keep-alive connections itself
	Ghz    Driver = "ghz"     // gRPC load (built from tools/ghz.mod)
	WSEcho Driver = "ws-echo" // the harness's WebSocket echo load (gorilla/websocket)
	WSIdle Driver = "ws-idle" // the harness opens idle WebSocket tunnels itself
	// H3 is the harness's HTTP/3 load (quic-go), run as a child process
	// ("bench h3load"): Debian's h2load is built without QUIC.
	H3 Driver = "h3load"
)

// Scenario is one kind of load.
type Scenario struct {
	Name        string
	Description string
	Protocol    string   // client-side protocol the target must speak
	Driver      Driver   // load generator
	Path        string   // request path on the bench upstream (gRPC: the method)
	Headers     []string // extra request headers
	// NoResumption (https) has every target turn TLS session resumption
	// off, so that each new connection is a full handshake.
	NoResumption bool
	// Pending marks a slot whose driver is not written yet: every target
	// reports "not supported yet".
	Pending bool
}

// All is the registry, in the order scenarios run.
var All = []Scenario{
	{Name: "h1-keepalive", Description: "HTTP/1.1 keep-alive, 64-byte responses", Protocol: target.ProtoH1, Driver: Wrk, Path: "/"},
	{Name: "h1-close", Description: "HTTP/1.1, a new connection per request", Protocol: target.ProtoH1, Driver: Wrk, Path: "/", Headers: []string{"Connection: close"}},
	{Name: "h1-large", Description: "HTTP/1.1 keep-alive, 1 MiB responses", Protocol: target.ProtoH1, Driver: Wrk, Path: "/large"},
	{Name: "h1-idle", Description: "N idle HTTP/1.1 keep-alive connections, RSS per connection", Protocol: target.ProtoH1, Driver: Idle, Path: "/"},
	{Name: "h2c", Description: "HTTP/2 cleartext (prior knowledge), 64-byte responses", Protocol: target.ProtoH2C, Driver: H2load, Path: "/"},
	{Name: "h2c-h2c", Description: "HTTP/2 cleartext both sides (an h2c upstream), 64-byte responses", Protocol: target.ProtoH2CToH2C, Driver: H2load, Path: "/"},
	{Name: "tls-h1", Description: "HTTP/1.1 over TLS, keep-alive, 64-byte responses", Protocol: target.ProtoTLS, Driver: Wrk, Path: "/"},
	{Name: "tls-h2", Description: "HTTP/2 over TLS (ALPN h2), 64-byte responses", Protocol: target.ProtoTLS, Driver: H2load, Path: "/"},
	// wrk keeps a connection's TLS session across its reconnects (SSL_clear)
	// and offers it again, so a full handshake per request needs the
	// targets to have nothing to resume from.
	{Name: "tls-handshake", Description: "HTTPS, a new connection and a full TLS handshake per request (no resumption)", Protocol: target.ProtoTLS, Driver: Wrk, Path: "/",
		Headers: []string{"Connection: close"}, NoResumption: true},
	{Name: "h3", Description: "HTTP/3 over QUIC (TLS 1.3, ALPN h3), 64-byte responses", Protocol: target.ProtoH3, Driver: H3, Path: "/"},
	{Name: "grpc", Description: "gRPC unary calls over h2c to an h2c upstream, 64-byte messages", Protocol: target.ProtoGRPC, Driver: Ghz, Path: "grpc.testing.TestService.UnaryCall"},
	{Name: "grpc-stream", Description: "gRPC bidirectional streams of 100 64-byte messages each way", Protocol: target.ProtoGRPC, Driver: Ghz, Path: "grpc.testing.TestService.FullDuplexCall"},
	{Name: "websocket", Description: "WebSocket (HTTP/1.1) echo, 64-byte messages, one in flight per connection", Protocol: target.ProtoWebSocket, Driver: WSEcho, Path: "/ws"},
	{Name: "websocket-idle", Description: "N idle WebSocket tunnels, RSS per tunnel", Protocol: target.ProtoWebSocket, Driver: WSIdle, Path: "/ws"},
}

// Default is the set `make bench` runs.
var Default = []string{"h1-keepalive", "h1-close", "h1-large", "h1-idle", "h2c", "tls-h1", "tls-h2", "tls-handshake"}

// Groups are names that stand for several scenarios in -scenarios.
var Groups = map[string][]string{
	"tls": {"tls-h1", "tls-h2", "tls-handshake"},
}

// Lookup returns the scenario with the given name.
func Lookup(name string) (Scenario, bool) {
	for _, s := range All {
		if s.Name == name {
			return s, true
		}
	}
	return Scenario{}, false
}

// Select resolves a comma-separated list of scenarios and groups ("all" for
// every scenario).
func Select(list string) ([]Scenario, error) {
	if list == "all" {
		return All, nil
	}
	var out []Scenario
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		if group, ok := Groups[name]; ok {
			for _, n := range group {
				s, _ := Lookup(n)
				out = append(out, s)
			}
			continue
		}
		s, ok := Lookup(name)
		if !ok {
			return nil, fmt.Errorf("unknown scenario %q (known: %s; groups: %s)", name, strings.Join(Names(), ", "), strings.Join(GroupNames(), ", "))
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no scenario selected")
	}
	return out, nil
}

// Names lists the registered scenario names, sorted.
func Names() []string {
	var n []string
	for _, s := range All {
		n = append(n, s.Name)
	}
	sort.Strings(n)
	return n
}

// GroupNames lists the group names, sorted.
func GroupNames() []string {
	var n []string
	for g := range Groups {
		n = append(n, g)
	}
	sort.Strings(n)
	return n
}
