package peer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ringkv/ringkv/memtable"
	"github.com/ringkv/ringkv/ring"
)

// TimeSource is where the coordinator reads the time and arms its timers:
// request timeouts, read hedges, commit waits and replica deadlines. Tests
// pass a fake to drive them without sleeping (a fake needs a transport
// that reads the deadlines it is given against it too).
type TimeSource interface {
	Now() time.Time
	// NewTimer returns a timer that fires once, d from now.
	NewTimer(d time.Duration) Timer
}

// Timer is a TimeSource's timer, as time.Timer.
type Timer interface {
	C() <-chan time.Time
	Stop() bool
	Reset(d time.Duration) bool
}

// RealTime is the TimeSource of the time package.
type RealTime struct{}

// Now returns time.Now().
func (RealTime) Now() time.Time { return time.Now() }

// NewTimer returns a time.Timer.
func (RealTime) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

// realTimer is pointer-shaped: returned as a Timer, it allocates nothing
// beyond the time.Timer.
type realTimer struct{ t *time.Timer }

func (t realTimer) C() <-chan time.Time        { return t.t.C }
func (t realTimer) Stop() bool                 { return t.t.Stop() }
func (t realTimer) Reset(d time.Duration) bool { return t.t.Reset(d) }

// coordinator is the node's request path: quorum reads and writes (read
// plan and write plan, readplan.go and writeplan.go, around short I/O
// loops), read repair, commit waits, and the replica side of writes and
// reads. Its state is its own; what it shares with the node's other
// subsystems is the published view, the background WaitGroup, and the two
// calls below into them. It is safe for concurrent use.
type coordinator struct {
	cfg  *Config // the node's, immutable once NewNode returns
	time TimeSource
	tag  uint64 // memtable.NodeTag of this node's id, in its writes' versions
	view *atomic.Pointer[View]
	// bg is the node's WaitGroup of work that outlives a request.
	bg *sync.WaitGroup
	// hint keeps a write for replica id that missed it (hints.go).
	hint func(id string, m Mutation)
	// pendingFrom returns the old owners of a range this node is still
	// pulling (transfer.go).
	pendingFrom func(tok uint64) ([]string, bool)

	// commitWaits counts the writes that waited for peers' clocks to pass
	// their timestamp, commitWaitNanos how long in all (see commitWait).
	commitWaits, commitWaitNanos atomic.Int64
	readRepairs                  atomic.Int64 // stale replicas a read rewrote
	// writeFailures and readFailures count the replica calls that failed,
	// timed out or were skipped as the replica was down: writes that
	// became hints, reads another replica answered in their place. Plain
	// counters, so the request path allocates nothing for them.
	writeFailures, readFailures atomic.Int64
	// applyRefused counts records ApplyLocal refused as not this node's.
	applyRefused atomic.Int64
	// pastRings are the rings replaced less than applyGrace ago (written
	// under the node's viewMu): replica writes for keys this node owned
	// in them are still taken (see mayStore).
	pastRings atomic.Pointer[[]pastRing]

	// gets and puts pool the state of cluster reads (*getState) and
	// writes (*putState), so that a request allocates none of it.
	gets, puts sync.Pool

	// acc is the replica's side of conditional writes (acceptor.go).
	acc acceptor
}

// solo reports whether this node alone owns every key of view v, so
// requests need no coordination.
func (c *coordinator) solo(v *View) bool {
	nodes := v.Ring.Nodes()
	return len(nodes) == 1 && nodes[0] == c.cfg.NodeID
}

// writeAnswer is one owner's outcome of a write; replica marks another
// node's word.
type writeAnswer struct {
	err     error
	replica bool
}

