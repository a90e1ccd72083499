package engine

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/ringkv/ringkv/compaction"
	"github.com/ringkv/ringkv/memtable"
)

var seedFlag = flag.Uint64("seed", 0, "seed for the randomized engine test (0: time-based)")

// fakeClock is a settable wall clock, read by Pebble's compactions on
// their own goroutines.
type fakeClock struct{ ms atomic.Int64 }

func newFakeClock(t time.Time) *fakeClock { c := &fakeClock{}; c.ms.Store(t.UnixMilli()); return c }
func (c *fakeClock) Now() time.Time       { return time.UnixMilli(c.ms.Load()) }
func (c *fakeClock) Add(d time.Duration)  { c.ms.Add(d.Milliseconds()) }

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// openMem opens engine "db" on fs; mut adjusts the options, whose
// defaults here are no background GC and no row cache warm (tests that
// count the row cache's entries and hits would race it; the warm's tests
// and the randomized test turn it on).
func openMem(t *testing.T, fs vfs.FS, mut func(*Options), hook func(*pebble.Options)) *Engine {
	t.Helper()
	return openHooks(t, fs, mut, hooks{pebble: hook})
}

// openHooks is openMem with the hooks h.
func openHooks(t *testing.T, fs vfs.FS, mut func(*Options), h hooks) *Engine {
	t.Helper()
	o := Options{FS: fs, Dir: "db", Logger: quiet(), GCInterval: -1, SkipRowCacheWarm: true}
	if mut != nil {
		mut(&o)
	}
	e, err := open(o, h)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// openPair opens engines "a" and "b" on one in-memory filesystem (so
// files written by one can be ingested by the other), mutB adjusting b's
// options; both close when the test ends.
func openPair(t *testing.T, mutB func(*Options)) (vfs.FS, *Engine, *Engine) {
	t.Helper()
	fs := vfs.NewMem()
	a := openMem(t, fs, func(o *Options) { o.Dir = "a" }, nil)
	t.Cleanup(func() { a.Close() })
	b := openMem(t, fs, func(o *Options) {
		o.Dir = "b"
		if mutB != nil {
			mutB(o)
		}
	}, nil)
	t.Cleanup(func() { b.Close() })
	return fs, a, b
}

func rec(ts uint64, node uint64, val string) *memtable.Record {
	return &memtable.Record{Version: memtable.Version{TS: ts, Node: node}, Value: []byte(val)}
}

func TestGetWriteScan(t *testing.T) {
	e := openMem(t, vfs.NewMem(), nil, nil)
	defer e.Close()

	if _, _, err := e.Get(nil, []byte("nope")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of absent key: %v", err)
	}
	ts := memtable.TimestampAt(time.Now())
	must(t, e.Write([]byte("a"), rec(ts+10, 1, "one"), true))
	must(t, e.Write([]byte("a"), rec(ts+5, 1, "older"), true)) // late and older: ignored
	dst := []byte("prefix:")
	out, r, err := e.Get(dst, []byte("a"))
	must(t, err)
	if string(out) != "prefix:one" || string(r.Value) != "one" || r.TS != ts+10 {
		t.Fatalf("Get = %q, %+v", out, r)
	}
	must(t, e.Write([]byte("a"), &memtable.Record{Version: memtable.Version{TS: ts + 11, Node: 1}, Tombstone: true}, false))
	_, r, err = e.Get(nil, []byte("a"))
	must(t, err)
	if !r.Tombstone {
		t.Fatalf("want tombstone, got %+v", r)
	}

	// Scan returns token order and resumes strictly after a key.
	var keys []string
	for i := 0; i < 50; i++ {
		must(t, e.Write([]byte(fmt.Sprintf("k%02d", i)), rec(ts+20, 1, "v"), false))
	}
	must(t, e.Scan(context.Background(), nil, func(k []byte, r memtable.Record) (bool, error) {
		keys = append(keys, string(k))
		return true, nil
	}))
	if len(keys) != 51 {
		t.Fatalf("scan saw %d keys", len(keys))
	}
	if !slices.IsSortedFunc(keys, func(a, b string) int { return cmpToken(a, b) }) {
		t.Fatal("scan not in token order")
	}
	var rest []string
	must(t, e.Scan(context.Background(), []byte(keys[20]), func(k []byte, r memtable.Record) (bool, error) {
		rest = append(rest, string(k))
		return true, nil
	}))
	if !slices.Equal(rest, keys[21:]) {
		t.Fatalf("scan after %q: got %v want %v", keys[20], rest, keys[21:])
	}

	// Token ranges are contiguous spans.
	mid := Token([]byte(keys[25]))
	var lower int
	must(t, e.ScanTokens(context.Background(), 0, mid, func(k []byte, r memtable.Record) (bool, error) {
		lower++
		return true, nil
	}))
	if lower != 25 {
		t.Fatalf("ScanTokens below %x saw %d keys, want 25", mid, lower)
	}

	// Metadata lives apart from data.
	if _, err := e.GetMeta("ring"); !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
	must(t, e.SetMeta("ring", []byte("abc")))
	v, err := e.GetMeta("ring")
	if err != nil || string(v) != "abc" {
		t.Fatalf("GetMeta = %q, %v", v, err)
	}
}

func cmpToken(a, b string) int {
	ta, tb := Token([]byte(a)), Token([]byte(b))
	switch {
	case ta < tb:
		return -1
	case ta > tb:
		return 1
	}
	return strings.Compare(a, b)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestReopenOtherProfile: a node restarted with a different compaction
// profile keeps its data.
func TestReopenOtherProfile(t *testing.T) {
	fs := vfs.NewMem()
	e := openMem(t, fs, nil, nil)
	for i := 0; i < 1000; i++ {
		must(t, e.Write([]byte(fmt.Sprint(i)), rec(uint64(i+1), 1, fmt.Sprint("v", i)), false))
	}
	must(t, e.Flush())
	must(t, e.Close())
	for _, p := range compaction.Profiles() {
		tu, err := compaction.ProfileTuning(p)
		must(t, err)
		e = openMem(t, fs, func(o *Options) { o.Tuning = tu }, nil)
		for i := 0; i < 1000; i += 97 {
			_, r, err := e.Get(nil, []byte(fmt.Sprint(i)))
			if err != nil || string(r.Value) != fmt.Sprint("v", i) {
				t.Fatalf("profile %s: key %d: %q %v", p, i, r.Value, err)
			}
		}
		if got := e.LSM().Profile; got != p {
			t.Fatalf("LSM reports profile %q, want %q", got, p)
		}
		must(t, e.Close())
	}
}

// TestSyncedWritesSurviveCrash: every write acknowledged with sync is in
// the store after a crash that loses all unsynced data.
func TestSyncedWritesSurviveCrash(t *testing.T) {
	fs := vfs.NewCrashableMem()
	e := openMem(t, fs, nil, nil)
	for i := 0; i < 300; i++ {
		must(t, e.Write([]byte(fmt.Sprint("k", i)), rec(uint64(i+1), 1, fmt.Sprint("v", i)), true))
	}
	crashed := fs.CrashClone(vfs.CrashCloneCfg{})
	must(t, e.Close())
	e = openMem(t, crashed, nil, nil)
	defer e.Close()
	for i := 0; i < 300; i++ {
		_, r, err := e.Get(nil, []byte(fmt.Sprint("k", i)))
		if err != nil || string(r.Value) != fmt.Sprint("v", i) {
			t.Fatalf("after crash, k%d = %q, %v", i, r.Value, err)
		}
	}
}

// TestGarbageCollection: deletes and expired TTL records give their disk
// space back once the grace period has passed, and not before; live keys
// are untouched.
func TestGarbageCollection(t *testing.T) {
	clock := newFakeClock(time.UnixMilli(1_800_000_000_000))
	now := clock.Now()
	e := openMem(t, vfs.NewMem(), func(o *Options) {
		o.GC = compaction.GC{TombstoneGrace: time.Hour, Now: clock.Now}
	}, nil)
	defer e.Close()
	ts := memtable.TimestampAt(now)
	big := strings.Repeat("x", 4096)
	for i := 0; i < 300; i++ {
		k := []byte(fmt.Sprint("k", i))
		switch i % 3 {
		case 0: // live
			must(t, e.Write(k, rec(ts, 1, "live"), false))
		case 1: // written, then deleted
			must(t, e.Write(k, rec(ts, 1, big), false))
			must(t, e.Write(k, &memtable.Record{Version: memtable.Version{TS: ts + 1, Node: 1}, Tombstone: true}, false))
		case 2: // a TTL record that expires in a minute
			r := rec(ts, 1, big)
			r.ExpiresAt = now.Add(time.Minute).UnixMilli()
			must(t, e.Write(k, r, false))
		}
	}
	// Settle everything at the bottom of the LSM, as a long-running store has.
	must(t, e.Compact(context.Background()))
	liveBytes := func() (n int64) {
		for _, l := range e.LSM().Levels {
			n += l.Bytes
		}
		return n
	}
	before := liveBytes()

	// Within the grace period a delete still shadows older writes that
	// arrive late, so its tombstone must stay.
	clock.Add(30 * time.Minute)
	must(t, e.Write([]byte("k1"), rec(ts-1, 2, "late and older"), false))
	if _, r, err := e.Get(nil, []byte("k1")); err != nil || !r.Tombstone {
		t.Fatalf("late older write resurrected a deleted key: %+v %v", r, err)
	}
	if _, err := e.CollectGarbage(context.Background()); err != nil {
		t.Fatal(err)
	}
	must(t, e.Compact(context.Background()))
	if _, r, err := e.Get(nil, []byte("k1")); err != nil || !r.Tombstone {
		t.Fatalf("tombstone dropped within its grace period: %+v %v", r, err)
	}

	clock.Add(2 * time.Hour)
	if _, err := e.CollectGarbage(context.Background()); err != nil {
		t.Fatal(err)
	}
	must(t, e.Compact(context.Background()))
	after := liveBytes()
	if after*4 > before {
		t.Fatalf("GC kept %d of %d bytes; deleted and expired values should be gone", after, before)
	}
	n := 0
	must(t, e.Scan(context.Background(), nil, func(k []byte, r memtable.Record) (bool, error) {
		if string(r.Value) != "live" {
			t.Fatalf("%s survived GC: %+v", k, r)
		}
		n++
		return true, nil
	}))
	if n != 100 {
		t.Fatalf("%d live keys after GC, want 100", n)
	}
}

func TestLSMAndMetrics(t *testing.T) {
	e := openMem(t, vfs.NewMem(), nil, nil)
	defer e.Close()
	for i := 0; i < 100; i++ {
		must(t, e.Write([]byte(fmt.Sprint(i)), rec(1, 1, "v"), false))
	}
	must(t, e.Flush())
	r := e.LSM()
	if r.Levels[0].Files == 0 && r.Levels[6].Files == 0 {
		t.Fatalf("no tables after flush: %+v", r.Levels)
	}
	if r.Flushes == 0 || r.PebbleOptions == "" || len(r.Knobs) == 0 || r.Profile != compaction.Balanced {
		t.Fatalf("report incomplete: flushes=%d profile=%q knobs=%d", r.Flushes, r.Profile, len(r.Knobs))
	}
	if !strings.Contains(r.PebbleOptions, "merger="+memtable.MergerName) {
		t.Fatalf("options text lacks the merger: %s", r.PebbleOptions)
	}
	reg := prometheus.NewRegistry()
	must(t, reg.Register(e.Collector()))
	names := map[string]bool{}
	mfs, err := reg.Gather()
	must(t, err)
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	for _, want := range []string{"ringkv_pebble_level_files", "ringkv_pebble_write_stalls_total", "ringkv_pebble_write_amplification", "ringkv_pebble_compactions_total", "ringkv_pebble_memtable_bytes", "ringkv_pebble_block_cache_bytes"} {
		if !names[want] {
			t.Errorf("metric %s missing", want)
		}
	}
	if n, err := testutil.GatherAndCount(reg, "ringkv_pebble_level_files"); err != nil || n != 7 {
		t.Fatalf("level files series = %d, %v", n, err)
	}
	// Alerts compare L0 sublevels with the threshold in force.
	tu, _ := compaction.ProfileTuning(compaction.Balanced)
	want := fmt.Sprintf("# HELP ringkv_pebble_l0_stop_writes_threshold %s\n# TYPE ringkv_pebble_l0_stop_writes_threshold gauge\nringkv_pebble_l0_stop_writes_threshold %d\n",
		"L0 read amplification at which Pebble stops writes (--l0-stop-writes-threshold or the profile's), for alerts on ringkv_pebble_l0_sublevels.", tu.L0StopWritesThreshold)
	must(t, testutil.GatherAndCompare(reg, strings.NewReader(want), "ringkv_pebble_l0_stop_writes_threshold"))
}

func TestStallTracker(t *testing.T) {
	tu, _ := compaction.ProfileTuning(compaction.Balanced)
	var seen []Stall
	s := newStallTracker(quiet(), tu, func(st Stall) { seen = append(seen, st) }, nil)
	l := s.listener()
	for i := 0; i < 40; i++ {
		l.WriteStallBegin(pebble.WriteStallBeginInfo{Reason: "L0 file count limit exceeded"})
		l.WriteStallEnd()
	}
	l.WriteStallBegin(pebble.WriteStallBeginInfo{Reason: "memtable count limit reached"})
	st, _ := s.snapshot()
	if st.Count != 41 || st.ByReason["L0 file count limit exceeded"].Count != 40 {
		t.Fatalf("counts: %+v", st)
	}
	if len(st.Recent) != maxRecentStalls+1 || !st.Recent[len(st.Recent)-1].Ongoing {
		t.Fatalf("recent history: %d entries, last %+v", len(st.Recent), st.Recent[len(st.Recent)-1])
	}
	if len(seen) != 41 || seen[0].Flag == "" || seen[0].Advice == "" {
		t.Fatalf("OnStall not called with advice: %d %+v", len(seen), seen[0])
	}
}

func TestClosed(t *testing.T) {
	e := openMem(t, vfs.NewMem(), nil, nil)
	must(t, e.Close())
	if err := e.Close(); !errors.Is(err, ErrClosed) {
		t.Fatal(err)
	}
	if _, _, err := e.Get(nil, []byte("k")); !errors.Is(err, ErrClosed) {
		t.Fatal(err)
	}
	if err := e.Write([]byte("k"), rec(1, 1, "v"), true); !errors.Is(err, ErrClosed) {
		t.Fatal(err)
	}
}

// TestRandomized runs random operations against the engine and against a
// plain map that applies last-writer-wins by hand, under several option
// sets, and compares every read. Replay a failure with -seed.
func TestRandomized(t *testing.T) {
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (replay with go test ./engine -run TestRandomized -seed %d)", seed, seed)
	configs := []struct {
		name     string
		sync     bool
		hook     func(*pebble.Options)
		rowCache int64
	}{
		{"defaults-sync", true, nil, 0},
		{"no-row-cache", false, nil, -1},
		{"row-cache-nosync", false, nil, 1},
		{"tiny-memtable-nosync", false, func(o *pebble.Options) {
			o.MemTableSize = 64 << 10
			o.L0CompactionThreshold = 1
			o.L0StopWritesThreshold = 1000
			o.LBaseMaxBytes = 256 << 10
			o.TargetFileSizes[0] = 32 << 10
		}, 0},
		{"tiny-l0-sync", true, func(o *pebble.Options) {
			o.MemTableSize = 256 << 10
			o.L0CompactionThreshold = 2
			o.L0StopWritesThreshold = 1000
		}, 0},
	}
	for i, cfg := range configs {
		t.Run(cfg.name, func(t *testing.T) {
			runRandomized(t, seed+uint64(i), cfg.sync, cfg.hook, cfg.rowCache)
		})
	}
}

func runRandomized(t *testing.T, seed uint64, sync bool, hook func(*pebble.Options), rowCache int64) {
	rng := rand.New(rand.NewPCG(seed, seed>>1))
	clock := newFakeClock(time.UnixMilli(1_800_000_000_000))
	now := clock.Now()
	fs := vfs.NewCrashableMem()
	mut := func(o *Options) {
		o.GC = compaction.GC{TombstoneGrace: time.Hour, Now: clock.Now}
		o.RowCacheSize = rowCache
		o.SkipRowCacheWarm = false // each reopen warms it against the model
	}
	e := openMem(t, fs, mut, hook)
	defer func() { e.Close() }()

	model := map[string][]byte{} // key -> winning encoded record
	nkeys := 200
	keyOf := func() string { return fmt.Sprintf("key-%03d", rng.IntN(nkeys)) }
	base := memtable.TimestampAt(now)
	ops := 3000
	if testing.Short() {
		ops = 800
	}
	for i := 0; i < ops; i++ {
		switch p := rng.IntN(100); {
		case p < 45: // write, sometimes late and older than what is stored
			k := keyOf()
			r := memtable.Record{Version: memtable.Version{TS: base + uint64(rng.IntN(5000)), Node: uint64(rng.IntN(3))}}
			switch rng.IntN(10) {
			case 0, 1:
				r.Tombstone = true
			case 2:
				r.ExpiresAt = now.Add(time.Duration(rng.IntN(120)-60) * time.Second).UnixMilli()
				r.Value = []byte(fmt.Sprint("ttl", i))
			default:
				r.Value = bytes.Repeat([]byte{byte('a' + i%26)}, rng.IntN(300))
			}
			must(t, e.Write([]byte(k), &r, sync && rng.IntN(4) == 0))
			enc := r.Append(nil)
			if old, ok := model[k]; !ok || mustNewer(t, enc, old) {
				model[k] = enc
			}
		case p < 50: // a batch of writes
			b := e.NewBatch()
			for j := 0; j < 1+rng.IntN(20); j++ {
				k := keyOf()
				r := memtable.Record{Version: memtable.Version{TS: base + uint64(rng.IntN(5000)), Node: 7}, Value: []byte(fmt.Sprint("b", i, j))}
				must(t, b.Write([]byte(k), &r))
				enc := r.Append(nil)
				if old, ok := model[k]; !ok || mustNewer(t, enc, old) {
					model[k] = enc
				}
			}
			must(t, e.Commit(b, sync))
		case p < 85:
			k := keyOf()
			_, r, err := e.Get(nil, []byte(k))
			want, ok := model[k]
			if !ok {
				if !errors.Is(err, ErrNotFound) {
					t.Fatalf("op %d: Get(%s) = %+v, %v; want not found", i, k, r, err)
				}
				continue
			}
			must(t, err)
			if got := r.Append(nil); !bytes.Equal(got, want) {
				t.Fatalf("op %d: Get(%s) = %x, want %x", i, k, got, want)
			}
			// The record as stored is the winning encoding, byte for byte.
			got, sr, err := e.GetStored([]byte("pre"), []byte(k))
			must(t, err)
			if !bytes.Equal(got[3:], want) || string(got[:3]) != "pre" || sr.Version != r.Version || !bytes.Equal(sr.Value, r.Value) {
				t.Fatalf("op %d: GetStored(%s) = %x (%+v), want %x", i, k, got, sr, want)
			}
		case p < 90:
			compareScan(t, e, model)
		case p < 93:
			must(t, e.Flush())
		case p < 95: // compaction deletes what GC allows; so does the model
			must(t, e.Compact(context.Background()))
			g := compaction.GC{TombstoneGrace: time.Hour, Now: clock.Now}
			for k, enc := range model {
				r, err := memtable.Decode(enc)
				must(t, err)
				if g.Drop(&r) {
					delete(model, k)
				}
			}
		case p < 97: // restart on the same files
			must(t, e.Close())
			e = openMem(t, fs, mut, hook)
		default:
			step := time.Duration(rng.IntN(30)) * time.Second
			if rng.IntN(10) == 0 {
				step = 40 * time.Minute // past the grace period, eventually
			}
			clock.Add(step)
			now = clock.Now()
		}
	}
	compareScan(t, e, model)
}

func mustNewer(t *testing.T, a, b []byte) bool {
	t.Helper()
	n, err := memtable.Newer(a, b)
	must(t, err)
	return n
}

func compareScan(t *testing.T, e *Engine, model map[string][]byte) {
	t.Helper()
	seen := 0
	must(t, e.Scan(context.Background(), nil, func(k []byte, r memtable.Record) (bool, error) {
		want, ok := model[string(k)]
		if !ok {
			t.Fatalf("scan found %q, absent from the model", k)
		}
		if got := r.Append(nil); !bytes.Equal(got, want) {
			t.Fatalf("scan %q = %x, want %x", k, got, want)
		}
		seen++
		return true, nil
	}))
	if seen != len(model) {
		t.Fatalf("scan saw %d keys, model has %d", seen, len(model))
	}
}

// TestLWWAcrossRestart: records written as plain SETs (newest of their key)
// must still beat older writes that arrive after a restart, when the
// engine no longer remembers what it wrote.
func TestLWWAcrossRestart(t *testing.T) {
	fs := vfs.NewCrashableMem()
	e := openMem(t, fs, nil, nil)
	ts := memtable.TimestampAt(time.Now())
	must(t, e.Write([]byte("k"), rec(ts+1000, 1, "new"), true))
	if e.MaxTimestamp() <= ts+1000 {
		t.Fatalf("ceiling %d not above the written timestamp %d", e.MaxTimestamp(), ts+1000)
	}
	// A crash that keeps only synced data, so the ceiling must have been
	// synced with the record.
	e2 := openMem(t, fs.CrashClone(vfs.CrashCloneCfg{}), nil, nil)
	must(t, e.Close())
	defer e2.Close()
	if e2.MaxTimestamp() <= ts+1000 {
		t.Fatalf("ceiling after restart %d, want above %d", e2.MaxTimestamp(), ts+1000)
	}
	must(t, e2.Write([]byte("k"), rec(ts+1, 2, "old, late"), true))
	b := e2.NewBatch()
	must(t, b.Write([]byte("k"), rec(ts+2, 3, "old, batched")))
	must(t, e2.Commit(b, true))
	if _, r, err := e2.Get(nil, []byte("k")); err != nil || string(r.Value) != "new" {
		t.Fatalf("after restart a late older write won: %q %v", r.Value, err)
	}
	must(t, e2.Write([]byte("k"), rec(e2.MaxTimestamp()+1, 2, "newer"), true))
	if _, r, err := e2.Get(nil, []byte("k")); err != nil || string(r.Value) != "newer" {
		t.Fatalf("a newer write lost: %q %v", r.Value, err)
	}
}

// TestConcurrentWritesOneKey: many writers of one key, with timestamps
// taken out of order, leave the newest record, as LWW promises.
func TestConcurrentWritesOneKey(t *testing.T) {
	e := openMem(t, vfs.NewMem(), nil, nil)
	defer e.Close()
	base := memtable.TimestampAt(time.Now())
	const writers, each = 8, 200
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 9))
			for i := 0; i < each; i++ {
				ts := base + uint64(rng.IntN(100000))
				if err := e.Write([]byte("hot"), rec(ts, uint64(w), fmt.Sprint(ts, "/", w)), i%10 == 0); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	// The winner is the greatest (ts, node) written by anyone.
	var best memtable.Version
	for w := 0; w < writers; w++ {
		rng := rand.New(rand.NewPCG(uint64(w), 9))
		for i := 0; i < each; i++ {
			v := memtable.Version{TS: base + uint64(rng.IntN(100000)), Node: uint64(w)}
			if best.Less(v) {
				best = v
			}
		}
	}
	_, r, err := e.Get(nil, []byte("hot"))
	must(t, err)
	if r.Version != best || string(r.Value) != fmt.Sprint(best.TS, "/", best.Node) {
		t.Fatalf("winner %v %q, want %v", r.Version, r.Value, best)
	}
}

func TestSnapshot(t *testing.T) {
	e := openMem(t, vfs.NewMem(), nil, nil)
	defer e.Close()
	ts := memtable.TimestampAt(time.Now())
	must(t, e.Write([]byte("a"), rec(ts, 1, "before"), false))
	s, err := e.NewSnapshot()
	must(t, err)
	must(t, e.Write([]byte("a"), rec(ts+1, 1, "after"), false))
	must(t, e.Write([]byte("b"), rec(ts+1, 1, "after"), false))
	if _, r, err := s.Get(nil, []byte("a")); err != nil || string(r.Value) != "before" {
		t.Fatalf("snapshot Get = %q %v", r.Value, err)
	}
	if _, _, err := s.Get(nil, []byte("b")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("snapshot sees a later write: %v", err)
	}
	n := 0
	must(t, s.ScanTokens(context.Background(), 0, 0, func([]byte, memtable.Record) (bool, error) { n++; return true, nil }))
	if n != 1 {
		t.Fatalf("snapshot scan saw %d keys, want 1", n)
	}
	must(t, s.Close())
	if _, r, err := e.Get(nil, []byte("a")); err != nil || string(r.Value) != "after" {
		t.Fatalf("Get = %q %v", r.Value, err)
	}
}

// TestProfileOnStall: a write stall leaves profiles an operator can open
// with go tool pprof, and a second stall within a minute does not.
func TestProfileOnStall(t *testing.T) {
	dir := t.TempDir()
	e := openMem(t, vfs.NewMem(), func(o *Options) { o.ProfileOnStall = dir }, nil)
	e.stallCPUProfile = 50 * time.Millisecond
	l := e.stalls.listener()
	l.WriteStallBegin(pebble.WriteStallBeginInfo{Reason: "memtable count limit reached"})
	l.WriteStallEnd()
	l.WriteStallBegin(pebble.WriteStallBeginInfo{Reason: "L0 file count limit exceeded"})
	l.WriteStallEnd()
	var got []string
	must(t, e.Close()) // waits for the capture, cutting its CPU profile short
	entries, err := os.ReadDir(dir)
	must(t, err)
	if len(entries) != 1 || !strings.HasSuffix(entries[0].Name(), "-memtable-count-limit-reached") {
		t.Fatalf("capture dirs: %v", entries)
	}
	files, err := os.ReadDir(filepath.Join(dir, entries[0].Name()))
	must(t, err)
	for _, f := range files {
		got = append(got, f.Name())
	}
	for _, want := range []string{"stall.json", "lsm.json", "goroutine.pb.gz"} {
		if !slices.Contains(got, want) {
			t.Fatalf("capture lacks %s: %v", want, got)
		}
	}
}

// TestRowCacheCoherent: with writers racing readers, row cache warms and
// the garbage collector on a few hot keys, in and out of timestamp order, every cached
// read afterwards equals what Pebble holds.
func TestRowCacheCoherent(t *testing.T) {
	clock := newFakeClock(time.Now())
	e := openMem(t, vfs.NewMem(), func(o *Options) {
		o.RowCacheSize = 1 << 20
		o.GC = compaction.GC{TombstoneGrace: time.Millisecond, Now: clock.Now}
	}, nil)
	defer e.Close()
	keys := benchKeysT(64)
	base := memtable.TimestampAt(clock.Now().Add(-time.Hour))
	var writers, others sync.WaitGroup
	stop := make(chan struct{})
	for w := 0; w < 4; w++ {
		writers.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for i := 0; i < 3000; i++ {
				r := memtable.Record{Version: memtable.Version{TS: base + uint64(rng.IntN(1<<20)), Node: uint64(w)}, Tombstone: rng.IntN(5) == 0}
				if !r.Tombstone {
					r.Value = []byte(fmt.Sprint(w, "-", i))
				}
				if rng.IntN(8) == 0 {
					b := e.NewBatch()
					must(t, b.Write(keys[rng.IntN(len(keys))], &r))
					r.TS++
					must(t, b.Write(keys[rng.IntN(len(keys))], &r))
					must(t, e.Commit(b, false))
				} else {
					must(t, e.Write(keys[rng.IntN(len(keys))], &r, false))
				}
			}
		})
	}
	// until runs f in a goroutine until stop is closed or f fails.
	until := func(f func() error) {
		others.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := f(); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	for rd := 0; rd < 2; rd++ {
		rng := rand.New(rand.NewPCG(uint64(rd), 2))
		until(func() error { e.Get(nil, keys[rng.IntN(len(keys))]); return nil })
	}
	until(func() error { _, err := e.CollectGarbage(context.Background()); return err })
	// Warms race the writers too.
	until(func() error { _, _, err := e.warmRowsUntil(1<<20, stop, nil); return err })
	// Readers, warms and the collector run until the writers are done.
	writers.Wait()
	close(stop)
	others.Wait()
	snap, err := e.NewSnapshot()
	must(t, err)
	defer snap.Close()
	for _, k := range keys {
		_, cached, err1 := e.Get(nil, k)
		_, stored, err2 := snap.Get(nil, k)
		if (err1 == nil) != (err2 == nil) || (err1 == nil && !bytes.Equal(cached.Append(nil), stored.Append(nil))) {
			t.Fatalf("%s: cache says %+v (%v), Pebble %+v (%v)", k, cached, err1, stored, err2)
		}
		raw, _, err3 := e.GetStored(nil, k)
		if (err1 == nil) != (err3 == nil) || (err1 == nil && !bytes.Equal(raw, stored.Append(nil))) {
			t.Fatalf("%s: stored %x (%v), Pebble %+v (%v)", k, raw, err3, stored, err2)
		}
	}
	if st := e.rows.stats(); st.Hits == 0 || st.Entries == 0 {
		t.Fatalf("row cache stats %+v", st)
	}
}

