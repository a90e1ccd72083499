package engine

import (
	"github.com/VictoriaMetrics/fastcache"
)

// rowCache keeps the newest encoded record of recently written and read
// keys, so a point read of a hot key skips the LSM. Pebble has no row
// cache, and a read of a key still in the memtables walks one skiplist per
// memtable: with keys in token (hash) order those walks are cache misses
// end to end, which made a fresh node's reads cost 1.3x to 1.4x those of a
// store keyed in insertion order.
//
// The store is VictoriaMetrics' fastcache: entries live in off-heap chunks
// the Go garbage collector never scans (a map of slices did, and cost
// every write more than the cache saved), and old entries are overwritten
// in ring order.
//
// Coherence rests on the engine's key stripes (see write.go): every write
// and GC delete updates the cache under its key's stripe lock, after Pebble
// has sequenced it, and bumps the stripe's sequence number. A read that
// missed fills the cache only under the stripe lock and only if the
// stripe's sequence number has not moved since before it read Pebble, so a
// stale read never overwrites a newer write's entry.
type rowCache struct {
	c        *fastcache.Cache
	capacity int64
}

// maxRowEntry is the largest key plus record fastcache stores (it keeps an
// entry within one 64KiB chunk, with a 4-byte header).
const maxRowEntry = 64<<10 - 5

func newRowCache(size int64) *rowCache {
	if size <= 0 {
		return nil
	}
	return &rowCache{c: fastcache.New(int(size)), capacity: size}
}

// get appends the cached record of key to dst and reports whether it was there.
func (c *rowCache) get(dst, key []byte) ([]byte, bool) {
	return c.c.HasGet(dst, key)
}

// put caches rec for key. REQUIRES: the key's stripe lock.
func (c *rowCache) put(key, rec []byte) {
	if len(key)+len(rec) > maxRowEntry {
		// fastcache would silently keep an older entry: drop it instead.
		c.c.Del(key)
		return
	}
	c.c.Set(key, rec)
}

// remove drops key. REQUIRES: the key's stripe lock.
func (c *rowCache) remove(key []byte) { c.c.Del(key) }

// RowCacheStats describes the row cache.
type RowCacheStats struct {
	Capacity int64  `json:"capacity_bytes"`
	Bytes    uint64 `json:"bytes"`
	Entries  uint64 `json:"entries"`
	Hits     uint64 `json:"hits"`
	Misses   uint64 `json:"misses"`
	// Warming is true from when the row cache is to be filled from the
	// store (at open, and when it was emptied whole, through the wait for
	// such resets to settle) until that pass ends; Warmed is how many
	// records the last pass cached.
	Warming bool  `json:"warming"`
	Warmed  int64 `json:"warmed_records"`
}

func (c *rowCache) stats() RowCacheStats {
	if c == nil {
		return RowCacheStats{}
	}
	var s fastcache.Stats
	c.c.UpdateStats(&s)
	return RowCacheStats{Capacity: c.capacity, Bytes: s.BytesSize, Entries: s.EntriesCount,
		Hits: s.GetCalls - s.Misses, Misses: s.Misses}
}
