package membership

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/ringkv/ringkv/peer"
)

// How a cluster bootstraps (README, "Starting a cluster"):
//
//   - A brand-new node without Config.Join founds a ring of its own at
//     Start.
//   - A brand-new node with Join starts out of any ring (Entry.Joining)
//     and never founds one while its targets are unreachable. It enters
//     a ring as soon as it sees a member of one alive; with
//     BootstrapExpect N and no ring in sight, once it sees N members
//     (brand-new ones), and its views show no ring until N have entered,
//     so the initial ring of N is every node's first; without
//     BootstrapExpect, the brand-new node of the lowest id among those
//     that met founds, and the others enter its ring (the founder shows
//     no ring until one has: never a ring of one).
//   - A node that was in a ring stays in it across restarts.
//   - Two rings that each have more than one member and share none are
//     never merged (mergeGate).

// enter takes this node into the ring when it is joining and may enter
// now (entering), announcing itself anew.
func (g *Gossip) enter() {
	g.mu.Lock()
	if !g.self.Joining {
		g.mu.Unlock()
		return
	}
	alive := g.aliveLocked()
	why := entering(g.roster, alive, g.cfg.NodeID, g.cfg.BootstrapExpect, g.holding)
	if why == "" {
		g.mu.Unlock()
		return
	}
	e := g.self
	e.Joining = false
	e.Stamp = max(g.cfg.Clock.Now(), satInc(e.Stamp))
	g.roster[e.ID], g.self = e, e
	g.dirty = true
	switch why {
	case "expect":
		g.holdFor = g.cfg.BootstrapExpect
	case "lowest":
		g.holdFor = 2 // a founder shows no ring of one: it has met others
	}
	close(g.entered)
	g.mu.Unlock()
	g.cfg.Logger.Info("entering the ring", "why", why, "members_seen", alive, "bootstrap_expect", g.cfg.BootstrapExpect)
	// The new entry travels as this node's metadata and in the list.
	g.updateMeta()
	g.broadcast()
}

// aliveLocked returns the ids of the members not removed that memberlist
// reports alive, this node included, ordered.
// REQUIRES: g.mu.
func (g *Gossip) aliveLocked() []string {
	var ids []string
	for id, e := range g.roster {
		if !e.Removed && (id == g.cfg.NodeID || g.live.state[id] == peer.Alive) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// holdLocked reports whether this node's views show no ring yet: it is
// joining, or it founded the initial ring (holdFor: the members it waits
// to see in it, BootstrapExpect, or 2 without) and fewer have entered it.
// REQUIRES: g.mu.
func (g *Gossip) holdLocked() bool {
	return g.self.Joining || g.holdFor > 0 && len(formed(g.roster)) < g.holdFor
}

// releaseLocked ends the hold once enough members have entered the
// initial ring; released says it just ended (the node's metadata, which
// says it holds, must be sent again).
// REQUIRES: g.mu.
func (g *Gossip) releaseLocked() (released bool) {
	if g.holdFor > 0 && !g.holdLocked() {
		g.holdFor = 0
		return true
	}
	return false
}

// updateMeta sends this node's metadata again, in the background
// (UpdateNode waits for its broadcast: not on the loop).
func (g *Gossip) updateMeta() { g.dials.Go(g.sendMeta) }

// sendMeta sends this node's metadata again, and waits up to a second for
// its broadcast.
func (g *Gossip) sendMeta() {
	g.metaMu.Lock()
	defer g.metaMu.Unlock()
	if err := g.ml.Load().UpdateNode(time.Second); err != nil {
		g.cfg.Logger.Debug("cannot update gossip metadata", "err", err)
	}
}

// Joining reports whether this node is not in a ring yet (brand new with
// Config.Join, waiting to meet a ring or for the initial ring's members)
// and, if so, what it waits for: /healthz answers "not ready" meanwhile.
func (g *Gossip) Joining() (string, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch n := len(g.aliveLocked()); {
	case g.self.Joining && g.cfg.BootstrapExpect > 0:
		return fmt.Sprintf("waiting for the initial ring's %d members (--bootstrap-expect), or a ring to join; %d seen", g.cfg.BootstrapExpect, n), true
	case g.self.Joining:
		return fmt.Sprintf("waiting to meet a member of --join %v; %d members seen", g.cfg.Join, n), true
	case g.holdLocked() && g.holdFor > 0:
		return fmt.Sprintf("waiting for the initial ring's %d members to enter it; %d have", g.holdFor, len(formed(g.roster))), true
	}
	return "", false
}

// JoinUntil joins the cluster through Config.Join (every address behind
// each name, resolved again at each attempt, this node's own skipped) and
// the members of the stored member list, until a member other than this
// node answers and this node is in a ring. It retries with jittered
// backoff (Config.JoinRetryMin doubling to JoinRetryMax), logging its
// progress every few seconds. It returns nil then, or at once when it has
// nothing to join (a node that founds its ring); or, when ctx ends first,
// an error saying what it last saw. A restarted node finds its cluster
// this way even without Join.
func (g *Gossip) JoinUntil(ctx context.Context) error {
	var gate peer.LogGate
	wait := g.cfg.JoinRetryMin
	entered := g.entered // nil once it fired: closed, it would spin
	for attempt := 1; ; attempt++ {
		why, done := g.joinAttempt(ctx)
		if done {
			g.cfg.Logger.Info("joined the cluster", "attempts", attempt)
			return nil
		}
		if skipped, ok := gate.Allow(); ok {
			g.cfg.Logger.Warn("not in the cluster yet; retrying", "why", why, "attempt", attempt, "next_in", wait, "lines_skipped", skipped)
		}
		t := time.NewTimer(jitter(wait))
		select {
		case <-ctx.Done():
			t.Stop()
			if _, done := g.joinAttempt(context.WithoutCancel(ctx)); done {
				return nil
			}
			return fmt.Errorf("cannot join the cluster (%w): %s", ctx.Err(), why)
		case <-entered:
			entered = nil
		case <-t.C:
		}
		t.Stop()
		wait = min(2*wait, g.cfg.JoinRetryMax)
	}
}

// jitter returns d spread over [d/2, d), so that nodes started together
// do not retry in step.
func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d/2+1)
}

