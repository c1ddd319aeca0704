// SPDX-License-Identifier: GPL-3.0-only

// Package accesslog writes the gateway's access log without putting a write
// on the event loops' path.
//
// Each event loop owns one Buffer and formats its request lines into it with
// an append-style API (Begin, Str, Bytes, Int, Dur, End) that takes no lock
// and allocates nothing once warm. A Buffer has two slabs: the loop fills
// one while the other waits for, or comes back from, the process's single
// writer goroutine. The hand-off is two atomic pointers, done when the
// active slab is half full or FlushInterval has passed, and never waits: if
// the writer still holds the other slab, the loop keeps filling the active
// one, and once that is full it drops lines and counts them. The writer
// collects every handed-off slab, returns the slabs at once and writes the
// batch with one write call, to stderr (shared with the process log) or to
// a file that Reopen reopens after rotation. Close drains everything.
//
// Lines keep the shape of the zerolog lines they replace:
//
//	{"level":"info","type":"access",...,"time":"2006-01-02T15:04:05Z07:00"}
package accesslog

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// Defaults for Options.
const (
	// DefaultBufferSize is what one event loop holds (both slabs): at about
	// 250 bytes a line, 1000 lines, or 50 ms of a loop serving 20k
	// requests a second while the writer is slow.
	DefaultBufferSize = 256 << 10
	// MinBufferSize is the smallest Options.BufferSize accepted.
	MinBufferSize = 16 << 10
	// DefaultFlushInterval bounds how long a line waits in a loop's slab
	// when traffic is too light to fill half of it.
	DefaultFlushInterval = 100 * time.Millisecond
	// MaxValueBytes caps one string value; longer values are cut there and
	// end in "...", so one hostile field cannot take the line out of the
	// buffer. It matches the default max_request_line.
	MaxValueBytes = 8 << 10
)

// Drop reasons, the reason label of expressgateway_access_log_dropped_total.
const (
	// ReasonBufferFull: the loop's slabs were full (the writer is behind).
	ReasonBufferFull = "buffer_full"
	// ReasonTooLong: the line was longer than a slab.
	ReasonTooLong = "too_long"
	// ReasonWriteError: the write to the target failed.
	ReasonWriteError = "write_error"
)

// Options configure New.
type Options struct {
	// Out is where lines go when File is empty; nil means os.Stderr. When
	// the process log writes to the same stream, give both one writer that
	// serialises Write calls, so that a batch and a log line never
	// interleave in a pipe.
	Out io.Writer
	// File, when not empty, is the file lines are appended to (created
	// with mode 0640) and that Reopen reopens.
	File string
	// BufferSize is each Buffer's memory, both slabs together; 0 means
	// DefaultBufferSize, at least MinBufferSize.
	BufferSize int
	// FlushInterval is the longest a line waits in a slab before its
	// loop hands it to the writer (if the loop calls Flush or End); 0
	// means DefaultFlushInterval.
	FlushInterval time.Duration
	// Metrics receives the written and dropped counters; nil keeps them
	// in a private set (Stats still reads them).
	Metrics *metrics.Set
	// OnError, when set, is called from the writer goroutine when writing
	// starts to fail, and again after a success and a new failure; not
	// for every failed write.
	OnError func(error)
}

// Log is the process's access-log writer: one goroutine, fed by the
// Buffers of the event loops. NewBuffer, Reopen, Stats and Close are safe
// for concurrent use.
type Log struct {
	slab     int   // bytes per slab
	interval int64 // FlushInterval in nanoseconds
	onError  func(error)
	path     string

	mu      sync.Mutex // guards buffers
	buffers []*Buffer

	outMu sync.Mutex // serialises writes with Reopen; guards out and file
	out   io.Writer
	file  *os.File

	wake    chan struct{}
	done    chan struct{}
	exited  chan struct{}
	closeMu sync.Mutex // serialises Close and Reopen
	closed  bool       // guarded by closeMu
	failing bool       // writer goroutine only
	batch   []byte     // writer goroutine only

	written                                *metrics.Counter
	droppedFull, droppedLong, droppedWrite *metrics.Counter
}

// Stats are the counters of a Log.
type Stats struct {
	// Written is the number of lines written to the target.
	Written uint64
	// DroppedFull, DroppedTooLong and DroppedWriteError are lines lost,
	// by reason.
	DroppedFull, DroppedTooLong, DroppedWriteError uint64
}

// Dropped is every line lost, whatever the reason.
func (s Stats) Dropped() uint64 { return s.DroppedFull + s.DroppedTooLong + s.DroppedWriteError }

