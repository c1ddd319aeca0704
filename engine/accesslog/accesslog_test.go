// SPDX-License-Identifier: GPL-3.0-only

package accesslog

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/rs/zerolog"
)

// syncBuffer is an io.Writer that records every Write call.
type syncBuffer struct {
	mu     sync.Mutex
	b      bytes.Buffer
	writes int
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes++
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newLog(t testing.TB, o Options) *Log {
	t.Helper()
	l, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// accessLine writes the fields engine/client.go's record writes today.
func accessLine(b *Buffer, now time.Time, seq int64, target []byte) {
	b.Begin(now)
	b.Str("type", "access")
	b.Str("listener", "web")
	b.Bytes("client", clientIP)
	b.Bytes("method", methodGET)
	b.Bytes("target", target)
	b.Int("status", 200)
	b.Int("bytes", seq)
	b.Dur("duration", 1234567*time.Nanosecond)
	b.Str("route", "r0")
	b.Str("cluster", "app")
	b.Str("upstream", "127.0.0.1:9001")
	b.End()
}

var (
	clientIP  = []byte("192.0.2.10")
	methodGET = []byte("GET")
	target    = []byte("/api/v1/items?id=42&sort=desc")
)

// zerologLine is the line engine/client.go's record writes with zerolog.
func zerologLine(log zerolog.Logger, seq int64, target []byte) {
	log.Info().Str("type", "access").Str("listener", "web").
		Bytes("client", clientIP).Bytes("method", methodGET).Bytes("target", target).
		Int("status", 200).Int64("bytes", seq).Dur("duration", 1234567*time.Nanosecond).
		Str("route", "r0").Str("cluster", "app").Str("upstream", "127.0.0.1:9001").Msg("")
}

// lines splits output into lines, each checked to be one JSON object.
func lines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var got []map[string]any
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %d is not JSON (%v): %q", len(got), err, sc.Text())
		}
		got = append(got, m)
	}
	return got
}

// TestLineMatchesZerolog: the buffered line is byte for byte the line the
// zerolog logger of cmd/expressgateway wrote, so that whatever parses the
// access log today keeps working.
func TestLineMatchesZerolog(t *testing.T) {
	now := time.Date(2026, 3, 4, 5, 6, 7, 891011121, time.Local)
	old := zerolog.TimestampFunc
	zerolog.TimestampFunc = func() time.Time { return now }
	defer func() { zerolog.TimestampFunc = old }()
	var zl bytes.Buffer
	zerologLine(zerolog.New(&zl).Level(zerolog.InfoLevel).With().Timestamp().Logger(), 512, []byte("/a\"b\\c\x01\n\xffé"))

	out := &syncBuffer{}
	l := newLog(t, Options{Out: out})
	accessLine(l.NewBuffer(), now, 512, []byte("/a\"b\\c\x01\n\xffé"))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if out.String() != zl.String() {
		t.Fatalf("lines differ:\nbuffered %s\nzerolog  %s", out.String(), zl.String())
	}
}

// reference is what a JSON decoder must read back from a value: each byte
// that is not part of valid UTF-8 replaced by U+FFFD.
func reference(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			b.WriteRune(utf8.RuneError)
		} else {
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// checkValue formats v as a field and checks that the line is one valid
// JSON object holding exactly reference(v), with no raw control byte.
func checkValue(t *testing.T, v string) {
	t.Helper()
	line := appendValue([]byte(`{"v":"`), v)
	line = append(line, '}')
	if !utf8.Valid(line) {
		t.Fatalf("%q: line is not valid UTF-8: %q", v, line)
	}
	for _, c := range line {
		if c < 0x20 || c == 0x7f {
			t.Fatalf("%q: raw control byte %#x in %q", v, c, line)
		}
	}
	var m map[string]string
	if err := json.Unmarshal(line, &m); err != nil {
		t.Fatalf("%q: not JSON (%v): %q", v, err, line)
	}
	if want := reference(v); m["v"] != want {
		t.Fatalf("%q: decoded %q, want %q", v, m["v"], want)
	}
}

func TestHostileValuesStayValidJSON(t *testing.T) {
	var ctl strings.Builder
	for c := 0; c < 0x20; c++ {
		ctl.WriteByte(byte(c))
	}
	ctl.WriteByte(0x7f)
	for _, v := range []string{
		"", "plain", `"quoted"`, `back\slash`, `\"`, `","status":500,"x":"`, "}\n{\"level\":\"error\"}",
		ctl.String(), "\x00", "line\r\nbreak",
		"é", "日本", "😀", "\u2028\u2029", "\ufffd",
		"\xff", "\xfe\xff", "\x80", "\xbf\x80", // stray bytes
		"\xc0\xaf", "\xc1\xbf", "\xe0\x80\xaf", "\xf0\x80\x80\xaf", // overlong
		"\xed\xa0\x80", "\xed\xbf\xbf", // surrogates
		"\xf4\x90\x80\x80", "\xf5\x80\x80\x80", // above U+10FFFF
		"\xe2\x82", "a\xe2\x82", "\xf0\x9f\x98", // truncated
		"ok\xffok\"\x01é\xed\xa0\x80😀",
	} {
		checkValue(t, v)
	}
}

func FuzzAppendValue(f *testing.F) {
	for _, s := range []string{"", "a\"b", "\xff\xfe", "\xed\xa0\x80", "\x00\x1f\x7f", "é😀"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		if len(v) > MaxValueBytes {
			v = v[:MaxValueBytes]
		}
		checkValue(t, v)
	})
}

