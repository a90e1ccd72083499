package engine

import (
	"context"
	"errors"
	"math"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/ringkv/ringkv/memtable"
)

// TestCeilingSaturates: a record stamped at the top of the timestamp
// space (2^64-1, or within the margin of it) leaves the durable ceiling at
// 2^64-1, before and after a restart, instead of wrapping it to a small
// value under which a restarted clock would stamp writes that lose to
// older records.
func TestCeilingSaturates(t *testing.T) {
	for _, ts := range []uint64{math.MaxUint64, math.MaxUint64 - ceilingMargin + 1, math.MaxUint64 - ceilingMargin} {
		fs := vfs.NewCrashableMem()
		e := openMem(t, fs, nil, nil)
		must(t, e.Write([]byte("k"), rec(ts, 1, "top"), true))
		if got := e.MaxTimestamp(); got != ceilingAbove(ts) || got < ts {
			t.Fatalf("ts %d: ceiling %d, want %d", ts, got, uint64(math.MaxUint64))
		}
		e2 := openMem(t, fs.CrashClone(vfs.CrashCloneCfg{}), nil, nil)
		must(t, e.Close())
		if got := e2.MaxTimestamp(); got < ts {
			t.Fatalf("ts %d: ceiling after restart %d, below the stored record", ts, got)
		}
		must(t, e2.Close())
	}
	if ceilingAbove(1) != 1+ceilingMargin {
		t.Fatal("ceilingAbove(1)")
	}
}

// TestMergeSpanRefusesFutureRecords: with a timestamp bound set, a span
// holding a record stamped beyond it is refused whole, and the store and
// its ceiling are unchanged.
func TestMergeSpanRefusesFutureRecords(t *testing.T) {
	src := openMem(t, vfs.NewMem(), nil, nil)
	defer src.Close()
	dst := openMem(t, vfs.NewMem(), nil, nil)
	defer dst.Close()
	must(t, src.Write([]byte("a"), rec(100, 1, "ok"), true))
	must(t, src.Write([]byte("b"), rec(math.MaxUint64, 1, "far future"), true))
	dst.SetTimestampBound(func() uint64 { return 1000 })
	before := dst.MaxTimestamp()
	err := mergeAll(t, src, dst)
	if err == nil || !isFuture(err) {
		t.Fatalf("merge of a span with a far-future record: %v, want ErrFutureTimestamp", err)
	}
	if _, _, err := dst.Get(nil, []byte("a")); err == nil {
		t.Fatal("part of a refused span was stored")
	}
	if dst.MaxTimestamp() != before {
		t.Fatalf("the ceiling moved to %d", dst.MaxTimestamp())
	}
	dst.SetTimestampBound(func() uint64 { return math.MaxUint64 })
	if err := mergeAll(t, src, dst); err != nil {
		t.Fatalf("within the bound: %v", err)
	}
}

// mergeAll merges every record of src into dst with MergeSpan.
func mergeAll(t *testing.T, src, dst *Engine) error {
	t.Helper()
	return dst.MergeSpan(context.Background(), 0, 0, mergeTables(t, src, dst, 0, 0, "in", 100), nil)
}

func isFuture(err error) bool { return errors.Is(err, memtable.ErrFutureTimestamp) }

// TestHintsAtTheTopOfTime: a hint stamped 2^64-1 is listed, deleted and
// dropped like any other (its key sorts after the prefix plus 0xff).
func TestHintsAtTheTopOfTime(t *testing.T) {
	e := openMem(t, vfs.NewMem(), nil, nil)
	defer e.Close()
	top := rec(math.MaxUint64, 1, "top").Append(nil)
	must(t, e.AddHint("n2", []byte("k"), top))
	hs, err := e.Hints(context.Background(), "n2", 10)
	if err != nil || len(hs) != 1 {
		t.Fatalf("Hints: %d, %v; want the one hint", len(hs), err)
	}
	must(t, e.DeleteHints("n2", hs))
	must(t, e.AddHint("n2", []byte("k"), top))
	must(t, e.DropHints("n2"))
	if hs, err := e.Hints(context.Background(), "n2", 10); err != nil || len(hs) != 0 {
		t.Fatalf("after DropHints: %d hints, %v", len(hs), err)
	}
}
