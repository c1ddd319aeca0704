// SPDX-License-Identifier: GPL-3.0-only

package stages

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/expressgateway/expressgateway/codecs/msg"
	"github.com/expressgateway/expressgateway/guards"
	"github.com/expressgateway/expressgateway/lb"
)

// fakeRequest turns a raw HTTP/1.1 head into a fresh Exchange over the
// neutral head, normalised as the engine does (a test-only reader: stages
// know no wire syntax).
func fakeRequest(t *testing.T, raw string) *Exchange {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(raw, "\r\n\r\n"), "\r\n")
	parts := strings.Split(lines[0], " ")
	if len(parts) != 3 {
		t.Fatalf("request line %q", lines[0])
	}
	req := &msg.Request{Method: []byte(parts[0]), Scheme: []byte("http"), ContentLength: -1}
	var host []byte
	for _, l := range lines[1:] {
		name, value, ok := strings.Cut(l, ":")
		if !ok {
			t.Fatalf("field %q", l)
		}
		value = strings.TrimSpace(value)
		if strings.EqualFold(name, "host") {
			host = []byte(value)
			continue
		}
		req.Fields = append(req.Fields, msg.Field{Name: []byte(name), Value: []byte(value)})
	}
	var buf []byte
	var pathLen int
	if parts[1] == "*" {
		buf, pathLen = []byte("*"), 1
	} else {
		var err *msg.Error
		if buf, pathLen, err = msg.NormalizeTarget(nil, []byte(parts[1]), nil); err != nil {
			t.Fatalf("target %q: %v", parts[1], err)
		}
	}
	mid := len(buf)
	buf, hostLen, err := msg.NormalizeHost(buf, host)
	if err != nil {
		t.Fatalf("host %q: %v", host, err)
	}
	req.Path, req.PathLen = buf[:mid], pathLen
	req.Authority = buf[mid:]
	req.Host = req.Authority[:hostLen]
	return &Exchange{Req: req, ClientIP: netip.MustParseAddr("198.18.0.7")}
}

func TestRouterFirstMatchWins(t *testing.T) {
	a, b, c, d, e := &Cluster{Name: "a"}, &Cluster{Name: "b"}, &Cluster{Name: "c"}, &Cluster{Name: "d"}, &Cluster{Name: "e"}
	r := NewRouter([]RouteSpec{
		{Name: "exact", Host: "api.example.com", PathPrefix: "/v1/", Cluster: a},
		{Name: "suffix", Host: "*.example.com", Path: "/health", Cluster: b},
		{Name: "method", Methods: []string{"POST"}, PathPrefix: "/upload", Cluster: c},
		{Name: "header", Headers: map[string]string{"X-Canary": "1"}, Cluster: d},
		{Name: "any", Host: "*", PathPrefix: "/", Cluster: e},
	})
	cases := []struct{ req, want string }{
		{"GET /v1/users HTTP/1.1\r\nHost: API.example.com:8080\r\n\r\n", "exact"},
		{"GET /v2/users HTTP/1.1\r\nHost: api.example.com\r\n\r\n", "any"},
		{"GET /health HTTP/1.1\r\nHost: www.example.com\r\n\r\n", "suffix"},
		{"GET /health HTTP/1.1\r\nHost: example.com\r\n\r\n", "any"}, // *.suffix needs a label
		{"GET /health?x=1 HTTP/1.1\r\nHost: a.b.example.com\r\n\r\n", "suffix"},
		{"POST /upload/x HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n", "method"},
		{"PUT /upload/x HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n", "any"},
		{"GET /x HTTP/1.1\r\nHost: h\r\nX-Canary: 1\r\n\r\n", "header"},
		{"GET /x HTTP/1.1\r\nHost: h\r\nX-Canary: 2\r\n\r\n", "any"},
	}
	for _, tc := range cases {
		x := fakeRequest(t, tc.req)
		rt := r.Match(x)
		if rt == nil || rt.Name != tc.want {
			got := "<nil>"
			if rt != nil {
				got = rt.Name
			}
			t.Errorf("%q: route %s, want %s", tc.req, got, tc.want)
		}
	}
	x := fakeRequest(t, "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n")
	if NewRouter([]RouteSpec{{PathPrefix: "/", Cluster: a}}).Match(x) != nil {
		t.Error("asterisk-form matched a path prefix route")
	}
}

func TestRouteStage404(t *testing.T) {
	x := fakeRequest(t, "GET /nope HTTP/1.1\r\nHost: h\r\n\r\n")
	x.Listener = &Listener{Router: NewRouter([]RouteSpec{{Path: "/only", Cluster: &Cluster{}}})}
	if v := (RouteStage{}).Process(x); v != Respond || x.Status != 404 || x.Reason != "no_route" {
		t.Fatalf("verdict %v status %d reason %q", v, x.Status, x.Reason)
	}
}

