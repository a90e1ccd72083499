// Command pointread times the storage engine's point reads in process, on a
// data directory that `bench/cmd/compare scale` (or preload) filled with key-0 ..
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
// --reads keys to warm the caches (after the row cache's own warm, unless
// --row-cache-warm=false), then --reads more, timed, and prints the
// mean time per read and the LSM's shape. Bad flags exit 2, a failed read
// exits 1.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime/pprof"
	"time"

	"github.com/ringkv/ringkv/bench/workload"
	"github.com/ringkv/ringkv/compaction"
	"github.com/ringkv/ringkv/engine"
)

func main() {
	var c config
	flag.StringVar(&c.dir, "data-dir", "", "a copy of a loaded data directory (required)")
	flag.Uint64Var(&c.keys, "keys", 10000000, "keys loaded (key-0 .. key-(N-1))")
	flag.IntVar(&c.reads, "reads", 2000000, "reads to warm the caches, then as many timed")
	flag.StringVar(&c.dist, "distribution", "uniform", "uniform or zipf")
	flag.Int64Var(&c.blockMiB, "block-cache-mib", 256, "Pebble block cache, MiB")
	flag.Int64Var(&c.rowMiB, "row-cache-mib", 0, "row cache, MiB (0: off, so every read goes to Pebble; else at least 32, as for ringkv serve)")
	flag.BoolVar(&c.warmRows, "row-cache-warm", true, "fill the row cache from the store first, as ringkv serve does at start, and wait for it")
	flag.BoolVar(&c.compact, "compact", false, "first compact the whole store into the bottom level")
	flag.StringVar(&c.cpuProfile, "cpuprofile", "", "write a CPU profile of the timed reads here")
	flag.Parse()
	if flag.NArg() != 0 {
		c.err = fmt.Errorf("unexpected argument %q", flag.Arg(0))
	}
	if err := c.check(); err != nil {
		fmt.Fprintln(os.Stderr, "pointread:", err)
		os.Exit(2)
	}
	if err := run(c, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "pointread:", err)
		os.Exit(1)
	}
}

type config struct {
	dir              string
	keys             uint64
	reads            int
	dist             string
	blockMiB, rowMiB int64
	compact          bool
	warmRows         bool
	cpuProfile       string
	err              error // from parsing
}

// check names the first bad flag.
func (c config) check() error {
	switch {
	case c.err != nil:
		return c.err
	case c.dir == "":
		return fmt.Errorf("--data-dir is required")
	case c.keys == 0:
		return fmt.Errorf("--keys must be at least 1")
	case c.reads < 1:
		return fmt.Errorf("--reads (%d) must be at least 1", c.reads)
	case c.blockMiB < 1:
		return fmt.Errorf("--block-cache-mib (%d) must be at least 1", c.blockMiB)
	case c.rowMiB != 0 && c.rowMiB<<20 < engine.MinRowCacheSize:
		// fastcache rounds anything smaller up to 32MiB.
		return fmt.Errorf("--row-cache-mib (%d) must be 0 (off) or at least 32", c.rowMiB)
	}
	if _, err := workload.ParseDistribution(c.dist); err != nil {
		return fmt.Errorf("--distribution: %w", err)
	}
	if _, err := os.Stat(c.dir); err != nil {
		return fmt.Errorf("--data-dir: %w", err)
	}
	return nil
}

func run(c config, out io.Writer) error {
	if err := c.check(); err != nil {
		return err
	}
	d, _ := workload.ParseDistribution(c.dist)
	choose, err := workload.NewChooser(d, c.keys, workload.DefaultZipfTheta)
	if err != nil {
		return err
	}
	tu, err := compaction.Resolve(compaction.Balanced, compaction.Overrides{BlockCacheSize: new(c.blockMiB << 20)})
	if err != nil {
		return err
	}
	rows := c.rowMiB << 20
	if rows == 0 {
		rows = -1 // engine.Options: negative disables the row cache
	}
	t0 := time.Now()
	e, err := engine.Open(engine.Options{Dir: c.dir, Tuning: tu, RowCacheSize: rows, GCInterval: -1,
		SkipRowCacheWarm: !c.warmRows, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return err
	}
	defer e.Close()
	if c.rowMiB > 0 && c.warmRows {
		for e.LSM().RowCache.Warming {
			time.Sleep(10 * time.Millisecond)
		}
		fmt.Fprintf(out, "row cache warmed: %d records in %v\n", e.LSM().RowCache.Warmed, time.Since(t0).Round(time.Millisecond))
	}
	if c.compact {
		t0 := time.Now()
		if err := e.Compact(context.Background()); err != nil {
			return err
		}
		fmt.Fprintf(out, "compacted in %v\n", time.Since(t0).Round(time.Millisecond))
	}
	r := rand.New(rand.NewPCG(1, 2))
	var key, buf []byte
	pass := func() (time.Duration, error) {
		t0 := time.Now()
		for range c.reads {
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
	if c.cpuProfile != "" {
		f, err := os.Create(c.cpuProfile)
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
		return fmt.Sprintf("%.2fµs", float64(d.Nanoseconds())/1e3/float64(c.reads))
	}
	fmt.Fprintf(out, "%d keys, %s reads: %s a read warming, %s timed; block cache %dMiB, row cache %dMiB\n",
		c.keys, c.dist, per(warm), per(timed), c.blockMiB, c.rowMiB)
	for _, l := range e.LSM().Levels {
		if l.Files > 0 {
			fmt.Fprintf(out, "L%d: %d files, %dMiB\n", l.Level, l.Files, l.Bytes>>20)
		}
	}
	return nil
}