// clusterWrite sends rec to every owner of key and returns once c's share
// of them applied it durably. Owners that fail, are down or answer late
// get a hint; the request never waits on them once enough have answered.
func (c *coordinator) clusterWrite(ctx context.Context, v *View, op string, key []byte, rec *memtable.Record, cons Consistency, vd ClockVerdict) (Version, error) {
	owners := v.Ring.KeyOwners(key)
	if len(owners) == 0 {
		return Version{}, &UnavailableError{Op: op, Needed: 1}
	}
	s := c.putState(v, len(owners)+1)
	defer s.end()
	p := &s.plan
	p.reset(writeEnv{
		op: op, self: c.cfg.NodeID, owners: owners, need: cons.Needed(len(owners)), checked: vd.Compared,
		reachable: s.reachable,
	})
	steps := p.start()
	if p.done {
		return Version{}, p.err
	}
	// The write is answered only once every peer's clock has passed its
	// timestamp (see clock.go): then any write that begins after the
	// answer, wherever, stamps a later one. The next millisecond, since
	// timestamps have millisecond wall time.
	waitUntil := memtable.TimestampTime(rec.TS).Add(time.Millisecond + vd.Lag)
	// The replica calls outlive the request (its buffers are recycled), so
	// they get the state's copy of the key and record, kept until the last
	// of them is done.
	s.buf = append(s.buf[:0], key...)
	s.buf = rec.Append(s.buf)
	s.m = Mutation{Key: s.buf[:len(key):len(key)], Record: s.buf[len(key):]}
	c.sendWrites(s, steps, key, rec)
	timer := s.arm(&s.timer, c.cfg.RequestTimeout)
	for !p.done {
		select {
		case a := <-s.done:
			if p.onAnswer(a.replica, a.err) {
				// This node's deferred copy, from s.m: key and rec alias
				// the request's buffers, which may be recycled by then.
				s.refs.Add(1)
				c.bg.Go(func() {
					s.done <- writeAnswer{err: c.storeEncoded(s.m)}
					s.unref()
				})
			}
		case <-timer.C():
			p.onTimeout()
		case <-ctx.Done():
			return Version{}, ctx.Err()
		}
	}
	if p.err != nil {
		return Version{}, p.err
	}
	if err := c.commitWait(ctx, waitUntil, &s.wait); err != nil {
		return Version{}, err
	}
	return Version(rec.Version), nil
}

// putState is one cluster write's state: its plan, answer channel,
// timers, the encoded record the replicas are sent, and a callback per
// replica, pooled (coordinator.puts) so that a write allocates none of
// them. The replicas may answer after the write returned (it waits only
// for its quorum), so a state goes back to the pool only once the request
// and every call, hint and goroutine it started are done with it: refs
// counts them, and whoever drops the last returns it.
type putState struct {
	c    *coordinator
	refs atomic.Int32
	v    *View // the view the write began with
	plan writePlan
	// done receives one answer per owner (and one more for a deferred
	// own copy): it has room for them all, so no answer ever blocks.
	done        chan writeAnswer
	timer, wait Timer // the request timeout and the commit wait, once armed
	buf         []byte
	m           Mutation    // key and record in buf, for replicas and hints
	ms          [1]Mutation // m, as the replicas' calls take it
	sends       []*replicaWrite
	nsends      int                  // sends[:nsends] are this write's
	reachable   func(id string) bool // s.isReachable, bound once
}

// replicaWrite is one replica's call of a write, its callback bound once.
type replicaWrite struct {
	s       *putState
	id      string
	written func(error) // w.answer
}

// putState returns a state for a write over v whose owners send at most
// answers, its only reference the caller's.
func (c *coordinator) putState(v *View, answers int) *putState {
	s, _ := c.puts.Get().(*putState)
	if s == nil {
		s = &putState{c: c}
		s.reachable = s.isReachable
	}
	if cap(s.done) < answers {
		s.done = make(chan writeAnswer, answers)
	}
	s.v = v
	s.refs.Store(1)
	return s
}

// isReachable is writeEnv.reachable: id is not known dead, and this node
// has a transport.
func (s *putState) isReachable(id string) bool {
	_, ok := s.v.reachable(id)
	return ok && s.c.cfg.Transport != nil
}

