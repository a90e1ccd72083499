package peer

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/hashicorp/memberlist"
	"github.com/ringkv/ringkv/engine"
	"github.com/ringkv/ringkv/memtable"
)

// gossipNode is one real memberlist node on loopback, for the tests of
// this file: its Gossip, the views it published, and how many probes it
// completed (memberlist probes one member an interval).
type gossipNode struct {
	id      string
	g       *Gossip
	secrets *Secrets
	eng     *engine.Engine
	probes  atomic.Int64

	mu    sync.Mutex
	views []*View
	dead  []string // "observer saw id dead", once every member was alive
}

func (n *gossipNode) last() *View {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.views) == 0 {
		return nil
	}
	return n.views[len(n.views)-1]
}

type countingPing struct {
	memberlist.PingDelegate
	n *atomic.Int64
}

func (p countingPing) NotifyPingComplete(other *memberlist.Node, rtt time.Duration, payload []byte) {
	p.n.Add(1)
	p.PingDelegate.NotifyPingComplete(other, rtt, payload)
}

// startGossipNode starts a node of cluster "test" with secrets (none: no
// encryption). watch, once set, makes the node record every member it
// sees dead.
func startGossipNode(t *testing.T, id string, watch *atomic.Bool, secrets ...string) *gossipNode {
	t.Helper()
	lg := slog.New(slog.NewTextHandler(io.Discard, nil))
	eng, err := engine.Open(engine.Options{FS: vfs.NewMem(), Logger: lg, GCInterval: -1, RowCacheSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	var secs [][]byte
	for _, s := range secrets {
		secs = append(secs, []byte(s))
	}
	n := &gossipNode{id: id, eng: eng, secrets: NewSecrets("test", secs...)}
	n.g, err = StartGossip(GossipConfig{
		NodeID: id, HTTPAddr: "127.0.0.1:1", BindAddr: "127.0.0.1:0", Secrets: n.secrets,
		Replicas: 3, VNodes: 8, Engine: eng, Clock: memtable.NewClock(nil), Logger: lg,
		OnView: func(v *View) {
			n.mu.Lock()
			defer n.mu.Unlock()
			n.views = append(n.views, v)
			if watch != nil && watch.Load() {
				for mid, m := range v.Members {
					if m.State == Dead && mid != id {
						n.dead = append(n.dead, mid)
					}
				}
			}
		},
		Tune: func(c *memberlist.Config) {
			// Fast enough for a short test, slow enough that a loaded
			// machine does not miss acks and suspect healthy members.
			c.ProbeInterval = 300 * time.Millisecond
			c.ProbeTimeout = 250 * time.Millisecond
			c.GossipInterval = 50 * time.Millisecond
			c.PushPullInterval = time.Second
			c.Ping = countingPing{c.Ping, &n.probes}
		},
	})
	if err != nil {
		eng.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		n.g.Close()
		n.eng.Close()
	})
	return n
}

// waitFor polls cond until it holds, failing the test after within (a
// generous bound: the condition is expected in well under a second).
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ringIs reports whether n's latest view has exactly ids in its ring, all
// alive.
func ringIs(n *gossipNode, ids ...string) bool {
	v := n.last()
	if v == nil || !slices.Equal(v.Ring.Nodes(), ids) {
		return false
	}
	for _, id := range ids {
		if v.Members[id].State != Alive {
			return false
		}
	}
	return true
}

// probeRounds waits until every node has completed rounds more probes
// than now: with three nodes, each has then probed each other member
// under whatever keys are in place.
func probeRounds(t *testing.T, ns []*gossipNode, rounds int64) {
	t.Helper()
	want := make([]int64, len(ns))
	for i, n := range ns {
		want[i] = n.probes.Load() + rounds
	}
	waitFor(t, 30*time.Second, "probe rounds", func() bool {
		for i, n := range ns {
			if n.probes.Load() < want[i] {
				return false
			}
		}
		return true
	})
}

// TestGossipKeyRotation rotates the cluster secret of a running 3-node
// cluster in the documented three steps (add the new secret second,
// make it first, drop the old), one node at a time, and checks that no
// node ever sees another dead, and that the nodes end on the new key
// alone: a node that holds only the old secret cannot join afterwards.
func TestGossipKeyRotation(t *testing.T) {
	var watch atomic.Bool
	var ns []*gossipNode
	for i := range 3 {
		ns = append(ns, startGossipNode(t, fmt.Sprintf("g%d", i+1), &watch, "old-secret"))
	}
	for _, n := range ns[1:] {
		if err := n.g.Join([]string{ns[0].g.GossipAddr()}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 30*time.Second, "three alive members", func() bool {
		return ringIs(ns[0], "g1", "g2", "g3") && ringIs(ns[1], "g1", "g2", "g3") && ringIs(ns[2], "g1", "g2", "g3")
	})
	watch.Store(true)
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
	newKey := DeriveKeys([]byte("new-secret"), "test").Gossip
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
	stale := startGossipNode(t, "stale", nil, "old-secret")
	if err := stale.g.Join([]string{ns[0].g.GossipAddr()}); err == nil {
		t.Errorf("a node with the dropped secret joined")
	}
	probeRounds(t, ns, 2)
	for _, n := range ns {
		if _, ok := n.last().Members["stale"]; ok {
			t.Errorf("%s lists the node with the dropped secret", n.id)
		}
	}
}

// TestGossipRefusesMembersWithoutTheKey: with a cluster secret set, a
// node with another secret, or none, never enters any view (and so never
// the ring), whichever side starts the contact.
func TestGossipRefusesMembersWithoutTheKey(t *testing.T) {
	a := startGossipNode(t, "a", nil, "right")
	b := startGossipNode(t, "b", nil, "right")
	if err := b.g.Join([]string{a.g.GossipAddr()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "a and b alive", func() bool { return ringIs(a, "a", "b") && ringIs(b, "a", "b") })
	wrong := startGossipNode(t, "wrong", nil, "wrong")
	plain := startGossipNode(t, "plain", nil)
	for _, x := range []*gossipNode{wrong, plain} {
		if err := x.g.Join([]string{a.g.GossipAddr()}); err == nil {
			t.Errorf("%s joined a cluster whose key it lacks", x.id)
		}
		// The cluster reaching out to it fails too.
		if _, err := a.g.ml.Join([]string{x.g.GossipAddr()}); err == nil {
			t.Errorf("a joined %s, which lacks its key", x.id)
		}
	}
	probeRounds(t, []*gossipNode{a, b}, 4)
	for _, n := range []*gossipNode{a, b, wrong, plain} {
		for id := range n.last().Members {
			if (n == a || n == b) != (id == "a" || id == "b") {
				t.Errorf("%s lists %s", n.id, id)
			}
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
		return StartGossip(GossipConfig{
			NodeID: "x", HTTPAddr: "127.0.0.1:1", BindAddr: "127.0.0.1:0", Secrets: NewSecrets("test", []byte("k")),
			Replicas: 3, VNodes: 8, Engine: eng, Clock: clock, Logger: lg, OnView: func(*View) {},
		})
	}
	g, err := start()
	if err != nil {
		t.Fatal(err)
	}
	key := DeriveKeys([]byte("k"), "test").Internode
	send := func(e rosterEntry) {
		b, _ := json.Marshal(map[string]rosterEntry{e.ID: e})
		g.NotifyMsg(b)
		g.MergeRemoteState(b, false)
	}
	now := clock.Now()
	send(rosterEntry{ID: "x", Stamp: now + 1, Removed: true})
	send(rosterEntry{ID: "x", Stamp: math.MaxUint64, Removed: true, Proof: removalProof(key, "x", math.MaxUint64)})
	send(rosterEntry{ID: "x", Stamp: now + 2, Removed: true, Proof: removalProof(DeriveKeys([]byte("other"), "test").Internode, "x", now+2)})
	g.persist() // whatever was taken is on disk now, not at the loop's next turn
	g.Close()
	if g, err = start(); err != nil {
		t.Fatalf("a forged removal stopped the restart: %v", err)
	}
	stamp := clock.Now() + 1
	send(rosterEntry{ID: "x", Stamp: stamp, Removed: true, Proof: removalProof(key, "x", stamp)})
	waitFor(t, 30*time.Second, "the removal stored", func() bool {
		b, err := eng.GetMeta(rosterMeta)
		var r map[string]rosterEntry
		return err == nil && json.Unmarshal(b, &r) == nil && r["x"].Removed
	})
	g.Close()
	if g, err := start(); !errors.Is(err, ErrLeftMember) {
		if err == nil {
			g.Close()
		}
		t.Fatalf("restart after a genuine removal: %v, want ErrLeftMember", err)
	}
}
