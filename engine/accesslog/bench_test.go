// SPDX-License-Identifier: GPL-3.0-only

package accesslog

import (
	"io"
	"os"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// sinks are the targets both ways of logging write to: /dev/null (the
// formatting and the syscall) and a pipe drained by a goroutine (stderr
// under systemd or a container runtime: a real copy into a pipe buffer).
func sinks(b *testing.B) map[string]func() (io.Writer, func()) {
	return map[string]func() (io.Writer, func()){
		"devnull": func() (io.Writer, func()) {
			f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
			if err != nil {
				b.Fatal(err)
			}
			return f, func() { _ = f.Close() }
		},
		"pipe": func() (io.Writer, func()) {
			r, w, err := os.Pipe()
			if err != nil {
				b.Fatal(err)
			}
			done := make(chan struct{})
			go func() { _, _ = io.Copy(io.Discard, r); close(done) }()
			return w, func() { _ = w.Close(); <-done; _ = r.Close() }
		},
	}
}

// BenchmarkAccessLine compares, per request line, today's synchronous
// zerolog line (one write syscall each, on the event loop) with the
// buffered line (formatted on the loop, written in batches by the writer
// goroutine). ns/op is the loop's cost (zerolog reads the clock itself;
// the buffered line is given the loop's); the buffered case includes Close,
// so the writer's work is inside the measured time too (on 2 cores it runs
// beside the benchmark loop), and reports drops/op (0 when it keeps up).
func BenchmarkAccessLine(b *testing.B) {
	for _, name := range []string{"devnull", "pipe"} {
		open := sinks(b)[name]
		b.Run("zerolog/"+name, func(b *testing.B) {
			w, done := open()
			defer done()
			log := zerolog.New(w).Level(zerolog.InfoLevel).With().Timestamp().Logger()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				zerologLine(log, int64(i), target)
			}
		})
		b.Run("buffered/"+name, func(b *testing.B) {
			w, done := open()
			defer done()
			l, err := New(Options{Out: w, BufferSize: 4 << 20})
			if err != nil {
				b.Fatal(err)
			}
			buf := l.NewBuffer()
			accessLine(buf, time.Now(), 0, target)
			b.ReportAllocs()
			b.ResetTimer()
			now := time.Now()
			for i := 0; i < b.N; i++ {
				// The engine passes the clock its loop already read for
				// the callback (timers, durations): no clock read here.
				if i&63 == 0 {
					now = time.Now()
				}
				accessLine(buf, now, int64(i), target)
			}
			if err := l.Close(); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			b.ReportMetric(float64(l.Stats().Dropped())/float64(b.N), "drops/op")
		})
	}
}