// arm starts the timer *t for d, created on first use, and returns it.
func (s *putState) arm(t *Timer, d time.Duration) Timer { return armTimer(s.c.time, t, d) }

// replica returns the next replica call's slot, for id.
func (s *putState) replica(id string) *replicaWrite {
	if s.nsends == len(s.sends) {
		w := &replicaWrite{s: s}
		w.written = w.answer
		s.sends = append(s.sends, w)
	}
	w := s.sends[s.nsends]
	s.nsends++
	w.id = id
	return w
}

// answer is a replica's outcome, from the transport.
func (w *replicaWrite) answer(err error) {
	s, c := w.s, w.s.c
	if c.replicaWritten(w.id, err) {
		s.refs.Add(1)
		id := w.id
		c.bg.Go(func() {
			c.hint(id, s.m)
			s.unref()
		})
	}
	s.done <- writeAnswer{err: err, replica: true}
	s.unref()
	c.bg.Done()
}

// end is the request's part done: its timers stopped, its reference
// dropped.
func (s *putState) end() {
	stopTimer(s.timer)
	stopTimer(s.wait)
	s.unref()
}

// unref drops one reference; the last returns s to the pool, emptied.
func (s *putState) unref() {
	if s.refs.Add(-1) != 0 {
		return
	}
	for len(s.done) > 0 {
		<-s.done // answers that came after the request returned
	}
	s.plan.reset(writeEnv{})
	s.v, s.m, s.ms[0], s.nsends = nil, Mutation{}, Mutation{}, 0
	if cap(s.buf) > maxPooledBuf {
		s.buf = nil
	}
	s.c.puts.Put(s)
}

// maxPooledBuf is the largest buffer a pooled request state keeps: a large
// value's should not stay alive in the pool.
const maxPooledBuf = 64 << 10

// armTimer starts the timer *t for d, taking it from ts on first use.
func armTimer(ts TimeSource, t *Timer, d time.Duration) Timer {
	if *t == nil {
		*t = ts.NewTimer(d)
	} else {
		(*t).Reset(d)
	}
	return *t
}

// stopTimer stops t, if any, so that it can be reset for another request:
// a tick it sent before (a TimeSource's timer need not discard it, as
// time.Timer does since Go 1.23) is dropped.
func stopTimer(t Timer) {
	if t == nil {
		return
	}
	t.Stop()
	select {
	case <-t.C():
	default:
	}
}

// sendWrites carries out a write plan's steps: s.m (rec for key, encoded)
// to the replicas, hints for the owners down, and this node's copy; each
// outcome is answered on s.done.
func (c *coordinator) sendWrites(s *putState, steps []writeStep, key []byte, rec *memtable.Record) {
	var deadline time.Time
	s.ms[0] = s.m
	for _, st := range steps {
		id := st.id
		switch st.act {
		case writeHint:
			c.writeFailures.Add(1)
			s.refs.Add(1)
			c.bg.Go(func() {
				c.hint(id, s.m)
				s.unref()
			})
			s.done <- writeAnswer{err: errDown}
		case writeSend:
			mem, _ := s.v.reachable(id)
			if deadline.IsZero() {
				deadline = c.time.Now().Add(c.cfg.RequestTimeout)
			}
			// Asynchronous, with no goroutine of its own: the transport
			// batches it with other writes to the same replica.
			c.bg.Add(1)
			s.refs.Add(1)
			c.cfg.Transport.ApplyAsync(mem.HTTPAddr, s.ms[:], deadline, s.replica(id).written)
		case writeLocal:
			if e := c.cfg.Engine; !e.WriteMayBlock() {
				s.done <- writeAnswer{err: e.Write(key, rec, c.cfg.Sync)}
			} else {
				// A write that may block answers through done like a
				// replica's, and the request timeout bounds it (see
				// writeLocal).
				k, r := copyRecord(key, rec)
				s.refs.Add(1)
				c.bg.Go(func() {
					s.done <- writeAnswer{err: e.Write(k, r, c.cfg.Sync)}
					s.unref()
				})
			}
		}
	}
}

