// SPDX-License-Identifier: GPL-3.0-only

// Package msg holds the protocol-neutral request/response forms shared by
// every codec; this file set: path and host normalisation.
//
// The route stage and the serializer must agree on the request path and host:
// when routing matches one spelling and the upstream resolves another, a
// request can reach a route it should have missed ("/x/../admin" slipping
// past a "/admin" rule to a catch-all). NormalizeTarget and NormalizeHost
// produce the one form that is both matched and forwarded. They are sans-IO,
// append to a caller's buffer and allocate nothing when it has room.
//
// Each refusal is one of the exported *Error values, whose Token is a stable
// metric label. Both functions return a nil *Error on success; convert it to
// an error interface only after checking it, or the interface is non-nil.
package msg
