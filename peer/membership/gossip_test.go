package membership

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/ringkv/ringkv/engine"
	"github.com/ringkv/ringkv/memtable"
	"github.com/ringkv/ringkv/peer"
	"github.com/ringkv/ringkv/peer/keyring"
	"github.com/ringkv/ringkv/peer/peertest/wait"
)

// storedList reads the member list n's engine holds.
func storedList(t *testing.T, n *labNode) List {
	t.Helper()
	b, err := n.eng.GetMeta(rosterMeta)
	if err != nil {
		t.Fatalf("%s's stored member list: %v", n.id, err)
	}
	var l List
	if err := json.Unmarshal(b, &l); err != nil {
		t.Fatal(err)
	}
	return l
}

// TestJoin: three nodes that join one of them each end with the same ring
// of the three, all alive, and store the member list; each knows the
// others' addresses (c's --peer-addr too).
func TestJoin(t *testing.T) {
	l := newLab(t)
	var ns []*labNode
	for _, id := range []string{"a", "b", "c"} {
		ns = append(ns, l.node(id))
	}
	ns[2].peerAddr = "127.0.0.1:9"
	for _, n := range ns {
		n.mustStart()
	}
	ns[1].join(ns[0])
	ns[2].join(ns[1])
	waitRing(t, ns, "a", "b", "c")
	for _, n := range ns {
		wait.For(t, within, func() bool { return len(storedList(t, n)) == 3 }, n.id+" stores the three members")
		for _, m := range ns {
			got := n.last().Members[m.id]
			if got.GossipAddr != m.addr || got.PeerAddr != m.peerAddr {
				t.Errorf("%s has %s at gossip %q peer %q, want %q %q", n.id, m.id, got.GossipAddr, got.PeerAddr, m.addr, m.peerAddr)
			}
		}
	}
}

// TestClockOffsets: each node measures its peers' clock offsets (clock
// pings, and memberlist's probes whose acks carry the peer's clock), so a
// node whose clock is 2s ahead is seen 2s ahead, and sees the other 2s
// behind.
func TestClockOffsets(t *testing.T) {
	l := newLab(t)
	a, b := l.node("a"), l.node("b")
	lg := slog.New(slog.NewTextHandler(io.Discard, nil))
	ahead := func() time.Time { return time.Now().Add(2 * time.Second) }
	a.offsets = peer.NewClockMonitor(0, nil, lg)
	b.offsets = peer.NewClockMonitor(0, ahead, lg)
	b.now = ahead
	a.mustStart()
	b.mustStart()
	b.join(a)
	near := func(m *peer.ClockMonitor, id string, want time.Duration) bool {
		o, ok := m.Offsets()[id]
		return ok && (o.Offset-want).Abs() < time.Second
	}
	wait.For(t, within, func() bool { return near(a.offsets, "b", 2*time.Second) }, "a to measure b 2s ahead")
	wait.For(t, within, func() bool { return near(b.offsets, "a", -2*time.Second) }, "b to measure a 2s behind")
}

// TestFailureAndReturn: a node that crashes is seen dead and stays in the
// ring; started again on its data and address with nothing to join, it
// knows its members from its stored list before it meets any, finds them
// from it, keeps its place (its stamp) and is seen alive again.
func TestFailureAndReturn(t *testing.T) {
	l := newLab(t)
	ns := l.cluster([]string{"a", "b", "c"})
	a, b, c := ns[0], ns[1], ns[2]
	stamp := storedList(t, c)["c"].Stamp
	c.crash()
	wait.For(t, within, func() bool { return sees(a, "c", peer.Dead) && sees(b, "c", peer.Dead) }, "a and b to see c dead")
	for _, n := range []*labNode{a, b} {
		if got := n.last().Ring.Nodes(); !slices.Equal(got, []string{"a", "b", "c"}) {
			t.Fatalf("%s's ring with c dead: %v, want c kept", n.id, got)
		}
	}
	// Cut off until it has published its first view, c knows the others
	// from its disk alone (a's reconnects would tell it otherwise).
	l.partition([]*labNode{c}, a, b)
	c.mustStart()
	if v := c.first(); !slices.Equal(v.Ring.Nodes(), []string{"a", "b", "c"}) || v.Members["a"].State != peer.Dead {
		t.Fatalf("c's first view after the restart: ring %v, members %v", v.Ring.Nodes(), v.Members)
	}
	l.heal()
	c.joinUntil()
	waitRing(t, ns, "a", "b", "c")
	if got := storedList(t, a)["c"].Stamp; got != stamp {
		t.Fatalf("c's stamp went from %d to %d over a restart on the same addresses", stamp, got)
	}
}

// TestRestartElsewhereAnnouncesAnew: a node restarted on another gossip
// address announces itself with a new stamp, which the others take.
func TestRestartElsewhereAnnouncesAnew(t *testing.T) {
	l := newLab(t)
	ns := l.cluster([]string{"a", "b"})
	a, b := ns[0], ns[1]
	old := storedList(t, a)["b"]
	b.stop()
	b.addr = "" // a new port
	b.mustStart()
	b.join(a)
	wait.For(t, within, func() bool {
		e := storedList(t, a)["b"]
		return e.GossipAddr == b.addr && e.Stamp > old.Stamp && ringIs(a, "a", "b")
	}, "a to take b's new address")
}

