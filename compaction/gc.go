package compaction

import (
	"time"

	"github.com/ringkv/ringkv/memtable"
)

// GC decides which records the engine's garbage collector may delete; its
// Drop method is a memtable.DropFunc. It is asked only about the newest
// version of a key, so deleting the key uncovers nothing older in the same
// store. The
// danger is an older write arriving later (a hint, anti-entropy, a
// late replica), which would then read as live: the grace period and the
// horizon exist to make that impossible.
type GC struct {
	// TombstoneGrace is how old a tombstone's HLC time must be before it may
	// be dropped (--tombstone-grace), and how long a TTL record must have been
	// expired. Zero drops them as soon as they are dead.
	TombstoneGrace time.Duration
	// Now reads the wall clock; nil means time.Now.
	Now func() time.Time
	// Horizon, when non-nil, caps how new a droppable record may be: the
	// cluster lowers it until every replica holds a tombstone, and a record
	// is droppable only if its timestamp is <= Horizon() as well. Nil means
	// no cap (a single node, or tests).
	Horizon func() uint64
}

var _ memtable.DropFunc = GC{}.Drop

// Drop reports whether the store may remove r's key outright. A tombstone may go
// once its HLC time is older than now-TombstoneGrace. A TTL record may go once
// it expired (ExpiresAt <= now) at least TombstoneGrace ago: an expired record
// is a tombstone dated at its expiry, and dropping it early would let an older
// write replayed late resurrect the key. Either way r's timestamp must also be
// <= Horizon() when Horizon is set. Live values are never dropped. Drop is
// safe for concurrent use if Now and Horizon are.
func (g GC) Drop(r *memtable.Record) bool {
	if !r.Tombstone && r.ExpiresAt == 0 {
		return false // the common case: a live value, no clock read
	}
	now := time.Now
	if g.Now != nil {
		now = g.Now
	}
	cutoff := now().Add(-g.TombstoneGrace)
	if r.Tombstone {
		if !memtable.TimestampTime(r.TS).Before(cutoff) {
			return false
		}
	} else if !r.Expired(cutoff.UnixMilli()) {
		return false
	}
	return g.Horizon == nil || r.TS <= g.Horizon()
}
