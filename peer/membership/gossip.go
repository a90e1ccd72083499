package membership

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/ringkv/ringkv/engine"
	"github.com/ringkv/ringkv/peer"
	"github.com/ringkv/ringkv/ring"
)

// Gossip is the membership layer: hashicorp/memberlist for failure
// detection, plus the durable member list that defines the ring, kept on
// disk and spread by memberlist's push/pull exchange and broadcasts. The
// ring changes only when a node joins for the first time or is removed; a
// node that fails or restarts stays in it. Its methods are safe for
// concurrent use; one goroutine of its own persists the list and hands
// out views.
type Gossip struct {
	cfg Config
	// ml is memberlist, set once Create returns: its handlers may call
	// the delegates before that (a clock ping from a member that still
	// sees this node alive, when it restarts).
	ml atomic.Pointer[memberlist.Memberlist]
	// keyring is memberlist's, nil without a cluster secret.
	keyring *memberlist.Keyring
	queue   *memberlist.TransmitLimitedQueue

	mu     sync.Mutex
	self   Entry
	roster List
	live   liveness // memberlist's word on each node
	// seen is each node's own word on its entry: what its memberlist
	// metadata last said (the stamp, HTTP address and leaving flag it
	// announces, at the address memberlist reached it at).
	seen map[string]Entry
	// holding: the members whose metadata says they are forming the
	// initial ring (holdFor above 0).
	holding map[string]bool
	// refusals gates the log lines of member-list entries refused.
	refusals peer.LogGate
	dirty    bool // roster changed since last persisted
	// dialing holds the members a reconnect is in flight to.
	dialing map[string]bool
	// reconnects counts reconnect attempts, for tests and metrics.
	reconnects atomic.Int64

	// advertised is the gossip address the others reach this node at.
	advertised string
	// entered is closed once this node is in a ring (not Joining).
	entered chan struct{}
	// holdFor: this node founded the initial ring (with BootstrapExpect
	// members seen, or as the lowest id); its views show no ring until
	// that many have entered it (holdLocked), so its first ring is the
	// whole initial one. 0: no hold.
	holdFor int
	// metaMu serializes memberlist's UpdateNode, which reads its own
	// node's state outside its lock while another call writes it.
	metaMu sync.Mutex
	// rejoining: a reconnect through Config.Join is in flight.
	rejoining atomic.Bool

	changed  chan struct{}
	pingSoon chan struct{} // a member came alive: compare clocks with it
	stop     chan struct{}
	done     chan struct{}
	dials    sync.WaitGroup // reconnects in flight
	started  time.Time      // the reference of clock pings' send times
}

var _ peer.Membership = (*Gossip)(nil)

// Start loads the durable member list, starts memberlist and the
// goroutine that turns membership events into views. It does not join
// anyone: call Join or JoinUntil. Its errors from the bind address match
// peer.ErrGossipAddr; a node that left or was removed gets
// peer.ErrLeftMember.
func Start(cfg Config) (*Gossip, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	host, port, err := splitBindAddr(cfg.BindAddr)
	if err != nil {
		return nil, err
	}
	g := newGossip(cfg)
	if err := g.load(); err != nil {
		return nil, err
	}
	mc, err := g.memberlistConfig(host, port)
	if err != nil {
		return nil, err
	}
	g.queue = &memberlist.TransmitLimitedQueue{NumNodes: g.numMembers, RetransmitMult: mc.RetransmitMult}
	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("%w %q: %v", peer.ErrGossipAddr, cfg.BindAddr, err)
	}
	g.ml.Store(ml)
	if cfg.Secrets != nil {
		cfg.Secrets.OnChange(func() { g.rotateKeys(g.keyring) })
	}
	if port == 0 {
		// memberlist picked a free port: listen there, and advertise it.
		g.cfg.BindAddr = net.JoinHostPort(host, strconv.Itoa(int(ml.LocalNode().Port)))
	}
	// What memberlist advertises, never 0.0.0.0: AdvertiseAddr, or the
	// private IP it picked for a node bound to every interface.
	ln := ml.LocalNode()
	g.advertised = net.JoinHostPort(ln.Addr.String(), strconv.Itoa(int(ln.Port)))
	g.mu.Lock()
	self, changed := selfEntry(g.roster, Entry{ID: cfg.NodeID, HTTPAddr: cfg.HTTPAddr, GossipAddr: g.advertised, PeerAddr: cfg.PeerAddr, Stamp: cfg.Clock.Now(), Joining: len(cfg.Join) > 0})
	g.roster[cfg.NodeID], g.self = self, self
	g.dirty = g.dirty || changed
	if !self.Joining {
		close(g.entered)
	}
	g.mu.Unlock()

	g.sendMeta()
	if cfg.Offsets != nil {
		cfg.Offsets.SetProbed()
	}
	g.publish()
	go g.loop()
	return g, nil
}