func TestLongValueIsCut(t *testing.T) {
	v := strings.Repeat("x", MaxValueBytes+100)
	line := string(appendValue(nil, v))
	if want := strings.Repeat("x", MaxValueBytes) + `..."`; line != want {
		t.Fatalf("cut value is %d bytes, want %d ending in ...", len(line), len(want))
	}
}

func TestDurAndInt(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0", time.Millisecond: "1", 1500 * time.Microsecond: "1.5", 250 * time.Microsecond: "0.25",
		1234567 * time.Nanosecond: "1.234567", time.Nanosecond: "0.000001", -2 * time.Millisecond: "-2",
		90 * time.Second: "90000",
	} {
		if got := string(appendMillis(nil, d)); got != want {
			t.Errorf("%v: %s, want %s", d, got, want)
		}
	}
}

// TestZeroAllocsPerLine: a warm Buffer formats and places a line without
// allocating, hostile bytes included.
func TestZeroAllocsPerLine(t *testing.T) {
	l := newLog(t, Options{Out: io.Discard})
	b := l.NewBuffer()
	now := time.Now()
	hostile := []byte("/a\"b\\c\x01\n\xff\xed\xa0\x80é")
	accessLine(b, now, 1, hostile) // warm: the time stamp and the line scratch
	var seq int64
	if n := testing.AllocsPerRun(10000, func() {
		seq++
		accessLine(b, now, seq, hostile)
	}); n != 0 {
		t.Fatalf("%v allocations per line, want 0", n)
	}
}

