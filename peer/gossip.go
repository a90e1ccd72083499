package peer

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/ringkv/ringkv/engine"
	"github.com/ringkv/ringkv/memtable"
	"github.com/ringkv/ringkv/ring"
)

// leftMeta is the engine metadata key a node sets, durably, when its leave
// is done: it must not start into the cluster on this data again.
const leftMeta = "left"

// rosterMeta is the engine metadata key of the durable member list.
const rosterMeta = "ring-roster"

// rosterEntry is one node of the durable member list that defines the
// ring. Entries merge by Stamp (an HLC timestamp): the later change of a
// member wins, and on a tie its removal.
type rosterEntry struct {
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
}

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

// rosterStampMargin is how far beyond the clock bound (now plus the
// maximum clock offset) a member-list stamp may be. A later stamp is
// refused: a forged far-future one (2^64-1) would win every merge for as
// long as it is ahead. It is generous, not the clock bound itself: a node
// whose clock is seconds behind its peers' must still take their entries
// (stamped by their clocks), stay in the ring and be told its clock is
// off (it then coordinates no writes); and a member's own word replaces a
// second-hand entry however it is stamped, so a forged stamp within the
// margin evicts nobody.
const rosterStampMargin = time.Hour

// maxRosterBytes bounds a member list taken from gossip: thousands of
// members, not an attacker's gigabytes.
const maxRosterBytes = 4 << 20

// decodeRoster parses a member list from gossip (a broadcast or a
// push/pull state).
func decodeRoster(b []byte) (map[string]rosterEntry, error) {
	if len(b) > maxRosterBytes {
		return nil, fmt.Errorf("member list of %d bytes, more than %d", len(b), maxRosterBytes)
	}
	var remote map[string]rosterEntry
	if err := json.Unmarshal(b, &remote); err != nil {
		return nil, err
	}
	return remote, nil
}

func (a rosterEntry) beats(b rosterEntry) bool {
	if a.Stamp != b.Stamp {
		return a.Stamp > b.Stamp
	}
	return a.Removed && !b.Removed
}

// nodeMeta is what a node gossips about itself (memberlist node metadata).
type nodeMeta struct {
	HTTPAddr string `json:"h"`
	Stamp    uint64 `json:"s"`
	Leaving  bool   `json:"l,omitempty"`
	PeerAddr string `json:"p,omitempty"`
	// Clock: the node answers clock pings and probes with its clock, so
	// its peers can compare theirs with it (nodes of releases before
	// --max-clock-offset do not; they are left out of the comparison).
	Clock bool `json:"c,omitempty"`
}

// GossipConfig configures Gossip.
type GossipConfig struct {
	// NodeID, HTTPAddr: this node's identity and client address; required.
	NodeID   string
	HTTPAddr string
	// PeerAddr is where this node takes internode calls, when not at
	// HTTPAddr (--peer-addr); the default is none.
	PeerAddr string
	// BindAddr is the host:port memberlist listens on (UDP and TCP); required.
	BindAddr string
	// Secrets, when it holds any secret, encrypts gossip with the keys
	// derived from them (memberlist's keyring, the primary secret's key
	// first) and refuses unencrypted gossip; a Set installs the new keys
	// while the node runs. nil or empty: no encryption.
	Secrets *Secrets
	// Replicas and VNodes shape the ring (see Config).
	Replicas, VNodes int
	// Engine keeps the member list durably; required.
	Engine *engine.Engine
	// Clock stamps member-list changes; required.
	Clock *memtable.Clock
	// OnView receives every new view, from one goroutine; required.
	OnView func(*View)
	// Logger is the default slog.Default().
	Logger *slog.Logger
	// Tune, if set, adjusts memberlist's configuration (tests shorten its
	// intervals).
	Tune func(*memberlist.Config)
	// ReconnectInterval is how often each member of the ring that failure
	// detection reports dead is contacted again at its stored gossip
	// address, so a partition heals once the network does. The default
	// value is 2s.
	ReconnectInterval time.Duration
	// Now reads wall time for the members' "since" and the clock that
	// probes' acks carry (the default is time.Now).
	Now func() time.Time
	// Offsets, if set, receives the clock offset each probe of a peer
	// measures.
	Offsets *ClockMonitor
}

