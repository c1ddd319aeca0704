// SPDX-License-Identifier: GPL-3.0-only

package h2

import (
	"errors"

	"golang.org/x/net/http2/hpack"
)

// decoder wraps one connection's HPACK decoder with the limits of RFC 9113
// section 10.5.1 and a guard against HPACK bombs.
//
// The decoder itself (x/net/http2/hpack) hands each field over as strings.
// Fields served from the static or dynamic table reuse the table's strings
// and cost nothing; literal fields allocate their strings (x/net converts
// them, Huffman-coded or not). The fields are then copied into the
// headBuilder's reusable buffer, so the Head never aliases decoder memory.
type decoder struct {
	dec *hpack.Decoder
	hb  headBuilder

	maxListSize uint32 // SETTINGS_MAX_HEADER_LIST_SIZE we advertise
	ratio       int    // decoded bytes per encoded byte, past floor
	floor       int    // decoded bytes always allowed

	// needSizeUpdate is set when the peer acknowledged a table size smaller
	// than the one it was allowed to use: its next block must begin with a
	// dynamic table size update (RFC 7541 section 4.2).
	needSizeUpdate bool

	// per block
	listSize   uint32
	decoded    int
	encodedLen int
	tooLarge   bool
	bomb       bool
}

func (d *decoder) init(lim *Limits) {
	d.maxListSize = lim.MaxHeaderListSize
	d.ratio = lim.HPACKMaxRatio
	d.floor = lim.HPACKRatioFloor
	// Until the peer acknowledges our SETTINGS it may use the default table
	// size; a larger one of ours may be used at once.
	d.dec = hpack.NewDecoder(max(defaultHeaderTable, lim.HeaderTableSize), d.emit)
	// A single string larger than the whole list limit cannot be accepted;
	// x/net then stops decoding, which desynchronizes the table, so this is
	// a connection error.
	d.dec.SetMaxStringLength(int(lim.MaxHeaderListSize))
}

// settingsAcked applies our SETTINGS_HEADER_TABLE_SIZE once the peer has
// acknowledged it.
func (d *decoder) settingsAcked(tableSize uint32) {
	if tableSize < defaultHeaderTable {
		d.dec.SetAllowedMaxDynamicTableSize(tableSize)
		d.needSizeUpdate = true
	}
}

func (d *decoder) emit(f hpack.HeaderField) {
	d.listSize += f.Size()
	if d.listSize > d.maxListSize {
		// Keep decoding for the table's sake, but stop delivering: the
		// stream is refused, and the rest of the block costs no copying.
		d.tooLarge = true
		d.dec.SetEmitEnabled(false)
		return
	}
	d.decoded += len(f.Name) + len(f.Value)
	if d.decoded > d.floor && d.decoded > d.ratio*d.encodedLen {
		d.bomb = true
		d.dec.SetEmitEnabled(false)
		return
	}
	d.hb.add(f.Name, f.Value)
}

// decode decodes one complete header block into d.hb in the given mode. A
// non-nil result is a connection error; stream-level problems are in d.hb.err
// (or reported by tooLarge()).
func (d *decoder) decode(block []byte, mode blockMode, allowProtocol bool) *ConnError {
	if d.needSizeUpdate {
		if len(block) == 0 || block[0]&0xe0 != 0x20 {
			return ErrHPACKMissingSizeUpdate
		}
		d.needSizeUpdate = false
	}
	d.hb.reset(mode, allowProtocol)
	d.listSize, d.decoded, d.encodedLen = 0, 0, len(block)
	d.tooLarge, d.bomb = false, false
	d.dec.SetEmitEnabled(mode != modeDiscard)
	_, err := d.dec.Write(block)
	if err == nil {
		err = d.dec.Close()
	} else {
		_ = d.dec.Close() // drop a saved partial field; the connection ends anyway
	}
	if err != nil {
		if errors.Is(err, hpack.ErrStringLength) {
			return ErrHeaderFieldTooLarge
		}
		return ErrHPACKDecode
	}
	if d.bomb {
		return ErrHPACKBomb
	}
	return nil
}

// encoder is one connection's HPACK encoder plus the scratch it encodes
// into.
type encoder struct {
	enc   *hpack.Encoder
	block []byte // the encoded block of the last encode call
	lower []byte // scratch for lower-casing names

	// intern holds strings the encoder may keep in its dynamic table:
	// x/net's Encoder takes strings, and converting each []byte would
	// allocate on every response. A direct-mapped cache: fixed memory, and a
	// value that changes per response (date, content-length) only evicts
	// its own slot.
	intern [internSlots]string

	peerMaxListSize uint32
}

// internSlots sizes the cache (a power of two); strings longer than
// internMaxLen are converted each time.
const (
	internSlots  = 128
	internMaxLen = 64
)

func (e *encoder) init(maxTable uint32) {
	e.enc = hpack.NewEncoder(e)
	// Our encoder's table is at most the peer's SETTINGS_HEADER_TABLE_SIZE
	// (4096 until it says otherwise) and at most maxTable, our memory cap.
	e.enc.SetMaxDynamicTableSizeLimit(min(maxTable, defaultHeaderTable))
	e.peerMaxListSize = ^uint32(0)
}

// Write collects the encoder's output; it implements io.Writer for
// hpack.Encoder and never fails.
func (e *encoder) Write(p []byte) (int, error) {
	e.block = append(e.block, p...)
	return len(p), nil
}

