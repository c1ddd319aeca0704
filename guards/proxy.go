// SPDX-License-Identifier: GPL-3.0-only

package guards

import (
	"net/netip"
	"time"
)

// PROXY protocol: a header from an address that is not a trusted balancer,
// a malformed one, or one that does not arrive in time closes the
// connection; the client address a trusted header names is admitted again
// (Readmit) so that the per-IP guards see the real client.
const (
	ProxyProtocolUntrusted Name = "proxy_protocol_untrusted"
	ProxyProtocolTimeout   Name = "proxy_protocol_timeout"
	ProxyProtocolPrefix         = "proxy_protocol_"
)

// ProxyProtocol is the guard of a refused PROXY header with the given reason.
func ProxyProtocol(reason string) Name { return Name(ProxyProtocolPrefix + reason) }

// Readmit moves a connection's admission from the balancer's address from
// to the client's address to, as Admit would admit it (penalty, rate, caps);
// on refusal nothing is held any more, for either address.
func Readmit(global, listener *ConnLimiter, rate *Buckets, pen *Penalties, from, to netip.Addr, now time.Time) (bool, Name) {
	if from == to {
		return true, ""
	}
	Release(global, listener, from)
	return Admit(global, listener, rate, pen, to, now)
}