// DefaultReconnectInterval is GossipConfig.ReconnectInterval's default:
// two rounds of it (the first makes the far side refute its death, the
// second carries the refutation back) fit in the 10s a heal may take.
const DefaultReconnectInterval = 2 * time.Second

// Gossip is the membership layer: hashicorp/memberlist for failure
// detection, plus the durable member list that defines the ring, kept on
// disk and spread by memberlist's push/pull exchange and broadcasts. The
// ring changes only when a node joins for the first time or is removed; a
// node that fails or restarts stays in it. Gossip implements Membership.
type Gossip struct {
	cfg GossipConfig
	ml  *memberlist.Memberlist
	// keyring is memberlist's, nil without a cluster secret.
	keyring *memberlist.Keyring
	queue   *memberlist.TransmitLimitedQueue
	self    rosterEntry

	mu     sync.Mutex
	roster map[string]rosterEntry
	live   map[string]MemberState // memberlist's word on each node
	// noClock: the nodes whose metadata does not say they answer clock
	// pings (an older release).
	noClock map[string]bool
	// seen is each node's own word on its entry: what its memberlist
	// metadata last said (the stamp, HTTP address and leaving flag it
	// announces, at the address memberlist reached it at).
	seen map[string]rosterEntry
	// refusals gates the log lines of member-list entries refused.
	refusals logGate
	since    map[string]time.Time // when live last changed, per node
	dirty    bool                 // roster changed since last persisted
	// dialing holds the members a reconnect is in flight to.
	dialing map[string]bool
	// reconnects counts reconnect attempts, for tests and metrics.
	reconnects atomic.Int64

	changed  chan struct{}
	pingSoon chan struct{} // a member came alive: compare clocks with it
	stop     chan struct{}
	done     chan struct{}
	dials    sync.WaitGroup // reconnects in flight
	started  time.Time      // the reference of clock pings' send times
}

