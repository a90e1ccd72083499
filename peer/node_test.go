package peer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/ringkv/ringkv/compaction"
	"github.com/ringkv/ringkv/engine"
	"github.com/ringkv/ringkv/memtable"
	"github.com/ringkv/ringkv/peer/kv"
)

type clock struct{ ms atomic.Int64 }

func (c *clock) now() time.Time      { return time.UnixMilli(c.ms.Load()) }
func (c *clock) add(d time.Duration) { c.ms.Add(d.Milliseconds()) }

func newNode(t *testing.T) (*Node, *clock) {
	t.Helper()
	c := &clock{}
	c.ms.Store(time.Now().UnixMilli())
	lg := slog.New(slog.NewTextHandler(io.Discard, nil))
	e, err := engine.Open(engine.Options{FS: vfs.NewMem(), Logger: lg, GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	n, err := NewNode(Config{NodeID: "n1", HTTPAddr: "127.0.0.1:1", Engine: e, Now: c.now, Logger: lg})
	if err != nil {
		t.Fatal(err)
	}
	return n, c
}

func TestNodeReadYourWrites(t *testing.T) {
	n, c := newNode(t)
	ctx := context.Background()
	get := func(k string) (string, Version, error) {
		v, ver, err := n.Get(ctx, []byte("pre:"), []byte(k), Quorum)
		if err == nil {
			if string(v[:4]) != "pre:" {
				t.Fatalf("Get did not append to dst: %q", v)
			}
			v = v[4:]
		}
		return string(v), ver, err
	}
	v1, err := n.Put(ctx, []byte("k"), []byte("one"), WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got, ver, err := get("k"); err != nil || got != "one" || ver != v1 {
		t.Fatalf("Get = %q %v %v", got, ver, err)
	}
	v2, _ := n.Put(ctx, []byte("k"), []byte(""), WriteOptions{Consistency: All})
	if !v1.Less(v2) || v2.Node != memtable.NodeTag("n1") {
		t.Fatalf("versions not increasing: %v then %v", v1, v2)
	}
	if got, _, err := get("k"); err != nil || got != "" {
		t.Fatalf("empty value: %q %v", got, err)
	}
	if _, err := n.Delete(ctx, []byte("k"), WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := get("k"); !errors.Is(err, ErrNotFound) || !errors.Is(err, kv.ErrNotFound) {
		t.Fatalf("deleted key: %v", err)
	}
	if _, err := n.Delete(ctx, []byte("never"), WriteOptions{}); err != nil {
		t.Fatalf("delete of an absent key: %v", err)
	}

	// TTL: present until it expires, then absent.
	if _, err := n.Put(ctx, []byte("ttl"), []byte("v"), WriteOptions{TTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := get("ttl"); err != nil {
		t.Fatal(err)
	}
	c.add(61 * time.Second)
	if _, _, err := get("ttl"); !errors.Is(err, ErrNotFound) || !errors.Is(err, kv.ErrNotFound) {
		t.Fatalf("expired key: %v", err)
	}

	for _, k := range [][]byte{nil, {}, make([]byte, MaxKeySize+1)} {
		if _, err := n.Put(ctx, k, []byte("v"), WriteOptions{}); !errors.Is(err, ErrInvalidKey) {
			t.Fatalf("Put with a %d-byte key: %v", len(k), err)
		}
		if _, _, err := n.Get(ctx, nil, k, One); !errors.Is(err, ErrInvalidKey) {
			t.Fatalf("Get with a %d-byte key: %v", len(k), err)
		}
	}
	if _, err := n.Put(ctx, make([]byte, MaxKeySize), nil, WriteOptions{}); err != nil {
		t.Fatalf("a key of exactly MaxKeySize: %v", err)
	}
}

func TestNodeScan(t *testing.T) {
	n, _ := newNode(t)
	ctx := context.Background()
	for i := 0; i < 50; i++ {
		n.Put(ctx, []byte(fmt.Sprint("a/", i)), []byte(fmt.Sprint(i)), WriteOptions{})
		n.Put(ctx, []byte(fmt.Sprint("b/", i)), []byte(fmt.Sprint(i)), WriteOptions{})
	}
	n.Delete(ctx, []byte("a/7"), WriteOptions{})
	seen := map[string]bool{}
	var after []byte
	pages := 0
	for {
		p, err := n.Scan(ctx, ScanQuery{Prefix: []byte("a/"), After: after, Limit: 8})
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, it := range p.Items {
			if seen[string(it.Key)] {
				t.Fatalf("%s returned twice", it.Key)
			}
			seen[string(it.Key)] = true
			if string(it.Key[:2]) != "a/" || it.Version.IsZero() {
				t.Fatalf("bad item %+v", it)
			}
		}
		if p.Next == nil {
			break
		}
		if len(p.Items) != 8 {
			t.Fatalf("non-final page of %d items", len(p.Items))
		}
		after = p.Next
	}
	if len(seen) != 49 || seen["a/7"] || pages != 7 {
		t.Fatalf("scan saw %d keys in %d pages (deleted key seen: %v)", len(seen), pages, seen["a/7"])
	}
	for _, lim := range []int{0, -1, MaxScanLimit + 1} {
		if _, err := n.Scan(ctx, ScanQuery{Limit: lim}); err == nil {
			t.Fatalf("limit %d accepted", lim)
		}
	}
}

func TestConsistency(t *testing.T) {
	f := func(s string, want Consistency, needed3 int) {
		t.Helper()
		c, err := ParseConsistency(s)
		if err != nil || c != want || c.Needed(3) != needed3 || (s != "" && c.String() != s) {
			t.Fatalf("%q: %v %v needed(3)=%d", s, c, err, c.Needed(3))
		}
	}
	f("", Quorum, 2)
	f("quorum", Quorum, 2)
	f("one", One, 1)
	f("all", All, 3)
	for _, bad := range []string{"ONE", "two", " all"} {
		if _, err := ParseConsistency(bad); err == nil {
			t.Fatalf("%q accepted", bad)
		}
	}
	if Quorum.Needed(1) != 1 || Quorum.Needed(5) != 3 || All.Needed(1) != 1 {
		t.Fatal("Needed")
	}
	err := fmt.Errorf("wrapped: %w", &UnavailableError{Op: "write", Needed: 2, Answered: 1})
	if !errors.Is(err, ErrUnavailable) {
		t.Fatal("UnavailableError does not match ErrUnavailable")
	}
}

// blockFlushes makes every SSTable creation wait until release is closed:
// flushes cannot finish, so Pebble stalls writes once its memtables fill.
type blockFlushes struct{ release chan struct{} }

func (b blockFlushes) String() string { return "block-flushes" }
func (b blockFlushes) MaybeError(op errorfs.Op) error {
	if op.Kind == errorfs.OpCreate && strings.HasSuffix(op.Path, ".sst") {
		<-b.release
	}
	return nil
}

// TestWriteAnswersWithinTimeoutWhileStalled: while Pebble stalls writes
// (its flushes cannot finish, as on a full disk), a single node's writes
// are answered within the request timeout (503), not held.
func TestWriteAnswersWithinTimeoutWhileStalled(t *testing.T) {
	release := make(chan struct{})
	fs := errorfs.Wrap(vfs.NewMem(), blockFlushes{release})
	tu, err := compaction.ProfileTuning(compaction.Balanced)
	if err != nil {
		t.Fatal(err)
	}
	tu.MemTableSize, tu.MemTableStopWrites = 1<<20, 2
	lg := slog.New(slog.NewTextHandler(io.Discard, nil))
	// The stall cannot end before release (no flush finishes), so once it
	// has begun it holds for the write below.
	stallBegan := make(chan struct{})
	var once sync.Once
	e, err := engine.Open(engine.Options{FS: fs, Logger: lg, GCInterval: -1, Tuning: tu, RowCacheSize: -1,
		OnStall: func(engine.Stall) { once.Do(func() { close(stallBegan) }) },
		OnFatal: func(msg string) { t.Errorf("pebble fatal: %s", msg) }})
	if err != nil {
		t.Fatal(err)
	}
	const timeout = 300 * time.Millisecond
	n, err := NewNode(Config{NodeID: "n1", HTTPAddr: "127.0.0.1:1", Engine: e, Logger: lg, RequestTimeout: timeout, Sync: true})
	if err != nil {
		t.Fatal(err)
	}
	var fillers sync.WaitGroup
	var stalled atomic.Bool // the fillers stop once a stall was seen
	defer func() {
		close(release)
		fillers.Wait()
		n.Close()
		e.Close()
	}()
	val := make([]byte, 64<<10)
	// Writers fill the memtables until Pebble stalls them.
	for w := range 4 {
		fillers.Go(func() {
			for i := 0; !stalled.Load() && !e.WriteMayBlock(); i++ {
				n.Put(context.Background(), fmt.Appendf(nil, "fill-%d-%d", w, i), val, WriteOptions{})
			}
		})
	}
	select {
	case <-stallBegan:
	case <-time.After(time.Minute): // only a hang gets here
		t.Fatal("no write stall")
	}
	if !e.WriteMayBlock() {
		t.Fatal("a write stall began, yet the engine says writes will not block")
	}
	stalled.Store(true)
	start := time.Now()
	_, err = n.Put(context.Background(), []byte("k"), []byte("v"), WriteOptions{})
	if d := time.Since(start); d > timeout+time.Second {
		t.Errorf("a write during a stall took %s; the request timeout is %s", d, timeout)
	}
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("a write during a stall: %v, want ErrUnavailable", err)
	}
}

// benchNode returns a single node holding keys, each with a 100-byte value.
func benchNode(b *testing.B, keys [][]byte) *Node {
	lg := slog.New(slog.NewTextHandler(io.Discard, nil))
	e, err := engine.Open(engine.Options{FS: vfs.NewMem(), Logger: lg, GCInterval: -1})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.Close() })
	n, err := NewNode(Config{NodeID: "n1", HTTPAddr: "127.0.0.1:1", Engine: e, Logger: lg})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { n.Close() })
	val := make([]byte, 100)
	for _, k := range keys {
		if _, err := n.Put(context.Background(), k, val, WriteOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	return n
}

// BenchmarkLocalRead measures a node's reads of its own keys: Get (a
// single node's, which must not allocate), the replica's and a cluster
// read's own copy as it is now (stored, ReadLocal) and as it was
// (decode-encode: the value read, then the record encoded again into a
// new slice, and decoded once more by the coordinator).
func BenchmarkLocalRead(b *testing.B) {
	keys := make([][]byte, 10_000)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "key-%d", i)
	}
	n := benchNode(b, keys)
	ctx := context.Background()
	for _, how := range []string{"get", "stored", "decode-encode"} {
		b.Run(how, func(b *testing.B) {
			dst := make([]byte, 0, 256)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				k := keys[i%len(keys)]
				i++
				var err error
				switch how {
				case "get":
					_, _, err = n.Get(ctx, dst[:0], k, Quorum)
				case "stored":
					var rec []byte
					if rec, err = n.Local().ReadLocal(nil, k); err == nil {
						_, err = memtable.Decode(rec)
					}
				default:
					_, r, err2 := n.cfg.Engine.Get(nil, k)
					if err = err2; err == nil {
						_, err = memtable.Decode(r.Append(nil))
					}
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestSoloGetAllocates nothing: a single node's read of a key into a dst
// with room is zero-alloc.
func TestSoloGetAllocatesNothing(t *testing.T) {
	n, _ := newNode(t)
	ctx := context.Background()
	k := []byte("k")
	if _, err := n.Put(ctx, k, []byte("value"), WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	dst := make([]byte, 0, 64)
	if a := testing.AllocsPerRun(100, func() { _, _, _ = n.Get(ctx, dst[:0], k, Quorum) }); a != 0 {
		t.Fatalf("Get allocates %v times a read", a)
	}
}

// TestNodeMethodBudget keeps Node a facade (issue 14): what a subsystem
// does is asked of the subsystem, through Local, AntiEntropy, Hints or
// Rebalancer, not repeated as one more Node method.
func TestNodeMethodBudget(t *testing.T) {
	const budget = 25
	typ := reflect.TypeFor[*Node]()
	if typ.NumMethod() > budget {
		var names []string
		for m := range typ.Methods() {
			names = append(names, m.Name)
		}
		t.Errorf("Node has %d exported methods, budget %d: %s", typ.NumMethod(), budget, strings.Join(names, " "))
	}
}
