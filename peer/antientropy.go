package peer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync/atomic"
	"time"

	"github.com/ringkv/ringkv/compaction"
	"github.com/ringkv/ringkv/engine"
	"github.com/ringkv/ringkv/memtable"
	"github.com/ringkv/ringkv/ring"
	"github.com/ringkv/ringkv/sstable"
)

// Anti-entropy: every AntiEntropyInterval, a node compares a Merkle tree of
// each vnode range it owns with each other owner's tree of the same range,
// and pulls the leaves that differ from that owner (the same verified
// stream and atomic merge as a range transfer). Each replica does the same,
// so after a pass on every node the replicas hold the same records, also
// for keys no one reads. Records that garbage collection may already have
// deleted on some replica (tombstones and expired records past
// TombstoneGrace) are left out of the trees, so they do not read as
// differences forever.

// antiEntropyDepth is the depth of the trees compared: 1024 leaves a range.
const antiEntropyDepth = DefaultMerkleDepth

// AntiEntropy owns the background comparison of this node's ranges with
// their other owners, the GC horizon it yields, and the repair of damaged
// spans (corrupt.go), which is anti-entropy run at once for one span. Its
// loops run on its own goroutines.
type AntiEntropy struct {
	cfg  *Config
	view *atomic.Pointer[View]
	reb  *Rebalancer // a pass waits for the node to hold its ranges
	worker
	limit *sstable.Limiter // what its pulls read, AntiEntropyRate

	clean   atomic.Uint64 // HLC start of the last complete pass
	horizon atomic.Uint64 // GCHorizon in a cluster
	passes  atomic.Int64  // passes completed
	spans   atomic.Int64  // spans found different and pulled

	repairs    atomic.Int64 // damaged spans pulled back (corrupt.go)
	warnedSolo atomic.Bool  // logged that a damaged span cannot be repaired
	soloSince  atomic.Int64 // unix nanos since a damaged span found no replica; 0: it did
}

func newAntiEntropy(cfg *Config, view *atomic.Pointer[View], reb *Rebalancer) *AntiEntropy {
	a := &AntiEntropy{cfg: cfg, view: view, reb: reb, limit: sstable.NewLimiter(cfg.AntiEntropyRate)}
	a.setup()
	return a
}

// start runs the pass loop (unless AntiEntropyInterval is off) and the
// corruption repair loop until halt.
func (a *AntiEntropy) start() {
	if a.cfg.AntiEntropyInterval > 0 {
		a.wg.Go(a.loop)
	}
	a.wg.Go(a.corruptionLoop)
}

// localMerkle builds e's Merkle tree of rg, as of one snapshot, leaving
// out what gc may delete.
func localMerkle(ctx context.Context, e *engine.Engine, gc compaction.GC, rg ring.Range, depth int) (*Merkle, error) {
	snap, err := e.NewSnapshot()
	if err != nil {
		return nil, err
	}
	defer snap.Close()
	t := NewMerkle(rg, depth)
	for _, sp := range rg.Spans() {
		err := snap.ScanTokens(ctx, sp.Lo, sp.Hi, func(key []byte, r memtable.Record) (bool, error) {
			if gc.Drop(&r) {
				return true, nil
			}
			return t.Add(key, r)
		})
		if err != nil {
			return nil, err
		}
	}
	return t, nil
}

// LocalMerkle builds this node's Merkle tree of rg, as of one snapshot
// (another owner compares it: transport.Local).
func (a *AntiEntropy) LocalMerkle(ctx context.Context, rg ring.Range, depth int) (*Merkle, error) {
	return localMerkle(ctx, a.cfg.Engine, a.gcRule(), rg, depth)
}

// gcRule is what garbage collection may delete on this node: records
// past TombstoneGrace and, in a cluster, at or below the GC horizon.
func (a *AntiEntropy) gcRule() compaction.GC {
	return compaction.GC{TombstoneGrace: a.cfg.TombstoneGrace, Now: a.cfg.Now, Horizon: a.GCHorizon}
}

// GCHorizon is the timestamp at or below which garbage collection may
// delete a tombstone or expired record: alone in its ring, any; in a
// cluster, only up to the earliest of the members' last complete
// anti-entropy passes, by which every replica held every such record (a
// replica that missed a delete would otherwise bring the key back). The
// engine calls it through Engine.SetGCHorizon.
func (a *AntiEntropy) GCHorizon() uint64 {
	if a.view.Load().soloFor(a.cfg.NodeID) {
		return math.MaxUint64
	}
	return a.horizon.Load()
}

