package membership

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/ringkv/ringkv/peer"
	"github.com/ringkv/ringkv/ring"
)

// rosterMeta is the engine metadata key of the durable member list.
const rosterMeta = "ring-roster"

// Entry is one node of the durable member list that defines the ring.
// Entries merge by Stamp (an HLC timestamp): the later change of a member
// wins, and on a tie its removal. Its JSON is what nodes store and gossip:
// the field names must not change.
type Entry struct {
	ID         string `json:"id"`
	HTTPAddr   string `json:"http_addr"`
	GossipAddr string `json:"gossip_addr"`
	Stamp      uint64 `json:"stamp"`
	Removed    bool   `json:"removed,omitempty"`
	// Leaving: the node is handing its ranges over; it is out of the ring
	// but still serves them to the nodes that pull them.
	Leaving bool `json:"leaving,omitempty"`
	// Proof, on a removal made with a cluster secret, is
	// removalProof(Internode key, ID, Stamp): the node that took the
	// removal (an admin's call, or the end of the node's own leave) held
	// the key. Without it no other node takes a removal from gossip.
	Proof []byte `json:"proof,omitempty"`
	// PeerAddr is the node's internode listener (--peer-addr), if apart.
	PeerAddr string `json:"peer_addr,omitempty"`
	// Joining: a brand-new node that has not entered a ring yet (it waits
	// to meet one, or for the initial ring's members, Config.Join); it is
	// a member, out of the ring. Entering, it announces itself anew.
	Joining bool `json:"joining,omitempty"`
}

// List is the durable member list, by node id.
type List map[string]Entry

// removalProof is the HMAC-SHA256, under a cluster's Internode key, of a
// removal of node id at stamp.
func removalProof(key []byte, id string, stamp uint64) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte("ringkv removal v1\x00"))
	h.Write(binary.BigEndian.AppendUint64(nil, stamp))
	h.Write([]byte(id))
	return h.Sum(nil)
}

// satInc is x+1, saturating at 2^64-1: stamps come from the network, and
// one of 2^64-1 must not wrap to the oldest.
func satInc(x uint64) uint64 {
	if x == math.MaxUint64 {
		return x
	}
	return x + 1
}

// stampMargin is how far beyond the clock bound (now plus the maximum
// clock offset) a member-list stamp may be. A later stamp is refused: a
// forged far-future one (2^64-1) would win every merge for as long as it
// is ahead. It is generous, not the clock bound itself: a node whose
// clock is seconds behind its peers' must still take their entries
// (stamped by their clocks), stay in the ring and be told its clock is
// off (it then coordinates no writes); and a member's own word replaces a
// second-hand entry however it is stamped, so a forged stamp within the
// margin evicts nobody.
const stampMargin = time.Hour

// maxListBytes bounds a member list taken from gossip: thousands of
// members, not an attacker's gigabytes.
const maxListBytes = 4 << 20

// decodeList parses a member list from gossip (a broadcast or a push/pull
// state).
func decodeList(b []byte) (List, error) {
	if len(b) > maxListBytes {
		return nil, fmt.Errorf("member list of %d bytes, more than %d", len(b), maxListBytes)
	}
	var remote List
	if err := json.Unmarshal(b, &remote); err != nil {
		return nil, err
	}
	return remote, nil
}

func (a Entry) beats(b Entry) bool {
	if a.Stamp != b.Stamp {
		return a.Stamp > b.Stamp
	}
	return a.Removed && !b.Removed
}

// sameAnnouncement reports whether two entries say the same of a member.
func sameAnnouncement(a, b Entry) bool {
	return a.Stamp == b.Stamp && a.HTTPAddr == b.HTTPAddr && a.GossipAddr == b.GossipAddr && a.PeerAddr == b.PeerAddr && a.Leaving == b.Leaving && a.Joining == b.Joining && a.Removed == b.Removed
}

// checks is what a node checks a relayed member-list entry against: its
// own id, the latest stamp it takes, the keys a removal may be proven
// with, and memberlist's word on each member.
type checks struct {
	self  string
	bound uint64   // now plus the maximum clock offset and stampMargin
	keys  [][]byte // Internode keys of the cluster's secrets; none: no secret
	live  map[string]peer.MemberState
	// seen is each member's own word on its entry: what its memberlist
	// metadata last said, at the address memberlist reached it at.
	seen map[string]Entry
}

// refusal is an entry of a relayed list that was not taken, and why.
type refusal struct {
	Entry Entry
	Why   string
}

