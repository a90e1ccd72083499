package sstable

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"
)

// TestLimiterShared: streams that share a Limiter go at its rate together,
// not each at it; a Reader is paced like a Writer; a nil Limiter does not
// limit; a cancelled context ends a wait, and a wait its context cannot
// outlast takes nothing. Only lower bounds on time are checked, and one
// upper bound half the wait it rules out: a busy machine is slower, never
// faster.
func TestLimiterShared(t *testing.T) {
	const rate = 2 << 20
	atLeast := func(bytes int, took time.Duration) {
		t.Helper()
		if want := time.Duration(float64(bytes-limitBurst) / rate * 0.8 * float64(time.Second)); took < want {
			t.Fatalf("%d bytes at %d B/s took %v, want at least %v", bytes, rate, took, want)
		}
	}
	lim := NewLimiter(rate)
	chunk := make([]byte, 64<<10)
	start := time.Now()
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			w := lim.Writer(context.Background(), io.Discard)
			for range 16 { // 1MiB each
				if _, err := w.Write(chunk); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	atLeast(2<<20, time.Since(start))

	start = time.Now()
	n, err := io.Copy(io.Discard, NewLimiter(rate).Reader(context.Background(), bytes.NewReader(make([]byte, 1<<20))))
	if err != nil || n != 1<<20 {
		t.Fatalf("paced read: %d bytes, %v", n, err)
	}
	atLeast(1<<20, time.Since(start))

	var none *Limiter
	if w := none.Writer(context.Background(), io.Discard); w != io.Discard {
		t.Fatal("a nil Limiter wrapped its writer")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := NewLimiter(1).Wait(ctx, 1<<10); !errors.Is(err, context.Canceled) {
		t.Fatalf("wait under a cancelled context: %v", err)
	}

	// A wait that cannot be paid for before its context ends takes
	// nothing: the next caller does not sleep off a cancelled stream's
	// bytes (16s of them at 16KiB/s).
	lim = NewLimiter(16 << 10)
	if err := lim.Wait(context.Background(), limitBurst); err != nil { // the bucket's first burst
		t.Fatal(err)
	}
	short, cancelShort := context.WithTimeout(context.Background(), time.Second)
	defer cancelShort()
	if err := lim.Wait(short, limitBurst); err == nil {
		t.Fatal("256KiB at 16KiB/s were granted within 1s")
	}
	start = time.Now()
	if err := lim.Wait(context.Background(), 1<<10); err != nil || time.Since(start) > 8*time.Second {
		t.Fatalf("the wait after a refused one took %v (%v)", time.Since(start), err)
	}
}
