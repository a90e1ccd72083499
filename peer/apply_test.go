package peer_test

import (
	"errors"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/ringkv/ringkv/memtable"
	"github.com/ringkv/ringkv/peer"
	"github.com/ringkv/ringkv/peer/peertest"
	"github.com/ringkv/ringkv/ring"
)

// encRec returns an encoded record of value stamped ts.
func encRec(ts uint64, value string) []byte {
	r := memtable.Record{Version: memtable.Version{TS: ts, Node: 7}, Value: []byte(value)}
	return r.Append(nil)
}

// keyOwnedBy returns a key whose owners in c's ring do (owned) or do not
// include node i.
func keyOwnedBy(t *testing.T, c *peertest.Cluster, i int, owned bool) []byte {
	t.Helper()
	for k := range 10000 {
		kk := key(k)
		if slices.Contains(replicasOf(c, kk), i) == owned {
			return kk
		}
	}
	t.Fatal("no such key")
	return nil
}

// TestApplyRefusesKeysNotOwned: a replica refuses, whole and with
// ErrNotOwner, a batch holding a key it does not own, and stores nothing
// of it; keys it owns it takes. The coordinator sees the refusal.
func TestApplyRefusesKeysNotOwned(t *testing.T) {
	c := peertest.NewCluster(t, peertest.Options{Nodes: 4, Replicas: 2})
	const x = 0
	mine, other := keyOwnedBy(t, c, x, true), keyOwnedBy(t, c, x, false)
	ts := memtable.TimestampAt(time.Now())
	err := c.Nodes[x].Local().ApplyLocal([]peer.Mutation{{Key: mine, Record: encRec(ts, "mine")}, {Key: other, Record: encRec(ts, "not mine")}})
	if !errors.Is(err, peer.ErrNotOwner) {
		t.Fatalf("a batch with a key not owned: %v, want ErrNotOwner", err)
	}
	if c.Local(x, other) != nil || c.Local(x, mine) != nil {
		t.Fatal("part of a refused batch was stored")
	}
	if err := c.Nodes[x].Local().ApplyLocal([]peer.Mutation{{Key: mine, Record: encRec(ts, "mine")}}); err != nil {
		t.Fatalf("a key it owns: %v", err)
	}
	if c.Local(x, mine) == nil {
		t.Fatal("an owned key was not stored")
	}
}

// TestApplyGraceAfterRingChange: after a join takes a key from a node,
// the node still takes replica writes of it for a while (coordinators
// learn of the join at different moments), and the node that gained it
// takes them at once.
func TestApplyGraceAfterRingChange(t *testing.T) {
	c := peertest.NewCluster(t, peertest.Options{Nodes: 3, Replicas: 2})
	c.AddNode()
	waitSettled(t, c, 20*time.Second)
	// A key the new node took from one of the founders.
	var k []byte
	loser := -1
	for i := 0; i < 10000 && k == nil; i++ {
		owners := replicasOf(c, key(i))
		if !slices.Contains(owners, 3) {
			continue
		}
		for j := range 3 {
			if !slices.Contains(owners, j) {
				// j may have owned it before the join: check the ring
				// of the founders alone.
				old := ring.New(c.IDs[:3], 16, 2)
				if slices.Contains(old.KeyOwners(key(i)), c.IDs[j]) {
					k, loser = key(i), j
					break
				}
			}
		}
	}
	if k == nil {
		t.Fatal("the join took no key from a founder")
	}
	ts := memtable.TimestampAt(time.Now())
	if err := c.Nodes[loser].Local().ApplyLocal([]peer.Mutation{{Key: k, Record: encRec(ts, "late")}}); err != nil {
		t.Fatalf("a write of a key owned until just now: %v", err)
	}
	if err := c.Nodes[3].Local().ApplyLocal([]peer.Mutation{{Key: k, Record: encRec(ts, "new owner")}}); err != nil {
		t.Fatalf("the new owner: %v", err)
	}
}

// TestFarFutureRecordsSpreadNowhere: a record stamped 2^64-1 that one
// replica holds (written under its checks, as an attacker or a broken
// clock might have before) reaches no other replica: not by read repair,
// nor by hint replay, nor by anti-entropy.
func TestFarFutureRecordsSpreadNowhere(t *testing.T) {
	c := peertest.NewCluster(t, peertest.Options{Nodes: 3, Replicas: 3})
	k := key(1)
	bad, err := memtable.Decode(encRec(math.MaxUint64, "forever"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Engine(0).Write(k, &bad, true); err != nil {
		t.Fatal(err)
	}
	// Read repair: a read sees node 0's record as the newest and repairs
	// the others with it.
	for j := range 3 {
		get(t, c.Nodes[j], k, peer.All) //nolint:errcheck // only the repairs matter
	}
	c.Settle()
	// Hint replay: a hint carrying the record.
	if err := c.Nodes[1].Local().ApplyLocal([]peer.Mutation{{Key: k, Record: encRec(math.MaxUint64, "forever")}}); !errors.Is(err, peer.ErrClockOffset) {
		t.Fatalf("a replica write stamped 2^64-1: %v, want ErrClockOffset", err)
	}
	if err := c.Engine(0).AddHint(c.IDs[2], k, encRec(math.MaxUint64, "forever")); err != nil {
		t.Fatal(err)
	}
	good := key(2)
	if err := c.Engine(0).AddHint(c.IDs[2], good, encRec(memtable.TimestampAt(time.Now()), "fine")); err != nil {
		t.Fatal(err)
	}
	c.ReplayHints()
	// The hint from the future is dropped, not retried for ever ahead of
	// the others.
	if n := c.Nodes[0].Hints().Pending(); n != 0 || c.Local(2, good) == nil {
		t.Fatalf("%d hints left; the good one delivered: %v", n, c.Local(2, good) != nil)
	}
	// Anti-entropy: the other owners compare trees with node 0 and pull.
	for j := 1; j < 3; j++ {
		c.Nodes[j].AntiEntropy().Pass(bg) //nolint:errcheck // a refused pull is an incomplete pass
	}
	for j := 1; j < 3; j++ {
		if rec := c.Local(j, k); rec != nil {
			v, _ := memtable.DecodeVersion(rec)
			t.Errorf("%s holds a record stamped %d", c.IDs[j], v.TS)
		}
	}
}

// TestHintsForKeysNoLongerOwnedAreDropped: hints for a node of keys the
// ring no longer gives it are dropped, and do not hold up its other hints.
func TestHintsForKeysNoLongerOwnedAreDropped(t *testing.T) {
	c := peertest.NewCluster(t, peertest.Options{Nodes: 4, Replicas: 2})
	const target = 1
	owned, notOwned := keyOwnedBy(t, c, target, true), keyOwnedBy(t, c, target, false)
	ts := memtable.TimestampAt(time.Now())
	for _, k := range [][]byte{notOwned, owned} {
		if err := c.Engine(0).AddHint(c.IDs[target], k, encRec(ts, string(k))); err != nil {
			t.Fatal(err)
		}
	}
	c.ReplayHints()
	if n := c.Nodes[0].Hints().Pending(); n != 0 {
		t.Fatalf("%d hints left", n)
	}
	if c.Local(target, owned) == nil {
		t.Fatal("the hint of an owned key was not delivered")
	}
	if c.Local(target, notOwned) != nil {
		t.Fatal("the hint of a key not owned was stored")
	}
}