func splitBindAddr(addr string) (string, int, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("%w %q: %v", peer.ErrGossipAddr, addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return "", 0, fmt.Errorf("%w %q: the port is not a number", peer.ErrGossipAddr, addr)
	}
	return host, port, nil
}

func newGossip(cfg Config) *Gossip {
	return &Gossip{
		cfg:    cfg,
		roster: List{},
		live: liveness{
			state:   map[string]peer.MemberState{cfg.NodeID: peer.Alive},
			since:   map[string]time.Time{cfg.NodeID: cfg.Now()},
			noClock: map[string]bool{},
		},
		seen:     map[string]Entry{},
		holding:  map[string]bool{},
		dialing:  map[string]bool{},
		entered:  make(chan struct{}),
		changed:  make(chan struct{}, 1),
		pingSoon: make(chan struct{}, 1),
		started:  time.Now(),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
}

// load reads the stored member list, and refuses a node that left.
func (g *Gossip) load() error {
	eng := g.cfg.Engine
	if b, err := eng.GetMeta(rosterMeta); err == nil {
		if err := json.Unmarshal(b, &g.roster); err != nil {
			return fmt.Errorf("cannot read the stored member list: %w", err)
		}
	} else if !errors.Is(err, engine.ErrNotFound) {
		return err
	}
	left, err := eng.GetMeta(peer.LeftMetaKey)
	if err != nil && !errors.Is(err, engine.ErrNotFound) {
		return err
	}
	if id := g.cfg.NodeID; hasLeft(g.roster, id, left != nil) {
		return fmt.Errorf("%w: node %q left the cluster or was removed from it; its data is out of date, so it can join again only as a new node on an empty data directory (if the others still list it, run ringkv cluster remove %s)", peer.ErrLeftMember, id, id)
	}
	return nil
}

// memberlistConfig returns memberlist's configuration for this node,
// listening at host:port, and sets up g.keyring.
func (g *Gossip) memberlistConfig(host string, port int) (*memberlist.Config, error) {
	cfg := g.cfg
	mc := memberlist.DefaultLANConfig()
	mc.Name = cfg.NodeID
	mc.BindAddr, mc.BindPort = host, port
	switch {
	case cfg.AdvertiseAddr != "":
		ahost, aport, err := splitBindAddr(cfg.AdvertiseAddr)
		if err != nil {
			return nil, err
		}
		mc.AdvertiseAddr, mc.AdvertisePort = ahost, aport
	case !unspecified(host):
		mc.AdvertiseAddr, mc.AdvertisePort = host, port
	case port != 0:
		// Bound to every interface: memberlist advertises the host's
		// first private IP (go-sockaddr), or fails to start without one.
		// "::" would advertise "::": pick the address here too.
		ip, err := PrivateIP()
		if err != nil || ip == "" {
			return nil, fmt.Errorf("%w %q: bound to every interface, and this host has no private IP address to advertise (set the advertised gossip address)", peer.ErrGossipAddr, cfg.BindAddr)
		}
		mc.AdvertiseAddr, mc.AdvertisePort = ip, port
	}
	mc.Delegate = g
	mc.Merge = mergeGate{g}
	mc.Events = g
	mc.Ping = pingDelegate{g}
	mc.LogOutput = &memberlistLog{lg: cfg.Logger}
	if cfg.Secrets.Enabled() {
		kr, err := newGossipKeyring(cfg.Secrets)
		if err != nil {
			return nil, err
		}
		mc.Keyring, g.keyring = kr, kr
		// A packet without the cluster's key is never read, and this
		// node never sends one in the clear: a member without the
		// credential cannot enter the view, so it never enters the ring.
		mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = true, true
	}
	if cfg.Tune != nil {
		cfg.Tune(mc)
	}
	return mc, nil
}

// numMembers is memberlist's count of live members (1, this node, until
// memberlist is up).
func (g *Gossip) numMembers() int {
	if ml := g.ml.Load(); ml != nil {
		return ml.NumMembers()
	}
	return 1
}

// GossipAddr returns the gossip address the other members reach this
// node at (the advertised one).
func (g *Gossip) GossipAddr() string { return g.advertised }

// Join contacts members at addrs and exchanges member lists with them.
func (g *Gossip) Join(addrs []string) error {
	n, err := g.ml.Load().Join(addrs)
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
		return fmt.Errorf("%w: %q", peer.ErrUnknownMember, id)
	}
	var key []byte
	if k, ok := g.cfg.Secrets.Primary(); ok {
		key = k.Internode
	}
	g.roster[id] = removed(e, g.cfg.Clock.Now(), key)
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
		return fmt.Errorf("%w: %q has left", peer.ErrUnknownMember, g.cfg.NodeID)
	}
	if e, changed := leaving(e, g.cfg.Clock.Now()); changed {
		g.roster[g.cfg.NodeID], g.self = e, e
		g.dirty = true
	}
	g.mu.Unlock()
	g.sendMeta()
	g.signal()
	g.broadcast()
	return nil
}

