// Package compaction is ringkv's compaction policy: the three compaction
// profiles and the per-flag overrides, resolved into a Tuning and applied to
// pebble.Options; the garbage-collection rule that decides when old tombstones
// and expired TTL records may be deleted; and an advisor that turns a Pebble
// write stall into the flag that would have prevented it.
//
// Policy lives here and execution in engine/, as Pebble keeps its compaction
// picker apart from its executor: everything in this package is a pure
// function of values (plus an injected clock), so it is tested without a
// database. Typical use, in the engine:
//
//	t, err := compaction.Resolve(profile, overrides) // flags from cmd/
//	if err != nil { ... }                            // one line naming the flag
//	opts := &pebble.Options{FS: fs, Merger: memtable.NewMerger()}
//	t.Apply(opts)
//	opts.EventListener = &pebble.EventListener{
//		WriteStallBegin: func(i pebble.WriteStallBeginInfo) {
//			a := compaction.AdviseStall(i.Reason, t)
//			logger.Warn("write stall", "reason", a.Reason, "flag", a.Flag, "advice", a.Message)
//		},
//	}
//
// All types here are plain values and safe for concurrent use once built;
// GC.Drop is safe for concurrent use if its Now and Horizon functions are.
package compaction
