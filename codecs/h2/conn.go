// SPDX-License-Identifier: GPL-3.0-only

package h2

import (
	"slices"
	"time"
)

// Role says which end of the connection a Conn is.
type Role uint8

const (
	// RoleServer is the downstream side: the peer is a client that sends
	// the preface and opens odd streams.
	RoleServer Role = iota
	// RoleClient is the upstream side: we send the preface and open odd
	// streams with WriteRequest.
	RoleClient
)

// ClientPreface is the 24-octet connection preface a client sends first
// (RFC 9113 section 3.4).
const ClientPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// Settings are the values of the SETTINGS parameters in force for one side.
type Settings struct {
	HeaderTableSize       uint32
	EnablePush            bool
	MaxConcurrentStreams  uint32 // 2^32-1 when unlimited (the initial value)
	InitialWindowSize     uint32
	MaxFrameSize          uint32
	MaxHeaderListSize     uint32 // 2^32-1 when unlimited (the initial value)
	EnableConnectProtocol bool
}

// initialSettings are the values before any SETTINGS frame (RFC 9113
// section 6.5.2).
func initialSettings() Settings {
	return Settings{
		HeaderTableSize:      defaultHeaderTable,
		EnablePush:           true,
		MaxConcurrentStreams: ^uint32(0),
		InitialWindowSize:    defaultWindow,
		MaxFrameSize:         defaultMaxFrame,
		MaxHeaderListSize:    ^uint32(0),
	}
}

// Handler receives what the peer's frames mean. Its methods run inside Feed
// on the owner's goroutine and may call the Conn's Write methods. Slices and
// pointers they get are valid only during the call.
type Handler interface {
	// OnHeaders delivers a validated head: a request (server role), a 1xx or
	// final response (client role), or trailers (endStream is then true).
	OnHeaders(streamID uint32, h *Head, endStream bool)
	// OnData delivers DATA payload (padding removed), a slice of Feed's
	// input. Every octet must later be acknowledged with Consumed.
	// data may be empty when endStream is set.
	OnData(streamID uint32, data []byte, endStream bool)
	// OnReset reports the peer's RST_STREAM; the stream is gone.
	OnReset(streamID uint32, code ErrCode)
	// OnStreamError reports a stream error we raised; its RST_STREAM is
	// queued and the stream is gone (it may never have been reported, as for
	// refused streams).
	OnStreamError(err *StreamError)
	// OnGoAway reports the peer's GOAWAY. unprocessed lists our streams
	// above lastStreamID, now closed: the peer did not and will not process
	// them, so they are safe to retry on another connection.
	OnGoAway(lastStreamID uint32, code ErrCode, debug []byte, unprocessed []uint32)
	// OnWindowUpdate reports that a send window grew (streamID 0: the
	// connection's); WriteData may now accept more.
	OnWindowUpdate(streamID uint32)
	// OnSettings reports that the peer's SETTINGS were applied (and ACKed).
	OnSettings(peer Settings)
	// OnPing reports a PING (already answered) or a PING ACK.
	OnPing(data [8]byte, ack bool)
}

// NopHandler ignores every event; embed it to implement only some.
type NopHandler struct{}

// OnHeaders implements Handler.
func (NopHandler) OnHeaders(uint32, *Head, bool) {}

// OnData implements Handler.
func (NopHandler) OnData(uint32, []byte, bool) {}

// OnReset implements Handler.
func (NopHandler) OnReset(uint32, ErrCode) {}

// OnStreamError implements Handler.
func (NopHandler) OnStreamError(*StreamError) {}

// OnGoAway implements Handler.
func (NopHandler) OnGoAway(uint32, ErrCode, []byte, []uint32) {}

// OnWindowUpdate implements Handler.
func (NopHandler) OnWindowUpdate(uint32) {}

// OnSettings implements Handler.
func (NopHandler) OnSettings(Settings) {}

// OnPing implements Handler.
func (NopHandler) OnPing([8]byte, bool) {}

