package engine

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/ringkv/ringkv/memtable"
)

// This file holds the storage side of data movement: reading a token span
// raw (for export), replacing a span with SSTables built elsewhere or
// merging such SSTables into it, dropping a span, and checkpoints for
// backup. Spans follow the convention of ScanTokens and ring.Span: [lo, hi)
// with hi == 0 meaning 2^64, so {0, 0} is every token. A span that wraps
// past the largest token must be split first (ring.Range.Spans does).

// ErrWrappingSpan is returned for a span with lo > hi != 0.
var ErrWrappingSpan = errors.New("engine: span wraps past the largest token; split it")

// ErrInvalidTable reports a file given to MergeSpan that is
// corrupt or breaks its rules; nothing was ingested.
var ErrInvalidTable = errors.New("engine: invalid table")

// ingestAsWriteBytes is the size below which MergeSpan applies the
// records as one batch instead of ingesting files: a tiny ingest costs a
// forced memtable flush whenever the memtable holds keys of the span, and
// leaves tiny tables behind. CockroachDB applies snapshots below 100 KiB
// the same way (kv.snapshot.ingest_as_write_threshold).
const ingestAsWriteBytes = 100 << 10

// spanKeys returns the storage-key bounds of the token span [lo, hi), and
// whether it is empty.
func spanKeys(lo, hi uint64) (start, end []byte, empty bool, err error) {
	if hi != 0 && lo > hi {
		return nil, nil, false, fmt.Errorf("%w: [%016x, %016x)", ErrWrappingSpan, lo, hi)
	}
	start, end = tokenSpan(lo, hi)
	return start, end, hi != 0 && lo == hi, nil
}

// ExportSpan calls fn with the storage key and encoded record of every data
// record whose token is in [lo, hi), in storage-key order, as of the
// snapshot. The values are whole records (merge operands resolved), fit to
// be written to an SSTable as SETs. Both slices alias iterator memory valid
// only until fn returns; an error from fn stops the export and is returned.
func (s *Snapshot) ExportSpan(ctx context.Context, lo, hi uint64, fn func(storageKey, value []byte) error) error {
	return s.e.exportSpan(ctx, s.snap, lo, hi, fn)
}

// ExportSpan is Snapshot.ExportSpan over the live store: not a point in
// time, for callers that only need each key's state at some moment of the
// call (a digest of a span nobody writes, say).
func (e *Engine) ExportSpan(ctx context.Context, lo, hi uint64, fn func(storageKey, value []byte) error) error {
	return e.exportSpan(ctx, e.db, lo, hi, fn)
}

func (e *Engine) exportSpan(ctx context.Context, r pebble.Reader, lo, hi uint64, fn func(k, v []byte) error) error {
	if e.closed.Load() {
		return ErrClosed
	}
	start, end, empty, err := spanKeys(lo, hi)
	if err != nil || empty {
		return err
	}
	it, err := r.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: start, UpperBound: end})
	if err != nil {
		return err
	}
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		if n++; n%1024 == 0 {
			if err = ctx.Err(); err != nil {
				break
			}
		}
		var v []byte
		if v, err = it.ValueAndErr(); err != nil {
			break
		}
		if err = fn(it.Key(), v); err != nil {
			break
		}
	}
	if cerr := it.Close(); err == nil {
		err = cerr // the iterator's own error, if any
	}
	return e.corruptionOf(err)
}

// TableWriterOptions returns the options an SSTable must be written with to
// be ingestible by this engine: its comparer, merger name, table format and
// the bottom level's block settings (an ingested span usually lands there).
// It is for the storage layer's sstable package.
func (e *Engine) TableWriterOptions() sstable.WriterOptions {
	return e.popts.MakeWriterOptions(len(e.popts.Levels)-1, e.db.TableFormat())
}

// FS returns the filesystem the engine lives on. Files to ingest must be
// on it (Pebble hard-links them in).
func (e *Engine) FS() vfs.FS { return e.opts.FS }

// Engine returns the engine s was taken from.
func (s *Snapshot) Engine() *Engine { return s.e }

// A SpanCheck verifies the records of the files MergeSpan is given before any of them is applied: a digest against what the donor
// sent, say.
type SpanCheck interface {
	// Add sees one record, in storage-key order. key and value are valid
	// only until it returns. An error aborts the ingest.
	Add(storageKey, value []byte) error
	// Verify is called after the last record; an error aborts the ingest.
	Verify() error
}

