package peer_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ringkv/ringkv/peer"
	"github.com/ringkv/ringkv/peer/peertest"
	"github.com/ringkv/ringkv/peer/peertest/wait"
	"github.com/ringkv/ringkv/ring"
)

func waitSettled(t *testing.T, c *peertest.Cluster, within time.Duration) {
	t.Helper()
	c.WaitSettled(within)
}

// TestJoinPullsRanges: a node that joins a loaded cluster pulls the ranges
// the new ring gives it from their old owners, while writes go on: it
// ends up holding the newest record of every key it now owns that was
// written before the join, nothing is lost, and every acknowledged write
// stays readable at quorum through the ring change.
func TestJoinPullsRanges(t *testing.T) {
	c := peertest.NewCluster(t, peertest.Options{Nodes: 3, Replicas: 2})
	waitSettled(t, c, 10*time.Second)
	const before = 600
	acked := map[string]string{}
	for i := range before {
		k, v := string(key(i)), fmt.Sprint("v", i)
		if err := put(t, c.Nodes[i%3], k, v, peer.Quorum); err != nil {
			t.Fatalf("put %s: %v", k, err)
		}
		acked[k] = v
	}
	c.Settle()

	// Writes keep coming while the fourth node joins and pulls.
	var mu sync.Mutex
	stop := make(chan struct{})
	old := slices.Clone(c.Nodes) // AddNode grows c.Nodes
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			k, v := string(key(i%before)), fmt.Sprint("during-", i)
			if put(t, old[i%3], k, v, peer.Quorum) == nil {
				mu.Lock()
				acked[k] = v
				mu.Unlock()
			}
		}
	})
	n4 := c.AddNode()
	waitSettled(t, c, 20*time.Second)
	close(stop)
	wg.Wait()
	c.Settle()

	ring := c.Nodes[0].View().Ring
	owned := 0
	for i := range before {
		k := key(i)
		if !slices.Contains(ring.KeyOwners(k), c.IDs[n4]) {
			if c.Local(n4, k) != nil {
				// Not wrong, but a sign the diff pulled the wrong ranges.
				t.Errorf("%s holds %s, which it does not own", c.IDs[n4], k)
			}
			continue
		}
		owned++
		if c.Local(n4, k) == nil {
			t.Errorf("%s owns %s but does not hold it after settling", c.IDs[n4], k)
		}
	}
	if owned == 0 {
		t.Fatal("the new node owns none of the keys: the test proves nothing")
	}
	for k, want := range acked {
		for j := range c.Nodes {
			if got, err := get(t, c.Nodes[j], []byte(k), peer.Quorum); err != nil || got != want {
				t.Fatalf("get %s via %s at quorum = %q, %v; want %q", k, c.IDs[j], got, err, want)
			}
		}
	}
	if tr := c.Nodes[n4].Rebalancer().Transfers(); len(tr) != 0 {
		t.Errorf("transfers after settling: %+v", tr)
	}
	if st := c.Nodes[n4].ClusterStatus(); len(st.Transfers) != 0 {
		t.Errorf("cluster status lists transfers after settling: %+v", st.Transfers)
	}
	t.Logf("%s owns %d of %d keys written before it joined, and holds them all", c.IDs[n4], owned, before)
}

// TestJoinWaitsForDonors: with its donors cut off, a joining node pulls
// nothing, says so in its transfers, and settles once they are back.
func TestJoinWaitsForDonors(t *testing.T) {
	c := peertest.NewCluster(t, peertest.Options{Nodes: 3, Replicas: 3})
	waitSettled(t, c, 10*time.Second)
	for i := range 200 {
		if err := put(t, c.Nodes[i%3], string(key(i)), "v", peer.All); err != nil {
			t.Fatal(err)
		}
	}
	c.Settle()
	n4Addr := fmt.Sprintf("mem-%d:80", 4)
	c.Net.Isolate(n4Addr)
	n4 := c.AddNode()
	wait.For(t, time.Minute, func() bool {
		tr := c.Nodes[n4].Rebalancer().Transfers()
		return len(tr) == 1 && tr[0].LastError != "" && tr[0].To == c.IDs[n4]
	}, "n4 to show its failed transfer while cut off")
	if c.Nodes[n4].Rebalancer().Settled() {
		t.Fatal("settled without its donors")
	}
	c.Net.Heal()
	waitSettled(t, c, 30*time.Second)
	for i := range 200 {
		if slices.Contains(c.Nodes[n4].View().Ring.KeyOwners(key(i)), c.IDs[n4]) && !bytes.Contains(c.Local(n4, key(i)), []byte("v")) {
			t.Fatalf("%s lacks %s after its donors came back", c.IDs[n4], key(i))
		}
	}
}

