// SPDX-License-Identifier: GPL-3.0-only

// Package h2 is a sans-IO HTTP/2 codec (RFC 9113): frames, HPACK with
// limits, the stream state machine, flow control in both directions and
// header validation, for the reverse proxy's event loops.
//
// A Conn takes inbound bytes (Feed) and reports what they meant through a
// Handler; whatever it has to say to the peer (SETTINGS, ACKs, WINDOW_UPDATE,
// RST_STREAM, GOAWAY, and the frames the owner asked for) is appended to an
// output buffer the owner drains (Output, Advance). It never touches a
// socket, never starts a goroutine and keeps no timer: where time matters the
// owner passes it in.
//
// Failures are typed. A *ConnError ends the connection (a GOAWAY carrying
// its code is already queued when Feed returns it); a *StreamError resets
// one stream (its RST_STREAM is queued) and leaves the others alone. Both
// carry a stable short Token for metrics; README.md lists them.
//
// A Conn belongs to one goroutine (the connection's owner) and is not safe
// for concurrent use.
package h2
