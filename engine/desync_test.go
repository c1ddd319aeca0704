// SPDX-License-Identifier: GPL-3.0-only

package engine

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/expressgateway/expressgateway/codecs/h1/h1test"
)

// TestDesyncCorpusThroughProxy sends every request of the
// aws/http-desync-guardian corpus through the engine to a counting upstream:
// Severe and Ambiguous requests are refused with a 4xx/5xx and nothing of
// them reaches the upstream; Compliant ones are forwarded (with a body of
// their declared framing).
func TestDesyncCorpusThroughProxy(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, "ok")
	})
	g := startGW(t, []string{o.addr()}, `
max_connections_per_ip = 0
[listeners.timeouts]
header_read = "1s"
body_idle = "300ms"
`, "", nil)
	cases := h1test.LoadDesyncCorpus(t)
	refused, forwarded := map[string]int{}, map[string]int{}
	for i := range cases {
		c := &cases[i]
		tier := c.Expected.Tier
		raw := string(c.Raw())
		if tier == "Compliant" || tier == "Acceptable" {
			raw += bodyFor(c)
		}
		before := o.requests.Load()
		status, proxied := sendRaw(t, g.addr, raw)
		reached := o.requests.Load() != before || proxied
		switch tier {
		case "Severe", "Ambiguous":
			if status < 400 || status > 599 || proxied {
				t.Errorf("%s (%s): status %d, want a refusal by the gateway", c.Key(), tier, status)
			}
			if reached {
				t.Errorf("%s (%s): reached the upstream", c.Key(), tier)
			}
		case "Compliant":
			// "Empty URI": no target on the wire. "Compliant URL": a
			// '#fragment', a '%^&' that is no percent-encoding and a
			// backslash — no single normal form, so routing and
			// forwarding could disagree (SECURITY.md, path
			// normalisation): 400 on purpose.
			if c.Key() == "rfc-compliant.yaml/Empty URI" || c.Key() == "rfc-compliant.yaml/Compliant URL" {
				if status != 400 {
					t.Errorf("%s: status %d, want 400", c.Key(), status)
				}
				continue
			}
			// Go's net/http upstream answers 501 itself to codings it does
			// not implement (gzip, chunked): forwarded all the same.
			if !proxied || !reached {
				t.Errorf("%s: status %d, want forwarded", c.Key(), status)
			}
		}
		if proxied {
			forwarded[tier]++
		} else {
			refused[tier]++
		}
	}
	t.Logf("%d cases through the proxy: refused %v, forwarded %v", len(cases), refused, forwarded)
	if refused["Severe"] != 58 || refused["Ambiguous"] != 58 {
		t.Fatalf("refused %v: want all 58 Severe and 58 Ambiguous", refused)
	}
}

// bodyFor returns a body matching the case's declared framing, when it is
// a plain Content-Length or a chunked Transfer-Encoding.
func bodyFor(c *h1test.DesyncCase) string {
	for _, h := range c.Headers {
		switch strings.ToLower(h.Name) {
		case "content-length":
			if n, err := strconv.Atoi(strings.TrimSpace(h.Value)); err == nil && n >= 0 && n <= 8<<20 {
				return strings.Repeat("x", n)
			}
		case "transfer-encoding":
			codings := strings.Split(h.Value, ",")
			last := strings.ToLower(strings.TrimSpace(strings.SplitN(codings[len(codings)-1], ";", 2)[0]))
			if last == "chunked" {
				return "0\r\n\r\n"
			}
		}
	}
	return ""
}

// sendRaw writes raw on a new connection and returns the response status
// (0 when the connection closed without one) and whether the response came
// from the upstream (it carries the gateway's Via; local answers do not).
func sendRaw(t *testing.T, addr, raw string) (int, bool) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		return 0, false
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, false
	}
	_ = resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Via") != ""
}
