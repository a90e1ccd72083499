package peer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/ringkv/ringkv/engine"
	"github.com/ringkv/ringkv/ring"
)

// Repair of damaged files. A read that meets a damaged block fails with
// engine.ErrCorruption, which the coordinator treats as that replica
// failing: it asks the next owner. In a cluster the node then repairs the
// file's span itself:
//
//  1. excise it (engine.ExciseCorrupt): the span's records leave the
//     store in one atomic step, the damaged file's data with them, so
//     compactions stop meeting the damage;
//  2. compare each ring range it owns that overlaps the span with every
//     other owner's Merkle tree and pull what differs (anti-entropy, at
//     once rather than at the next interval): the span is empty here, so
//     everything the others hold comes back;
//  3. only once every other owner of every such range was compared and
//     pulled from, put the span back in service (engine.Repaired).
//
// From 1 until 3, every read of the span fails here: after the excise this
// replica lacks acknowledged writes it held, and answering "not found"
// for them could make a quorum read miss a write (R + W > N counts on
// this replica's copy). A node alone in its ring, or with --replicas 1,
// has no replica to pull from: it keeps the file, and the reads that meet
// the damage answer the error naming the file.

// repairRetry is how often the node retries a repair that could not
// finish (an owner down or failing).
const repairRetry = 2 * time.Second

// soloGrace is how long a node alone in its view waits before it logs
// that a damaged span cannot be repaired.
const soloGrace = 10 * time.Second

// ErrCorruption is matched by errors of reads that met damaged data on a
// replica (see engine.ErrCorruption).
var ErrCorruption = engine.ErrCorruption

// corruptionLoop repairs damaged spans as the engine reports them, until
// halt.
func (a *AntiEntropy) corruptionLoop() {
	t := time.NewTicker(repairRetry)
	defer t.Stop()
	for {
		select {
		case <-a.stop:
			return
		case <-a.cfg.Engine.CorruptionNotify():
		case <-t.C:
		}
		a.RepairCorruption(a.ctx)
	}
}

// canRepair reports whether v gives this node other replicas to pull a
// damaged span back from.
func (a *AntiEntropy) canRepair(v *View) bool {
	return !v.soloFor(a.cfg.NodeID) && a.cfg.Replicas > 1 && len(v.Ring.Nodes()) > 1
}

// RepairCorruption excises every damaged span the engine reports and
// pulls it back from the other owners, putting back in service each span
// that every other owner was compared with. It returns the first error;
// the spans not repaired are retried on the next call.
func (a *AntiEntropy) RepairCorruption(ctx context.Context) error {
	spans := a.cfg.Engine.Corruption()
	if len(spans) == 0 {
		return nil
	}
	v := a.view.Load()
	var firstErr error
	for _, sp := range spans {
		if sp.State == engine.CorruptRepaired || !sp.Data && !slices.Contains(sp.Other, "hints") {
			continue
		}
		if !sp.Data {
			// Only hints: nothing to pull back, and excising them is safe
			// alone too (anti-entropy makes up for a lost hint).
			if sp.State == engine.CorruptDamaged {
				if _, err := a.cfg.Engine.ExciseCorrupt(ctx, sp.Path); err != nil {
					firstErr = errors.Join(firstErr, err)
					continue
				}
			}
			a.cfg.Engine.Repaired(sp.Path)
			continue
		}
		if !a.canRepair(v) {
			// Right after a start the view may still be this node alone
			// until gossip brings the stored members in: wait before
			// saying the span cannot be repaired.
			now := time.Now().UnixNano()
			a.soloSince.CompareAndSwap(0, now)
			if time.Duration(now-a.soloSince.Load()) >= soloGrace && !a.warnedSolo.Swap(true) {
				a.cfg.Logger.Error("a damaged file cannot be repaired: no other replica holds its span; reads of the span fail until the file is restored (ringkv check names it)",
					"file", sp.File, "span", sp.TokenSpan())
			}
			continue
		}
		a.soloSince.Store(0)
		if sp.State == engine.CorruptDamaged {
			var err error
			if sp, err = a.cfg.Engine.ExciseCorrupt(ctx, sp.Path); err != nil {
				firstErr = errors.Join(firstErr, err)
				continue
			}
		}
		start := time.Now()
		if err := a.resyncSpan(ctx, v, sp.Lo, sp.Hi); err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		a.cfg.Engine.Repaired(sp.Path)
		a.repairs.Add(1)
		a.cfg.Logger.Info("damaged span pulled back from the other replicas", "file", sp.File, "span", sp.TokenSpan(), "duration", time.Since(start))
	}
	return firstErr
}

// resyncSpan runs anti-entropy for every ring range this node owns that
// overlaps the token span [lo, hi) (hi 0 meaning 2^64), with every other
// owner. It fails unless every one was compared and pulled from.
func (a *AntiEntropy) resyncSpan(ctx context.Context, v *View, lo, hi uint64) error {
	for _, or := range v.Ring.Ranges() {
		if !slices.Contains(or.Owners, a.cfg.NodeID) || !overlaps(or.Range, lo, hi) {
			continue
		}
		complete, err := a.syncRange(ctx, v, or)
		if err != nil {
			return err
		}
		if !complete {
			return &UnavailableError{Op: "repair of " + or.Range.String(), Needed: len(or.Owners) - 1}
		}
	}
	return nil
}

// corruptionHealth returns one reason to be degraded per damaged file
// whose span is out of service; none on a healthy node. The node still
// takes writes and routes reads around the span.
func (a *AntiEntropy) corruptionHealth() []Degraded {
	var out []Degraded
	for _, sp := range a.cfg.Engine.Corruption() {
		switch sp.State {
		case engine.CorruptDamaged:
			out = append(out, Degraded{Reason: "corruption", Detail: fmt.Sprintf("file %s covering %s damaged, reads that meet the damage fail on this node", sp.File, sp.TokenSpan())})
		case engine.CorruptExcised:
			out = append(out, Degraded{Reason: "corruption", Detail: fmt.Sprintf("file %s damaged, %s excised and being pulled back from other replicas", sp.File, sp.TokenSpan())})
		}
	}
	return out
}

// overlaps reports whether rg has a token in [lo, hi), hi 0 meaning 2^64.
func overlaps(rg ring.Range, lo, hi uint64) bool {
	for _, sp := range rg.Spans() {
		// [sp.Lo, sp.Hi) and [lo, hi) meet when each starts before the
		// other ends (an end of 0 is past every start).
		if (hi == 0 || sp.Lo < hi) && (sp.Hi == 0 || lo < sp.Hi) {
			return true
		}
	}
	return false
}
