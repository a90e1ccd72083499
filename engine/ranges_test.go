package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/objstorage/objstorageprovider"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/ringkv/ringkv/compaction"
	"github.com/ringkv/ringkv/memtable"
)

// upper is the span of the upper half of the ring, [2^63, 2^64).
const upper = uint64(1) << 63

func inSpan(tok, lo, hi uint64) bool { return tok >= lo && (hi == 0 || tok < hi) }

// keyIn returns a fresh user key whose token is in [lo, hi) (or outside it,
// with in false), with the given name prefix.
func keyIn(prefix string, lo, hi uint64, in bool) []byte {
	for i := 0; ; i++ {
		k := []byte(fmt.Sprintf("%s-%d", prefix, i))
		if inSpan(Token(k), lo, hi) == in {
			return k
		}
	}
}

// writeTable writes one SSTable at path on e's filesystem, filled by fill.
func writeTable(t *testing.T, e *Engine, path string, fill func(w *sstable.Writer) error) string {
	t.Helper()
	f, err := e.FS().Create(path, vfs.WriteCategoryUnspecified)
	must(t, err)
	w := sstable.NewWriter(objstorageprovider.NewFileWritable(f), e.TableWriterOptions())
	must(t, fill(w))
	must(t, w.Close())
	return path
}

// mergeTables writes src's records in [lo, hi) to SSTables of MERGEs of at
// most perFile records each under dir on dst's filesystem, as
// sstable.Receive writes them for MergeSpan (which this package's tests
// cannot import), and returns the paths.
func mergeTables(t *testing.T, src, dst *Engine, lo, hi uint64, dir string, perFile int) []string {
	t.Helper()
	return writeSpanTables(t, src, dst, lo, hi, dir, perFile, (*sstable.Writer).Merge)
}

func writeSpanTables(t *testing.T, src, dst *Engine, lo, hi uint64, dir string, perFile int, add func(w *sstable.Writer, k, v []byte) error) []string {
	t.Helper()
	snap, err := src.NewSnapshot()
	must(t, err)
	defer snap.Close()
	type kv struct{ k, v []byte }
	var all []kv
	must(t, snap.ExportSpan(context.Background(), lo, hi, func(k, v []byte) error {
		all = append(all, kv{bytes.Clone(k), bytes.Clone(v)})
		return nil
	}))
	must(t, dst.FS().MkdirAll(dir, 0o755))
	var paths []string
	for i := 0; i < len(all); i += perFile {
		chunk := all[i:min(i+perFile, len(all))]
		paths = append(paths, writeTable(t, dst, dst.FS().PathJoin(dir, fmt.Sprintf("%d.sst", i)), func(w *sstable.Writer) error {
			for _, r := range chunk {
				if err := add(w, r.k, r.v); err != nil {
					return err
				}
			}
			return nil
		}))
	}
	return paths
}

// spanRecords returns the records of e in [lo, hi) as "key=record" lines.
func spanRecords(t *testing.T, e *Engine, lo, hi uint64) []string {
	t.Helper()
	var out []string
	must(t, e.ExportSpan(context.Background(), lo, hi, func(k, v []byte) error {
		out = append(out, fmt.Sprintf("%x=%x", k, v))
		return nil
	}))
	return out
}

// ingested reports how many tables Pebble has ingested, to tell the file
// path of MergeSpan from the batch path. It flushes first: a table
// ingested over the memtable waits in the flush queue, and is counted when
// it leaves.
func ingested(t *testing.T, e *Engine) uint64 {
	t.Helper()
	must(t, e.Flush())
	m := e.db.Metrics()
	n := m.Flush.AsIngestTableCount
	for i := range m.Levels {
		n += m.Levels[i].TablesIngested
	}
	return n
}

// ingestPaths are the two ways MergeSpan applies files: filler records
// push the span above ingestAsWriteBytes, or not.
var ingestPaths = []struct {
	name   string
	filler int // records of 100 bytes added to the span on the donor
	files  bool
}{
	{"batch", 10, false},
	{"files", 2000, true},
}

func addFiller(t *testing.T, e *Engine, n int, lo, hi uint64, ts uint64) {
	t.Helper()
	b := e.NewBatch()
	for i := 0; len(b.keys) < n; i++ {
		k := []byte(fmt.Sprintf("filler-%d", i))
		if inSpan(Token(k), lo, hi) {
			must(t, b.Write(k, rec(ts, 9, string(bytes.Repeat([]byte{'f'}, 100)))))
		}
	}
	must(t, e.Commit(b, false))
}

