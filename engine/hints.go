package engine

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"github.com/ringkv/ringkv/memtable"
)

// Hints are records a coordinator owes a replica that did not take them:
// the hinted-handoff queue. Each lives under
//
//	'h' | len(target) | target | TS (8, BE) | node tag (8, BE) | user key
//
// so one target's hints are a contiguous span in write order, and a hint
// is never overwritten: replay deletes exactly the hints it delivered.

// MaxHintTarget is the longest node id hints can be kept for.
const MaxHintTarget = 255

// hintCounts tracks pending hints per target, for ringkv_hints_pending,
// and their bytes, for the per-target bound of AddHintMax.
type hintCounts struct {
	mu    sync.Mutex
	n     map[string]int64
	bytes map[string]int64
}

// ErrHintsFull is returned by AddHintMax for a target whose hints already
// hold the bytes allowed.
var ErrHintsFull = errors.New("engine: hints for this node at their byte bound")

// hintSize is what one hint counts against its target's byte bound: its
// storage key and record.
func hintSize(target string, key, rec []byte) int64 {
	return int64(2 + len(target) + 16 + len(key) + len(rec))
}

// forgetLocked drops target's counts.
func (h *hintCounts) forgetLocked(target string) {
	delete(h.n, target)
	delete(h.bytes, target)
}

func hintPrefix(target string) []byte {
	b := make([]byte, 0, 2+len(target))
	b = append(b, spaceHint, byte(len(target)))
	return append(b, target...)
}

// prefixEnd returns the smallest key above every key with prefix p. (p
// followed by 0xff is not: a hint stamped 0xff... sorts after it, and
// would be neither replayed nor dropped.)
func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil // p is all 0xff; hint prefixes start with spaceHint
}

func appendHintKey(dst []byte, target string, v memtable.Version, key []byte) []byte {
	dst = append(dst, spaceHint, byte(len(target)))
	dst = append(dst, target...)
	dst = binary.BigEndian.AppendUint64(dst, v.TS)
	dst = binary.BigEndian.AppendUint64(dst, v.Node)
	return append(dst, key...)
}

// AddHint durably queues the encoded record rec of key for the node target.
// Below the free-space floor it is refused as Engine.Write is.
func (e *Engine) AddHint(target string, key, rec []byte) error {
	return e.AddHintMax(target, key, rec, 0)
}

// AddHintMax is AddHint, refused with ErrHintsFull when target's hints
// would hold more than maxBytes (0 or negative: no bound). Concurrent calls
// may pass the bound by one hint each.
func (e *Engine) AddHintMax(target string, key, rec []byte, maxBytes int64) error {
	size := hintSize(target, key, rec)
	if maxBytes > 0 {
		e.hints.mu.Lock()
		held := e.hints.bytes[target]
		e.hints.mu.Unlock()
		if held+size > maxBytes {
			return ErrHintsFull
		}
	}
	if err := e.admit(len(target) + len(key) + len(rec)); err != nil {
		return err
	}
	if len(target) == 0 || len(target) > MaxHintTarget {
		return fmt.Errorf("cannot keep a hint for node id of %d bytes", len(target))
	}
	v, err := memtable.DecodeVersion(rec)
	if err != nil {
		return fmt.Errorf("cannot keep hint for %q: %w", key, err)
	}
	if err := e.db.Set(appendHintKey(nil, target, v, key), rec, pebble.Sync); err != nil {
		return fmt.Errorf("cannot keep hint for %q: %w", key, e.diskFull(err))
	}
	e.hints.mu.Lock()
	e.hints.n[target]++
	e.hints.bytes[target] += size
	e.hints.mu.Unlock()
	return nil
}

// Hint is one queued record. ID names it for DeleteHints.
type Hint struct {
	ID     []byte
	Key    []byte
	Record []byte // encoded memtable.Record
}

