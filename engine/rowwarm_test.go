package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/client_golang/prometheus"
)

// loadKeys writes n keys "key-%06d" with valueLen-byte values, each at
// timestamp ts, and returns them.
func loadKeys(t *testing.T, e *Engine, n, valueLen int, ts uint64) [][]byte {
	t.Helper()
	keys := make([][]byte, n)
	b := e.NewBatch()
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "key-%06d", i)
		r := rec(ts, 1, fmt.Sprintf("%0*d", valueLen, i))
		must(t, b.Write(keys[i], r))
	}
	must(t, e.Commit(b, false))
	return keys
}

// warmEnds returns a hooks.warmEnd and the channel it signals on: a
// signal not yet taken stands for every pass that ended since the last
// one taken.
func warmEnds() (func(), <-chan struct{}) {
	ended := make(chan struct{}, 1)
	return func() {
		select {
		case ended <- struct{}{}:
		default:
		}
	}, ended
}

// waitWarm waits until e's row cache warm has ended and returns its stats.
// It wakes on ended (from warmEnds, set as e's hooks.warmEnd) when a pass
// ends, not on a timer; the minute is only there to name a warm that hangs.
func waitWarm(t *testing.T, e *Engine, ended <-chan struct{}) RowCacheStats {
	t.Helper()
	hung := time.After(time.Minute)
	for {
		st := e.rowCacheStats()
		if !st.Warming {
			return st
		}
		select {
		case <-ended:
		case <-hung:
			t.Fatalf("the row cache warm did not end within a minute: %+v", st)
		}
	}
}

// TestRowCacheWarm: a reopened engine fills its row cache from the store,
// so the first read of every key is a hit; a cache smaller than the store
// is filled to its budget (warmBudget) and no further; SkipRowCacheWarm turns
// the warm off.
func TestRowCacheWarm(t *testing.T) {
	const valueLen = 100
	budget := int(warmBudget(1 << 20))
	entry := len("key-000000") + len(rec(1<<40, 1, fmt.Sprintf("%0*d", valueLen, 0)).Append(nil)) + 4
	for _, tc := range []struct {
		name   string
		keys   int
		skip   bool
		warmed int // records the warm caches
	}{
		{"whole store", 3000, false, 3000},
		// The budget is 75% of 1MiB (one chunk a bucket); the warm stops
		// at the first record that reaches it.
		{"cache smaller than the store", 10000, false, (budget + entry - 1) / entry},
		{"skipped", 3000, true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := vfs.NewMem()
			mut := func(o *Options) { o.RowCacheSize = 1 << 20; o.SkipRowCacheWarm = tc.skip }
			e := openMem(t, fs, mut, nil)
			keys := loadKeys(t, e, tc.keys, valueLen, 1<<40)
			must(t, e.Close())

			warmEnd, ended := warmEnds()
			e = openHooks(t, fs, mut, hooks{warmEnd: warmEnd})
			defer e.Close()
			st := waitWarm(t, e, ended)
			if st.Warmed != int64(tc.warmed) {
				t.Fatalf("warmed %d records, want %d (%+v)", st.Warmed, tc.warmed, st)
			}
			// /metrics says the same.
			reg := prometheus.NewRegistry()
			must(t, reg.Register(e.Collector()))
			if got := gauge(t, reg, "ringkv_row_cache_warmed_records"); got != float64(tc.warmed) {
				t.Fatalf("ringkv_row_cache_warmed_records = %v, want %d", got, tc.warmed)
			}
			if got := gauge(t, reg, "ringkv_row_cache_warming"); got != 0 {
				t.Fatalf("ringkv_row_cache_warming = %v after the warm", got)
			}
			for i, k := range keys {
				v, _, err := e.Get(nil, k)
				if err != nil || string(v) != fmt.Sprintf("%0*d", valueLen, i) {
					t.Fatalf("%s: %q, %v", k, v, err)
				}
			}
			after := e.rowCacheStats()
			if hits := after.Hits - st.Hits; hits != uint64(tc.warmed) {
				t.Fatalf("first reads of %d keys after warming %d: %d row cache hits", len(keys), tc.warmed, hits)
			}
		})
	}
}

