package peer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ringkv/ringkv/compaction"
	"github.com/ringkv/ringkv/memtable"
	"github.com/ringkv/ringkv/peer/kv"
	"github.com/ringkv/ringkv/ring"
)

// Node coordinates client requests for the keys of a cluster: it finds each
// key's owners on the ring, writes to and reads from them, keeps hints for
// owners that miss writes and repairs stale replicas it reads. It is safe
// for concurrent use.
type Node struct {
	cfg        Config
	view       atomic.Pointer[View] // published by reb; read by every subsystem
	membership membershipSlot

	// The subsystems, each the one owner of its state and goroutines;
	// what they share is the published view and the engine.
	reb   *Rebalancer  // view publication, range moves, leave (transfer.go)
	ae    *AntiEntropy // anti-entropy, GC horizon, corruption repair
	hints *Hints       // hinted handoff
	sweep paxosSweeper // the sweep of settled Paxos states (paxosgc.go)
	local *Replica     // what other nodes call (Local)

	// bg tracks replica writes and repairs still running after their
	// request was answered, so Close can wait for them.
	bg sync.WaitGroup

	// co coordinates requests: quorum reads and writes, read repair, and
	// the replica side of both (coord.go).
	co coordinator
}

// membershipSlot holds the node's membership layer, set once the layer
// (built after the node) is running; its zero value holds none.
type membershipSlot struct{ p atomic.Pointer[membershipRef] }

type membershipRef struct{ m Membership }

func (s *membershipSlot) set(m Membership) { s.p.Store(&membershipRef{m}) }

// get returns the membership layer, or nil.
func (s *membershipSlot) get() Membership {
	if ref := s.p.Load(); ref != nil {
		return ref.m
	}
	return nil
}

// NewNode returns the coordinator for cfg, alone in its ring until SetView
// says otherwise. Close stops its background work.
func NewNode(cfg Config) (*Node, error) {
	if cfg.NodeID == "" {
		return nil, errors.New("peer: node id is required")
	}
	if cfg.Engine == nil {
		return nil, errors.New("peer: engine is required")
	}
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	// Write above everything already stored, so writes take the engine's
	// fast path at once after a restart. A stored bound far ahead of the
	// wall clock (the clock stepped back) is refused; writes then stay
	// correct through the merge operator until wall time catches up.
	if err := cfg.Clock.Update(cfg.Engine.MaxTimestamp()); err != nil {
		cfg.Logger.Warn("stored timestamps are ahead of the wall clock", "err", err)
	}
	// What anti-entropy and range pulls merge is bounded as replica
	// writes are: a span with a record stamped beyond the clock bound is
	// refused whole.
	clk := cfg.Clock
	cfg.Engine.SetTimestampBound(func() uint64 { return memtable.TimestampAt(clk.Wall().Add(clk.MaxOffset())) })
	n := &Node{cfg: cfg}
	n.co = coordinator{cfg: &n.cfg, time: cfg.Time, tag: memtable.NodeTag(cfg.NodeID), view: &n.view, bg: &n.bg,
		// Closures: the subsystems they call are built just below.
		hint:        func(id string, m Mutation) { n.hints.add(id, m) },
		pendingFrom: func(tok uint64) ([]string, bool) { return n.reb.pendingFrom(tok) },
	}
	n.co.acc = acceptor{eng: cfg.Engine, clock: cfg.Clock.Update}
	if err := n.co.acc.loadFloor(); err != nil {
		return nil, err
	}
	n.view.Store(&View{
		Ring:    ring.New([]string{cfg.NodeID}, cfg.VNodes, cfg.Replicas),
		Members: map[string]Member{cfg.NodeID: {ID: cfg.NodeID, HTTPAddr: cfg.HTTPAddr, State: Alive}},
	})
	if err := startSubsystems(n); err != nil {
		return nil, err
	}
	return n, nil
}