// MergeSpan atomically adds the records of the SSTable files at paths to
// the span [lo, hi) as last-writer-wins merge operands: afterwards each key
// holds the newer (by timestamp, then node) of its own record and the
// files' one, and nothing of the span is deleted, so writes that land
// while the files are in flight (a range moving to a node that already
// takes writes for it) are never lost. The files must be on FS(), written
// with TableWriterOptions, hold only MERGEs of whole records at sequence
// number 0 with keys inside the span (sstable.Receive writes them), and be
// given in key order. Every file is read once before anything is applied:
// to check the above, to run check (if not nil) over every record, and to
// find the newest timestamp. On success they are consumed, on error left
// as they were with the store unchanged. All files are ingested at once (Pebble ingests a set
// of files atomically), so no reader sees some of them without the others;
// below ingestAsWriteBytes they are applied as one batch of merges instead.
// The newest timestamp is made durable in the ceiling and raised into the
// key stripes' watermarks, so a later write older than a merged record
// cannot overwrite it. Writes and garbage collection wait while the
// records are applied. It excises nothing: open Snapshots keep their view.
func (e *Engine) MergeSpan(ctx context.Context, lo, hi uint64, paths []string, check SpanCheck) error {
	if e.closed.Load() {
		return ErrClosed
	}
	err := e.ingestSpan(ctx, lo, hi, paths, check)
	if err != nil {
		return fmt.Errorf("cannot merge into span [%016x, %016x): %w", lo, hi, err)
	}
	return nil
}

func (e *Engine) ingestSpan(ctx context.Context, lo, hi uint64, paths []string, check SpanCheck) error {
	// Below the free-space floor, a pulled range waits (its pull is
	// retried) rather than take the room flushes and compactions need.
	if err := e.admit(0); err != nil {
		return err
	}
	start, end, empty, err := spanKeys(lo, hi)
	if err != nil {
		return err
	}
	in := spanInput{start: start, end: end, check: check, batch: e.db.NewBatch()}
	defer func() {
		if in.batch != nil {
			in.batch.Close()
		}
	}()
	if err := e.readTables(ctx, paths, &in); err != nil || empty {
		return err // nothing is in an empty span, and nothing was read
	}
	if in.prev == nil {
		// Merging no records changes nothing: spare the row cache.
		e.removeApplied(paths)
		return nil
	}
	if b := e.tsBound.Load(); b != nil {
		if bound := (*b)(); in.maxTS > bound {
			return fmt.Errorf("%w: the span holds a record stamped %d, beyond this node's bound %d", memtable.ErrFutureTimestamp, in.maxTS, bound)
		}
	}
	if err := e.raiseCeiling(in.maxTS); err != nil {
		return err
	}
	e.raiseWatermarks(&in.stripeTS)
	return e.applySpan(ctx, paths, &in)
}

// readTables reads every file into in and runs its check's Verify.
func (e *Engine) readTables(ctx context.Context, paths []string, in *spanInput) error {
	for _, p := range paths {
		if err := e.readTable(ctx, p, in); err != nil {
			if pebble.IsCorruptionError(err) {
				// To a caller, a corrupt file is one more invalid table.
				err = fmt.Errorf("%w: %w", ErrInvalidTable, err)
			}
			return fmt.Errorf("cannot read %s: %w", p, err)
		}
	}
	if in.check != nil {
		return in.check.Verify()
	}
	return nil
}

// applySpan adds the records read into in to the store: in.batch when it
// still holds them, else the files by ingestion.
func (e *Engine) applySpan(ctx context.Context, paths []string, in *spanInput) error {
	// Garbage collection reads a droppable record and deletes its key
	// under the key's stripe lock: holding every stripe keeps the records
	// from landing between the two, where the delete would take them too.
	// Writers lose little: Pebble queues the writes sequenced after an
	// ingest behind it anyway, and the fsync is awaited unlocked.
	unlockStripes := e.lockAllStripes()
	// Whatever happens now, cached rows of the span may be stale: they
	// are forgotten before the stripes are unlocked. A small merge knows
	// its keys and forgets only those (anti-entropy repairs and moves of
	// small ranges would otherwise empty the whole cache each time).
	// unlock runs once, deferred too, so a panic in Pebble (or its fatal
	// hook ending the goroutine) leaves no stripe locked.
	unlocked := false
	unlock := func() {
		if unlocked {
			return
		}
		unlocked = true
		if in.batch != nil {
			e.forgetRowsLocked(in.keys)
		} else {
			e.invalidateRowsLocked()
		}
		unlockStripes()
	}
	defer unlock()
	if in.batch == nil {
		return e.db.Ingest(ctx, paths)
	}
	err := e.db.ApplyNoSyncWait(in.batch, pebble.Sync)
	unlock()
	if err == nil {
		err = in.batch.SyncWait()
	}
	if err != nil {
		return err
	}
	e.removeApplied(paths)
	return nil
}

