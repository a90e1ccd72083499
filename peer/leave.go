package peer

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/ringkv/ringkv/ring"
)

// This file is graceful leave: a node takes itself out of the ring but
// keeps serving, the nodes that the smaller ring gives its ranges pull
// them (from it and the other old owners), and once every remaining member
// reports that it holds all of its ranges, the node marks itself removed.
// Until then it is listed as leaving; it never goes while a member could
// still need its copy.

// leaveStatus is what ClusterStatus.Leave shows.
func (r *Rebalancer) leaveStatus() string {
	if s := r.leaveState.Load(); s != nil {
		return *s
	}
	return ""
}

func (r *Rebalancer) setLeave(format string, a ...any) {
	s := fmt.Sprintf(format, a...)
	if old := r.leaveState.Load(); old == nil || *old != s {
		r.cfg.Logger.Info("leave: " + s)
	}
	r.leaveState.Store(&s)
}

// startLeave is Node.StartLeave.
func (r *Rebalancer) startLeave() error {
	if err := r.canLeave(); err != nil {
		return err
	}
	if !r.leaveRunning.CompareAndSwap(false, true) {
		return nil
	}
	// Before returning: a caller polling the status must not read the
	// failure of an earlier attempt as this one's.
	r.setLeave("starting")
	r.wg.Go(func() {
		defer r.leaveRunning.Store(false)
		if err := r.runLeave(r.ctx); err != nil {
			r.setLeave("failed: %v", err)
		}
	})
	return nil
}

// Leave hands this node's ranges over and takes it out of the cluster; it
// returns once every remaining member holds the ranges it gained, or when
// ctx ends (the node then stays out of the ring, listed as leaving, and a
// later Leave picks up where this one stopped).
func (r *Rebalancer) Leave(ctx context.Context) error {
	if err := r.canLeave(); err != nil {
		return err
	}
	err := r.runLeave(ctx)
	if err != nil {
		r.setLeave("stopped: %v", err)
	}
	return err
}

func (r *Rebalancer) canLeave() error {
	if r.deps.membership() == nil {
		return ErrNoMembership
	}
	if r.cfg.Transport == nil {
		return errors.New("peer: no transport")
	}
	if v := r.view.Load(); v.Ring.Has(r.cfg.NodeID) && len(v.Ring.Nodes()) == 1 {
		return ErrOnlyMember
	}
	return nil
}

func (r *Rebalancer) runLeave(ctx context.Context) error {
	m := r.deps.membership()
	self := r.cfg.NodeID
	if v := r.view.Load(); v.Members[self].State == Left {
		r.setLeave("left")
		return nil
	}
	if err := m.Leave(); err != nil {
		return err
	}
	r.setLeave("handing ranges over")
	if err := r.awaitHandover(ctx); err != nil {
		return err
	}
	// Recorded before anyone hears of it: a node stopped the moment its
	// leave is done must still refuse, when started again, to rejoin with
	// its stale data (see membership.Start).
	if err := r.cfg.Engine.SetMeta(leftMeta, []byte("1")); err != nil {
		return fmt.Errorf("cannot record that this node left: %w", err)
	}
	if err := m.Remove(self); err != nil {
		return err
	}
	// The removal spreads by gossip: a node stopped before any member
	// heard of it would stay in their lists as a dead member, for good.
	r.setLeave("left: waiting for the other members to hear of it")
	r.awaitRemovalSeen(ctx)
	r.setLeave("left")
	return nil
}

// removalSeenWait bounds awaitRemovalSeen: past it, the members that have
// not heard yet learn of the removal from the others, by gossip.
const removalSeenWait = 30 * time.Second

// awaitRemovalSeen returns once every other member this node sees alive
// shows it left (GET /v1/cluster), after removalSeenWait, or when ctx
// ends: its leave is done either way, its ranges held by the others.
func (r *Rebalancer) awaitRemovalSeen(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, removalSeenWait)
	defer cancel()
	self := r.cfg.NodeID
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		v := r.view.Load()
		unaware := ""
		for _, id := range slices.Sorted(maps.Keys(v.Members)) {
			m, ok := v.reachable(id)
			if id == self || !ok {
				continue
			}
			sctx, scancel := context.WithTimeout(ctx, 5*time.Second)
			st, err := r.cfg.Transport.Status(sctx, m.HTTPAddr)
			scancel()
			if err != nil || !slices.ContainsFunc(st.Members, func(mm Member) bool { return mm.ID == self && mm.State == Left }) {
				unaware = id
				break
			}
		}
		if unaware == "" {
			return
		}
		r.setLeave("left: waiting for %s to hear of it", unaware)
		select {
		case <-ctx.Done():
			r.cfg.Logger.Warn("leave done, but some members have not heard of it yet: gossip will tell them", "member", unaware)
			return
		case <-tick.C:
		}
	}
}

// awaitHandover returns once the ring without this node has every range
// it held, checked, or when ctx ends.
func (r *Rebalancer) awaitHandover(ctx context.Context) error {
	self := r.cfg.NodeID
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var ho handover // ranges shown held, across the rounds of this leave
	for {
		v := r.view.Load()
		why := ""
		switch {
		case v.Ring.Has(self):
			why = "waiting for this node's leave to reach its own ring"
		case len(v.Ring.Nodes()) == 0:
			return errors.New("no other member would hold the data")
		default:
			why = r.othersHoldRanges(ctx, v)
			if why == "" {
				// Checked, not taken on their word: the node's copy is
				// about to be the cluster's no longer.
				why = r.handedOver(ctx, v, []ring.Span{{Lo: 0, Hi: 0}}, &ho)
			}
		}
		if why == "" {
			return nil
		}
		r.setLeave("handing ranges over: %s", why)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// othersHoldRanges asks every member of v's ring whether it holds all of
// its ranges of that ring; it returns why not, or "" when all do.
func (r *Rebalancer) othersHoldRanges(ctx context.Context, v *View) string {
	want := sortedNodes(v.Ring)
	for _, id := range want {
		m, ok := v.reachable(id)
		if !ok {
			return fmt.Sprintf("%s is down", id)
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		st, err := r.cfg.Transport.Status(cctx, m.HTTPAddr)
		cancel()
		if err != nil {
			return fmt.Sprintf("%s does not answer: %v", id, err)
		}
		if st.Self != id {
			return fmt.Sprintf("%s's address %s answers as %s", id, m.HTTPAddr, st.Self)
		}
		var ring []string
		for _, mm := range st.Members {
			if mm.State != Left && !mm.Leaving {
				ring = append(ring, mm.ID)
			}
		}
		slices.Sort(ring)
		if !slices.Equal(ring, want) {
			return fmt.Sprintf("%s does not see this node's leave yet", id)
		}
		if !st.Settled {
			left := ""
			if len(st.Transfers) > 0 {
				t := st.Transfers[0]
				left = fmt.Sprintf(" (%d of %d ranges)", t.RangesDone, t.RangesTotal)
			}
			return fmt.Sprintf("%s is pulling its new ranges%s", id, left)
		}
	}
	return ""
}

// StartLeave begins Leave in the background and returns at once; the
// progress shows in ClusterStatus.Leave. Calling it again while a leave
// runs does nothing.
func (n *Node) StartLeave() error { return n.reb.startLeave() }
