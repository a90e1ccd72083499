package sstable

import (
	"context"
	"io"

	"golang.org/x/time/rate"
)

// limitBurst bounds how many bytes pass at once above a Limiter's rate,
// after a pause: enough to keep a transport busy, small enough that no
// second carries much more than the rate. Reads and writes are paced in
// pieces of at most this size.
const limitBurst = 256 << 10

// Limiter paces bytes to one rate, however many streams share it: a token
// bucket (golang.org/x/time/rate) of limitBurst bytes, so over any stretch
// of time at most rate*elapsed + limitBurst bytes pass. A wait that ends
// early gives back what it had not yet been granted. A nil *Limiter does
// not limit.
type Limiter struct{ r *rate.Limiter }

// NewLimiter returns a Limiter of bytesPerSec, or nil (no limit) when it
// is 0 or less.
func NewLimiter(bytesPerSec int64) *Limiter {
	if bytesPerSec <= 0 {
		return nil
	}
	return &Limiter{r: rate.NewLimiter(rate.Limit(bytesPerSec), limitBurst)}
}

// Wait takes n bytes (at most limitBurst) from l and returns once they are
// paid for, or with an error if ctx ends first or would end before then.
func (l *Limiter) Wait(ctx context.Context, n int) error {
	if l == nil {
		return ctx.Err()
	}
	return l.r.WaitN(ctx, n)
}

// Writer returns w paced by l (w itself when l is nil).
func (l *Limiter) Writer(ctx context.Context, w io.Writer) io.Writer {
	if l == nil {
		return w
	}
	return &limitedWriter{ctx: ctx, l: l, w: w}
}

// Reader returns r paced by l (r itself when l is nil): each read is paid
// for after it, so a sender waits behind the transport's window.
func (l *Limiter) Reader(ctx context.Context, r io.Reader) io.Reader {
	if l == nil {
		return r
	}
	return &limitedReader{ctx: ctx, l: l, r: r}
}

type limitedWriter struct {
	ctx context.Context
	l   *Limiter
	w   io.Writer
}

func (lw *limitedWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		chunk := p[:min(len(p), limitBurst)]
		if err := lw.l.Wait(lw.ctx, len(chunk)); err != nil {
			return n, err
		}
		m, err := lw.w.Write(chunk)
		n += m
		if err != nil {
			return n, err
		}
		p = p[m:]
	}
	return n, nil
}

type limitedReader struct {
	ctx context.Context
	l   *Limiter
	r   io.Reader
}

func (lr *limitedReader) Read(p []byte) (int, error) {
	n, err := lr.r.Read(p[:min(len(p), limitBurst)])
	if n > 0 {
		if werr := lr.l.Wait(lr.ctx, n); werr != nil {
			return n, werr
		}
	}
	return n, err
}
