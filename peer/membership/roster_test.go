package membership

import (
	"encoding/json"
	"io"
	"log/slog"
	"math"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/ringkv/ringkv/memtable"
	"github.com/ringkv/ringkv/peer"
	"github.com/ringkv/ringkv/peer/keyring"
)

// rosterNow is the wall time of the member-list tests' clocks.
var rosterNow = time.UnixMilli(1_700_000_000_000)

// newRosterGossip returns a Gossip for node "self" with just what merging
// member lists needs (no memberlist): its roster holds self, "a" (alive,
// as its metadata says) and "b" (dead), all stamped at ts(0).
func newRosterGossip(t testing.TB, secrets ...string) *Gossip {
	var secs [][]byte
	for _, s := range secrets {
		secs = append(secs, []byte(s))
	}
	g := newGossip(Config{
		NodeID: "self", Secrets: keyring.New("test", secs...),
		Clock:  memtable.NewClockBound(func() time.Time { return rosterNow }, 500*time.Millisecond),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Now:    func() time.Time { return rosterNow },
	})
	g.live.state["a"], g.live.state["b"] = peer.Alive, peer.Dead
	g.queue = &memberlist.TransmitLimitedQueue{NumNodes: func() int { return 3 }, RetransmitMult: 1}
	for _, id := range []string{"self", "a", "b"} {
		g.roster[id] = Entry{ID: id, HTTPAddr: id + ":80", GossipAddr: id + ":7946", Stamp: ts(0)}
	}
	g.seen["a"] = g.roster["a"]
	return g
}

// ts is the HLC stamp d after rosterNow.
func ts(d time.Duration) uint64 { return memtable.TimestampAt(rosterNow.Add(d)) }

func removal(id string, stamp uint64, secret string) Entry {
	e := Entry{ID: id, HTTPAddr: "evil:80", GossipAddr: "evil:7946", Stamp: stamp, Removed: true}
	if secret != "" {
		e.Proof = removalProof(keyring.Derive([]byte(secret), "test").Internode, id, stamp)
	}
	return e
}

// TestRosterMergeFollowsMeta: once a member's own metadata announces a
// change, the same change relayed by others is taken.
func TestRosterMergeFollowsMeta(t *testing.T) {
	g := newRosterGossip(t, "k")
	moved := Entry{ID: "a", HTTPAddr: "a2:80", GossipAddr: "a:7946", Stamp: ts(time.Millisecond)}
	g.mu.Lock()
	g.seen["a"] = moved
	g.mu.Unlock()
	if !g.merge(List{"a": moved}) || g.roster["a"].HTTPAddr != "a2:80" {
		t.Fatalf("a change the member announced itself was refused: %+v", g.roster["a"])
	}
}

// TestRemovalStampSaturates: removing a member whose stamp is already
// 2^64-1 (a list stored before stamps were bounded) keeps the stamp at
// 2^64-1 rather than wrapping to 0, which every entry would beat.
func TestRemovalStampSaturates(t *testing.T) {
	g := newRosterGossip(t, "k")
	e := g.roster["b"]
	e.Stamp = math.MaxUint64
	g.roster["b"] = e
	if err := g.Remove("b"); err != nil {
		t.Fatal(err)
	}
	if got := g.roster["b"]; !got.Removed || got.Stamp != math.MaxUint64 {
		t.Fatalf("after Remove: %+v", got)
	}
	if satInc(math.MaxUint64) != math.MaxUint64 || satInc(1) != 2 {
		t.Fatal("satInc")
	}
}

// FuzzRosterMerge feeds arbitrary bytes to both ways a member list
// arrives from gossip (a broadcast, a push/pull state). Whatever they
// hold, nothing panics and, without the cluster's key to prove a removal
// with, no known member is removed or changed, and no stamp beyond the
// clock bound is taken.
func FuzzRosterMerge(f *testing.F) {
	seed := func(m List) {
		b, _ := json.Marshal(m)
		f.Add(b)
	}
	seed(List{"a": removal("a", math.MaxUint64, "")})
	seed(List{"self": removal("self", ts(time.Millisecond), "wrong")})
	seed(List{"b": {ID: "b", HTTPAddr: "evil:80", Stamp: ts(time.Millisecond)}})
	seed(List{"c": {ID: "c", HTTPAddr: "c:80", Stamp: ts(time.Millisecond)}, "d": {ID: "x"}})
	f.Add([]byte(`{"a":{"id":"a","stamp":18446744073709551615,"removed":true,"proof":"AAAA"}}`))
	f.Add([]byte(`{"a":{"id":"a","stamp":1e30}}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"":{}}`))
	bound := ts(500*time.Millisecond + stampMargin)
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 0 && (b[0] == msgClockPing || b[0] == msgClockReply) {
			return // clock probes, which need a running memberlist
		}
		g := newRosterGossip(t, "k")
		before := List{}
		for id, e := range g.roster {
			before[id] = e
		}
		g.NotifyMsg(b)
		g.MergeRemoteState(b, false)
		g.MergeRemoteState(b, true)
		for id, e := range g.roster {
			old, known := before[id]
			if known {
				if e.Stamp != old.Stamp || e.Removed != old.Removed || e.HTTPAddr != old.HTTPAddr || e.Leaving != old.Leaving {
					t.Fatalf("known member %s changed: %+v to %+v", id, old, e)
				}
				continue
			}
			if e.Removed || e.Stamp > bound || e.ID != id {
				t.Fatalf("new entry taken: %+v", e)
			}
		}
	})
}

// TestOwnWordBeatsSecondHand: an entry of a member this node had not met,
// taken second-hand with a wrong address and a stamp ahead of the
// member's own, gives way to what the member announces once memberlist
// reports it.
func TestOwnWordBeatsSecondHand(t *testing.T) {
	g := newRosterGossip(t, "k")
	forged := Entry{ID: "c", HTTPAddr: "evil:80", GossipAddr: "evil:7946", Stamp: ts(500 * time.Millisecond)}
	if !g.merge(List{"c": forged}) {
		t.Fatal("the second-hand entry of a member never met was refused")
	}
	meta, _ := json.Marshal(nodeMeta{HTTPAddr: "c:80", Stamp: ts(time.Millisecond)})
	g.NotifyJoin(&memberlist.Node{Name: "c", Addr: []byte{127, 0, 0, 3}, Port: 7946, Meta: meta})
	if got := g.roster["c"]; got.HTTPAddr != "c:80" || got.Stamp != ts(time.Millisecond) {
		t.Fatalf("after the member's own word: %+v", got)
	}
	// A removal stays: the member's old announcement does not undo it.
	rm := removal("c", ts(600*time.Millisecond), "k")
	if !g.merge(List{"c": rm}) {
		t.Fatal("a proven removal was refused")
	}
	g.NotifyUpdate(&memberlist.Node{Name: "c", Addr: []byte{127, 0, 0, 3}, Port: 7946, Meta: meta})
	if !g.roster["c"].Removed {
		t.Fatal("a member's old announcement undid its removal")
	}
}
