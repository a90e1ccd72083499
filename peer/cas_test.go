package peer_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/ringkv/ringkv/peer"
	"github.com/ringkv/ringkv/peer/kv"
	"github.com/ringkv/ringkv/peer/peertest"
	"github.com/ringkv/ringkv/peer/peertest/wait"
)

// TestConditionalWrites: If-None-Match *, If-Match * and If-Match V
// semantics through every node of a 3-node cluster, with the current
// version in a failed condition's error, and serial reads.
func TestConditionalWrites(t *testing.T) {
	c := peertest.NewCluster(t, peertest.Options{Nodes: 3, Replicas: 3})
	ctx := context.Background()
	n1, n2, n3 := c.Nodes[0], c.Nodes[1], c.Nodes[2]
	key := []byte("account")
	absent := peer.WriteOptions{Condition: kv.Condition{Kind: kv.IfAbsent}}

	v1, err := n1.Put(ctx, key, []byte("100"), absent)
	if err != nil {
		t.Fatalf("create if absent: %v", err)
	}
	_, err = n2.Put(ctx, key, []byte("again"), absent)
	var ce *kv.ConditionError
	if !errors.As(err, &ce) || !ce.Exists || ce.Current != v1 {
		t.Fatalf("a second create: %v, want a ConditionError naming %v", err, v1)
	}
	if _, err := n3.Put(ctx, key, []byte("x"), peer.WriteOptions{Condition: kv.Condition{Kind: kv.IfVersion, Version: kv.Version{TS: v1.TS - 1, Node: v1.Node}}}); !errors.Is(err, kv.ErrConditionFailed) {
		t.Fatalf("If-Match of a stale version: %v", err)
	}
	v2, err := n3.Put(ctx, key, []byte("90"), peer.WriteOptions{Condition: kv.Condition{Kind: kv.IfVersion, Version: v1}})
	if err != nil || !v1.Less(v2) {
		t.Fatalf("If-Match of the current version: %v, %v (after %v)", v2, err, v1)
	}
	// The write is there for plain and serial reads alike.
	for _, cons := range []kv.Consistency{kv.Quorum, kv.Serial} {
		val, v, err := n1.Get(ctx, nil, key, cons)
		if err != nil || string(val) != "90" || v != v2 {
			t.Fatalf("read at %s: %q %v %v", cons, val, v, err)
		}
	}
	// If-Match * on an absent key fails; a conditional delete, then a
	// create again.
	if _, err := n2.Put(ctx, []byte("nobody"), []byte("x"), peer.WriteOptions{Condition: kv.Condition{Kind: kv.IfPresent}}); !errors.As(err, &ce) || ce.Exists {
		t.Fatalf("If-Match * of an absent key: %v", err)
	}
	if _, err := n2.Delete(ctx, key, peer.WriteOptions{Condition: kv.Condition{Kind: kv.IfVersion, Version: v2}}); err != nil {
		t.Fatalf("conditional delete: %v", err)
	}
	if _, _, err := n3.Get(ctx, nil, key, kv.Serial); !errors.Is(err, kv.ErrNotFound) {
		t.Fatalf("serial read after the delete: %v", err)
	}
	if _, err := n3.Put(ctx, key, []byte("new"), absent); err != nil {
		t.Fatalf("create after the delete: %v", err)
	}
}