// blockedWriter blocks every Write until release is closed.
type blockedWriter struct {
	syncBuffer
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func (w *blockedWriter) Write(p []byte) (int, error) {
	w.once.Do(func() { close(w.entered) })
	<-w.release
	return w.syncBuffer.Write(p)
}

// TestDropsWhenWriterBlocked: with the writer stuck in a write, the loop
// keeps going at full speed: it fills its slabs, then drops and counts
// every further line. Once the writer is free, exactly the kept lines come
// out, in order, and written + dropped is everything.
func TestDropsWhenWriterBlocked(t *testing.T) {
	w := &blockedWriter{entered: make(chan struct{}), release: make(chan struct{})}
	l := newLog(t, Options{Out: w, BufferSize: MinBufferSize, FlushInterval: time.Hour})
	b := l.NewBuffer()
	now := time.Now()
	const total = 2000 // ~400 KiB of lines against 16 KiB of buffer
	accessLine(b, now, 0, target)
	<-w.entered // the first line was handed off at once; the writer is stuck on it
	start := time.Now()
	for i := int64(1); i < total; i++ {
		accessLine(b, now, i, target)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("the loop took %v for %d lines with the writer blocked: it waited", d, total)
	}
	st := l.Stats()
	if st.DroppedFull == 0 || st.DroppedFull >= total {
		t.Fatalf("dropped %d of %d lines with the writer blocked", st.DroppedFull, total)
	}
	close(w.release)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	got := lines(t, w.String())
	st = l.Stats()
	if uint64(len(got)) != st.Written || st.Written+st.DroppedFull != total {
		t.Fatalf("%d lines out, stats %+v, total %d", len(got), st, total)
	}
	last := -1.0
	for _, m := range got {
		if seq := m["bytes"].(float64); seq <= last {
			t.Fatalf("line %v after %v: order lost", seq, last)
		} else {
			last = seq
		}
	}
	t.Logf("writer blocked: %d lines kept, %d dropped", st.Written, st.DroppedFull)
}

// TestOneWritePerBatch: whatever the writer collects in one round, from
// any number of loops, goes out in one write call.
func TestOneWritePerBatch(t *testing.T) {
	w := &blockedWriter{entered: make(chan struct{}), release: make(chan struct{})}
	l := newLog(t, Options{Out: w, FlushInterval: time.Hour})
	b0, b1, b2 := l.NewBuffer(), l.NewBuffer(), l.NewBuffer()
	now := time.Now()
	accessLine(b0, now, 0, target) // handed off at once; the writer blocks on it
	<-w.entered
	for i := int64(1); i <= 100; i++ {
		accessLine(b1, now, i, target) // the first of each is handed off at once
		accessLine(b2, now, i, target)
	}
	close(w.release)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if n := len(lines(t, w.String())); n != 201 {
		t.Fatalf("%d lines, want 201", n)
	}
	// b0's line; the first lines of b1 and b2 (collected in one round);
	// the other 198 lines of both at Close.
	if w.writes != 3 {
		t.Fatalf("%d writes for three rounds, want 3", w.writes)
	}
}

// TestFlushHandsOffQuietLoop: the first line after a quiet spell goes out
// at once; later ones wait at most FlushInterval, for End or Flush.
func TestFlushHandsOffQuietLoop(t *testing.T) {
	out := &syncBuffer{}
	l := newLog(t, Options{Out: out, FlushInterval: 50 * time.Millisecond})
	b := l.NewBuffer()
	now := time.Now()
	accessLine(b, now, 1, target)
	waitFor(t, func() bool { return l.Stats().Written == 1 })
	accessLine(b, now, 2, target)
	time.Sleep(20 * time.Millisecond)
	if l.Stats().Written != 1 {
		t.Fatal("second line within the interval was handed off at once")
	}
	b.Flush(now.Add(10 * time.Millisecond))
	time.Sleep(20 * time.Millisecond)
	if l.Stats().Written != 1 {
		t.Fatal("Flush before the interval handed off")
	}
	b.Flush(now.Add(60 * time.Millisecond))
	waitFor(t, func() bool { return l.Stats().Written == 2 })
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestCloseDrainsEverything: lines still in the loops' active slabs (never
// handed off) and in handed-off slabs all come out on Close, in order.
func TestCloseDrainsEverything(t *testing.T) {
	out := &syncBuffer{}
	l := newLog(t, Options{Out: out, FlushInterval: time.Hour})
	bufs := []*Buffer{l.NewBuffer(), l.NewBuffer(), l.NewBuffer()}
	now := time.Now()
	for i := int64(0); i < 700; i++ {
		accessLine(bufs[i%3], now, i, target)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	got := lines(t, out.String())
	if len(got) != 700 || l.Stats().Written != 700 || l.Stats().Dropped() != 0 {
		t.Fatalf("%d lines after Close, stats %+v", len(got), l.Stats())
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// TestOrderWithinEachLoop: several loops log at once; each loop's lines
// come out in the order it wrote them, and none is lost or duplicated.
func TestOrderWithinEachLoop(t *testing.T) {
	out := &syncBuffer{}
	l := newLog(t, Options{Out: out, BufferSize: 4 << 20})
	const loops, per = 3, 5000
	var wg sync.WaitGroup
	for k := 0; k < loops; k++ {
		b := l.NewBuffer()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int64(0); i < per; i++ {
				b.Begin(time.Now())
				b.Int("loop", int64(k))
				b.Int("seq", i)
				b.End()
				if i%100 == 0 {
					b.Flush(time.Now())
				}
			}
		}()
	}
	wg.Wait()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	next := make([]float64, loops)
	got := lines(t, out.String())
	for _, m := range got {
		k := int(m["loop"].(float64))
		if seq := m["seq"].(float64); seq < next[k] {
			t.Fatalf("loop %d: seq %v after %v", k, seq, next[k]-1)
		} else {
			next[k] = seq + 1
		}
	}
	st := l.Stats()
	if uint64(len(got)) != st.Written || st.Written+st.Dropped() != loops*per {
		t.Fatalf("%d lines, stats %+v", len(got), st)
	}
	if st.Dropped() != 0 {
		t.Logf("note: %d lines dropped (slow writer on this machine)", st.Dropped())
	}
}

// TestReopenAfterRename is logrotate's dance: rename the file, signal,
// and the gateway writes to a new file at the same path; the renamed file
// holds every line written before, each complete.
func TestReopenAfterRename(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	l := newLog(t, Options{File: path, BufferSize: 4 << 20, FlushInterval: time.Millisecond})
	b := l.NewBuffer()
	write := func(from, to int64) {
		for i := from; i < to; i++ {
			accessLine(b, time.Now(), i, target)
		}
		time.Sleep(2 * time.Millisecond)
		b.Flush(time.Now())
		waitFor(t, func() bool { return l.Stats().Written+l.Stats().Dropped() == uint64(to) })
		if d := l.Stats().Dropped(); d != 0 {
			t.Fatalf("%d lines dropped with a 4 MiB buffer", d)
		}
	}
	write(0, 1000)
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	write(1000, 1500) // still into the renamed file, until Reopen
	if err := l.Reopen(); err != nil {
		t.Fatal(err)
	}
	write(1500, 2000)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	seqs := func(name string) []int64 {
		raw, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if len(raw) > 0 && raw[len(raw)-1] != '\n' {
			t.Fatalf("%s ends in a partial line", name)
		}
		var out []int64
		for _, m := range lines(t, string(raw)) {
			out = append(out, int64(m["bytes"].(float64)))
		}
		return out
	}
	old, cur := seqs(path+".1"), seqs(path)
	if len(old) != 1500 || old[0] != 0 || old[1499] != 1499 || len(cur) != 500 || cur[0] != 1500 || cur[499] != 1999 {
		t.Fatalf("rotated file has %d lines, new file %d", len(old), len(cur))
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o640 {
		t.Fatalf("new file: %v, mode %v", err, fi.Mode())
	}
}

// TestReopenWhileWriting rotates many times under a steady stream of lines:
// every line lands in exactly one file, whole, and reading the files in
// rotation order gives the lines in order.
func TestReopenWhileWriting(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	l := newLog(t, Options{File: path, BufferSize: 1 << 20, FlushInterval: time.Millisecond})
	b := l.NewBuffer()
	const total = 20000
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := int64(0); i < total; i++ {
			accessLine(b, time.Now(), i, target)
			if i%50 == 0 {
				b.Flush(time.Now())
				time.Sleep(50 * time.Microsecond)
			}
		}
	}()
	rotations := 0
	for running := true; running; {
		select {
		case <-done:
			running = false
		case <-time.After(5 * time.Millisecond):
			rotations++
			if err := os.Rename(path, fmt.Sprintf("%s.%03d", path, rotations)); err != nil {
				t.Fatal(err)
			}
			if err := l.Reopen(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	var all []int64
	for r := 1; r <= rotations+1; r++ {
		name := fmt.Sprintf("%s.%03d", path, r)
		if r == rotations+1 {
			name = path
		}
		raw, err := os.ReadFile(name)
		if errors.Is(err, os.ErrNotExist) && r == rotations+1 {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range lines(t, string(raw)) {
			all = append(all, int64(m["bytes"].(float64)))
		}
	}
	st := l.Stats()
	if uint64(len(all)) != st.Written || st.Written+st.Dropped() != total {
		t.Fatalf("%d lines in %d files, stats %+v", len(all), rotations+1, st)
	}
	for i := 1; i < len(all); i++ {
		if all[i] <= all[i-1] {
			t.Fatalf("line %d after %d across rotations", all[i], all[i-1])
		}
	}
	t.Logf("%d rotations, %d lines, %d dropped", rotations, len(all), st.Dropped())
}

// failingWriter fails every write.
type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestWriteErrorsCounted(t *testing.T) {
	var mu sync.Mutex
	var errs []error
	l := newLog(t, Options{Out: failingWriter{}, OnError: func(err error) { mu.Lock(); errs = append(errs, err); mu.Unlock() }})
	b := l.NewBuffer()
	for i := int64(0); i < 50; i++ {
		accessLine(b, time.Now(), i, target)
		b.Flush(time.Now().Add(time.Second))
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	st := l.Stats()
	if st.DroppedWriteError != 50 || st.Written != 0 {
		t.Fatalf("stats %+v, want 50 write errors", st)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "disk full") {
		t.Fatalf("OnError called %d times: %v", len(errs), errs)
	}
}

func TestTooLongLineDropped(t *testing.T) {
	out := &syncBuffer{}
	l := newLog(t, Options{Out: out, BufferSize: MinBufferSize})
	b := l.NewBuffer()
	b.Begin(time.Now())
	for i := 0; i < 3; i++ {
		b.Str("v", strings.Repeat("\x01", MaxValueBytes)) // 6 bytes each escaped: 3 × 48 KiB
	}
	b.End()
	accessLine(b, time.Now(), 1, target)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if st := l.Stats(); st.DroppedTooLong != 1 || st.Written != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestOptions(t *testing.T) {
	if _, err := New(Options{BufferSize: 1024}); err == nil {
		t.Fatal("a 1 KiB buffer was accepted")
	}
	if _, err := New(Options{File: filepath.Join(t.TempDir(), "missing", "access.log")}); err == nil {
		t.Fatal("a file in a missing directory was accepted")
	}
	l := newLog(t, Options{Out: io.Discard})
	if err := l.Reopen(); err != nil {
		t.Fatalf("Reopen without a file: %v", err)
	}
}
