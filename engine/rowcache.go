package engine

import (
	"sync"
)

// rowCache keeps the newest encoded record of recently written and read
// keys, so a point read of a hot key skips the LSM. Pebble has no row
// cache, and a read of a key still in the memtables walks one skiplist per
// memtable: with keys in token (hash) order those walks are cache misses
// end to end, which made a fresh node's reads cost 1.3x to 1.4x those of a
// store keyed in insertion order.
//
// Coherence rests on the engine's key stripes (see write.go): every write
// and GC delete updates the cache under its key's stripe lock, after Pebble
// has sequenced it, and bumps the stripe's sequence number. A read that
// missed fills the cache only under the stripe lock and only if the
// stripe's sequence number has not moved since before it read Pebble, so a
// stale read never overwrites a newer write's entry.
//
// Entries are immutable byte slices: a hit may use one after releasing the
// shard lock. Eviction is random (Go map iteration order), which costs no
// bookkeeping on hits.
type rowCache struct {
	shards   [rowCacheShards]rcShard
	perShard int64
}

const rowCacheShards = 64

// rcEntryOverhead approximates the bytes a cache entry costs beyond its key
// and record (map slot, string and slice headers).
const rcEntryOverhead = 64

type rcShard struct {
	mu     sync.Mutex
	m      map[string][]byte // REQUIRES mu
	bytes  int64             // REQUIRES mu
	hits   int64             // REQUIRES mu
	misses int64             // REQUIRES mu
	_      [24]byte
}

func newRowCache(size int64) *rowCache {
	if size <= 0 {
		return nil
	}
	c := &rowCache{perShard: max(size/rowCacheShards, 1)}
	for i := range c.shards {
		c.shards[i].m = make(map[string][]byte)
	}
	return c
}

func (c *rowCache) shard(tok uint64) *rcShard { return &c.shards[(tok>>32)%rowCacheShards] }

// get returns the cached record of key, or nil. The result must not be modified.
func (c *rowCache) get(tok uint64, key []byte) []byte {
	s := c.shard(tok)
	s.mu.Lock()
	rec := s.m[string(key)]
	if rec != nil {
		s.hits++
	} else {
		s.misses++
	}
	s.mu.Unlock()
	return rec
}

// put caches rec (which the cache takes ownership of) for key.
// REQUIRES: the key's stripe lock.
func (c *rowCache) put(tok uint64, key, rec []byte) {
	s := c.shard(tok)
	cost := int64(len(key) + len(rec) + rcEntryOverhead)
	if cost > c.perShard/8 {
		c.remove(tok, key) // too large to be worth a slot; never keep a stale one
		return
	}
	s.mu.Lock()
	if old, ok := s.m[string(key)]; ok {
		s.bytes -= int64(len(key) + len(old) + rcEntryOverhead)
	}
	for k, v := range s.m {
		if s.bytes+cost <= c.perShard {
			break
		}
		delete(s.m, k)
		s.bytes -= int64(len(k) + len(v) + rcEntryOverhead)
	}
	s.m[string(key)] = rec
	s.bytes += cost
	s.mu.Unlock()
}

// peek returns the cached record of key, for writers that merge into it,
// without counting a hit or miss. REQUIRES: the key's stripe lock.
func (c *rowCache) peek(tok uint64, key []byte) []byte {
	s := c.shard(tok)
	s.mu.Lock()
	rec := s.m[string(key)]
	s.mu.Unlock()
	return rec
}

// remove drops key. REQUIRES: the key's stripe lock.
func (c *rowCache) remove(tok uint64, key []byte) {
	s := c.shard(tok)
	s.mu.Lock()
	if old, ok := s.m[string(key)]; ok {
		delete(s.m, string(key))
		s.bytes -= int64(len(key) + len(old) + rcEntryOverhead)
	}
	s.mu.Unlock()
}

// RowCacheStats describes the row cache.
type RowCacheStats struct {
	Capacity int64 `json:"capacity_bytes"`
	Bytes    int64 `json:"bytes"`
	Hits     int64 `json:"hits"`
	Misses   int64 `json:"misses"`
}

func (c *rowCache) stats() RowCacheStats {
	var st RowCacheStats
	if c == nil {
		return st
	}
	st.Capacity = c.perShard * rowCacheShards
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		st.Bytes += s.bytes
		st.Hits += s.hits
		st.Misses += s.misses
		s.mu.Unlock()
	}
	return st
}