// replicaWritten does what replica id's failed write leaves to do, whether
// or not the request still waits for it, and reports whether the caller
// is to keep a hint of it.
func (c *coordinator) replicaWritten(id string, err error) (hint bool) {
	if err != nil {
		c.writeFailures.Add(1)
	}
	hint, refused := replicaFailure(err)
	if refused {
		// Refused as from the future: a hint would land it once the
		// replica's clock caught up, ahead of writes made since. This
		// node's clock is suspect until measured.
		c.cfg.Clocks.Refused(id)
		c.cfg.Logger.Warn("a replica refused a write as stamped too far ahead of its clock", "node", id, "err", err)
	}
	if hint {
		c.cfg.Logger.Debug("replica write failed; keeping a hint", "node", id, "err", err)
	}
	return hint
}

// storeEncoded writes the encoded mutation m to this node's engine.
func (c *coordinator) storeEncoded(m Mutation) error {
	r, err := memtable.Decode(m.Record)
	if err != nil {
		return err
	}
	return c.cfg.Engine.Write(m.Key, &r, c.cfg.Sync)
}

// commitWait returns once this node's wall clock reads until, or ctx ends.
// With clocks in sync the replicas' fsyncs took longer, and it returns at
// once. Its timer is *t, created on first use (the caller stops it).
func (c *coordinator) commitWait(ctx context.Context, until time.Time, t *Timer) error {
	d := until.Sub(c.cfg.Now())
	if d <= 0 {
		return nil
	}
	c.commitWaits.Add(1)
	c.commitWaitNanos.Add(int64(d))
	select {
	case <-armTimer(c.time, t, d).C():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// sendApply delivers ms to the node at addr, bounded by the request
// timeout but not by any client request.
func (c *coordinator) sendApply(addr string, ms []Mutation) error {
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.RequestTimeout)
	defer cancel()
	return c.cfg.Transport.Apply(ctx, addr, ms)
}

// clusterGet reads key from cons's share of its owners and returns the
// newest record's value; readPlan says whom it asks and when it is done.
// Replicas that answered with an older record, or none, are repaired in
// the background.
func (c *coordinator) clusterGet(ctx context.Context, v *View, dst, key []byte, cons Consistency) ([]byte, Version, error) {
	owners := v.Ring.KeyOwners(key)
	if len(owners) == 0 {
		return dst, Version{}, &UnavailableError{Op: "get", Needed: 1}
	}
	// Room for every node the plan may ask, so that no answer ever blocks.
	room := len(owners) + c.cfg.Replicas + 2
	s := c.getState(v, key, room)
	defer s.end()
	p := &s.plan
	p.reset(readEnv{
		self: c.cfg.NodeID, owners: owners, need: cons.Needed(len(owners)),
		room:      room,
		reachable: s.reachable,
		beyond:    s.beyond,
		allOwners: len(v.Ring.Nodes()) <= c.cfg.Replicas,
	})
	s.deadline = c.time.Now().Add(c.cfg.RequestTimeout)
	// The first round last to first: remote replicas first, so they run
	// while this node reads its own copy.
	first := p.start()
	for i := len(first) - 1; i >= 0; i-- {
		c.askRead(s, first[i])
	}
	timer := s.arm(&s.timer, c.cfg.RequestTimeout)
	// A replica that hangs (paused, or cut off before failure detection
	// notices) must not hold the read: after HedgeAfter, ask one more.
	hedge := s.arm(&s.hedge, c.cfg.HedgeAfter)
	for !p.done {
		select {
		case <-hedge.C():
			more, rearm := p.onHedge()
			s.ask(more)
			if rearm {
				hedge.Reset(c.cfg.HedgeAfter)
			}
		case r := <-s.replies:
			if r.err != nil {
				c.cfg.Logger.Debug("replica read failed", "node", r.id, "err", r.err)
			}
			s.ask(p.onReply(r))
		case <-timer.C():
			p.onTimeout()
		case <-ctx.Done():
			return dst, Version{}, ctx.Err()
		}
	}
	return c.readResult(v, dst, s.key, p.result)
}

// getState is one cluster read's state: its plan, reply channel, timers,
// its copy of the key, this node's record and a callback per replica
// asked, pooled (coordinator.gets) so that a read allocates none of them.
// Replicas may answer after the read returned (it waits only for its
// quorum), so a state goes back to the pool only once the request and
// every ask it made are done with it: refs counts them, and whoever drops
// the last returns it.
type getState struct {
	c        *coordinator
	refs     atomic.Int32
	v        *View // the view the read began with
	plan     readPlan
	deadline time.Time // of the replicas' reads
	// replies has room for every node a plan asks, so no answer blocks.
	replies      chan reply
	timer, hedge Timer  // the request timeout and the hedge, once armed
	key          []byte // the read's copy: the asks outlive the request
	local        []byte // this node's record, read into
	asks         []*readAsk
	nasks        int                  // asks[:nasks] are this read's
	reachable    func(id string) bool // s.isReachable, bound once
	beyond       func() []string      // s.beyondOwners, bound once
}

// readAsk is one replica's read, its callback bound once.
type readAsk struct {
	s   *getState
	id  string
	got func(rec []byte, err error) // a.answer
}

// getState returns a state for a read of key over v that asks at most
// room nodes, its only reference the caller's.
func (c *coordinator) getState(v *View, key []byte, room int) *getState {
	s, _ := c.gets.Get().(*getState)
	if s == nil {
		s = &getState{c: c}
		s.reachable, s.beyond = s.isReachable, s.beyondOwners
	}
	if cap(s.replies) < room {
		s.replies = make(chan reply, room)
	}
	s.v = v
	s.key = append(s.key[:0], key...)
	s.refs.Store(1)
	return s
}

// isReachable is readEnv.reachable.
func (s *getState) isReachable(id string) bool {
	_, ok := s.v.reachable(id)
	return ok
}

// beyondOwners is readEnv.beyond.
func (s *getState) beyondOwners() []string {
	n := len(s.plan.env.owners)
	return s.v.Ring.Successors(ring.Token(s.key), n+2)[n:]
}

// arm starts the timer *t for d, created on first use, and returns it.
func (s *getState) arm(t *Timer, d time.Duration) Timer { return armTimer(s.c.time, t, d) }

// ask asks each of ids.
func (s *getState) ask(ids []string) {
	for _, id := range ids {
		s.c.askRead(s, id)
	}
}

// answer is a replica's reply, from the transport.
func (a *readAsk) answer(rec []byte, err error) {
	s := a.s
	if err != nil {
		// Counted here, not where the read waits: a replica that fails
		// or times out after the quorum answered failed all the same.
		s.c.readFailures.Add(1)
	}
	s.replies <- reply{id: a.id, rec: rec, err: err}
	s.unref()
}

// end is the request's part done: its timers stopped, its reference
// dropped.
func (s *getState) end() {
	stopTimer(s.timer)
	stopTimer(s.hedge)
	s.unref()
}

// unref drops one reference; the last returns s to the pool, emptied.
func (s *getState) unref() {
	if s.refs.Add(-1) != 0 {
		return
	}
	for len(s.replies) > 0 {
		<-s.replies // answers that came after the request returned
	}
	s.plan.forget()
	s.v, s.nasks = nil, 0
	if cap(s.key) > maxPooledBuf {
		s.key = nil
	}
	if cap(s.local) > maxPooledBuf {
		s.local = nil
	}
	s.c.gets.Put(s)
}

// askRead asks node id for its record of s.key, answering on s.replies.
func (c *coordinator) askRead(s *getState, id string) {
	if id == c.cfg.NodeID {
		s.replies <- c.readLocalReply(s, id)
		return
	}
	mem, ok := s.v.reachable(id)
	if !ok || c.cfg.Transport == nil {
		c.readFailures.Add(1)
		s.replies <- reply{id: id, err: errDown}
		return
	}
	if s.nasks == len(s.asks) {
		a := &readAsk{s: s}
		a.got = a.answer
		s.asks = append(s.asks, a)
	}
	a := s.asks[s.nasks]
	s.nasks++
	a.id = id
	s.refs.Add(1)
	c.cfg.Transport.ReadAsync(mem.HTTPAddr, s.key, s.deadline, a.got)
}

// readResult turns a read plan's result into Get's, and starts its repairs.
func (c *coordinator) readResult(v *View, dst, key []byte, res readResult) ([]byte, Version, error) {
	if res.err != nil {
		return dst, Version{}, res.err
	}
	if res.rec == nil {
		return dst, Version{}, ErrNotFound
	}
	c.repair(v, key, res.rec, res.repair)
	rec, err := memtable.Decode(res.rec)
	if err != nil {
		return dst, Version{}, fmt.Errorf("cannot decode record of %q: %w", key, err)
	}
	if !rec.Live(c.cfg.Now().UnixMilli()) {
		return dst, Version{}, ErrNotFound
	}
	return append(dst, rec.Value...), Version(rec.Version), nil
}

// readLocalReply reads this node's own record of s.key as a reply, into
// s.local: a plan asks this node once.
func (c *coordinator) readLocalReply(s *getState, id string) reply {
	rec, err := c.ReadLocal(s.local[:0], s.key)
	if cap(rec) > cap(s.local) {
		s.local = rec[:0]
	}
	if len(rec) == 0 {
		rec = nil // none: an encoded record is never empty
	}
	if errors.Is(err, ErrNotFound) {
		return reply{id: id}
	}
	return reply{id: id, rec: rec, err: err}
}

// repair writes newest to the replicas ids (those a read found stale), in
// the background. key and newest may be recycled once it returns.
func (c *coordinator) repair(v *View, key, newest []byte, ids []string) {
	var own Mutation // the background writes' copy, made once
	for _, id := range ids {
		c.readRepairs.Add(1)
		if id == c.cfg.NodeID {
			if err := c.ApplyLocal([]Mutation{{Key: key, Record: newest}}); err != nil {
				c.cfg.Logger.Warn("read repair failed", "node", id, "err", err)
			}
			continue
		}
		mem, ok := v.reachable(id)
		if !ok {
			continue
		}
		if own.Key == nil {
			buf := append(append(make([]byte, 0, len(key)+len(newest)), key...), newest...)
			own = Mutation{Key: buf[:len(key):len(key)], Record: buf[len(key):]}
		}
		m := own
		c.bg.Go(func() {
			if err := c.sendApply(mem.HTTPAddr, []Mutation{m}); err != nil {
				if errors.Is(err, ErrNotOwner) || errors.Is(err, ErrClockOffset) {
					// An old owner of a range being moved, past its grace,
					// or a clock refusal: a hint would be refused too.
					c.cfg.Logger.Debug("read repair refused", "node", id, "err", err)
					return
				}
				c.cfg.Logger.Debug("read repair failed; keeping a hint", "node", id, "err", err)
				c.hint(id, m)
			}
		})
	}
}

// ApplyLocal is Replica.ApplyLocal.
func (c *coordinator) ApplyLocal(ms []Mutation) error {
	if len(ms) == 0 {
		return nil
	}
	b := c.cfg.Engine.NewBatch()
	for _, m := range ms {
		if err := checkKey(m.Key); err != nil {
			return err
		}
		if !c.mayStore(m.Key) {
			c.applyRefused.Add(1)
			return fmt.Errorf("%w: key %q (token %016x) is not in a range this node owns", ErrNotOwner, m.Key, ring.Token(m.Key))
		}
		if err := b.WriteEncoded(m.Key, m.Record); err != nil {
			return fmt.Errorf("%w: %v", ErrBadMessage, err)
		}
		if v, err := memtable.DecodeVersion(m.Record); err == nil {
			// Keep this node's clock ahead of what it stores. A record
			// stamped further ahead of it than the bound is refused: a
			// broken clock's write must not be acknowledged, and stored it
			// would beat every write for as long as the clock is off.
			if err := c.cfg.Clock.Update(v.TS); err != nil {
				return fmt.Errorf("%w: key %q: %v", ErrClockOffset, m.Key, err)
			}
		}
	}
	// A full disk refuses the batch at once (engine.ErrDiskFull), which
	// the coordinator counts as a failed replica and hints. A commit that
	// may block is answered within the request timeout, as writeLocal does.
	e := c.cfg.Engine
	if !e.WriteMayBlock() {
		return e.Commit(b, c.cfg.Sync)
	}
	done := make(chan error, 1)
	c.bg.Go(func() { done <- e.Commit(b, c.cfg.Sync) })
	return c.awaitLocal(context.Background(), done)
}

// ReadLocal is Replica.ReadLocal.
func (c *coordinator) ReadLocal(dst, key []byte) ([]byte, error) {
	if err := checkKey(key); err != nil {
		return dst, err
	}
	if from, ok := c.pendingFrom(ring.Token(key)); ok {
		// What it holds may lack older writes, but has every write made
		// since the range became its: the coordinator may still use it.
		out, err := c.readLocal(dst, key)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return dst, err
		}
		return out, &PendingError{From: from}
	}
	return c.readLocal(dst, key)
}

