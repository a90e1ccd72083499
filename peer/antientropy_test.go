package peer_test

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
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
	c := peertest.NewCluster(t, peertest.Options{Nodes: 3, Replicas: 3})
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
				m, err := n.Local().LocalMerkle(bg, or.Range, 4)
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
	// Passes driven by the test, bounded in number rather than time: on
	// a loaded machine the background loop's passes can take seconds each
	// (a 20s deadline on them once failed the suite). A pass on every node
	// must be enough; more would mean passes that fail to converge.
	for round := 0; roots() != 0; round++ {
		if round == 3 {
			t.Fatalf("%d ranges still differ after %d anti-entropy passes on every node since the partition healed", roots(), round)
		}
		for _, n := range c.Nodes {
			if err := n.AntiEntropy().Pass(bg); err != nil {
				t.Fatalf("anti-entropy pass after the heal: %v", err)
			}
		}
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

// antiEntropyAll runs one anti-entropy pass on every node.
func antiEntropyAll(t *testing.T, c *peertest.Cluster) {
	t.Helper()
	for _, n := range c.Nodes {
		if err := n.AntiEntropy().Pass(bg); err != nil {
			t.Fatal(err)
		}
	}
}

// collectAll updates every node's GC horizon, collects its garbage, and
// returns how many records were dropped in all.
func collectAll(t *testing.T, c *peertest.Cluster) (dropped int64) {
	t.Helper()
	for i := range c.Nodes {
		c.Nodes[i].AntiEntropy().UpdateHorizon(bg)
		st, err := c.Engine(i).CollectGarbage(bg)
		if err != nil {
			t.Fatal(err)
		}
		dropped += st.Dropped
	}
	return dropped
}

// TestTombstonesOutliveAPartition: a delete that a partitioned replica
// missed is not garbage-collected on the others, however old, until a
// complete anti-entropy pass on every replica has spread it; then it is
// dropped everywhere and the key stays deleted. Without the horizon the
// others would drop it, and anti-entropy would bring back the old value
// the partitioned replica still holds.
func TestTombstonesOutliveAPartition(t *testing.T) {
	c := peertest.NewCluster(t, peertest.Options{Nodes: 3, Replicas: 3, TombstoneGrace: time.Nanosecond})
	k := []byte("doomed")
	if err := put(t, c.Nodes[0], string(k), "old", peer.All); err != nil {
		t.Fatal(err)
	}
	antiEntropyAll(t, c) // every replica clean before the delete
	for _, n := range c.Nodes {
		n.AntiEntropy().UpdateHorizon(bg) // the horizon is now this pass: below the delete
	}
	if h := c.Nodes[0].AntiEntropy().GCHorizon(); h == 0 {
		t.Fatal("no horizon after a clean pass: the test proves nothing")
	}
	c.Net.Isolate(c.Addrs[2])
	if _, err := c.Nodes[0].Delete(bg, k, peer.WriteOptions{Consistency: peer.Quorum}); err != nil {
		t.Fatal(err)
	}
	c.Settle()
	time.Sleep(time.Millisecond) // past the 1ns grace: only the horizon holds the tombstone
	if d := collectAll(t, c); d != 0 {
		t.Fatalf("garbage collection dropped %d records while a replica lacks the delete", d)
	}
	c.Net.Heal()
	antiEntropyAll(t, c)
	antiEntropyAll(t, c) // every node's pass now starts after the delete
	if d := collectAll(t, c); d != 3 {
		t.Fatalf("dropped %d tombstones once every replica had the delete, want 3", d)
	}
	antiEntropyAll(t, c)
	for j := range c.Nodes {
		if b := c.Local(j, k); b != nil {
			t.Fatalf("%s holds %x after the tombstone was dropped everywhere", c.IDs[j], b)
		}
		if _, err := get(t, c.Nodes[j], k, peer.All); !errors.Is(err, peer.ErrNotFound) {
			t.Fatalf("the deleted key reads %v via %s", err, c.IDs[j])
		}
	}
}

// TestCleanPassSurvivesViewRefresh: gossip republishes the view every
// second with the same ring; a pass that spans such refreshes still counts
// as clean, or the GC horizon would never move and no tombstone would ever
// be collected.
func TestCleanPassSurvivesViewRefresh(t *testing.T) {
	c := peertest.NewCluster(t, peertest.Options{Nodes: 3, Replicas: 3})
	for i := range 200 {
		if err := put(t, c.Nodes[i%3], string(key(i)), "v", peer.All); err != nil {
			t.Fatal(err)
		}
	}
	stop, refreshed := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	var refreshes atomic.Int64
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Microsecond): // gossip does it every second
			}
			c.Nodes[0].SetView(c.View()) // same ring, new view
			refreshes.Add(1)
			if i == 10 {
				close(refreshed)
			}
		}
	})
	<-refreshed
	before := refreshes.Load()
	err := c.Nodes[0].AntiEntropy().Pass(bg)
	during := refreshes.Load() - before
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if during == 0 {
		t.Fatal("no view refresh during the pass: the test proves nothing")
	}
	if got := c.Nodes[0].ClusterStatus().AntiEntropyClean; got == 0 {
		t.Fatal("a complete pass under view refreshes was not recorded as clean")
	}
}
