package peer

import (
	"slices"

	"github.com/ringkv/ringkv/ring"
)

// Publishing views. The membership layer hands the node a new View every
// gossip tick (SetView); the rebalancer publishes it, in order with three
// things that must not interleave with a ring change:
//
//   - the pending ranges of a new ring (those it gives this node and the
//     node has yet to pull) are published before the ring itself, so no
//     read is answered from a partial copy;
//   - the rebalance loop republishes pending ranges only for the ring it
//     planned for (setPendingIfRing), never over a newer ring's;
//   - the ring does not change between the check that a drop's ring is
//     still current and the deletion of the given-away ranges (a range
//     given back would lose the writes it took meanwhile). A ring change
//     that comes during the deletion waits in deferred, and the drop
//     publishes it when it is done: the caller of SetView never waits.
//
// All three hold viewMu for a few memory operations and a plan over
// values (the stored state is kept in memory); none does I/O under it.

// publish installs v, or defers it while a drop commits if it changes the
// ring.
func (r *Rebalancer) publish(v *View) {
	r.viewMu.Lock()
	defer r.viewMu.Unlock()
	if r.dropping && !slices.Equal(r.view.Load().Ring.Nodes(), v.Ring.Nodes()) {
		r.deferred = v
		return
	}
	r.deferred = nil // a later view of the same ring wins
	r.publishLocked(v)
}

// publishLocked swaps v in. REQUIRES: r.viewMu.
func (r *Rebalancer) publishLocked(v *View) {
	ringChanged := false
	if old := r.view.Load(); old == nil || !slices.Equal(old.Ring.Nodes(), v.Ring.Nodes()) {
		// Before the new ring is used, mark what it gives this node that
		// it has yet to pull.
		r.setPending(r.planFor(v).Pending)
		ringChanged = true
	}
	old := r.view.Swap(v)
	// Not NewNode's placeholder ring of this node alone: it was never a
	// ring the cluster wrote to it by.
	replaced := ringChanged && old != nil && r.gen.Load() > 0
	r.deps.swapped(old, v, replaced)
	if ringChanged {
		r.gen.Add(1)
		signal(r.kick) // after the swap: the pull must see the new ring
	}
}

// beginDrop reports whether the ring is still dropRing, and if so holds
// back ring changes until endDrop.
func (r *Rebalancer) beginDrop(dropRing []string) bool {
	r.viewMu.Lock()
	defer r.viewMu.Unlock()
	if !slices.Equal(r.view.Load().Ring.Nodes(), dropRing) {
		return false
	}
	r.dropping = true
	return true
}

// endDrop publishes the ring change that came during the drop, if any.
func (r *Rebalancer) endDrop() {
	r.viewMu.Lock()
	defer r.viewMu.Unlock()
	r.dropping = false
	if v := r.deferred; v != nil {
		r.deferred = nil
		r.publishLocked(v)
	}
}

// setPending publishes the ranges this node still has to pull, with their
// old owners; reads of their keys answer a PendingError until then.
func (r *Rebalancer) setPending(left []ring.Move) {
	if len(left) == 0 {
		r.pending.Store(nil)
		return
	}
	r.pending.Store(&left)
}

// setPendingIfRing is setPending for the rebalance loop, which planned for
// ring cur: if the ring has changed since, publish already set the
// pending ranges of the new one, and they must not be overwritten.
func (r *Rebalancer) setPendingIfRing(cur []string, left []ring.Move) {
	r.viewMu.Lock()
	defer r.viewMu.Unlock()
	if slices.Equal(r.view.Load().Ring.Nodes(), cur) {
		r.setPending(left)
	}
}

// pulling reports whether any range of the current ring is still pending.
func (r *Rebalancer) pulling() bool { return r.pending.Load() != nil }

// spanPending reports whether the token span [lo, hi) (hi 0: to 2^64)
// overlaps a range this node is still pulling.
func (r *Rebalancer) spanPending(lo, hi uint64) bool {
	p := r.pending.Load()
	if p == nil {
		return false
	}
	last := hi - 1 // inclusive; hi 0 wraps to MaxUint64
	for _, rg := range *p {
		for _, sp := range rg.Spans() {
			if sp.Lo <= last && lo <= sp.Hi-1 {
				return true
			}
		}
	}
	return false
}

// pendingFrom returns the old owners of the range holding tok, if this
// node is still pulling that range.
func (r *Rebalancer) pendingFrom(tok uint64) ([]string, bool) {
	p := r.pending.Load()
	if p == nil {
		return nil, false
	}
	for _, m := range *p {
		if m.Contains(tok) {
			return m.From, true
		}
	}
	return nil, false
}
