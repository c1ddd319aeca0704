// SPDX-License-Identifier: GPL-3.0-only

package engine

// Binding and dispatch. Each listener owns its sockets (listeners.go),
// bound to its address as resolved when they are opened (listenSocket: the
// "tcp" or "udp" network, the first IPv4 address of a name), and each
// socket is grafted into its loops under a placeholder address of its own.
// gnet reports that placeholder as the LocalAddr of every connection and
// datagram of the socket, so a connection is dispatched to the listener
// whose socket accepted it (gloop.graftOf), never by port: a wildcard
// listener and a specific one on the same port, or an http and a tcp
// listener, never take each other's connections. (conf refuses overlapping
// listen addresses; this keeps the dispatch exact even so.)
//
// The engine is ready only once every socket is bound and grafted into
// every loop: New binds them all, Serve closes Ready after every loop's
// OnBoot grafted its sockets.

// Bound waits until every listening socket is bound and grafted and returns
// nil, or returns why binding or starting the loops failed (Serve returns
// the same error).
func (e *Engine) Bound() error {
	<-e.booted
	return e.bootErr
}
