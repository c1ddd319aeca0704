// SPDX-License-Identifier: GPL-3.0-only

package h2

// Flow control (RFC 9113 section 5.2, 6.9) in both directions.
//
// Sending: c.connSend and stream.sendWindow are the peer's windows, grown by
// its WINDOW_UPDATE and by SETTINGS_INITIAL_WINDOW_SIZE deltas; WriteData
// never exceeds them.
//
// Receiving: c.connRecv and stream.recvWindow are what the peer may still
// send us. Credit goes back only when the owner says it consumed data
// (Consumed), so a slow consumer holds the peer back: this is the engine's
// backpressure. Bytes the owner never sees (padding, DATA on streams we
// reset) are credited at once.

// Consumed tells the Conn that the owner has consumed (forwarded, or
// dropped) n octets of DATA it was given on streamID. Credit is returned to
// the peer with WINDOW_UPDATE once half a window has accumulated, for the
// connection and, while the peer may still send on it, for the stream.
// Calling it for a stream that has since closed credits the connection
// only. Call it for every octet OnData delivered, or the connection window
// leaks.
func (c *Conn) Consumed(streamID uint32, n int) {
	if n <= 0 || c.err != nil {
		return
	}
	c.creditConn(int64(n))
	if s := c.stream(streamID); s != nil && s.canRecv() {
		c.creditStream(s, int64(n))
	}
}

// creditConn returns n octets to the connection window.
func (c *Conn) creditConn(n int64) {
	// Never grant beyond the window we advertised, whatever the owner says.
	c.connUnacked = min(c.connUnacked+n, int64(c.lim.ConnWindow)-c.connRecv)
	if c.connUnacked >= int64(c.lim.ConnWindow)/2 {
		c.out = AppendWindowUpdate(c.out, 0, uint32(c.connUnacked))
		c.connRecv += c.connUnacked
		c.connUnacked = 0
	}
}

// creditStream returns n octets to a stream's window.
func (c *Conn) creditStream(s *stream, n int64) {
	full := int64(c.lim.InitialStreamWindow)
	s.recvUnacked = min(s.recvUnacked+n, full-s.recvWindow)
	if s.recvUnacked >= full/2 && s.recvUnacked > 0 {
		c.out = AppendWindowUpdate(c.out, s.id, uint32(s.recvUnacked))
		s.recvWindow += s.recvUnacked
		s.recvUnacked = 0
	}
}

// SendWindow returns how many DATA octets WriteData would accept on
// streamID now as far as flow control goes (the output bound aside): the
// smaller of the stream's and the connection's window, 0 for an unknown
// stream.
func (c *Conn) SendWindow(streamID uint32) int {
	s := c.stream(streamID)
	if s == nil || !s.canSend() {
		return 0
	}
	return int(max(0, min(s.sendWindow, c.connSend)))
}

// StreamSendWindow is the stream's own send window (the connection's
// aside): whether the peer keeps this stream shut. 0 for an unknown or
// closed stream.
func (c *Conn) StreamSendWindow(streamID uint32) int {
	s := c.stream(streamID)
	if s == nil || !s.canSend() {
		return 0
	}
	return int(max(0, s.sendWindow))
}

// ConnSendWindow is the connection's send window.
func (c *Conn) ConnSendWindow() int { return int(max(0, c.connSend)) }

// applyPeerInitialWindow adjusts every stream's send window by the change
// of the peer's SETTINGS_INITIAL_WINDOW_SIZE (RFC 9113 section 6.9.2).
func (c *Conn) applyPeerInitialWindow(v uint32) *ConnError {
	delta := int64(v) - int64(c.peer.InitialWindowSize)
	c.peer.InitialWindowSize = v
	if delta == 0 {
		return nil
	}
	for _, s := range c.streams {
		s.sendWindow += delta
		if s.sendWindow > maxWindow {
			return ErrSettingsWindowOverflow
		}
	}
	return nil
}

// applyLocalInitialWindow runs when the peer acknowledges our SETTINGS:
// until then streams were allowed the larger of the protocol default and
// ours; from now on ours, for the open ones by its delta.
func (c *Conn) applyLocalInitialWindow() {
	ours := int64(c.lim.InitialStreamWindow)
	delta := ours - c.recvInitial
	c.recvInitial = ours
	if delta == 0 {
		return
	}
	for _, s := range c.streams {
		s.recvWindow += delta
	}
}

// onWindowUpdate handles WINDOW_UPDATE.
func (c *Conn) onWindowUpdate(h FrameHeader, p []byte) *ConnError {
	c.stats.WindowUpdates++
	f, err := parseWindowUpdateFrame(h, p)
	if err != nil {
		if err == ErrWindowUpdateZero {
			if c.isIdle(h.StreamID) {
				return ErrFrameOnIdleStream
			}
			if c.stream(h.StreamID) == nil {
				return nil // late, on a closed stream
			}
			return c.resetStream(h.StreamID, ErrWindowUpdateZero)
		}
		return err.(*ConnError)
	}
	if f.StreamID == 0 {
		c.connSend += int64(f.Increment)
		if c.connSend > maxWindow {
			return ErrWindowOverflowConn
		}
		c.h.OnWindowUpdate(0)
		return nil
	}
	s := c.stream(f.StreamID)
	if s == nil {
		if c.isIdle(f.StreamID) {
			return ErrFrameOnIdleStream
		}
		return nil // WINDOW_UPDATE may trail END_STREAM or RST_STREAM
	}
	s.sendWindow += int64(f.Increment)
	if s.sendWindow > maxWindow {
		return c.resetStream(f.StreamID, ErrWindowOverflow)
	}
	if s.canSend() {
		c.h.OnWindowUpdate(f.StreamID)
	}
	return nil
}