// TestLeave: a node that leaves is out of every ring while it hands over,
// then, once its leave ends with its own removal, left; started again on
// its data, it refuses to, as does a node whose leave was recorded
// (peer.LeftMetaKey).
func TestLeave(t *testing.T) {
	l := newLab(t)
	ns := l.cluster([]string{"a", "b", "c"})
	a, b, c := ns[0], ns[1], ns[2]
	if err := c.g.Leave(); err != nil {
		t.Fatal(err)
	}
	wait.For(t, within, func() bool {
		for _, n := range ns {
			v := n.last()
			if !slices.Equal(v.Ring.Nodes(), []string{"a", "b"}) || !v.Members["c"].Leaving || v.Members["c"].State != peer.Alive {
				return false
			}
		}
		return true
	}, "every node to see c leaving, alive and out of the ring")
	if err := c.g.Remove("c"); err != nil {
		t.Fatal(err)
	}
	wait.For(t, within, func() bool { return sees(a, "c", peer.Left) && sees(b, "c", peer.Left) }, "a and b to see c left")
	wait.For(t, within, func() bool { return storedList(t, c)["c"].Removed }, "c to store its removal")
	c.stop()
	if err := c.start(); !errors.Is(err, peer.ErrLeftMember) {
		t.Fatalf("c started again after leaving: %v, want ErrLeftMember", err)
	}
	d := l.node("d")
	if err := d.eng.SetMeta(peer.LeftMetaKey, []byte("1")); err != nil {
		t.Fatal(err)
	}
	if err := d.start(); !errors.Is(err, peer.ErrLeftMember) {
		t.Fatalf("a node whose leave was recorded started: %v, want ErrLeftMember", err)
	}
}

// TestRemoveDeadNode: with a cluster secret, a dead node removed on one
// member is removed on every member (the proof checked), stays out of
// their rings when it comes back on its old data, hears of its removal
// itself, and then refuses to start again.
func TestRemoveDeadNode(t *testing.T) {
	l := newLab(t)
	ns := l.cluster([]string{"a", "b", "c"}, "secret")
	a, b, c := ns[0], ns[1], ns[2]
	c.crash()
	wait.For(t, within, func() bool { return sees(a, "c", peer.Dead) }, "a to see c dead")
	if err := a.g.Remove("c"); err != nil {
		t.Fatal(err)
	}
	wait.For(t, within, func() bool { return sees(b, "c", peer.Left) && ringIs(b, "a", "b") }, "b to take a's removal of c")
	c.mustStart()
	c.join(a)
	wait.For(t, within, func() bool { return sees(c, "c", peer.Left) && storedList(t, c)["c"].Removed }, "c to hear and store its removal")
	probeRounds(t, []*labNode{a, b}, 4)
	for _, n := range []*labNode{a, b} {
		if !ringIs(n, "a", "b") || !sees(n, "c", peer.Left) {
			t.Fatalf("%s took the removed node back: ring %v, c %v", n.id, n.last().Ring.Nodes(), n.last().Members["c"])
		}
	}
	c.stop()
	if err := c.start(); !errors.Is(err, peer.ErrLeftMember) {
		t.Fatalf("c started again after its removal: %v, want ErrLeftMember", err)
	}
}

// TestPartitionHeals: a node cut off from the others past failure
// detection sees them dead and is seen dead; memberlist alone would never
// contact a dead member again, so once the network heals, the reconnect
// loop brings every node back to seeing every other alive.
func TestPartitionHeals(t *testing.T) {
	l := newLab(t)
	ns := l.cluster([]string{"a", "b", "c"})
	a, b, c := ns[0], ns[1], ns[2]
	l.partition([]*labNode{c}, a, b)
	wait.For(t, within, func() bool {
		return sees(a, "c", peer.Dead) && sees(b, "c", peer.Dead) && sees(c, "a", peer.Dead) && sees(c, "b", peer.Dead)
	}, "both sides of the cut to see the other dead")
	before := a.g.reconnects.Load() + c.g.reconnects.Load()
	l.heal()
	waitRing(t, ns, "a", "b", "c")
	if after := a.g.reconnects.Load() + c.g.reconnects.Load(); after == before {
		t.Fatalf("healed without a reconnect")
	}
}

// TestGossipRefusesMembersWithoutTheKey: with a cluster secret set, a
// node with another secret, or none, never enters any view (and so never
// the ring), whichever side starts the contact.
func TestGossipRefusesMembersWithoutTheKey(t *testing.T) {
	l := newLab(t)
	ns := l.cluster([]string{"a", "b"}, "right")
	a, b := ns[0], ns[1]
	wrong := l.node("wrong", "wrong").mustStart()
	plain := l.node("plain").mustStart()
	for _, x := range []*labNode{wrong, plain} {
		if err := x.g.Join([]string{a.addr}); err == nil {
			t.Errorf("%s joined a cluster whose key it lacks", x.id)
		}
		// The cluster reaching out to it fails too.
		if _, err := a.g.ml.Load().Join([]string{x.addr}); err == nil {
			t.Errorf("a joined %s, which lacks its key", x.id)
		}
	}
	probeRounds(t, []*labNode{a, b}, 4)
	for _, n := range []*labNode{a, b, wrong, plain} {
		for id := range n.last().Members {
			if (n == a || n == b) != (id == "a" || id == "b") {
				t.Errorf("%s lists %s", n.id, id)
			}
		}
	}
}