// StartGossip loads the durable member list, starts memberlist and the
// goroutine that turns membership events into views. It does not join
// anyone: call Join.
func StartGossip(cfg GossipConfig) (*Gossip, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ReconnectInterval <= 0 {
		cfg.ReconnectInterval = DefaultReconnectInterval
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	host, portStr, err := net.SplitHostPort(cfg.BindAddr)
	if err != nil {
		return nil, fmt.Errorf("%w %q: %v", ErrGossipAddr, cfg.BindAddr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("%w %q: the port is not a number", ErrGossipAddr, cfg.BindAddr)
	}
	g := &Gossip{
		cfg:      cfg,
		roster:   map[string]rosterEntry{},
		live:     map[string]MemberState{cfg.NodeID: Alive},
		noClock:  map[string]bool{},
		seen:     map[string]rosterEntry{},
		since:    map[string]time.Time{cfg.NodeID: cfg.Now()},
		dialing:  map[string]bool{},
		changed:  make(chan struct{}, 1),
		pingSoon: make(chan struct{}, 1),
		started:  time.Now(),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	if b, err := cfg.Engine.GetMeta(rosterMeta); err == nil {
		if err := json.Unmarshal(b, &g.roster); err != nil {
			return nil, fmt.Errorf("cannot read the stored member list: %w", err)
		}
	} else if !errors.Is(err, engine.ErrNotFound) {
		return nil, err
	}
	left, err := cfg.Engine.GetMeta(leftMeta)
	if err != nil && !errors.Is(err, engine.ErrNotFound) {
		return nil, err
	}
	if self, ok := g.roster[cfg.NodeID]; (ok && self.Removed) || left != nil {
		// Its copies miss every write since, and tombstones of deletes it
		// never saw may already be collected: back in the ring, it would
		// serve stale values and bring deleted keys back.
		return nil, fmt.Errorf("%w: node %q left the cluster or was removed from it; its data is out of date, so it can join again only as a new node on an empty data directory (if the others still list it, run ringkv cluster remove %s)", ErrLeftMember, cfg.NodeID, cfg.NodeID)
	}
	mc := memberlist.DefaultLANConfig()
	mc.Name = cfg.NodeID
	mc.BindAddr, mc.BindPort = host, port
	if ip := net.ParseIP(host); ip == nil || !ip.IsUnspecified() {
		mc.AdvertiseAddr, mc.AdvertisePort = host, port
	}
	mc.Delegate = g
	mc.Events = g
	mc.Ping = pingDelegate{g}
	mc.LogOutput = &memberlistLog{lg: cfg.Logger}
	var keyring *memberlist.Keyring
	if cfg.Secrets.Enabled() {
		if keyring, err = newGossipKeyring(cfg.Secrets); err != nil {
			return nil, err
		}
		mc.Keyring = keyring
		// A packet without the cluster's key is never read, and this
		// node never sends one in the clear: a member without the
		// credential cannot enter the view, so it never enters the ring.
		mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = true, true
	}
	if cfg.Tune != nil {
		cfg.Tune(mc)
	}
	g.queue = &memberlist.TransmitLimitedQueue{NumNodes: func() int { return g.ml.NumMembers() }, RetransmitMult: mc.RetransmitMult}
	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("%w %q: %v", ErrGossipAddr, cfg.BindAddr, err)
	}
	g.ml, g.keyring = ml, keyring
	if cfg.Secrets != nil {
		cfg.Secrets.OnChange(func() { g.rotateKeys(keyring) })
	}
	if port == 0 {
		// memberlist picked a free port: advertise that one.
		g.cfg.BindAddr = net.JoinHostPort(host, strconv.Itoa(int(ml.LocalNode().Port)))
	}
	g.mu.Lock()
	// A node keeps its place (its stamp) across restarts; a new node, or
	// one whose addresses changed, announces itself with a new stamp. A
	// node removed while it was down stays removed once it hears so.
	self, ok := g.roster[cfg.NodeID]
	if !ok || self.HTTPAddr != cfg.HTTPAddr || self.GossipAddr != g.cfg.BindAddr || self.PeerAddr != cfg.PeerAddr {
		self = rosterEntry{ID: cfg.NodeID, HTTPAddr: cfg.HTTPAddr, GossipAddr: g.cfg.BindAddr, PeerAddr: cfg.PeerAddr, Stamp: cfg.Clock.Now()}
		g.roster[cfg.NodeID] = self
		g.dirty = true
	}
	g.self = self
	g.mu.Unlock()

	if err := ml.UpdateNode(time.Second); err != nil {
		g.cfg.Logger.Debug("cannot update gossip metadata", "err", err)
	}
	if cfg.Offsets != nil {
		cfg.Offsets.SetProbed()
	}
	g.publish()
	go g.loop()
	return g, nil
}

// GossipAddr returns the address memberlist listens on.
func (g *Gossip) GossipAddr() string { return g.cfg.BindAddr }

// Join contacts members at addrs and exchanges member lists with them.
func (g *Gossip) Join(addrs []string) error {
	n, err := g.ml.Join(addrs)
	if n == 0 {
		if err == nil {
			err = errors.New("no member answered")
		}
		return fmt.Errorf("cannot join %v: %w", addrs, err)
	}
	g.broadcast()
	return nil
}

// Remove marks id removed from the ring, on every node in time.
func (g *Gossip) Remove(id string) error {
	g.mu.Lock()
	e, ok := g.roster[id]
	if !ok || e.Removed {
		g.mu.Unlock()
		return fmt.Errorf("%w: %q", ErrUnknownMember, id)
	}
	e.Removed = true
	e.Stamp = max(g.cfg.Clock.Now(), satInc(e.Stamp))
	e.Proof = nil
	if k, ok := g.cfg.Secrets.Primary(); ok {
		e.Proof = removalProof(k.Internode, id, e.Stamp)
	}
	g.roster[id] = e
	g.dirty = true
	g.mu.Unlock()
	g.signal()
	g.broadcast()
	return nil
}

// Leave takes this node out of the ring while it stays a member that
// serves its data: the others pull its ranges, then Remove(self) ends it.
func (g *Gossip) Leave() error {
	g.mu.Lock()
	e := g.roster[g.cfg.NodeID]
	if e.Removed {
		g.mu.Unlock()
		return fmt.Errorf("%w: %q has left", ErrUnknownMember, g.cfg.NodeID)
	}
	if !e.Leaving {
		e.Leaving = true
		e.Stamp = max(g.cfg.Clock.Now(), satInc(e.Stamp))
		g.roster[g.cfg.NodeID] = e
		g.self = e
		g.dirty = true
	}
	g.mu.Unlock()
	if err := g.ml.UpdateNode(time.Second); err != nil {
		g.cfg.Logger.Debug("cannot update gossip metadata", "err", err)
	}
	g.signal()
	g.broadcast()
	return nil
}

// Close tells the other members this node is going away (they mark it
// down at once and keep hints for it; it stays in the ring), then stops.
func (g *Gossip) Close() error {
	err := g.ml.Leave(2 * time.Second)
	close(g.stop)
	<-g.done
	if serr := g.ml.Shutdown(); err == nil {
		err = serr
	}
	// A reconnect to a member cut off waits out memberlist's TCP timeout
	// (10s); after Shutdown it can do nothing, so it is not waited for
	// longer than a moment.
	dialed := make(chan struct{})
	go func() { g.dials.Wait(); close(dialed) }()
	select {
	case <-dialed:
	case <-time.After(time.Second):
	}
	return err
}

func (g *Gossip) signal() {
	select {
	case g.changed <- struct{}{}:
	default:
	}
}

// loop is the one goroutine that turns membership changes into views: it
// persists the member list when it changed and publishes a new View. A
// ticker also catches suspect states, which memberlist does not announce.
func (g *Gossip) loop() {
	defer close(g.done)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	rc := time.NewTicker(g.cfg.ReconnectInterval)
	defer rc.Stop()
	for {
		select {
		case <-g.stop:
			return
		case <-g.changed:
		case <-t.C:
			g.refreshLiveness()
			g.pingClocks()
		case <-g.pingSoon:
			g.pingClocks()
			continue
		case <-rc.C:
			g.reconnect()
			continue
		}
		g.publish()
	}
}

// reconnect contacts, at its stored gossip address, every member of the
// ring that failure detection reports dead. memberlist never contacts a
// dead node again, so without this two sides of a partition that lasted
// past failure detection would see each other dead after the network
// heals, for good (hashicorp/serf's reconnect loop does the same). A
// push/pull exchange with the member makes each side refute its death in
// the other's eyes; the next one, or gossip, carries the refutation back.
// Each attempt runs on its own goroutine, at most one per member, so a
// member cut off (whose dial takes memberlist's TCP timeout) holds up no
// other.
func (g *Gossip) reconnect() {
	g.mu.Lock()
	var targets []rosterEntry
	for id, e := range g.roster {
		if id == g.cfg.NodeID || e.Removed || e.GossipAddr == "" || g.dialing[id] {
			continue
		}
		if st := g.live[id]; st == Alive || st == Suspect {
			continue
		}
		g.dialing[id] = true
		targets = append(targets, e)
	}
	g.mu.Unlock()
	for _, e := range targets {
		g.reconnects.Add(1)
		g.dials.Go(func() {
			defer func() {
				g.mu.Lock()
				delete(g.dialing, e.ID)
				g.mu.Unlock()
			}()
			if _, err := g.ml.Join([]string{e.GossipAddr}); err != nil {
				g.cfg.Logger.Debug("cannot reach a dead member yet", "node", e.ID, "addr", e.GossipAddr, "err", err)
				return
			}
			g.cfg.Logger.Info("reached a member reported dead", "node", e.ID, "addr", e.GossipAddr)
		})
	}
}

// setLiveLocked records st as memberlist's word on id, and since when.
// REQUIRES: g.mu.
func (g *Gossip) setLiveLocked(id string, st MemberState) {
	if g.live[id] != st {
		if st == Alive {
			select {
			case g.pingSoon <- struct{}{}:
			default:
			}
		}
		g.live[id] = st
		g.since[id] = g.cfg.Now()
	}
}

// refreshLiveness reads suspect/alive states from memberlist.
func (g *Gossip) refreshLiveness() {
	ms := g.ml.Members()
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, m := range ms {
		if m.Name != g.cfg.NodeID {
			g.setLiveLocked(m.Name, stateOf(m.State))
		}
	}
}

func stateOf(s memberlist.NodeStateType) MemberState {
	switch s {
	case memberlist.StateAlive:
		return Alive
	case memberlist.StateSuspect:
		return Suspect
	}
	// Left means the node shut down, not that it left the ring.
	return Dead
}

// publish persists the member list if it changed and hands out a new view.
func (g *Gossip) publish() {
	g.persist()
	g.mu.Lock()
	v := g.viewLocked()
	g.mu.Unlock()
	g.cfg.OnView(v)
}

// persist stores the member list if it changed since it was last stored.
// StartGossip calls it once before the loop starts, then only the loop
// does, so snapshots are written in order.
func (g *Gossip) persist() {
	g.mu.Lock()
	var b []byte
	if g.dirty {
		b, _ = json.Marshal(g.roster)
		g.dirty = false
	}
	g.mu.Unlock()
	if b == nil {
		return
	}
	if err := g.cfg.Engine.SetMeta(rosterMeta, b); err != nil {
		g.cfg.Logger.Error("cannot store the member list", "err", err)
		g.mu.Lock()
		g.dirty = true // try again at the next change or tick
		g.mu.Unlock()
	}
}

func (g *Gossip) viewLocked() *View {
	ids := make([]string, 0, len(g.roster))
	members := make(map[string]Member, len(g.roster))
	for id, e := range g.roster {
		m := Member{ID: id, HTTPAddr: e.HTTPAddr, GossipAddr: e.GossipAddr, PeerAddr: e.PeerAddr, State: Left, Joined: e.Stamp, Leaving: e.Leaving && !e.Removed}
		if !e.Removed {
			if !e.Leaving {
				ids = append(ids, id)
			}
			m.State = g.live[id]
			m.Since = g.since[id]
			m.NoClock = g.noClock[id]
			if m.State == "" {
				m.State = Dead // not heard from since this node started
				m.Since = g.since[g.cfg.NodeID]
			}
		}
		members[id] = m
	}
	return &View{Ring: ring.New(ids, g.cfg.VNodes, g.cfg.Replicas), Members: members}
}

// merge folds a remote member list into ours; it reports a change. The
// list comes from any member holding the gossip key, relayed, so an entry
// is taken only as far as it can be checked (SECURITY.md):
//
//   - a stamp beyond now plus the clock bound (and rosterStampMargin) is
//     refused: it would beat every later change;
//   - a removal, with a cluster secret, only with its proof, made by the
//     node that took the removal;
//   - any other entry of a member memberlist reports alive only as that
//     member announces itself (its metadata); of a member not alive, only
//     if this node has none yet (one it never met can only be learnt
//     second-hand);
//   - nothing but a removal of this node itself: only it announces itself.
func (g *Gossip) merge(remote map[string]rosterEntry) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	changed := false
	for id, e := range remote {
		if e.ID != id || id == "" {
			continue
		}
		cur, ok := g.roster[id]
		if ok && !e.beats(cur) {
			continue
		}
		if why := g.refuseLocked(e, cur, ok); why != "" {
			if skipped, log := g.refusals.allow(); log {
				g.cfg.Logger.Warn("ignoring a member-list entry from gossip", "node", id, "stamp", e.Stamp, "removed", e.Removed, "why", why, "others_ignored_since", skipped)
			}
			continue
		}
		if e.Removed && ok {
			// Only the removal is proven: the addresses stay as known.
			e.HTTPAddr, e.GossipAddr, e.PeerAddr, e.Leaving = cur.HTTPAddr, cur.GossipAddr, cur.PeerAddr, cur.Leaving
		}
		if s, live := g.seen[id]; live && !e.Removed {
			e.GossipAddr = s.GossipAddr
		}
		g.roster[id] = e
		changed = true
		g.cfg.Clock.Update(e.Stamp) //nolint:errcheck // within the bound, checked above
	}
	if changed {
		g.dirty = true
	}
	return changed
}

// refuseLocked returns why the entry e, which beats this node's entry cur
// of the same node (had: there is one), is not taken from gossip; "" if it
// is. REQUIRES: g.mu.
func (g *Gossip) refuseLocked(e, cur rosterEntry, had bool) string {
	if !g.stampInBound(e.Stamp) {
		return "stamped beyond the clock bound"
	}
	if e.Removed {
		if !g.cfg.Secrets.Enabled() {
			return "" // no secret, nothing to prove a removal with
		}
		for _, k := range g.cfg.Secrets.All() {
			if hmac.Equal(e.Proof, removalProof(k.Internode, e.ID, e.Stamp)) {
				return ""
			}
		}
		return "a removal without a valid proof"
	}
	if e.ID == g.cfg.NodeID {
		return "only this node announces itself"
	}
	if st := g.live[e.ID]; st == Alive || st == Suspect {
		s, ok := g.seen[e.ID]
		if !ok || s.Stamp != e.Stamp || s.HTTPAddr != e.HTTPAddr || s.PeerAddr != e.PeerAddr || s.Leaving != e.Leaving {
			return "not what the member itself announces"
		}
		return ""
	}
	if had {
		return "a change of a member that is not alive to confirm it"
	}
	return ""
}

// stampInBound reports whether a member-list stamp is at most now plus
// the maximum clock offset and rosterStampMargin.
func (g *Gossip) stampInBound(stamp uint64) bool {
	c := g.cfg.Clock
	return stamp <= memtable.TimestampAt(c.Wall().Add(c.MaxOffset()+rosterStampMargin))
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
	stamp, leaving := g.self.Stamp, g.self.Leaving
	g.mu.Unlock()
	b, _ := json.Marshal(nodeMeta{HTTPAddr: g.cfg.HTTPAddr, PeerAddr: g.cfg.PeerAddr, Stamp: stamp, Leaving: leaving, Clock: true})
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
	remote, err := decodeRoster(b)
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
	remote, err := decodeRoster(buf)
	if err != nil {
		g.cfg.Logger.Warn("ignoring a malformed member list from a peer", "err", err)
		return
	}
	if g.merge(remote) {
		g.signal()
	}
}

// sameAnnouncement reports whether two entries say the same of a member.
func sameAnnouncement(a, b rosterEntry) bool {
	return a.Stamp == b.Stamp && a.HTTPAddr == b.HTTPAddr && a.GossipAddr == b.GossipAddr && a.PeerAddr == b.PeerAddr && a.Leaving == b.Leaving && a.Removed == b.Removed
}

// memberlist.EventDelegate

// NotifyJoin marks a node alive, and adds it to the ring if it is new.
func (g *Gossip) NotifyJoin(n *memberlist.Node) { g.noteNode(n, Alive) }

// NotifyUpdate notes changed metadata.
func (g *Gossip) NotifyUpdate(n *memberlist.Node) { g.noteNode(n, stateOf(n.State)) }

// NotifyLeave marks a node dead; it stays in the ring.
func (g *Gossip) NotifyLeave(n *memberlist.Node) {
	g.mu.Lock()
	g.setLiveLocked(n.Name, Dead)
	g.mu.Unlock()
	g.signal()
}

func (g *Gossip) noteNode(n *memberlist.Node, st MemberState) {
	var meta nodeMeta
	if err := json.Unmarshal(n.Meta, &meta); err != nil || meta.HTTPAddr == "" {
		g.cfg.Logger.Warn("ignoring a gossip member without ringkv metadata", "node", n.Name, "addr", n.Address())
		return
	}
	g.mu.Lock()
	g.setLiveLocked(n.Name, st)
	if meta.Clock {
		delete(g.noClock, n.Name)
	} else {
		if g.noClock == nil {
			g.noClock = map[string]bool{}
		}
		g.noClock[n.Name] = true
	}
	e := rosterEntry{ID: n.Name, HTTPAddr: meta.HTTPAddr, GossipAddr: n.Address(), PeerAddr: meta.PeerAddr, Stamp: meta.Stamp, Leaving: meta.Leaving}
	if !g.stampInBound(e.Stamp) {
		g.mu.Unlock()
		g.cfg.Logger.Warn("ignoring a gossip member whose stamp is beyond the clock bound", "node", n.Name, "stamp", meta.Stamp)
		return
	}
	if n.Name != g.cfg.NodeID {
		g.seen[n.Name] = e
	}
	// A member's own word on its entry wins over whatever was learnt of
	// it second-hand (a forged entry of a member this node had not met
	// would otherwise stick), except over a removal, which only a newer
	// entry (a new member of that id) beats.
	if cur, ok := g.roster[n.Name]; n.Name != g.cfg.NodeID && (!ok || e.beats(cur) || (!cur.Removed && !sameAnnouncement(cur, e))) {
		g.roster[n.Name] = e
		g.dirty = true
	}
	g.mu.Unlock()
	g.signal()
}

// Clock probes: besides memberlist's own probes (one member a second, so
// a peer is measured only every few seconds), a node sends each live
// member a clock ping as a gossip user message when the member comes
// alive and every second, so its clock is compared with its peers'
// within a round trip of their meeting. A ping carries the sender's send
// time (its own reference) and name; the reply echoes the send time and
// adds the replier's wall clock. Member lists are JSON, so they never
// start with these bytes.
const (
	msgClockPing  = 0x01 // | 8 bytes send time | sender name
	msgClockReply = 0x02 // | 8 bytes send time | clock payload | replier name
)

// pingClocks sends a clock ping to every live member but this one.
func (g *Gossip) pingClocks() {
	if g.cfg.Offsets == nil {
		return
	}
	msg := binary.BigEndian.AppendUint64([]byte{msgClockPing}, uint64(time.Since(g.started)))
	msg = append(msg, g.cfg.NodeID...)
	for _, m := range g.ml.Members() {
		if m.Name != g.cfg.NodeID {
			if err := g.ml.SendBestEffort(m, msg); err != nil {
				g.cfg.Logger.Debug("cannot send a clock ping", "node", m.Name, "err", err)
			}
		}
	}
}

// clockMsg answers a clock ping, or measures the offset a reply shows.
func (g *Gossip) clockMsg(b []byte) {
	switch {
	case b[0] == msgClockPing && len(b) > 9:
		from := string(b[9:])
		reply := append([]byte{msgClockReply}, b[1:9]...)
		reply = appendClockPayload(reply, g.cfg.Now())
		reply = append(reply, g.cfg.NodeID...)
		for _, m := range g.ml.Members() {
			if m.Name == from {
				if err := g.ml.SendBestEffort(m, reply); err != nil {
					g.cfg.Logger.Debug("cannot answer a clock ping", "node", from, "err", err)
				}
				return
			}
		}
	case b[0] == msgClockReply && len(b) > 9+clockPayloadLen && g.cfg.Offsets != nil:
		sent := time.Duration(binary.BigEndian.Uint64(b[1:9]))
		wall, ok := parseClockPayload(b[9 : 9+clockPayloadLen])
		rtt := time.Since(g.started) - sent
		if from := string(b[9+clockPayloadLen:]); ok && rtt >= 0 && from != g.cfg.NodeID {
			g.cfg.Offsets.Observe(from, wall, rtt)
		}
	}
}

// pingDelegate carries this node's wall clock on every probe's ack, and
// hands the clocks of probed peers, with the probe's round trip, to the
// clock monitor.
type pingDelegate struct{ g *Gossip }

func (p pingDelegate) AckPayload() []byte { return appendClockPayload(nil, p.g.cfg.Now()) }

func (p pingDelegate) NotifyPingComplete(other *memberlist.Node, rtt time.Duration, payload []byte) {
	if p.g.cfg.Offsets == nil || other == nil || other.Name == p.g.cfg.NodeID {
		return
	}
	if wall, ok := parseClockPayload(payload); ok {
		p.g.cfg.Offsets.Observe(other.Name, wall, rtt)
	}
}

// memberlistLog routes memberlist's "[LEVEL] memberlist: ..." lines to slog.
type memberlistLog struct{ lg *slog.Logger }

func (w *memberlistLog) Write(p []byte) (int, error) {
	line := string(bytes.TrimSpace(p))
	level := slog.LevelDebug
	switch {
	case bytes.Contains(p, []byte("[ERR]")):
		level = slog.LevelWarn // peers failing is routine for a failure detector
	case bytes.Contains(p, []byte("[WARN]")):
		level = slog.LevelInfo
	}
	w.lg.Log(nil, level, "gossip", "msg", line) //nolint:staticcheck // memberlist gives no context
	return len(p), nil
}

var _ Membership = (*Gossip)(nil)

// JoinUntil joins the cluster through addrs and the members of the stored
// member list, retrying with backoff until one answers or ctx ends. A
// restarted node finds its cluster this way even without --join.
func (g *Gossip) JoinUntil(ctx context.Context, addrs []string) {
	targets := slices.Clone(addrs)
	g.mu.Lock()
	for id, e := range g.roster {
		if id != g.cfg.NodeID && !e.Removed && e.GossipAddr != "" && !slices.Contains(targets, e.GossipAddr) {
			targets = append(targets, e.GossipAddr)
		}
	}
	g.mu.Unlock()
	if len(targets) == 0 {
		return
	}
	wait := 500 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := g.Join(targets)
		if err == nil {
			g.cfg.Logger.Info("joined the cluster", "via", targets)
			return
		}
		if attempt == 1 || attempt%10 == 0 {
			g.cfg.Logger.Warn("cannot join the cluster yet; retrying", "err", err, "attempt", attempt)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, 10*time.Second)
	}
}

