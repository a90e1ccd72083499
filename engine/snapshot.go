package engine

import (
	"context"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"github.com/ringkv/ringkv/memtable"
)

// Snapshot is a consistent, read-only view of the store at one moment:
// writes after it was taken are invisible to it. Range transfers and
// anti-entropy read through snapshots so that what they stream is one
// point in time. One exception: ExciseCorrupt removes a damaged file's
// span with Pebble's excise, which also changes what an open snapshot
// sees of that span.
// A Snapshot is safe for concurrent use; Close releases it.
type Snapshot struct {
	e    *Engine
	snap *pebble.Snapshot
}

// NewSnapshot takes a snapshot of the store.
func (e *Engine) NewSnapshot() (*Snapshot, error) {
	if e.closed.Load() {
		return nil, ErrClosed
	}
	return &Snapshot{e: e, snap: e.db.NewSnapshot()}, nil
}

// Get reads key as of the snapshot; see Engine.Get.
func (s *Snapshot) Get(dst, key []byte) ([]byte, memtable.Record, error) {
	return s.e.get(s.snap, dst, key, appendValue)
}

// ScanTokens visits the snapshot's records whose token is in [start, end);
// see Engine.ScanTokens.
func (s *Snapshot) ScanTokens(ctx context.Context, start, end uint64, fn ScanFunc) error {
	lo, hi := tokenSpan(start, end)
	return s.e.scan(ctx, s.snap, lo, hi, fn)
}

// Close releases the snapshot.
func (s *Snapshot) Close() error { return s.snap.Close() }

// appendFunc appends what a read returns of the stored record v of key to
// dst: its value (appendValue) or the record as stored (appendStored).
type appendFunc func(dst, key, v []byte) ([]byte, memtable.Record, error)

// get reads key through r (the DB or a snapshot) and appends it to dst as
// app says. Reads of the DB go through the row cache.
func (e *Engine) get(r pebble.Reader, dst, key []byte, app appendFunc) ([]byte, memtable.Record, error) {
	if e.closed.Load() {
		return dst, memtable.Record{}, ErrClosed
	}
	tok := Token(key)
	if err := e.corrupt.check(tok); err != nil {
		return dst, memtable.Record{}, err
	}
	var s *stripe
	var seq uint64
	if e.rows != nil && r == pebble.Reader(e.db) {
		buf := e.scratch()
		rec, ok := e.rows.get((*buf)[:0], key)
		*buf = rec
		if ok {
			dst, r, err := app(dst, key, rec)
			e.release(buf)
			return dst, r, err
		}
		e.release(buf)
		s = e.stripeAt(tok)
		seq = s.seq.Load()
	}
	kb := e.scratch()
	*kb = appendDataKeyTok((*kb)[:0], tok, key)
	v, closer, err := r.Get(*kb)
	e.release(kb)
	if err == nil && s != nil && s.mu.TryLock() {
		// Fill the cache only if no write of the stripe came between the
		// sequence number read above and now (a busy stripe is skipped).
		if s.seq.Load() == seq {
			e.rows.put(key, v)
		}
		s.mu.Unlock()
	}
	if err != nil {
		if errors.Is(err, pebble.ErrNotFound) {
			return dst, memtable.Record{}, ErrNotFound
		}
		return dst, memtable.Record{}, fmt.Errorf("cannot read %q: %w", key, e.corruptionOf(err))
	}
	dst, rec, err := app(dst, key, v)
	closer.Close()
	return dst, rec, err
}

// appendValue decodes the encoded record v of key and appends its value to
// dst; the record's Value is that appended part.
func appendValue(dst, key, v []byte) ([]byte, memtable.Record, error) {
	rec, err := memtable.Decode(v)
	if err != nil {
		return dst, rec, fmt.Errorf("cannot decode record of %q: %w", key, err)
	}
	n := len(dst)
	dst = append(dst, rec.Value...)
	rec.Value = dst[n:]
	return dst, rec, nil
}

// appendStored appends the encoded record v of key to dst as it is stored
// and decodes it there, once, to check it: the record's Value aliases the
// appended bytes. A record that does not decode is not appended.
func appendStored(dst, key, v []byte) ([]byte, memtable.Record, error) {
	n := len(dst)
	dst = append(dst, v...)
	rec, err := memtable.Decode(dst[n:])
	if err != nil {
		return dst[:n], rec, fmt.Errorf("cannot decode record of %q: %w", key, err)
	}
	return dst, rec, nil
}
