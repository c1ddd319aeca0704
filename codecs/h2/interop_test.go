// SPDX-License-Identifier: GPL-3.0-only

package h2

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"strconv"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// xside is the other end played by x/net/http2's Framer and hpack, in
// memory: fromUs holds what our Conn wrote, toUs what the Framer wrote.
type xside struct {
	t      *testing.T
	fromUs bytes.Buffer
	toUs   bytes.Buffer
	fr     *http2.Framer
	encBuf bytes.Buffer
	enc    *hpack.Encoder

	// Flow control as the x/net side sees our windows.
	sendConn   int64
	sendStream map[uint32]int64
	initial    int64 // our SETTINGS_INITIAL_WINDOW_SIZE once read
	maxFrame   int

	heads   map[uint32][]hpack.HeaderField
	bodies  map[uint32]*bytes.Buffer
	ended   map[uint32]bool
	acked   bool
	goaways int
}

func newXside(t *testing.T) *xside {
	x := &xside{t: t, sendConn: defaultWindow, sendStream: map[uint32]int64{}, initial: defaultWindow, maxFrame: defaultMaxFrame,
		heads: map[uint32][]hpack.HeaderField{}, bodies: map[uint32]*bytes.Buffer{}, ended: map[uint32]bool{}}
	x.fr = http2.NewFramer(&x.toUs, &x.fromUs)
	x.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	x.fr.MaxHeaderListSize = 1 << 20
	x.enc = hpack.NewEncoder(&x.encBuf)
	return x
}

func (x *xside) block(kv ...string) []byte {
	x.encBuf.Reset()
	for i := 0; i+1 < len(kv); i += 2 {
		_ = x.enc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
	}
	return append([]byte{}, x.encBuf.Bytes()...)
}

// read processes every frame our Conn wrote. consume says whether DATA is
// acknowledged (with WINDOW_UPDATE) as soon as it is read.
func (x *xside) read(consume bool) {
	for {
		f, err := x.fr.ReadFrame()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			x.t.Fatalf("x/net cannot read our output: %v", err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if f.IsAck() {
				x.acked = true
				continue
			}
			_ = f.ForeachSetting(func(s http2.Setting) error {
				switch s.ID {
				case http2.SettingInitialWindowSize:
					for id := range x.sendStream {
						x.sendStream[id] += int64(s.Val) - x.initial
					}
					x.initial = int64(s.Val)
				case http2.SettingMaxFrameSize:
					x.maxFrame = int(s.Val)
				}
				return nil
			})
			_ = x.fr.WriteSettingsAck()
		case *http2.WindowUpdateFrame:
			if f.StreamID == 0 {
				x.sendConn += int64(f.Increment)
			} else {
				x.sendStream[f.StreamID] += int64(f.Increment)
			}
		case *http2.MetaHeadersFrame:
			x.heads[f.StreamID] = append(x.heads[f.StreamID], f.Fields...)
			if f.StreamEnded() {
				x.ended[f.StreamID] = true
			}
		case *http2.DataFrame:
			if x.bodies[f.StreamID] == nil {
				x.bodies[f.StreamID] = &bytes.Buffer{}
			}
			x.bodies[f.StreamID].Write(f.Data())
			if consume && len(f.Data()) > 0 {
				_ = x.fr.WriteWindowUpdate(0, uint32(len(f.Data())))
				if !f.StreamEnded() {
					_ = x.fr.WriteWindowUpdate(f.StreamID, uint32(len(f.Data())))
				}
			}
			if f.StreamEnded() {
				x.ended[f.StreamID] = true
			}
		case *http2.GoAwayFrame:
			x.goaways++
		case *http2.PingFrame:
			if !f.IsAck() {
				_ = x.fr.WritePing(true, f.Data)
			}
		case *http2.RSTStreamFrame:
			x.t.Fatalf("our side reset stream %d: %v", f.StreamID, f.ErrCode)
		}
	}
}

// sendBody writes as much of body as our windows allow, from *off.
func (x *xside) sendBody(id uint32, body []byte, off *int) {
	for *off < len(body) {
		n := min(int64(len(body)-*off), x.sendConn, x.sendStream[id], int64(x.maxFrame))
		if n <= 0 {
			return
		}
		end := *off+int(n) == len(body)
		_ = x.fr.WriteData(id, end, body[*off:*off+int(n)])
		*off += int(n)
		x.sendConn -= n
		x.sendStream[id] -= n
	}
}