// TestRateLimits: the listener's rate_limit (guard stage, before routing)
// and a route's (route stage) answer 429 with Retry-After once the bucket
// is empty, per key.
func TestRateLimits(t *testing.T) {
	var hits []string
	hit := func(_ *Exchange, name guards.Name, _ guards.Scope) { hits = append(hits, string(name)) }
	g := &Guard{Hit: hit}
	lis := &Listener{Rate: guards.NewRateLimiter(1, 2, "client_ip", 1024)}
	for i, want := range []Verdict{Continue, Continue, Respond} {
		x := fakeRequest(t, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
		x.Listener = lis
		if v := g.Process(x); v != want {
			t.Fatalf("request %d: verdict %v", i, v)
		}
		if want == Respond && (x.Status != 429 || !x.RetryAfter || x.Reason != "request_rate" || x.CloseConn) {
			t.Fatalf("refusal: %d %v %q close=%v", x.Status, x.RetryAfter, x.Reason, x.CloseConn)
		}
	}
	rs := RouteStage{Hit: hit}
	rl := &Listener{Router: NewRouter([]RouteSpec{{Cluster: &Cluster{}, Rate: guards.NewRateLimiter(1, 1, "header:X-Key", 1024)}})}
	for i, c := range []struct {
		key  string
		want Verdict
	}{{"a", Continue}, {"a", Respond}, {"b", Continue}} {
		x := fakeRequest(t, "GET / HTTP/1.1\r\nHost: h\r\nX-Key: "+c.key+"\r\n\r\n")
		x.Listener = rl
		if v := rs.Process(x); v != c.want || (v == Respond && (x.Status != 429 || !x.RetryAfter)) {
			t.Fatalf("route request %d (%s): verdict %v status %d", i, c.key, v, x.Status)
		}
	}
	if strings.Join(hits, ",") != "request_rate,route_request_rate" {
		t.Fatalf("hits %v", hits)
	}
}

func TestGuardEnforcesCodecVerdictAndRequestCap(t *testing.T) {
	var hits []string
	g := &Guard{Hit: func(_ *Exchange, name guards.Name, _ guards.Scope) { hits = append(hits, string(name)) }}
	x := fakeRequest(t, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
	x.Listener = &Listener{MaxRequestsPerConn: 2}
	x.ParseErr = &msg.Error{Status: 400, Token: "cl_te_conflict"}
	if v := g.Process(x); v != Respond || x.Status != 400 || !x.CloseConn || x.Reason != "codec_cl_te_conflict" {
		t.Fatalf("codec verdict not enforced: %v %d %v %q", v, x.Status, x.CloseConn, x.Reason)
	}
	y := fakeRequest(t, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
	y.Listener = x.Listener
	y.ConnRequests = 1
	if v := g.Process(y); v != Continue || y.CloseConn {
		t.Fatal("first request refused or closing")
	}
	y.ConnRequests = 2
	if v := g.Process(y); v != Continue || !y.CloseConn {
		t.Fatal("last allowed request does not close the connection")
	}
	if len(hits) != 2 || hits[0] != "codec_cl_te_conflict" || hits[1] != "max_requests_per_connection" {
		t.Fatalf("hits %v", hits)
	}
}

// fakeStage records what it saw and answers a fixed verdict.
type fakeStage struct {
	name string
	v    Verdict
	seen []*Exchange
}

func (f *fakeStage) Name() string { return f.name }
func (f *fakeStage) Process(x *Exchange) Verdict {
	f.seen = append(f.seen, x)
	return f.v
}

func TestPipelineOrderAndFullRings(t *testing.T) {
	s1, s2, s3 := &fakeStage{name: "one", v: Continue}, &fakeStage{name: "two", v: Continue}, &fakeStage{name: "three", v: Handled}
	p := NewPipeline([]Stage{s1, s2, s3}, 2)
	var done []*Exchange
	var full []string
	p.Done = func(x *Exchange) { done = append(done, x) }
	p.Full = func(stage string) { full = append(full, stage) }
	xs := []*Exchange{{}, {}, {}}
	if !p.Submit(xs[0]) || !p.Submit(xs[1]) {
		t.Fatal("submit refused below capacity")
	}
	if p.Submit(xs[2]) {
		t.Fatal("submit accepted past the head ring's capacity")
	}
	p.Drain()
	if len(s1.seen) != 2 || len(s2.seen) != 2 || len(s3.seen) != 2 || s3.seen[0] != xs[0] || s3.seen[1] != xs[1] {
		t.Fatal("stages did not see the batch in order")
	}
	if len(done) != 0 || len(full) != 0 {
		t.Fatal("handled exchanges reported as done or full")
	}
	// A stage that answers stops the exchange there.
	s2.v = Respond
	p.SubmitAndDrain(xs[2])
	if len(done) != 1 || done[0] != xs[2] || len(s3.seen) != 2 {
		t.Fatal("Respond did not stop the pipeline")
	}
	// A full ring between stages is a 503 with Retry-After, counted.
	s2.v = Continue
	p2 := NewPipeline([]Stage{&fakeStage{name: "fan", v: Continue}, &fakeStage{name: "slow", v: Handled}}, 2)
	p2.Done = p.Done
	p2.Full = p.Full
	ys := []*Exchange{{}, {}}
	p2.Submit(ys[0])
	p2.Submit(ys[1])
	// Fill the second ring behind the pipeline's back, as a stage that
	// re-queues would, then drain.
	p2.rings[1].Push(&Exchange{})
	p2.Drain()
	if len(full) != 1 || full[0] != "slow" {
		t.Fatalf("full ring not reported: %v", full)
	}
	last := done[len(done)-1]
	if last.Status != 503 || !last.RetryAfter || last.Reason != "ring_full" {
		t.Fatalf("overflow answered %d retry-after %v reason %q", last.Status, last.RetryAfter, last.Reason)
	}
}

func TestExchangeRequestInfo(t *testing.T) {
	x := fakeRequest(t, "GET /p/q?x=1 HTTP/1.1\r\nHost: h\r\nCookie: a=1; EG=\"v2\"\r\nCookie: b=2\r\nX-User: u1\r\n\r\n")
	if string(x.Path()) != "/p/q" || string(x.Header("x-user")) != "u1" {
		t.Fatal("path or header")
	}
	if string(x.Cookie("EG")) != "v2" || string(x.Cookie("b")) != "2" || x.Cookie("zz") != nil {
		t.Fatal("cookie lookup")
	}
	var _ lb.RequestInfo = x
	if n := testing.AllocsPerRun(100, func() { _ = x.Cookie("b"); _ = x.Path() }); n != 0 {
		t.Fatalf("%v allocs per lookup", n)
	}
}
