// SPDX-License-Identifier: GPL-3.0-only

package h2

// The owner's side: each Write method appends frames to the output buffer
// and updates stream state. None blocks or writes to a socket; the owner
// drains Output.

// WriteRequest opens a stream (client role) with a request head: :method,
// :scheme, :path (not for CONNECT), :authority when set, :protocol for an
// extended CONNECT (the peer must have enabled it), then h.Fields. It
// returns the new stream's identifier.
func (c *Conn) WriteRequest(h *Head, endStream bool) (uint32, error) {
	switch {
	case c.role != RoleClient:
		return 0, ErrRole
	case c.err != nil || c.goAwayRecv || c.goAwaySent:
		return 0, ErrConnClosed
	case uint64(c.ownActive) >= uint64(c.peer.MaxConcurrentStreams):
		return 0, ErrTooManyStreams
	case c.nextOwnStream > maxStreamID:
		return 0, ErrStreamIDsExhausted
	case h.Protocol != nil && (!c.peer.EnableConnectProtocol || !h.IsConnect()):
		return 0, ErrInvalidHead
	}
	if err := c.enc.encode(h, KindRequest); err != nil {
		return 0, err
	}
	id := c.nextOwnStream
	c.nextOwnStream += 2
	s := c.newStream(id)
	c.stats.StreamsOpened++
	s.sentFinal = true
	s.headReq = string(h.Method) == "HEAD"
	c.appendHeaderBlock(id, endStream)
	if endStream {
		s.sendEnd()
	}
	return id, nil
}

// WriteHeaders sends a response head (server role) on a stream the peer
// opened: a 1xx informational head (h.Status < 200; endStream must be
// false), then one final head. Connection-specific fields in h.Fields
// (connection, keep-alive, proxy-connection, transfer-encoding, upgrade, te
// other than trailers) are dropped; names are sent lower-cased.
func (c *Conn) WriteHeaders(streamID uint32, h *Head, endStream bool) error {
	if c.role != RoleServer {
		return ErrRole
	}
	s, err := c.writable(streamID)
	if err != nil {
		return err
	}
	if s.sentFinal {
		return ErrStreamNotWritable
	}
	kind := KindResponse
	if h.Status < 200 {
		kind = KindInformational
		if endStream {
			return ErrInvalidHead
		}
	}
	if err := c.enc.encode(h, kind); err != nil {
		return err
	}
	if kind == KindResponse {
		s.sentFinal = true
	}
	c.appendHeaderBlock(streamID, endStream)
	if endStream {
		c.sentEnd(s)
	}
	return nil
}

// WriteTrailers ends a stream with a trailer section, after the head.
func (c *Conn) WriteTrailers(streamID uint32, fields []Field) error {
	s, err := c.writable(streamID)
	if err != nil {
		return err
	}
	if !s.sentFinal {
		return ErrStreamNotWritable
	}
	h := Head{Fields: fields}
	if err := c.enc.encode(&h, KindTrailers); err != nil {
		return err
	}
	c.appendHeaderBlock(streamID, true)
	c.sentEnd(s)
	return nil
}

// WriteData sends up to len(data) octets of DATA after the head and returns
// how many it took: no more than the stream's and the connection's send
// windows and the room left under Limits.MaxOutputBytes allow, split into
// frames of the peer's SETTINGS_MAX_FRAME_SIZE. END_STREAM is set only if
// endStream and all of data was taken (an empty data with endStream always
// goes). When it takes less, retry after OnWindowUpdate or after draining
// output.
func (c *Conn) WriteData(streamID uint32, data []byte, endStream bool) (int, error) {
	s, err := c.writable(streamID)
	if err != nil {
		return 0, err
	}
	if !s.sentFinal {
		return 0, ErrStreamNotWritable
	}
	n := int64(len(data))
	n = min(n, s.sendWindow, c.connSend, int64(c.lim.MaxOutputBytes-c.pending()))
	if n < 0 {
		n = 0
	}
	end := endStream && n == int64(len(data))
	if n == 0 && !end {
		return 0, nil
	}
	maxFrame := int64(c.peer.MaxFrameSize)
	rest := data[:n]
	c.stats.DataBytesSent += uint64(n)
	k, grown := c.growData(streamID, rest, end, maxFrame)
	rest = rest[k:]
	for !grown || len(rest) > 0 {
		grown = true
		chunk := min(int64(len(rest)), maxFrame)
		last := chunk == int64(len(rest))
		c.out = AppendData(c.out, streamID, rest[:chunk], last && end)
		c.stats.DataFramesSent++
		c.dataTail, c.tailOK = len(c.out)-frameHeaderLen-int(chunk), !(last && end)
		rest = rest[chunk:]
	}
	s.sendWindow -= n
	c.connSend -= n
	if end {
		c.sentEnd(s)
	}
	return int(n), nil
}