// TestReadsDuringMove: while a joining node slowly pulls its ranges,
// every acknowledged key stays readable at quorum through every node, the
// newcomer included: a new owner that has not pulled a key's range yet
// answers ErrRangePending, and the coordinator reads from the owner it
// displaced instead. No read finds nothing.
func TestReadsDuringMove(t *testing.T) {
	c := peertest.NewCluster(t, peertest.Options{Nodes: 3, Replicas: 2, TransferRate: 256 << 10})
	const keys = 2000
	for i := range keys {
		if err := put(t, c.Nodes[i%3], string(key(i)), fmt.Sprint("v", i), peer.Quorum); err != nil {
			t.Fatal(err)
		}
	}
	c.Settle()
	n4 := c.AddNode()
	if c.Nodes[n4].Rebalancer().Settled() {
		t.Fatal("the new node settled at once: nothing to test")
	}
	reads, during := 0, 0
	for round := 0; !c.Nodes[n4].Rebalancer().Settled(); round++ {
		for i := round % 7; i < keys; i += 7 {
			via := c.Nodes[(i+round)%4]
			if got, err := get(t, via, key(i), peer.Quorum); err != nil || got != fmt.Sprint("v", i) {
				t.Fatalf("round %d: get %s at quorum = %q, %v during the move (transfers %+v)", round, key(i), got, err, c.Nodes[n4].Rebalancer().Transfers())
			}
			reads++
		}
		during++
		if during > 10000 {
			t.Fatal("the move never ended")
		}
	}
	if during < 2 {
		t.Logf("the move ended after %d rounds; the test saw little of it", during)
	}
	t.Logf("%d reads in %d rounds during the move, all found", reads, during)
	waitSettled(t, c, 30*time.Second)
}

// TestLeaveHandsOver: a node that leaves a loaded cluster goes only once
// the remaining nodes hold the ranges it gave up; then, with it gone,
// every acknowledged write is readable at quorum, and each key's new
// owners hold it themselves. Reads during the handover find every key.
func TestLeaveHandsOver(t *testing.T) {
	c := peertest.NewCluster(t, peertest.Options{Nodes: 4, Replicas: 2, TransferRate: 512 << 10})
	const keys = 1500
	for i := range keys {
		if err := put(t, c.Nodes[i%4], string(key(i)), fmt.Sprint("v", i), peer.Quorum); err != nil {
			t.Fatal(err)
		}
	}
	c.Settle()
	const l = 3
	done := make(chan error, 1)
	go func() { done <- c.Nodes[l].Rebalancer().Leave(bg) }()
	reads := 0
	for left := false; !left; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Leave: %v", err)
			}
			left = true
		default:
			for i := reads % 5; i < keys; i += 5 {
				if got, err := get(t, c.Nodes[i%3], key(i), peer.Quorum); err != nil || got != fmt.Sprint("v", i) {
					t.Fatalf("get %s during the handover = %q, %v", key(i), got, err)
				}
			}
			reads++
		}
	}
	if st := c.Nodes[l].ClusterStatus(); st.Leave != "left" {
		t.Errorf("leave status %q, want left", st.Leave)
	}
	c.Net.Isolate(c.Addrs[l]) // gone
	ring := c.Nodes[0].View().Ring
	if ring.Has(c.IDs[l]) {
		t.Fatal("the node that left is still in the ring")
	}
	for i := range keys {
		for _, id := range ring.KeyOwners(key(i)) {
			if c.Local(c.Index(id), key(i)) == nil {
				t.Fatalf("%s owns %s after the leave but does not hold it", id, key(i))
			}
		}
		if got, err := get(t, c.Nodes[i%3], key(i), peer.All); err != nil || got != fmt.Sprint("v", i) {
			t.Fatalf("get %s at all after the leave = %q, %v", key(i), got, err)
		}
	}
	t.Logf("%d read rounds during the handover", reads)
}

