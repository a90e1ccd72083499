package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
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

// dialTimeout bounds connecting to a peer for a call without a deadline
// (a range stream), as fasthttp's own Dial does.
const dialTimeout = 3 * time.Second

// dialIdle dials the client's connections as fasthttp does, each wrapped
// in an idleConn.
func dialIdle(addr string, timeout time.Duration) (net.Conn, error) {
	if timeout <= 0 {
		timeout = dialTimeout
	}
	c, err := fasthttp.DialTimeout(addr, timeout)
	if err != nil {
		return nil, err
	}
	return &idleConn{Conn: c, none: true}, nil
}

// idleConn gives every read of a call without a read deadline (fasthttp
// sets one for each call with a deadline, and clears it for one without)
// a deadline of spanIdle from its start: a range stream, which has no
// overall deadline, so fails when its peer stops sending, its headers
// included, however long the whole stream takes. Calls with deadlines
// are unchanged. Only the connection's own goroutine uses it.
type idleConn struct {
	net.Conn
	none bool // fasthttp left the read deadline unset
}

func (c *idleConn) SetReadDeadline(t time.Time) error {
	c.none = t.IsZero()
	return c.Conn.SetReadDeadline(t)
}

func (c *idleConn) SetDeadline(t time.Time) error {
	c.none = t.IsZero()
	return c.Conn.SetDeadline(t)
}

func (c *idleConn) Read(p []byte) (int, error) {
	if c.none {
		if err := c.Conn.SetReadDeadline(time.Now().Add(spanIdle)); err != nil {
			return 0, err
		}
	}
	return c.Conn.Read(p)
}

// retryIfErr is fasthttp's retry rule (idempotent calls are tried again
// on a fresh connection, within their deadline), but for range streams:
// they have no deadline, so a peer that never answers would be waited on
// spanIdle for each of the attempts; the puller retries the range later.
func retryIfErr(req *fasthttp.Request, _ int, _ error) (resetTimeout, retry bool) {
	if bytes.HasPrefix(req.URI().PathOriginal(), []byte("/internal/span")) {
		return false, false
	}
	h := &req.Header
	return false, h.IsGet() || h.IsHead() || h.IsPut()
}

// OpenSpan asks addr for its records of the token span [lo, hi) and returns
// the stream. A stream that stalls for 30s fails; closing it, or ctx
// ending, stops it (its connection is closed, not reused).
func (t *Transport) OpenSpan(ctx context.Context, addr string, lo, hi uint64) (io.ReadCloser, error) {
	uri := "/internal/span?lo=" + strconv.FormatUint(lo, 16) + "&hi=" + strconv.FormatUint(hi, 16)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	req.SetRequestURI(t.url(addr, uri))
	t.sign(&req.Header, fasthttp.MethodGet, uri, nil)
	resp.StreamBody = true
	// No deadline: the stream takes as long as it takes (idleConn bounds
	// each read). The wait for the headers stops with ctx too; the call
	// then finishes on its own.
	done := make(chan error, 1)
	go func() { done <- t.client.Do(req, resp) }()
	var err error
	select {
	case err = <-done:
		fasthttp.ReleaseRequest(req)
	case <-ctx.Done():
		go func() {
			if <-done == nil {
				resp.CloseBodyStream()
			}
			fasthttp.ReleaseResponse(resp)
			fasthttp.ReleaseRequest(req)
		}()
		return nil, fmt.Errorf("%s/internal/span: %w", addr, ctx.Err())
	}
	if err != nil {
		fasthttp.ReleaseResponse(resp)
		return nil, fmt.Errorf("%s/internal/span: %w", addr, t.explain(addr, err))
	}
	if code := resp.StatusCode(); code != fasthttp.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.BodyStream(), 512))
		resp.CloseBodyStream()
		fasthttp.ReleaseResponse(resp)
		return nil, fmt.Errorf("%s/internal/span: status %d: %s", addr, code, clip(b))
	}
	bs, ok := resp.BodyStream().(fasthttp.ReadCloserWithError)
	if !ok {
		// BUG: fasthttp streams a body whenever StreamBody is set.
		resp.CloseBodyStream()
		fasthttp.ReleaseResponse(resp)
		return nil, fmt.Errorf("%s/internal/span: BUG: no body stream", addr)
	}
	sb := &spanBody{resp: resp, bs: bs}
	sb.stopCtx = context.AfterFunc(ctx, sb.interrupt)
	sb.Reader = IdleReader(bs, spanIdle, sb.interrupt)
	return sb, nil
}

// spanBody is a range stream's response body, read through IdleReader.
type spanBody struct {
	io.Reader
	resp    *fasthttp.Response
	bs      fasthttp.ReadCloserWithError
	stopCtx func() bool
	closed  atomic.Bool
}

// errStopped is why a range stream stopped before its end.
var errStopped = errors.New("range stream stopped")

// interrupt makes a blocked Read return, from any goroutine: fasthttp
// closes the stream's connection (once; Close's own close is then a no-op).
func (b *spanBody) interrupt() { b.bs.CloseWithError(errStopped) }

func (b *spanBody) Close() error {
	if !b.closed.CompareAndSwap(false, true) {
		return nil
	}
	b.stopCtx()
	err := b.resp.CloseBodyStream()
	fasthttp.ReleaseResponse(b.resp)
	return err
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
		return nil, fmt.Errorf("%s/internal/merkle: %w", addr, t.explain(addr, err))
	}
	if resp.StatusCode() != fasthttp.StatusOK {
		return nil, fmt.Errorf("%s/internal/merkle: status %d: %s", addr, resp.StatusCode(), clip(resp.Body()))
	}
	return DecodeMerkle(resp.Body())
}
