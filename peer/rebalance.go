package peer

import (
	"errors"
	"fmt"
	"slices"

	"github.com/ringkv/ringkv/ring"
)

// This file is the decision half of rebalancing: pure functions of values
// (the stored rebalanceState, the published View, this node's id), with no
// I/O, no clock and no locks. The rebalancer (transfer.go) executes what
// they decide; testdata/rebalance holds their transcripts.

// rebalancePlan is what a node must do to hold every range of a ring.
type rebalancePlan struct {
	// Pull lists the moves of the current ring that give this node a
	// range it did not hold in its settled ring, in token order; Done
	// the ranges of them already pulled toward this same ring
	// (Range.String()).
	Pull []ring.Move
	Done map[string]bool
	// Pending is Pull without Done: reads of their keys answer a
	// PendingError naming the old owners (From) until they are in.
	Pending []ring.Move
	// Drop lists the ranges the node gives away in this move, to delete
	// once every member holds its ranges (see settledState); every range
	// it does not own when an earlier drop was abandoned.
	Drop []ring.Range
	// Settle says that, with nothing left to pull, the node records the
	// current ring as settled.
	Settle bool
}

// plan decides, from the stored state st and the view v, what node self
// must pull (and what it may drop afterwards) to hold every range of v's
// ring; replicas is the configured N (the ring caps it at its size). No
// Pull means the node is settled, alone, or out of the ring.
func plan(st rebalanceState, v *View, self string, replicas int) rebalancePlan {
	cur := v.Ring.Nodes()
	if !slices.Contains(cur, self) {
		return rebalancePlan{} // not (or no longer) in the ring: nothing to hold
	}
	settled := st.Settled
	if settled == nil {
		settled = joinedBefore(v, self)
	}
	var moves []ring.Move
	if !slices.Equal(settled, cur) {
		var prev *ring.Ring
		if len(settled) > 0 {
			prev = ring.New(settled, v.Ring.VNodes(), replicas)
		}
		moves = ring.Diff(prev, v.Ring)
	}
	var p rebalancePlan
	for _, m := range moves {
		if slices.Contains(m.To, self) && !slices.Contains(m.From, self) && len(m.From) > 0 {
			p.Pull = append(p.Pull, m)
		}
	}
	switch {
	case st.Settled == nil:
		// Never settled: it holds nothing to give away.
	case st.orphaned():
		p.Drop = unowned(v.Ring, self)
	default:
		p.Drop = givenAway(moves, self)
	}
	p.Done = map[string]bool{}
	if slices.Equal(st.Target, cur) {
		for _, d := range st.Done {
			p.Done[d] = true
		}
	}
	p.Pending = pendingOf(p.Pull, p.Done)
	// Alone and never settled, a node may be a joiner before its first
	// gossip exchange: settling then would skip its pulls.
	alone := len(cur) == 1 && st.Settled == nil
	p.Settle = !slices.Equal(st.Settled, cur) && !alone
	return p
}

// joinedBefore is the settled ring of a node that never settled: it is
// joining the members that joined before it, and pulls from them; the
// first members pull nothing.
func joinedBefore(v *View, self string) []string {
	mine := v.Members[self].Joined
	out := []string{}
	for _, id := range v.Ring.Nodes() {
		if m, ok := v.Members[id]; ok && id != self && m.Joined < mine {
			out = append(out, id)
		}
	}
	return out
}

// givenAway returns the ranges of moves that self held and no longer
// does.
func givenAway(moves []ring.Move, self string) []ring.Range {
	var out []ring.Range
	for _, m := range moves {
		if slices.Contains(m.From, self) && !slices.Contains(m.To, self) {
			out = append(out, m.Range)
		}
	}
	return out
}

// pendingOf returns the moves of pull whose range is not done, or nil.
func pendingOf(pull []ring.Move, done map[string]bool) []ring.Move {
	var left []ring.Move
	for _, m := range pull {
		if !done[m.Range.String()] {
			left = append(left, m)
		}
	}
	return left
}

// withPulled is st once the range rg of ring cur is in: the move toward
// cur records it as done. A drop still waiting is abandoned (Orphans),
// since the ring it was planned in is gone.
func (st rebalanceState) withPulled(cur []string, rg ring.Range) rebalanceState {
	next := rebalanceState{Settled: st.Settled, Target: slices.Clone(cur), Orphans: st.orphaned(), KeptSince: st.KeptSince}
	if slices.Equal(st.Target, cur) {
		next.Done = slices.Clone(st.Done)
	}
	next.Done = append(next.Done, rg.String())
	return next
}

// settledState is the state that records that the node holds every range
// of ring cur, with the ranges of p to drop once every member holds its
// ranges.
//
// Those are the ranges it gave away in this move and, if an earlier Drop
// was abandoned because the ring changed before it could run, every range
// it does not own: a copy kept past its drop misses the deletes made while
// others own the range, and if the range came back to this node after
// their tombstones were collected, merging the old copy would bring the
// deleted keys back. (A range given back before the drop is safe too:
// until the drop the node reports KeptSince as its clean pass, so the GC
// horizon keeps the tombstones its copy missed until it has merged them.)
//
// clean is the start of the node's last clean anti-entropy pass: no pass
// completes between its view change and its settle, so that pass began
// before it gave the ranges away.
func settledState(st rebalanceState, p rebalancePlan, cur []string, clean uint64) rebalanceState {
	next := rebalanceState{Settled: slices.Clone(cur)}
	if st.Settled == nil || len(p.Drop) == 0 {
		return next
	}
	next.Drop, next.DropRing, next.KeptSince = p.Drop, next.Settled, clean
	if st.orphaned() {
		next.KeptSince = st.KeptSince
	}
	return next
}

// abandonDrop is st when the ring changed before its drop could run: the
// next settle drops whatever the node does not own then.
func (st rebalanceState) abandonDrop() rebalanceState {
	st.Drop, st.DropRing, st.Orphans = nil, nil, true
	return st
}

// dropped is st once its given-away ranges are deleted.
func (st rebalanceState) dropped() rebalanceState {
	st.Drop, st.DropRing, st.Orphans, st.KeptSince = nil, nil, false, 0
	return st
}

// unowned returns the ranges of r that self does not own, adjacent ones
// merged.
func unowned(r *ring.Ring, self string) []ring.Range {
	var out []ring.Range
	for _, or := range r.Ranges() {
		if slices.Contains(or.Owners, self) {
			continue
		}
		if k := len(out); k > 0 && out[k-1].End == or.Start {
			out[k-1].End = or.End
			continue
		}
		out = append(out, or.Range)
	}
	return out
}

// pullQuorum fetches m's range from a quorum of its old owners
// (len(From)/2+1, so that every write a quorum acknowledged is in at least
// one of the copies), asking them in order and skipping those v says are
// down; fetch pulls from one.
func pullQuorum(v *View, m ring.Move, fetch func(from Member) error) error {
	need := len(m.From)/2 + 1
	got := 0
	var errs []error
	for _, from := range m.From {
		mem, ok := v.reachable(from)
		if !ok {
			errs = append(errs, fmt.Errorf("%s is down", from))
			continue
		}
		if err := fetch(mem); err != nil {
			errs = append(errs, fmt.Errorf("from %s: %w", from, err))
			continue
		}
		if got++; got == need {
			return nil
		}
	}
	return fmt.Errorf("range %s: %d of the %d old owners needed answered: %w", m.Range, got, need, errors.Join(errs...))
}
