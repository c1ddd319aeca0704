// SPDX-License-Identifier: GPL-3.0-only

package flame

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// testdata/gateway-cpu.pb.gz is a real 3s CPU profile of expressgateway
// under wrk, pulled from its admin /debug/pprof/profile. `go tool pprof -top`
// reports "Total samples = 1.19s" and Syscall6 at 79.83% flat.
func loadProfile(t *testing.T) *Profile {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "gateway-cpu.pb.gz"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParseMatchesPprof(t *testing.T) {
	p := loadProfile(t)
	if p.Unit != "nanoseconds" {
		t.Fatalf("unit %q", p.Unit)
	}
	if got := p.Total(); got != 1_190_000_000 {
		t.Fatalf("total %d ns, pprof says 1.19s", got)
	}
	top := TopFuncs(p, 1)
	if top[0].Name != "internal/runtime/syscall/linux.Syscall6" || top[0].FlatPct < 79.8 || top[0].FlatPct > 79.9 {
		t.Fatalf("top function: %+v", top[0])
	}
	// Inlined frames come out caller first: unix.Write (inline) calls unix.write.
	found := false
	for _, s := range p.Samples {
		if i := slices.Index(s.Stack, "golang.org/x/sys/unix.Write"); i >= 0 && i+1 < len(s.Stack) {
			found = true
			if s.Stack[i+1] != "golang.org/x/sys/unix.write" {
				t.Fatalf("after unix.Write comes %q", s.Stack[i+1])
			}
		}
		if len(s.Stack) > 0 && strings.HasPrefix(s.Stack[len(s.Stack)-1], "github.com/panjf2000/gnet/v2.(*eventloop).run") {
			t.Fatalf("stack is leaf first: %v", s.Stack)
		}
	}
	if !found {
		t.Fatal("no stack through unix.Write")
	}
}

func TestParseRejectsGarbage(t *testing.T) {
	for _, in := range [][]byte{{0x1f, 0x8b, 1, 2}, {0xff, 0xff, 0xff}, {0x0a, 0x10, 1}} {
		if _, err := Parse(in); err == nil {
			t.Errorf("%x parsed", in)
		}
	}
	data, _ := os.ReadFile(filepath.Join("testdata", "gateway-cpu.pb.gz"))
	for i := 0; i < len(data); i += 97 {
		_, _ = Parse(data[:i]) // must not panic
	}
}

func TestHTML(t *testing.T) {
	page := string(HTML(loadProfile(t), "test <profile>"))
	for _, want := range []string{"<!DOCTYPE html>", "test &lt;profile&gt;", "const D = {", "engine.(*clientConn).onTraffic", "Top functions"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(page, "<script src") || strings.Contains(page, "http://") || strings.Contains(page, "https://") {
		t.Error("page is not self-contained")
	}
}

func TestFolded(t *testing.T) {
	p := loadProfile(t)
	var total int64
	for _, line := range strings.Split(strings.TrimSpace(string(Folded(p))), "\n") {
		i := strings.LastIndexByte(line, ' ')
		var v int64
		for _, c := range line[i+1:] {
			v = v*10 + int64(c-'0')
		}
		total += v
		if !strings.Contains(line[:i], ";") {
			t.Fatalf("a one-frame stack? %q", line)
		}
	}
	if total != p.Total() {
		t.Fatalf("folded total %d, profile %d", total, p.Total())
	}
}
