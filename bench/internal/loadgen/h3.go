// SPDX-License-Identifier: GPL-3.0-only

package loadgen

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

// H3ServerName is the SNI the HTTP/3 load sends: a name on the bench
// certificate, so that every target picks it without a default-SNI setting.
const H3ServerName = "localhost"

// H3 is the HTTP/3 load (quic-go's HTTP/3 client, since Debian's h2load is
// built without QUIC): o.Connections QUIC connections to o.URL (https://),
// each its own UDP socket, with o.Streams requests in flight on each, for
// o.Duration. Each request is a GET whose body is read to the end; latency
// runs from sending the request to the last body byte. A connection that
// fails is dialled again (each failed dial counts as a connect error, and
// the load on it pauses 50 ms). Non2xx counts 1xx, 3xx, 4xx and 5xx, as
// h2load does; errors of an exchange are read errors, or timeouts when
// o.Timeout ran out.
func H3(ctx context.Context, o Options) Result {
	var (
		mu   sync.Mutex
		lats []time.Duration
		res  Result
		wg   sync.WaitGroup
	)
	u, err := url.Parse(o.URL)
	if err != nil || u.Scheme != "https" {
		res.ConnectErrors = 1
		return res
	}
	headers := http.Header{}
	for _, h := range o.Headers {
		if name, value, ok := strings.Cut(h, ":"); ok {
			headers.Add(strings.TrimSpace(name), strings.TrimSpace(value))
		}
	}
	timeout := max(o.Timeout, time.Second)
	start := time.Now()
	deadline := start.Add(o.Duration)
	ctx, cancel := context.WithDeadline(ctx, deadline.Add(timeout))
	defer cancel()
	conns := make([]*h3Conn, max(o.Connections, 1))
	for i := range conns {
		c := &h3Conn{addr: u.Host}
		conns[i] = c
		for range max(o.Streams, 1) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var local []time.Duration
				var st Result
				defer func() {
					mu.Lock()
					lats = append(lats, local...)
					res.ConnectErrors += st.ConnectErrors
					res.ReadErrors += st.ReadErrors
					res.Timeouts += st.Timeouts
					res.Non2xx += st.Non2xx
					res.Bytes += st.Bytes
					mu.Unlock()
				}()
				for time.Now().Before(deadline) && ctx.Err() == nil {
					cc, err := c.get(ctx)
					if err != nil {
						st.ConnectErrors++
						sleepCtx(ctx, 50*time.Millisecond)
						continue
					}
					t0 := time.Now()
					status, n, err := h3Get(ctx, cc, u, headers, timeout)
					st.Bytes += uint64(n)
					switch {
					case errors.Is(err, context.DeadlineExceeded):
						st.Timeouts++
						continue
					case err != nil:
						if ctx.Err() == nil {
							st.ReadErrors++
						}
						continue
					}
					local = append(local, time.Since(t0))
					if status < 200 || status > 299 {
						st.Non2xx++
					}
				}
			}()
		}
	}
	wg.Wait()
	res.Duration = time.Since(start)
	for _, c := range conns {
		c.close()
	}
	res.Requests = uint64(len(lats))
	if res.Duration > 0 {
		res.RPS = float64(res.Requests) / res.Duration.Seconds()
	}
	if len(lats) > 0 {
		slices.Sort(lats)
		res.P50, res.P90, res.P99, res.P999 = Percentile(lats, 50), Percentile(lats, 90), Percentile(lats, 99), Percentile(lats, 99.9)
		res.Max = lats[len(lats)-1]
	}
	return res
}

// h3Get sends one GET and reads the response body to the end.
func h3Get(ctx context.Context, cc *http3.ClientConn, u *url.URL, headers http.Header, timeout time.Duration) (status, n int, err error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return 0, 0, err
	}
	for k, v := range headers {
		req.Header[k] = v
	}
	resp, err := cc.RoundTrip(req)
	if err != nil {
		return 0, 0, err
	}
	read, err := io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode, int(read), err
}

// h3Conn is one QUIC connection of the load, dialled again when it fails.
// Its methods may be called from any goroutine.
type h3Conn struct {
	addr string

	mu sync.Mutex
	qc *quic.Conn
	cc *http3.ClientConn
}

// h3TLS trusts any certificate: the bench's own, self-signed, on loopback.
func h3TLS() *tls.Config {
	return &tls.Config{
		InsecureSkipVerify: true, // the bench's self-signed certificate, on loopback
		ServerName:         H3ServerName,
		NextProtos:         []string{http3.NextProtoH3},
	}
}

// get returns the connection's HTTP/3 client, dialling when there is none
// or the last one closed.
func (c *h3Conn) get(ctx context.Context) (*http3.ClientConn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.qc != nil && c.qc.Context().Err() == nil {
		return c.cc, nil
	}
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	qc, err := quic.DialAddr(dctx, c.addr, h3TLS(), &quic.Config{MaxIdleTimeout: 30 * time.Second})
	if err != nil {
		return nil, err
	}
	c.qc = qc
	c.cc = (&http3.Transport{}).NewClientConn(qc)
	return c.cc, nil
}

func (c *h3Conn) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.qc != nil {
		_ = c.qc.CloseWithError(0, "")
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
