package engine

import (
	"fmt"
	"time"

	"github.com/VictoriaMetrics/fastcache"
	"github.com/cockroachdb/pebble/v2"
)

// The row cache is warmed from the store when the engine opens, and again
// whenever it is emptied whole (ingesting or dropping a range does that),
// so a restarted node answers from memory at once rather than after enough
// misses have refilled it: InnoDB's buffer pool dump and load, and
// Cassandra's saved caches, do the same for the same reason. A pass reads
// records in token order (an arbitrary sample of the keys) until the
// cache, counting what traffic cached before the pass began, is nearly
// full, and leaves the rest for what traffic caches meanwhile. fastcache
// overwrites in write order, so once the cache is full the warm's records
// go before anything cached after them.
//
// It uses the read-miss fill's protocol (see snapshot.go) a chunk at a
// time: every stripe's sequence number is copied before the chunk's
// iterator is made, and a record is cached only if its stripe's number is
// unchanged, under the stripe lock. A write, GC delete, range drop or
// ingest after the copy bumps the number, so the warm never caches over a
// newer record.

const (
	// rewarmDelay is how long the cache must go without being emptied
	// before it is warmed again, and rewarmMaxDelay the longest a stream
	// of resets can put a pass off.
	rewarmDelay    = 2 * time.Second
	rewarmMaxDelay = 30 * time.Second

	// warmChunk is how many records the warm visits through one iterator,
	// and warmChunkBytes how many bytes of them it copies before caching
	// them: records may be large, and the warm should hold few in memory.
	warmChunk      = 512
	warmChunkBytes = 1 << 20
)

// warmBudget is how many bytes of records a pass may fill a row cache of
// capacity bytes with: 90%, leaving room for what traffic caches
// meanwhile. fastcache splits itself into 512 buckets, each a ring of
// 64KiB chunks; a bucket of one chunk (caches of 32MiB or less) that overflows
// drops everything it held, so those are filled to 75%, which keeps the
// fullest buckets (hashing spreads records unevenly) inside their chunk.
func warmBudget(capacity int64) int64 {
	if capacity/512 <= 64<<10 {
		return capacity * 3 / 4
	}
	return capacity * 9 / 10
}

// warmLoop warms the row cache when the engine opens, and again each time
// the whole cache is emptied, until Close.
func (e *Engine) warmLoop() {
	for {
		pass := e.warmAsked.Load()
		if pass != e.warmDone.Load() {
			e.warmRows(pass)
			e.warmDone.Store(pass)
			if e.warmEndHook != nil {
				e.warmEndHook()
			}
		}
		select {
		case <-e.stop:
			return
		case <-e.rewarm:
		}
		// A join pulls range after range, each emptying the cache: let
		// the resets settle before reading the store again.
		t := time.NewTimer(e.rewarmDelay)
		deadline := time.After(rewarmMaxDelay)
	settle:
		for {
			select {
			case <-e.stop:
				t.Stop()
				return
			case <-e.rewarm:
				t.Reset(e.rewarmDelay)
			case <-t.C:
				break settle
			case <-deadline:
				t.Stop()
				break settle
			}
		}
	}
}

// askRewarm asks for another warm pass, ending the one under way; Warming
// reads true from now until a pass ends. The caller has just emptied the
// row cache.
func (e *Engine) askRewarm() {
	if e.rewarm == nil {
		return
	}
	e.warmAsked.Add(1)
	select {
	case e.rewarm <- struct{}{}:
	default: // a pass is already asked for
	}
}

// warmRows runs warm pass number pass: it fills the row cache from the
// store until it is nearly full, the data keyspace ends, another pass is
// asked for, or the engine closes.
func (e *Engine) warmRows(pass uint64) {
	start := time.Now()
	stale := func() bool { return e.warmAsked.Load() != pass }
	n, bytes, err := e.warmRowsUntil(warmBudget(e.rows.capacity), e.stop, stale)
	e.rowsWarmed.Store(int64(n))
	switch {
	case err != nil:
		e.opts.Logger.Warn("row cache warm stopped", "records", n, "bytes", bytes, "err", e.corruptionOf(err).Error())
	case stale():
		e.opts.Logger.Debug("row cache warm cut short: the cache was emptied again", "records", n)
	default:
		e.opts.Logger.Info("row cache warmed", "records", n, "bytes", bytes, "took", time.Since(start).Round(time.Millisecond))
	}
}

