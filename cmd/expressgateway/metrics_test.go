// SPDX-License-Identifier: GPL-3.0-only

package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// docFamily is one row of a family table in METRICS.md.
type docFamily struct {
	typ     string // counter, gauge, histogram, summary
	help    string // the first sentence of the meaning, backticks removed
	section string // the heading the table is under
	// condition is the heading of a "**Conditional:**" paragraph the table
	// follows (its families are exported only when that holds), or "".
	condition string
}

// metricsDoc parses the family tables of METRICS.md: every table whose
// header starts with "| family |".
func metricsDoc(t *testing.T) map[string]docFamily {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "METRICS.md"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]docFamily{}
	var heading, condition string
	inTable := false
	for n, line := range strings.Split(string(b), "\n") {
		switch {
		case strings.HasPrefix(line, "#"):
			heading = strings.TrimSpace(strings.TrimLeft(line, "#"))
			condition, inTable = "", false
		case strings.HasPrefix(line, "**Conditional:**"):
			condition = heading
		case strings.HasPrefix(line, "| family |"):
			inTable = true
		case inTable && strings.HasPrefix(line, "|---"):
		case inTable && strings.HasPrefix(line, "|"):
			cells := splitRow(line)
			if len(cells) != 4 {
				t.Fatalf("METRICS.md:%d: %d cells, want 4 (family, type, labels, meaning)", n+1, len(cells))
			}
			name := strings.Trim(cells[0], "`")
			if _, dup := out[name]; dup {
				t.Errorf("METRICS.md:%d: %s listed twice", n+1, name)
			}
			out[name] = docFamily{typ: cells[1], help: firstSentence(cells[3]), section: heading, condition: condition}
		default:
			inTable = false
		}
	}
	if len(out) < 20 {
		t.Fatalf("METRICS.md: only %d families parsed", len(out))
	}
	return out
}

// splitRow splits a Markdown table row into trimmed cells.
func splitRow(line string) []string {
	line = strings.TrimSpace(line)
	line = strings.TrimSuffix(strings.TrimPrefix(line, "|"), "|")
	cells := strings.Split(line, "|")
	for i := range cells {
		cells[i] = strings.TrimSpace(cells[i])
	}
	return cells
}

// firstSentence is what a family's HELP line says: its meaning up to the
// first full stop followed by a space, without Markdown backticks.
func firstSentence(meaning string) string {
	s := strings.ReplaceAll(meaning, "`", "")
	if i := strings.Index(s, ". "); i >= 0 {
		s = s[:i+1]
	}
	return strings.TrimSpace(s)
}

func repoRoot(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(filepath.Dir(wd)) // cmd/expressgateway
}

// scrapedFamily is what a scrape says of one family.
type scrapedFamily struct {
	typ, help string
	helpSeen  bool
	samples   int
}

// parseScrape reads the HELP and TYPE lines and counts the samples of
// each family in a Prometheus text scrape.
func parseScrape(t *testing.T, text string) map[string]*scrapedFamily {
	t.Helper()
	fams := map[string]*scrapedFamily{}
	get := func(name string) *scrapedFamily {
		f := fams[name]
		if f == nil {
			f = &scrapedFamily{}
			fams[name] = f
		}
		return f
	}
	var cur string
	for line := range strings.Lines(text) {
		line = strings.TrimSuffix(line, "\n")
		switch {
		case strings.HasPrefix(line, "# HELP "):
			name, help, _ := strings.Cut(strings.TrimPrefix(line, "# HELP "), " ")
			f := get(name)
			f.help, f.helpSeen = help, true
			cur = name
		case strings.HasPrefix(line, "# TYPE "):
			name, typ, _ := strings.Cut(strings.TrimPrefix(line, "# TYPE "), " ")
			if name != cur {
				t.Errorf("TYPE %s does not follow its HELP line (after HELP %s)", name, cur)
			}
			get(name).typ = typ
		case line == "" || strings.HasPrefix(line, "#"):
		default:
			name := line[:strings.IndexAny(line, "{ ")]
			fam := name
			if f := fams[cur]; f != nil && (f.typ == "histogram" || f.typ == "summary") {
				fam = cur // _bucket, _sum, _count
			}
			if fam != cur {
				t.Errorf("sample %q outside its family's HELP and TYPE (after %s)", line, cur)
			}
			get(fam).samples++
		}
	}
	return fams
}

