// SPDX-License-Identifier: GPL-3.0-only

package guards

// Buffer guards: a peer that sends (or refuses to read) far more than the
// gateway holds for it is cut instead of buffered without bound
// (DESIGN.md invariant 3). They are connection guards.
const (
	// PipelineFlood: pipelined HTTP/1 requests beyond
	// max_header_bytes + max_inflight_bytes wait in the inbound buffer.
	PipelineFlood Name = "pipeline_flood"
	// DetachWaitOverflow: a body arriving while its exchange waits to
	// leave the loop overflows the inbound bound.
	DetachWaitOverflow Name = "detach_wait_overflow"
	// DetachWaitTimeout: the exchange could not leave the loop within
	// body_idle.
	DetachWaitTimeout Name = "detach_wait_timeout"
	// DetachWait: the pump goroutines are all busy (counted only).
	DetachWait Name = "detach_wait"
	// UpstreamWindowOverflow: the client keeps sending while an HTTP/2
	// upstream's window holds its body back.
	UpstreamWindowOverflow Name = "upstream_window_overflow"
	// DialWaitOverflow: a long body arriving while its upstream is being
	// dialed overflows the inbound bound.
	DialWaitOverflow Name = "dial_wait_overflow"
	// H2StreamBufferOverflow: an HTTP/2 stream's pending response DATA
	// exceeded four times its bound while its request body still flows.
	H2StreamBufferOverflow Name = "h2_stream_buffer_overflow"
	// QueueFull: the listener's per-loop queue (queue_size) is full (503).
	QueueFull Name = "queue_full"
	// RingFullPrefix + stage: a ring between two stages is full (503).
	RingFullPrefix = "ring_full_"
)

// RingFull is the guard of the ring in front of stage.
func RingFull(stage string) Name { return Name(RingFullPrefix + stage) }
