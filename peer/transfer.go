package peer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ringkv/ringkv/engine"
	"github.com/ringkv/ringkv/ring"
	"github.com/ringkv/ringkv/sstable"
)

// This file moves data when the ring changes. Each node pulls the token
// ranges that the new ring gives it and the old one did not, from their
// old owners, as a verified stream (sstable.Send) that it stages as
// SSTables and merges into its store in one atomic ingest
// (sstable.Receive): a range is either wholly there or not at all. The
// records are merged as last-writer-wins operands, never replacing the
// span, because the new owner already takes client writes for the range
// while it pulls, and those must survive.
//
// A range is pulled from a quorum of its old owners (len(From)/2+1), so
// that every write a quorum acknowledged is in at least one of the
// streams. The ring the node last held all its ranges of is kept durably
// ("settled"), with the ranges already pulled toward the next one, so a
// restart resumes where it stopped.

// settledMeta is the engine metadata key of the rebalance state.
const settledMeta = "rebalance"

// rebalanceState is what settledMeta holds.
type rebalanceState struct {
	// Settled lists the members of the last ring whose ranges this node
	// holds in full. Missing (nil) on a node that never settled: it is
	// then taken to be joining the others.
	Settled []string `json:"settled"`
	// Target is the ring being settled toward, and Done the ranges of it
	// already pulled (Range.String()).
	Target []string `json:"target,omitempty"`
	Done   []string `json:"done,omitempty"`
	// Drop lists the ranges of ring DropRing that this node does not own
	// and may hold records of; it deletes them once every member of that
	// ring holds its ranges.
	Drop     []ring.Range `json:"drop,omitempty"`
	DropRing []string     `json:"drop_ring,omitempty"`
	// Orphans says a Drop was abandoned because the ring changed first:
	// the node may hold records of ranges it owns in no later ring.
	Orphans bool `json:"orphans,omitempty"`
	// KeptSince is the start of this node's last clean anti-entropy pass
	// before it first gave away the ranges it still holds: the node
	// reports no later clean pass until it has dropped them (see
	// keptHorizon).
	KeptSince uint64 `json:"kept_since,omitempty"`
}

// orphaned reports whether the node may hold records of ranges it gave
// away and has not dropped.
func (st rebalanceState) orphaned() bool { return st.Orphans || len(st.Drop) > 0 }

// keptHorizon is the bound st puts on the GC horizon. While the node holds
// copies of ranges it gave away, they miss the deletes made since, and a
// ring change may give a range back before the drop: its tombstones must
// stay on the other owners until the node has merged them over its copy.
// Every record older than KeptSince that an owner held, the copy holds.
func (st rebalanceState) keptHorizon() uint64 {
	if st.orphaned() {
		return st.KeptSince
	}
	return math.MaxUint64
}

// Transfer is this node's pulling of the ranges a new ring gave it, as
// GET /v1/cluster lists it: the range being pulled now, and the progress
// of the whole move.
type Transfer struct {
	Range string `json:"range"` // being pulled now
	From  string `json:"from"`  // the old owner it is pulled from
	To    string `json:"to"`    // this node
	// RangesDone and RangesTotal count the ranges of this move.
	RangesDone  int `json:"ranges_done"`
	RangesTotal int `json:"ranges_total"`
	// BytesDone counts the bytes received in this move; Rate is them
	// over its time so far, and ETA the time left at the pace of the
	// ranges done (0 until one is).
	BytesDone int64 `json:"bytes_done"`
	// BytesTotal estimates the move's size from the ranges done so far
	// (0 until one is): a donor's range size is known only once it has
	// streamed it.
	BytesTotal int64   `json:"bytes_total_estimate"`
	Rate       float64 `json:"bytes_per_second"`
	ETASeconds float64 `json:"eta_seconds"`
	Started    string  `json:"started"`
	// Attempts counts failed tries of the current range; LastError is the
	// latest failure's reason, cleared when the range is in.
	Attempts  int    `json:"attempts"`
	LastError string `json:"last_error,omitempty"`
}

