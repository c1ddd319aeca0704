// SPDX-License-Identifier: GPL-3.0-only

package engine

import (
	"crypto/sha1" //nolint:gosec // RFC 6455 section 4.2.2 defines the accept value with SHA-1
	"crypto/subtle"
	"encoding/base64"

	"github.com/expressgateway/expressgateway/codecs/h1"
	"github.com/expressgateway/expressgateway/codecs/msg"
)

// WebSocket handshakes (RFC 6455 section 4). Upgrade is an allow-list of
// one: a request whose Upgrade names websocket is forwarded with
// "Connection: Upgrade" and "Upgrade: websocket" only; any other token is
// removed and the request served as plain HTTP (SECURITY.md).

// wsGUID is the fixed value RFC 6455 section 1.3 appends to the key.
const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// wsUpgradeFields are added to the head forwarded for a WebSocket upgrade
// (after the forwarded fields, before the final CRLF).
var wsUpgradeFields = []byte("Connection: Upgrade\r\nUpgrade: websocket\r\n")

// wsRequested reports whether an HTTP/1.1 request asks for a WebSocket
// upgrade the gateway forwards: GET, Connection: upgrade, an Upgrade list
// that names websocket, a Sec-WebSocket-Key and a Sec-WebSocket-Version,
// and no body. Anything else has its Upgrade stripped as before.
func wsRequested(r *h1.Request) bool {
	if r.Version != h1.Version11 || r.Upgrade == nil || string(r.Method) != "GET" {
		return false
	}
	if !r.Body.Empty(r.ContentLength) {
		return false
	}
	if !hasToken(r.Upgrade, "websocket") {
		return false
	}
	return len(r.Header("sec-websocket-key")) > 0 && len(r.Header("sec-websocket-version")) > 0
}

// hasToken reports whether the comma-separated list v names tok (ASCII
// case-insensitive; a token with a version, "websocket/13", does not match).
func hasToken(v []byte, tok string) bool {
	for len(v) > 0 {
		i := 0
		for i < len(v) && v[i] != ',' {
			i++
		}
		if msg.EqualFold(trimOWS(v[:i]), tok) {
			return true
		}
		if i == len(v) {
			break
		}
		v = v[i+1:]
	}
	return false
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// dropField removes the fields called name from fs[:added] (the forwarded
// ones), keeping the order; added moves with them.
func dropField(fs []msg.Field, added int, name string) ([]msg.Field, int) {
	out := fs[:0]
	n := added
	for i, f := range fs {
		if i < added && msg.EqualFold(f.Name, name) {
			n--
			continue
		}
		out = append(out, f)
	}
	return out, n
}

// wsAccept appends the Sec-WebSocket-Accept value for key to dst.
func wsAccept(dst, key []byte) []byte {
	h := sha1.New() //nolint:gosec // see the import
	h.Write(key)
	h.Write([]byte(wsGUID))
	var sum [sha1.Size]byte
	return base64.StdEncoding.AppendEncode(dst, h.Sum(sum[:0]))
}

// ws101Valid reports whether an upstream's 101 completes the WebSocket
// handshake for key: Upgrade: websocket, Connection: upgrade and the
// matching Sec-WebSocket-Accept (RFC 6455 section 4.1, the client's checks,
// made by the gateway so that a broken upstream never opens a tunnel).
func ws101Valid(fs []msg.Field, key []byte) bool {
	var up, conn, accept []byte
	for _, f := range fs {
		switch {
		case msg.EqualFold(f.Name, "upgrade"):
			up = f.Value
		case msg.EqualFold(f.Name, "connection"):
			if hasToken(f.Value, "upgrade") {
				conn = f.Value
			}
		case msg.EqualFold(f.Name, "sec-websocket-accept"):
			accept = f.Value
		}
	}
	if !msg.EqualFold(trimOWS(up), "websocket") || conn == nil || len(key) == 0 {
		return false
	}
	var buf [32]byte
	want := wsAccept(buf[:0], key)
	return subtle.ConstantTimeCompare(trimOWS(accept), want) == 1
}