// newGossipKeyring returns memberlist's keyring of every secret's gossip
// key, the primary secret's first (the one it encrypts with).
func newGossipKeyring(s *Secrets) (*memberlist.Keyring, error) {
	all := s.All()
	others := make([][]byte, 0, len(all))
	for _, k := range all[1:] {
		others = append(others, k.Gossip)
	}
	kr, err := memberlist.NewKeyring(others, all[0].Gossip)
	if err != nil {
		return nil, fmt.Errorf("gossip keyring: %w", err)
	}
	return kr, nil
}

// rotateKeys makes memberlist's keyring hold exactly the gossip keys of
// the current secrets, in the order that keeps every step readable by
// the members that have not caught up yet: new keys are added first (a
// packet under any of them is read from now on), then the primary is
// switched (this node encrypts with it), and only then are dropped keys
// removed. A keyring cannot become empty while memberlist runs, nor
// appear: turning encryption on or off takes a restart.
func (g *Gossip) rotateKeys(kr *memberlist.Keyring) {
	all := g.cfg.Secrets.All()
	switch {
	case kr == nil && len(all) == 0:
		return
	case kr == nil:
		g.cfg.Logger.Error("cluster secrets were added, but gossip was started without encryption: restart the node to encrypt gossip")
		return
	case len(all) == 0:
		g.cfg.Logger.Error("every cluster secret was removed; gossip keeps its keys until the node restarts (it cannot run unencrypted beside encrypted members)")
		return
	}
	for _, k := range all {
		if err := kr.AddKey(k.Gossip); err != nil {
			g.cfg.Logger.Error("cannot install a gossip key", "err", err)
			return
		}
	}
	if err := kr.UseKey(all[0].Gossip); err != nil {
		g.cfg.Logger.Error("cannot switch the primary gossip key", "err", err)
		return
	}
	for _, old := range kr.GetKeys() {
		if !slices.ContainsFunc(all, func(k ClusterKeys) bool { return bytes.Equal(k.Gossip, old) }) {
			if err := kr.RemoveKey(old); err != nil {
				g.cfg.Logger.Error("cannot remove a gossip key", "err", err)
			}
		}
	}
	g.cfg.Logger.Info("gossip keys installed", "keys", len(all))
}