// joinAttempt contacts the join targets that are not members alive yet;
// done says this node is in a ring and has met a member, or has nothing
// to join; why says what it waits for otherwise.
func (g *Gossip) joinAttempt(ctx context.Context) (why string, done bool) {
	targets, errs := g.joinTargets(ctx)
	g.mu.Lock()
	others := len(g.aliveLocked()) - 1
	none := len(g.cfg.Join) == 0 && len(joinTargets(g.roster, g.cfg.NodeID, nil)) == 0
	g.mu.Unlock()
	if none {
		return "", true // founds its ring: nothing to join
	}
	var err error
	if len(targets) > 0 {
		var n int
		n, err = g.ml.Load().Join(targets)
		if n > 0 {
			err = nil
			g.broadcast()
			others = max(others, 1)
		}
	}
	// Read again: the node may have entered the ring meanwhile.
	if why, waiting := g.Joining(); !waiting && (others > 0 || g.cfg.BootstrapExpect == 1) {
		return "", true // --bootstrap-expect 1: a ring of one, on purpose
	} else if waiting && others > 0 {
		return why, false
	}
	err = errors.Join(append(errs, err)...)
	switch {
	case len(targets) == 0 && err == nil:
		err = errors.New("no address to contact but this node's own")
	case err == nil:
		err = errors.New("no member answered")
	}
	return fmt.Sprintf("no member answered at %v: %s", targets, strings.Join(strings.Fields(err.Error()), " ")), false
}

// joinTargets returns the addresses to contact: every address of
// Config.Join's names and the stored members' gossip addresses, without
// this node's and those of members memberlist reports alive; errs are the
// names that did not resolve.
func (g *Gossip) joinTargets(ctx context.Context) ([]string, []error) {
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resolved, errs := resolveTargets(lctx, g.cfg.Resolve, g.cfg.Join, g.advertised)
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []string
	for _, a := range joinTargets(g.roster, g.cfg.NodeID, resolved) {
		if !sameAddr(a, g.advertised) && !g.aliveAtLocked(a) {
			out = append(out, a)
		}
	}
	return out, errs
}

// aliveAtLocked reports whether a member memberlist reports alive is at
// gossip address a.
// REQUIRES: g.mu.
func (g *Gossip) aliveAtLocked(a string) bool {
	for id, s := range g.seen {
		if g.live.state[id] == peer.Alive && sameAddr(s.GossipAddr, a) {
			return true
		}
	}
	return false
}

// rejoin contacts, in the background, the addresses behind Config.Join
// that are not members alive: the reconnect loop calls it while members
// of the ring are dead, since a member that came back elsewhere (a pod
// rescheduled with a new IP) is found through its name, not at the
// address stored. At most one runs at a time.
func (g *Gossip) rejoin() {
	if len(g.cfg.Join) == 0 || !g.rejoining.CompareAndSwap(false, true) {
		return
	}
	g.dials.Go(func() {
		defer g.rejoining.Store(false)
		targets, _ := g.joinTargets(context.Background())
		if len(targets) == 0 {
			return
		}
		if _, err := g.ml.Load().Join(targets); err != nil {
			g.cfg.Logger.Debug("cannot reach --join's addresses", "addrs", targets, "err", err)
		}
	})
}