// growData appends what it can of p to the last DATA frame in out when
// that frame is the stream's, not yet flushed and shorter than maxFrame,
// setting its END_STREAM when end and all of p went in. It returns how
// many bytes went in and whether the frame was there to grow (true with
// k < len(p) means it is full). DATA frame boundaries mean nothing to
// HTTP/2, and a peer pays for every frame: a gRPC stream's many small
// messages that arrive in one read leave as one frame, not one each.
func (c *Conn) growData(streamID uint32, p []byte, end bool, maxFrame int64) (int, bool) {
	if !c.tailOK || c.dataTail < c.outOff || c.dataTail+frameHeaderLen > len(c.out) {
		return 0, false
	}
	h := c.out[c.dataTail : c.dataTail+frameHeaderLen]
	l := int64(h[0])<<16 | int64(h[1])<<8 | int64(h[2])
	sid := uint32(h[5]&0x7f)<<24 | uint32(h[6])<<16 | uint32(h[7])<<8 | uint32(h[8])
	if FrameType(h[3]) != FrameData || h[4] != 0 || sid != streamID || c.dataTail+frameHeaderLen+int(l) != len(c.out) {
		c.tailOK = false
		return 0, false
	}
	if l > maxFrame {
		c.tailOK = false // the peer lowered SETTINGS_MAX_FRAME_SIZE
		return 0, false
	}
	k := min(int64(len(p)), maxFrame-l)
	if k == 0 && !(end && len(p) == 0) {
		return 0, true
	}
	c.out = append(c.out, p[:k]...)
	l += k
	h = c.out[c.dataTail : c.dataTail+frameHeaderLen]
	h[0], h[1], h[2] = byte(l>>16), byte(l>>8), byte(l)
	if end && k == int64(len(p)) {
		h[4] = byte(FlagEndStream)
		c.tailOK = false
	}
	return int(k), true
}

// WriteRST resets a stream (RST_STREAM with code). Late frames from the peer
// on it are then ignored (their DATA still counts against, and is credited
// back to, the connection window). Resetting a stream that is not open is a
// no-op.
func (c *Conn) WriteRST(streamID uint32, code ErrCode) error {
	if c.err != nil {
		return ErrConnClosed
	}
	s := c.stream(streamID)
	if s == nil {
		return nil
	}
	c.out = AppendRSTStream(c.out, streamID, code)
	c.stats.ResetsSent++
	c.closeStream(s, closedResetByUs)
	return nil
}

// WritePing sends a PING; its ACK comes back through Handler.OnPing.
func (c *Conn) WritePing(data [8]byte) error {
	if c.err != nil {
		return ErrConnClosed
	}
	c.out = AppendPing(c.out, false, data)
	return nil
}

// WriteGoAway sends GOAWAY with the highest peer stream we accepted as last
// stream id (never higher than a GOAWAY we sent before): streams the peer
// opens later are refused with REFUSED_STREAM, ours and the peer's up to the
// last id go on. The owner closes once ActiveStreams is 0 and the output is
// flushed (or at once for an error code).
func (c *Conn) WriteGoAway(code ErrCode, debug []byte) error {
	if c.err != nil {
		return ErrConnClosed
	}
	c.shutdownPend = false
	c.writeGoAway(c.lastPeerStream, code, debug)
	return nil
}

// Shutdown starts a graceful shutdown (RFC 9113 section 6.8). Server role:
// a GOAWAY with last stream id 2^31-1 warns the client, and a PING measures
// a round trip; when its ACK arrives the final GOAWAY, with the real last
// stream id, follows on its own, so requests in flight when we decided
// are not lost. Client role: one GOAWAY. The owner may call WriteGoAway
// earlier to stop waiting.
func (c *Conn) Shutdown() error {
	if c.err != nil {
		return ErrConnClosed
	}
	if c.goAwaySent {
		return nil
	}
	if c.role == RoleClient {
		c.writeGoAway(0, ErrCodeNo, nil)
		return nil
	}
	c.writeGoAway(maxStreamID, ErrCodeNo, nil)
	c.out = AppendPing(c.out, false, shutdownPing)
	c.shutdownPend = true
	return nil
}

// ShutdownDone reports whether a graceful Shutdown has sent its final
// GOAWAY (the one with the real last stream id).
func (c *Conn) ShutdownDone() bool { return c.goAwaySent && !c.shutdownPend }

func (c *Conn) writeGoAway(last uint32, code ErrCode, debug []byte) {
	if c.goAwaySent {
		last = min(last, c.goAwaySentLast)
	}
	c.out = AppendGoAway(c.out, last, code, debug)
	c.goAwaySent, c.goAwaySentLast = true, last
}

// writable returns an open stream we may still send on.
func (c *Conn) writable(id uint32) (*stream, error) {
	if c.err != nil {
		return nil, ErrConnClosed
	}
	s := c.stream(id)
	if s == nil || !s.canSend() {
		return nil, ErrStreamNotWritable
	}
	return s, nil
}

// sentEnd applies our END_STREAM.
func (c *Conn) sentEnd(s *stream) {
	if s.sendEnd() {
		c.closeStream(s, closedNormally)
	}
}

// appendHeaderBlock frames c.enc.block as HEADERS plus as many CONTINUATION
// frames as the peer's SETTINGS_MAX_FRAME_SIZE requires.
func (c *Conn) appendHeaderBlock(id uint32, endStream bool) {
	block := c.enc.block
	maxFrame := int(c.peer.MaxFrameSize)
	typ := FrameHeaders
	var flags Flags
	if endStream {
		flags = FlagEndStream
	}
	for {
		chunk := min(len(block), maxFrame)
		if chunk == len(block) {
			flags |= FlagEndHeaders
		}
		c.out = AppendFrameHeader(c.out, FrameHeader{Length: uint32(chunk), Type: typ, Flags: flags, StreamID: id})
		c.out = append(c.out, block[:chunk]...)
		block = block[chunk:]
		if flags.Has(FlagEndHeaders) {
			return
		}
		typ, flags = FrameContinuation, 0
	}
}
