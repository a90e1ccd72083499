package peer_test

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/ringkv/ringkv/peer"
	"github.com/ringkv/ringkv/peer/kv"
	"github.com/ringkv/ringkv/peer/peertest"
)

// syncFS counts the syncs of write-ahead log files: one a durable commit.
type syncFS struct {
	vfs.FS
	syncs *atomic.Int64
}

func (fs syncFS) Create(name string, cat vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, cat)
	return fs.wrap(name, f), err
}

func (fs syncFS) ReuseForWrite(old, name string, cat vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(old, name, cat)
	return fs.wrap(name, f), err
}

func (fs syncFS) wrap(name string, f vfs.File) vfs.File {
	if f == nil || !strings.HasSuffix(name, ".log") {
		return f
	}
	return syncFile{File: f, syncs: fs.syncs}
}

type syncFile struct {
	vfs.File
	syncs *atomic.Int64
}

func (f syncFile) Sync() error     { f.syncs.Add(1); return f.File.Sync() }
func (f syncFile) SyncData() error { f.syncs.Add(1); return f.File.SyncData() }
func (f syncFile) SyncTo(n int64) (bool, error) {
	f.syncs.Add(1)
	return f.File.SyncTo(n)
}

// countSyncs restarts node i on a filesystem that counts its WAL syncs.
func countSyncs(c *peertest.Cluster, i int) *atomic.Int64 {
	n := &atomic.Int64{}
	c.FS[i] = syncFS{FS: c.FS[i], syncs: n}
	c.Restart(i)
	c.WaitSettled(10 * time.Second)
	return n
}

func puts(n int, prefix string, c kv.Consistency) []kv.BatchOp {
	ops := make([]kv.BatchOp, n)
	for i := range ops {
		ops[i] = kv.BatchOp{Kind: kv.BatchPut, Key: fmt.Appendf(nil, "%s-%03d", prefix, i), Value: fmt.Appendf(nil, "v%d", i), Consistency: c}
	}
	return ops
}

func runBatch(t *testing.T, n *peer.Node, ops []kv.BatchOp) []kv.BatchResult {
	t.Helper()
	res := make([]kv.BatchResult, len(ops))
	if err := n.Batch(bg, ops, res); err != nil {
		t.Fatalf("batch: %v", err)
	}
	return res
}

// TestBatchSoloOneCommit: a single node stores a batch's writes in one
// durable commit, where single puts take one each, and every item is
// readable with the version its result names.
func TestBatchSoloOneCommit(t *testing.T) {
	c := peertest.NewCluster(t, peertest.Options{Nodes: 1})
	syncs := countSyncs(c, 0)
	n := c.Nodes[0]
	before := syncs.Load()
	for i := range 10 {
		if err := put(t, n, fmt.Sprint("single-", i), "v", peer.Quorum); err != nil {
			t.Fatal(err)
		}
	}
	single := syncs.Load() - before
	if single < 10 {
		t.Fatalf("10 single puts made %d WAL syncs; the counter misses them", single)
	}
	ops := puts(100, "b", kv.Quorum)
	before = syncs.Load()
	res := runBatch(t, n, ops)
	// One commit; Pebble's own background work (a WAL switch) may add a
	// sync, never one per item.
	if got := syncs.Load() - before; got > 2 {
		t.Errorf("a batch of 100 puts made %d WAL syncs, want 1", got)
	}
	for i, r := range res {
		if r.Err != nil || r.Version.IsZero() {
			t.Fatalf("item %d: %+v", i, r)
		}
		v, ver, err := n.Get(bg, nil, ops[i].Key, peer.Quorum)
		if err != nil || string(v) != string(ops[i].Value) || ver != r.Version {
			t.Fatalf("get %s = %q %v %v, want %q at %v", ops[i].Key, v, ver, err, ops[i].Value, r.Version)
		}
	}
}

// TestBatchGroupsPerReplica: a batch's writes to a 3-node cluster (every
// node owns every key) cost the coordinator one transport call per peer
// and one durable commit of its own.
func TestBatchGroupsPerReplica(t *testing.T) {
	c := peertest.NewCluster(t, peertest.Options{Nodes: 3, Replicas: 3})
	syncs := countSyncs(c, 0)
	c.MeasureClocks()
	ops := puts(100, "g", kv.All)
	applies, before := c.Net.Calls("apply"), syncs.Load()
	res := runBatch(t, c.Nodes[0], ops)
	if got := c.Net.Calls("apply") - applies; got != 2 {
		t.Errorf("a batch of 100 puts made %d apply calls, want 2 (one per peer)", got)
	}
	if got := syncs.Load() - before; got > 2 {
		t.Errorf("a batch of 100 puts made %d WAL syncs on its coordinator, want 1", got)
	}
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("item %d: %v", i, r.Err)
		}
		for j := range c.Nodes {
			if c.Local(j, ops[i].Key) == nil {
				t.Fatalf("%s lacks %s", c.IDs[j], ops[i].Key)
			}
		}
	}
}

