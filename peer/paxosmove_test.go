package peer_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/ringkv/ringkv/memtable"
	"github.com/ringkv/ringkv/peer"
	"github.com/ringkv/ringkv/peer/kv"
	"github.com/ringkv/ringkv/peer/peertest"
)

// TestMovedRangeKeepsAcceptedProposal: a proposal accepted by a quorum of
// a key's old owners and never committed survives the key's move to a
// new owner. After the move, with the one old owner that both accepted it
// and still owns the key cut off, the new owners that answer are one that
// never saw the proposal and the new node: a serial read through them
// finishes the proposal and returns its value. Without the acceptor
// state in the range's stream, the read would return the older value and
// a later round could choose another.
func TestMovedRangeKeepsAcceptedProposal(t *testing.T) {
	c := peertest.NewCluster(t, peertest.Options{Nodes: 3, Replicas: 3})
	ctx := context.Background()
	const keys = 60
	for i := range keys {
		k := key(i)
		v, err := c.Nodes[0].Put(ctx, k, []byte("old"), peer.WriteOptions{})
		if err != nil {
			t.Fatal(err)
		}
		// Accepted at every old owner but c.IDs[i%3], and committed nowhere.
		b := peer.Ballot{TS: v.TS + 1000, Node: 99}
		rec := memtable.Record{Version: memtable.Version{TS: b.TS, Node: b.Node}, Value: fmt.Appendf(nil, "accepted-%d", i)}
		for j := range 3 {
			if j == i%3 {
				continue
			}
			l := c.Nodes[j].Local()
			if rep, err := l.Paxos(peer.PaxosRequest{Kind: peer.PaxosPrepare, Key: k, Ballot: b}); err != nil || !rep.OK {
				t.Fatalf("prepare of %s at %s: %+v, %v", k, c.IDs[j], rep, err)
			}
			if rep, err := l.Paxos(peer.PaxosRequest{Kind: peer.PaxosPropose, Key: k, Ballot: b, Record: rec.Append(nil)}); err != nil || !rep.OK {
				t.Fatalf("proposal of %s at %s: %+v, %v", k, c.IDs[j], rep, err)
			}
		}
	}
	n4 := c.AddNode()
	c.WaitSettled(20 * time.Second)

	// A key n4 now owns, whose old owner out of its owners was one that
	// accepted: the two old owners left are one that accepted (cut off
	// below) and the one that did not.
	r := c.Nodes[0].View().Ring
	pick, skip, other := -1, -1, -1
	for i := range keys {
		owners := r.KeyOwners(key(i))
		if !slices.Contains(owners, c.IDs[n4]) || !slices.Contains(owners, c.IDs[i%3]) {
			continue
		}
		pick, skip = i, i%3
		for j := range 3 {
			if j != skip && slices.Contains(owners, c.IDs[j]) {
				other = j
			}
		}
		break
	}
	if pick < 0 {
		t.Fatal("no key moved to n4 away from an owner that accepted: the test proves nothing")
	}
	k := key(pick)
	// The new owner holds the accepted proposal as its own.
	probe := peer.Ballot{TS: 1, Node: 1} // below every promise: refused, and says what is promised
	if rep, err := c.Nodes[n4].Local().Paxos(peer.PaxosRequest{Kind: peer.PaxosPrepare, Key: k, Ballot: probe}); err != nil || rep.OK || rep.Promised.Node != 99 {
		t.Fatalf("the new owner's answer to a low prepare of %s: %+v, %v; want a refusal naming the moved promise", k, rep, err)
	}
	c.Net.Isolate(c.Addrs[other])
	defer c.Net.Heal()
	val, _, err := c.Nodes[skip].Get(ctx, nil, k, kv.Serial)
	if want := fmt.Sprintf("accepted-%d", pick); err != nil || string(val) != want {
		t.Fatalf("serial read of %s via %s and %s: %q, %v; want %q (the proposal accepted before the move)", k, c.IDs[skip], c.IDs[n4], val, err, want)
	}
	// Finished, it is committed: a quorum read sees it too.
	c.Net.Heal()
	if got, err := get(t, c.Nodes[n4], k, peer.Quorum); err != nil || got != fmt.Sprintf("accepted-%d", pick) {
		t.Fatalf("quorum read of %s after the serial read: %q, %v", k, got, err)
	}
}