// merge returns the entries of remote that this node takes into l, as l
// is to hold them, and those it refuses, both ordered by id; l is not
// changed. The list comes from any member holding the gossip key,
// relayed, so an entry is taken only as far as it can be checked
// (SECURITY.md):
//
//   - a stamp beyond c.bound is refused: it would beat every later change;
//   - a removal, with a cluster secret, only with its proof, made by the
//     node that took the removal;
//   - any other entry of a member memberlist reports alive only as that
//     member announces itself (its metadata); of a member not alive, only
//     if this node has none yet (one it never met can only be learnt
//     second-hand);
//   - nothing but a removal of this node itself: only it announces itself.
func merge(l, remote List, c checks) (taken []Entry, refused []refusal) {
	for _, id := range slices.Sorted(maps.Keys(remote)) {
		e := remote[id]
		if e.ID != id || id == "" {
			continue
		}
		cur, ok := l[id]
		if ok && !e.beats(cur) {
			continue
		}
		if why := c.refuse(e, cur, ok); why != "" {
			refused = append(refused, refusal{e, why})
			continue
		}
		if e.Removed && ok {
			// Only the removal is proven: the addresses stay as known.
			e.HTTPAddr, e.GossipAddr, e.PeerAddr, e.Leaving, e.Joining = cur.HTTPAddr, cur.GossipAddr, cur.PeerAddr, cur.Leaving, cur.Joining
		}
		if s, live := c.seen[id]; live && !e.Removed {
			e.GossipAddr = s.GossipAddr
		}
		taken = append(taken, e)
	}
	return taken, refused
}

// refuse returns why the entry e, which beats this node's entry cur of
// the same node (had: there is one), is not taken from gossip; "" if it
// is.
func (c checks) refuse(e, cur Entry, had bool) string {
	if e.Stamp > c.bound {
		return "stamped beyond the clock bound"
	}
	if e.Removed {
		if len(c.keys) == 0 {
			return "" // no secret, nothing to prove a removal with
		}
		for _, k := range c.keys {
			if hmac.Equal(e.Proof, removalProof(k, e.ID, e.Stamp)) {
				return ""
			}
		}
		return "a removal without a valid proof"
	}
	if e.ID == c.self {
		return "only this node announces itself"
	}
	if st := c.live[e.ID]; st == peer.Alive || st == peer.Suspect {
		s, ok := c.seen[e.ID]
		if !ok || s.Stamp != e.Stamp || s.HTTPAddr != e.HTTPAddr || s.PeerAddr != e.PeerAddr || s.Leaving != e.Leaving || s.Joining != e.Joining {
			return "not what the member itself announces"
		}
		return ""
	}
	if had {
		return "a change of a member that is not alive to confirm it"
	}
	return ""
}

// ownWord reports whether e, what member e.ID announces of itself in its
// memberlist metadata, replaces l's entry of it. A member's own word wins
// over whatever was learnt of it second-hand (a forged entry of a member
// this node had not met would otherwise stick), except over a removal,
// which only a newer entry (a new member of that id) beats. This node's
// own entry is its own to change.
func ownWord(l List, self string, e Entry) bool {
	if e.ID == self {
		return false
	}
	cur, ok := l[e.ID]
	return !ok || e.beats(cur) || (!cur.Removed && !sameAnnouncement(cur, e))
}

// removed returns e removed at a stamp later than its own and at least
// now, proven with key (none: the cluster has no secret).
func removed(e Entry, now uint64, key []byte) Entry {
	e.Removed = true
	e.Stamp = max(now, satInc(e.Stamp))
	e.Proof = nil
	if key != nil {
		e.Proof = removalProof(key, e.ID, e.Stamp)
	}
	return e
}

// leaving returns e marked leaving at a stamp later than its own and at
// least now; changed is false if it already was.
func leaving(e Entry, now uint64) (_ Entry, changed bool) {
	if e.Leaving {
		return e, false
	}
	e.Leaving = true
	e.Stamp = max(now, satInc(e.Stamp))
	return e, true
}

// selfEntry returns this node's entry as it starts on the stored list l
// with the addresses of want (whose Stamp is the clock's now, and whose
// Joining says a new node waits to enter a ring): a node keeps its place
// (its stamp) across restarts; a new node, or one whose addresses
// changed, announces itself anew at want.Stamp, a node already in a ring
// (or still joining) as such. changed says the list must be stored again.
func selfEntry(l List, want Entry) (_ Entry, changed bool) {
	cur, ok := l[want.ID]
	if ok && cur.HTTPAddr == want.HTTPAddr && cur.GossipAddr == want.GossipAddr && cur.PeerAddr == want.PeerAddr {
		return cur, false
	}
	if ok {
		want.Joining = cur.Joining
	}
	return want, true
}