// TestReadsWhileRingGrows: a node joining a ring smaller than N (one
// node, N=2) owns every key with the old node; until it has pulled them,
// quorum reads are answered by the old node alone, and find every key.
func TestReadsWhileRingGrows(t *testing.T) {
	c := peertest.NewCluster(t, peertest.Options{Nodes: 1, Replicas: 2, TransferRate: 128 << 10})
	const keys = 1000
	for i := range keys {
		if err := put(t, c.Nodes[0], string(key(i)), fmt.Sprint("v", i), peer.Quorum); err != nil {
			t.Fatal(err)
		}
	}
	n2 := c.AddNode()
	if c.Nodes[n2].Rebalancer().Settled() {
		t.Fatal("settled at once: nothing to test")
	}
	rounds := 0
	for ; !c.Nodes[n2].Rebalancer().Settled(); rounds++ {
		for i := rounds % 5; i < keys; i += 5 {
			for j := range 2 {
				if got, err := get(t, c.Nodes[j], key(i), peer.Quorum); err != nil || got != fmt.Sprint("v", i) {
					t.Fatalf("round %d: get %s via %s = %q, %v", rounds, key(i), c.IDs[j], got, err)
				}
			}
		}
	}
	t.Logf("%d read rounds during the move", rounds)
}

// TestJoinDropsGivenAwayRanges: once every node holds its ranges of the
// grown ring, the old owners delete the ranges they gave away (one range
// deletion each), and keep every key they still own.
func TestJoinDropsGivenAwayRanges(t *testing.T) {
	c := peertest.NewCluster(t, peertest.Options{Nodes: 3, Replicas: 2})
	const keys = 900
	for i := range keys {
		if err := put(t, c.Nodes[i%3], string(key(i)), fmt.Sprint("v", i), peer.Quorum); err != nil {
			t.Fatal(err)
		}
	}
	c.Settle()
	c.AddNode()
	waitSettled(t, c, 20*time.Second)
	ring := c.Nodes[0].View().Ring
	wait.For(t, time.Minute, func() bool {
		stale, missing := 0, 0
		for i := range keys {
			owners := ring.KeyOwners(key(i))
			for j := range c.Nodes {
				has, owns := c.Local(j, key(i)) != nil, slices.Contains(owners, c.IDs[j])
				switch {
				case has && !owns:
					stale++
				case owns && !has:
					missing++
				}
			}
		}
		if missing > 0 {
			t.Fatalf("%d owned copies missing", missing)
		}
		return stale == 0
	}, "every copy of a given-away range dropped")
	for i := range keys {
		if got, err := get(t, c.Nodes[i%4], key(i), peer.All); err != nil || got != fmt.Sprint("v", i) {
			t.Fatalf("get %s at all = %q, %v", key(i), got, err)
		}
	}
}

// TestPendingOwnerWritesCount: a new owner still pulling a range may hold
// the newest write of a key (one the old owner missed). A quorum read that
// has to lean on the old owner alone still returns that write: the new
// owner's partial copy counts.
func TestPendingOwnerWritesCount(t *testing.T) {
	c := peertest.NewCluster(t, peertest.Options{Nodes: 1, Replicas: 2})
	for i := range 100 {
		if err := put(t, c.Nodes[0], string(key(i)), "old", peer.Quorum); err != nil {
			t.Fatal(err)
		}
	}
	c.Net.Cut(fmt.Sprintf("mem-%d:80", 2), c.Addrs[0]) // node 2 can neither pull nor replicate
	n2 := c.AddNode()
	// Its clock compared, as gossip does though the internode calls are cut:
	// an unchecked clock's own copy would wait for a replica's acceptance.
	c.MeasureClocks()
	if err := put(t, c.Nodes[n2], string(key(7)), "newest", peer.One); err != nil {
		t.Fatal(err)
	}
	if c.Nodes[n2].Rebalancer().Settled() {
		t.Fatal("node 2 settled without pulling: the test proves nothing")
	}
	if got, err := get(t, c.Nodes[0], key(7), peer.Quorum); err != nil || got != "newest" {
		t.Fatalf("quorum read via the old owner during the move = %q, %v; want the write only the new owner has", got, err)
	}
}

