// Command pointread times the storage engine's point reads in process, on a
// data directory that bench/scale.sh (or preload) filled with key-0 ..
// key-(N-1): no HTTP and no load generator sharing the CPU, so the figure is
// the read path alone (the row cache, then Pebble's DB.Get). bench/README.md
// uses it to split a GET's cost at 10M keys between Pebble and the rest.
//
// Usage:
//
//	cp -r /tmp/sd/keys-10000000 /tmp/copy
//	pointread --data-dir /tmp/copy --keys 10000000 --block-cache-mib 256
//
// It opens the directory read-write (Pebble replays the WAL, and --compact
// rewrites every table into the bottom level): point it at a copy. It reads
// --reads keys to warm the caches, then --reads more, timed, and prints the
// mean time per read and the LSM's shape.
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime/pprof"
	"time"

	"github.com/ringkv/ringkv/bench/workload"
	"github.com/ringkv/ringkv/compaction"
	"github.com/ringkv/ringkv/engine"
)

func main() {
	dir := flag.String("data-dir", "", "a copy of a loaded data directory (required)")
	keys := flag.Uint64("keys", 10000000, "keys loaded (key-0 .. key-(N-1))")
	reads := flag.Int("reads", 2000000, "reads to warm the caches, then as many timed")
	dist := flag.String("distribution", "uniform", "uniform or zipf")
	blockMiB := flag.Int64("block-cache-mib", 256, "Pebble block cache, MiB")
	rowMiB := flag.Int64("row-cache-mib", 0, "row cache, MiB (0: off, so every read goes to Pebble)")
	compact := flag.Bool("compact", false, "first compact the whole store into the bottom level")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the timed reads here")
	flag.Parse()
	if err := run(*dir, *keys, *reads, *dist, *blockMiB, *rowMiB, *compact, *cpuProfile); err != nil {
		fmt.Fprintln(os.Stderr, "pointread:", err)
		os.Exit(1)
	}
}

func run(dir string, keys uint64, reads int, dist string, blockMiB, rowMiB int64, compact bool, cpuProfile string) error {
	if dir == "" || keys == 0 || reads < 1 || blockMiB < 1 || rowMiB < 0 {
		return fmt.Errorf("bad arguments (see -h)")
	}
	if _, err := os.Stat(dir); err != nil {
		return err
	}
	d, err := workload.ParseDistribution(dist)
	if err != nil {
		return err
	}
	choose, err := workload.NewChooser(d, keys, 0.99)
	if err != nil {
		return err
	}
	tu, err := compaction.Resolve(compaction.Balanced, compaction.Overrides{BlockCacheSize: ptr(blockMiB << 20)})
	if err != nil {
		return err
	}
	rows := rowMiB << 20
	if rows == 0 {
		rows = -1 // engine.Options: negative disables the row cache
	}
	e, err := engine.Open(engine.Options{Dir: dir, Tuning: tu, RowCacheSize: rows})
	if err != nil {
		return err
	}
	defer e.Close()
	if compact {
		t0 := time.Now()
		if err := e.Compact(context.Background()); err != nil {
			return err
		}
		fmt.Printf("compacted in %v\n", time.Since(t0).Round(time.Millisecond))
	}
	r := rand.New(rand.NewPCG(1, 2))
	var key, buf []byte
	pass := func() (time.Duration, error) {
		t0 := time.Now()
		for range reads {
			key = workload.AppendKey(key[:0], "key-", choose.Next(r))
			if buf, _, err = e.Get(buf[:0], key); err != nil {
				return 0, fmt.Errorf("reading %s: %w", key, err)
			}
		}
		return time.Since(t0), nil
	}
	warm, err := pass()
	if err != nil {
		return err
	}
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	timed, err := pass()
	if err != nil {
		return err
	}
	per := func(d time.Duration) string {
		return fmt.Sprintf("%.2fµs", float64(d.Nanoseconds())/1e3/float64(reads))
	}
	fmt.Printf("%s keys, %s reads: %s a read warming, %s timed; block cache %dMiB, row cache %dMiB\n",
		fmt.Sprint(keys), dist, per(warm), per(timed), blockMiB, rowMiB)
	for _, l := range e.LSM().Levels {
		if l.Files > 0 {
			fmt.Printf("L%d: %d files, %dMiB\n", l.Level, l.Files, l.Bytes>>20)
		}
	}
	return nil
}

func ptr[T any](v T) *T { return &v }
