package peer

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
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

// Hints owns hinted handoff: the hints a coordinator keeps for owners
// that missed writes, their bounds, and their replay on its own goroutine.
type Hints struct {
	cfg  *Config
	view *atomic.Pointer[View]
	send func(addr string, ms []Mutation) error // one replay batch
	worker
	wake chan struct{} // nudges the replay loop: a member came back

	replayed atomic.Int64 // hints delivered
	lost     atomic.Int64 // hints that could not be kept
	lostLog  LogGate      // "cannot keep a hint", at most every 5s
	// dropped counts hints dropped by the bounds, by reason; dropLog
	// gates their warning.
	dropped [numDropReasons]atomic.Int64
	dropLog LogGate
}

func newHints(cfg *Config, view *atomic.Pointer[View], send func(string, []Mutation) error) *Hints {
	h := &Hints{cfg: cfg, view: view, send: send, wake: make(chan struct{}, 1)}
	h.setup()
	return h
}

// start runs the replay loop until halt.
func (h *Hints) start() { h.wg.Go(h.loop) }

// viewChanged nudges the replay loop when cur says a member came back
// alive that old did not.
func (h *Hints) viewChanged(old, cur *View) {
	for id, m := range cur.Members {
		if m.State == Alive && (old == nil || old.Members[id].State != Alive) {
			signal(h.wake)
			return
		}
	}
}

// add durably queues m for the owner id, to be replayed when it is alive,
// unless the bounds on id's hints drop it. A hint that cannot be kept (a
// full disk refuses them all) is logged at most every LogGateEvery, with a
// count of the others; so are dropped ones.
func (h *Hints) add(id string, m Mutation) {
	if h.cfg.MaxHintAge > 0 {
		if v, err := memtable.DecodeVersion(m.Record); err == nil && memtable.TimestampTime(v.TS).Before(h.cfg.Now().Add(-h.cfg.MaxHintAge)) {
			h.drop(id, dropAge, 1)
			return
		}
	}
	err := h.cfg.Engine.AddHintMax(id, m.Key, m.Record, h.cfg.MaxHintBytes)
	if errors.Is(err, engine.ErrHintsFull) {
		h.drop(id, dropBytes, 1)
		return
	}
	if err != nil {
		h.lost.Add(1)
		if lost, ok := h.lostLog.Allow(); ok {
			h.cfg.Logger.Error("cannot keep a hint; the replica relies on repair", "node", id, "key", m.Key, "err", err, "lost_since_last_logged", lost)
		}
	}
}

// dropHints counts k hints for id dropped for reason, and warns at most
// every LogGateEvery.
func (h *Hints) drop(id string, reason dropReason, k int64) {
	h.dropped[reason].Add(k)
	if skipped, ok := h.dropLog.Allow(); ok {
		h.cfg.Logger.Warn("hints dropped past their bound; anti-entropy will repair the replica",
			"node", id, "reason", dropReasonNames[reason], "hints", k,
			"max_hint_bytes", h.cfg.MaxHintBytes, "max_hint_age", h.cfg.MaxHintAge, "drops_since_last_logged", skipped)
	}
}

// expireHints drops target's hints older than MaxHintAge.
func (h *Hints) expire(target string) {
	if h.cfg.MaxHintAge <= 0 {
		return
	}
	cut := memtable.TimestampAt(h.cfg.Now().Add(-h.cfg.MaxHintAge))
	k, err := h.cfg.Engine.DropHintsBefore(target, cut)
	if err != nil {
		h.cfg.Logger.Warn("cannot drop old hints", "node", target, "err", err)
		return
	}
	if k > 0 {
		h.drop(target, dropAge, k)
	}
}

// loop replays queued hints to their owners once they are alive: when
// the view says a member came back, and every HintInterval for owners whose
// earlier replay failed.
func (h *Hints) loop() {
	t := time.NewTicker(h.cfg.HintInterval)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-h.wake:
		case <-t.C:
		}
		h.Replay()
	}
}