// Stats are counters of a connection's life, for metrics and for the flood
// guards built on them.
type Stats struct {
	PingsReceived    uint64
	PingAcksReceived uint64
	SettingsReceived uint64
	ResetsReceived   uint64 // RST_STREAM from the peer (rapid reset signal)
	ResetsSent       uint64 // RST_STREAM we sent (stream errors, refusals, WriteRST)
	StreamsOpened    uint64 // by the peer (server role) or by us (client role)
	StreamsRefused   uint64 // REFUSED_STREAM for concurrency or after GOAWAY
	EmptyDataFrames  uint64 // DATA without payload and without END_STREAM
	PriorityFrames   uint64
	UnknownFrames    uint64
	WindowUpdates    uint64 // WINDOW_UPDATE frames from the peer
	DataFramesSent   uint64 // DATA frames we wrote (each earns the peer a stream and a connection WINDOW_UPDATE)
	DataBytesSent    uint64 // their payload (a peer may send its updates per so many bytes read)
}

// shutdownPing is the payload of the PING Shutdown sends; its ACK marks one
// round trip after the first GOAWAY.
var shutdownPing = [8]byte{'e', 'g', '-', 'd', 'r', 'a', 'i', 'n'}

// Conn is one HTTP/2 connection's protocol state. See the package
// documentation; it is owned by one goroutine.
type Conn struct {
	role  Role
	lim   Limits
	h     Handler
	local Settings // what we advertised
	peer  Settings // what the peer advertised (initial values until its SETTINGS)

	prefaceDone     bool // server: the client preface and first SETTINGS went by
	gotSettings     bool
	settingsUnacked bool
	settingsSentAt  time.Time
	err             *ConnError

	streams        map[uint32]*stream
	last           *stream // the stream looked up last (stream), or nil
	free           []*stream
	peerActive     int
	ownActive      int
	lastPeerStream uint32
	nextOwnStream  uint32
	closed         closedRing
	recvInitial    int64 // initial receive window of new streams

	// Header block assembly across CONTINUATION frames.
	hbActive    bool
	hbStream    uint32
	hbEndStream bool
	hbSelfDep   bool
	hbFrames    int
	hbBuf       []byte

	dec  decoder
	enc  encoder
	head Head

	connSend    int64 // peer's connection window
	connRecv    int64 // what the peer may still send on the connection
	connUnacked int64

	goAwaySent     bool
	goAwaySentLast uint32
	shutdownPend   bool
	goAwayRecv     bool
	goAwayRecvLast uint32

	out    []byte
	outOff int
	// dataTail is the offset in out of the last frame when that is a DATA
	// frame without END_STREAM none of which is flushed yet (tailOK): more
	// DATA of its stream goes into it rather than into frames of its own.
	dataTail   int
	tailOK     bool
	outFlushed uint64
	ctrlQueued int
	ctrlMark   uint64

	serr   StreamError
	unproc []uint32
	stats  Stats
}

// NewConn returns a connection in the given role. Its output already holds
// what we send first: the client preface (client role), our SETTINGS and
// the WINDOW_UPDATE that opens the connection window to lim.ConnWindow. now
// starts the SETTINGS acknowledgement clock.
func NewConn(role Role, lim Limits, h Handler, now time.Time) *Conn {
	if h == nil {
		h = NopHandler{}
	}
	c := &Conn{
		role:           role,
		lim:            lim.normalized(),
		h:              h,
		peer:           initialSettings(),
		streams:        make(map[uint32]*stream),
		connSend:       defaultWindow,
		nextOwnStream:  1,
		settingsSentAt: now,
	}
	c.closed.size = c.lim.ClosedStreams
	c.connRecv = int64(c.lim.ConnWindow)
	c.recvInitial = max(int64(c.lim.InitialStreamWindow), defaultWindow)
	c.dec.init(&c.lim)
	c.enc.init(c.lim.MaxEncoderTableSize)
	c.local = Settings{
		HeaderTableSize:       c.lim.HeaderTableSize,
		MaxConcurrentStreams:  c.lim.MaxConcurrentStreams,
		InitialWindowSize:     c.lim.InitialStreamWindow,
		MaxFrameSize:          c.lim.MaxFrameSize,
		MaxHeaderListSize:     c.lim.MaxHeaderListSize,
		EnableConnectProtocol: c.lim.EnableConnectProtocol && role == RoleServer,
	}
	if role == RoleClient {
		c.out = append(c.out, ClientPreface...)
	} else {
		c.local.EnablePush = false
	}
	c.out = c.appendLocalSettings(c.out)
	c.settingsUnacked = true
	if inc := c.lim.ConnWindow - defaultWindow; inc > 0 {
		c.out = AppendWindowUpdate(c.out, 0, inc)
	}
	return c
}