// TestRowCacheWarmNeverCachesOverNewer: writes, deletes and range drops
// that land between the warm reading a chunk and caching it win: the warm
// skips what they touched, and every read afterwards sees them.
func TestRowCacheWarmNeverCachesOverNewer(t *testing.T) {
	for _, tc := range []struct {
		name  string
		apply func(e *Engine, keys [][]byte) error
		want  func(i int) string // "" for not found
	}{
		{"writes", func(e *Engine, keys [][]byte) error {
			for i := 0; i < len(keys); i += 3 {
				if err := e.Write(keys[i], rec(2<<40, 1, "new"), false); err != nil {
					return err
				}
			}
			return nil
		}, func(i int) string {
			if i%3 == 0 {
				return "new"
			}
			return fmt.Sprintf("%04d", i)
		}},
		{"deletes", func(e *Engine, keys [][]byte) error {
			for i := 0; i < len(keys); i += 2 {
				r := rec(2<<40, 1, "")
				r.Tombstone = true
				if err := e.Write(keys[i], r, false); err != nil {
					return err
				}
			}
			return nil
		}, func(i int) string {
			if i%2 == 0 {
				return ""
			}
			return fmt.Sprintf("%04d", i)
		}},
		{"range drop", func(e *Engine, keys [][]byte) error {
			return e.DropSpan(context.Background(), 0, 0)
		}, func(int) string { return "" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := vfs.NewMem()
			mut := func(o *Options) { o.RowCacheSize = 1 << 20 }
			e := openMem(t, fs, mut, nil)
			keys := loadKeys(t, e, 2*warmChunk, 4, 1<<40)
			must(t, e.Close())

			// The hook runs on the warm's goroutine between reading the
			// first chunk and caching it.
			var first bool
			var reopened *Engine
			ready := make(chan struct{})
			warmEnd, ended := warmEnds()
			e, err := open(Options{FS: fs, Dir: "db", Logger: quiet(), GCInterval: -1, RowCacheSize: 1 << 20}, hooks{rewarmDelay: time.Millisecond, warmEnd: warmEnd, warm: func() {
				if first {
					return
				}
				first = true
				<-ready
				if err := tc.apply(reopened, keys); err != nil {
					t.Error(err)
				}
			}})
			must(t, err)
			defer e.Close()
			reopened = e
			close(ready)
			st := waitWarm(t, e, ended)
			switch {
			case tc.name == "range drop" && st.Warmed != 0:
				t.Fatalf("warmed %d records of a dropped range", st.Warmed)
			case tc.name != "range drop" && (st.Warmed == 0 || st.Warmed == int64(len(keys))):
				t.Fatalf("warmed %d of %d records: the test needs some cached and some skipped", st.Warmed, len(keys))
			}
			for i, k := range keys {
				v, r, err := e.Get(nil, k)
				want := tc.want(i)
				switch {
				case want == "" && !(errors.Is(err, ErrNotFound) || err == nil && r.Tombstone):
					t.Fatalf("%s: %q %+v, %v; want it gone", k, v, r, err)
				case want != "" && (err != nil || string(v) != want):
					t.Fatalf("%s: %q, %v; want %q", k, v, err, want)
				}
			}
		})
	}
}

// TestCloseStopsRowCacheWarm: Close during a warm returns once the chunk
// in hand is cached, without reading the rest of the store.
func TestCloseStopsRowCacheWarm(t *testing.T) {
	fs := vfs.NewMem()
	e := openMem(t, fs, func(o *Options) { o.RowCacheSize = 1 << 20 }, nil)
	loadKeys(t, e, 4*warmChunk, 4, 1<<40)
	must(t, e.Close())

	inHook, release := make(chan struct{}), make(chan struct{})
	var calls int
	e, err := open(Options{FS: fs, Dir: "db", Logger: quiet(), GCInterval: -1, RowCacheSize: 1 << 20}, hooks{warm: func() {
		if calls++; calls == 1 {
			close(inHook)
			<-release
		}
	}})
	must(t, err)
	<-inHook
	closed := make(chan error)
	go func() { closed <- e.Close() }()
	// Release the warm once Close has begun (it closes e.stop first): it
	// must see the engine closing.
	<-e.stop
	close(release)
	select {
	case err := <-closed:
		must(t, err)
	case <-time.After(time.Minute):
		t.Fatal("Close did not return after the warm's chunk")
	}
	if calls != 1 {
		t.Fatalf("the warm read %d chunks after Close; want it to stop after the first", calls)
	}
}

