package peer

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ringkv/ringkv/engine"
)

// Sweeping settled Paxos states. Every key that ever took a conditional
// write keeps an acceptor state (about 50 bytes beside its key) until it
// is swept. A state is settled when no proposal is in flight on it
// (Accepted is zero); once its ballots are older than the horizon
// (Config.PaxosHorizon), the sweep deletes it. Forgetting a promise is
// safe only if no ballot it outranked can come back, so before deleting
// anything the sweep raises a durable floor: the acceptor refuses every
// prepare and proposal of a ballot below it (answering with the floor, so
// a coordinator retries above it), and every deleted state's ballots are
// below it. The floor is an HLC timestamp, compared with ballots, so a
// wall clock stepping back cannot lower it. A coordinator's round lasts a
// request timeout, far less than the horizon, so in practice no ballot of
// a live round is ever refused. (Cassandra expires its Paxos state after
// gc_grace_seconds the same way, but without a floor.)

// paxosFloorMeta names the engine metadata holding the floor.
const paxosFloorMeta = "paxos-floor"

// loadFloor reads the durable floor into a.
func (a *acceptor) loadFloor() error {
	b, err := a.eng.GetMeta(paxosFloorMeta)
	if errors.Is(err, engine.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("cannot read the paxos floor: %w", err)
	}
	if len(b) != 8 {
		return fmt.Errorf("corrupt paxos floor: %d bytes", len(b))
	}
	a.floor.Store(binary.BigEndian.Uint64(b))
	return nil
}

// refuses reports the floor when ballot b is below it, else 0.
func (a *acceptor) refuses(b Ballot) uint64 {
	if f := a.floor.Load(); b.TS < f {
		return f
	}
	return 0
}

// sweepable reports whether s may be deleted under floor f: settled, and
// every ballot it remembers below f.
func (s acceptorState) sweepable(f uint64) bool {
	return s.Accepted.IsZero() && s.Promised.TS < f && s.Committed.TS < f
}

// sweepBatch bounds the states deleted under one hold of the key locks.
const sweepBatch = 1024

// sweep deletes the settled states older than horizon, as of now (an HLC
// timestamp), and returns how many it deleted.
func (a *acceptor) sweep(ctx context.Context, now uint64, horizon time.Duration) (int, error) {
	a.sweepMu.Lock()
	defer a.sweepMu.Unlock()
	back := uint64(horizon.Milliseconds()) << 16 // HLC: Unix ms above 16 logical bits
	if now <= back {
		return 0, nil
	}
	f := now - back
	if f > a.floor.Load() {
		// Durable before any state goes: a restart must still refuse
		// what a deleted state would have.
		if err := a.eng.SetMeta(paxosFloorMeta, binary.BigEndian.AppendUint64(nil, f)); err != nil {
			return 0, fmt.Errorf("cannot store the paxos floor: %w", err)
		}
		a.floor.Store(f)
	}
	f = a.floor.Load()
	snap, err := a.eng.NewSnapshot()
	if err != nil {
		return 0, err
	}
	defer snap.Close()
	// Candidates go in batches, so a sweep's memory stays bounded however
	// many states the store holds.
	n := 0
	keys := make([][]byte, 0, sweepBatch)
	flush := func() error {
		d, err := a.sweepSome(keys, f)
		n += d
		a.swept.Add(uint64(d))
		keys = keys[:0]
		return err
	}
	err = snap.ExportPaxosSpan(ctx, 0, 0, func(sk, state []byte) error {
		s, err := decodeAcceptorState(state)
		if err != nil || !s.sweepable(f) {
			return nil // a corrupt state is kept for the operator to see
		}
		if k, _, ok := engine.PaxosKey(sk); ok {
			keys = append(keys, append([]byte(nil), k...))
		}
		if len(keys) == sweepBatch {
			return flush()
		}
		return nil
	})
	if err == nil && len(keys) > 0 {
		err = flush()
	}
	return n, err
}

// sweepSome deletes those of keys whose state is still sweepable, read
// again under the key locks: a round may have touched one since the
// snapshot.
func (a *acceptor) sweepSome(keys [][]byte, f uint64) (int, error) {
	a.lockAll()
	defer a.unlockAll()
	del := keys[:0]
	for _, k := range keys {
		s, err := a.state(k)
		if err != nil {
			return 0, err
		}
		if s.sweepable(f) {
			del = append(del, k)
		}
	}
	return len(del), a.eng.DeletePaxosStates(del)
}

func (a *acceptor) lockAll() {
	for i := range a.locks {
		a.locks[i].Lock()
	}
}

func (a *acceptor) unlockAll() {
	for i := range a.locks {
		a.locks[i].Unlock()
	}
}

// paxosSweepEvery is how often a node sweeps: a fraction of the horizon,
// so a state outlives it by at most a quarter, within bounds.
func paxosSweepEvery(horizon time.Duration) time.Duration {
	return min(max(horizon/4, time.Minute), time.Hour)
}

// paxosSweeper runs the sweep loop of a node, started by the first Paxos
// state the node writes or finds stored: a node that never takes a
// conditional write runs no goroutine for it.
type paxosSweeper struct {
	started atomic.Bool // fast path of start
	mu      sync.Mutex
	halted  bool
	w       worker
	run     func(w *worker) // nil: the sweep is off
}

// start starts the loop once, unless it is off or halted.
func (s *paxosSweeper) start() {
	if s.run == nil || s.started.Load() {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.halted || s.started.Load() {
		return
	}
	s.started.Store(true)
	s.w.wg.Go(func() { s.run(&s.w) })
}

// close stops the loop and waits for it; start does nothing after.
func (s *paxosSweeper) close() {
	s.mu.Lock()
	s.halted = true
	s.mu.Unlock()
	s.w.halt()
	s.w.wait()
}

// hasStates reports whether the engine holds any Paxos state.
func (a *acceptor) hasStates() (bool, error) {
	snap, err := a.eng.NewSnapshot()
	if err != nil {
		return false, err
	}
	defer snap.Close()
	found := errors.New("found")
	err = snap.ExportPaxosSpan(context.Background(), 0, 0, func(_, _ []byte) error { return found })
	if err == found {
		return true, nil
	}
	return false, err
}

// sweepLoop sweeps until w halts.
func (a *acceptor) sweepLoop(w *worker, now func() uint64, horizon time.Duration, log func(msg string, args ...any)) {
	t := time.NewTicker(paxosSweepEvery(horizon))
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
		}
		if n, err := a.sweep(w.ctx, now(), horizon); err != nil && w.ctx.Err() == nil {
			log("cannot sweep settled paxos states", "err", err)
		} else if n > 0 {
			log("swept settled paxos states", "states", n)
		}
	}
}
