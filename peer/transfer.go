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

	"github.com/ringkv/ringkv/compaction"
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

// Rebalancer owns a Node's data movement: the published view's ordering
// with the ranges it still pulls and the ranges it drops (publish.go), the
// pulls themselves and their progress, the handover checks before a drop
// (verify.go) and a graceful leave (leave.go). Its loop runs on its own
// goroutine; the view is its one input from membership.
type Rebalancer struct {
	cfg  *Config
	view *atomic.Pointer[View] // shared with the other subsystems; only publish writes it
	deps rebalanceDeps
	worker
	kick      chan struct{} // nudges the loop: the ring changed
	sendLimit *sstable.Limiter

	// viewMu orders the publication of views (SetView) with the pending
	// ranges published for them and with the deletion of given-away
	// ranges; it is never held across I/O. REQUIRES for the fields below.
	viewMu sync.Mutex
	// dropping: a drop of the ranges given away in the current ring is
	// committing; a ring change that comes meanwhile waits in deferred
	// and is published when the drop is done (endDrop).
	dropping bool
	deferred *View
	gen      atomic.Uint64 // counts ring changes, not view updates

	// state is the stored rebalanceState as last stored: the views'
	// plans read it here, never from the engine.
	state atomic.Pointer[rebalanceState]
	// pending lists the ranges of the current ring this node is still
	// pulling, with their old owners (nil: none); reads of their keys
	// answer a PendingError.
	pending atomic.Pointer[[]ring.Move]

	// handover is dropGivenAway's memory of ranges shown held, under
	// handoverMu (the rebalance loop calls it, and tests).
	handoverMu sync.Mutex
	handover   handover
	// dropsWithheld counts drops of given-away ranges held back because a
	// new owner could not be shown to hold them (verify.go).
	dropsWithheld atomic.Int64
	bytes         atomic.Int64 // ringkv_transfer_bytes_total: received
	status        transferStatus

	leaveRunning atomic.Bool            // startLeave's goroutine runs
	leaveState   atomic.Pointer[string] // ClusterStatus.Leave

	// fetch pulls rg from one of its old owners (pullSpans), and
	// heldElsewhere says why the ranges st gives away may not be dropped
	// yet ("" once they may); the transcripts of rebalance_test.go
	// replace these two, the I/O of a move, to drive it.
	fetch         func(from Member, rg ring.Range) error
	heldElsewhere func(ctx context.Context, v *View, st rebalanceState) string
}

// rebalanceDeps is what the rebalancer takes from the rest of the node.
type rebalanceDeps struct {
	// cleanPass is the start of anti-entropy's last clean pass.
	cleanPass func() uint64
	// gc is what garbage collection may delete: handover checks leave
	// it out, as the trees do.
	gc func() compaction.GC
	// swapped is called under viewMu after each view is published, old
	// being the one replaced; replaced says old's ring was a real one the
	// cluster wrote by (not NewNode's placeholder) and is gone. It must
	// not block.
	swapped func(old, cur *View, replaced bool)
	// membership is the node's membership layer, or nil.
	membership func() Membership
	// paxos merges the Paxos acceptor states a pulled range brings
	// (acceptor.mergeStates); nil drops them.
	paxos sstable.PaxosSink
}

// newRebalancer returns the rebalancer of cfg's node, with the stored
// state loaded and view published as the placeholder view.
func newRebalancer(cfg *Config, view *atomic.Pointer[View], deps rebalanceDeps) (*Rebalancer, error) {
	r := &Rebalancer{cfg: cfg, view: view, deps: deps, kick: make(chan struct{}, 1), sendLimit: sstable.NewLimiter(cfg.TransferRate)}
	r.setup()
	r.fetch = func(from Member, rg ring.Range) error { return r.pullSpans(rg, from.HTTPAddr) }
	r.heldElsewhere = r.handoverWhy
	st, err := loadRebalance(cfg.Engine)
	if err != nil {
		return nil, err
	}
	r.state.Store(&st)
	return r, nil
}

// start runs the rebalance loop until halt.
func (r *Rebalancer) start() { r.wg.Go(r.loop) }

// transferTableSize is the size of the SSTables a pull stages.
const transferTableSize = 64 << 20

// ServeSpan streams this node's records of the token span [lo, hi) as of
// one snapshot to w (the donor side of a pull), paced by the node's one
// limiter: TransferRate bytes a second for all its streams together. A
// span this node is itself still pulling is refused (ErrRangePending)
// before anything is sent: a partial copy must not count as one of the
// quorum of old owners a puller needs.
func (r *Rebalancer) ServeSpan(ctx context.Context, lo, hi uint64, w io.Writer) error {
	if r.spanPending(lo, hi) {
		return ErrRangePending
	}
	snap, err := r.cfg.Engine.NewSnapshot()
	if err != nil {
		return err
	}
	defer snap.Close()
	_, _, err = sstable.Send(ctx, snap, lo, hi, w, r.sendLimit)
	return err
}

