package engine

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"github.com/ringkv/ringkv/memtable"
)

// The write path stores each record as a Pebble SET when it is provably
// newer than every record of its key in the store, and as a MERGE (resolved
// by the last-writer-wins merge operator) otherwise. Either way no write
// reads first, and the result is what LWW would give. The SETs matter for
// reads: a read that meets a SET stops there, while a read that meets a
// MERGE must visit every older memtable and level to find the key's base,
// which made point reads of freshly written keys cost 1.6x a plain SET store.
//
// "Provably newer" is tracked per stripe of keys: each stripe remembers the
// highest timestamp written to any of its keys (its watermark), and a
// record above the watermark is newer than everything of its key. The
// stripe's lock is held from that decision until Pebble has sequenced the
// batch, so a SET is never ordered before an older write of the same key;
// the WAL fsync is awaited after the lock is released, so concurrent writes
// still share fsyncs.
//
// After a restart the watermarks start at the ceiling: a timestamp stored
// durably with the writes, always at or above every timestamp in the store.
//
// NB: anything that adds records without this path (SSTable ingestion, in
// the data-movement milestone) must raise the watermarks of what it adds.

// numStripes is the number of key stripes; a power of two.
const numStripes = 4096

type stripe struct {
	mu sync.Mutex
	wm uint64 // REQUIRES mu: the highest timestamp written to the stripe
	// seq counts the stripe's writes and deletes (written under mu); a
	// reader compares it across its read before filling the row cache.
	seq atomic.Uint64
	_   [40]byte
}

// ceilingMargin is how far above a new timestamp the ceiling is raised, so
// that it is rewritten about every quarter second of writes rather than on
// each one. It stays under memtable.DefaultMaxOffset, so the coordinator's
// clock can adopt the ceiling after a restart.
const ceilingMargin = 250 << 16 // 250ms in HLC units

// ceilingAbove is ts+ceilingMargin, saturating at 2^64-1: a stamp near
// the top (replicas refuse them, but a store may hold one from before)
// must not wrap the ceiling to the bottom, where a restarted clock would
// then start below the records it holds.
func ceilingAbove(ts uint64) uint64 {
	if ts > math.MaxUint64-ceilingMargin {
		return math.MaxUint64
	}
	return ts + ceilingMargin
}

const ceilingMeta = "hlc-ceiling"

func (e *Engine) stripeOf(key []byte) *stripe { return e.stripeAt(Token(key)) }

func (e *Engine) stripeAt(tok uint64) *stripe { return &e.stripes[tok%numStripes] }

// wrote records, under the key's stripe lock, that rec (encoded) was
// sequenced for key as a SET or as a MERGE, keeping the row cache coherent.
// REQUIRES: the stripe lock of key.
func (e *Engine) wrote(s *stripe, key, rec []byte, set bool) {
	s.seq.Add(1)
	if e.rows == nil {
		return
	}
	if set {
		e.rows.put(key, rec)
		return
	}
	// A merge: the stored winner is the newer of rec and the cached record,
	// if the key is cached; otherwise leave it uncached.
	buf := e.scratch()
	defer e.release(buf)
	cur, ok := e.rows.get((*buf)[:0], key)
	*buf = cur
	if !ok {
		return
	}
	if newer, err := memtable.Newer(rec, cur); err != nil {
		e.rows.remove(key)
	} else if newer {
		e.rows.put(key, rec)
	}
}

// failed records, under the key's stripe lock, that a write of key may or
// may not have been applied. REQUIRES: the stripe lock of key.
func (e *Engine) failed(s *stripe, key []byte) {
	s.seq.Add(1)
	if e.rows != nil {
		e.rows.remove(key)
	}
}