// TestBatchMixed: one batch of puts, gets (found, absent), deletes,
// conditional writes (held and failed) and a serial read answers each
// item as the single-key call would.
func TestBatchMixed(t *testing.T) {
	c := peertest.NewCluster(t, peertest.Options{Nodes: 3})
	c.MeasureClocks()
	n := c.Nodes[0]
	va, err := n.Put(bg, []byte("a"), []byte("old-a"), peer.WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	vg, err := n.Put(bg, []byte("g"), []byte("got"), peer.WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := put(t, n, "d", "doomed", peer.Quorum); err != nil {
		t.Fatal(err)
	}
	if err := put(t, n, "e", "exists", peer.Quorum); err != nil {
		t.Fatal(err)
	}
	ops := []kv.BatchOp{
		{Kind: kv.BatchPut, Key: []byte("p"), Value: []byte("new")},
		{Kind: kv.BatchGet, Key: []byte("g"), Consistency: kv.All},
		{Kind: kv.BatchGet, Key: []byte("absent")},
		{Kind: kv.BatchDelete, Key: []byte("d")},
		{Kind: kv.BatchPut, Key: []byte("a"), Value: []byte("cas-a"), Condition: kv.Condition{Kind: kv.IfVersion, Version: va}},
		{Kind: kv.BatchPut, Key: []byte("e"), Value: []byte("x"), Condition: kv.Condition{Kind: kv.IfAbsent}},
		{Kind: kv.BatchDelete, Key: []byte("absent"), Condition: kv.Condition{Kind: kv.IfPresent}},
		{Kind: kv.BatchGet, Key: []byte("e"), Consistency: kv.Serial},
		{Kind: kv.BatchPut, Key: []byte("t"), Value: []byte("ttl"), TTL: time.Hour, Consistency: kv.One},
	}
	res := runBatch(t, n, ops)
	for _, i := range []int{0, 3, 4, 8} {
		if res[i].Err != nil || res[i].Version.IsZero() {
			t.Errorf("write %d: %+v, want applied with a version", i, res[i])
		}
	}
	if r := res[1]; r.Err != nil || string(r.Value) != "got" || r.Version != vg {
		t.Errorf("get g: %+v, want got at %v", r, vg)
	}
	if r := res[2]; !errors.Is(r.Err, kv.ErrNotFound) || r.Unprocessed {
		t.Errorf("get absent: %+v, want not found", r)
	}
	var ce *kv.ConditionError
	if r := res[5]; !errors.As(r.Err, &ce) || !ce.Exists || r.Unprocessed {
		t.Errorf("put e if absent: %+v, want a condition failed on a present key", r)
	}
	if r := res[6]; !errors.As(r.Err, &ce) || ce.Exists {
		t.Errorf("delete absent if present: %+v, want a condition failed on an absent key", r)
	}
	if r := res[7]; r.Err != nil || string(r.Value) != "exists" {
		t.Errorf("serial get e: %+v", r)
	}
	for k, want := range map[string]string{"p": "new", "a": "cas-a", "t": "ttl", "e": "exists"} {
		if got, err := get(t, c.Nodes[1], []byte(k), peer.All); err != nil || got != want {
			t.Errorf("get %s = %q, %v; want %q", k, got, err, want)
		}
	}
	if _, err := get(t, c.Nodes[2], []byte("d"), peer.All); !errors.Is(err, kv.ErrNotFound) {
		t.Errorf("deleted d reads %v", err)
	}
}

// TestBatchDownReplica: a replica that is down, or cut off, gets a hint
// for each of its items, the items that still have their consistency
// succeed, and those short of it come back unprocessed.
func TestBatchDownReplica(t *testing.T) {
	c := peertest.NewCluster(t, peertest.Options{Nodes: 3, Replicas: 3})
	c.MeasureClocks()
	c.MarkDown(2)
	ops := append(puts(10, "q", kv.Quorum), puts(5, "all", kv.All)...)
	res := runBatch(t, c.Nodes[0], ops)
	for i, r := range res {
		short := ops[i].Consistency == kv.All
		if short != (r.Err != nil) || short != r.Unprocessed {
			t.Errorf("item %d (%s): %+v", i, ops[i].Consistency, r)
		}
		if short && !errors.Is(r.Err, kv.ErrUnavailable) {
			t.Errorf("item %d: %v, want unavailable", i, r.Err)
		}
	}
	c.Settle()
	if got := c.HintsPending(); got != int64(len(ops)) {
		t.Errorf("%d hints pending, want %d (one per item for the down replica)", got, len(ops))
	}
	c.MarkUp(2)
	c.ReplayHints()
	for _, op := range ops {
		if c.Local(2, op.Key) == nil {
			t.Fatalf("after hints, %s lacks %s", c.IDs[2], op.Key)
		}
	}

	// Cut off, not known down: its call fails, and becomes hints too.
	c.Net.Cut(c.Addrs[0], c.Addrs[1])
	defer c.Net.Heal()
	ops = puts(10, "cut", kv.Quorum)
	for i, r := range runBatch(t, c.Nodes[0], ops) {
		if r.Err != nil {
			t.Fatalf("item %d with one replica cut off: %v", i, r.Err)
		}
	}
	c.Settle()
	if got := c.HintsPending(); got != int64(len(ops)) {
		t.Errorf("%d hints pending after the cut, want %d", got, len(ops))
	}
}

// TestBatchRefusedWhole: a batch with a malformed item, or too many
// items, is refused before anything of it is applied.
func TestBatchRefusedWhole(t *testing.T) {
	c := peertest.NewCluster(t, peertest.Options{Nodes: 1})
	n := c.Nodes[0]
	for name, ops := range map[string][]kv.BatchOp{
		"too many":     puts(kv.MaxBatchItems+1, "many", kv.Quorum),
		"serial write": append(puts(3, "serial", kv.Quorum), kv.BatchOp{Kind: kv.BatchPut, Key: []byte("s"), Consistency: kv.Serial}),
		"empty key":    append(puts(3, "empty", kv.Quorum), kv.BatchOp{Kind: kv.BatchDelete}),
	} {
		err := n.Batch(bg, ops, make([]kv.BatchResult, len(ops)))
		if !errors.Is(err, kv.ErrBadBatch) {
			t.Errorf("%s: %v, want a bad batch", name, err)
		}
		if _, err := get(t, n, ops[0].Key, peer.Quorum); !errors.Is(err, kv.ErrNotFound) {
			t.Errorf("%s: its first item was written (%v)", name, err)
		}
	}
}