// UpdateHorizon sets the GC horizon to the earliest clean pass of the
// ring's members; if one cannot be asked, the horizon stays. The
// anti-entropy loop calls it after each pass.
func (a *AntiEntropy) UpdateHorizon(ctx context.Context) {
	v := a.view.Load()
	low := uint64(math.MaxUint64)
	for _, id := range v.Ring.Nodes() {
		if id == a.cfg.NodeID {
			low = min(low, a.cleanSince())
			continue
		}
		m, ok := v.reachable(id)
		if !ok {
			return
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		st, err := a.cfg.Transport.Status(cctx, m.HTTPAddr)
		cancel()
		if err != nil || st.Self != id {
			return // unreachable, or another node now answers at its address
		}
		low = min(low, st.AntiEntropyClean)
	}
	a.horizon.Store(low)
}

// cleanSince is the clean pass this node reports to the others' GC
// horizon: its last complete anti-entropy pass, held back while it keeps
// ranges it gave away.
func (a *AntiEntropy) cleanSince() uint64 { return min(a.clean.Load(), a.reb.kept()) }

// loop runs a pass every AntiEntropyInterval until halt.
func (a *AntiEntropy) loop() {
	t := time.NewTicker(a.cfg.AntiEntropyInterval)
	defer t.Stop()
	for {
		select {
		case <-a.stop:
			return
		case <-t.C:
		}
		if err := a.Pass(a.ctx); err != nil && a.ctx.Err() == nil {
			a.cfg.Logger.Warn("anti-entropy pass incomplete", "err", err)
		}
		a.UpdateHorizon(a.ctx)
	}
}

// Pass compares every range this node owns with its other owners once,
// and pulls what differs. It skips the pass while the node is still
// pulling ranges of a new ring. A peer that fails leaves the pass
// incomplete (not clean) but the other ranges are still compared; it
// returns the first such error.
func (a *AntiEntropy) Pass(ctx context.Context) error {
	gen := a.reb.gen.Load() // before the view: a change between the two voids the pass
	v := a.view.Load()
	if v.soloFor(a.cfg.NodeID) || a.reb.pulling() || !a.reb.Settled() {
		return nil
	}
	self := a.cfg.NodeID
	// Every record written before start that any owner held, this node
	// holds after a complete pass (it pulled what it lacked).
	start := a.cfg.Clock.Now()
	complete := true
	var firstErr, unreadable error
	skipped := 0
	for _, or := range v.Ring.Ranges() {
		if !slices.Contains(or.Owners, self) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		ok, err := a.syncRange(ctx, v, or)
		if errors.Is(err, errLocalTree) {
			// This node's own copy cannot be read (a damaged file, say):
			// the other ranges are still compared.
			skipped++
			unreadable = cmp.Or(unreadable, err)
		}
		if !ok {
			complete, firstErr = false, cmp.Or(firstErr, err)
		}
	}
	if skipped > 0 {
		a.cfg.Logger.Warn("anti-entropy skipped ranges this node cannot read", "ranges", skipped, "first_err", unreadable)
	}
	a.passes.Add(1)
	// The pass counts only if the ring did not change meanwhile (views
	// themselves are republished every gossip tick).
	if complete && a.reb.gen.Load() == gen {
		a.clean.Store(start)
	}
	return firstErr
}

// errLocalTree marks syncRange's failures to build this node's own tree.
var errLocalTree = errors.New("cannot build this node's Merkle tree")

// syncRange compares this node's tree of or with every other owner's and
// pulls what differs. It reports whether every other owner was compared
// and every difference pulled; err is the first failure.
func (a *AntiEntropy) syncRange(ctx context.Context, v *View, or ring.OwnedRange) (complete bool, firstErr error) {
	complete = true
	var local *Merkle
	for _, id := range or.Owners {
		if id == a.cfg.NodeID {
			continue
		}
		if err := ctx.Err(); err != nil {
			return false, err
		}
		m, ok := v.reachable(id)
		if !ok {
			complete = false
			continue
		}
		if local == nil {
			var err error
			if local, err = a.LocalMerkle(ctx, or.Range, antiEntropyDepth); err != nil {
				return false, fmt.Errorf("%w of %s: %w", errLocalTree, or.Range, err)
			}
		}
		// A peer that fails (or is still pulling the range) leaves the
		// range incomplete; the other owners are still compared.
		pulled, err := a.syncWith(ctx, m.HTTPAddr, or.Range, local)
		if err != nil {
			complete, firstErr = false, cmp.Or(firstErr, err)
		}
		if pulled {
			local = nil // rebuilt for the next owner: it has changed
		}
	}
	return complete, firstErr
}

// syncWith compares local, this node's tree of rg, with the tree of the
// owner at addr and pulls the spans that differ. pulled says there were
// some (local is then stale); err is the first failure.
func (a *AntiEntropy) syncWith(ctx context.Context, addr string, rg ring.Range, local *Merkle) (pulled bool, firstErr error) {
	remote, err := a.cfg.Transport.Merkle(ctx, addr, rg, antiEntropyDepth)
	if err != nil {
		return false, err
	}
	spans, err := local.Diff(remote)
	if err != nil {
		return false, err
	}
	for _, sp := range spans {
		if err := a.pullSpan(ctx, addr, sp); err != nil {
			firstErr = cmp.Or(firstErr, err)
			continue
		}
		a.spans.Add(1)
	}
	return len(spans) > 0, firstErr
}

// pullSpan merges a peer's records of one span, reading at most
// AntiEntropyRate bytes a second.
func (a *AntiEntropy) pullSpan(ctx context.Context, addr string, sp ring.Span) error {
	body, err := a.cfg.Transport.OpenSpan(ctx, addr, sp.Lo, sp.Hi)
	if err != nil {
		return err
	}
	defer body.Close()
	_, err = sstable.Receive(ctx, a.cfg.Engine, sp.Lo, sp.Hi, a.limit.Reader(ctx, body), a.cfg.TransferDir, transferTableSize, nil)
	return err
}
