package membership

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"github.com/hashicorp/memberlist"
	"github.com/ringkv/ringkv/memtable"
	"github.com/ringkv/ringkv/peer"
)

// nodeMeta is what a node gossips about itself (memberlist node metadata).
// Its JSON is what running nodes read: the field names must not change.
type nodeMeta struct {
	HTTPAddr string `json:"h"`
	Stamp    uint64 `json:"s"`
	Leaving  bool   `json:"l,omitempty"`
	PeerAddr string `json:"p,omitempty"`
	// Clock: the node answers clock pings and probes with its clock, so
	// its peers can compare theirs with it (nodes of releases before
	// --max-clock-offset do not; they are left out of the comparison).
	Clock bool `json:"c,omitempty"`
	// Joining: the node is brand new and not in a ring yet (Entry.Joining).
	Joining bool `json:"j,omitempty"`
	// Holding: the node is in the initial ring, which is still forming
	// (--bootstrap-expect): a node that sees it waits to enter with the
	// others rather than enter a part of the ring.
	Holding bool `json:"b,omitempty"`
}

// stampBound returns the latest member-list stamp this node takes: now
// plus the maximum clock offset and stampMargin.
func (g *Gossip) stampBound() uint64 {
	c := g.cfg.Clock
	return memtable.TimestampAt(c.Wall().Add(c.MaxOffset() + stampMargin))
}

// checksLocked returns what relayed entries are checked against now.
// REQUIRES: g.mu.
func (g *Gossip) checksLocked() checks {
	var keys [][]byte
	for _, k := range g.cfg.Secrets.All() {
		keys = append(keys, k.Internode)
	}
	return checks{self: g.cfg.NodeID, bound: g.stampBound(), keys: keys, live: g.live.state, seen: g.seen}
}

// merge folds a remote member list into ours (see the function merge for
// what it takes); it reports a change.
func (g *Gossip) merge(remote List) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	taken, refused := merge(g.roster, remote, g.checksLocked())
	for _, r := range refused {
		if skipped, log := g.refusals.Allow(); log {
			g.cfg.Logger.Warn("ignoring a member-list entry from gossip", "node", r.Entry.ID, "stamp", r.Entry.Stamp, "removed", r.Entry.Removed, "why", r.Why, "others_ignored_since", skipped)
		}
	}
	for _, e := range taken {
		g.roster[e.ID] = e
		g.cfg.Clock.Update(e.Stamp) //nolint:errcheck // within the bound, checked by merge
	}
	if len(taken) > 0 {
		g.dirty = true
	}
	return len(taken) > 0
}

// broadcast queues the whole member list for gossip; it is small.
func (g *Gossip) broadcast() {
	g.mu.Lock()
	b, _ := json.Marshal(g.roster)
	g.mu.Unlock()
	g.queue.QueueBroadcast(rosterBroadcast(b))
}

type rosterBroadcast []byte

func (b rosterBroadcast) Invalidates(memberlist.Broadcast) bool { return true }
func (b rosterBroadcast) Message() []byte                       { return b }
func (b rosterBroadcast) Finished()                             {}

// memberlist.Delegate

// NodeMeta is this node's HTTP address and roster stamp.
func (g *Gossip) NodeMeta(limit int) []byte {
	g.mu.Lock()
	stamp, leaving, joining, holding := g.self.Stamp, g.self.Leaving, g.self.Joining, g.holdFor > 0
	g.mu.Unlock()
	b, _ := json.Marshal(nodeMeta{HTTPAddr: g.cfg.HTTPAddr, PeerAddr: g.cfg.PeerAddr, Stamp: stamp, Leaving: leaving, Joining: joining, Holding: holding, Clock: true})
	if len(b) > limit {
		return nil
	}
	return b
}

// NotifyMsg merges a broadcast member list, or answers a clock probe.
func (g *Gossip) NotifyMsg(b []byte) {
	if len(b) > 0 && (b[0] == msgClockPing || b[0] == msgClockReply) {
		g.clockMsg(b)
		return
	}
	remote, err := decodeList(b)
	if err != nil {
		g.cfg.Logger.Warn("ignoring a malformed member list from gossip", "err", err)
		return
	}
	if g.merge(remote) {
		g.signal()
		// Passed on as this node now holds it: what it refused, it does
		// not spread.
		g.broadcast()
	}
}

// GetBroadcasts hands memberlist the queued member lists.
func (g *Gossip) GetBroadcasts(overhead, limit int) [][]byte {
	return g.queue.GetBroadcasts(overhead, limit)
}

