package peer_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ringkv/ringkv/peer"
	"github.com/ringkv/ringkv/peer/peertest"
	"github.com/ringkv/ringkv/ring"
)

// TestClockMonitor: the verdicts a node draws from measured offsets.
func TestClockMonitor(t *testing.T) {
	base := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	now := base
	clock := func() time.Time { return now }
	type obs struct {
		peer string
		off  time.Duration // the peer's clock minus ours
		rtt  time.Duration
	}
	for _, tc := range []struct {
		name    string
		peers   []string
		obs     []obs
		later   time.Duration // time passes after the observations
		wantOff bool
		wantLag time.Duration
		// unverified: the clock was not compared recently with a majority
		// of the (reachable) peers.
		unverified bool
		// noClock: peers of a release that answers no clock comparison.
		noClock []string
	}{
		{name: "in sync", peers: []string{"a", "b"}, obs: []obs{{"a", time.Millisecond, 0}, {"b", -2 * time.Millisecond, 0}},
			wantLag: 2 * time.Millisecond},
		{name: "the round trip's error counts toward the lag", peers: []string{"a"}, obs: []obs{{"a", -2 * time.Millisecond, 4 * time.Millisecond}},
			wantLag: 4 * time.Millisecond},
		{name: "ahead of both peers by a second", peers: []string{"a", "b"}, obs: []obs{{"a", -time.Second, 0}, {"b", -time.Second, 0}},
			wantOff: true},
		{name: "behind both by five seconds", peers: []string{"a", "b"}, obs: []obs{{"a", 5 * time.Second, 0}, {"b", 5 * time.Second, 0}},
			wantOff: true},
		{name: "off from one of two is no majority", peers: []string{"a", "b"}, obs: []obs{{"a", time.Second, 0}, {"b", 0, 0}}},
		{name: "off from two of four is no majority", peers: []string{"a", "b", "c", "d"},
			obs: []obs{{"a", time.Second, 0}, {"b", time.Second, 0}, {"c", 0, 0}, {"d", 0, 0}}},
		{name: "off from three of four", peers: []string{"a", "b", "c", "d"},
			obs: []obs{{"a", time.Second, 0}, {"b", time.Second, 0}, {"c", time.Second, 0}, {"d", 0, 0}}, wantOff: true},
		{name: "within the bound once the probe's error is allowed for", peers: []string{"a"}, obs: []obs{{"a", 510 * time.Millisecond, 30 * time.Millisecond}},
			wantLag: -495 * time.Millisecond},
		{name: "stale measurements count for nothing", peers: []string{"a", "b"}, obs: []obs{{"a", -time.Second, 0}, {"b", -time.Second, 0}},
			later: time.Minute, unverified: true},
		{name: "one of two peers measured is no majority", peers: []string{"a", "b"}, obs: []obs{{"a", 0, 0}},
			unverified: true},
		{name: "two of three peers measured is", peers: []string{"a", "b", "c"}, obs: []obs{{"a", 0, 0}, {"b", 0, 0}}},
		{name: "peers that answer no clock comparison do not count", peers: []string{"a", "b", "c"}, obs: []obs{{"a", 0, 0}},
			noClock: []string{"b", "c"}},
		{name: "nor when none answers", peers: []string{"a", "b"}, noClock: []string{"a", "b"}},
		{name: "the sample with the shortest round trip counts", peers: []string{"a"},
			obs:     []obs{{"a", -time.Millisecond, 2 * time.Millisecond}, {"a", -30 * time.Millisecond, 80 * time.Millisecond}},
			wantLag: 2 * time.Millisecond},
		{name: "a peer off by more than the bound is left out of the lag", peers: []string{"a", "b"}, obs: []obs{{"a", -3 * time.Second, 0}, {"b", -10 * time.Millisecond, 0}},
			wantLag: 10 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now = base
			m := peer.NewClockMonitor(500*time.Millisecond, clock, nil)
			m.SetProbed()
			for _, o := range tc.obs {
				// The peer's clock read at half the round trip before now.
				m.Observe(o.peer, now.Add(-o.rtt/2).Add(o.off), o.rtt)
			}
			now = now.Add(tc.later)
			v := &peer.View{Ring: ring.New(append([]string{"me"}, tc.peers...), 8, 3), Members: map[string]peer.Member{}}
			for _, id := range tc.peers {
				v.Members[id] = peer.Member{ID: id, State: peer.Alive, NoClock: slices.Contains(tc.noClock, id)}
			}
			vd := m.Assess("me", v)
			if got := vd.Err != nil; got != tc.wantOff {
				t.Fatalf("Assess's Err = %v, want off=%v", vd.Err, tc.wantOff)
			}
			if vd.Err != nil && !errors.Is(vd.Err, peer.ErrClockOffset) {
				t.Fatalf("Assess's error %v is not ErrClockOffset", vd.Err)
			}
			if !tc.wantOff && tc.later == 0 && vd.Lag != tc.wantLag {
				t.Fatalf("Lag = %s, want %s", vd.Lag, tc.wantLag)
			}
			if vd.Verified == tc.unverified {
				t.Fatalf("Verified = %v, want %v", vd.Verified, !tc.unverified)
			}
		})
	}
}