// TestMergeSpan: merging a donor's span keeps, for every key, the newest
// record by (timestamp, node) of the donor's, the receiver's and every
// write that lands while the merge runs; it deletes nothing, leaves open
// snapshots and keys outside the span alone, keeps the row cache coherent,
// and raises the watermarks so that a later, older write (before or after
// a restart) does not override a merged record.
func TestMergeSpan(t *testing.T) {
	for _, p := range ingestPaths {
		t.Run(p.name, func(t *testing.T) {
			ctx := context.Background()
			fs := vfs.NewMem()
			a := openMem(t, fs, func(o *Options) { o.Dir = "a" }, nil)
			defer a.Close()
			b := openMem(t, fs, func(o *Options) { o.Dir = "b" }, nil)
			base := memtable.TimestampAt(time.Now())
			rng := rand.New(rand.NewPCG(1, 2))
			keys := benchKeysT(300) // both halves of the ring; the upper one moves
			for i, k := range keys {
				if i%3 != 0 { // on the donor
					r := rec(base+uint64(rng.IntN(1<<20)), 1, fmt.Sprint("a", i))
					if i%7 == 0 {
						r = &memtable.Record{Version: r.Version, Tombstone: true}
					}
					must(t, a.Write(k, r, false))
				}
				if i%3 != 1 { // on the receiver
					must(t, b.Write(k, rec(base+uint64(rng.IntN(1<<20)), 2, fmt.Sprint("b", i)), false))
				}
				if i == 150 {
					must(t, b.Flush()) // some of the receiver in tables, some in the memtable
				}
			}
			// wm: the donor's record is far newer than any other write.
			wm := keyIn("wm", upper, 0, true)
			newest, late := base+1<<30, base+1<<29
			must(t, b.Write(wm, rec(base, 2, "old"), true))
			must(t, a.Write(wm, rec(newest, 1, "newest"), true))
			addFiller(t, a, p.filler, upper, 0, base)

			// want: storage key → the record the receiver must end with.
			want := map[string][]byte{}
			fold := func(k, v []byte) {
				if cur, ok := want[string(k)]; !ok || mustNewer(t, v, cur) {
					want[string(k)] = bytes.Clone(v)
				}
			}
			must(t, b.ExportSpan(ctx, 0, 0, func(k, v []byte) error { fold(k, v); return nil }))
			must(t, a.ExportSpan(ctx, upper, 0, func(k, v []byte) error { fold(k, v); return nil }))
			for _, k := range append(keys, wm) {
				b.Get(nil, k) // cache the receiver's records
			}
			snap, err := b.NewSnapshot() // closed before b is
			must(t, err)
			var snapBefore []string
			must(t, snap.ExportSpan(ctx, 0, 0, func(k, v []byte) error {
				snapBefore = append(snapBefore, fmt.Sprintf("%x=%x", k, v))
				return nil
			}))
			paths := mergeTables(t, a, b, upper, 0, "x", 700)
			before := ingested(t, b)

			// A writer and a reader race the merge; the writer's records
			// straddle the donor's timestamps.
			var mu sync.Mutex
			var written []func()
			var wg sync.WaitGroup
			// The writer lands 50 writes before the merge starts and 50
			// after it has returned, then ends (closing writerDone).
			stop, started, merged, writerDone := make(chan struct{}), make(chan struct{}), make(chan struct{}), make(chan struct{})
			wg.Go(func() {
				defer close(writerDone)
				rng := rand.New(rand.NewPCG(3, 4))
				after := -1 // writes since the writer saw merged closed
				for i := 0; after < 50; i++ {
					if i == 50 {
						close(started)
					}
					if after < 0 {
						select {
						case <-merged:
							after = 0
						default:
						}
					}
					k := keys[rng.IntN(len(keys))]
					r := rec(base+uint64(rng.IntN(1<<20)), 3, fmt.Sprint("c", i))
					if err := b.Write(k, r, false); err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					written = append(written, func() { fold(appendDataKey(nil, k), r.Append(nil)) })
					mu.Unlock()
					if after >= 0 {
						after++
					}
				}
			})
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(5, 6))
				for {
					select {
					case <-stop:
						return
					default:
					}
					b.Get(nil, keys[rng.IntN(len(keys))])
				}
			})
			<-started
			must(t, b.MergeSpan(ctx, upper, 0, paths, nil))
			close(merged)
			<-writerDone
			close(stop)
			wg.Wait()
			for _, f := range written {
				f()
			}
			if got := ingested(t, b) > before; got != p.files {
				t.Fatalf("ingested as files: %v, want %v", got, p.files)
			}
			if files, _ := fs.List("x"); len(files) != 0 {
				t.Fatalf("files left after merge: %v", files)
			}

			expect := func(when string) {
				t.Helper()
				got := map[string][]byte{}
				must(t, b.ExportSpan(ctx, 0, 0, func(k, v []byte) error { got[string(k)] = bytes.Clone(v); return nil }))
				if len(got) != len(want) {
					t.Fatalf("%s: %d records, want %d", when, len(got), len(want))
				}
				for k, v := range want {
					if !bytes.Equal(got[k], v) {
						t.Fatalf("%s: %x holds %x, want %x", when, k, got[k], v)
					}
					// Through the row cache, too.
					u, _ := userKey([]byte(k))
					_, r, err := b.Get(nil, u)
					must(t, err)
					if !bytes.Equal(r.Append(nil), v) {
						t.Fatalf("%s: Get(%s) = %+v, want %x", when, u, r, v)
					}
				}
			}
			expect("after the merge")
			var snapAfter []string
			must(t, snap.ExportSpan(ctx, 0, 0, func(k, v []byte) error {
				snapAfter = append(snapAfter, fmt.Sprintf("%x=%x", k, v))
				return nil
			}))
			if !slices.Equal(snapAfter, snapBefore) {
				t.Fatal("a snapshot taken before the merge sees it")
			}
			must(t, snap.Close())

			must(t, b.Write(wm, rec(late, 2, "late"), true))
			expect("after an older write")
			if b.MaxTimestamp() < newest {
				t.Fatalf("ceiling %d below the merged %d", b.MaxTimestamp(), newest)
			}
			must(t, b.Close())
			b = openMem(t, fs, func(o *Options) { o.Dir = "b" }, nil)
			defer b.Close()
			must(t, b.Write(wm, rec(late+1, 2, "late again"), true))
			expect("after a restart and an older write")
		})
	}
}