// TestGossipKeyRotation rotates the cluster secret of a running 3-node
// cluster in the documented three steps (add the new secret second,
// make it first, drop the old), one node at a time, and checks that no
// node ever sees another dead, and that the nodes end on the new key
// alone: a node that holds only the old secret cannot join afterwards.
func TestGossipKeyRotation(t *testing.T) {
	l := newLab(t)
	ns := l.cluster([]string{"g1", "g2", "g3"}, "old-secret")
	for _, n := range ns {
		n.watch.Store(true)
	}
	steps := [][]string{
		{"old-secret", "new-secret"},
		{"new-secret", "old-secret"},
		{"new-secret"},
	}
	for _, step := range steps {
		for _, n := range ns {
			var secs [][]byte
			for _, s := range step {
				secs = append(secs, []byte(s))
			}
			n.secrets.Set(secs...)
			// Each node's change reaches its peers before the next
			// node's: the order a rolling change has.
			probeRounds(t, ns, 2)
		}
	}
	probeRounds(t, ns, 4)
	newKey := keyring.Derive([]byte("new-secret"), "test").Gossip
	for _, n := range ns {
		if keys := n.g.keyring.GetKeys(); len(keys) != 1 || !slices.Equal(keys[0], newKey) {
			t.Errorf("%s's keyring holds %d keys, want the new secret's alone", n.id, len(keys))
		}
		n.mu.Lock()
		if len(n.dead) > 0 {
			t.Errorf("%s saw members dead during the rotation: %v", n.id, n.dead)
		}
		n.mu.Unlock()
		if !ringIs(n, "g1", "g2", "g3") {
			t.Errorf("%s's view after the rotation: %v", n.id, n.last().Members)
		}
	}
	stale := l.node("stale", "old-secret").mustStart()
	if err := stale.g.Join([]string{ns[0].addr}); err == nil {
		t.Errorf("a node with the dropped secret joined")
	}
	probeRounds(t, ns, 2)
	for _, n := range ns {
		if _, ok := n.last().Members["stale"]; ok {
			t.Errorf("%s lists the node with the dropped secret", n.id)
		}
	}
}

// TestOnlyAGenuineRemovalStopsARestart: a node that hears a forged
// removal of itself (no proof, or a stamp of 2^64-1) keeps its place and
// starts again; one that hears a removal proven with the cluster's key
// refuses to start on its stale data.
func TestOnlyAGenuineRemovalStopsARestart(t *testing.T) {
	lg := slog.New(slog.NewTextHandler(io.Discard, nil))
	eng, err := engine.Open(engine.Options{FS: vfs.NewMem(), Logger: lg, GCInterval: -1, RowCacheSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	clock := memtable.NewClock(nil)
	start := func() (*Gossip, error) {
		return Start(Config{
			NodeID: "x", HTTPAddr: "127.0.0.1:1", BindAddr: "127.0.0.1:0", Secrets: keyring.New("test", []byte("k")),
			Replicas: 3, VNodes: 8, Engine: eng, Clock: clock, Logger: lg, OnView: func(*peer.View) {},
		})
	}
	g, err := start()
	if err != nil {
		t.Fatal(err)
	}
	key := keyring.Derive([]byte("k"), "test").Internode
	send := func(e Entry) {
		b, _ := json.Marshal(List{e.ID: e})
		g.NotifyMsg(b)
		g.MergeRemoteState(b, false)
	}
	now := clock.Now()
	send(Entry{ID: "x", Stamp: now + 1, Removed: true})
	send(Entry{ID: "x", Stamp: math.MaxUint64, Removed: true, Proof: removalProof(key, "x", math.MaxUint64)})
	send(Entry{ID: "x", Stamp: now + 2, Removed: true, Proof: removalProof(keyring.Derive([]byte("other"), "test").Internode, "x", now+2)})
	g.persist() // whatever was taken is on disk now, not at the loop's next turn
	g.Close()
	if g, err = start(); err != nil {
		t.Fatalf("a forged removal stopped the restart: %v", err)
	}
	stamp := clock.Now() + 1
	send(Entry{ID: "x", Stamp: stamp, Removed: true, Proof: removalProof(key, "x", stamp)})
	wait.For(t, within, func() bool {
		b, err := eng.GetMeta(rosterMeta)
		var r List
		return err == nil && json.Unmarshal(b, &r) == nil && r["x"].Removed
	}, "the removal stored")
	g.Close()
	if g, err := start(); !errors.Is(err, peer.ErrLeftMember) {
		if err == nil {
			g.Close()
		}
		t.Fatalf("restart after a genuine removal: %v, want peer.ErrLeftMember", err)
	}
}
