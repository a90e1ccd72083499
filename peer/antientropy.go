package peer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/ringkv/ringkv/compaction"
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

// LocalMerkle builds this node's Merkle tree of rg, as of one snapshot.
func (n *Node) LocalMerkle(ctx context.Context, rg ring.Range, depth int) (*Merkle, error) {
	snap, err := n.cfg.Engine.NewSnapshot()
	if err != nil {
		return nil, err
	}
	defer snap.Close()
	gc := n.gcRule()
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

// gcRule is what garbage collection may delete on this node: records
// past TombstoneGrace and, in a cluster, at or below the GC horizon.
func (n *Node) gcRule() compaction.GC {
	return compaction.GC{TombstoneGrace: n.cfg.TombstoneGrace, Now: n.cfg.Now, Horizon: n.GCHorizon}
}

// GCHorizon is the timestamp at or below which garbage collection may
// delete a tombstone or expired record: alone in its ring, any; in a
// cluster, only up to the earliest of the members' last complete
// anti-entropy passes, by which every replica held every such record (a
// replica that missed a delete would otherwise bring the key back). The
// engine calls it through Engine.SetGCHorizon.
func (n *Node) GCHorizon() uint64 {
	if n.solo(n.view.Load()) {
		return math.MaxUint64
	}
	return n.horizon.Load()
}

// UpdateHorizon sets the GC horizon to the earliest clean pass of the
// ring's members; if one cannot be asked, the horizon stays. The
// anti-entropy loop calls it after each pass.
func (n *Node) UpdateHorizon(ctx context.Context) {
	v := n.view.Load()
	low := uint64(math.MaxUint64)
	for _, id := range v.Ring.Nodes() {
		if id == n.cfg.NodeID {
			low = min(low, n.cleanSince())
			continue
		}
		m, ok := v.reachable(id)
		if !ok {
			return
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		st, err := n.cfg.Transport.Status(cctx, m.HTTPAddr)
		cancel()
		if err != nil || st.Self != id {
			return // unreachable, or another node now answers at its address
		}
		low = min(low, st.AntiEntropyClean)
	}
	n.horizon.Store(low)
}

// cleanSince is the clean pass this node reports to the others' GC
// horizon: its last complete anti-entropy pass, held back while it keeps
// ranges it gave away.
func (n *Node) cleanSince() uint64 { return min(n.aeClean.Load(), n.kept.Load()) }

// antiEntropyLoop runs a pass every AntiEntropyInterval until Close.
func (n *Node) antiEntropyLoop() {
	t := time.NewTicker(n.cfg.AntiEntropyInterval)
	defer t.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
		}
		if err := n.AntiEntropyPass(n.bgCtx); err != nil && n.bgCtx.Err() == nil {
			n.cfg.Logger.Warn("anti-entropy pass incomplete", "err", err)
		}
		n.UpdateHorizon(n.bgCtx)
	}
}

// AntiEntropyPass compares every range this node owns with its other
// owners once, and pulls what differs. It skips the pass while the node
// is still pulling ranges of a new ring. A peer that fails leaves the pass
// incomplete (not clean) but the other ranges are still compared; it
// returns the first such error.
func (n *Node) AntiEntropyPass(ctx context.Context) error {
	gen := n.ringGen.Load() // before the view: a change between the two voids the pass
	v := n.view.Load()
	if n.solo(v) || n.pending.Load() != nil || !n.Settled() {
		return nil
	}
	self := n.cfg.NodeID
	// Every record written before start that any owner held, this node
	// holds after a complete pass (it pulled what it lacked).
	start := n.cfg.Clock.Now()
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
		ok, err := n.syncRange(ctx, v, or)
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
		n.cfg.Logger.Warn("anti-entropy skipped ranges this node cannot read", "ranges", skipped, "first_err", unreadable)
	}
	n.aePasses.Add(1)
	// The pass counts only if the ring did not change meanwhile (views
	// themselves are republished every gossip tick).
	if complete && n.ringGen.Load() == gen {
		n.aeClean.Store(start)
	}
	return firstErr
}

// errLocalTree marks syncRange's failures to build this node's own tree.
var errLocalTree = errors.New("cannot build this node's Merkle tree")

// syncRange compares this node's tree of or with every other owner's and
// pulls what differs. It reports whether every other owner was compared
// and every difference pulled; err is the first failure.
func (n *Node) syncRange(ctx context.Context, v *View, or ring.OwnedRange) (complete bool, firstErr error) {
	complete = true
	var local *Merkle
	for _, id := range or.Owners {
		if id == n.cfg.NodeID {
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
			if local, err = n.LocalMerkle(ctx, or.Range, antiEntropyDepth); err != nil {
				return false, fmt.Errorf("%w of %s: %w", errLocalTree, or.Range, err)
			}
		}
		// A peer that fails (or is still pulling the range) leaves the
		// range incomplete; the other owners are still compared.
		remote, err := n.cfg.Transport.Merkle(ctx, m.HTTPAddr, or.Range, antiEntropyDepth)
		if err != nil {
			complete, firstErr = false, cmp.Or(firstErr, err)
			continue
		}
		spans, err := local.Diff(remote)
		if err != nil {
			complete, firstErr = false, cmp.Or(firstErr, err)
			continue
		}
		for _, sp := range spans {
			if err := n.pullAntiEntropy(ctx, m.HTTPAddr, sp); err != nil {
				complete, firstErr = false, cmp.Or(firstErr, err)
				continue
			}
			n.aeSpans.Add(1)
		}
		if len(spans) > 0 {
			local = nil // rebuilt for the next owner: it has changed
		}
	}
	return complete, firstErr
}

// pullAntiEntropy merges a peer's records of one span, reading at most
// AntiEntropyRate bytes a second.
func (n *Node) pullAntiEntropy(ctx context.Context, addr string, sp ring.Span) error {
	body, err := n.cfg.Transport.OpenSpan(ctx, addr, sp.Lo, sp.Hi)
	if err != nil {
		return err
	}
	defer body.Close()
	_, err = sstable.Receive(ctx, n.cfg.Engine, sp.Lo, sp.Hi, n.aeLimit.Reader(ctx, body), n.cfg.TransferDir, transferTableSize, nil)
	return err
}