// rebalancer is a Node's data movement state.
type rebalancer struct {
	kick chan struct{}
	// handover is dropGivenAway's memory of ranges shown held, under
	// handoverMu (the rebalance loop calls it, and tests).
	handoverMu sync.Mutex
	handover   handover
	bytes      atomic.Int64 // ringkv_transfer_bytes_total: received

	mu        sync.Mutex
	active    bool // a move with ranges left is under way
	t         Transfer
	started   time.Time
	moveBytes int64 // received in this move
}

// transferTableSize is the size of the SSTables a pull stages.
const transferTableSize = 64 << 20

// ServeSpan streams this node's records of the token span [lo, hi) as of
// one snapshot to w (the donor side of a pull), paced by the node's one
// limiter: TransferRate bytes a second for all its streams together. A span this node is itself still pulling is refused
// (ErrRangePending) before anything is sent: a partial copy must not count
// as one of the quorum of old owners a puller needs.
func (n *Node) ServeSpan(ctx context.Context, lo, hi uint64, w io.Writer) error {
	if n.spanPending(lo, hi) {
		return ErrRangePending
	}
	snap, err := n.cfg.Engine.NewSnapshot()
	if err != nil {
		return err
	}
	defer snap.Close()
	_, _, err = sstable.Send(ctx, snap, lo, hi, w, n.sendLimit)
	return err
}

// Transfers returns the range moves in flight on this node: none, or one
// describing the move under way.
func (n *Node) Transfers() []Transfer {
	r := &n.reb
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.active {
		return []Transfer{}
	}
	t := r.t
	t.BytesDone = r.moveBytes
	if el := time.Since(r.started).Seconds(); el > 0 {
		t.Rate = float64(t.BytesDone) / el
		if t.RangesDone > 0 {
			t.ETASeconds = el / float64(t.RangesDone) * float64(t.RangesTotal-t.RangesDone)
			t.BytesTotal = max(t.BytesDone, t.BytesDone*int64(t.RangesTotal)/int64(t.RangesDone))
		}
	}
	return []Transfer{t}
}

// moveStarted, rangeStarted, rangeFailed, rangeDone and moveEnded keep
// the status of Transfers.
func (r *rebalancer) moveStarted(to string, done, total int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.active && r.t.RangesTotal == total {
		return // a retry of the same move: keep its clock
	}
	r.active, r.started, r.moveBytes = true, time.Now(), 0
	r.t = Transfer{To: to, RangesDone: done, RangesTotal: total, Started: r.started.UTC().Format(time.RFC3339)}
}

func (r *rebalancer) rangeStarted(rg ring.Range, from string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.t.Range != rg.String() {
		r.t.Attempts, r.t.LastError = 0, ""
	}
	r.t.Range, r.t.From = rg.String(), from
}

func (r *rebalancer) rangeFailed(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.t.Attempts++
	r.t.LastError = err.Error()
}

func (r *rebalancer) rangeDone() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.t.RangesDone++
	r.t.Attempts, r.t.LastError = 0, ""
}

func (r *rebalancer) moveEnded() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.active = false
}

func (r *rebalancer) received(k int) {
	r.bytes.Add(int64(k))
	r.mu.Lock()
	r.moveBytes += int64(k)
	r.mu.Unlock()
}

func (n *Node) kickRebalance() {
	select {
	case n.reb.kick <- struct{}{}:
	default:
	}
}

// rebalanceLoop settles this node on the current ring whenever it
// changes, retrying with backoff while donors are missing.
func (n *Node) rebalanceLoop() {
	backoff := time.Second
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-n.reb.kick:
		case <-timer.C:
		}
		err := n.rebalance()
		if err == nil {
			err = n.dropGivenAway(n.bgCtx)
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		if err == nil {
			backoff = time.Second
			timer.Reset(time.Minute) // a safety net; kicks do the work
			continue
		}
		if !errors.Is(err, context.Canceled) && !errors.Is(err, errNotYet) {
			n.cfg.Logger.Warn("range transfer failed; will retry", "err", err, "retry_in", backoff)
		}
		timer.Reset(backoff)
		backoff = min(2*backoff, 30*time.Second)
	}
}