// lockAllStripes locks every stripe, in index order as lockStripes does
// (so neither deadlocks the other), and returns the unlock.
func (e *Engine) lockAllStripes() func() {
	for i := range e.stripes {
		e.stripes[i].mu.Lock()
	}
	return func() {
		for i := range e.stripes {
			e.stripes[i].mu.Unlock()
		}
	}
}

// removeApplied removes the files whose records are durable in the
// store: a file left behind is only litter.
func (e *Engine) removeApplied(paths []string) {
	for _, p := range paths {
		if err := e.opts.FS.Remove(p); err != nil {
			e.opts.Logger.Warn("cannot remove applied table", "path", p, "err", err)
		}
	}
}

// spanInput accumulates what ingestSpan learns while reading its files.
type spanInput struct {
	start, end []byte
	check      SpanCheck
	prev       []byte // the last key read, for the order check
	maxTS      uint64
	stripeTS   [numStripes]uint64 // the newest timestamp read per stripe
	// batch holds the records while they total under ingestAsWriteBytes;
	// nil once they do not. keys are their user keys, meanwhile.
	batch *pebble.Batch
	bytes int64
	keys  [][]byte
}

// readTable reads the SSTable at path into in, checking what ingestSpan
// requires of it.
func (e *Engine) readTable(ctx context.Context, path string, in *spanInput) error {
	r, err := newTableReader(ctx, e.opts.FS, path, e.popts.MakeReaderOptions())
	if err != nil {
		return err
	}
	// NB: the file must be closed before it is ingested (MemFS, like
	// Windows, refuses to remove an open file).
	defer r.Close()
	props, err := r.ReadPropertiesBlock(ctx, nil)
	if err != nil {
		return err
	}
	if props.NumRangeDeletions != 0 || props.NumRangeKeys() != 0 {
		return fmt.Errorf("%w: it holds range deletions or range keys", ErrInvalidTable)
	}
	it, err := r.NewIter(sstable.NoTransforms, nil, nil, sstable.AssertNoBlobHandles)
	if err != nil {
		return err
	}
	const kind = pebble.InternalKeyKindMerge
	n := 0
	var buf []byte
	for kv := it.First(); kv != nil; kv = it.Next() {
		if n++; n%1024 == 0 {
			if err = ctx.Err(); err != nil {
				break
			}
		}
		if kv.K.Kind() != kind || kv.K.SeqNum() != 0 {
			err = fmt.Errorf("%w: key %x is a %s at sequence number %d, not a %s at 0", ErrInvalidTable, kv.K.UserKey, kv.K.Kind(), kv.K.SeqNum(), kind)
			break
		}
		v, owned, verr := kv.V.Value(buf)
		if err = verr; err != nil {
			break
		}
		if owned {
			buf = v[:0] // reuse only memory that is ours, never the block's
		}
		if err = in.add(kv.K.UserKey, v); err != nil {
			break
		}
	}
	if err == nil {
		err = it.Error()
	}
	if cerr := it.Close(); err == nil {
		err = cerr
	}
	return err
}

// add takes one record read from a file.
func (in *spanInput) add(k, v []byte) error {
	if bytes.Compare(k, in.start) < 0 || bytes.Compare(k, in.end) >= 0 {
		return fmt.Errorf("%w: key %x is outside the span", ErrInvalidTable, k)
	}
	if in.prev != nil && bytes.Compare(k, in.prev) <= 0 {
		return fmt.Errorf("%w: key %x is not after %x: files overlap or are out of order", ErrInvalidTable, k, in.prev)
	}
	in.prev = append(in.prev[:0], k...)
	u, ok := userKey(k)
	var tok uint64
	if ok {
		tok = dataKeyToken(k)
	}
	if !ok || Token(u) != tok {
		return fmt.Errorf("%w: malformed data key %x", ErrInvalidTable, k)
	}
	rec, err := memtable.Decode(v)
	if err != nil {
		return fmt.Errorf("%w: record of %q: %w", ErrInvalidTable, u, err)
	}
	in.maxTS = max(in.maxTS, rec.TS)
	s := &in.stripeTS[tok%numStripes]
	*s = max(*s, rec.TS)
	if in.check != nil {
		if err := in.check.Add(k, v); err != nil {
			return err
		}
	}
	if in.batch != nil {
		if in.bytes += int64(len(k) + len(v)); in.bytes >= ingestAsWriteBytes {
			in.batch.Close()
			in.batch, in.keys = nil, nil
		} else {
			in.keys = append(in.keys, bytes.Clone(u))
			return in.batch.Merge(k, v, nil)
		}
	}
	return nil
}