// TestClockAheadIsRefused: a node whose clock is a second ahead has its
// writes refused by the replicas (their clocks are the majority's) and
// keeps no hint of them; once the offsets are measured it coordinates no
// writes at all, and says why. Writes through the other nodes go on.
func TestClockAheadIsRefused(t *testing.T) {
	c := peertest.NewCluster(t, peertest.Options{Nodes: 3, ClockOffsets: []time.Duration{time.Second}})
	fast, normal := c.Nodes[0], c.Nodes[1]
	// Nothing measures offsets on the fast node (with gossip something
	// always does, and it would refuse the write before any replica saw
	// it: TestUnverifiedClockRefusesWrites): the replicas refuse it.
	err := put(t, fast, "k", "from-the-future", peer.All)
	if !errors.Is(err, peer.ErrUnavailable) || !errors.Is(err, peer.ErrClockOffset) {
		t.Fatalf("put through the fast node: %v, want unavailable for clock offset", err)
	}
	c.Settle()
	for i := range 3 {
		if rec := c.Local(i, []byte("k")); rec != nil {
			t.Fatalf("%s stored a write every replica refused", c.IDs[i])
		}
	}
	if n := c.HintsPending(); n != 0 {
		t.Fatalf("%d hints kept for a refused write: replayed later, it would beat newer writes", n)
	}
	// Refusals alone make the fast node stop coordinating writes.
	err = put(t, fast, "k2", "v", peer.One)
	var ce *peer.ClockOffsetError
	if !errors.As(err, &ce) {
		t.Fatalf("put at one after refusals: %v, want a ClockOffsetError", err)
	}
	// And so do measurements.
	c.MeasureClocks()
	err = put(t, fast, "k3", "v", peer.One)
	if !errors.As(err, &ce) || ce.Offset > -900*time.Millisecond {
		t.Fatalf("put with measured offsets: %v, want about 1s ahead", err)
	}
	if st := fast.ClusterStatus(); st.ClockError == "" {
		t.Fatal("/v1/cluster of the fast node shows no clock error")
	}
	if h := fast.Health(); len(h) != 1 || h[0].Reason != "clock offset" {
		t.Fatalf("the fast node's health = %+v, want degraded for its clock offset", h)
	}
	if h := normal.Health(); len(h) != 0 {
		t.Fatalf("a node in sync is degraded: %+v", h)
	}
	if err := put(t, normal, "k", "v2", peer.All); err != nil {
		t.Fatalf("put through a node in sync: %v", err)
	}
	if got, err := get(t, normal, []byte("k"), peer.All); err != nil || got != "v2" {
		t.Fatalf("get = %q, %v", got, err)
	}
}

// TestClockBehindIsRefused: a node five seconds behind coordinates no
// writes once measured, and as a replica refuses the others' writes (they
// are more than the bound ahead of its clock): quorum writes go on
// through the two in sync, writes at all fail.
func TestClockBehindIsRefused(t *testing.T) {
	c := peertest.NewCluster(t, peertest.Options{Nodes: 3, ClockOffsets: []time.Duration{-5 * time.Second}})
	slow, normal := c.Nodes[0], c.Nodes[1]
	c.MeasureClocks()
	var ce *peer.ClockOffsetError
	if err := put(t, slow, "k", "v", peer.One); !errors.As(err, &ce) || ce.Offset < 4*time.Second {
		t.Fatalf("put through the slow node: %v, want about 5s behind", err)
	}
	// A quorum of the others still takes writes; the slow replica's share
	// becomes a hint.
	if err := put(t, normal, "k", "v", peer.Quorum); err != nil {
		t.Fatalf("put at quorum through a node in sync: %v", err)
	}
	if err := put(t, normal, "k", "v", peer.All); !errors.Is(err, peer.ErrUnavailable) {
		t.Fatalf("put at all with one replica refusing: %v", err)
	}
}

