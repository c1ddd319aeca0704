// SPDX-License-Identifier: GPL-3.0-only

package guards

import "time"

// Slow-loris and slow-POST: a client that holds a connection (and its
// buffers) open by sending its head or body a few bytes at a time.
const (
	// SlowLoris: the request line and header section did not arrive
	// within timeouts.header_read (408, close).
	SlowLoris Name = "slow_loris"
	// SlowPost: a request body slower than timeouts.body_min_rate after
	// timeouts.body_min_rate_grace (408, close).
	SlowPost Name = "slow_post"
	// BodyIdle: a request body paused longer than timeouts.body_idle.
	BodyIdle Name = "body_idle"
	// SendStall: an HTTP/1.1 client took no byte of the response that
	// waits for it for timeouts.body_idle (slow read, zero window): close.
	SendStall Name = "send_stall"
	// H2SlowHeaders: an HTTP/2 header block (HEADERS without END_HEADERS,
	// then CONTINUATION) still open after timeouts.header_read (GOAWAY
	// ENHANCE_YOUR_CALM, close).
	H2SlowHeaders Name = "h2_slow_headers"
	// H3SlowHeaders: an HTTP/3 request stream's head not complete within
	// timeouts.header_read (the stream is reset).
	H3SlowHeaders Name = "h3_slow_loris"
	// H2SlowBody: an HTTP/2 request body slower than timeouts.body_min_rate
	// after its grace, or paused longer than timeouts.body_idle (408 on the
	// stream, RST_STREAM; the connection goes on).
	H2SlowBody Name = "h2_slow_body"
)

// MinRate is the slow-POST rule: a body must average at least PerSecond
// bytes a second once Grace has passed since it started.
type MinRate struct {
	PerSecond int64 // 0 disables
	Grace     time.Duration
}

// TooSlow reports whether n bytes received between start and now (UnixNano)
// are below the rate.
func (r MinRate) TooSlow(n, start, now int64) bool {
	if r.PerSecond <= 0 {
		return false
	}
	el := now - start
	return el > int64(r.Grace) && n*int64(time.Second)/el < r.PerSecond
}
