package httpd

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// gatherCounter is a collector that reports each Gather of its registry
// on a channel, and collects nothing.
type gatherCounter struct{ gathered chan struct{} }

func (c *gatherCounter) Describe(chan<- *prometheus.Desc) {}
func (c *gatherCounter) Collect(chan<- prometheus.Metric) { c.gathered <- struct{}{} }

// fakeClock is History's clock and ticker in a test: time moves only by
// set, and a tick comes only when the test sends one.
type fakeClock struct {
	mu      sync.Mutex
	t       time.Time
	tick    chan time.Time
	tickers chan bool // true: a ticker started; false: it stopped
}

func (c *fakeClock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }
func (c *fakeClock) newTicker(time.Duration) (<-chan time.Time, func()) {
	c.tickers <- true
	return c.tick, func() { c.tickers <- false }
}

// TestHistorySamplesWhileRead: a tick gathers nothing until the history
// is read; then it samples, up to a minute after the last read; the tick
// past that stops sampling and drops the samples, so that a page opened
// later shows no stale seconds.
func TestHistorySamplesWhileRead(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := newMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	gc := &gatherCounter{gathered: make(chan struct{}, 100)}
	reg.MustRegister(gc)
	h := NewHistory(reg, 10)
	t0 := time.Unix(3_000_000, 0)
	clk := &fakeClock{t: t0}
	h.now = clk.now
	gathers := func() int {
		n := len(gc.gathered)
		for range n {
			<-gc.gathered
		}
		return n
	}

	if h.tick(t0) || gathers() != 0 {
		t.Fatal("a tick before any read sampled")
	}
	h.Window(0)      // a read at t0
	_ = h.Sample(t0) // Run's baseline once woken
	m.observe(opGet, 200, time.Millisecond)
	if !h.tick(t0.Add(time.Second)) || gathers() != 2 {
		t.Fatal("a tick after a read did not sample")
	}
	if w := h.Window(0); len(w.Ops["get"]["rate"]) == 0 || w.Ops["get"]["rate"][w.Seconds-1] != 1 {
		t.Fatalf("after a tick: %+v", w)
	}
	// The last read was at t0 (the Window above is at t0 too: the clock
	// has not moved): ticks sample up to a minute after it.
	if !h.tick(t0.Add(60*time.Second)) || gathers() != 1 {
		t.Fatal("a tick a minute after the last read did not sample")
	}
	if h.tick(t0.Add(61*time.Second)) || gathers() != 0 {
		t.Fatal("a tick past a minute without a read sampled")
	}
	clk.set(t0.Add(600 * time.Second))
	if w := h.Window(0); len(w.Ops) != 0 || w.End != 0 {
		t.Fatalf("the first read after idling shows stale history: %+v", w)
	}
}

// TestHistoryRunWakes: Run starts no ticker until the history is read,
// takes a baseline and ticks when it is, stops the ticker once a tick
// finds no read for a minute, and starts again at the next read.
func TestHistoryRunWakes(t *testing.T) {
	reg := prometheus.NewRegistry()
	gc := &gatherCounter{gathered: make(chan struct{}, 100)}
	reg.MustRegister(gc)
	h := NewHistory(reg, 10)
	t0 := time.Unix(3_000_000, 0)
	clk := &fakeClock{t: t0, tick: make(chan time.Time), tickers: make(chan bool, 10)}
	h.now, h.newTicker = clk.now, clk.newTicker
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); h.Run(ctx) }()
	defer func() { cancel(); <-done }()
	ticker := func(want bool, what string) {
		t.Helper()
		select {
		case got := <-clk.tickers:
			if got != want {
				t.Fatalf("ticker started %t, want %t: %s", got, want, what)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("no ticker change: %s", what)
		}
	}
	if len(clk.tickers) != 0 || len(gc.gathered) != 0 {
		t.Fatal("Run sampled before anyone read the history")
	}
	for round := range 2 {
		h.Window(0)
		ticker(true, "a read")
		if len(gc.gathered) != 1 {
			t.Fatalf("round %d: %d Gathers before the first tick, want the baseline", round, len(gc.gathered))
		}
		<-gc.gathered
		// A tick well past a minute after the read: the ticker stops.
		at := clk.now().Add(2 * time.Minute)
		clk.set(at)
		clk.tick <- at
		ticker(false, "a tick past a minute without a read")
		if len(gc.gathered) != 0 {
			t.Fatalf("round %d: the tick that stopped sampling gathered", round)
		}
	}
}
