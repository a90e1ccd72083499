package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/ringkv/ringkv/memtable"
)

// GCStats reports one garbage-collection pass.
type GCStats struct {
	Scanned  int64         `json:"scanned"`
	Dropped  int64         `json:"dropped"`
	Duration time.Duration `json:"duration_ns"`
}

// CollectGarbage deletes the keys whose newest record Options.GC allows
// dropping (tombstones past their grace period, TTL records long expired)
// and compacts the span that held them, so their space returns to the disk.
//
// Deleting is a read-then-write, so it holds off writers briefly: for each
// chunk of candidates it locks their stripes, re-reads each key, and
// deletes it only if the record is still the droppable one it saw. A write
// that raced in keeps its key.
func (e *Engine) CollectGarbage(ctx context.Context) (GCStats, error) {
	start := time.Now()
	var st GCStats
	var lo, hi []byte
	var cand [][]byte
	var candRec [][]byte
	sweep := func() error {
		if len(cand) == 0 {
			return nil
		}
		n, err := e.deleteIfUnchanged(cand, candRec)
		st.Dropped += int64(n)
		cand, candRec = cand[:0], candRec[:0]
		return err
	}
	gc := e.opts.GC
	if h := e.horizon.Load(); h != nil {
		gc.Horizon = *h
	}
	err := e.Scan(ctx, nil, func(key []byte, r memtable.Record) (bool, error) {
		st.Scanned++
		if !gc.Drop(&r) {
			return true, nil
		}
		sk := appendDataKey(nil, key)
		if lo == nil {
			lo = sk
		}
		hi = sk
		cand = append(cand, sk)
		candRec = append(candRec, r.Append(nil))
		if len(cand) >= 1024 {
			return true, sweep()
		}
		return true, nil
	})
	if err == nil {
		err = sweep()
	}
	if err == nil && st.Dropped > 0 {
		err = e.compactSpan(ctx, lo, append(bytes.Clone(hi), 0))
	}
	st.Duration = time.Since(start)
	if err != nil {
		return st, fmt.Errorf("cannot collect garbage: %w", err)
	}
	return st, nil
}

// deleteIfUnchanged deletes each storage key whose record still encodes to
// want, holding the keys' stripes so no write lands between the check and
// the delete, and returns how many it deleted.
func (e *Engine) deleteIfUnchanged(keys, want [][]byte) (int, error) {
	if e.closed.Load() {
		return 0, ErrClosed
	}
	users := make([][]byte, len(keys))
	for i, k := range keys {
		users[i], _ = userKey(k)
	}
	unlock := e.lockStripes(users)
	defer unlock()
	b := e.db.NewBatch()
	defer b.Close()
	for i, k := range keys {
		v, closer, err := e.db.Get(k)
		if errors.Is(err, pebble.ErrNotFound) {
			continue
		}
		if err != nil {
			return 0, err
		}
		same := bytes.Equal(v, want[i])
		closer.Close()
		if same {
			if err := b.Delete(k, nil); err != nil {
				return 0, err
			}
		}
	}
	n := int(b.Count())
	// NoSync: a delete lost in a crash only leaves garbage for the next pass.
	err := b.Commit(pebble.NoSync)
	for _, u := range users {
		e.failed(e.stripeOf(u), u) // drop any cached copy either way
	}
	return n, err
}

func (e *Engine) compactSpan(ctx context.Context, lo, hi []byte) error {
	if err := e.db.Flush(); err != nil {
		return err
	}
	return e.db.Compact(ctx, lo, hi, true)
}

// gcLoop runs CollectGarbage every interval until stop closes.
func (e *Engine) gcLoop(interval time.Duration, stop <-chan struct{}) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			ctx, cancel := context.WithCancel(context.Background())
			go func() {
				select {
				case <-stop:
				case <-ctx.Done():
				}
				cancel()
			}()
			st, err := e.CollectGarbage(ctx)
			cancel()
			if err != nil && ctx.Err() == nil {
				e.opts.Logger.Error("garbage collection failed", "err", err)
			} else if st.Dropped > 0 {
				e.opts.Logger.Info("garbage collected", "scanned", st.Scanned, "dropped", st.Dropped, "duration", st.Duration)
			}
		}
	}
}

// SetGCHorizon caps, from now on, the timestamps of the records garbage
// collection may delete: only those at or below h() (see
// compaction.GC.Horizon). A cluster node sets it to the time by which
// every replica is known to hold the same records, so that no replica
// that missed a delete can bring the key back. It replaces Options.GC's.
func (e *Engine) SetGCHorizon(h func() uint64) { e.horizon.Store(&h) }