// setPeerTableSize honours the peer's SETTINGS_HEADER_TABLE_SIZE; the
// encoder signals the change at the start of the next block.
func (e *encoder) setPeerTableSize(v, maxTable uint32) {
	v = min(v, maxTable)
	e.enc.SetMaxDynamicTableSizeLimit(v)
	e.enc.SetMaxDynamicTableSize(v)
}

func (e *encoder) str(b []byte) string {
	if len(b) > internMaxLen {
		return string(b)
	}
	// FNV-1a picks the slot.
	h := uint32(2166136261)
	for _, c := range b {
		h = (h ^ uint32(c)) * 16777619
	}
	slot := &e.intern[h&(internSlots-1)]
	if *slot == string(b) {
		return *slot
	}
	*slot = string(b)
	return *slot
}

// lowerName returns b lower-cased, in scratch when it had upper case.
func (e *encoder) lowerName(b []byte) []byte {
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			e.lower = append(e.lower[:0], b...)
			for j := i; j < len(e.lower); j++ {
				e.lower[j] = lower(e.lower[j])
			}
			return e.lower
		}
	}
	return b
}

// skipOnSend reports the connection-specific fields HTTP/2 forbids (RFC
// 9113 section 8.2.2): an intermediary drops them rather than send a
// malformed message.
func skipOnSend(name, value []byte) bool {
	switch string(name) {
	case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
		return true
	case "te":
		return !equalFoldBytes(value, "trailers")
	}
	return false
}

// validSendField checks a regular field before it is encoded: a field that
// the peer would find malformed fails the whole head.
func validSendField(name, value []byte) bool {
	if len(name) == 0 || name[0] == ':' {
		return false
	}
	for _, c := range name {
		if !isToken[c] {
			return false
		}
	}
	for _, c := range value {
		if c == 0 || c == '\r' || c == '\n' {
			return false
		}
	}
	return true
}

// encode HPACK-encodes a head (request or response pseudo-headers according
// to kind, then the regular fields) into e.block. Nothing reaches the
// encoder (whose table state is shared with the peer) unless the whole head
// is valid and within the peer's header list limit.
func (e *encoder) encode(h *Head, kind HeadKind) error {
	size, err := e.check(h, kind)
	if err != nil {
		return err
	}
	if size > uint64(e.peerMaxListSize) {
		return ErrPeerHeaderListSize
	}
	e.block = e.block[:0]
	switch kind {
	case KindRequest:
		e.field(":method", h.Method)
		if h.Scheme != nil {
			e.field(":scheme", h.Scheme)
		}
		if h.Authority != nil {
			e.field(":authority", h.Authority)
		}
		if h.Path != nil {
			e.field(":path", h.Path)
		}
		if h.Protocol != nil {
			e.field(":protocol", h.Protocol)
		}
	case KindResponse, KindInformational:
		var st [3]byte
		st[0], st[1], st[2] = byte('0'+h.Status/100), byte('0'+h.Status/10%10), byte('0'+h.Status%10)
		e.field(":status", st[:])
	}
	for i := range h.Fields {
		f := &h.Fields[i]
		name := e.lowerName(f.Name)
		if skipOnSend(name, f.Value) {
			continue
		}
		// The encoder writes to its own bytes.Buffer, which never fails.
		_ = e.enc.WriteField(hpack.HeaderField{Name: e.str(name), Value: e.str(f.Value)})
	}
	return nil
}

func (e *encoder) field(name string, value []byte) {
	_ = e.enc.WriteField(hpack.HeaderField{Name: name, Value: e.str(value)})
}

// check validates a head for sending and returns its header list size
// (RFC 9113 section 6.5.2: name + value + 32 per field).
func (e *encoder) check(h *Head, kind HeadKind) (uint64, error) {
	var size uint64
	add := func(name string, v []byte) { size += uint64(len(name) + len(v) + 32) }
	switch kind {
	case KindRequest:
		if len(h.Method) == 0 {
			return 0, ErrInvalidHead
		}
		add(":method", h.Method)
		if h.Scheme != nil {
			add(":scheme", h.Scheme)
		}
		if h.Authority != nil {
			add(":authority", h.Authority)
		}
		if h.Path != nil {
			add(":path", h.Path)
		}
		if h.Protocol != nil {
			add(":protocol", h.Protocol)
		}
		// Classic CONNECT carries :authority only; everything else, extended
		// CONNECT included, needs :scheme and :path.
		if (!h.IsConnect() || h.Protocol != nil) && (h.Scheme == nil || len(h.Path) == 0) {
			return 0, ErrInvalidHead
		}
		if h.IsConnect() && h.Protocol == nil && (len(h.Authority) == 0 || h.Scheme != nil || h.Path != nil) {
			return 0, ErrInvalidHead
		}
	case KindResponse, KindInformational:
		if h.Status < 100 || h.Status > 599 || h.Status == 101 || (kind == KindResponse) != (h.Status >= 200) {
			return 0, ErrInvalidHead
		}
		size += 7 + 3 + 32
	}
	for i := range h.Fields {
		f := &h.Fields[i]
		if !validSendField(f.Name, f.Value) {
			return 0, ErrInvalidHead
		}
		size += uint64(len(f.Name) + len(f.Value) + 32)
	}
	return size, nil
}