// LocalState is the member list, for push/pull exchanges.
func (g *Gossip) LocalState(join bool) []byte {
	g.mu.Lock()
	defer g.mu.Unlock()
	b, _ := json.Marshal(g.roster)
	return b
}

// MergeRemoteState merges a peer's member list from a push/pull exchange.
func (g *Gossip) MergeRemoteState(buf []byte, join bool) {
	remote, err := decodeList(buf)
	if err != nil {
		g.cfg.Logger.Warn("ignoring a malformed member list from a peer", "err", err)
		return
	}
	if g.merge(remote) {
		g.signal()
	}
}

// memberlist.EventDelegate

// NotifyJoin marks a node alive, and adds it to the ring if it is new.
func (g *Gossip) NotifyJoin(n *memberlist.Node) { g.noteNode(n, peer.Alive) }

// NotifyUpdate notes changed metadata.
func (g *Gossip) NotifyUpdate(n *memberlist.Node) { g.noteNode(n, stateOf(n.State)) }

// NotifyLeave marks a node dead; it stays in the ring.
func (g *Gossip) NotifyLeave(n *memberlist.Node) {
	g.mu.Lock()
	g.setLiveLocked(n.Name, peer.Dead)
	g.mu.Unlock()
	g.signal()
}

// noteNode takes memberlist's word on n: its state, and its own word on
// its entry (its metadata; see ownWord).
func (g *Gossip) noteNode(n *memberlist.Node, st peer.MemberState) {
	var meta nodeMeta
	if err := json.Unmarshal(n.Meta, &meta); err != nil || meta.HTTPAddr == "" {
		g.cfg.Logger.Warn("ignoring a gossip member without ringkv metadata", "node", n.Name, "addr", n.Address())
		return
	}
	g.mu.Lock()
	g.setLiveLocked(n.Name, st)
	if meta.Clock {
		delete(g.live.noClock, n.Name)
	} else {
		g.live.noClock[n.Name] = true
	}
	e := Entry{ID: n.Name, HTTPAddr: meta.HTTPAddr, GossipAddr: n.Address(), PeerAddr: meta.PeerAddr, Stamp: meta.Stamp, Leaving: meta.Leaving, Joining: meta.Joining}
	if e.Stamp > g.stampBound() {
		g.mu.Unlock()
		g.cfg.Logger.Warn("ignoring a gossip member whose stamp is beyond the clock bound", "node", n.Name, "stamp", meta.Stamp)
		return
	}
	if n.Name != g.cfg.NodeID {
		g.seen[n.Name] = e
		g.holding[n.Name] = meta.Holding
	}
	if ownWord(g.roster, g.cfg.NodeID, e) {
		g.roster[n.Name] = e
		g.dirty = true
	}
	g.mu.Unlock()
	g.signal()
}

// memberlist.MergeDelegate

// mergeGate is memberlist's MergeDelegate: it refuses to merge this
// node's ring with another ring that has never met it (refusesMerge).
type mergeGate struct{ g *Gossip }

// NotifyMerge is called, on both sides of a push/pull exchange, with the
// other side's members, before either merges them.
func (m mergeGate) NotifyMerge(peers []*memberlist.Node) error {
	g := m.g
	theirs := make(map[string]bool, len(peers))
	var addr string
	for _, n := range peers {
		var meta nodeMeta
		if json.Unmarshal(n.Meta, &meta) == nil && meta.HTTPAddr != "" && !meta.Joining && !meta.Leaving {
			theirs[n.Name] = true
			addr = n.Address()
		}
	}
	g.mu.Lock()
	mine := formed(g.roster)
	met := slices.ContainsFunc(peers, func(n *memberlist.Node) bool { _, ok := g.roster[n.Name]; return ok })
	g.mu.Unlock()
	if !refusesMerge(len(mine), len(theirs), met) {
		return nil
	}
	other := slices.Sorted(maps.Keys(theirs))
	g.cfg.Logger.Error("refusing to merge two rings that have never met: each already has members (and may hold data); to put a node of one into the other, give it an empty data directory", "this_ring", mine, "other_ring", other, "other_addr", addr)
	return fmt.Errorf("ringkv: refusing to merge ring %v with ring %v, which never met it", mine, other)
}

// refusesMerge reports whether a ring of mine members (in the ring) meets
// one of theirs that shares no member with it (met: it does) and both
// have more than one: two clusters that have each taken writes on their
// own ring would, merged, place keys on nodes that never held them. A
// single node, a brand-new one above all, joins a ring as always.
func refusesMerge(mine, theirs int, met bool) bool {
	return !met && mine > 1 && theirs > 1
}