// raiseCeiling durably raises the ceiling to cover ts, before records
// carrying ts are added outside the write path.
func (e *Engine) raiseCeiling(ts uint64) error {
	if ts <= e.ceiling.Load() {
		return nil
	}
	e.ceilMu.Lock()
	defer e.ceilMu.Unlock()
	if ts <= e.ceiling.Load() {
		return nil
	}
	c := ceilingAbove(ts)
	if err := e.db.Set(metaKey(ceilingMeta), binary.BigEndian.AppendUint64(nil, c), pebble.Sync); err != nil {
		return err
	}
	e.ceiling.Store(c)
	return nil
}

// raiseWatermarks raises each stripe's watermark to the newest timestamp
// about to be added to it. It runs before the records are added: a write
// that decided on the old watermark holds its stripe lock until Pebble has
// sequenced it, so it is ordered before them, and a write deciding after
// sees the new one. Raising a watermark is always safe (it only turns
// SETs into MERGEs).
func (e *Engine) raiseWatermarks(ts *[numStripes]uint64) {
	for i, t := range ts {
		if t == 0 {
			continue
		}
		s := &e.stripes[i]
		s.mu.Lock()
		s.wm = max(s.wm, t)
		s.mu.Unlock()
	}
}

// invalidateRows forgets the row cache after records changed outside the
// write path (a span ingested or dropped). It runs after the change is
// visible.
func (e *Engine) invalidateRows() {
	if e.rows == nil {
		return
	}
	unlock := e.lockAllStripes()
	e.invalidateRowsLocked()
	unlock()
}

// invalidateRowsLocked is invalidateRows for a caller that holds every
// stripe lock. Bumping every stripe's sequence number stops a read that
// began before the change from caching what it read. The reset must run
// under the locks too: a merge write consults the cached record and caches
// its own if newer, and one that read a stale entry before the reset
// reached it and cached after would leave a record older than the stored
// winner in the cache (a stale read until evicted).
// REQUIRES: every stripe lock.
func (e *Engine) invalidateRowsLocked() {
	if e.rows == nil {
		return
	}
	for i := range e.stripes {
		e.stripes[i].seq.Add(1)
	}
	e.rows.c.Reset()
	e.askRewarm()
}

// forgetRowsLocked drops keys from the row cache, and stops reads of them
// that began before from caching what they read.
// REQUIRES: every stripe lock.
func (e *Engine) forgetRowsLocked(keys [][]byte) {
	if e.rows == nil {
		return
	}
	for _, k := range keys {
		e.stripeOf(k).seq.Add(1)
		e.rows.remove(k)
	}
}

// Span is the token span [Lo, Hi); Hi == 0 stands for 2^64.
type Span struct{ Lo, Hi uint64 }

// DropSpan deletes every record whose token is in [lo, hi) with one range
// deletion, durably. Pebble flushes a memtable holding a range deletion
// within FlushDelayDeleteRange, so the space returns to the disk soon after.
func (e *Engine) DropSpan(ctx context.Context, lo, hi uint64) error {
	return e.DropSpans(ctx, []Span{{lo, hi}})
}

// DropSpans is DropSpan for several spans at once, in one batch: all of
// them are dropped or none.
func (e *Engine) DropSpans(ctx context.Context, spans []Span) error {
	if e.closed.Load() {
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	b := e.db.NewBatch()
	defer b.Close()
	for _, sp := range spans {
		start, end, empty, err := spanKeys(sp.Lo, sp.Hi)
		if err == nil && !empty {
			err = b.DeleteRange(start, end, nil)
		}
		if err != nil {
			return fmt.Errorf("cannot drop span [%016x, %016x): %w", sp.Lo, sp.Hi, err)
		}
	}
	if b.Empty() {
		return nil
	}
	err := e.db.Apply(b, pebble.Sync)
	e.invalidateRows()
	if err != nil {
		return fmt.Errorf("cannot drop %d spans: %w", len(spans), err)
	}
	return nil
}

// Checkpoint writes a consistent copy of the whole store (data, hints and
// metadata) to dir, which must not exist, on FS(). Tables are hard-linked
// where the filesystem allows, so it is cheap; the WAL is flushed and
// synced first, so every write acknowledged before the call is in it. The
// copy opens as an Engine.
func (e *Engine) Checkpoint(dir string) error {
	if e.closed.Load() {
		return ErrClosed
	}
	if err := e.db.Checkpoint(dir, pebble.WithFlushedWAL()); err != nil {
		return fmt.Errorf("cannot checkpoint to %q: %w", dir, err)
	}
	return nil
}

// SetTimestampBound makes MergeSpan refuse files holding a
// record stamped above bound() (memtable.ErrFutureTimestamp), before
// anything is applied: a span pulled from a peer must not bring in a
// record from the far future, which no later write could overwrite. The
// write path has its own check (memtable.Clock.Update).
func (e *Engine) SetTimestampBound(bound func() uint64) { e.tsBound.Store(&bound) }
