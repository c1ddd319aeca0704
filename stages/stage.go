// SPDX-License-Identifier: GPL-3.0-only

// Package stages is the request pipeline: guard → route → pick → forward.
// Every stage implements one small contract and can be tested alone with a fake
// Exchange. The order lives in pipeline.go and nowhere else.
package stages

import (
	"bytes"
	"net/netip"

	"github.com/expressgateway/expressgateway/codecs/msg"
	"github.com/expressgateway/expressgateway/lb"
)

// Verdict is what a stage decided about an exchange.
type Verdict uint8

const (
	// Continue passes the exchange to the next stage.
	Continue Verdict = iota
	// Respond stops the pipeline: the engine answers locally with x.Status.
	Respond
	// Handled stops the pipeline: the stage took ownership (forwarding).
	Handled
)

// Stage is one step of the pipeline. Process runs on the connection's event
// loop, must not block, and must not keep x after returning unless it returns
// Handled.
type Stage interface {
	Name() string
	Process(x *Exchange) Verdict
}

// Forwarder starts the upstream leg of an exchange. The engine implements it;
// Forward runs on the event loop and must not block.
type Forwarder interface {
	Forward(x *Exchange)
}

// Exchange is one request travelling through the pipeline. The engine owns it
// (one per client connection, reused across requests), fills the request side
// and reads back the verdict.
type Exchange struct {
	// Set by the engine before Submit: the neutral head, with its path and
	// host normalised, so every stage and the forwarder read the same bytes.
	Req          *msg.Request
	ParseErr     *msg.Error // the codec's verdict, enforced by the guard
	ClientIP     netip.Addr
	Listener     *Listener
	ConnRequests int // requests seen on this connection, this one included
	Forwarder    Forwarder
	Owner        any // the engine's connection actor

	// Filled by the stages.
	Route   *Route
	Cluster *Cluster
	Pick    lb.Pick
	Exclude *lb.Endpoint // endpoint to avoid (retries)

	// Local response, when a stage answers.
	Status     int
	Reason     string // short stable token, a metric label and a log field
	RetryAfter bool
	CloseConn  bool // close the client connection after this exchange
}

// Reset clears the stage outputs so the exchange can carry the next request.
func (x *Exchange) Reset() {
	req, owner, fwd, lis, ip, n := x.Req, x.Owner, x.Forwarder, x.Listener, x.ClientIP, x.ConnRequests
	*x = Exchange{Req: req, Owner: owner, Forwarder: fwd, Listener: lis, ClientIP: ip, ConnRequests: n}
}

// Refuse sets a local response and returns Respond.
func (x *Exchange) Refuse(status int, reason string) Verdict {
	x.Status = status
	x.Reason = reason
	return Respond
}

// SourceIP implements lb.RequestInfo.
func (x *Exchange) SourceIP() netip.Addr { return x.ClientIP }

// Header implements lb.RequestInfo.
func (x *Exchange) Header(name string) []byte {
	for i := range x.Req.Fields {
		if equalFoldASCII(x.Req.Fields[i].Name, name) {
			return x.Req.Fields[i].Value
		}
	}
	return nil
}

// Path implements lb.RequestInfo: the normalised path without its query.
func (x *Exchange) Path() []byte { return x.Req.PathOnly() }

// Cookie implements lb.RequestInfo: the value of the first cookie called name
// across all Cookie headers, without allocating.
func (x *Exchange) Cookie(name string) []byte {
	for i := range x.Req.Fields {
		h := &x.Req.Fields[i]
		if !equalFoldASCII(h.Name, "cookie") {
			continue
		}
		if v := findCookie(h.Value, name); v != nil {
			return v
		}
	}
	return nil
}

func findCookie(v []byte, name string) []byte {
	for len(v) > 0 {
		var pair []byte
		if i := bytes.IndexByte(v, ';'); i >= 0 {
			pair, v = v[:i], v[i+1:]
		} else {
			pair, v = v, nil
		}
		pair = bytes.TrimSpace(pair)
		eq := bytes.IndexByte(pair, '=')
		if eq < 0 {
			continue
		}
		if string(pair[:eq]) == name {
			val := pair[eq+1:]
			if len(val) >= 2 && val[0] == '"' && val[len(val)-1] == '"' {
				val = val[1 : len(val)-1]
			}
			return val
		}
	}
	return nil
}

func equalFoldASCII(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		d := s[i]
		if 'A' <= d && d <= 'Z' {
			d += 'a' - 'A'
		}
		if c != d {
			return false
		}
	}
	return true
}

var _ lb.RequestInfo = (*Exchange)(nil)