// transferStatus is the progress of the move under way, for Transfers.
type transferStatus struct {
	mu        sync.Mutex
	active    bool // a move with ranges left is under way
	t         Transfer
	started   time.Time
	moveBytes int64 // received in this move
}

// transfers is Rebalancer.Transfers.
func (s *transferStatus) transfers() []Transfer {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.active {
		return []Transfer{}
	}
	t := s.t
	t.BytesDone = s.moveBytes
	if el := time.Since(s.started).Seconds(); el > 0 {
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
func (s *transferStatus) moveStarted(to string, done, total int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.active && s.t.RangesTotal == total {
		return // a retry of the same move: keep its clock
	}
	s.active, s.started, s.moveBytes = true, time.Now(), 0
	s.t = Transfer{To: to, RangesDone: done, RangesTotal: total, Started: s.started.UTC().Format(time.RFC3339)}
}

func (s *transferStatus) rangeStarted(rg ring.Range, from string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.t.Range != rg.String() {
		s.t.Attempts, s.t.LastError = 0, ""
	}
	s.t.Range, s.t.From = rg.String(), from
}

func (s *transferStatus) rangeFailed(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.t.Attempts++
	s.t.LastError = err.Error()
}

func (s *transferStatus) rangeDone() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.t.RangesDone++
	s.t.Attempts, s.t.LastError = 0, ""
}

func (s *transferStatus) moveEnded() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.active = false
}

func (r *Rebalancer) received(k int) {
	r.bytes.Add(int64(k))
	r.status.mu.Lock()
	r.status.moveBytes += int64(k)
	r.status.mu.Unlock()
}

// loop settles this node on the current ring whenever it changes,
// retrying with backoff while donors are missing.
func (r *Rebalancer) loop() {
	backoff := time.Second
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-r.kick:
		case <-timer.C:
		}
		err := r.rebalance()
		if err == nil {
			err = r.dropGivenAway(r.ctx)
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
			r.cfg.Logger.Warn("range transfer failed; will retry", "err", err, "retry_in", backoff)
		}
		timer.Reset(backoff)
		backoff = min(2*backoff, 30*time.Second)
	}
}

// loadRebalance reads the stored rebalance state of e (NewNode, once).
func loadRebalance(e *engine.Engine) (rebalanceState, error) {
	var st rebalanceState
	b, err := e.GetMeta(settledMeta)
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

// loadState returns the stored state. Its slices are shared and must not
// be modified: the pure functions of rebalance.go build new ones.
func (r *Rebalancer) loadState() rebalanceState { return *r.state.Load() }

// storeState stores st durably, then makes it the state views are
// planned from.
func (r *Rebalancer) storeState(st rebalanceState) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	if err := r.cfg.Engine.SetMeta(settledMeta, b); err != nil {
		return err
	}
	r.state.Store(&st)
	return nil
}

// kept is rebalanceState.keptHorizon of the stored state.
func (r *Rebalancer) kept() uint64 { return r.loadState().keptHorizon() }

// planFor is plan for this node's stored state and view v.
func (r *Rebalancer) planFor(v *View) rebalancePlan {
	return plan(r.loadState(), v, r.cfg.NodeID, r.cfg.Replicas)
}

// rebalance pulls whatever the current ring gives this node that its
// settled ring did not, then settles.
func (r *Rebalancer) rebalance() error {
	v := r.view.Load()
	cur := sortedNodes(v.Ring)
	st := r.loadState()
	p := plan(st, v, r.cfg.NodeID, r.cfg.Replicas)
	if len(p.Pull) == 0 {
		r.setPendingIfRing(cur, nil)
		r.status.moveEnded()
		if p.Settle {
			return r.settle(st, p, cur)
		}
		return nil
	}
	r.setPendingIfRing(cur, p.Pending)
	left := len(p.Pending)
	r.cfg.Logger.Info("pulling ranges the ring gives this node", "ranges", left, "of", len(p.Pull), "ring", cur)
	r.status.moveStarted(r.cfg.NodeID, len(p.Pull)-left, len(p.Pull))
	for _, m := range p.Pending {
		if now := r.view.Load(); now != v && !slices.Equal(now.Ring.Nodes(), cur) {
			return nil // the ring moved on; start over with the new one
		}
		err := pullQuorum(v, m, func(from Member) error {
			r.status.rangeStarted(m.Range, from.ID)
			return r.fetch(from, m.Range)
		})
		if err != nil {
			r.status.rangeFailed(err)
			return err
		}
		r.status.rangeDone()
		p.Done[m.Range.String()] = true
		st = st.withPulled(cur, m.Range)
		if err := r.storeState(st); err != nil {
			return err
		}
		r.setPendingIfRing(cur, pendingOf(p.Pull, p.Done))
	}
	if !slices.Equal(r.view.Load().Ring.Nodes(), cur) {
		return nil
	}
	r.cfg.Logger.Info("holds every range of the ring", "ring", cur, "ranges_pulled", len(p.Pull))
	if err := r.settle(st, p, cur); err != nil {
		return err
	}
	r.setPendingIfRing(cur, nil)
	r.status.moveEnded()
	return nil
}