// TestLeaveShrinkingBelowN: with N=3 on three nodes every node holds every
// key; when one leaves, the other two already hold all of its ranges, so
// the leave ends without moving data, and they give nothing away.
func TestLeaveShrinkingBelowN(t *testing.T) {
	c := peertest.NewCluster(t, peertest.Options{Nodes: 3, Replicas: 3})
	for i := range 200 {
		if err := put(t, c.Nodes[i%3], string(key(i)), fmt.Sprint("v", i), peer.All); err != nil {
			t.Fatal(err)
		}
	}
	c.Settle()
	if err := c.Nodes[2].Rebalancer().Leave(bg); err != nil {
		t.Fatal(err)
	}
	c.Net.Isolate(c.Addrs[2])
	for j := range 2 {
		if tr := c.Nodes[j].Rebalancer().Transfers(); len(tr) != 0 {
			t.Errorf("%s moved data: %+v", c.IDs[j], tr)
		}
	}
	for i := range 200 {
		for j := range 2 {
			if c.Local(j, key(i)) == nil {
				t.Fatalf("%s lost %s", c.IDs[j], key(i))
			}
		}
		if got, err := get(t, c.Nodes[i%2], key(i), peer.All); err != nil || got != fmt.Sprint("v", i) {
			t.Fatalf("get %s at all = %q, %v", key(i), got, err)
		}
	}
}