// checkScrapeAgainstDoc requires every family of doc that want selects to
// be in the scrape with the documented type and HELP text, and every
// family in the scrape to be documented with that type and HELP text.
func checkScrapeAgainstDoc(t *testing.T, scrape string, doc map[string]docFamily, want func(docFamily) bool) {
	t.Helper()
	got := parseScrape(t, scrape)
	var missing []string
	for name, d := range doc {
		if want(d) && got[name] == nil {
			missing = append(missing, name+" ("+d.section+")")
		}
	}
	sort.Strings(missing)
	for _, m := range missing {
		t.Errorf("METRICS.md lists %s; the scrape does not export it", m)
	}
	names := make([]string, 0, len(got))
	for name := range got {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		f := got[name]
		d, ok := doc[name]
		switch {
		case !ok:
			t.Errorf("the scrape exports %s (TYPE %s, HELP %q); METRICS.md does not list it", name, f.typ, f.help)
			continue
		case !f.helpSeen || f.help == "":
			t.Errorf("%s: no HELP text", name)
		case f.help != d.help:
			t.Errorf("%s: HELP %q, METRICS.md says %q", name, f.help, d.help)
		}
		if f.typ != d.typ {
			t.Errorf("%s: TYPE %q, METRICS.md says %q", name, f.typ, d.typ)
		}
		if f.samples == 0 {
			t.Errorf("%s: HELP and TYPE but no sample", name)
		}
	}
}

// promtool returns the path of promtool (Debian package prometheus).
func promtool(t *testing.T) string {
	t.Helper()
	return requireTool(t, "promtool", "prometheus")
}

// requireTool returns the path of the command name, which the Debian
// package pkg provides. It skips the test when the command is missing,
// except in CI (CI set), where .ci/deps.sh installs it and a missing
// command fails.
func requireTool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s not found in CI (the Debian package %s provides it; .ci/deps.sh installs it): %v", name, pkg, err)
	}
	t.Skipf("%s not installed (apt-get install %s): %v", name, pkg, err)
	return ""
}

// promtoolCheckMetrics runs `promtool check metrics` on a scrape and fails
// on any problem it reports.
func promtoolCheckMetrics(t *testing.T, scrape string) {
	t.Helper()
	cmd := exec.Command(promtool(t), "check", "metrics")
	cmd.Stdin = strings.NewReader(scrape)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) != 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// tcpEcho serves a loopback TCP echo; udpEcho a loopback UDP echo.
func tcpEcho(t *testing.T) string {
	t.Helper()
	ln := localListener(t)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer func() { _ = c.Close() }()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

// sinkOrigin is an HTTP upstream that reads the whole body and answers
// "ok"; /healthz answers too.
func sinkOrigin(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, "ok")
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// rawStatusLine sends raw bytes on a new connection to addr and returns the
// status line of the answer.
func rawStatusLine(t *testing.T, addr, raw string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	if err := c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	status, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("no answer to %q: %v", raw[:min(len(raw), 40)], err)
	}
	return strings.TrimSpace(status)
}

