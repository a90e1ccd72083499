package peer_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ringkv/ringkv/peer"
	"github.com/ringkv/ringkv/peer/kv"
	"github.com/ringkv/ringkv/peer/peertest"
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