// formed returns the ids of l's members in a ring (neither removed,
// joining nor leaving), ordered.
func formed(l List) []string {
	var ids []string
	for _, id := range slices.Sorted(maps.Keys(l)) {
		if e := l[id]; !e.Removed && !e.Joining && !e.Leaving {
			ids = append(ids, id)
		}
	}
	return ids
}

// entering says why a joining node self may enter the ring now, given
// the members of l it sees alive (self included) and the initial ring's
// size expect (0: none given): it sees expect members, in a ring or not
// ("expect": the initial ring may be forming, so its caller shows no
// ring until expect members are in it); a member of a ring is alive, and
// with expect not still forming the initial one (holding: its word)
// ("ring"); or, without expect, it has met another brand-new node and
// has the lowest id of those it sees ("lowest"). "" means it waits.
func entering(l List, alive []string, self string, expect int, holding map[string]bool) string {
	if expect > 0 && len(alive) >= expect {
		return "expect"
	}
	for _, id := range alive {
		// A member still forming the initial ring (holding) is no ring
		// to enter yet: one enters it with the others, on seeing expect.
		if e := l[id]; id != self && !e.Removed && !e.Joining && (expect == 0 || !holding[id]) {
			return "ring"
		}
	}
	if expect == 0 && len(alive) >= 2 && slices.Min(alive) == self {
		return "lowest"
	}
	return ""
}

// hasLeft reports whether node self must not start on its data: the
// stored list says it was removed, or its own leave finished (left). Its
// copies miss every write since, and tombstones of deletes it never saw
// may already be collected: back in the ring, it would serve stale values
// and bring deleted keys back.
func hasLeft(l List, self string, left bool) bool {
	e, ok := l[self]
	return (ok && e.Removed) || left
}

// liveness is memberlist's word on each member, as a node last heard it.
type liveness struct {
	state   map[string]peer.MemberState
	since   map[string]time.Time // when state last changed
	noClock map[string]bool      // members that do not answer clock pings
}

// Joining is the state a view gives a member that is up and not in the
// ring yet (Entry.Joining): alive to failure detection, but no owner of
// anything, so no caller waiting for "alive" takes it for a ring member.
const Joining peer.MemberState = "joining"

// buildView returns the view of list l, as node self sees the members'
// liveness lv: the ring of the members neither removed, joining nor
// leaving, and
// every member (a removed one as Left). A member not heard of since self
// started is Dead since self started.
func buildView(l List, lv liveness, self string, vnodes, replicas int) *peer.View {
	ids := make([]string, 0, len(l))
	members := make(map[string]peer.Member, len(l))
	for id, e := range l {
		m := peer.Member{ID: id, HTTPAddr: e.HTTPAddr, GossipAddr: e.GossipAddr, PeerAddr: e.PeerAddr, State: peer.Left, Joined: e.Stamp, Leaving: e.Leaving && !e.Removed}
		if !e.Removed {
			if !e.Leaving && !e.Joining {
				ids = append(ids, id)
			}
			m.State = lv.state[id]
			m.Since = lv.since[id]
			m.NoClock = lv.noClock[id]
			if m.State == "" {
				m.State = peer.Dead // not heard from since this node started
				m.Since = lv.since[self]
			}
			if e.Joining && m.State == peer.Alive {
				m.State = Joining // up, not in the ring yet
			}
		}
		members[id] = m
	}
	return &peer.View{Ring: ring.New(ids, vnodes, replicas), Members: members}
}

// reconnectTargets returns, ordered by id, the members of l that self
// should contact again at their stored gossip address: in the ring's
// list, not removed, not reported alive or suspect, and with no reconnect
// already in flight (dialing).
func reconnectTargets(l List, self string, live map[string]peer.MemberState, dialing map[string]bool) []Entry {
	var out []Entry
	for _, id := range slices.Sorted(maps.Keys(l)) {
		e := l[id]
		if id == self || e.Removed || e.GossipAddr == "" || dialing[id] {
			continue
		}
		if st := live[id]; st == peer.Alive || st == peer.Suspect {
			continue
		}
		out = append(out, e)
	}
	return out
}

// joinTargets returns addrs followed by the gossip addresses of l's
// members other than self that are not removed and not already in addrs.
func joinTargets(l List, self string, addrs []string) []string {
	targets := slices.Clone(addrs)
	for _, id := range slices.Sorted(maps.Keys(l)) {
		e := l[id]
		if id != self && !e.Removed && e.GossipAddr != "" && !slices.Contains(targets, e.GossipAddr) {
			targets = append(targets, e.GossipAddr)
		}
	}
	return targets
}