// Close tells the other members this node is going away (they mark it
// down at once and keep hints for it; it stays in the ring), then stops.
func (g *Gossip) Close() error {
	err := g.ml.Load().Leave(2 * time.Second)
	close(g.stop)
	<-g.done
	if serr := g.ml.Load().Shutdown(); err == nil {
		err = serr
	}
	// A reconnect to a member cut off waits out memberlist's TCP timeout
	// (10s); after Shutdown it can do nothing, so it is not waited for
	// longer than a moment.
	dialed := make(chan struct{})
	go func() { g.dials.Wait(); close(dialed) }()
	t := time.NewTimer(time.Second)
	defer t.Stop()
	select {
	case <-dialed:
	case <-t.C:
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
	t := time.NewTicker(g.cfg.LivenessInterval)
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
	targets := reconnectTargets(g.roster, g.cfg.NodeID, g.live.state, g.dialing)
	for _, e := range targets {
		g.dialing[e.ID] = true
	}
	g.mu.Unlock()
	if len(targets) > 0 {
		g.rejoin()
	}
	for _, e := range targets {
		g.reconnects.Add(1)
		g.dials.Go(func() {
			defer func() {
				g.mu.Lock()
				delete(g.dialing, e.ID)
				g.mu.Unlock()
			}()
			if _, err := g.ml.Load().Join([]string{e.GossipAddr}); err != nil {
				g.cfg.Logger.Debug("cannot reach a dead member yet", "node", e.ID, "addr", e.GossipAddr, "err", err)
				return
			}
			g.cfg.Logger.Info("reached a member reported dead", "node", e.ID, "addr", e.GossipAddr)
		})
	}
}

// setLiveLocked records st as memberlist's word on id, and since when.
// REQUIRES: g.mu.
func (g *Gossip) setLiveLocked(id string, st peer.MemberState) {
	if g.live.state[id] != st {
		if st == peer.Alive {
			select {
			case g.pingSoon <- struct{}{}:
			default:
			}
		}
		g.live.state[id] = st
		g.live.since[id] = g.cfg.Now()
	}
}

// refreshLiveness reads suspect/alive states from memberlist.
func (g *Gossip) refreshLiveness() {
	ms := g.ml.Load().Members()
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, m := range ms {
		if m.Name != g.cfg.NodeID {
			g.setLiveLocked(m.Name, stateOf(m.State))
		}
	}
}

func stateOf(s memberlist.NodeStateType) peer.MemberState {
	switch s {
	case memberlist.StateAlive:
		return peer.Alive
	case memberlist.StateSuspect:
		return peer.Suspect
	}
	// Left means the node shut down, not that it left the ring.
	return peer.Dead
}

// publish enters this node into the ring if it may (enter), persists the
// member list if it changed and hands out a new view.
func (g *Gossip) publish() {
	g.enter()
	g.persist()
	g.mu.Lock()
	v := buildView(g.roster, g.live, g.cfg.NodeID, g.cfg.VNodes, g.cfg.Replicas)
	released := g.releaseLocked()
	if g.holdLocked() {
		v.Ring = ring.New(nil, g.cfg.VNodes, g.cfg.Replicas)
	}
	g.mu.Unlock()
	if released {
		g.updateMeta()
	}
	g.cfg.OnView(v)
}

// persist stores the member list if it changed since it was last stored.
// Start calls it once before the loop starts, then only the loop does, so
// snapshots are written in order.
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
