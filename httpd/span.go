package httpd

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/ringkv/ringkv/peer"
	"github.com/ringkv/ringkv/ring"
)

// spanIdle is how long a range stream may go without a byte before the
// puller gives up on it (and retries later).
const spanIdle = 30 * time.Second

// newSpanClient returns the client of range streams: net/http's, which
// hands a response body over as it arrives (fasthttp's reads it whole
// first), and range streams are long.
func newSpanClient(tc *tls.Config) *http.Client {
	return &http.Client{Transport: &http.Transport{
		ResponseHeaderTimeout: spanIdle, MaxIdleConnsPerHost: 2, IdleConnTimeout: time.Minute,
		TLSClientConfig: tc,
	}}
}

// OpenSpan asks addr for its records of the token span [lo, hi) and returns
// the stream. A stream that stalls for 30s fails.
func (t *Transport) OpenSpan(ctx context.Context, addr string, lo, hi uint64) (io.ReadCloser, error) {
	uri := "/internal/span?lo=" + strconv.FormatUint(lo, 16) + "&hi=" + strconv.FormatUint(hi, 16)
	ctx, cancel := context.WithCancel(ctx)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.url(addr, uri), nil)
	if err != nil {
		cancel()
		return nil, err
	}
	// Signed as net/http sends it.
	t.sign(req.Header, http.MethodGet, req.URL.RequestURI(), nil)
	resp, err := t.span.Do(req)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("%s/internal/span: %w", addr, err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		cancel()
		return nil, fmt.Errorf("%s/internal/span: status %d: %s", addr, resp.StatusCode, clip(b))
	}
	return &idleBody{Reader: IdleReader(resp.Body, spanIdle, cancel), rc: resp.Body, cancel: cancel}, nil
}

// IdleReader returns r failing a Read that waits longer than idle for
// data: stop is called, and must make the blocked Read return (cancel the
// request, close the body), and the error then says why. It keeps a peer
// that stops sending from hanging a long stream, which an overall timeout
// cannot bound.
func IdleReader(r io.Reader, idle time.Duration, stop func()) io.Reader {
	ir := &idleReader{r: r, idle: idle}
	// One timer for the whole stream, reset by each Read, not one per Read.
	ir.t = time.AfterFunc(time.Hour, func() { ir.fired.Store(true); stop() })
	ir.t.Stop()
	return ir
}

type idleReader struct {
	r     io.Reader
	idle  time.Duration
	t     *time.Timer
	fired atomic.Bool // the timer went off: every error from now on is why
}

func (r *idleReader) Read(p []byte) (int, error) {
	r.t.Reset(r.idle)
	n, err := r.r.Read(p)
	r.t.Stop()
	if err != nil && err != io.EOF && r.fired.Load() {
		err = fmt.Errorf("no data for %s: %w", r.idle, err)
	}
	return n, err
}

// idleBody is a response body read through IdleReader, whose Close also
// cancels its request.
type idleBody struct {
	io.Reader
	rc     io.ReadCloser
	cancel context.CancelFunc
}

func (b *idleBody) Close() error {
	err := b.rc.Close()
	b.cancel()
	return err
}

// Merkle asks addr for its Merkle tree of rg at depth.
func (t *Transport) Merkle(ctx context.Context, addr string, rg ring.Range, depth int) (*peer.Merkle, error) {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	uri := "/internal/merkle?start=" + strconv.FormatUint(rg.Start, 16) +
		"&end=" + strconv.FormatUint(rg.End, 16) + "&depth=" + strconv.Itoa(depth)
	req.SetRequestURI(t.url(addr, uri))
	t.sign(&req.Header, fasthttp.MethodGet, uri, nil)
	if err := t.client.DoDeadline(req, resp, deadlineOf(ctx)); err != nil {
		return nil, fmt.Errorf("%s/internal/merkle: %w", addr, err)
	}
	if resp.StatusCode() != fasthttp.StatusOK {
		return nil, fmt.Errorf("%s/internal/merkle: status %d: %s", addr, resp.StatusCode(), clip(resp.Body()))
	}
	return peer.DecodeMerkle(resp.Body())
}