// Replay delivers every queued hint whose owner the view says is alive,
// and drops hints for nodes no longer in the ring and hints older than
// MaxHintAge. It returns how many hints were delivered.
func (h *Hints) Replay() int {
	v := h.view.Load()
	delivered := 0
	for target := range h.cfg.Engine.PendingHints() {
		h.expire(target)
		if !v.Ring.Has(target) {
			if v.Members[target].State == Left {
				// Removed for good: nobody will take these.
				if err := h.cfg.Engine.DropHints(target); err != nil {
					h.cfg.Logger.Warn("cannot drop hints of a removed node", "node", target, "err", err)
				}
			}
			continue
		}
		mem, ok := v.Members[target]
		if !ok || mem.State != Alive || h.cfg.Transport == nil {
			continue
		}
		delivered += h.replayTo(target, mem.HTTPAddr)
	}
	return delivered
}

// replayTo sends target's hints in batches until none are left or a batch
// fails.
func (h *Hints) replayTo(target, addr string) int {
	delivered := 0
	for {
		select {
		case <-h.stop:
			return delivered
		default:
		}
		hs, err := h.cfg.Engine.Hints(context.Background(), target, hintBatch)
		if err != nil || len(hs) == 0 {
			if err != nil {
				h.cfg.Logger.Warn("cannot read hints", "node", target, "err", err)
			}
			return delivered
		}
		ms, live, stale := h.sortOut(target, hs)
		if len(stale) > 0 {
			if err := h.cfg.Engine.DeleteHints(target, stale); err != nil {
				h.cfg.Logger.Warn("cannot delete hints the node would refuse", "node", target, "err", err)
				return delivered
			}
			h.cfg.Logger.Info("dropped hints the node would refuse: keys it no longer owns, or stamped beyond the clock bound", "node", target, "hints", len(stale))
			if len(ms) == 0 {
				continue
			}
			hs = live
		}
		if err := h.send(addr, ms); err != nil {
			h.cfg.Logger.Debug("hint replay failed; will retry", "node", target, "err", err)
			return delivered
		}
		if err := h.cfg.Engine.DeleteHints(target, hs); err != nil {
			h.cfg.Logger.Warn("cannot delete delivered hints", "node", target, "err", err)
			return delivered
		}
		delivered += len(hs)
		h.replayed.Add(int64(len(hs)))
	}
}

// sortOut splits target's hints hs into those to send (as mutations, and
// as hints to delete once sent) and those to drop unsent. A hint for a key
// target no longer owns would be refused, and hold up the others: the
// key's new owners pulled its range from a quorum of the old ones, and
// anti-entropy covers the rest. So would one stamped beyond the clock
// bound (a read repair's copy of a record from the future): it would
// block the rest for good.
func (h *Hints) sortOut(target string, hs []engine.Hint) (ms []Mutation, live, stale []engine.Hint) {
	r := h.view.Load().Ring
	bound := memtable.TimestampAt(h.cfg.Clock.Wall().Add(h.cfg.Clock.MaxOffset()))
	ms = make([]Mutation, 0, len(hs))
	for _, e := range hs {
		v, err := memtable.DecodeVersion(e.Record)
		if !slices.Contains(r.KeyOwners(e.Key), target) || err != nil || v.TS > bound {
			stale = append(stale, e)
			continue
		}
		live = append(live, e)
		ms = append(ms, Mutation{Key: e.Key, Record: e.Record})
	}
	return ms, live, stale
}

// Pending returns the number of hints queued on this node.
func (h *Hints) Pending() int64 {
	var total int64
	for _, c := range h.cfg.Engine.PendingHints() {
		total += c
	}
	return total
}

// DropFor deletes every hint this node holds for the node id.
func (h *Hints) DropFor(id string) error { return h.cfg.Engine.DropHints(id) }
