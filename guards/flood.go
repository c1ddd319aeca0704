// SPDX-License-Identifier: GPL-3.0-only

package guards

import "time"

// Control-frame floods (CVE-2019-9511 … 9518: ping, settings, reset,
// empty-frame, window-update and priority floods). The codec caps the
// control frames it queues in answer (Envoy's 1000 outbound control
// frames: ControlFlood); the session counts what the client sends in a
// one-second window and closes the connection, GOAWAY ENHANCE_YOUR_CALM,
// past max_control_frames_per_second (ControlFloodRate) or
// max_window_updates_per_second (WindowUpdateFlood).
const (
	ControlFlood      Name = "h2_control_flood"
	ControlFloodRate  Name = "h2_control_flood_rate"
	WindowUpdateFlood Name = "h2_window_update_flood"
)

// CONTINUATION flood and HPACK bomb: the codec checks the header block's
// frame count and bytes before decoding (continuation_flood,
// header_block_too_large) and the decoded size and ratio while decoding
// (hpack_bomb, header_list_too_large); the session records the verdict
// under these names.
const (
	ContinuationFlood   Name = "h2_continuation_flood"
	HeaderBlockTooLarge Name = "h2_header_block_too_large"
	HPACKBomb           Name = "h2_hpack_bomb"
	HeaderListTooLarge  Name = "h2_header_list_too_large"
)

// Window counts events in fixed one-second windows. The zero value is
// ready; it is owned by one goroutine.
type Window struct {
	start int64 // UnixNano of the current window
	n     int
}

// Add counts k events at now (UnixNano) and reports whether the window's
// count exceeds limit.
func (w *Window) Add(k int, now int64, limit int) bool {
	if now-w.start >= int64(time.Second) {
		w.start, w.n = now, 0
	}
	w.n += k
	return w.n > limit
}

// Glitches is HAProxy's glitch score: protocol violations, refusals and
// premature resets of one connection weighted into one counter, so that an
// attacker who keeps each abuse under its own limit is still closed at the
// threshold.
const Glitches Name = "h2_glitches"

// Glitch weights: each is one glitch, except where a kind is both cheap for
// the client and costly for the gateway.
const (
	GlitchStreamError   = 1 // a stream error the client's frames caused
	GlitchRefusedStream = 1 // a stream refused for concurrency
	GlitchPrematureRst  = 1 // a stream reset within premature_reset_lifetime
	GlitchEmptyFrame    = 1 // DATA without payload and without END_STREAM
	GlitchUnknownFrame  = 1 // a frame of an unknown type
)

// Zero-window stall and slow read: response DATA that waits behind a zero
// window without progress for stall_timeout resets its stream
// (StreamStall); a connection whose socket takes nothing for as long while
// output is pending is closed (ConnStall). What waits stays capped
// meanwhile (128 KiB a stream, 1 MiB a connection).
const (
	StreamStall Name = "h2_stream_stall"
	ConnStall   Name = "h2_conn_stall"
)