// settle records that this node holds every range of ring cur, and which
// ranges of it the node does not own but may hold records of, to drop once
// every member holds its ranges (see settledState).
func (r *Rebalancer) settle(st rebalanceState, p rebalancePlan, cur []string) error {
	return r.storeState(settledState(st, p, cur, r.deps.cleanPass()))
}

// errNotYet is dropGivenAway's "the new owners do not all hold their
// ranges yet": retried, and not worth a warning.
var errNotYet = errors.New("peer: not yet")

// dropGivenAway deletes the ranges this node gave away, once every member
// of the ring it gave them away in says it holds all of its ranges and
// this node has checked that their new owners hold its records of them. If the ring
// changed since, the ranges stay (a later move may give them back; an
// old copy is merged, never trusted).
func (r *Rebalancer) dropGivenAway(ctx context.Context) error {
	st := r.loadState()
	if len(st.Drop) == 0 {
		return nil
	}
	v := r.view.Load()
	if !slices.Equal(v.Ring.Nodes(), st.DropRing) {
		return r.storeState(st.abandonDrop())
	}
	if why := r.heldElsewhere(ctx, v, st); why != "" {
		return errNotYet
	}
	// The ring must not change between the check and the deletion: a
	// range given back would lose the writes it took meanwhile.
	if !r.beginDrop(st.DropRing) {
		return errNotYet
	}
	defer r.endDrop()
	var spans []engine.Span
	for _, rg := range st.Drop {
		for _, sp := range rg.Spans() {
			spans = append(spans, engine.Span{Lo: sp.Lo, Hi: sp.Hi})
		}
	}
	if err := r.cfg.Engine.DropSpans(ctx, spans); err != nil {
		return err
	}
	r.cfg.Logger.Info("dropped the ranges given away", "ranges", len(st.Drop), "ring", st.DropRing)
	return r.storeState(st.dropped())
}

// handoverWhy says why the ranges st gives away in v's ring may not be
// dropped yet: a member of it does not say it holds all of its ranges, or
// this node has not checked that their new owners hold its records of
// them. "" once they may.
func (r *Rebalancer) handoverWhy(ctx context.Context, v *View, st rebalanceState) string {
	if why := r.othersHoldRanges(ctx, v); why != "" {
		r.cfg.Logger.Debug("ranges given away are kept until their new owners hold them", "why", why)
		return why
	}
	// The others' word that they are settled is not enough: this node
	// checks that they hold what it is about to delete (verify.go).
	var drop []ring.Span
	for _, rg := range st.Drop {
		drop = append(drop, rg.Spans()...)
	}
	r.handoverMu.Lock()
	why := r.handedOver(ctx, v, drop, &r.handover)
	r.handoverMu.Unlock()
	if why != "" {
		r.cfg.Logger.Info("ranges given away are kept: a new owner is not shown to hold them yet", "why", why)
	}
	return why
}

// sortedNodes returns a copy of r's node ids, which Ring keeps sorted,
// for a caller that keeps them.
func sortedNodes(r *ring.Ring) []string { return slices.Clone(r.Nodes()) }

// pullSpans fetches rg's records from the node at addr, and the Paxos
// acceptor state of its keys, merged into this node's before it returns
// (so before the range counts as pulled). Pulled from a quorum of the old
// owners, the merged states hold every promise and every acceptance a
// quorum of them made as of their streams' snapshots.
func (r *Rebalancer) pullSpans(rg ring.Range, addr string) error {
	ctx := r.ctx // Close stops a pull at once
	cr := &countingReader{reb: r}
	for _, sp := range rg.Spans() {
		body, err := r.cfg.Transport.OpenSpan(ctx, addr, sp.Lo, sp.Hi)
		if err != nil {
			return err
		}
		cr.r = body
		_, err = sstable.ReceivePaxos(ctx, r.cfg.Engine, sp.Lo, sp.Hi, cr, r.cfg.TransferDir, transferTableSize, nil, r.deps.paxos)
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
	reb *Rebalancer
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
func (r *Rebalancer) Settled() bool {
	cur := r.view.Load().Ring.Nodes()
	if !slices.Contains(cur, r.cfg.NodeID) {
		return true // out of the ring (leaving or left): nothing to hold
	}
	st := r.loadState()
	return slices.Equal(st.Settled, cur) || (st.Settled == nil && len(cur) == 1)
}

// Transfers returns the range moves in flight on this node: none, or one
// describing the move under way.
func (r *Rebalancer) Transfers() []Transfer { return r.status.transfers() }
