package memtable

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"time"
)

func enc(ts, node uint64, tomb bool, val string) []byte {
	r := Record{Version: Version{TS: ts, Node: node}, Tombstone: tomb}
	if !tomb {
		r.Value = []byte(val)
	}
	return r.Append(nil)
}

// merge runs the merger over ops (oldest first) in the order Pebble uses
// for the given direction and returns the result and whether it was dropped.
func merge(t *testing.T, ops [][]byte, newerFirst bool) []byte {
	t.Helper()
	m := NewMerger()
	var vm interface {
		MergeNewer([]byte) error
		MergeOlder([]byte) error
	}
	var err error
	if newerFirst {
		v, e := m.Merge(nil, ops[len(ops)-1])
		vm, err = v, e
		for i := len(ops) - 2; i >= 0 && err == nil; i-- {
			err = vm.MergeOlder(ops[i])
		}
	} else {
		v, e := m.Merge(nil, ops[0])
		vm, err = v, e
		for i := 1; i < len(ops) && err == nil; i++ {
			err = vm.MergeNewer(ops[i])
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	out, closer, err := vm.(*lwwMerger).Finish(true)
	if err != nil {
		t.Fatal(err)
	}
	res := bytes.Clone(out)
	closer.Close()
	return res
}

func TestMergeLastWriterWins(t *testing.T) {
	f := func(name string, want []byte, ops ...[]byte) {
		t.Helper()
		for _, newerFirst := range []bool{false, true} {
			got := merge(t, ops, newerFirst)
			if !bytes.Equal(got, want) {
				t.Fatalf("%s (newerFirst=%v): got %x, want %x", name, newerFirst, got, want)
			}
		}
	}
	a, b, c := enc(10, 1, false, "a"), enc(20, 1, false, "b"), enc(15, 1, false, "c")
	f("newest timestamp wins whatever the arrival order", b, a, b, c)
	f("a late old write does not overwrite", b, b, a)
	tomb := enc(30, 2, true, "")
	f("a delete beats older writes", tomb, a, tomb, b)
	f("a write after a delete brings the key back", enc(31, 1, false, "d"), tomb, enc(31, 1, false, "d"))
	f("timestamp ties break on node tag", enc(20, 9, false, "x"), enc(20, 9, false, "x"), enc(20, 3, false, "y"))
	f("exact version ties prefer the tombstone", enc(20, 3, true, ""), enc(20, 3, false, "y"), enc(20, 3, true, ""))
	f("replaying the same write is idempotent", a, a, a, a)
}

// TestMergeAssociative checks that any split of the operands into partial
// merges, in any order, gives the same answer, as Pebble's compactions
// merge arbitrary subsets.
func TestMergeAssociative(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for iter := 0; iter < 2000; iter++ {
		n := 1 + rng.IntN(6)
		ops := make([][]byte, n)
		for i := range ops {
			ops[i] = enc(uint64(rng.IntN(5)), uint64(rng.IntN(3)), rng.IntN(4) == 0, string(rune('a'+rng.IntN(26))))
		}
		whole := merge(t, ops, false)
		cut := rng.IntN(n)
		left, right := ops[:cut], ops[cut:]
		var parts [][]byte
		if len(left) > 0 {
			l := merge(t, left, true)
			parts = append(parts, l)
		}
		r := merge(t, right, rng.IntN(2) == 0)
		parts = append(parts, r)
		got := merge(t, parts, false)
		if !bytes.Equal(got, whole) {
			t.Fatalf("ops %x: whole %x, split at %d %x", ops, whole, cut, got)
		}
	}
}

func TestMergeRejectsCorrupt(t *testing.T) {
	m := NewMerger()
	if _, err := m.Merge(nil, []byte{9, 9}); err == nil {
		t.Fatal("Merge accepted a corrupt operand")
	}
	vm, err := m.Merge(nil, enc(1, 1, false, "v"))
	if err != nil {
		t.Fatal(err)
	}
	if err := vm.MergeOlder([]byte("junk")); err == nil {
		t.Fatal("MergeOlder accepted a corrupt operand")
	}
}

func TestClock(t *testing.T) {
	wall := time.UnixMilli(1_700_000_000_000)
	c := NewClock(func() time.Time { return wall })
	a := c.Now()
	b := c.Now()
	if b <= a {
		t.Fatalf("timestamps not increasing within a millisecond: %d then %d", a, b)
	}
	wall = wall.Add(-time.Second) // the wall clock steps back
	if d := c.Now(); d <= b {
		t.Fatalf("clock went backwards with the wall clock: %d after %d", d, b)
	}
	wall = wall.Add(time.Minute)
	e := c.Now()
	if TimestampTime(e) != wall {
		t.Fatalf("timestamp carries %v, wall is %v", TimestampTime(e), wall)
	}
	// A remote timestamp slightly ahead is adopted; one far ahead is refused.
	ahead := TimestampAt(wall.Add(100 * time.Millisecond))
	if err := c.Update(ahead); err != nil {
		t.Fatal(err)
	}
	if f := c.Now(); f <= ahead {
		t.Fatalf("Now %d not after observed %d", f, ahead)
	}
	if err := c.Update(TimestampAt(wall.Add(time.Hour))); err == nil {
		t.Fatal("accepted a timestamp an hour ahead")
	}
	if g := c.Now(); TimestampTime(g).After(wall.Add(time.Second)) {
		t.Fatal("refused timestamp still moved the clock")
	}
}

func TestClockConcurrentUnique(t *testing.T) {
	c := NewClock(nil)
	const workers, each = 8, 2000
	out := make(chan uint64, workers*each)
	done := make(chan struct{})
	for w := 0; w < workers; w++ {
		go func() {
			for i := 0; i < each; i++ {
				out <- c.Now()
			}
			done <- struct{}{}
		}()
	}
	for w := 0; w < workers; w++ {
		<-done
	}
	close(out)
	seen := map[uint64]bool{}
	for ts := range out {
		if seen[ts] {
			t.Fatalf("duplicate timestamp %d", ts)
		}
		seen[ts] = true
	}
}

func BenchmarkMerge(b *testing.B) {
	m := NewMerger()
	ops := [][]byte{enc(1, 1, false, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"), enc(3, 1, false, "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"), enc(2, 2, true, "")}
	b.ReportAllocs()
	for b.Loop() {
		vm, _ := m.Merge(nil, ops[2])
		_ = vm.MergeOlder(ops[1])
		_ = vm.MergeOlder(ops[0])
		_, c, _ := vm.Finish(true)
		c.Close()
	}
}

func BenchmarkRecordCodec(b *testing.B) {
	r := Record{Version: Version{TS: 1 << 40, Node: 77}, Value: bytes.Repeat([]byte("v"), 100)}
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	b.SetBytes(int64(r.EncodedLen()))
	for b.Loop() {
		buf = r.Append(buf[:0])
		if _, err := Decode(buf); err != nil {
			b.Fatal(err)
		}
	}
}
