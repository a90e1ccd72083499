package peer

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/ringkv/ringkv/engine"
	"github.com/ringkv/ringkv/memtable"
)

// hintBatch is how many hints one replay message carries.
const hintBatch = 256

// Defaults of Config.MaxHintBytes and MaxHintAge: Cassandra keeps hints
// for 3h (max_hint_window), after which repair takes over.
const (
	DefaultMaxHintBytes = 1 << 30
	DefaultMaxHintAge   = 3 * time.Hour
)

// dropReason says why a hint was dropped, for ringkv_hints_dropped_total.
type dropReason int

const (
	dropBytes dropReason = iota // the member's hints were at MaxHintBytes
	dropAge                     // older than MaxHintAge
	numDropReasons
)

var dropReasonNames = [numDropReasons]string{dropBytes: "bytes", dropAge: "age"}

// hint durably queues m for the owner id, to be replayed when it is alive,
// unless the bounds on id's hints drop it. A hint that cannot be kept (a
// full disk refuses them all) is logged at most every hintLogEvery, with a
// count of the others; so are dropped ones.
func (n *Node) hint(id string, m Mutation) {
	if n.cfg.MaxHintAge > 0 {
		if v, err := memtable.DecodeVersion(m.Record); err == nil && memtable.TimestampTime(v.TS).Before(n.cfg.Now().Add(-n.cfg.MaxHintAge)) {
			n.dropHints(id, dropAge, 1)
			return
		}
	}
	err := n.cfg.Engine.AddHintMax(id, m.Key, m.Record, n.cfg.MaxHintBytes)
	if errors.Is(err, engine.ErrHintsFull) {
		n.dropHints(id, dropBytes, 1)
		return
	}
	if err != nil {
		n.hintsLost.Add(1)
		if lost, ok := n.hintLog.allow(); ok {
			n.cfg.Logger.Error("cannot keep a hint; the replica relies on repair", "node", id, "key", m.Key, "err", err, "lost_since_last_logged", lost)
		}
	}
}

// dropHints counts k hints for id dropped for reason, and warns at most
// every hintLogEvery.
func (n *Node) dropHints(id string, reason dropReason, k int64) {
	n.hintsDropped[reason].Add(k)
	if skipped, ok := n.dropLog.allow(); ok {
		n.cfg.Logger.Warn("hints dropped past their bound; anti-entropy will repair the replica",
			"node", id, "reason", dropReasonNames[reason], "hints", k,
			"max_hint_bytes", n.cfg.MaxHintBytes, "max_hint_age", n.cfg.MaxHintAge, "drops_since_last_logged", skipped)
	}
}

// expireHints drops target's hints older than MaxHintAge.
func (n *Node) expireHints(target string) {
	if n.cfg.MaxHintAge <= 0 {
		return
	}
	cut := memtable.TimestampAt(n.cfg.Now().Add(-n.cfg.MaxHintAge))
	k, err := n.cfg.Engine.DropHintsBefore(target, cut)
	if err != nil {
		n.cfg.Logger.Warn("cannot drop old hints", "node", target, "err", err)
		return
	}
	if k > 0 {
		n.dropHints(target, dropAge, k)
	}
}

// hintLoop replays queued hints to their owners once they are alive: when
// the view says a member came back, and every HintInterval for owners whose
// earlier replay failed.
func (n *Node) hintLoop() {
	t := time.NewTicker(n.cfg.HintInterval)
	defer t.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-n.wake:
		case <-t.C:
		}
		n.ReplayHints()
	}
}

// ReplayHints delivers every queued hint whose owner the view says is
// alive, and drops hints for nodes no longer in the ring and hints older
// than MaxHintAge. It returns how many hints were delivered.
func (n *Node) ReplayHints() int {
	v := n.view.Load()
	delivered := 0
	for target := range n.cfg.Engine.PendingHints() {
		n.expireHints(target)
		if !v.Ring.Has(target) {
			if v.Members[target].State == Left {
				// Removed for good: nobody will take these.
				if err := n.cfg.Engine.DropHints(target); err != nil {
					n.cfg.Logger.Warn("cannot drop hints of a removed node", "node", target, "err", err)
				}
			}
			continue
		}
		mem, ok := v.Members[target]
		if !ok || mem.State != Alive || n.cfg.Transport == nil {
			continue
		}
		delivered += n.replayTo(target, mem.HTTPAddr)
	}
	return delivered
}

// replayTo sends target's hints in batches until none are left or a batch
// fails.
func (n *Node) replayTo(target, addr string) int {
	delivered := 0
	for {
		select {
		case <-n.stop:
			return delivered
		default:
		}
		hs, err := n.cfg.Engine.Hints(context.Background(), target, hintBatch)
		if err != nil || len(hs) == 0 {
			if err != nil {
				n.cfg.Logger.Warn("cannot read hints", "node", target, "err", err)
			}
			return delivered
		}
		// A hint for a key target no longer owns would be refused, and
		// hold up the others: the key's new owners pulled its range from
		// a quorum of the old ones, and anti-entropy covers the rest.
		// So would one stamped beyond the clock bound (a read repair's
		// copy of a record from the future): it would block the rest for
		// good.
		r := n.view.Load().Ring
		bound := memtable.TimestampAt(n.cfg.Clock.Wall().Add(n.cfg.Clock.MaxOffset()))
		dead := func(h engine.Hint) bool {
			if !slices.Contains(r.KeyOwners(h.Key), target) {
				return true
			}
			v, err := memtable.DecodeVersion(h.Record)
			return err != nil || v.TS > bound
		}
		ms := make([]Mutation, 0, len(hs))
		var stale []engine.Hint
		for _, h := range hs {
			if dead(h) {
				stale = append(stale, h)
				continue
			}
			ms = append(ms, Mutation{Key: h.Key, Record: h.Record})
		}
		if len(stale) > 0 {
			if err := n.cfg.Engine.DeleteHints(target, stale); err != nil {
				n.cfg.Logger.Warn("cannot delete hints the node would refuse", "node", target, "err", err)
				return delivered
			}
			n.cfg.Logger.Info("dropped hints the node would refuse: keys it no longer owns, or stamped beyond the clock bound", "node", target, "hints", len(stale))
			if len(ms) == 0 {
				continue
			}
			hs = slices.DeleteFunc(hs, dead)
		}
		if err := n.sendApply(addr, ms); err != nil {
			n.cfg.Logger.Debug("hint replay failed; will retry", "node", target, "err", err)
			return delivered
		}
		if err := n.cfg.Engine.DeleteHints(target, hs); err != nil {
			n.cfg.Logger.Warn("cannot delete delivered hints", "node", target, "err", err)
			return delivered
		}
		delivered += len(hs)
		n.hintsReplayd.Add(int64(len(hs)))
	}
}

// HintsPending returns the number of hints queued on this node.
func (n *Node) HintsPending() int64 {
	var total int64
	for _, c := range n.cfg.Engine.PendingHints() {
		total += c
	}
	return total
}

// DropHintsFor deletes every hint this node holds for the node id.
func (n *Node) DropHintsFor(id string) error { return n.cfg.Engine.DropHints(id) }