// appendLocalSettings writes our SETTINGS, leaving out values equal to the
// protocol's initial ones where that changes nothing.
func (c *Conn) appendLocalSettings(b []byte) []byte {
	var s [8]Setting
	n := 0
	add := func(id SettingID, v uint32) { s[n] = Setting{id, v}; n++ }
	if c.local.HeaderTableSize != defaultHeaderTable {
		add(SettingHeaderTableSize, c.local.HeaderTableSize)
	}
	if c.role == RoleClient {
		add(SettingEnablePush, 0)
	} else {
		add(SettingMaxConcurrentStreams, c.local.MaxConcurrentStreams)
	}
	if c.local.InitialWindowSize != defaultWindow {
		add(SettingInitialWindowSize, c.local.InitialWindowSize)
	}
	if c.local.MaxFrameSize != defaultMaxFrame {
		add(SettingMaxFrameSize, c.local.MaxFrameSize)
	}
	add(SettingMaxHeaderListSize, c.local.MaxHeaderListSize)
	if c.local.EnableConnectProtocol {
		add(SettingEnableConnectProtocol, 1)
	}
	return AppendSettings(b, s[:n]...)
}

// Role returns the connection's role.
func (c *Conn) Role() Role { return c.role }

// LocalSettings returns the settings we advertised.
func (c *Conn) LocalSettings() Settings { return c.local }

// PeerSettings returns the peer's settings in force (the protocol's initial
// values until its first SETTINGS).
func (c *Conn) PeerSettings() Settings { return c.peer }

// Stats returns the connection's counters.
func (c *Conn) Stats() Stats { return c.stats }

// Err returns the connection error that ended the connection, or nil.
func (c *Conn) Err() *ConnError { return c.err }

// ActiveStreams returns the number of open and half-closed streams.
func (c *Conn) ActiveStreams() int { return c.peerActive + c.ownActive }

// GoAwaySent reports whether we sent GOAWAY (Shutdown, WriteGoAway or a
// connection error).
func (c *Conn) GoAwaySent() bool { return c.goAwaySent }

// GoAwayReceived returns the lowest last-stream-id of the peer's GOAWAYs
// and whether there was one.
func (c *Conn) GoAwayReceived() (lastStreamID uint32, ok bool) {
	return c.goAwayRecvLast, c.goAwayRecv
}

// SettingsAckOverdue reports whether our SETTINGS have waited for their ACK
// longer than timeout. The owner's timer asks; on true it usually sends
// WriteGoAway(ErrCodeSettingsTimeout, nil) and closes (RFC 9113 6.5.3).
func (c *Conn) SettingsAckOverdue(now time.Time, timeout time.Duration) bool {
	return c.settingsUnacked && now.Sub(c.settingsSentAt) > timeout
}

// Output returns the bytes waiting to be written. The slice is valid until
// the next call of any other method.
func (c *Conn) Output() []byte { return c.out[c.outOff:] }

// Advance marks the first n bytes of Output as written.
func (c *Conn) Advance(n int) {
	n = max(0, min(n, len(c.out)-c.outOff))
	c.outOff += n
	c.outFlushed += uint64(n)
	if c.outFlushed >= c.ctrlMark {
		c.ctrlQueued = 0
	}
	if c.tailOK && c.dataTail < c.outOff {
		c.tailOK = false // its length went out: it can no longer grow
	}
	switch {
	case c.outOff == len(c.out):
		c.out, c.outOff = c.out[:0], 0
	case c.outOff >= 4096 && c.outOff >= len(c.out)/2:
		// Compact: the copy is at most as long as what was just written.
		k := copy(c.out, c.out[c.outOff:])
		c.dataTail -= c.outOff
		c.out, c.outOff = c.out[:k], 0
	}
}

// pending is the number of unwritten output bytes.
func (c *Conn) pending() int { return len(c.out) - c.outOff }

// queuedControl counts a control frame just queued in answer to the peer;
// too many unflushed ones mean the peer sends faster than we can answer.
func (c *Conn) queuedControl() *ConnError {
	c.ctrlQueued++
	c.ctrlMark = c.outFlushed + uint64(c.pending())
	if c.ctrlQueued > c.lim.MaxQueuedControlFrames {
		return ErrControlFlood
	}
	return nil
}