// startSubsystems builds the rebalancer, anti-entropy and hints over the
// node's view, and starts their goroutines when the node has peers.
func startSubsystems(n *Node) error {
	cfg := &n.cfg
	n.hints = newHints(cfg, &n.view, n.co.sendApply)
	reb, err := newRebalancer(cfg, &n.view, rebalanceDeps{
		cleanPass: func() uint64 { return n.ae.clean.Load() },
		gc:        func() compaction.GC { return n.ae.gcRule() },
		paxos:     n.co.acc.mergeStates,
		// Called under the rebalancer's viewMu, after each view it
		// publishes.
		swapped: func(old, cur *View, replaced bool) {
			if replaced {
				n.co.rememberRing(old.Ring)
			}
			n.hints.viewChanged(old, cur)
		},
		membership: n.membership.get,
	})
	if err != nil {
		return err
	}
	n.reb = reb
	n.ae = newAntiEntropy(cfg, &n.view, reb)
	n.local = &Replica{co: &n.co, reb: reb, ae: n.ae, self: cfg.NodeID, view: &n.view, membership: &n.membership}
	n.sweep.w.setup()
	if h := cfg.PaxosHorizon; h > 0 {
		n.sweep.run = func(w *worker) { n.co.acc.sweepLoop(w, cfg.Clock.Now, h, cfg.Logger.Info) }
		n.co.acc.written = n.sweep.start
		if has, err := n.co.acc.hasStates(); err != nil {
			return err
		} else if has {
			n.sweep.start()
		}
	}
	if cfg.Transport == nil {
		return nil
	}
	// Tables staged by a pull that a crash cut short: the pull starts
	// the range again.
	if err := cfg.Engine.FS().RemoveAll(cfg.TransferDir); err != nil {
		cfg.Logger.Warn("cannot clear the transfer directory", "dir", cfg.TransferDir, "err", err)
	}
	n.hints.start()
	n.reb.start()
	n.ae.start()
	return nil
}

// Close stops the node's background work (hint replay, range pulls, a
// leave, anti-entropy) and waits for replica writes still in flight. It does not close the engine.
func (n *Node) Close() error {
	n.hints.halt()
	n.reb.halt()
	n.ae.halt()
	n.sweep.close()
	n.hints.wait()
	n.reb.wait()
	n.ae.wait()
	n.bg.Wait()
	return nil
}

// WaitBackground waits for the replica writes, hints and read repairs that
// requests left running. Call it when no requests are in flight.
func (n *Node) WaitBackground() { n.bg.Wait() }

// ID returns the node's id.
func (n *Node) ID() string { return n.cfg.NodeID }

// View returns the view requests are coordinated with now.
func (n *Node) View() *View { return n.view.Load() }

// SetView installs a new view of the cluster. The membership layer calls
// it on every change; a member that comes back alive has its hints
// replayed. It never waits on storage: a ring change that comes while
// given-away ranges are being deleted is installed as soon as the
// deletion is done (see publish.go).
func (n *Node) SetView(v *View) { n.reb.publish(v) }

// UseMembership connects the node to its membership layer, for AddNode,
// RemoveNode and the gossip address shown in status.
func (n *Node) UseMembership(m Membership) { n.membership.set(m) }

// Local returns the side of the node that other nodes call, for the
// internode handlers (transport.Local).
func (n *Node) Local() *Replica { return n.local }

// AntiEntropy returns the node's anti-entropy: explicit passes, the GC
// horizon, corruption repair.
func (n *Node) AntiEntropy() *AntiEntropy { return n.ae }

// Hints returns the node's hinted handoff.
func (n *Node) Hints() *Hints { return n.hints }

// Rebalancer returns what moves the node's ranges: its transfers, whether
// it is settled, a leave.
func (n *Node) Rebalancer() *Rebalancer { return n.reb }

func checkKey(key []byte) error {
	if len(key) == 0 || len(key) > MaxKeySize {
		return fmt.Errorf("%w: length %d, want 1 to %d bytes", ErrInvalidKey, len(key), MaxKeySize)
	}
	return nil
}

// Get appends the newest live value of key to dst, asking as many replicas
// as c needs. Tombstones and expired records read as ErrNotFound.
func (n *Node) Get(ctx context.Context, dst, key []byte, c Consistency) ([]byte, Version, error) {
	out, v, err := n.co.Get(ctx, dst, key, c)
	return out, v, clientErr(err)
}

// Put writes value under key, stamped with a new timestamp, to the key's
// replicas; it returns once c's share of them have it durably.
func (n *Node) Put(ctx context.Context, key, value []byte, o WriteOptions) (Version, error) {
	v, err := n.co.Put(ctx, key, value, o)
	return v, clientErr(err)
}