func fieldsMap(fs []hpack.HeaderField) map[string]string {
	m := map[string]string{}
	for _, f := range fs {
		m[f.Name] = f.Value
	}
	return m
}

// interopHandler is our owner: it collects a body, consumes it one pump
// late (as a proxy that forwards before it gives credit back) and sends a
// body as windows open.
type interopHandler struct {
	NopHandler
	c        *Conn
	heads    map[uint32]*Head
	bodies   map[uint32]*bytes.Buffer
	ended    map[uint32]bool
	unacked  map[uint32]int
	sending  map[uint32][]byte
	onHead   func(id uint32)
	finished map[uint32]bool
	trailers map[uint32]*Head
}

func newInteropHandler() *interopHandler {
	return &interopHandler{heads: map[uint32]*Head{}, bodies: map[uint32]*bytes.Buffer{}, ended: map[uint32]bool{},
		unacked: map[uint32]int{}, sending: map[uint32][]byte{}, finished: map[uint32]bool{}, trailers: map[uint32]*Head{}}
}

func (h *interopHandler) OnHeaders(id uint32, hd *Head, end bool) {
	if hd.Kind == KindInformational {
		return
	}
	if hd.Kind == KindTrailers {
		h.trailers[id] = cloneHead(hd)
		h.ended[id] = true
		return
	}
	h.heads[id] = cloneHead(hd)
	h.ended[id] = h.ended[id] || end
	if h.onHead != nil {
		h.onHead(id)
	}
}

func (h *interopHandler) OnData(id uint32, data []byte, end bool) {
	if h.bodies[id] == nil {
		h.bodies[id] = &bytes.Buffer{}
	}
	h.bodies[id].Write(data)
	h.unacked[id] += len(data)
	h.ended[id] = h.ended[id] || end
}

func (h *interopHandler) OnWindowUpdate(uint32) { h.push() }
func (h *interopHandler) OnSettings(Settings)   { h.push() }
func (h *interopHandler) OnStreamError(e *StreamError) {
	panic(e.Error())
}

// push writes pending bodies as far as the windows go.
func (h *interopHandler) push() {
	for id, rest := range h.sending {
		n, err := h.c.WriteData(id, rest, true)
		if err != nil {
			panic(err)
		}
		h.sending[id] = rest[n:]
		if n == len(rest) {
			delete(h.sending, id)
			h.finished[id] = true
		}
	}
}

// consume returns credit for everything received so far.
func (h *interopHandler) consume() {
	for id, n := range h.unacked {
		h.c.Consumed(id, n)
		delete(h.unacked, id)
	}
}

func randomBody(n int, seed uint64) []byte {
	b := make([]byte, n)
	rng := rand.New(rand.NewPCG(seed, seed))
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// TestInteropServerRole: x/net's Framer plays a client that uploads 1 MiB
// and downloads 1 MiB through our server-role Conn, each side respecting
// the other's flow control.
func TestInteropServerRole(t *testing.T) {
	x := newXside(t)
	h := newInteropHandler()
	c := NewConn(RoleServer, Limits{}, h, t0)
	h.c = c
	upload, download := randomBody(1<<20, 1), randomBody(1<<20, 2)
	h.onHead = func(id uint32) {}

	// Client preface, SETTINGS with a small window so our sending is
	// bound by its WINDOW_UPDATEs, and the request head.
	x.toUs.WriteString(http2.ClientPreface)
	_ = x.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 32768}, http2.Setting{ID: http2.SettingEnablePush, Val: 0})
	_ = x.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, EndHeaders: true, BlockFragment: x.block(
		":method", "POST", ":scheme", "https", ":authority", "example.com", ":path", "/upload",
		"content-length", strconv.Itoa(len(upload)), "user-agent", "x/net")})
	x.sendStream[1] = x.initial
	off := 0
	responded := false
	for round := 0; ; round++ {
		if round > 2000 {
			t.Fatal("no progress")
		}
		// Our side reads what the client wrote, answers, then consumes what
		// it forwarded last round.
		in := x.toUs.Bytes()
		n, err := c.Feed(in, t0)
		if err != nil || n != len(in) {
			t.Fatalf("Feed: %d of %d: %v", n, len(in), err)
		}
		x.toUs.Reset()
		if h.ended[1] && !responded {
			responded = true
			if err := c.WriteHeaders(1, &Head{Status: 200, Fields: []Field{{Name: []byte("content-length"), Value: []byte(strconv.Itoa(len(download)))}}}, false); err != nil {
				t.Fatal(err)
			}
			h.sending[1] = download
			h.push()
		}
		h.consume()
		x.fromUs.Write(c.Output())
		c.Advance(len(c.Output()))
		x.read(true)
		x.sendBody(1, upload, &off)
		if x.ended[1] {
			// Flow control paced both bodies: one round trip cannot carry
			// more than a window.
			if round < 16 {
				t.Fatalf("done in %d rounds: windows not enforced?", round)
			}
			t.Logf("%d rounds", round)
			break
		}
	}
	if !bytes.Equal(h.bodies[1].Bytes(), upload) {
		t.Fatalf("upload differs: %d octets", h.bodies[1].Len())
	}
	if sha256.Sum256(x.bodies[1].Bytes()) != sha256.Sum256(download) {
		t.Fatalf("download differs: %d octets", x.bodies[1].Len())
	}
	if got := fieldsMap(x.heads[1]); got[":status"] != "200" || got["content-length"] != "1048576" {
		t.Fatalf("response head %v", got)
	}
	if hd := h.heads[1]; string(hd.Path) != "/upload" || hd.ContentLength != 1<<20 || string(hd.Get("user-agent")) != "x/net" {
		t.Fatalf("request head %s", headString(hd))
	}
	if !x.acked || c.SettingsAckOverdue(t0.Add(1e12), 1) || c.ActiveStreams() != 0 {
		t.Fatal("handshake or stream state left over")
	}
}