// Hints returns up to max of target's oldest hints. The slices are the
// caller's.
func (e *Engine) Hints(ctx context.Context, target string, max int) ([]Hint, error) {
	if e.closed.Load() {
		return nil, ErrClosed
	}
	lo := hintPrefix(target)
	hi := prefixEnd(lo)
	it, err := e.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, err
	}
	var out []Hint
	for ok := it.First(); ok && len(out) < max; ok = it.Next() {
		k := it.Key()
		if len(k) <= len(lo)+16 {
			it.Close()
			return nil, fmt.Errorf("malformed hint key %x", k)
		}
		v, err := it.ValueAndErr()
		if err != nil {
			it.Close()
			return nil, err
		}
		id := bytes.Clone(k)
		out = append(out, Hint{ID: id, Key: id[len(lo)+16:], Record: bytes.Clone(v)})
	}
	if err := it.Close(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		// The queue is empty: resynchronize the count, which repeated
		// hints of one write can inflate.
		e.hints.mu.Lock()
		e.hints.forgetLocked(target)
		e.hints.mu.Unlock()
	}
	return out, nil
}

// DeleteHints removes delivered hints of target.
func (e *Engine) DeleteHints(target string, hs []Hint) error {
	if e.closed.Load() {
		return ErrClosed
	}
	b := e.db.NewBatch()
	defer b.Close()
	for _, h := range hs {
		if err := b.Delete(h.ID, nil); err != nil {
			return err
		}
	}
	if err := e.db.Apply(b, pebble.NoSync); err != nil {
		return err
	}
	var size int64
	for _, h := range hs {
		size += int64(len(h.ID) + len(h.Record))
	}
	e.hints.mu.Lock()
	e.hints.bytes[target] -= size
	if e.hints.n[target] -= int64(len(hs)); e.hints.n[target] <= 0 {
		e.hints.forgetLocked(target)
	}
	e.hints.mu.Unlock()
	return nil
}

// DropHints deletes every hint for target (a node removed for good).
func (e *Engine) DropHints(target string) error {
	if e.closed.Load() {
		return ErrClosed
	}
	lo := hintPrefix(target)
	hi := prefixEnd(lo)
	if err := e.db.DeleteRange(lo, hi, pebble.Sync); err != nil {
		return err
	}
	e.hints.mu.Lock()
	e.hints.forgetLocked(target)
	e.hints.mu.Unlock()
	return nil
}

// DropHintsBefore deletes target's hints whose records are stamped before
// ts (hints are kept in stamp order, so they are a prefix of the queue) and
// returns how many it deleted.
func (e *Engine) DropHintsBefore(target string, ts uint64) (int64, error) {
	if e.closed.Load() {
		return 0, ErrClosed
	}
	lo := hintPrefix(target)
	hi := binary.BigEndian.AppendUint64(bytes.Clone(lo), ts)
	it, err := e.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return 0, err
	}
	var n, size int64
	for ok := it.First(); ok; ok = it.Next() {
		n++
		size += int64(len(it.Key())) + int64(lazyLen(it.LazyValue()))
	}
	if err := it.Close(); err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, nil
	}
	if err := e.db.DeleteRange(lo, hi, pebble.NoSync); err != nil {
		return 0, err
	}
	e.hints.mu.Lock()
	e.hints.bytes[target] -= size
	if e.hints.n[target] -= n; e.hints.n[target] <= 0 {
		e.hints.forgetLocked(target)
	}
	e.hints.mu.Unlock()
	return n, nil
}

// HintBytes returns the bytes of queued hints per target node, as
// AddHintMax counts them.
func (e *Engine) HintBytes() map[string]int64 {
	e.hints.mu.Lock()
	defer e.hints.mu.Unlock()
	out := make(map[string]int64, len(e.hints.bytes))
	for k, v := range e.hints.bytes {
		out[k] = v
	}
	return out
}

// PendingHints returns the number of queued hints per target node.
func (e *Engine) PendingHints() map[string]int64 {
	e.hints.mu.Lock()
	defer e.hints.mu.Unlock()
	out := make(map[string]int64, len(e.hints.n))
	for k, v := range e.hints.n {
		out[k] = v
	}
	return out
}

// countHints fills the pending counts from the store at open.
func (e *Engine) countHints() error {
	lo, hi := spanOf(spaceHint)
	it, err := e.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	e.hints.n = map[string]int64{}
	e.hints.bytes = map[string]int64{}
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		if len(k) < 2 || len(k) < 2+int(k[1]) {
			it.Close()
			return errors.New("malformed hint key")
		}
		target := string(k[2 : 2+int(k[1])])
		e.hints.n[target]++
		e.hints.bytes[target] += int64(len(k)) + int64(lazyLen(it.LazyValue()))
	}
	return it.Close()
}

// lazyLen is the length of an iterator's value without fetching it.
func lazyLen(lv pebble.LazyValue) int { return lv.Len() }