// Delete writes a tombstone for key, so older writes that arrive later
// cannot bring it back.
func (n *Node) Delete(ctx context.Context, key []byte, o WriteOptions) (Version, error) {
	v, err := n.co.Delete(ctx, key, o)
	return v, clientErr(err)
}

// Scan returns up to q.Limit live keys with prefix q.Prefix in token order,
// after q.After, from the whole cluster. Keys are hash-ordered, so a scan
// reads every key after q.After to find the matches: a sparse prefix costs
// a full pass.
func (n *Node) Scan(ctx context.Context, q ScanQuery) (ScanPage, error) {
	p, err := n.co.Scan(ctx, q)
	return p, clientErr(err)
}

// Get is Node.Get.
func (c *coordinator) Get(ctx context.Context, dst, key []byte, cons Consistency) ([]byte, Version, error) {
	if err := checkKey(key); err != nil {
		return dst, Version{}, err
	}
	if cons == kv.Serial {
		return c.serialGet(ctx, dst, key)
	}
	if v := c.view.Load(); !c.solo(v) {
		return c.clusterGet(ctx, v, dst, key, cons)
	}
	orig := len(dst)
	out, rec, err := c.cfg.Engine.Get(dst, key)
	if err != nil {
		return dst, Version{}, err
	}
	// Read the clock only for records that can expire.
	if rec.Tombstone || (rec.ExpiresAt != 0 && rec.Expired(c.cfg.Now().UnixMilli())) {
		return out[:orig], Version{}, ErrNotFound
	}
	return out, Version(rec.Version), nil
}

// Put is Node.Put.
func (c *coordinator) Put(ctx context.Context, key, value []byte, o WriteOptions) (Version, error) {
	if err := checkKey(key); err != nil {
		return Version{}, err
	}
	rec := memtable.Record{Version: memtable.Version{Node: c.tag}, Value: value} // stamped by write
	if o.TTL > 0 {
		rec.ExpiresAt = c.cfg.Now().Add(o.TTL).UnixMilli()
	}
	if o.Condition.Kind != kv.Unconditional {
		return c.conditional(ctx, key, rec, o.Condition)
	}
	return c.write(ctx, "put", key, &rec, o.Consistency)
}

// Delete is Node.Delete.
func (c *coordinator) Delete(ctx context.Context, key []byte, o WriteOptions) (Version, error) {
	if err := checkKey(key); err != nil {
		return Version{}, err
	}
	rec := memtable.Record{Version: memtable.Version{Node: c.tag}, Tombstone: true} // stamped by write
	if o.Condition.Kind != kv.Unconditional {
		return c.conditional(ctx, key, rec, o.Condition)
	}
	return c.write(ctx, "delete", key, &rec, o.Consistency)
}

// write stamps rec and stores it on key's owners as cons asks.
func (c *coordinator) write(ctx context.Context, op string, key []byte, rec *memtable.Record, cons Consistency) (Version, error) {
	if v := c.view.Load(); !c.solo(v) {
		v, vd := c.clockVerdict(ctx, v)
		if vd.Err != nil {
			return Version{}, &UnavailableError{Op: op, Needed: cons.Needed(len(v.Ring.KeyOwners(key))), Cause: vd.Err}
		}
		// Stamped only now: a stamp taken before a wait would be older
		// than writes made elsewhere meanwhile.
		rec.TS = c.cfg.Clock.Now()
		return c.clusterWrite(ctx, v, op, key, rec, cons, vd)
	}
	rec.TS = c.cfg.Clock.Now()
	if err := c.writeLocal(ctx, key, rec); err != nil {
		return Version{}, err
	}
	return Version(rec.Version), nil
}

// clockVerdict is this node's clock check before it coordinates a write
// of a cluster (view v): a verdict with Err set refuses it. It may wait
// for a first comparison (awaitClockCheck), and then returns the view as
// it is after the wait.
func (c *coordinator) clockVerdict(ctx context.Context, v *View) (*View, ClockVerdict) {
	vd := c.cfg.Clocks.Assess(c.cfg.NodeID, v)
	if !vd.Verified {
		vd = c.awaitClockCheck(ctx)
		v = c.view.Load()
	}
	if vd.Err == nil && !vd.Verified {
		vd.Err = errClockUnverified
	}
	return v, vd
}