// TestInteropClientRole: our client-role Conn uploads 1 MiB to x/net's
// Framer playing a server with a small window, and downloads 1 MiB.
func TestInteropClientRole(t *testing.T) {
	x := newXside(t)
	h := newInteropHandler()
	c := NewConn(RoleClient, Limits{}, h, t0)
	h.c = c
	upload, download := randomBody(1<<20, 3), randomBody(1<<20, 4)

	// The server's preface: SETTINGS with the default window.
	_ = x.fr.WriteSettings(http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: 10})
	feedAll(t, c, x.toUs.Bytes())
	x.toUs.Reset()
	id, err := c.WriteRequest(&Head{Method: []byte("PUT"), Scheme: []byte("http"), Authority: []byte("upstream:8080"), Path: []byte("/blob"),
		Fields: []Field{{Name: []byte("Content-Length"), Value: []byte(strconv.Itoa(len(upload)))}, {Name: []byte("Connection"), Value: []byte("keep-alive")}}}, false)
	if err != nil {
		t.Fatal(err)
	}
	h.sending[id] = upload
	h.push()
	// Our preface precedes everything we write.
	out := c.Output()
	if !bytes.HasPrefix(out, []byte(http2.ClientPreface)) {
		t.Fatal("no preface")
	}
	c.Advance(len(http2.ClientPreface))
	responded := false
	off := 0
	for round := 0; ; round++ {
		if round > 2000 {
			t.Fatal("no progress")
		}
		x.fromUs.Write(c.Output())
		c.Advance(len(c.Output()))
		x.read(true)
		if x.ended[id] && !responded {
			responded = true
			x.sendStream[id] += x.initial
			_ = x.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, EndHeaders: true, BlockFragment: x.block(
				":status", "201", "content-length", strconv.Itoa(len(download)))})
		}
		if responded {
			x.sendBody(id, download, &off)
		}
		in := x.toUs.Bytes()
		if n, err := c.Feed(in, t0); err != nil || n != len(in) {
			t.Fatalf("Feed: %d of %d: %v", n, len(in), err)
		}
		x.toUs.Reset()
		h.consume()
		if h.ended[id] {
			if round < 16 {
				t.Fatalf("done in %d rounds: windows not enforced?", round)
			}
			t.Logf("%d rounds", round)
			break
		}
	}
	got := fieldsMap(x.heads[id])
	if got[":method"] != "PUT" || got[":authority"] != "upstream:8080" || got["content-length"] != "1048576" || got["connection"] != "" {
		t.Fatalf("request head %v", got)
	}
	if !bytes.Equal(x.bodies[id].Bytes(), upload) {
		t.Fatalf("upload differs: %d octets", x.bodies[id].Len())
	}
	if h.heads[id].Status != 201 || !bytes.Equal(h.bodies[id].Bytes(), download) {
		t.Fatalf("download: status %d, %d octets", h.heads[id].Status, h.bodies[id].Len())
	}
	if c.ActiveStreams() != 0 {
		t.Fatal("stream left open")
	}
}