func (e *Engine) loadCeiling() error {
	v, closer, err := e.db.Get(metaKey(ceilingMeta))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	defer closer.Close()
	if len(v) != 8 {
		return fmt.Errorf("corrupt %s: %d bytes", ceilingMeta, len(v))
	}
	c := binary.BigEndian.Uint64(v)
	e.ceiling.Store(c)
	for i := range e.stripes {
		e.stripes[i].wm = c
	}
	return nil
}

// MaxTimestamp returns an upper bound on every timestamp stored. A
// coordinator that folds it into its clock after a restart writes above it.
func (e *Engine) MaxTimestamp() uint64 { return e.ceiling.Load() }

// Write stores record r under key: the newer of r and what is stored wins.
// With sync, it returns only after the WAL is fsynced; concurrent synced
// writes share fsyncs (Pebble's commit pipeline groups them).
//
// Below the free-space floor it writes nothing and returns a
// *DiskFullError (errors.Is ErrDiskFull); after a fatal Pebble error,
// ErrFailed.
func (e *Engine) Write(key []byte, r *memtable.Record, sync bool) error {
	if err := e.admit(len(key) + r.EncodedLen()); err != nil {
		return err
	}
	b := e.db.NewBatch()
	defer b.Close()
	kb, rb := e.scratch(), e.scratch()
	defer e.release(kb)
	defer e.release(rb)
	tok := Token(key)
	*kb = appendDataKeyTok((*kb)[:0], tok, key)
	*rb = r.Append((*rb)[:0])

	err := e.sequenceOne(e.stripeAt(tok), b, key, *kb, *rb, r.TS, sync)
	if err == nil && sync {
		err = b.SyncWait()
	}
	if err != nil {
		return fmt.Errorf("cannot write %q: %w", key, e.diskFull(err))
	}
	return nil
}

// sequenceOne adds the record rec of key (storage key sk) to b as a SET
// or a MERGE and sequences b, under the stripe lock of key, keeping the row
// cache coherent. The lock is released by a deferred call: should Pebble
// panic, or its fatal hook end the goroutine, the stripe is not left locked.
func (e *Engine) sequenceOne(s *stripe, b *pebble.Batch, key, sk, rec []byte, ts uint64, sync bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	done := false
	defer func() {
		if !done { // an error, a panic or the end of the goroutine
			e.failed(s, key)
		}
	}()
	set := ts > s.wm
	var err error
	if set {
		s.wm = ts
		err = b.Set(sk, rec, nil)
	} else {
		err = b.Merge(sk, rec, nil)
	}
	if err == nil {
		err = e.sequence(b, ts, sync)
	}
	if err != nil {
		return err
	}
	e.wrote(s, key, rec, set)
	done = true
	return nil
}

// sequence hands b to Pebble's commit pipeline and returns once it is
// ordered and visible; with sync the caller must then call b.SyncWait. It
// first adds a raise of the ceiling to b if maxTS is above it: in the same
// batch, so the ceiling is durable whenever the record is.
//
// Pebble panics when its WAL writer fails (db.go, commitWrite), holding its
// commit pipeline's mutex: no write can follow, so the panic goes to the
// fatal hook (Engine.onFatal), never up to a caller that might recover it.
func (e *Engine) sequence(b *pebble.Batch, maxTS uint64, sync bool) error {
	defer func() {
		if r := recover(); r != nil {
			e.onFatal(fmt.Sprintf("pebble: commit panicked: %v", r))
		}
	}()
	if maxTS > e.ceiling.Load() {
		e.ceilMu.Lock()
		defer e.ceilMu.Unlock()
		if c := ceilingAbove(maxTS); maxTS > e.ceiling.Load() {
			if err := b.Set(metaKey(ceilingMeta), binary.BigEndian.AppendUint64(nil, c), nil); err != nil {
				return err
			}
			// The ceiling rises only once the batch carrying it is
			// sequenced: a write that relies on it comes later in the WAL.
			defer func() { e.ceiling.Store(c) }()
		}
	}
	if sync {
		return e.db.ApplyNoSyncWait(b, pebble.Sync)
	}
	return e.db.Apply(b, pebble.NoSync)
}