// TestMergeSpanRacesGC: garbage collection checks a droppable record and
// deletes its key under the key's stripe; a merge that lands between the
// two must not be deleted with it.
func TestMergeSpanRacesGC(t *testing.T) {
	clock := newFakeClock(time.Now())
	gc := compaction.GC{TombstoneGrace: time.Millisecond, Now: clock.Now}
	_, a, b := openPair(t, func(o *Options) { o.GC = gc })
	dead, alive := memtable.TimestampAt(clock.Now().Add(-time.Hour)), memtable.TimestampAt(clock.Now())
	ctx := context.Background()
	for round := range 8 {
		keys := make([][]byte, 1500)
		ba, bb := a.NewBatch(), b.NewBatch()
		for i := range keys {
			keys[i] = fmt.Appendf(nil, "r%d-%d", round, i)
			// The receiver's old tombstones are droppable; the donor's
			// newer values are not.
			must(t, bb.Write(keys[i], &memtable.Record{Version: memtable.Version{TS: dead, Node: 2}, Tombstone: true}))
			must(t, ba.Write(keys[i], rec(alive, 1, "alive")))
		}
		must(t, a.Commit(ba, false))
		must(t, b.Commit(bb, false))
		paths := mergeTables(t, a, b, 0, 0, fmt.Sprint("x", round), 1000)
		var wg sync.WaitGroup
		stop := make(chan struct{})
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := b.CollectGarbage(ctx); err != nil {
					t.Error(err)
					return
				}
			}
		})
		must(t, b.MergeSpan(ctx, 0, 0, paths, nil))
		close(stop)
		wg.Wait()
		for _, k := range keys {
			if _, r, err := b.Get(nil, k); err != nil || string(r.Value) != "alive" {
				t.Fatalf("round %d: %s = %+v, %v: a merged record was collected", round, k, r, err)
			}
		}
		must(t, a.DropSpan(ctx, 0, 0))
		must(t, b.DropSpan(ctx, 0, 0))
	}
}