// fail ends the connection with e: a GOAWAY carrying e's code and token is
// queued, and every later Feed returns e.
func (c *Conn) fail(e *ConnError) *ConnError {
	if c.err == nil {
		c.err = e
		c.hbActive = false
		last := c.lastPeerStream
		if c.goAwaySent {
			last = min(last, c.goAwaySentLast)
		}
		c.out = AppendGoAway(c.out, last, e.Code, []byte(e.Token))
		c.goAwaySent, c.goAwaySentLast = true, last
	}
	return c.err
}

// HeaderBlockPending reports whether a header block is open: HEADERS came
// without END_HEADERS and its CONTINUATION frames are still due.
func (c *Conn) HeaderBlockPending() bool { return c.hbActive }

// Abort ends the connection for a reason of the owner's (a guard tripped in
// a handler): a GOAWAY with code and token is queued, Feed stops after the
// frame being handled and returns the error, as do later calls.
func (c *Conn) Abort(code ErrCode, token string) error {
	return c.fail(&ConnError{Code: code, Token: token, Msg: "closed by a guard"})
}

// frameHandlers is the dispatch table of Feed, indexed by frame type; types
// beyond it are ignored.
var frameHandlers = [numFrameTypes]func(*Conn, FrameHeader, []byte) *ConnError{
	FrameData:         (*Conn).onData,
	FrameHeaders:      (*Conn).onHeaders,
	FramePriority:     (*Conn).onPriority,
	FrameRSTStream:    (*Conn).onRSTStream,
	FrameSettings:     (*Conn).onSettings,
	FramePushPromise:  (*Conn).onPushPromise,
	FramePing:         (*Conn).onPing,
	FrameGoAway:       (*Conn).onGoAway,
	FrameWindowUpdate: (*Conn).onWindowUpdate,
	FrameContinuation: (*Conn).onContinuation,
}

// Feed parses as many complete frames from b as there are and returns how
// many bytes they took; the owner drops those and calls Feed again with the
// rest plus new bytes. An incomplete frame is left unconsumed (0, nil). A
// frame header announcing more than our SETTINGS_MAX_FRAME_SIZE fails at
// once, before its payload arrives.
//
// A non-nil error is a *ConnError: a GOAWAY is queued, the connection is
// dead, and Feed keeps returning the same error. Stream errors are not
// returned: they go to Handler.OnStreamError and the connection goes on.
//
// Handler callbacks receive slices of b: they are valid as long as the
// owner keeps b.
func (c *Conn) Feed(b []byte, now time.Time) (consumed int, err error) {
	_ = now // reserved for rate guards; time is the owner's
	if c.err != nil {
		return 0, c.err
	}
	n := 0
	if !c.prefaceDone && c.role == RoleServer {
		k := min(len(b), len(ClientPreface))
		if string(b[:k]) != ClientPreface[:k] {
			return 0, c.fail(ErrBadPreface)
		}
		if k < len(ClientPreface) {
			return 0, nil
		}
		// The preface is consumed together with the SETTINGS frame that must
		// follow it, so a short read never leaves half a preface behind.
		n = len(ClientPreface)
	}
	for {
		h, ok := parseFrameHeader(b[n:])
		if !ok {
			break
		}
		if h.Length > c.local.MaxFrameSize {
			return c.consumedSoFar(n), c.fail(ErrFrameTooLarge)
		}
		end := n + frameHeaderLen + int(h.Length)
		if end > len(b) {
			break
		}
		if e := c.frame(h, b[n+frameHeaderLen:end]); e != nil {
			return c.consumedSoFar(n), c.fail(e)
		}
		c.prefaceDone = true
		n = end
		if c.err != nil {
			return n, c.err
		}
	}
	return c.consumedSoFar(n), nil
}

// consumedSoFar hides a preface whose first frame has not been processed.
func (c *Conn) consumedSoFar(n int) int {
	if !c.prefaceDone {
		return 0
	}
	return n
}

// frame dispatches one complete frame.
func (c *Conn) frame(h FrameHeader, p []byte) *ConnError {
	if !c.gotSettings && (h.Type != FrameSettings || h.Flags.Has(FlagAck)) {
		// The peer's preface ends with a SETTINGS frame (RFC 9113 3.4).
		return ErrBadPreface
	}
	if c.hbActive && h.Type != FrameContinuation {
		return ErrInterleavedHeaderBlock
	}
	if h.Type >= numFrameTypes {
		c.stats.UnknownFrames++
		return nil
	}
	return frameHandlers[h.Type](c, h, p)
}