// Batch collects writes that commit atomically. A Batch is not safe for
// concurrent use.
type Batch struct {
	keys [][]byte // user keys
	recs [][]byte // encoded records
	ts   []uint64
}

// NewBatch returns an empty batch.
func (e *Engine) NewBatch() *Batch { return &Batch{} }

// Write adds r for key to b.
func (b *Batch) Write(key []byte, r *memtable.Record) error {
	b.keys = append(b.keys, append([]byte(nil), key...))
	b.recs = append(b.recs, r.Append(nil))
	b.ts = append(b.ts, r.TS)
	return nil
}

// Len returns the number of writes in b.
func (b *Batch) Len() int { return len(b.keys) }

// Commit applies b atomically, as Write applies one record.
// It is refused as Write is.
func (e *Engine) Commit(b *Batch, sync bool) error {
	if b.Len() == 0 {
		return nil
	}
	n := 0
	for i, k := range b.keys {
		n += len(k) + len(b.recs[i])
	}
	if err := e.admit(n); err != nil {
		return err
	}
	pb := e.db.NewBatch()
	defer pb.Close()
	err := e.sequenceBatch(b, pb, sync)
	if err == nil && sync {
		err = pb.SyncWait()
	}
	if err != nil {
		return fmt.Errorf("cannot commit batch of %d writes: %w", b.Len(), e.diskFull(err))
	}
	return nil
}

// sequenceBatch adds b's records to pb and sequences pb, holding the
// stripes of b's keys; they are released by a deferred call, as in
// sequenceOne.
func (e *Engine) sequenceBatch(b *Batch, pb *pebble.Batch, sync bool) error {
	unlock := e.lockStripes(b.keys)
	defer unlock()
	done := false
	defer func() {
		if !done { // an error, a panic or the end of the goroutine
			for _, k := range b.keys {
				e.failed(e.stripeAt(Token(k)), k)
			}
		}
	}()
	var maxTS uint64
	sets := make([]bool, len(b.keys))
	for i, k := range b.keys {
		tok := Token(k)
		sk := appendDataKeyTok(nil, tok, k)
		s := e.stripeAt(tok)
		var err error
		if sets[i] = b.ts[i] > s.wm; sets[i] {
			s.wm = b.ts[i]
			err = pb.Set(sk, b.recs[i], nil)
		} else {
			err = pb.Merge(sk, b.recs[i], nil)
		}
		if err != nil {
			return err
		}
		maxTS = max(maxTS, b.ts[i])
	}
	if err := e.sequence(pb, maxTS, sync); err != nil {
		return err
	}
	// In batch order, so a key written twice caches its later record.
	for i, k := range b.keys {
		e.wrote(e.stripeAt(Token(k)), k, b.recs[i], sets[i])
	}
	done = true
	return nil
}

// lockStripes locks the stripes of keys in index order (so two callers
// never deadlock) and returns the unlock.
func (e *Engine) lockStripes(keys [][]byte) func() {
	idx := make([]int, 0, len(keys))
	for _, k := range keys {
		idx = append(idx, int(Token(k)%numStripes))
	}
	slices.Sort(idx)
	idx = slices.Compact(idx)
	for _, i := range idx {
		e.stripes[i].mu.Lock()
	}
	return func() {
		for _, i := range idx {
			e.stripes[i].mu.Unlock()
		}
	}
}

// WriteEncoded adds the encoded record rec for key to b, as received from
// another node; it is checked before it is accepted.
func (b *Batch) WriteEncoded(key, rec []byte) error {
	r, err := memtable.Decode(rec)
	if err != nil {
		return fmt.Errorf("bad record for %q: %w", key, err)
	}
	b.keys = append(b.keys, append([]byte(nil), key...))
	b.recs = append(b.recs, append([]byte(nil), rec...))
	b.ts = append(b.ts, r.TS)
	return nil
}