// TestAbandonedDropDoesNotResurrect: the founders give ranges to n4, but
// the ring grows again (n5) before n4 holds them, so their drop is
// abandoned. At the next settle each founder drops every range it no
// longer owns, not only those that move then: a copy kept past its drop
// misses the deletes made while others own the range, and once their
// tombstones are collected, a ring change that gives the range back would
// merge the deleted values in again. The test deletes keys while n4 and n5
// own them, collects the tombstones everywhere, lets both nodes leave, and
// reads the keys back from the founders.
func TestAbandonedDropDoesNotResurrect(t *testing.T) {
	c := peertest.NewCluster(t, peertest.Options{Nodes: 3, Replicas: 2, TombstoneGrace: time.Nanosecond})
	const keys = 600
	for i := range keys {
		if err := put(t, c.Nodes[i%3], string(key(i)), fmt.Sprint("v", i), peer.All); err != nil {
			t.Fatal(err)
		}
	}
	c.Settle()
	r0 := c.Nodes[0].View().Ring

	c.Net.Isolate(fmt.Sprintf("mem-%d:80", 4)) // n4 cannot pull: nobody may drop
	n4 := c.AddNode()
	wait.For(t, time.Minute, func() bool {
		return c.Nodes[0].Rebalancer().Settled() && c.Nodes[1].Rebalancer().Settled() && c.Nodes[2].Rebalancer().Settled()
	}, "the founders to settle on the ring with n4")
	n5 := c.AddNode()
	c.Net.Heal()
	waitSettled(t, c, 20*time.Second)

	// Every copy of a range its holder does not own is dropped.
	r2 := c.Nodes[0].View().Ring
	wait.For(t, time.Minute, func() bool {
		for i := range keys {
			owners := r2.KeyOwners(key(i))
			for j := range c.Nodes {
				if c.Local(j, key(i)) != nil && !slices.Contains(owners, c.IDs[j]) {
					return false
				}
			}
		}
		return true
	}, "every copy of a range its holder does not own dropped")

	// Delete the keys a founder owned before n4 and n5 joined and does
	// not own now: it owns them again once they leave.
	var doomed [][]byte
	for i := range keys {
		owners := r2.KeyOwners(key(i))
		for _, id := range r0.KeyOwners(key(i)) {
			if !slices.Contains(owners, id) {
				doomed = append(doomed, key(i))
				break
			}
		}
	}
	if len(doomed) == 0 {
		t.Fatal("no key changes owner: the test proves nothing")
	}
	for _, k := range doomed {
		if _, err := c.Nodes[0].Delete(bg, k, peer.WriteOptions{Consistency: peer.All}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(time.Millisecond) // past the 1ns grace
	// Collect the tombstones everywhere: the second pass of every node
	// starts after the deletes. (Rounds repeat while a founder has yet
	// to record its drop, which holds the horizon.)
	var dropped int64
	wait.For(t, time.Minute, func() bool {
		antiEntropyAll(t, c)
		antiEntropyAll(t, c)
		dropped += collectAll(t, c)
		return dropped >= int64(2*len(doomed))
	}, fmt.Sprintf("the tombstones of the %d deleted keys collected at N=2 (else the test proves nothing)", len(doomed)))

	for _, l := range []int{n5, n4} {
		if err := c.Nodes[l].Rebalancer().Leave(bg); err != nil {
			t.Fatalf("%s leave: %v", c.IDs[l], err)
		}
		c.Net.Isolate(c.Addrs[l]) // gone
	}
	waitSettled(t, c, 20*time.Second)
	for _, k := range doomed {
		for j := range 3 {
			if got, err := get(t, c.Nodes[j], k, peer.All); !errors.Is(err, peer.ErrNotFound) {
				t.Fatalf("deleted %s reads %q, %v via %s after the ring gave it back", k, got, err, c.IDs[j])
			}
		}
	}
	t.Logf("%d deleted keys stay deleted", len(doomed))
}

// TestPendingNodeServesNoSpan: a node still pulling a range refuses to
// stream it to another puller (its partial copy must not count as an old
// owner's), and serves it once it holds it.
func TestPendingNodeServesNoSpan(t *testing.T) {
	c := peertest.NewCluster(t, peertest.Options{Nodes: 1, Replicas: 2})
	for i := range 100 {
		if err := put(t, c.Nodes[0], string(key(i)), "v", peer.Quorum); err != nil {
			t.Fatal(err)
		}
	}
	c.Net.Isolate(fmt.Sprintf("mem-%d:80", 2)) // n2 cannot pull yet
	n2 := c.AddNode()
	if err := c.Nodes[n2].Local().ServeSpan(bg, 0, 0, io.Discard); !errors.Is(err, peer.ErrRangePending) {
		t.Fatalf("a pending node served its whole span: %v", err)
	}
	if err := c.Nodes[n2].Local().ServeSpan(bg, 1<<63, 1<<63+1, io.Discard); !errors.Is(err, peer.ErrRangePending) {
		t.Fatalf("a pending node served a one-token span: %v", err)
	}
	c.Net.Heal()
	waitSettled(t, c, 20*time.Second)
	var b bytes.Buffer
	if err := c.Nodes[n2].Local().ServeSpan(bg, 0, 0, &b); err != nil || b.Len() == 0 {
		t.Fatalf("settled node's span: %d bytes, %v", b.Len(), err)
	}
}

// TestPendingOwnersNewerWriteWins: a quorum read that the old owners
// answer still returns a newer write that only a new owner, still pulling
// the key's range, holds: its partial copy does not count toward the
// quorum, but the newest record in it wins.
func TestPendingOwnersNewerWriteWins(t *testing.T) {
	c := peertest.NewCluster(t, peertest.Options{Nodes: 3, Replicas: 2})
	for i := range 300 {
		if err := put(t, c.Nodes[i%3], string(key(i)), "old", peer.All); err != nil {
			t.Fatal(err)
		}
	}
	c.Settle()
	n4Addr := fmt.Sprintf("mem-%d:80", 4)
	for _, a := range c.Addrs {
		c.Net.Cut(n4Addr, a) // n4 cannot pull (nor replicate); it answers reads
	}
	n4 := c.AddNode()
	// Its clock compared, as gossip does though the internode calls are cut:
	// an unchecked clock's own copy would wait for a replica's acceptance.
	c.MeasureClocks()
	r := c.Nodes[0].View().Ring
	var k []byte
	other := -1
	for i := range 300 {
		if owners := r.KeyOwners(key(i)); slices.Contains(owners, c.IDs[n4]) {
			k = key(i)
			for _, id := range owners {
				if id != c.IDs[n4] {
					other = c.Index(id)
				}
			}
			break
		}
	}
	if other < 0 {
		t.Fatal("n4 owns none of the keys: the test proves nothing")
	}
	if err := put(t, c.Nodes[n4], string(k), "newest", peer.One); err != nil {
		t.Fatalf("write via the pending owner at one: %v", err)
	}
	if c.Nodes[n4].Rebalancer().Settled() {
		t.Fatal("n4 settled without pulling: the test proves nothing")
	}
	if got, err := get(t, c.Nodes[other], k, peer.Quorum); err != nil || got != "newest" {
		t.Fatalf("quorum read of %s via %s = %q, %v; want the write only the pending owner holds", k, c.IDs[other], got, err)
	}
}

// TestReadDuringLeaveAsksTheOldOwners: while a node leaves, a new owner of
// one of its ranges that is still pulling names the range's old owners,
// and a quorum read asks exactly those. With one old owner down (N−W
// failures) the read returns the last acknowledged write, which only the
// leaving node and that down owner hold; asking the next nodes on the
// ring instead (which never held the key) made a quorum of stale answers.
func TestReadDuringLeaveAsksTheOldOwners(t *testing.T) {
	c := peertest.NewCluster(t, peertest.Options{Nodes: 6, Replicas: 3})
	const l = 5
	before := c.Nodes[0].View().Ring
	after := ring.New(slices.Delete(slices.Clone(c.IDs), l, l+1), 16, 3)
	var k []byte
	x, y, q := -1, -1, -1
	for i := 0; i < 2000 && k == nil; i++ {
		o, nw := before.KeyOwners(key(i)), after.KeyOwners(key(i))
		if !slices.Contains(o, c.IDs[l]) {
			continue
		}
		k = key(i)
		for _, id := range nw {
			switch {
			case !slices.Contains(o, id):
				q = c.Index(id)
			case x < 0:
				x = c.Index(id)
			default:
				y = c.Index(id)
			}
		}
	}
	if k == nil || x < 0 || y < 0 || q < 0 {
		t.Fatal("no key of the leaving node moves to a new owner: the test proves nothing")
	}
	if err := put(t, c.Nodes[x], string(k), "v1", peer.All); err != nil {
		t.Fatal(err)
	}
	// v2 is acknowledged by a quorum, x and the leaving node; y misses it
	// (its hint waits).
	c.Net.Cut(c.Addrs[x], c.Addrs[y])
	if err := put(t, c.Nodes[x], string(k), "v2", peer.Quorum); err != nil {
		t.Fatal(err)
	}
	c.Settle()
	c.Net.Heal()
	for _, a := range c.Addrs {
		c.Net.Cut(c.Addrs[q], a) // q cannot pull: it stays pending
	}
	ctx, cancel := context.WithCancel(bg)
	done := make(chan error, 1)
	go func() { done <- c.Nodes[l].Rebalancer().Leave(ctx) }()
	defer func() { cancel(); <-done }()
	inOldRing := func() bool {
		return slices.ContainsFunc(c.Nodes, func(n *peer.Node) bool { return n.View().Ring.Has(c.IDs[l]) })
	}
	wait.For(t, time.Minute, func() bool { return !inOldRing() && !c.Nodes[q].Rebalancer().Settled() },
		"the leave to reach the ring and the new owner to start pulling")
	c.MarkDown(x)
	other := -1 // a coordinator that owns the key neither before nor after
	for i := range c.Nodes {
		if i != x && i != y && i != q && i != l {
			other = i
			break
		}
	}
	for _, via := range []int{y, other} {
		if got, err := get(t, c.Nodes[via], k, peer.Quorum); err != nil || got != "v2" {
			t.Fatalf("quorum read of %s via %s during the leave, %s down = %q, %v; want v2, acknowledged at quorum",
				k, c.IDs[via], c.IDs[x], got, err)
		}
	}
}

// TestFakeSettledMembersDropNothing: members that join and say they are
// settled, but hold nothing (they pulled nothing and swallow the writes
// sent to them), never make the real nodes drop the ranges they gave
// them: a donor checks the new owners' Merkle trees and records itself.
func TestFakeSettledMembersDropNothing(t *testing.T) {
	c := peertest.NewCluster(t, peertest.Options{Nodes: 3, Replicas: 2})
	const keys = 300
	for i := range keys {
		if err := put(t, c.Nodes[i%3], string(key(i)), fmt.Sprint("v", i), peer.All); err != nil {
			t.Fatal(err)
		}
	}
	c.Settle()
	held := map[int][]int{} // key: the real nodes holding it
	for i := range keys {
		for j := range 3 {
			if c.Local(j, key(i)) != nil {
				held[i] = append(held[i], j)
			}
		}
	}
	for f := range 3 {
		addr := fmt.Sprintf("mem-%d:80", 4+f) // AddNode's next addresses
		c.Net.Lie(addr, peertest.Lies{Settled: true, SwallowApplies: true})
		for j := range 3 {
			c.Net.Cut(addr, c.Addrs[j]) // its pulls fail: it holds nothing
		}
	}
	for range 3 {
		c.AddNode()
	}
	lost := func() []string {
		var out []string
		for i, js := range held {
			for _, j := range js {
				if c.Local(j, key(i)) == nil {
					out = append(out, fmt.Sprintf("%s on %s", key(i), c.IDs[j]))
				}
			}
		}
		return out
	}
	wait.For(t, 2*time.Minute, func() bool {
		if l := lost(); len(l) > 0 {
			t.Fatalf("%d copies dropped on a fake member's word: %v", len(l), l[:min(5, len(l))])
		}
		done := true
		for j := range 3 {
			done = done && c.Nodes[j].Rebalancer().DropsWithheld() >= 2
		}
		return done
	}, "the real nodes to check the fake members twice")
}

// TestLeaveWaitsForVerifiedCopies: a leaving node does not take itself
// out while a member that gains its ranges only says it holds them (it
// pulled nothing, and swallows what it is sent).
func TestLeaveWaitsForVerifiedCopies(t *testing.T) {
	c := peertest.NewCluster(t, peertest.Options{Nodes: 3, Replicas: 2})
	for i := range 300 {
		if err := put(t, c.Nodes[i%3], string(key(i)), fmt.Sprint("v", i), peer.All); err != nil {
			t.Fatal(err)
		}
	}
	c.Settle()
	const l, liar = 2, 1
	c.Net.Lie(c.Addrs[liar], peertest.Lies{Settled: true, SwallowApplies: true})
	for j := range 3 {
		if j != liar {
			c.Net.Cut(c.Addrs[liar], c.Addrs[j])
		}
	}
	if err := c.Nodes[l].StartLeave(); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 2*time.Minute, func() bool {
		if st := c.Nodes[l].ClusterStatus().Leave; st == "left" {
			t.Fatalf("the node left on a member's word")
		}
		return c.Nodes[l].Rebalancer().DropsWithheld() >= 3
	}, "the leaving node to check its successors")
	if st := c.Nodes[l].ClusterStatus(); st.Leave == "left" || !strings.Contains(st.Leave, c.IDs[liar]) {
		t.Fatalf("leave status %q, want it handing over, waiting for %s", st.Leave, c.IDs[liar])
	}
}

// TestPendingNodeTakesNoPaxos: a node still pulling a range takes no part
// in conditional writes of its keys (its copy may lack the latest
// commit), and does once it holds the range.
func TestPendingNodeTakesNoPaxos(t *testing.T) {
	c := peertest.NewCluster(t, peertest.Options{Nodes: 1, Replicas: 2})
	for i := range 100 {
		if err := put(t, c.Nodes[0], string(key(i)), "v", peer.Quorum); err != nil {
			t.Fatal(err)
		}
	}
	c.Net.Isolate(fmt.Sprintf("mem-%d:80", 2)) // n2 cannot pull yet
	n2 := c.AddNode()
	prepare := peer.PaxosRequest{Kind: peer.PaxosPrepare, Key: key(7), Ballot: peer.Ballot{TS: 1 << 50, Node: 9}}
	if _, err := c.Nodes[n2].Local().Paxos(prepare); !errors.Is(err, peer.ErrRangePending) {
		t.Fatalf("a pending node answered a prepare: %v", err)
	}
	c.Net.Heal()
	waitSettled(t, c, 20*time.Second)
	if rep, err := c.Nodes[n2].Local().Paxos(prepare); err != nil || !rep.OK || rep.Current == nil {
		t.Fatalf("a settled node's promise: %+v, %v; want one with the key's record", rep, err)
	}
}