// warmRowsUntil caches records in token order until the cache holds about
// budget bytes of records (key, record and fastcache's 4-byte header; what
// was cached before it began is counted at the size of what it caches),
// the keyspace ends, stop is closed or stale (if not nil) reports true. It
// returns what it cached.
func (e *Engine) warmRowsUntil(budget int64, stop <-chan struct{}, stale func() bool) (n int, bytes int64, err error) {
	var st fastcache.Stats
	e.rows.c.UpdateStats(&st)
	w := rowWarmer{e: e, budget: budget, before: st.EntriesCount, chunk: make([]warmEntry, 0, warmChunk)}
	w.lo, w.hi = spanOf(spaceData)
	for !w.full() {
		select {
		case <-stop:
			return w.n, w.bytes, nil
		default:
		}
		if stale != nil && stale() {
			return w.n, w.bytes, nil
		}
		more, err := w.read()
		if err != nil {
			return w.n, w.bytes, err
		}
		if e.warmHook != nil {
			e.warmHook()
		}
		w.cache()
		if !more {
			break
		}
		// The next chunk starts just after the last key visited.
		w.lo = append(append(w.lo[:0:0], w.last...), 0)
	}
	return w.n, w.bytes, nil
}

// rowWarmer is the state of one warm pass: where it is, what it read and
// what it cached.
type rowWarmer struct {
	e      *Engine
	budget int64
	before uint64 // entries cached before the pass
	lo, hi []byte // what is left to read
	seqs   [numStripes]uint64
	chunk  []warmEntry
	buf    []byte // the chunk's keys and records
	last   []byte // the last key read
	n      int
	bytes  int64
}

type warmEntry struct {
	tok       uint64
	key, rec  []byte // into buf or an array buf outgrew, which stays intact
	stripeSeq uint64
}

// full reports whether the pass has cached its budget.
func (w *rowWarmer) full() bool {
	if w.n == 0 || w.before == 0 {
		return w.bytes >= w.budget
	}
	return w.bytes+int64(w.before)*(w.bytes/int64(w.n)) >= w.budget
}

// read reads the next chunk of records from w.lo, noting each stripe's
// sequence first so that cache can skip the keys written since; more is
// false at the end of the keyspace.
func (w *rowWarmer) read() (more bool, err error) {
	e := w.e
	for i := range e.stripes {
		w.seqs[i] = e.stripes[i].seq.Load()
	}
	it, err := e.db.NewIter(&pebble.IterOptions{LowerBound: w.lo, UpperBound: w.hi})
	if err != nil {
		return false, err
	}
	w.chunk, w.buf = w.chunk[:0], w.buf[:0]
	visited := 0
	for ok := it.First(); ok && visited < warmChunk && len(w.buf) < warmChunkBytes; ok = it.Next() {
		visited++
		w.last = append(w.last[:0], it.Key()...)
		k, ok := userKey(it.Key())
		if !ok {
			it.Close()
			return false, fmt.Errorf("malformed storage key %x", it.Key())
		}
		if lv := it.LazyValue(); len(k)+lv.Len() > maxRowEntry {
			continue // the row cache would not keep it: do not load it
		}
		v, err := it.ValueAndErr()
		if err != nil {
			it.Close()
			return false, err
		}
		tok := dataKeyToken(it.Key()) // the store's own keys: no need to hash again
		kl := len(w.buf)
		w.buf = append(w.buf, k...)
		w.buf = append(w.buf, v...)
		w.chunk = append(w.chunk, warmEntry{tok: tok, key: w.buf[kl : kl+len(k)], rec: w.buf[kl+len(k):], stripeSeq: w.seqs[tok%numStripes]})
	}
	more = it.Valid()
	return more, it.Close()
}

// cache caches the chunk's records whose stripes saw no write since they
// were read, until the budget is reached.
func (w *rowWarmer) cache() {
	for _, c := range w.chunk {
		if w.full() {
			return
		}
		s := w.e.stripeAt(c.tok)
		if !s.mu.TryLock() {
			continue // a busy stripe is skipped, as a read-miss fill does
		}
		if s.seq.Load() == c.stripeSeq {
			w.e.rows.put(c.key, c.rec)
			w.n++
			w.bytes += int64(len(c.key) + len(c.rec) + 4)
		}
		s.mu.Unlock()
	}
}

// rowCacheStats is the row cache's stats with the warm's state.
func (e *Engine) rowCacheStats() RowCacheStats {
	s := e.rows.stats()
	s.Warming = e.warmDone.Load() < e.warmAsked.Load()
	s.Warmed = e.rowsWarmed.Load()
	return s
}
