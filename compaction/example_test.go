package compaction_test

import (
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/ringkv/ringkv/compaction"
	"github.com/ringkv/ringkv/memtable"
)

// Example resolves --compaction-profile=write-heavy --memtable-size=256MiB,
// applies it to Pebble's options and wires the garbage collector and the
// stall advisor, as the engine does.
func Example() {
	p, err := compaction.ParseProfile("write-heavy")
	if err != nil {
		panic(err)
	}
	mem := int64(256 << 20)
	t, err := compaction.Resolve(p, compaction.Overrides{MemTableSize: &mem})
	if err != nil {
		panic(err)
	}
	for _, k := range t.Knobs() {
		fmt.Printf("%s=%s\n", k.Name, k.Value)
	}

	gc := compaction.GC{TombstoneGrace: 24 * time.Hour}
	old := memtable.Record{Version: memtable.Version{TS: memtable.TimestampAt(time.Now().Add(-48 * time.Hour))}, Tombstone: true}
	fmt.Println("drop a 2-day-old tombstone:", gc.Drop(&old))
	opts := &pebble.Options{Merger: memtable.NewMerger()}
	t.Apply(opts)
	fmt.Println("pebble memtable:", opts.MemTableSize>>20, "MiB")

	a := compaction.AdviseStall("L0 file count limit exceeded", t)
	fmt.Println("on an L0 stall, change --" + a.Flag)

	// Output:
	// compaction-profile=write-heavy
	// memtable-size=256MiB
	// memtable-stop-writes=6
	// l0-compaction-threshold=8
	// l0-stop-writes-threshold=40
	// lbase-max-bytes=256MiB
	// target-file-size=16MiB
	// max-concurrent-compactions=2
	// block-cache-size=128MiB
	// bloom-bits-per-key=10
	// drop a 2-day-old tombstone: true
	// pebble memtable: 256 MiB
	// on an L0 stall, change --l0-stop-writes-threshold
}