// TestRowCacheWarmSkipsLargeRecords: records too large for the row cache
// are left to the LSM, and the rest of the store is still warmed.
func TestRowCacheWarmSkipsLargeRecords(t *testing.T) {
	fs := vfs.NewMem()
	e := openMem(t, fs, func(o *Options) { o.RowCacheSize = 1 << 20 }, nil)
	const n = 40
	big := strings.Repeat("b", maxRowEntry)
	val := func(i int) string {
		if i%4 == 0 {
			return big + fmt.Sprint(i)
		}
		return fmt.Sprint("small-", i)
	}
	for i := range n {
		must(t, e.Write(fmt.Appendf(nil, "k%d", i), rec(1<<40, 1, val(i)), false))
	}
	must(t, e.Close())

	warmEnd, ended := warmEnds()
	e = openHooks(t, fs, func(o *Options) { o.RowCacheSize = 1 << 20; o.SkipRowCacheWarm = false }, hooks{warmEnd: warmEnd})
	defer e.Close()
	if st := waitWarm(t, e, ended); st.Warmed != n*3/4 {
		t.Fatalf("warmed %d records, want the %d small ones", st.Warmed, n*3/4)
	}
	for i := range n {
		if v, _, err := e.Get(nil, fmt.Appendf(nil, "k%d", i)); err != nil || string(v) != val(i) {
			t.Fatalf("k%d: %d bytes, %v", i, len(v), err)
		}
	}
}

// TestRowCacheRewarm: when the whole row cache is emptied (a range
// dropped or ingested), the store is read into it again once the resets
// settle, so reads stay hits; a pass under way when the cache is emptied
// again stops after its chunk in hand and gives way to a new one.
func TestRowCacheRewarm(t *testing.T) {
	// While hold is set, each chunk a pass reads is counted and waits,
	// before it is cached, for release.
	var hold atomic.Bool
	var calls atomic.Int32
	entered, release := make(chan struct{}, 1), make(chan struct{})
	warmEnd, ended := warmEnds()
	e, err := open(Options{FS: vfs.NewMem(), Dir: "db", Logger: quiet(), GCInterval: -1, RowCacheSize: 1 << 20},
		hooks{rewarmDelay: 20 * time.Millisecond, warmEnd: warmEnd, warm: func() {
			if hold.Load() {
				calls.Add(1)
				select {
				case entered <- struct{}{}:
				default:
				}
				<-release
			}
		}})
	must(t, err)
	defer e.Close()
	var released bool
	defer func() { // before Close, which waits for a held pass
		if !released {
			close(release)
		}
	}()
	waitWarm(t, e, ended) // of the empty store
	keys := loadKeys(t, e, 2*warmChunk-24, 8, 1<<40)
	hold.Store(true)
	// Drop spans that hold none of the keys: each empties the cache.
	must(t, e.DropSpan(context.Background(), 0, 1))
	select {
	case <-entered: // a pass has read its first chunk
	case <-time.After(time.Minute):
		t.Fatal("no warm pass began after the cache was emptied")
	}
	must(t, e.DropSpan(context.Background(), 1, 2))
	if st := e.rowCacheStats(); !st.Warming || st.Entries != 0 {
		t.Fatalf("after emptying the cache: %+v; want it empty and a warm pending", st)
	}
	close(release)
	released = true
	st := waitWarm(t, e, ended)
	if st.Warmed != int64(len(keys)) {
		t.Fatalf("the warm after the resets cached %d records, want %d", st.Warmed, len(keys))
	}
	// The cut pass read one chunk, the new one both.
	if n := calls.Load(); n != 3 {
		t.Fatalf("%d chunks read after the first reset, want 3 (the cut pass's first, then a whole pass)", n)
	}
	for _, k := range keys {
		if _, _, err := e.Get(nil, k); err != nil {
			t.Fatal(err)
		}
	}
	if hits := e.rowCacheStats().Hits - st.Hits; hits != uint64(len(keys)) {
		t.Fatalf("%d hits reading %d keys after the rewarm", hits, len(keys))
	}
}

// gauge returns the value of the unlabelled gauge name in reg.
func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	must(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no gauge %s", name)
	return 0
}