// TestInvalidateRowsStopsFill: a read that missed the cache and read
// Pebble before an ingest must not cache what it read after the ingest
// (Engine.get's fill, replayed step by step).
func TestInvalidateRowsStopsFill(t *testing.T) {
	_, a, b := openPair(t, nil)
	ts := memtable.TimestampAt(time.Now())
	k := []byte("k")
	must(t, a.Write(k, rec(ts+1, 1, "new"), true))
	must(t, b.Write(k, rec(ts, 2, "old"), true))
	b.rows.c.Reset()

	s := b.stripeOf(k)
	seq := s.seq.Load()
	stale, closer, err := b.db.Get(appendDataKey(nil, k))
	must(t, err)
	stale = bytes.Clone(stale)
	closer.Close()
	must(t, b.MergeSpan(context.Background(), 0, 0, mergeTables(t, a, b, 0, 0, "x", 10), nil))
	if s.mu.TryLock() {
		if s.seq.Load() == seq {
			b.rows.put(k, stale)
		}
		s.mu.Unlock()
	}
	if _, r, err := b.Get(nil, k); err != nil || string(r.Value) != "new" {
		t.Fatalf("Get = %q, %v: a read from before the ingest was cached", r.Value, err)
	}
}

// TestMergeSpanRejects: a bad file, a failed check or a wrapping span
// aborts MergeSpan with the store and the files unchanged; it refuses
// tables of SETs.
func TestMergeSpanRejects(t *testing.T) {
	ts := memtable.TimestampAt(time.Now())
	good := rec(ts, 1, "v").Append(nil)
	in1, in2 := keyIn("in", upper, 0, true), keyIn("in2", upper, 0, true)
	sk := func(k []byte) []byte { return appendDataKey(nil, k) }
	if bytes.Compare(sk(in1), sk(in2)) > 0 {
		in1, in2 = in2, in1
	}
	type writeFn func(w *sstable.Writer, k, v []byte) error
	for _, m := range []struct {
		name       string
		put, other writeFn // the kind the call takes, and the one it refuses
		call       func(e *Engine, ctx context.Context, lo, hi uint64, paths []string, check SpanCheck) error
	}{
		{"MergeSpan", (*sstable.Writer).Merge, (*sstable.Writer).Set, (*Engine).MergeSpan},
	} {
		with := func(put writeFn, keys ...[]byte) func(w *sstable.Writer) error {
			return func(w *sstable.Writer) error {
				for _, k := range keys {
					if err := put(w, sk(k), good); err != nil {
						return err
					}
				}
				return nil
			}
		}
		set := func(keys ...[]byte) func(w *sstable.Writer) error { return with(m.put, keys...) }
		errCheck := errors.New("check says no")
		for _, c := range []struct {
			name   string
			lo, hi uint64
			files  []func(w *sstable.Writer) error
			mangle func(data []byte) []byte // applied to the first file
			check  SpanCheck
			want   error
		}{
			{name: "outside", lo: upper, files: []func(*sstable.Writer) error{set(keyIn("out", upper, 0, false))}, want: ErrInvalidTable},
			{name: "out of order", lo: upper, files: []func(*sstable.Writer) error{set(in2), set(in1)}, want: ErrInvalidTable},
			{name: "overlap", lo: upper, files: []func(*sstable.Writer) error{set(in1, in2), set(in2)}, want: ErrInvalidTable},
			{name: "wrong kind", lo: upper, files: []func(*sstable.Writer) error{with(m.other, in1)}, want: ErrInvalidTable},
			{name: "wrong kind in a later file", lo: upper, files: []func(*sstable.Writer) error{set(in1), with(m.other, in2)}, want: ErrInvalidTable},
			{name: "range deletion", lo: upper, files: []func(*sstable.Writer) error{func(w *sstable.Writer) error {
				if err := m.put(w, sk(in1), good); err != nil {
					return err
				}
				return w.DeleteRange([]byte{spaceMeta}, []byte{spaceMeta + 1})
			}}, want: ErrInvalidTable},
			{name: "bad record", lo: upper, files: []func(*sstable.Writer) error{func(w *sstable.Writer) error { return m.put(w, sk(in1), []byte("junk")) }}, want: ErrInvalidTable},
			{name: "bad token", lo: 0, files: []func(*sstable.Writer) error{func(w *sstable.Writer) error {
				return m.put(w, appendDataKeyTok(nil, Token(in1)+1, in1), good)
			}}, want: ErrInvalidTable},
			{name: "bit flip", lo: upper, files: []func(*sstable.Writer) error{set(in1, in2)}, mangle: func(d []byte) []byte { d[20] ^= 0x40; return d }, want: ErrInvalidTable},
			{name: "truncated", lo: upper, files: []func(*sstable.Writer) error{set(in1, in2)}, mangle: func(d []byte) []byte { return d[:len(d)/2] }, want: ErrInvalidTable},
			{name: "check", lo: upper, files: []func(*sstable.Writer) error{set(in1)}, check: failCheck{errCheck}, want: errCheck},
			{name: "wrapping", lo: upper, hi: 5, files: nil, want: ErrWrappingSpan},
		} {
			t.Run(m.name+"/"+c.name, func(t *testing.T) {
				fs := vfs.NewMem()
				e := openMem(t, fs, nil, nil)
				defer e.Close()
				must(t, e.Write(keyIn("there", upper, 0, true), rec(ts, 2, "there"), true))
				must(t, e.SetMeta("name", []byte("me")))
				before := spanRecords(t, e, 0, 0)
				var paths []string
				for i, fill := range c.files {
					paths = append(paths, writeTable(t, e, fmt.Sprintf("f%d.sst", i), fill))
				}
				if c.mangle != nil {
					data := readAll(t, fs, paths[0])
					f, err := fs.Create(paths[0], vfs.WriteCategoryUnspecified)
					must(t, err)
					_, err = f.Write(c.mangle(data))
					must(t, err)
					must(t, f.Close())
				}
				err := m.call(e, context.Background(), c.lo, c.hi, paths, c.check)
				if !errors.Is(err, c.want) {
					t.Fatalf("%s = %v, want %v", m.name, err, c.want)
				}
				t.Log(err)
				if after := spanRecords(t, e, 0, 0); !slices.Equal(after, before) {
					t.Fatalf("store changed by a failed ingest")
				}
				if v, err := e.GetMeta("name"); err != nil || string(v) != "me" {
					t.Fatalf("metadata: %q, %v", v, err)
				}
				for _, p := range paths {
					if _, err := fs.Stat(p); err != nil {
						t.Fatalf("file of a failed ingest gone: %v", err)
					}
				}
			})
		}
	}
}

