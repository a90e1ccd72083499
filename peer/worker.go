package peer

import (
	"context"
	"sync"
)

// worker is one subsystem's background goroutines (rebalancing,
// anti-entropy, hints): each runs under its wg, and stops when halt closes
// stop and ends ctx. NewNode starts them; Node.Close halts every
// subsystem first, then waits for each.
type worker struct {
	stop   chan struct{}
	ctx    context.Context // ends at halt: pulls and passes in flight stop
	cancel context.CancelFunc
	once   sync.Once
	wg     sync.WaitGroup
}

// setup readies w; call it once, before anything else.
func (w *worker) setup() {
	w.stop = make(chan struct{})
	w.ctx, w.cancel = context.WithCancel(context.Background())
}

// halt tells the goroutines to stop; it may be called more than once.
func (w *worker) halt() {
	w.once.Do(func() {
		close(w.stop)
		w.cancel()
	})
}

// wait waits for the goroutines to end.
func (w *worker) wait() { w.wg.Wait() }

// signal wakes the loop that reads ch, unless it has a wake-up pending.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