// readLocal is ReadLocal without the pending-range check: the record as
// the engine stores it, never re-encoded.
func (c *coordinator) readLocal(dst, key []byte) ([]byte, error) {
	out, _, err := c.cfg.Engine.GetStored(dst, key)
	return out, err
}

// ErrNotOwner is matched by ApplyLocal's refusal of a record of a key that
// this node does not own (/internal/apply answers 403).
var ErrNotOwner = errors.New("peer: this node does not own the key")

// applyGrace is how long after a ring change a node still takes replica
// writes for the keys it owned before it: nodes learn of a change at
// different moments, and a coordinator that has not yet must not see its
// writes refused (they would become hints, and quorums fail) meanwhile. A
// node that gains keys takes their writes at once.
const applyGrace = time.Minute

// pastRing is a ring this node held, and until when it still counts.
type pastRing struct {
	r     *ring.Ring
	until time.Time
}

// rememberRing keeps r, just replaced, for applyGrace. REQUIRES: the
// node's viewMu.
func (c *coordinator) rememberRing(r *ring.Ring) {
	now := c.time.Now()
	var keep []pastRing
	if p := c.pastRings.Load(); p != nil {
		for _, pr := range *p {
			if now.Before(pr.until) {
				keep = append(keep, pr)
			}
		}
	}
	keep = append(keep, pastRing{r: r, until: now.Add(applyGrace)})
	c.pastRings.Store(&keep)
}

// mayStore reports whether a replica write of key is this node's to
// store: it owns the key (ranges it is still pulling included) in the
// current ring, or did in a ring replaced less than applyGrace ago.
func (c *coordinator) mayStore(key []byte) bool {
	tok := ring.Token(key)
	if slices.Contains(c.view.Load().Ring.Owners(tok), c.cfg.NodeID) {
		return true
	}
	p := c.pastRings.Load()
	if p == nil {
		return false
	}
	now := c.time.Now()
	for _, pr := range *p {
		if now.Before(pr.until) && slices.Contains(pr.r.Owners(tok), c.cfg.NodeID) {
			return true
		}
	}
	return false
}
