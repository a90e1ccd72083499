package memtable

import (
	"io"
	"sync"

	"github.com/cockroachdb/pebble/v2"
)

// MergerName is stored by Pebble in the OPTIONS file; a store written with
// one merger can only be opened with a merger of the same name.
const MergerName = "ringkv.lww.v1"

// DropFunc decides whether a record that is the newest version of its key
// may be removed from the store outright: tombstones past their grace
// period, expired TTL records. It must be safe for concurrent use and must
// not retain r.
type DropFunc func(r *Record) bool

// NewMerger returns the last-writer-wins Pebble merge operator. Of all the
// records merged for one key it keeps the newest (see Newer); the operation
// is associative and commutative, so Pebble may merge any subset in any
// order.
//
// NB: the merger never deletes. Pebble v2.1's DeletableValueMerger path
// mishandles a merge that lands on a SET in the same compaction (it trips an
// assertion, or would re-emit the older SET), so garbage collection deletes
// keys with ordinary Pebble deletes instead (see engine.CollectGarbage).
func NewMerger() *pebble.Merger {
	return &pebble.Merger{
		Name: MergerName,
		Merge: func(key, value []byte) (pebble.ValueMerger, error) {
			if _, err := DecodeVersion(value); err != nil {
				return nil, err
			}
			m := lwwPool.Get().(*lwwMerger)
			m.best = append(m.best[:0], value...)
			return m, nil
		},
	}
}

var lwwPool = sync.Pool{New: func() any { return new(lwwMerger) }}

// lwwMerger holds a copy of the newest operand seen so far. It is returned
// to the pool by Close, which Pebble calls once it is done with Finish's
// result.
type lwwMerger struct {
	best []byte
}

var (
	_ pebble.ValueMerger = (*lwwMerger)(nil)
	_ io.Closer          = (*lwwMerger)(nil)
)

func (m *lwwMerger) MergeNewer(value []byte) error { return m.merge(value) }
func (m *lwwMerger) MergeOlder(value []byte) error { return m.merge(value) }

func (m *lwwMerger) merge(value []byte) error {
	newer, err := Newer(value, m.best)
	if err != nil {
		return err
	}
	if newer {
		m.best = append(m.best[:0], value...)
	}
	return nil
}

func (m *lwwMerger) Finish(includesBase bool) ([]byte, io.Closer, error) {
	return m.best, m, nil
}

// Close returns m to the pool.
func (m *lwwMerger) Close() error {
	if cap(m.best) > 64<<10 {
		m.best = nil // do not pin large values in the pool
	}
	lwwPool.Put(m)
	return nil
}
