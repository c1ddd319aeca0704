// SPDX-License-Identifier: GPL-3.0-only

package h2

// Limits are the bounds a Conn advertises and enforces. Zero fields take the
// defaults of DefaultLimits, which follow Envoy's guidance for an edge
// proxy.
type Limits struct {
	// MaxConcurrentStreams is our SETTINGS_MAX_CONCURRENT_STREAMS: streams
	// the peer may have open at once; more are refused with
	// RST_STREAM(REFUSED_STREAM). Default 100.
	MaxConcurrentStreams uint32
	// InitialStreamWindow is our SETTINGS_INITIAL_WINDOW_SIZE: how much a
	// peer may send on a stream before we return credit. Default 65536.
	InitialStreamWindow uint32
	// ConnWindow is the connection receive window; the difference to the
	// protocol's 65535 is granted with a WINDOW_UPDATE on stream 0 right
	// after our SETTINGS. Default 1 MiB.
	ConnWindow uint32
	// MaxFrameSize is our SETTINGS_MAX_FRAME_SIZE: the largest frame payload
	// we accept. Default (and minimum) 16384.
	MaxFrameSize uint32
	// MaxHeaderListSize is our SETTINGS_MAX_HEADER_LIST_SIZE: the decoded
	// size of a header block (name + value + 32 per field). Larger blocks
	// reset their stream. Default 64 KiB.
	MaxHeaderListSize uint32
	// HeaderTableSize is our SETTINGS_HEADER_TABLE_SIZE, the HPACK dynamic
	// table of our decoder. Default 4096.
	HeaderTableSize uint32
	// MaxEncoderTableSize caps the dynamic table of our encoder whatever the
	// peer allows. Default 4096.
	MaxEncoderTableSize uint32
	// MaxContinuationFrames caps the CONTINUATION frames of one header
	// block (CVE-2024-27316 class). Default 32.
	MaxContinuationFrames int
	// MaxHeaderBlockBytes caps the encoded bytes of one header block,
	// checked on every fragment before anything is decoded. Default 80 KiB.
	MaxHeaderBlockBytes int
	// HPACKMaxRatio caps decoded bytes per encoded byte of a header block
	// once more than HPACKRatioFloor bytes have been decoded (an HPACK bomb
	// is a connection error). Defaults 32 and 16 KiB.
	HPACKMaxRatio   int
	HPACKRatioFloor int
	// MaxQueuedControlFrames caps the control frames we queue in answer to
	// the peer (SETTINGS ACK, PING ACK, RST_STREAM) while the owner has not
	// flushed them: past it the peer is flooding us. Default 1000.
	MaxQueuedControlFrames int
	// MaxOutputBytes bounds the output buffer for DATA: WriteData accepts
	// no more than fits. Control frames and heads are not held back by
	// it. Default 256 KiB.
	MaxOutputBytes int
	// ClosedStreams is how many recently closed streams are remembered, to
	// answer late frames as RFC 9113 section 5.1 asks. Default 128.
	ClosedStreams int
	// EnableConnectProtocol advertises SETTINGS_ENABLE_CONNECT_PROTOCOL
	// (RFC 8441, server role): requests may then carry :protocol.
	EnableConnectProtocol bool
}

// DefaultLimits returns the defaults described on Limits.
func DefaultLimits() Limits {
	return Limits{
		MaxConcurrentStreams:   100,
		InitialStreamWindow:    64 << 10,
		ConnWindow:             1 << 20,
		MaxFrameSize:           defaultMaxFrame,
		MaxHeaderListSize:      64 << 10,
		HeaderTableSize:        defaultHeaderTable,
		MaxEncoderTableSize:    defaultHeaderTable,
		MaxContinuationFrames:  32,
		MaxHeaderBlockBytes:    80 << 10,
		HPACKMaxRatio:          32,
		HPACKRatioFloor:        16 << 10,
		MaxQueuedControlFrames: 1000,
		MaxOutputBytes:         256 << 10,
		ClosedStreams:          128,
	}
}

// normalized fills zero fields with defaults and clamps the others into
// what the protocol allows.
func (l Limits) normalized() Limits {
	d := DefaultLimits()
	setU := func(v *uint32, def uint32) {
		if *v == 0 {
			*v = def
		}
	}
	setI := func(v *int, def int) {
		if *v <= 0 {
			*v = def
		}
	}
	setU(&l.MaxConcurrentStreams, d.MaxConcurrentStreams)
	setU(&l.InitialStreamWindow, d.InitialStreamWindow)
	setU(&l.ConnWindow, d.ConnWindow)
	setU(&l.MaxFrameSize, d.MaxFrameSize)
	setU(&l.MaxHeaderListSize, d.MaxHeaderListSize)
	setU(&l.HeaderTableSize, d.HeaderTableSize)
	setU(&l.MaxEncoderTableSize, d.MaxEncoderTableSize)
	setI(&l.MaxContinuationFrames, d.MaxContinuationFrames)
	setI(&l.MaxHeaderBlockBytes, d.MaxHeaderBlockBytes)
	setI(&l.HPACKMaxRatio, d.HPACKMaxRatio)
	setI(&l.HPACKRatioFloor, d.HPACKRatioFloor)
	setI(&l.MaxQueuedControlFrames, d.MaxQueuedControlFrames)
	setI(&l.MaxOutputBytes, d.MaxOutputBytes)
	setI(&l.ClosedStreams, d.ClosedStreams)
	l.InitialStreamWindow = min(l.InitialStreamWindow, maxWindow)
	l.ConnWindow = min(max(l.ConnWindow, defaultWindow), maxWindow)
	l.MaxFrameSize = min(max(l.MaxFrameSize, defaultMaxFrame), maxFrameSizeLimit)
	return l
}