func (c *Conn) onSettings(h FrameHeader, p []byte) *ConnError {
	f, err := parseSettingsFrame(h, p)
	if err != nil {
		return err.(*ConnError)
	}
	if f.Ack {
		if !c.settingsUnacked {
			return ErrUnexpectedSettingsAck
		}
		c.settingsUnacked = false
		c.dec.settingsAcked(c.local.HeaderTableSize)
		c.applyLocalInitialWindow()
		return nil
	}
	c.stats.SettingsReceived++
	c.gotSettings = true
	for i := range f.Len() {
		s := f.At(i)
		switch s.ID {
		case SettingHeaderTableSize:
			c.peer.HeaderTableSize = s.Val
			c.enc.setPeerTableSize(s.Val, c.lim.MaxEncoderTableSize)
		case SettingEnablePush:
			if s.Val == 1 && c.role == RoleClient {
				return ErrSettingsBadEnablePush
			}
			c.peer.EnablePush = s.Val == 1
		case SettingMaxConcurrentStreams:
			c.peer.MaxConcurrentStreams = s.Val
		case SettingInitialWindowSize:
			if e := c.applyPeerInitialWindow(s.Val); e != nil {
				return e
			}
		case SettingMaxFrameSize:
			c.peer.MaxFrameSize = s.Val
		case SettingMaxHeaderListSize:
			c.peer.MaxHeaderListSize = s.Val
			c.enc.peerMaxListSize = s.Val
		case SettingEnableConnectProtocol:
			if c.peer.EnableConnectProtocol && s.Val == 0 {
				return ErrSettingsBadConnect // RFC 8441 section 3: no revoking
			}
			c.peer.EnableConnectProtocol = s.Val == 1
		}
	}
	c.out = AppendSettingsAck(c.out)
	if e := c.queuedControl(); e != nil {
		return e
	}
	c.h.OnSettings(c.peer)
	return nil
}

func (c *Conn) onPing(h FrameHeader, p []byte) *ConnError {
	f, err := parsePingFrame(h, p)
	if err != nil {
		return err.(*ConnError)
	}
	if f.Ack {
		c.stats.PingAcksReceived++
		if c.shutdownPend && f.Data == shutdownPing {
			c.shutdownPend = false
			c.writeGoAway(c.lastPeerStream, ErrCodeNo, nil)
		}
		c.h.OnPing(f.Data, true)
		return nil
	}
	c.stats.PingsReceived++
	c.out = AppendPing(c.out, true, f.Data)
	if e := c.queuedControl(); e != nil {
		return e
	}
	c.h.OnPing(f.Data, false)
	return nil
}

func (c *Conn) onGoAway(h FrameHeader, p []byte) *ConnError {
	f, err := parseGoAwayFrame(h, p)
	if err != nil {
		return err.(*ConnError)
	}
	if !c.goAwayRecv || f.LastStreamID < c.goAwayRecvLast {
		c.goAwayRecvLast = f.LastStreamID
	}
	c.goAwayRecv = true
	// Our streams above the last id were never processed (RFC 9113 6.8).
	c.unproc = c.unproc[:0]
	for id := range c.streams {
		if !c.isPeerStream(id) && id > c.goAwayRecvLast {
			c.unproc = append(c.unproc, id)
		}
	}
	slices.Sort(c.unproc)
	for _, id := range c.unproc {
		c.closeStream(c.stream(id), closedResetByUs)
	}
	c.h.OnGoAway(f.LastStreamID, f.Code, f.Debug, c.unproc)
	return nil
}

func (c *Conn) onRSTStream(h FrameHeader, p []byte) *ConnError {
	f, err := parseRSTStreamFrame(h, p)
	if err != nil {
		return err.(*ConnError)
	}
	c.stats.ResetsReceived++
	s := c.stream(f.StreamID)
	if s == nil {
		if c.isIdle(f.StreamID) {
			return ErrFrameOnIdleStream
		}
		return nil
	}
	c.closeStream(s, closedResetByPeer)
	c.h.OnReset(f.StreamID, f.Code)
	return nil
}

func (c *Conn) onPriority(h FrameHeader, p []byte) *ConnError {
	c.stats.PriorityFrames++
	if _, err := parsePriorityFrame(h, p); err != nil {
		if se, ok := err.(*StreamError); ok {
			return c.resetStream(h.StreamID, se)
		}
		return err.(*ConnError)
	}
	return nil // RFC 9113 deprecates the priority scheme; accepted, ignored
}

