// SPDX-License-Identifier: GPL-3.0-only

package engine

import (
	"crypto/rand"

	"github.com/quic-go/quic-go"
)

// QUIC connection IDs across a binary upgrade.
//
// An h3 listener's UDP socket is not handed over on USR2: the new process
// binds its own on the same address (SO_REUSEPORT), and the old one keeps
// its socket until its last connection is done. The kernel would spread
// the datagrams of the old process's connections over both sockets by
// their 4-tuple, and those that reached the new one would be dropped. So
// every connection ID this process chooses carries one generation bit (the
// low bit of its first byte; the rest is random), the process an upgrade
// starts uses the other value, and it attaches a classic BPF program to
// the port's reuseport group (h3_steer_linux.go) that sends datagrams
// whose destination connection ID has the old bit to the old socket and
// all others (new connections, the new bit) to the new one.

// h3CIDLen is the length of the connection IDs an h3 listener chooses (8
// bytes: 63 random bits; quic-go's default is 4).
const h3CIDLen = 8

// h3CIDGen makes an h3 listener's connection IDs, marked with the
// process's generation bit.
type h3CIDGen struct{ gen byte }

// GenerateConnectionID implements quic.ConnectionIDGenerator.
func (g h3CIDGen) GenerateConnectionID() (quic.ConnectionID, error) {
	var b [h3CIDLen]byte
	if _, err := rand.Read(b[:]); err != nil {
		return quic.ConnectionID{}, err
	}
	b[0] = b[0]&^1 | g.gen&1
	return quic.ConnectionIDFromBytes(b[:]), nil
}

// ConnectionIDLen implements quic.ConnectionIDGenerator.
func (g h3CIDGen) ConnectionIDLen() int { return h3CIDLen }