// TestSequentialWritesWithinTheBound: with clocks off by up to 450ms
// (within the 500ms bound) and the offsets measured, a write acknowledged
// after another wins, whichever nodes coordinated them: a put then a
// delete leaves the key deleted, a put then a put reads the second. The
// second write's coordinator is never an owner of the key, so nothing but
// the commit wait orders its timestamp after the first's.
func TestSequentialWritesWithinTheBound(t *testing.T) {
	const fast, slow = 0, 1
	c := peertest.NewCluster(t, peertest.Options{Nodes: 5, ClockOffsets: []time.Duration{250 * time.Millisecond, -200 * time.Millisecond}})
	c.MeasureClocks()
	pairs := 0
	for i := 0; pairs < 6 && i < 1000; i++ {
		k := fmt.Sprintf("pair-%d", i)
		owners := replicasOf(c, []byte(k))
		// The second writer: the slow node if it is no owner, else a
		// node in sync that is none.
		second := -1
		for _, j := range []int{slow, 2, 3, 4} {
			if !slices.Contains(owners, j) {
				second = j
				break
			}
		}
		first := fast
		if pairs%2 == 1 {
			// Also a node in sync first and the slow one second.
			if slices.Contains(owners, slow) {
				continue
			}
			second = slow
			first = -1
			for _, j := range []int{2, 3, 4} {
				if !slices.Contains(owners, j) {
					first = j
				}
			}
			if first < 0 {
				continue
			}
		}
		pairs++
		if err := put(t, c.Nodes[first], k, "first", peer.Quorum); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Nodes[second].Delete(bg, []byte(k), peer.WriteOptions{Consistency: peer.Quorum}); err != nil {
			t.Fatal(err)
		}
		if got, err := get(t, c.Nodes[2], []byte(k), peer.Quorum); !errors.Is(err, peer.ErrNotFound) {
			t.Fatalf("%s after a put through %s then a delete through %s: %q, %v; want not found", k, c.IDs[first], c.IDs[second], got, err)
		}
		if err := put(t, c.Nodes[first], k, "again", peer.Quorum); err != nil {
			t.Fatal(err)
		}
		if err := put(t, c.Nodes[second], k, "last", peer.Quorum); err != nil {
			t.Fatal(err)
		}
		if got, err := get(t, c.Nodes[2], []byte(k), peer.Quorum); err != nil || got != "last" {
			t.Fatalf("%s after a put through %s then one through %s: %q, %v; want last", k, c.IDs[first], c.IDs[second], got, err)
		}
	}
	if pairs < 6 {
		t.Fatalf("only %d keys fit the scenario", pairs)
	}
}

// TestUnverifiedClockRefusesWrites: a node that measures clocks but has
// not compared its own with a majority of its live peers (a one-way
// partition at start) coordinates no writes, however far its clock is
// behind, since the replicas could not tell its writes from old records;
// once compared, it does. Peers of a release that does not answer clock
// comparisons do not count.
func TestUnverifiedClockRefusesWrites(t *testing.T) {
	c := peertest.NewCluster(t, peertest.Options{Nodes: 3, ClockOffsets: []time.Duration{-5 * time.Second}, RequestTimeout: time.Second})
	slow := c.Nodes[0]
	c.Clocks(0).SetProbed() // gossip measures, but has heard no one yet
	err := put(t, slow, "k", "from-the-past", peer.Quorum)
	if !errors.Is(err, peer.ErrUnavailable) || !errors.Is(err, peer.ErrClockOffset) || !strings.Contains(err.Error(), "majority of its live peers") {
		t.Fatalf("put through a node whose clock was never compared: %v", err)
	}
	c.Settle()
	for i := range 3 {
		if rec := c.Local(i, []byte("k")); rec != nil {
			t.Fatalf("%s stored a write that was refused", c.IDs[i])
		}
	}
	c.MeasureClocks()
	var ce *peer.ClockOffsetError
	if err := put(t, slow, "k", "v", peer.Quorum); !errors.As(err, &ce) {
		t.Fatalf("put once measured 5s behind: %v, want a ClockOffsetError", err)
	}
	// A node within the bound, compared, writes.
	ok := peertest.NewCluster(t, peertest.Options{Nodes: 3, RequestTimeout: time.Second})
	ok.MeasureClocks()
	if err := put(t, ok.Nodes[0], "k", "v", peer.Quorum); err != nil {
		t.Fatalf("put through a compared node: %v", err)
	}
}