func (c *Conn) onPushPromise(h FrameHeader, p []byte) *ConnError {
	if _, err := parsePushPromiseFrame(h, p); err != nil {
		return err.(*ConnError)
	}
	if c.role == RoleServer {
		return ErrPushPromiseFromClient
	}
	// We always send SETTINGS_ENABLE_PUSH=0 (RFC 9113 section 8.4).
	return ErrPushDisabled
}

func (c *Conn) onData(h FrameHeader, p []byte) *ConnError {
	data, err := dataPayload(h, p)
	if err != nil {
		return err.(*ConnError)
	}
	endStream := h.Flags.Has(FlagEndStream)
	// The whole payload, padding included, counts against both windows.
	n := int64(h.Length)
	if n > c.connRecv {
		return ErrConnFlowControl
	}
	c.connRecv -= n
	s := c.stream(h.StreamID)
	if s == nil {
		if c.isIdle(h.StreamID) {
			return ErrFrameOnIdleStream
		}
		c.creditConn(n) // nobody will consume it
		r, ok := c.closed.lookup(h.StreamID)
		if ok && r == closedResetByUs {
			return nil // we reset it; the peer had not heard yet
		}
		if ok && r == closedNormally {
			return ErrFrameAfterEndStream // the peer itself ended the stream
		}
		return c.resetStream(h.StreamID, ErrStreamClosed)
	}
	if !s.canRecv() {
		c.creditConn(n)
		return c.resetStream(s.id, ErrStreamClosed)
	}
	if n > s.recvWindow {
		c.creditConn(n)
		return c.resetStream(s.id, ErrStreamFlowControl)
	}
	s.recvWindow -= n
	if !s.gotFinal {
		c.creditConn(n)
		return c.resetStream(s.id, ErrDataBeforeHeaders)
	}
	s.received += int64(len(data))
	if s.contentLength >= 0 && (s.received > s.contentLength || (endStream && s.received != s.contentLength)) {
		c.creditConn(n)
		return c.resetStream(s.id, ErrContentLengthMismatch)
	}
	if pad := n - int64(len(data)); pad > 0 {
		c.creditConn(pad)
		if !endStream {
			c.creditStream(s, pad)
		}
	}
	if endStream {
		if s.recvEnd() {
			c.closeStream(s, closedNormally)
		}
	} else if len(data) == 0 {
		c.stats.EmptyDataFrames++
		return nil
	}
	c.h.OnData(h.StreamID, data, endStream)
	return nil
}

func (c *Conn) onHeaders(h FrameHeader, p []byte) *ConnError {
	f, err := parseHeadersFrame(h, p)
	selfDep := false
	if err != nil {
		if err != ErrPrioritySelfDep {
			return err.(*ConnError)
		}
		selfDep = true
	}
	if len(f.Fragment) > c.lim.MaxHeaderBlockBytes {
		return ErrHeaderBlockTooLarge
	}
	if f.EndHeaders {
		return c.headerBlock(f.StreamID, f.EndStream, selfDep, f.Fragment)
	}
	c.hbActive, c.hbStream, c.hbEndStream, c.hbSelfDep, c.hbFrames = true, f.StreamID, f.EndStream, selfDep, 0
	c.hbBuf = append(c.hbBuf[:0], f.Fragment...)
	return nil
}

func (c *Conn) onContinuation(h FrameHeader, p []byte) *ConnError {
	f, err := parseContinuationFrame(h, p)
	if err != nil {
		return err.(*ConnError)
	}
	if !c.hbActive {
		return ErrUnexpectedContinuation
	}
	if f.StreamID != c.hbStream {
		return ErrInterleavedHeaderBlock
	}
	// Both caps hold before a single octet is decoded (CVE-2024-27316).
	c.hbFrames++
	if c.hbFrames > c.lim.MaxContinuationFrames {
		return ErrContinuationFlood
	}
	if len(c.hbBuf)+len(f.Fragment) > c.lim.MaxHeaderBlockBytes {
		return ErrHeaderBlockTooLarge
	}
	c.hbBuf = append(c.hbBuf, f.Fragment...)
	if !f.EndHeaders {
		return nil
	}
	c.hbActive = false
	return c.headerBlock(c.hbStream, c.hbEndStream, c.hbSelfDep, c.hbBuf)
}