func (n *Node) loadRebalance() (rebalanceState, error) {
	var st rebalanceState
	b, err := n.cfg.Engine.GetMeta(settledMeta)
	if errors.Is(err, engine.ErrNotFound) {
		return st, nil
	}
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("stored rebalance state: %w", err)
	}
	return st, nil
}

func (n *Node) storeRebalance(st rebalanceState) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	if err := n.cfg.Engine.SetMeta(settledMeta, b); err != nil {
		return err
	}
	n.kept.Store(st.keptHorizon())
	return nil
}

// plan returns the moves of ring v that give this node a range it did not
// hold in its settled ring, the ranges of them already pulled, and the
// state they came from. No moves means the node is settled (or alone).
func (n *Node) plan(v *View) (mine []ring.Move, done map[string]bool, st rebalanceState, err error) {
	cur := sortedNodes(v.Ring)
	if !slices.Contains(cur, n.cfg.NodeID) {
		return nil, nil, st, nil // not (or no longer) in the ring: nothing to hold
	}
	if st, err = n.loadRebalance(); err != nil {
		return nil, nil, st, err
	}
	settled := st.Settled
	if settled == nil {
		// Never settled: this node is joining the members that joined
		// before it, and pulls from them; the first members pull nothing.
		mine := v.Members[n.cfg.NodeID].Joined
		settled = []string{}
		for _, id := range cur {
			if m, ok := v.Members[id]; ok && id != n.cfg.NodeID && m.Joined < mine {
				settled = append(settled, id)
			}
		}
	}
	if slices.Equal(settled, cur) {
		return nil, nil, st, nil
	}
	var prev *ring.Ring
	if len(settled) > 0 {
		prev = ring.New(settled, v.Ring.VNodes(), n.cfg.Replicas)
	}
	for _, m := range ring.Diff(prev, v.Ring) {
		if slices.Contains(m.To, n.cfg.NodeID) && !slices.Contains(m.From, n.cfg.NodeID) && len(m.From) > 0 {
			mine = append(mine, m)
		}
	}
	done = map[string]bool{}
	if slices.Equal(st.Target, cur) {
		for _, d := range st.Done {
			done[d] = true
		}
	}
	return mine, done, st, nil
}

// setPending publishes the ranges this node still has to pull, with their
// old owners; reads of their keys answer a PendingError until then.
func (n *Node) setPending(mine []ring.Move, done map[string]bool) {
	var left []ring.Move
	for _, m := range mine {
		if !done[m.Range.String()] {
			left = append(left, m)
		}
	}
	if len(left) == 0 {
		n.pending.Store(nil)
		return
	}
	n.pending.Store(&left)
}