type failCheck struct{ err error }

func (failCheck) Add(k, v []byte) error { return nil }
func (c failCheck) Verify() error       { return c.err }

func readAll(t *testing.T, fs vfs.FS, path string) []byte {
	t.Helper()
	f, err := fs.Open(path)
	must(t, err)
	defer f.Close()
	data, err := io.ReadAll(f)
	must(t, err)
	return data
}

// TestMergeSpanConcurrent: writers and readers race merges and drops of
// their keys' span; afterwards every cached read equals what Pebble holds.
func TestMergeSpanConcurrent(t *testing.T) {
	_, a, b := openPair(t, func(o *Options) { o.RowCacheSize = 1 << 20 })
	keys := benchKeysT(64)
	base := memtable.TimestampAt(time.Now())
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := 0; w < 2; w++ {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 3))
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				r := rec(base+uint64(rng.IntN(1<<24)), uint64(w), fmt.Sprint("b", w, "-", i))
				if err := b.Write(keys[rng.IntN(len(keys))], r, false); err != nil {
					t.Error(err)
					return
				}
			}
		})
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 4))
			for {
				select {
				case <-stop:
					return
				default:
				}
				b.Get(nil, keys[rng.IntN(len(keys))])
			}
		})
	}
	rng := rand.New(rand.NewPCG(5, 5))
	for i := 0; i < 24; i++ {
		for _, k := range keys {
			if rng.IntN(2) == 0 {
				must(t, a.Write(k, rec(base+uint64(rng.IntN(1<<24)), 1, fmt.Sprint("a", i)), false))
			}
		}
		if i == 12 {
			addFiller(t, a, 1500, 0, 0, base) // from here on, merges use files
		}
		if i%5 == 4 {
			must(t, b.DropSpan(context.Background(), 0, 0))
			continue
		}
		must(t, b.MergeSpan(context.Background(), 0, 0, mergeTables(t, a, b, 0, 0, fmt.Sprint("x", i), 400), nil))
	}
	close(stop)
	wg.Wait()
	snap, err := b.NewSnapshot()
	must(t, err)
	defer snap.Close()
	for _, k := range keys {
		_, cached, err1 := b.Get(nil, k)
		_, stored, err2 := snap.Get(nil, k)
		if (err1 == nil) != (err2 == nil) || (err1 == nil && !bytes.Equal(cached.Append(nil), stored.Append(nil))) {
			t.Fatalf("%s: cache says %+v (%v), Pebble %+v (%v)", k, cached, err1, stored, err2)
		}
	}
	if ingested(t, b) == 0 {
		t.Fatal("no ingest used files")
	}
}