// headerBlock handles a complete header block on stream id.
func (c *Conn) headerBlock(id uint32, endStream, selfDep bool, block []byte) *ConnError {
	if c.isPeerStream(id) {
		if c.role == RoleClient {
			return ErrBadStreamID // a server opens streams only by push
		}
		if id > c.lastPeerStream {
			return c.newPeerStream(id, endStream, selfDep, block)
		}
	} else {
		if c.role == RoleServer || id >= c.nextOwnStream {
			return ErrBadStreamID
		}
	}
	s := c.stream(id)
	if s == nil {
		return c.headersOnClosed(id, block)
	}
	if !s.canRecv() {
		if e := c.dec.decode(block, modeDiscard, false); e != nil {
			return e
		}
		return c.resetStream(id, ErrStreamClosed)
	}
	mode := modeTrailers
	if c.role == RoleClient && !s.gotFinal {
		mode = modeResponse
	}
	if e := c.dec.decode(block, mode, false); e != nil {
		return e
	}
	if se := c.blockProblem(selfDep, endStream); se != nil {
		return c.resetStream(id, se)
	}
	hd := &c.head
	switch hd.Kind {
	case KindResponse:
		s.gotFinal = true
		s.contentLength = hd.ContentLength
		if s.headReq || hd.Status == 304 {
			s.contentLength = -1 // content-length describes what GET would get
		}
		if endStream && s.contentLength > 0 {
			return c.resetStream(id, ErrContentLengthMismatch)
		}
	case KindTrailers:
		if s.contentLength >= 0 && s.received != s.contentLength {
			return c.resetStream(id, ErrContentLengthMismatch)
		}
	}
	if endStream && s.recvEnd() {
		c.closeStream(s, closedNormally)
	}
	c.h.OnHeaders(id, hd, endStream)
	return nil
}

// blockProblem returns the stream-level problem of the block just decoded.
func (c *Conn) blockProblem(selfDep, endStream bool) *StreamError {
	switch {
	case selfDep:
		return ErrPrioritySelfDep
	case c.dec.tooLarge:
		return ErrHeaderListTooLarge
	}
	return c.dec.hb.finish(&c.head, endStream)
}

// newPeerStream opens a stream the peer initiated with a header block.
func (c *Conn) newPeerStream(id uint32, endStream, selfDep bool, block []byte) *ConnError {
	c.lastPeerStream = id
	var refuse *StreamError
	switch {
	case c.goAwaySent && id > c.goAwaySentLast:
		refuse = ErrGoAwayRefused
	case c.peerActive >= int(c.lim.MaxConcurrentStreams):
		refuse = ErrRefusedStream
	}
	if refuse != nil {
		if e := c.dec.decode(block, modeDiscard, false); e != nil {
			return e
		}
		c.stats.StreamsRefused++
		return c.resetStream(id, refuse)
	}
	if e := c.dec.decode(block, modeRequest, c.local.EnableConnectProtocol); e != nil {
		return e
	}
	if se := c.blockProblem(selfDep, endStream); se != nil {
		return c.resetStream(id, se)
	}
	hd := &c.head
	if endStream && hd.ContentLength > 0 {
		return c.resetStream(id, ErrContentLengthMismatch)
	}
	s := c.newStream(id)
	c.stats.StreamsOpened++
	s.gotFinal = true
	s.contentLength = hd.ContentLength
	if endStream {
		s.recvEnd()
	}
	c.h.OnHeaders(id, hd, endStream)
	return nil
}

// headersOnClosed handles a header block on a stream that is not open: it
// is decoded for the HPACK state's sake, then judged by how the stream
// ended (RFC 9113 section 5.1).
func (c *Conn) headersOnClosed(id uint32, block []byte) *ConnError {
	r, known := c.closed.lookup(id)
	if !known && c.isPeerStream(id) && c.closed.remembers(id) {
		// Below the last stream the peer opened and never seen: new streams
		// must use increasing identifiers (RFC 9113 section 5.1.1).
		return ErrStreamIDBackwards
	}
	if e := c.dec.decode(block, modeDiscard, false); e != nil {
		return e
	}
	if known && r == closedResetByUs {
		return nil // trailers the peer sent before it saw our RST_STREAM
	}
	if known && r == closedNormally {
		// RFC 9113 section 5.1: frames after the peer's own END_STREAM are
		// a connection error of type STREAM_CLOSED.
		return ErrFrameAfterEndStream
	}
	return c.resetStream(id, ErrStreamClosed)
}
