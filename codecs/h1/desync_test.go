package h1

import (
	"errors"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/expressgateway/expressgateway/codecs/h1/h1test"
)

// wireDeviations are corpus cases whose expectation cannot hold on the wire,
// keyed by file and name, with the token we answer instead. The guardian
// judges an already parsed request; an empty URI becomes the request line
// "GET  HTTP/1.1" (two spaces, no target), which RFC 9112 section 3 makes
// invalid, so we refuse it like any malformed request line.
var wireDeviations = map[string]string{
	"rfc-compliant.yaml/Empty URI": "bad_target",
}

func TestDesyncGuardianCorpus(t *testing.T) {
	cases := h1test.LoadDesyncCorpus(t)
	tiers := map[string]int{}
	tokens := map[string]int{}
	acceptedAcceptable, refusedAcceptable, deviations := 0, 0, 0
	{
		for i := range cases {
			c := &cases[i]
			key := c.Key()
			tiers[c.Expected.Tier]++
			raw := c.Raw()
			var p RequestParser
			var r Request
			n, done, perr := p.Parse(raw, &r)
			var he *Error
			refused := errors.As(perr, &he)
			if perr != nil && !refused {
				t.Errorf("%s: non-*Error %v", key, perr)
				continue
			}
			if refused {
				tokens[he.Token]++
				if he.Status < 400 || he.Status > 599 || n != 0 || done {
					t.Errorf("%s: bad refusal %d %v %v", key, he.Status, n, done)
				}
			} else if !done || n != len(raw) {
				t.Errorf("%s: incomplete parse %d/%d %v", key, n, len(raw), done)
				continue
			}
			if tok, ok := wireDeviations[key]; ok {
				deviations++
				if !refused || he.Token != tok {
					t.Errorf("%s: deviation expected %s, got %v", key, tok, perr)
				}
				continue
			}
			switch c.Expected.Tier {
			case "Severe", "Ambiguous":
				if !refused {
					t.Errorf("%s (%s %s): accepted, must be refused\n%q", key, c.Expected.Tier, c.Expected.Reason, raw)
				}
			case "Compliant":
				if refused {
					t.Errorf("%s: compliant request refused: %v\n%q", key, perr, raw)
					continue
				}
				checkForwardable(t, key, &r)
			case "Acceptable":
				if refused {
					refusedAcceptable++
					continue
				}
				acceptedAcceptable++
				checkForwardable(t, key, &r)
			default:
				t.Errorf("%s: unknown tier %q", key, c.Expected.Tier)
			}
		}
	}
	total := tiers["Compliant"] + tiers["Acceptable"] + tiers["Ambiguous"] + tiers["Severe"]
	if total != 159 || tiers["Compliant"] != 28 || tiers["Acceptable"] != 15 ||
		tiers["Ambiguous"] != 58 || tiers["Severe"] != 58 {
		t.Fatalf("corpus changed: %d cases, tiers %v", total, tiers)
	}
	if deviations != len(wireDeviations) {
		t.Fatalf("deviations seen %d, listed %d", deviations, len(wireDeviations))
	}
	if acceptedAcceptable != 2 || refusedAcceptable != 13 {
		t.Errorf("acceptable: %d accepted, %d refused; update the documented figures", acceptedAcceptable, refusedAcceptable)
	}
	var toks []string
	for k, v := range tokens {
		toks = append(toks, k+"="+strconv.Itoa(v))
	}
	sort.Strings(toks)
	t.Logf("checked %d cases: tiers %v; acceptable accepted %d refused %d; refusals by token: %s",
		total, tiers, acceptedAcceptable, refusedAcceptable, strings.Join(toks, " "))
}

// checkForwardable asserts an accepted request is forwarded with unambiguous
// framing: one framing field at most, and the upstream parses the same body
// length from it.
func checkForwardable(t *testing.T, key string, r *Request) {
	t.Helper()
	head := AppendProxyRequestHead(nil, r, testOpts)
	var p RequestParser
	var r2 Request
	n, done, err := p.Parse(head, &r2)
	if err != nil || !done || n != len(head) {
		t.Errorf("%s: forwarded head does not parse: %v\n%q", key, err, head)
		return
	}
	if r2.Body != r.Body || r2.ContentLength != r.ContentLength {
		t.Errorf("%s: framing changed %v/%d -> %v/%d", key, r.Body, r.ContentLength, r2.Body, r2.ContentLength)
	}
	framing := 0
	for _, h := range r2.Headers {
		if equalFold(h.Name, "content-length") || equalFold(h.Name, "transfer-encoding") {
			framing++
		}
	}
	if framing > 1 {
		t.Errorf("%s: %d framing fields forwarded", key, framing)
	}
}
