package sstable

import (
	"context"
	"io"
	"sync"
	"time"
)

// limitBurst bounds how many bytes pass at once above a Limiter's rate,
// after a pause: enough to keep a transport busy, small enough that no
// second carries much more than the rate.
const limitBurst = 256 << 10

// Limiter paces bytes to one rate, however many streams share it: a token
// bucket that starts empty and holds at most limitBurst bytes. A caller
// takes its bytes on credit and sleeps off the debt, its own and that of
// the callers before it, so over any stretch of time at most
// rate*elapsed + limitBurst bytes pass. A nil *Limiter does not limit.
type Limiter struct {
	mu     sync.Mutex
	rate   float64   // bytes per second
	tokens float64   // REQUIRES mu; negative while in debt
	last   time.Time // REQUIRES mu; when tokens was last brought up to date
}

// NewLimiter returns a Limiter of bytesPerSec, or nil (no limit) when it
// is 0 or less.
func NewLimiter(bytesPerSec int64) *Limiter {
	if bytesPerSec <= 0 {
		return nil
	}
	return &Limiter{rate: float64(bytesPerSec), last: time.Now()}
}

// Wait takes n bytes from l and returns once they are paid for, or with
// ctx's error if it ends first, giving back the bytes not yet paid for
// (so a cancelled stream's pacing is not charged to the next one).
func (l *Limiter) Wait(ctx context.Context, n int) error {
	if l == nil || ctx.Err() != nil {
		return ctx.Err()
	}
	l.mu.Lock()
	now := time.Now()
	l.tokens = min(limitBurst, l.tokens+now.Sub(l.last).Seconds()*l.rate) - float64(n)
	l.last = now
	debt := -l.tokens
	l.mu.Unlock()
	if debt <= 0 {
		return ctx.Err()
	}
	wait := time.Duration(debt / l.rate * float64(time.Second))
	paid := now.Add(wait)
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
		// These n bytes are the last paid for by the time paid: what is
		// left of them then is the time still to go at the rate.
		l.mu.Lock()
		l.tokens += min(float64(n), max(0, time.Until(paid).Seconds()*l.rate))
		l.mu.Unlock()
		return ctx.Err()
	case <-t.C:
		return nil
	}
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