// clockCheckWait bounds how long a write waits for this node's clock to be
// compared with its live peers' (after a start, or a member's return):
// clock pings answer within a round trip, so the wait is that, unless the
// peers cannot be heard. Half the request timeout, when that is shorter.
const clockCheckWait = 2 * time.Second

// awaitClockCheck waits, at most clockCheckWait, until this node's clock
// has been compared with a majority of the live peers: a clock far behind
// would otherwise stamp writes that order before ones made elsewhere,
// which the replicas cannot tell from old records (hints, repairs). If no
// comparison comes, the write is refused (errClockUnverified).
func (c *coordinator) awaitClockCheck(ctx context.Context) ClockVerdict {
	deadline := c.time.Now().Add(min(clockCheckWait, c.cfg.RequestTimeout/2))
	for {
		vd := c.cfg.Clocks.Assess(c.cfg.NodeID, c.view.Load())
		if vd.Verified || !c.time.Now().Before(deadline) || ctx.Err() != nil {
			return vd
		}
		c.sleep(2 * time.Millisecond)
	}
}

// clockError returns why this node coordinates no writes because of its
// clock, or nil.
func (c *coordinator) clockError(v *View) error {
	if c.solo(v) {
		return nil
	}
	return c.cfg.Clocks.Assess(c.cfg.NodeID, v).Err
}

// writeLocal writes rec to this node's engine, answering within the
// request timeout. Pebble's commit cannot be cancelled; while it may block
// (a write stall, a slow disk) the write runs on a goroutine of its own,
// with its own copy of key and record, and is answered when it is done or
// when the request times out, whichever is first (it may then still be
// applied). Otherwise it runs inline, as most writes do.
func (c *coordinator) writeLocal(ctx context.Context, key []byte, rec *memtable.Record) error {
	e := c.cfg.Engine
	if !e.WriteMayBlock() {
		return e.Write(key, rec, c.cfg.Sync)
	}
	k, r := copyRecord(key, rec)
	done := make(chan error, 1)
	c.bg.Go(func() { done <- e.Write(k, r, c.cfg.Sync) })
	return c.awaitLocal(ctx, done)
}

// awaitLocal waits for a local write that may block, for at most the
// request timeout.
func (c *coordinator) awaitLocal(ctx context.Context, done <-chan error) error {
	t := c.time.NewTimer(c.cfg.RequestTimeout)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C():
		return fmt.Errorf("%w: the local store did not confirm the write within the request timeout (%s; Pebble is stalling writes); it may still be applied", ErrUnavailable, c.cfg.RequestTimeout)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// sleep waits d on the coordinator's time source.
func (c *coordinator) sleep(d time.Duration) {
	t := c.time.NewTimer(d)
	<-t.C()
}

// copyRecord returns copies of key and rec that outlive the request.
func copyRecord(key []byte, rec *memtable.Record) ([]byte, *memtable.Record) {
	buf := make([]byte, 0, len(key)+len(rec.Value))
	buf = append(buf, key...)
	buf = append(buf, rec.Value...)
	r := *rec
	r.Value = buf[len(key):]
	return buf[:len(key):len(key)], &r
}

// Health returns this node's reasons to be degraded (the engine's: a full
// disk, a failed store; a clock off from a majority of its peers, when it
// coordinates no writes; a damaged file whose span it routes around);
// none while it serves fully. It does no I/O.
func (n *Node) Health() []Degraded {
	var h []Degraded
	for _, d := range n.cfg.Engine.Health() {
		h = append(h, Degraded(d))
	}
	if err := n.co.clockError(n.view.Load()); err != nil {
		h = append(h, Degraded{Reason: "clock offset", Detail: err.Error(), RefusesWrites: true})
	}
	return append(h, n.ae.corruptionHealth()...)

}

// LSM returns the local engine's LSM report (GET /v1/lsm).
func (n *Node) LSM() any { return n.cfg.Engine.LSM() }

// Compact runs a manual compaction of the local engine.
func (n *Node) Compact(ctx context.Context) error { return clientErr(n.cfg.Engine.Compact(ctx)) }

// Members returns the HTTP addresses of the ring's members, ordered by id.
func (n *Node) Members() []string {
	v := n.view.Load()
	var out []string
	for _, m := range v.sortedMembers() {
		if v.Ring.Has(m.ID) {
			out = append(out, m.HTTPAddr)
		}
	}
	return out
}