// TestExportSpan: an export is the snapshot's view, in storage-key order,
// with merge operands resolved into whole records.
func TestExportSpan(t *testing.T) {
	e := openMem(t, vfs.NewMem(), nil, nil)
	defer e.Close()
	ts := memtable.TimestampAt(time.Now())
	keys := benchKeysT(200)
	for i, k := range keys {
		must(t, e.Write(k, rec(ts+10, 1, fmt.Sprint("v", i)), false))
		must(t, e.Write(k, rec(ts+5, 1, "older"), false)) // a MERGE that loses
	}
	snap, err := e.NewSnapshot()
	must(t, err)
	defer snap.Close()
	must(t, e.Write(keyIn("later", upper, 0, true), rec(ts+20, 1, "later"), false))
	for _, c := range []struct {
		name   string
		lo, hi uint64
		err    error
	}{
		{"all", 0, 0, nil},
		{"upper", upper, 0, nil},
		{"lower", 0, upper, nil},
		{"empty", upper, upper, nil},
		{"wrapping", upper, 1, ErrWrappingSpan},
	} {
		t.Run(c.name, func(t *testing.T) {
			var prev []byte
			n := 0
			err := snap.ExportSpan(context.Background(), c.lo, c.hi, func(k, v []byte) error {
				if prev != nil && bytes.Compare(prev, k) >= 0 {
					t.Fatalf("keys out of order: %x then %x", prev, k)
				}
				prev = bytes.Clone(k)
				u, _ := userKey(k)
				if !inSpan(Token(u), c.lo, c.hi) {
					t.Fatalf("%s outside the span", u)
				}
				r, err := memtable.Decode(v)
				must(t, err)
				if r.TS != ts+10 {
					t.Fatalf("%s: exported %+v, want the newest record", u, r)
				}
				n++
				return nil
			})
			if !errors.Is(err, c.err) {
				t.Fatalf("ExportSpan = %v, want %v", err, c.err)
			}
			want := 0
			for _, k := range keys {
				if c.err == nil && !(c.hi != 0 && c.lo == c.hi) && inSpan(Token(k), c.lo, c.hi) {
					want++
				}
			}
			if n != want {
				t.Fatalf("exported %d records, want %d", n, want)
			}
		})
	}
}

// TestDropSpan: a drop removes exactly the records of its spans (all of
// them or, given a bad span, none), and nothing of the other keyspaces.
func TestDropSpan(t *testing.T) {
	ts := memtable.TimestampAt(time.Now())
	keys := benchKeysT(500)
	for _, c := range []struct {
		name  string
		spans []Span
		err   error
	}{
		{"all", []Span{{0, 0}}, nil},
		{"upper", []Span{{upper, 0}}, nil},
		{"middle", []Span{{1 << 62, 3 << 62}}, nil},
		{"empty", []Span{{1 << 62, 1 << 62}}, nil},
		{"wrapping", []Span{{3 << 62, 1 << 62}}, ErrWrappingSpan},
		{"none", nil, nil},
		{"several", []Span{{0, 1 << 61}, {1 << 62, 1 << 62}, {3 << 62, 0}}, nil},
		// One bad span and nothing is dropped.
		{"several, one wrapping", []Span{{0, 1 << 61}, {3 << 62, 1 << 62}}, ErrWrappingSpan},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := openMem(t, vfs.NewMem(), nil, nil)
			defer e.Close()
			for i, k := range keys {
				must(t, e.Write(k, rec(ts, 1, fmt.Sprint(i)), false))
				if i == len(keys)/2 {
					must(t, e.Flush())
				}
				e.Get(nil, k) // cache it
			}
			must(t, e.SetMeta("name", []byte("me")))
			must(t, e.AddHint("peer", []byte("hinted"), rec(ts, 1, "h").Append(nil)))
			var err error
			if len(c.spans) == 1 {
				err = e.DropSpan(context.Background(), c.spans[0].Lo, c.spans[0].Hi)
			} else {
				err = e.DropSpans(context.Background(), c.spans)
			}
			if !errors.Is(err, c.err) {
				t.Fatalf("drop = %v, want %v", err, c.err)
			}
			for _, k := range keys {
				_, _, err := e.Get(nil, k)
				gone := false
				for _, sp := range c.spans {
					gone = gone || c.err == nil && !(sp.Hi != 0 && sp.Lo == sp.Hi) && inSpan(Token(k), sp.Lo, sp.Hi)
				}
				if gone != errors.Is(err, ErrNotFound) {
					t.Fatalf("%s: Get = %v, want gone=%v", k, err, gone)
				}
			}
			if v, err := e.GetMeta("name"); err != nil || string(v) != "me" {
				t.Fatalf("metadata: %q, %v", v, err)
			}
			if hs, err := e.Hints(context.Background(), "peer", 10); err != nil || len(hs) != 1 {
				t.Fatalf("hints: %v, %v", hs, err)
			}
		})
	}
}

