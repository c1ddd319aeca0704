// SPDX-License-Identifier: GPL-3.0-only

package h2

// streamState is a state of RFC 9113 section 5.1. The reserved states
// exist for completeness: without server push no stream ever enters them.
type streamState uint8

const (
	stateIdle streamState = iota
	stateReservedLocal
	stateReservedRemote
	stateOpen
	stateHalfClosedLocal
	stateHalfClosedRemote
	stateClosed
)

var streamStateNames = [...]string{"idle", "reserved_local", "reserved_remote", "open", "half_closed_local", "half_closed_remote", "closed"}

func (s streamState) String() string { return streamStateNames[s] }

// stream is one open or half-closed stream. Idle streams are not
// materialized; closed ones leave the map for the closedRing.
type stream struct {
	id    uint32
	state streamState

	// Receiving (peer to us).
	recvWindow    int64 // what the peer may still send; may go negative after a SETTINGS change
	recvUnacked   int64 // consumed, not yet returned with WINDOW_UPDATE
	contentLength int64 // declared by the peer's head, -1 when absent or not checked
	received      int64 // DATA payload octets received
	gotFinal      bool  // the peer's final head arrived (a request, or a response >= 200)

	// Sending (us to peer).
	sendWindow int64 // what we may still send; may go negative after a SETTINGS change
	sentFinal  bool  // our final head went out
	headReq    bool  // client role: we sent a HEAD request (no content in the response)
}

// canRecv reports whether the peer may still send DATA or HEADERS.
func (s *stream) canRecv() bool { return s.state == stateOpen || s.state == stateHalfClosedLocal }

// canSend reports whether we may still send.
func (s *stream) canSend() bool { return s.state == stateOpen || s.state == stateHalfClosedRemote }

// recvEnd applies a received END_STREAM and reports whether the stream is
// now closed.
func (s *stream) recvEnd() bool {
	switch s.state {
	case stateOpen:
		s.state = stateHalfClosedRemote
	case stateHalfClosedLocal:
		s.state = stateClosed
	}
	return s.state == stateClosed
}

// sendEnd applies a sent END_STREAM and reports whether the stream is now
// closed.
func (s *stream) sendEnd() bool {
	switch s.state {
	case stateOpen:
		s.state = stateHalfClosedLocal
	case stateHalfClosedRemote:
		s.state = stateClosed
	}
	return s.state == stateClosed
}

// closedReason says how a stream ended; it decides what a late frame on it
// means (RFC 9113 section 5.1, "closed").
type closedReason uint8

const (
	closedNormally    closedReason = iota + 1 // END_STREAM both ways
	closedResetByUs                           // we sent RST_STREAM (or refused it): ignore late frames
	closedResetByPeer                         // the peer sent RST_STREAM: its further frames are STREAM_CLOSED
)

type closedEntry struct {
	id     uint32
	reason closedReason
}

// closedRing remembers the last N closed streams. Beyond it, knowledge is
// summarized by evictedMax: per parity, the highest identifier forgotten.
// A peer stream identifier above it that is neither open nor remembered was
// therefore never opened.
type closedRing struct {
	ents       []closedEntry
	next       int
	size       int
	evictedMax [2]uint32 // by id&1
}

func (r *closedRing) add(id uint32, reason closedReason) {
	if r.ents == nil {
		r.ents = make([]closedEntry, 0, r.size)
	}
	if len(r.ents) < r.size {
		r.ents = append(r.ents, closedEntry{id, reason})
		return
	}
	old := r.ents[r.next].id
	if p := old & 1; old > r.evictedMax[p] {
		r.evictedMax[p] = old
	}
	r.ents[r.next] = closedEntry{id, reason}
	r.next = (r.next + 1) % r.size
}

// set records reason for id, replacing an entry it already has.
func (r *closedRing) set(id uint32, reason closedReason) {
	for i := range r.ents {
		if r.ents[i].id == id {
			r.ents[i].reason = reason
			return
		}
	}
	r.add(id, reason)
}

func (r *closedRing) lookup(id uint32) (closedReason, bool) {
	for i := range r.ents {
		if r.ents[i].id == id {
			return r.ents[i].reason, true
		}
	}
	return 0, false
}

// remembers reports whether the ring would know id had it been closed.
func (r *closedRing) remembers(id uint32) bool { return id > r.evictedMax[id&1] }

// isPeerStream reports whether the peer initiates streams with this id:
// clients use odd identifiers, servers even (RFC 9113 section 5.1.1).
func (c *Conn) isPeerStream(id uint32) bool {
	return (id&1 == 1) == (c.role == RoleServer)
}

// isIdle reports whether id names a stream that was never opened and can
// still be: above the last the peer opened, or at or above our next own.
func (c *Conn) isIdle(id uint32) bool {
	if c.isPeerStream(id) {
		return id > c.lastPeerStream
	}
	return id >= c.nextOwnStream
}

// newStream takes a stream from the free list and registers it.
func (c *Conn) newStream(id uint32) *stream {
	var s *stream
	if n := len(c.free); n > 0 {
		s = c.free[n-1]
		c.free = c.free[:n-1]
	} else {
		s = new(stream)
	}
	*s = stream{
		id:            id,
		state:         stateOpen,
		recvWindow:    c.recvInitial,
		sendWindow:    int64(c.peer.InitialWindowSize),
		contentLength: -1,
	}
	c.streams[id] = s
	if c.isPeerStream(id) {
		c.peerActive++
	} else {
		c.ownActive++
	}
	return s
}

// stream returns the active stream id, or nil. Consecutive frames are
// mostly for one stream (a DATA run, its WINDOW_UPDATE, the owner's write),
// so the last one found is checked before the map: map lookups were 12% of
// the gateway's CPU on the bench's gRPC streams.
func (c *Conn) stream(id uint32) *stream {
	if s := c.last; s != nil && s.id == id {
		return s
	}
	s := c.streams[id]
	if s != nil {
		c.last = s
	}
	return s
}

// closeStream forgets an active stream, remembering how it ended.
func (c *Conn) closeStream(s *stream, reason closedReason) {
	delete(c.streams, s.id)
	if c.last == s {
		c.last = nil
	}
	if c.isPeerStream(s.id) {
		c.peerActive--
	} else {
		c.ownActive--
	}
	c.closed.add(s.id, reason)
	s.state = stateClosed
	if len(c.free) < maxFreeStreams {
		c.free = append(c.free, s)
	}
}

// maxFreeStreams bounds the free list (streams are small; this keeps a
// burst from pinning memory).
const maxFreeStreams = 128

// resetStream raises a stream error: RST_STREAM is queued (as a control
// frame, counted against the flood limit), the stream forgotten as reset by
// us, and the owner told. proto is a prototype from errors.go.
func (c *Conn) resetStream(id uint32, proto *StreamError) *ConnError {
	c.serr = *proto
	c.serr.StreamID = id
	c.out = AppendRSTStream(c.out, id, proto.Code)
	c.stats.ResetsSent++
	if s := c.stream(id); s != nil {
		c.closeStream(s, closedResetByUs)
	} else if !c.isIdle(id) {
		c.closed.set(id, closedResetByUs)
	}
	if err := c.queuedControl(); err != nil {
		return err
	}
	c.h.OnStreamError(&c.serr)
	return nil
}
