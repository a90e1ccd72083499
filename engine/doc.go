// Package engine is the node's only door to durable storage: it opens
// Pebble, lays out the keyspaces (data, hints, metadata), serves point
// reads, token-ordered scans and snapshots, exports the LSM's metrics and
// closes cleanly. No other package outside the storage layer (engine,
// memtable, sstable, compaction) sees a Pebble type.
//
// Data keys are stored in token order: a keyspace byte, the 8-byte
// big-endian xxh3 hash of the user key (its ring token), then the user key.
// A token range of the ring is therefore one contiguous Pebble span.
package engine