// TestCheckpoint: a checkpoint opens as an engine with the same records,
// unflushed writes included, and refuses an existing directory.
func TestCheckpoint(t *testing.T) {
	fs := vfs.NewMem()
	e := openMem(t, fs, nil, nil)
	defer e.Close()
	ts := memtable.TimestampAt(time.Now())
	for i, k := range benchKeysT(300) {
		must(t, e.Write(k, rec(ts+uint64(i), 1, fmt.Sprint(i)), false))
		if i == 100 {
			must(t, e.Flush())
		}
	}
	must(t, e.SetMeta("name", []byte("me")))
	want := spanRecords(t, e, 0, 0)
	must(t, e.Checkpoint("backup"))
	if err := e.Checkpoint("backup"); err == nil {
		t.Fatal("Checkpoint into an existing directory succeeded")
	}
	must(t, e.Write([]byte("after"), rec(ts, 1, "after"), false))

	c := openMem(t, fs, func(o *Options) { o.Dir = "backup" }, nil)
	defer c.Close()
	if got := spanRecords(t, c, 0, 0); !slices.Equal(got, want) {
		t.Fatalf("checkpoint holds %d records, want %d", len(got), len(want))
	}
	if v, err := c.GetMeta("name"); err != nil || string(v) != "me" {
		t.Fatalf("metadata: %q, %v", v, err)
	}
	if c.MaxTimestamp() != e.MaxTimestamp() {
		t.Fatalf("ceiling %d, want %d", c.MaxTimestamp(), e.MaxTimestamp())
	}
}

// TestSmallMergeForgetsOnlyItsRows: a merge small enough to go as a batch
// drops from the row cache exactly the keys it brings, so a cached key it
// changes reads its new winner, and the rest of the cache stays warm.
func TestSmallMergeForgetsOnlyItsRows(t *testing.T) {
	_, a, b := openPair(t, nil)
	ts := memtable.TimestampAt(time.Now())
	moved, other := keyIn("moved", upper, 0, true), keyIn("other", upper, 0, false)
	must(t, b.Write(moved, rec(ts, 2, "old"), false))
	must(t, b.Write(other, rec(ts, 2, "stays"), false))
	must(t, a.Write(moved, rec(ts+1, 1, "new"), false))
	for _, k := range [][]byte{moved, other} {
		b.Get(nil, k) // cached
	}
	paths := mergeTables(t, a, b, upper, 0, "x", 100)
	must(t, b.MergeSpan(context.Background(), upper, 0, paths, nil))
	before := b.rows.stats().Hits
	if _, r, err := b.Get(nil, other); err != nil || string(r.Value) != "stays" {
		t.Fatalf("other = %+v, %v", r, err)
	}
	if b.rows.stats().Hits != before+1 {
		t.Error("a key outside the merge was dropped from the row cache")
	}
	if _, r, err := b.Get(nil, moved); err != nil || string(r.Value) != "new" {
		t.Fatalf("the merged key reads %q, %v; want the donor's newer record", r.Value, err)
	}
}
