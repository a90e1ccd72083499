package engine

import (
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/ringkv/ringkv/memtable"
)

var sink atomic.Uint64

// benchEngine opens an engine without the row cache, to measure the LSM
// paths; BenchmarkGet/rowcache measures the cache.
func benchEngine(b *testing.B, fs vfs.FS, dir string) *Engine {
	b.Helper()
	return benchEngineCache(b, fs, dir, -1)
}

func benchEngineCache(b *testing.B, fs vfs.FS, dir string, rowCache int64) *Engine {
	b.Helper()
	e, err := open(Options{FS: fs, Dir: dir, Logger: quiet(), GCInterval: -1, RowCacheSize: rowCache}, hooks{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.Close() })
	return e
}

func benchKeys(n int) [][]byte {
	keys := make([][]byte, n)
	for i := range keys {
		keys[i] = []byte(fmt.Sprintf("key-%d", i))
	}
	return keys
}

// BenchmarkWrite measures the write path without fsync: stripe, record
// encoding and Pebble's commit pipeline; with the row cache on, what the
// write does to the cache too.
func BenchmarkWrite(b *testing.B) {
	b.Run("lsm", func(b *testing.B) { benchWrite(b, benchEngine(b, vfs.NewMem(), "db")) })
	b.Run("rowcache", func(b *testing.B) { benchWrite(b, benchEngineCache(b, vfs.NewMem(), "db", 64<<20)) })
}

func benchWrite(b *testing.B, e *Engine) {
	keys := benchKeys(100_000)
	clock := memtable.NewClock(nil)
	val := make([]byte, 100)
	b.ReportAllocs()
	b.SetBytes(int64(len(val)))
	var i int
	for b.Loop() {
		r := memtable.Record{Version: memtable.Version{TS: clock.Now(), Node: 1}, Value: val}
		if err := e.Write(keys[i%len(keys)], &r, false); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkWriteSyncParallel measures fsynced writes from many writers on
// a real disk: concurrent writes share fsyncs.
func BenchmarkWriteSyncParallel(b *testing.B) {
	e := benchEngine(b, vfs.Default, b.TempDir())
	keys := benchKeys(100_000)
	clock := memtable.NewClock(nil)
	val := make([]byte, 100)
	var n atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(32)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			r := memtable.Record{Version: memtable.Version{TS: clock.Now(), Node: 1}, Value: val}
			if err := e.Write(keys[int(i)%len(keys)], &r, true); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkGet reads random keys from memtables, after a compaction from
// SSTables through the block cache, and from the row cache.
func BenchmarkGet(b *testing.B) {
	for _, where := range []string{"memtable", "sstables", "rowcache"} {
		b.Run(where, func(b *testing.B) {
			cache := int64(-1)
			if where == "rowcache" {
				cache = DefaultRowCacheSize
			}
			e := benchEngineCache(b, vfs.NewMem(), "db", cache)
			keys := benchKeys(100_000)
			clock := memtable.NewClock(nil)
			val := make([]byte, 100)
			for _, k := range keys {
				r := memtable.Record{Version: memtable.Version{TS: clock.Now(), Node: 1}, Value: val}
				if err := e.Write(k, &r, false); err != nil {
					b.Fatal(err)
				}
			}
			if where == "sstables" {
				if err := e.Compact(b.Context()); err != nil {
					b.Fatal(err)
				}
			}
			benchGets(b, e, keys)
		})
	}
}

// benchGets measures the point reads of keys three ways: Get (the value,
// as a single node answers), GetStored (the record as stored, as a replica
// and a cluster read's own copy take it), and decode-encode, the way a
// cluster read took its own copy before GetStored (Get, then the record
// encoded again; the coordinator decoded it a third time).
func benchGets(b *testing.B, e *Engine, keys [][]byte) {
	for _, how := range []string{"value", "stored", "decode-encode"} {
		b.Run(how, func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 2))
			dst := make([]byte, 0, 256)
			b.ReportAllocs()
			for b.Loop() {
				k := keys[rng.IntN(len(keys))]
				var out []byte
				var err error
				switch how {
				case "value":
					out, _, err = e.Get(dst[:0], k)
				case "stored":
					var r memtable.Record
					out, r, err = e.GetStored(dst[:0], k)
					out = r.Value
				default:
					var r memtable.Record
					_, r, err = e.Get(nil, k)
					out = r.Append(dst[:0])
					if err == nil {
						r, err = memtable.Decode(out)
						out = r.Value
					}
				}
				if err != nil {
					b.Fatal(err)
				}
				sink.Add(uint64(len(out)))
			}
		})
	}
}

// BenchmarkGetMerged reads keys whose newest record is a merge operand
// (written out of timestamp order), the slow path Write avoids when it can.
func BenchmarkGetMerged(b *testing.B) {
	e := benchEngine(b, vfs.NewMem(), "db")
	keys := benchKeys(100_000)
	base := memtable.TimestampAt(time.Now())
	val := make([]byte, 100)
	for i := 1; i >= 0; i-- { // the older write second: a MERGE over a SET
		for _, k := range keys {
			r := memtable.Record{Version: memtable.Version{TS: base + uint64(i), Node: 1}, Value: val}
			if err := e.Write(k, &r, false); err != nil {
				b.Fatal(err)
			}
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	dst := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		out, _, err := e.Get(dst[:0], keys[rng.IntN(len(keys))])
		if err != nil {
			b.Fatal(err)
		}
		sink.Add(uint64(len(out)))
	}
}
