package peer_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/ringkv/ringkv/memtable"
	"github.com/ringkv/ringkv/peer"
	"github.com/ringkv/ringkv/peer/peertest"
)

// TestAntiEntropyHealsPartition: a node cut off during writes (whose hints
// are never replayed here) ends up with every record its peers have once
// anti-entropy runs after the partition heals: the Merkle roots of every
// range agree on all replicas and it holds every key it owns, deletes
// included, without any read touching them. Before the pass they differ.
func TestAntiEntropyHealsPartition(t *testing.T) {
	c := peertest.NewCluster(t, peertest.Options{Nodes: 3, Replicas: 3, AntiEntropyInterval: 50 * time.Millisecond})
	const cut = 2
	c.Net.Isolate(c.Addrs[cut])
	const keys = 400
	for i := range keys {
		if err := put(t, c.Nodes[i%2], string(key(i)), fmt.Sprint("v", i), peer.Quorum); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < keys; i += 10 {
		if _, err := c.Nodes[0].Delete(bg, key(i), peer.WriteOptions{Consistency: peer.Quorum}); err != nil {
			t.Fatal(err)
		}
	}
	c.Settle()
	ranges := c.Nodes[0].View().Ring.Ranges()
	roots := func() (differ int) {
		for _, or := range ranges {
			var first peer.MerkleNode
			for j, n := range c.Nodes {
				m, err := n.LocalMerkle(bg, or.Range, 4)
				if err != nil {
					t.Fatal(err)
				}
				if j == 0 {
					first = m.Root()
				} else if m.Root() != first {
					differ++
					break
				}
			}
		}
		return differ
	}
	if roots() == 0 {
		t.Fatal("replicas agree before the partition heals: the test proves nothing")
	}
	c.Net.Heal()
	deadline := time.Now().Add(20 * time.Second)
	for roots() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d ranges still differ 20s after the partition healed", roots())
		}
		time.Sleep(20 * time.Millisecond)
	}
	for i := range keys {
		b := c.Local(cut, key(i))
		if b == nil {
			t.Fatalf("%s lacks %s after anti-entropy", c.IDs[cut], key(i))
		}
		rec, err := memtable.Decode(b)
		if err != nil || rec.Tombstone != (i%10 == 0) || (!rec.Tombstone && string(rec.Value) != fmt.Sprint("v", i)) {
			t.Fatalf("%s holds %+v for %s after anti-entropy, %v", c.IDs[cut], rec, key(i), err)
		}
	}
	if c.HintsPending() == 0 {
		t.Error("no hints pending: they, not anti-entropy, may have repaired the node")
	}
}