// New starts the writer goroutine. It opens Options.File, if set.
func New(o Options) (*Log, error) {
	size := o.BufferSize
	if size == 0 {
		size = DefaultBufferSize
	}
	if size < MinBufferSize {
		return nil, fmt.Errorf("accesslog: buffer size %d is below %d", size, MinBufferSize)
	}
	interval := o.FlushInterval
	if interval <= 0 {
		interval = DefaultFlushInterval
	}
	set := o.Metrics
	if set == nil {
		set = metrics.NewSet()
	}
	l := &Log{
		slab:     size / 2,
		interval: int64(interval),
		onError:  o.OnError,
		path:     o.File,
		out:      o.Out,
		wake:     make(chan struct{}, 1),
		done:     make(chan struct{}),
		exited:   make(chan struct{}),
		written:  set.GetOrCreateCounter(`expressgateway_access_log_written_total`),
		droppedFull: set.GetOrCreateCounter(fmt.Sprintf(`expressgateway_access_log_dropped_total{reason=%q}`,
			ReasonBufferFull)),
		droppedLong: set.GetOrCreateCounter(fmt.Sprintf(`expressgateway_access_log_dropped_total{reason=%q}`,
			ReasonTooLong)),
		droppedWrite: set.GetOrCreateCounter(fmt.Sprintf(`expressgateway_access_log_dropped_total{reason=%q}`,
			ReasonWriteError)),
	}
	if l.out == nil {
		l.out = os.Stderr
	}
	if o.File != "" {
		f, err := openFile(o.File)
		if err != nil {
			return nil, err
		}
		l.file, l.out = f, f
	}
	go l.run()
	return l, nil
}

func openFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("accesslog: open %s: %w", path, err)
	}
	return f, nil
}

// NewBuffer returns a Buffer for one event loop; it is owned by that loop
// from then on. Both slabs are allocated now.
func (l *Log) NewBuffer() *Buffer {
	b := &Buffer{l: l, line: make([]byte, 0, 1024), stamp: make([]byte, 0, 40)}
	b.cur = &slab{buf: make([]byte, 0, l.slab)}
	b.spare.Store(&slab{buf: make([]byte, 0, l.slab)})
	l.mu.Lock()
	l.buffers = append(l.buffers, b)
	l.mu.Unlock()
	return b
}

// Reopen closes the file and opens the same path again: after logrotate
// renamed it (SIGUSR1 in the binary), lines go to a new file, and the old
// one holds complete lines only. Without Options.File, or after Close, it
// does nothing.
func (l *Log) Reopen() error {
	if l.path == "" {
		return nil
	}
	l.closeMu.Lock()
	defer l.closeMu.Unlock()
	if l.closed {
		return nil
	}
	f, err := openFile(l.path)
	if err != nil {
		return fmt.Errorf("accesslog: reopen: %w", err)
	}
	l.outMu.Lock()
	old := l.file
	l.file, l.out = f, f
	l.outMu.Unlock()
	if old != nil {
		if err := old.Close(); err != nil {
			return fmt.Errorf("accesslog: close the rotated file: %w", err)
		}
	}
	return nil
}

// Stats reads the counters.
func (l *Log) Stats() Stats {
	return Stats{
		Written:           l.written.Get(),
		DroppedFull:       l.droppedFull.Get(),
		DroppedTooLong:    l.droppedLong.Get(),
		DroppedWriteError: l.droppedWrite.Get(),
	}
}

// Close writes every line still held, including each Buffer's active slab,
// and closes the file. Call it after the event loops stopped using their
// Buffers; it waits for the last write. Later calls return nil.
func (l *Log) Close() error {
	l.closeMu.Lock()
	defer l.closeMu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	close(l.done)
	<-l.exited
	l.outMu.Lock()
	defer l.outMu.Unlock()
	if l.file != nil {
		if err := l.file.Close(); err != nil {
			return fmt.Errorf("accesslog: close: %w", err)
		}
		l.file = nil
	}
	return nil
}

// signal wakes the writer; it never blocks.
func (l *Log) signal() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// run is the writer goroutine.
func (l *Log) run() {
	defer close(l.exited)
	for {
		select {
		case <-l.wake:
			l.drain(false)
		case <-l.done:
			l.drain(false) // what was handed off first, then the rest
			l.drain(true)
			return
		}
	}
}

// drain collects the handed-off slab of every Buffer (and, when final, its
// active slab too), gives the slabs back, and writes the batch.
func (l *Log) drain(final bool) {
	l.mu.Lock()
	bufs := l.buffers
	l.mu.Unlock()
	l.batch = l.batch[:0]
	lines := 0
	for _, b := range bufs {
		if s := b.full.Swap(nil); s != nil {
			l.batch = append(l.batch, s.buf...)
			lines += s.lines
			s.reset()
			b.spare.Store(s)
		}
		if final {
			// The loops have stopped: their active slabs are ours.
			s := b.cur
			l.batch = append(l.batch, s.buf...)
			lines += s.lines
			s.reset()
		}
	}
	if len(l.batch) > 0 {
		l.write(l.batch, lines)
	}
}

func (l *Log) write(p []byte, lines int) {
	l.outMu.Lock()
	n, err := l.out.Write(p)
	l.outMu.Unlock()
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	if err == nil {
		l.written.Add(lines)
		l.failing = false
		return
	}
	ok := bytes.Count(p[:n], newline)
	l.written.Add(ok)
	l.droppedWrite.Add(lines - ok)
	if !l.failing && l.onError != nil {
		l.onError(fmt.Errorf("accesslog: write: %w", err))
	}
	l.failing = true
}

var newline = []byte{'\n'}

// slab is one of a Buffer's two halves.
type slab struct {
	buf   []byte
	lines int
}

func (s *slab) reset() {
	s.buf = s.buf[:0]
	s.lines = 0
}