// TestCASCounter: concurrent read-modify-write increments of one counter
// through all three nodes, each retried on a failed condition: the final
// value counts every acknowledged increment and no more, but for those
// whose outcome was reported unknown (which may have been applied).
func TestCASCounter(t *testing.T) {
	c := peertest.NewCluster(t, peertest.Options{Nodes: 3, Replicas: 3})
	ctx := context.Background()
	key := []byte("counter")
	if _, err := c.Nodes[0].Put(ctx, key, []byte("0"), peer.WriteOptions{Condition: kv.Condition{Kind: kv.IfAbsent}}); err != nil {
		t.Fatal(err)
	}
	const workers, each = 6, 15
	var acked, conflicts, unknown atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		n := c.Nodes[w%3]
		wg.Go(func() {
			for done, tries := 0, 0; done < each; tries++ {
				if tries == 50*each {
					t.Errorf("%d increments of %d after %d tries", done, each, tries)
					return
				}
				val, v, err := n.Get(ctx, nil, key, kv.Serial)
				if errors.Is(err, kv.ErrUnavailable) {
					conflicts.Add(1) // contention beyond the retries
					continue
				}
				if err != nil {
					t.Errorf("serial read: %v", err)
					return
				}
				i, _ := strconv.Atoi(string(val))
				_, err = n.Put(ctx, key, []byte(strconv.Itoa(i+1)), peer.WriteOptions{Condition: kv.Condition{Kind: kv.IfVersion, Version: v}})
				switch {
				case err == nil:
					acked.Add(1)
					done++
				case errors.Is(err, kv.ErrConditionFailed):
					conflicts.Add(1)
				case errors.Is(err, kv.ErrOutcomeUnknown):
					// Applied or not: the count below allows both.
					unknown.Add(1)
				case errors.Is(err, kv.ErrUnavailable):
					// Contention beyond the retries: nothing applied.
					conflicts.Add(1)
				default:
					t.Errorf("increment: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	val, _, err := c.Nodes[1].Get(ctx, nil, key, kv.Serial)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := strconv.Atoi(string(val))
	if a, u := int(acked.Load()), int(unknown.Load()); got < a || got > a+u {
		t.Fatalf("counter = %d after %d acknowledged increments and %d of unknown outcome (%d conflicts)", got, a, u, conflicts.Load())
	}
	t.Logf("%d increments acknowledged, %d of unknown outcome, %d conflicts; counter %d", acked.Load(), unknown.Load(), conflicts.Load(), got)
}

// TestConditionalWriteFaults: a conditional write answers truthfully
// under the faults plain writes meet. A node whose clock is off from its
// peers coordinates none (503 naming the offset); a full replica is an
// owner that failed, outvoted by the two others; with every disk full
// the answer says so (507), and nothing is written.
func TestConditionalWriteFaults(t *testing.T) {
	ctx := context.Background()
	absent := peer.WriteOptions{Condition: kv.Condition{Kind: kv.IfAbsent}}

	skewed := peertest.NewCluster(t, peertest.Options{Nodes: 3, ClockOffsets: []time.Duration{2 * time.Second}})
	skewed.MeasureClocks()
	var ce *peer.ClockOffsetError
	if _, err := skewed.Nodes[0].Put(ctx, []byte("k"), []byte("v"), absent); !errors.Is(err, kv.ErrUnavailable) || !errors.As(err, &ce) {
		t.Fatalf("a conditional write through a node 2s ahead: %v, want unavailable naming the offset", err)
	}
	if _, err := skewed.Nodes[1].Put(ctx, []byte("k"), []byte("v"), absent); err != nil {
		t.Fatalf("through a node in sync: %v", err)
	}

	c := peertest.NewCluster(t, peertest.Options{Nodes: 3})
	fill := func(i int) {
		c.FS[i].(*vfs.MemFS).TestingSetDiskUsage(vfs.DiskUsage{AvailBytes: 1 << 20, TotalBytes: 1 << 30, UsedBytes: 1<<30 - 1<<20})
		wait.For(t, time.Minute, func() bool { return len(c.Nodes[i].Health()) != 0 }, "a node to measure its full disk")
	}
	fill(2)
	for i := range 3 {
		if _, err := c.Nodes[i].Put(ctx, []byte(fmt.Sprint("one-full-", i)), []byte("v"), absent); err != nil {
			t.Fatalf("through node %d with one full replica: %v", i, err)
		}
	}
	fill(0)
	fill(1)
	_, err := c.Nodes[0].Put(ctx, []byte("all-full"), []byte("v"), absent)
	if !errors.Is(err, kv.ErrDiskFull) || !errors.Is(err, kv.ErrUnavailable) {
		t.Fatalf("with every disk full: %v, want unavailable for a full disk", err)
	}
	for i := range 3 {
		if rec := c.Local(i, []byte("all-full")); rec != nil {
			t.Fatalf("node %d stored a refused conditional write", i)
		}
	}
}

// TestConditionalWriteOwnsItsKey: a conditional write returns once a
// quorum answered, while its messages to the slowest owner are still on
// their way; a caller that then reuses its key buffer (as the HTTP
// server does for the next request) must not change which key those
// messages name, or the slow owner stores the commit under another key.
func TestConditionalWriteOwnsItsKey(t *testing.T) {
	c := peertest.NewCluster(t, peertest.Options{Nodes: 3, Replicas: 3})
	ctx := context.Background()
	c.Net.Delay(c.Addrs[2], 300*time.Millisecond)
	buf := []byte("owned-key")
	if _, err := c.Nodes[0].Put(ctx, buf, []byte("v"), peer.WriteOptions{Condition: kv.Condition{Kind: kv.IfAbsent}}); err != nil {
		t.Fatal(err)
	}
	copy(buf, "reused-bf")
	wait.For(t, 10*time.Second, func() bool {
		return c.Local(2, []byte("owned-key")) != nil || c.Local(2, []byte("reused-bf")) != nil
	}, "the slow owner to take the commit")
	if c.Local(2, []byte("reused-bf")) != nil {
		t.Fatal("the slow owner stored the commit under the key the caller's buffer held after the call")
	}
}
