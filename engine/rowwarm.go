package engine

import (
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// The row cache is warmed from the store when the engine opens, and again
// whenever it is emptied whole (ingesting or dropping a range does that),
// so a restarted node answers from memory at once rather than after enough
// misses have refilled it: InnoDB's buffer pool dump and load, and
// Cassandra's saved caches, do the same for the same reason. The warm
// reads records in token order (an arbitrary sample of the keys) until
// the cache is nearly full; what it cached is the oldest in fastcache's
// ring, so reads and writes overwrite it first.
//
// It uses the read-miss fill's protocol (see snapshot.go) a chunk at a
// time: every stripe's sequence number is copied before the chunk's
// iterator is made, and a record is cached only if its stripe's number is
// unchanged, under the stripe lock. A write, GC delete, range drop or
// ingest after the copy bumps the number, so the warm never caches over a
// newer record.

// rewarmDelay is how long the cache must go without being emptied before
// it is warmed again.
const rewarmDelay = 2 * time.Second

// warmChunk is how many records the warm reads through one iterator, and
// warmChunkBytes how many bytes of them it copies before caching them:
// records may be large, and the warm should not hold many in memory.
const (
	warmChunk      = 512
	warmChunkBytes = 1 << 20
)

// warmFill is the share of the row cache's capacity the warm fills,
// leaving room for what live traffic caches meanwhile.
const warmFill = 0.9

// warmLoop warms the row cache when the engine opens, and again each time
// the whole cache is emptied (a range ingested or dropped), until Close.
func (e *Engine) warmLoop() {
	for {
		pass := e.warmAsked.Load()
		e.warmRows()
		e.warmDone.Store(pass)
		select {
		case <-e.stop:
			return
		case <-e.rewarm:
		}
		// A join pulls range after range, each emptying the cache: let
		// the resets settle before reading the store again.
		for settled := false; !settled; {
			t := time.NewTimer(e.rewarmDelay)
			select {
			case <-e.stop:
				t.Stop()
				return
			case <-e.rewarm:
			case <-t.C:
				settled = true
			}
			t.Stop()
		}
	}
}

// askRewarm asks for another warm pass; Warming reads true from now until
// that pass ends. The caller has just emptied the row cache.
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

// warmRows fills the row cache from the store until it holds warmFill of
// its capacity, the data keyspace ends, or the engine closes.
func (e *Engine) warmRows() {
	start := time.Now()
	n, bytes, err := e.warmRowsUntil(int64(warmFill*float64(e.rows.capacity)), e.stop)
	e.rowsWarmed.Store(int64(n))
	if err != nil {
		e.opts.Logger.Warn("row cache warm stopped", "records", n, "bytes", bytes, "err", err)
		return
	}
	e.opts.Logger.Info("row cache warmed", "records", n, "bytes", bytes, "took", time.Since(start).Round(time.Millisecond))
}

// warmRowsUntil caches records in token order until budget bytes (key,
// record and fastcache's 4-byte header) are cached, the keyspace ends or
// stop is closed, and returns what it cached.
func (e *Engine) warmRowsUntil(budget int64, stop <-chan struct{}) (n int, bytes int64, err error) {
	lo, hi := spanOf(spaceData)
	var seqs [numStripes]uint64
	type entry struct {
		tok       uint64
		key, rec  []byte // into buf or an array buf outgrew, which stays intact
		stripeSeq uint64
	}
	chunk := make([]entry, 0, warmChunk)
	var buf []byte
	for bytes < budget {
		select {
		case <-stop:
			return n, bytes, nil
		default:
		}
		if e.closed.Load() {
			return n, bytes, nil
		}
		for i := range e.stripes {
			seqs[i] = e.stripes[i].seq.Load()
		}
		it, err := e.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
		if err != nil {
			return n, bytes, err
		}
		chunk, buf = chunk[:0], buf[:0]
		for ok := it.First(); ok && len(chunk) < warmChunk && len(buf) < warmChunkBytes; ok = it.Next() {
			k, ok := userKey(it.Key())
			if !ok {
				it.Close()
				return n, bytes, fmt.Errorf("malformed storage key %x", it.Key())
			}
			v, err := it.ValueAndErr()
			if err != nil {
				it.Close()
				return n, bytes, err
			}
			if len(k)+len(v) > maxRowEntry {
				continue // the row cache would not keep it
			}
			tok := Token(k)
			kl := len(buf)
			buf = append(buf, k...)
			buf = append(buf, v...)
			chunk = append(chunk, entry{tok: tok, key: buf[kl : kl+len(k)], rec: buf[kl+len(k):], stripeSeq: seqs[tok%numStripes]})
		}
		more := it.Valid()
		if err := it.Close(); err != nil {
			return n, bytes, err
		}
		if e.warmHook != nil {
			e.warmHook()
		}
		for _, c := range chunk {
			if bytes >= budget {
				break
			}
			s := e.stripeAt(c.tok)
			if !s.mu.TryLock() {
				continue // a busy stripe is skipped, as a read-miss fill does
			}
			if s.seq.Load() == c.stripeSeq {
				e.rows.put(c.key, c.rec)
				n++
				bytes += int64(len(c.key) + len(c.rec) + 4)
			}
			s.mu.Unlock()
		}
		if !more || len(chunk) == 0 {
			return n, bytes, nil
		}
		// The next chunk starts just after this one's last key.
		last := chunk[len(chunk)-1].key
		lo = appendDataKeyTok(make([]byte, 0, dataPrefixLen+len(last)+1), chunk[len(chunk)-1].tok, last)
		lo = append(lo, 0)
	}
	return n, bytes, nil
}

// rowCacheStats is the row cache's stats with the warm's state.
func (e *Engine) rowCacheStats() RowCacheStats {
	s := e.rows.stats()
	s.Warming = e.warmDone.Load() < e.warmAsked.Load()
	s.Warmed = e.rowsWarmed.Load()
	return s
}