// spanPending reports whether the token span [lo, hi) (hi 0: to 2^64)
// overlaps a range this node is still pulling.
func (n *Node) spanPending(lo, hi uint64) bool {
	p := n.pending.Load()
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

// setPendingIfRing is setPending for the rebalance loop, which planned for
// ring cur: if the ring has changed since, SetView already published the
// pending ranges of the new one, and they must not be overwritten.
func (n *Node) setPendingIfRing(cur []string, mine []ring.Move, done map[string]bool) {
	n.viewMu.Lock()
	defer n.viewMu.Unlock()
	if slices.Equal(n.view.Load().Ring.Nodes(), cur) {
		n.setPending(mine, done)
	}
}

// pendingFrom returns the old owners of the range holding tok, if this
// node is still pulling that range.
func (n *Node) pendingFrom(tok uint64) ([]string, bool) {
	p := n.pending.Load()
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

// rebalance pulls whatever the current ring gives this node that its
// settled ring did not.
func (n *Node) rebalance() error {
	v := n.view.Load()
	cur := sortedNodes(v.Ring)
	mine, done, st, err := n.plan(v)
	if err != nil {
		return err
	}
	if len(mine) == 0 {
		n.setPendingIfRing(cur, nil, nil)
		n.reb.moveEnded()
		// Alone and never settled, a node may be a joiner before its
		// first gossip exchange: settling then would skip its pulls.
		alone := len(cur) == 1 && st.Settled == nil
		if slices.Contains(cur, n.cfg.NodeID) && !slices.Equal(st.Settled, cur) && !alone {
			return n.settle(v, st)
		}
		return nil
	}
	n.setPendingIfRing(cur, mine, done)
	if !slices.Equal(st.Target, cur) {
		st.Target, st.Done = cur, nil
	}
	left := 0
	for _, m := range mine {
		if !done[m.Range.String()] {
			left++
		}
	}
	n.cfg.Logger.Info("pulling ranges the ring gives this node", "ranges", left, "of", len(mine), "ring", cur)
	n.reb.moveStarted(n.cfg.NodeID, len(mine)-left, len(mine))
	for _, m := range mine {
		if done[m.Range.String()] {
			continue
		}
		if n.view.Load() != v && !slices.Equal(n.view.Load().Ring.Nodes(), cur) {
			return nil // the ring moved on; start over with the new one
		}
		if err := n.pullRange(v, m); err != nil {
			n.reb.rangeFailed(err)
			return err
		}
		n.reb.rangeDone()
		done[m.Range.String()] = true
		st.Done = append(st.Done, m.Range.String())
		if err := n.storeRebalance(rebalanceState{Settled: st.Settled, Target: st.Target, Done: st.Done, Orphans: st.orphaned(), KeptSince: st.KeptSince}); err != nil {
			return err
		}
		n.setPendingIfRing(cur, mine, done)
	}
	if !slices.Equal(n.view.Load().Ring.Nodes(), cur) {
		return nil
	}
	n.cfg.Logger.Info("holds every range of the ring", "ring", cur, "ranges_pulled", len(mine))
	if err := n.settle(v, st); err != nil {
		return err
	}
	n.setPendingIfRing(cur, nil, nil)
	n.reb.moveEnded()
	return nil
}

// settle records that this node holds every range of v's ring, and which
// ranges of it the node does not own but may hold records of, to drop once
// every member holds its ranges.
//
// Those are the ranges it gave away in this move and, if an earlier Drop
// was abandoned because the ring changed before it could run, every range
// it does not own: a copy kept past its drop misses the deletes made while
// others own the range, and if the range came back to this node after
// their tombstones were collected, merging the old copy would bring the
// deleted keys back. (A range given back before the drop is safe too:
// until the drop the node reports KeptSince as its clean pass, so the GC
// horizon keeps the tombstones its copy missed until it has merged them.)
func (n *Node) settle(v *View, st rebalanceState) error {
	next := rebalanceState{Settled: sortedNodes(v.Ring)}
	if st.Settled != nil {
		self := n.cfg.NodeID
		if st.orphaned() {
			next.Drop = unowned(v.Ring, self)
		} else {
			prev := ring.New(st.Settled, v.Ring.VNodes(), n.cfg.Replicas)
			for _, m := range ring.Diff(prev, v.Ring) {
				if slices.Contains(m.From, self) && !slices.Contains(m.To, self) {
					next.Drop = append(next.Drop, m.Range)
				}
			}
		}
		if len(next.Drop) > 0 {
			next.DropRing = next.Settled
			// No pass completes between this node's view change and its
			// settle, so its last clean pass began before it gave the
			// ranges away.
			next.KeptSince = n.aeClean.Load()
			if st.orphaned() {
				next.KeptSince = st.KeptSince
			}
		}
	}
	return n.storeRebalance(next)
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

// errNotYet is dropGivenAway's "the new owners do not all hold their
// ranges yet": retried, and not worth a warning.
var errNotYet = errors.New("peer: not yet")

// dropGivenAway deletes the ranges this node gave away, once every member
// of the ring it gave them away in says it holds all of its ranges and
// this node has checked that their new owners hold its records of them. If the ring
// changed since, the ranges stay (a later move may give them back; an
// old copy is merged, never trusted).
func (n *Node) dropGivenAway(ctx context.Context) error {
	st, err := n.loadRebalance()
	if err != nil || len(st.Drop) == 0 {
		return err
	}
	v := n.view.Load()
	if !slices.Equal(v.Ring.Nodes(), st.DropRing) {
		// The next settle drops whatever this node does not own then.
		st.Drop, st.DropRing, st.Orphans = nil, nil, true
		return n.storeRebalance(st)
	}
	if why := n.othersHoldRanges(ctx, v); why != "" {
		n.cfg.Logger.Debug("ranges given away are kept until their new owners hold them", "why", why)
		return errNotYet
	}
	// The others' word that they are settled is not enough: this node
	// checks that they hold what it is about to delete (verify.go).
	var drop []ring.Span
	for _, rg := range st.Drop {
		drop = append(drop, rg.Spans()...)
	}
	n.reb.handoverMu.Lock()
	why := n.handedOver(ctx, v, drop, &n.reb.handover)
	n.reb.handoverMu.Unlock()
	if why != "" {
		n.cfg.Logger.Info("ranges given away are kept: a new owner is not shown to hold them yet", "why", why)
		return errNotYet
	}
	// The ring must not change between the check and the deletion: a
	// range given back would lose the writes it took meanwhile.
	n.viewMu.Lock()
	defer n.viewMu.Unlock()
	if !slices.Equal(n.view.Load().Ring.Nodes(), st.DropRing) {
		return errNotYet
	}
	var spans []engine.Span
	for _, rg := range st.Drop {
		for _, sp := range rg.Spans() {
			spans = append(spans, engine.Span{Lo: sp.Lo, Hi: sp.Hi})
		}
	}
	if err := n.cfg.Engine.DropSpans(ctx, spans); err != nil {
		return err
	}
	n.cfg.Logger.Info("dropped the ranges given away", "ranges", len(st.Drop), "ring", st.DropRing)
	st.Drop, st.DropRing, st.Orphans, st.KeptSince = nil, nil, false, 0
	return n.storeRebalance(st)
}

// sortedNodes returns a copy of r's node ids, which Ring keeps sorted,
// for a caller that keeps them.
func sortedNodes(r *ring.Ring) []string { return slices.Clone(r.Nodes()) }

// pullRange fetches m's range from a quorum of its old owners.
func (n *Node) pullRange(v *View, m ring.Move) error {
	need := len(m.From)/2 + 1
	got := 0
	var errs []error
	for _, from := range m.From {
		mem, ok := v.reachable(from)
		if !ok {
			errs = append(errs, fmt.Errorf("%s is down", from))
			continue
		}
		n.reb.rangeStarted(m.Range, from)
		if err := n.pullSpans(m.Range, mem.HTTPAddr); err != nil {
			errs = append(errs, fmt.Errorf("from %s: %w", from, err))
			continue
		}
		if got++; got == need {
			return nil
		}
	}
	return fmt.Errorf("range %s: %d of the %d old owners needed answered: %w", m.Range, got, need, errors.Join(errs...))
}

func (n *Node) pullSpans(rg ring.Range, addr string) error {
	ctx := n.bgCtx // Close stops a pull at once
	cr := &countingReader{reb: &n.reb}
	for _, sp := range rg.Spans() {
		body, err := n.cfg.Transport.OpenSpan(ctx, addr, sp.Lo, sp.Hi)
		if err != nil {
			return err
		}
		cr.r = body
		_, err = sstable.Receive(ctx, n.cfg.Engine, sp.Lo, sp.Hi, cr, n.cfg.TransferDir, transferTableSize, nil)
		body.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// countingReader counts the bytes of a pull for Transfers and
// ringkv_transfer_bytes_total.
type countingReader struct {
	r   io.Reader
	reb *rebalancer
}

func (c *countingReader) Read(p []byte) (int, error) {
	k, err := c.r.Read(p)
	if k > 0 {
		c.reb.received(k)
	}
	return k, err
}

// Settled reports whether this node holds every range the current ring
// gives it: no pull is pending.
func (n *Node) Settled() bool {
	cur := sortedNodes(n.view.Load().Ring)
	if !slices.Contains(cur, n.cfg.NodeID) {
		return true // out of the ring (leaving or left): nothing to hold
	}
	st, err := n.loadRebalance()
	return err == nil && (slices.Equal(st.Settled, cur) || (st.Settled == nil && len(cur) == 1))
}