// TestMetricsMatchDoc starts the binary with an http listener, a tcp and a
// udp listener and clusters with http and tcp health checks, drives each
// (a proxied request, a 404, a refused request, an upstream that is down,
// a body long enough to leave the event loop, a tcp and a udp echo), then
// scrapes /metrics: every unconditional family of METRICS.md must be
// there with its type and HELP text, every exported family must be in
// METRICS.md, and promtool check metrics must find nothing to say. The
// conditional families of METRICS.md are the XDP ones (checked by
// TestXDPThroughBinary where XDP can run) and the host-dependent process
// ones (checked when exported).
func TestMetricsMatchDoc(t *testing.T) {
	doc := metricsDoc(t)
	origin, dead := sinkOrigin(t), freeAddr(t)
	tcpUp, udpUp := tcpEcho(t), udpEcho(t)
	web, tcpL, udpL, admin := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	cfg := fmt.Sprintf(`
[admin]
listen = %q
[log]
access_log = false

[[listeners]]
name = "web"
listen = %q
[listeners.limits]
max_inflight_bytes = "4KiB"
[[listeners.routes]]
host = "app.test"
cluster = "app"
[[listeners.routes]]
host = "dead.test"
cluster = "dead"

[[listeners]]
name = "tcp"
listen = %q
protocol = "tcp"
cluster = "tcp_echo"

[[listeners]]
name = "udp"
listen = %q
protocol = "udp"
cluster = "udp_echo"

[[clusters]]
name = "app"
endpoints = [ { address = %q } ]
[clusters.health_check]
type = "http"
path = "/healthz"
interval = "100ms"
timeout = "50ms"
healthy_threshold = 1

[[clusters]]
name = "dead"
endpoints = [ { address = %q } ]

[[clusters]]
name = "tcp_echo"
endpoints = [ { address = %q } ]
[clusters.health_check]
type = "tcp"
interval = "100ms"
timeout = "50ms"
healthy_threshold = 1

[[clusters]]
name = "udp_echo"
endpoints = [ { address = %q } ]
`, admin, web, tcpL, udpL, origin, dead, tcpUp, udpUp)
	startBinary(t, cfg, web)

	// http: proxied, no route (404), refused by the codec (400), upstream
	// down (502), and a body longer than max_inflight_bytes (detached).
	for _, tc := range []struct{ raw, want string }{
		{"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n", "HTTP/1.1 200"},
		{"GET / HTTP/1.1\r\nHost: nowhere.test\r\n\r\n", "HTTP/1.1 404"},
		{"POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "HTTP/1.1 400"},
		{"GET / HTTP/1.1\r\nHost: dead.test\r\n\r\n", "HTTP/1.1 502"},
		{"POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 65536\r\n\r\n" + strings.Repeat("b", 65536), "HTTP/1.1 200"},
	} {
		if got := rawStatusLine(t, web, tc.raw); !strings.HasPrefix(got, tc.want) {
			t.Errorf("%q: %q, want %s", tc.raw[:min(len(tc.raw), 40)], got, tc.want)
		}
	}
	// HTTP/2 on the same port: a request, a stream the client resets, a
	// GOAWAY from the client (the RST_STREAM and GOAWAY families).
	f := dialH2(t, web)
	f.headers(t, 1, true, ":method", "GET", ":scheme", "http", ":authority", "app.test", ":path", "/")
	if got := f.response(t, 1); got != "200" {
		t.Errorf("h2 request: %s", got)
	}
	f.headers(t, 3, false, ":method", "POST", ":scheme", "http", ":authority", "app.test", ":path", "/")
	if err := f.fr.WriteRSTStream(3, http2.ErrCodeCancel); err != nil {
		t.Fatal(err)
	}
	if err := f.fr.WriteGoAway(3, http2.ErrCodeNo, nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // the gateway reads the RST_STREAM and the GOAWAY

	c, err := net.DialTimeout("tcp", tcpL, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	if err := c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(c, "ping"); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, make([]byte, 4)); err != nil {
		t.Fatalf("tcp echo: %v", err)
	}
	u, err := net.Dial("udp", udpL)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = u.Close() }()
	if err := u.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(u, "ping"); err != nil {
		t.Fatal(err)
	}
	if _, err := u.Read(make([]byte, 16)); err != nil {
		t.Fatalf("udp echo: %v", err)
	}

	_, scrape := get(t, "http://"+admin+"/metrics")
	checkScrapeAgainstDoc(t, scrape, doc, func(d docFamily) bool { return d.condition == "" })
	t.Run("promtool", func(t *testing.T) { promtoolCheckMetrics(t, scrape) })
	if t.Failed() {
		t.Logf("scrape:\n%s", scrape)
	}
}

// TestMetricsDocConditions pins which METRICS.md tables are conditional,
// so that a table cannot slip out of the check above by a stray
// "**Conditional:**" paragraph. Each is checked where it is exported: TLS
// by TestTLSFront and TestTLSUpstream, HTTP/3 by TestH3, PROXY protocol by
// TestProxyProtocol, QUIC passthrough by TestQUICPassthroughBinary, XDP by
// TestXDPThroughBinary.
func TestMetricsDocConditions(t *testing.T) {
	conds := map[string]bool{}
	for _, d := range metricsDoc(t) {
		if d.condition != "" {
			conds[d.condition] = true
		}
	}
	got := make([]string, 0, len(conds))
	for c := range conds {
		got = append(got, c)
	}
	sort.Strings(got)
	// The HA table is checked by TestHAOnEtcd against a node's scrape.
	if want := []string{"Control plane (HA on etcd)", "HTTP/3", "Host-dependent", "PROXY protocol", "QUIC passthrough", "TLS", "XDP (L4)"}; !slices.Equal(got, want) {
		t.Fatalf("conditional sections %q, want %q", got, want)
	}
}