func benchKeysT(n int) [][]byte {
	keys := make([][]byte, n)
	for i := range keys {
		keys[i] = []byte(fmt.Sprintf("key-%d", i))
	}
	return keys
}

// TestGetStored: GetStored appends the record as it was stored, in every
// place a read finds it (memtable, SSTable, row cache, a merge of two
// writes), tombstones and expiries included; it leaves dst alone when
// there is nothing; and with room in dst it allocates nothing.
func TestGetStored(t *testing.T) {
	for _, cache := range []int64{-1, 1 << 20} {
		t.Run(fmt.Sprint("rowcache=", cache > 0), func(t *testing.T) {
			e := openMem(t, vfs.NewMem(), func(o *Options) { o.RowCacheSize = cache }, nil)
			defer e.Close()
			want := map[string][]byte{}
			write := func(k string, r *memtable.Record) {
				must(t, e.Write([]byte(k), r, false))
				if old, ok := want[k]; !ok || mustNewer(t, r.Append(nil), old) {
					want[k] = r.Append(nil)
				}
			}
			// Recent stamps, so that the compaction below drops nothing.
			ts := memtable.TimestampAt(time.Now())
			write("plain", rec(ts+10, 1, "v"))
			write("tomb", &memtable.Record{Version: memtable.Version{TS: ts + 11, Node: 1}, Tombstone: true})
			write("ttl", &memtable.Record{Version: memtable.Version{TS: ts + 12, Node: 1}, ExpiresAt: time.Now().Add(time.Hour).UnixMilli(), Value: []byte("x")})
			write("merged", rec(ts+20, 1, "newer"))
			write("merged", rec(ts+19, 2, "older, late"))
			check := func(when string) {
				t.Helper()
				for k, w := range want {
					for range 2 { // the second read may come from the row cache
						got, r, err := e.GetStored([]byte("dst:"), []byte(k))
						must(t, err)
						if string(got[:4]) != "dst:" || !bytes.Equal(got[4:], w) {
							t.Fatalf("%s: GetStored(%s) = %x, want %x", when, k, got, w)
						}
						if enc := r.Append(nil); !bytes.Equal(enc, w) {
							t.Fatalf("%s: GetStored(%s) decoded %+v", when, k, r)
						}
					}
				}
				if got, _, err := e.GetStored([]byte("dst:"), []byte("absent")); !errors.Is(err, ErrNotFound) || string(got) != "dst:" {
					t.Fatalf("%s: GetStored(absent) = %q, %v", when, got, err)
				}
			}
			check("memtable")
			must(t, e.Compact(context.Background()))
			check("sstables")
			// Reads after writes stay exact through the row cache.
			write("plain", rec(ts+30, 1, "rewritten"))
			check("rewritten")
			dst, k := make([]byte, 0, 256), []byte("plain")
			if n := testing.AllocsPerRun(100, func() { _, _, _ = e.GetStored(dst[:0], k) }); n != 0 && !raceEnabled {
				t.Errorf("GetStored allocates %v times a read", n)
			}
		})
	}
}
