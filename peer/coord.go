package peer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/ringkv/ringkv/memtable"
	"github.com/ringkv/ringkv/ring"
)

// errDown stands for a replica the view says is dead: it is not asked, and
// its share of a write becomes a hint at once.
var errDown = errors.New("replica is down")

// clusterWrite sends rec to every owner of key and returns once c's share
// of them applied it durably. Owners that fail, are down or answer late
// get a hint; the request never waits on them once enough have answered.
func (n *Node) clusterWrite(ctx context.Context, v *View, op string, key []byte, rec *memtable.Record, c Consistency, vd ClockVerdict) (Version, error) {
	owners := v.Ring.KeyOwners(key)
	if len(owners) == 0 {
		return Version{}, &UnavailableError{Op: op, Needed: 1}
	}
	need := c.Needed(len(owners))
	// The replica calls outlive the request (its buffers are recycled), so
	// they get their own copy of the key and record, in one allocation.
	buf := make([]byte, 0, len(key)+rec.EncodedLen())
	buf = append(buf, key...)
	buf = rec.Append(buf)
	m := Mutation{Key: buf[:len(key):len(key)], Record: buf[len(key):]}

	ms := []Mutation{m}

	// The write is answered only once every peer's clock has passed its
	// timestamp (see clock.go): then any write that begins after the
	// answer, wherever, stamps a later one. The next millisecond, since
	// timestamps have millisecond wall time.
	waitUntil := memtable.TimestampTime(rec.TS).Add(time.Millisecond + vd.Lag)
	// A clock not yet compared with a majority of the peers that answer
	// might be far ahead: then this node's own copy waits for a replica's
	// word, so that a write they refuse as from the future is stored
	// nowhere (it would later beat writes acknowledged after it).
	checked := vd.Compared

	if !checked && !slices.ContainsFunc(owners, func(id string) bool {
		_, ok := v.reachable(id)
		return ok && id != n.cfg.NodeID && n.cfg.Transport != nil
	}) {
		// Nobody to give its word on the clock: no copy, no hint.
		return Version{}, &UnavailableError{Op: op, Needed: need, Cause: errClockUnchecked}
	}

	// answer is one owner's outcome; replica marks another node's word.
	type answer struct {
		err     error
		replica bool
	}
	done := make(chan answer, len(owners)+1)
	local := false
	remote := 0
	var deadline time.Time
	for _, id := range owners {
		if id == n.cfg.NodeID {
			local = true
			continue
		}
		mem, ok := v.reachable(id)
		if !ok || n.cfg.Transport == nil {
			n.bg.Go(func() { n.hint(id, m) })
			done <- answer{err: errDown}
			continue
		}
		if deadline.IsZero() {
			deadline = time.Now().Add(n.cfg.RequestTimeout)
		}
		remote++
		// Asynchronous, with no goroutine of its own: the transport
		// batches it with other writes to the same replica.
		n.bg.Add(1)
		n.cfg.Transport.ApplyAsync(mem.HTTPAddr, ms, deadline, func(err error) {
			switch {
			case errors.Is(err, ErrClockOffset):
				// Refused as from the future: a hint would land it once
				// the replica's clock caught up, ahead of writes made
				// since. This node's clock is suspect until measured.
				n.cfg.Clocks.Refused(id)
				n.cfg.Logger.Warn("a replica refused a write as stamped too far ahead of its clock", "node", id, "err", err)
			case err != nil:
				n.cfg.Logger.Debug("replica write failed; keeping a hint", "node", id, "err", err)
				n.bg.Go(func() { n.hint(id, m) })
			}
			done <- answer{err: err, replica: true}
			n.bg.Done()
		})
	}
	if local && (checked || remote == 0) {
		if e := n.cfg.Engine; !e.WriteMayBlock() {
			done <- answer{err: e.Write(key, rec, n.cfg.Sync)}
		} else {
			// A write that may block answers through done like a
			// replica's, and the timer below bounds it (see writeLocal).
			k, r := copyRecord(key, rec)
			n.bg.Go(func() { done <- answer{err: e.Write(k, r, n.cfg.Sync)} })
		}
		local = false
	}
	// writeLocal writes this node's copy later, from m (key and rec alias
	// the request's buffers, which may be recycled by then).
	writeLocal := func() {
		r, err := memtable.Decode(m.Record)
		if err == nil {
			err = n.cfg.Engine.Write(m.Key, &r, n.cfg.Sync)
		}
		done <- answer{err: err}
	}
	acks, fails := 0, 0
	var refusal error
	timer := time.NewTimer(n.cfg.RequestTimeout)
	defer timer.Stop()
	for acks < need {
		select {
		case a := <-done:
			if a.replica && local {
				// The first replica's word on an unchecked clock.
				local = false
				if !errors.Is(a.err, ErrClockOffset) {
					n.bg.Go(writeLocal)
				} else {
					fails++ // this node's own copy is not written
				}
			}
			if a.err != nil {
				fails++
				if errors.Is(a.err, ErrClockOffset) {
					refusal = a.err
				}
				if len(owners)-fails < need {
					return Version{}, &UnavailableError{Op: op, Needed: need, Answered: acks, Cause: refusal}
				}
				continue
			}
			acks++
		case <-timer.C:
			return Version{}, &UnavailableError{Op: op, Needed: need, Answered: acks, TimedOut: true, Cause: refusal}
		case <-ctx.Done():
			return Version{}, ctx.Err()
		}
	}
	if err := n.commitWait(ctx, waitUntil); err != nil {
		return Version{}, err
	}
	return rec.Version, nil
}

// commitWait returns once this node's wall clock reads until, or ctx ends.
// With clocks in sync the replicas' fsyncs took longer, and it returns at
// once.
func (n *Node) commitWait(ctx context.Context, until time.Time) error {
	d := until.Sub(n.cfg.Now())
	if d <= 0 {
		return nil
	}
	n.commitWaits.Add(1)
	n.commitWaitNanos.Add(int64(d))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// sendApply delivers ms to the node at addr, bounded by the request
// timeout but not by any client request.
func (n *Node) sendApply(addr string, ms []Mutation) error {
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.RequestTimeout)
	defer cancel()
	return n.cfg.Transport.Apply(ctx, addr, ms)
}

// hintLogEvery is the shortest time between two "cannot keep a hint" lines.
const hintLogEvery = 5 * time.Second

// logGate lets one log line through per interval and counts the others.
type logGate struct {
	mu      sync.Mutex
	last    time.Time
	skipped int64
}

// allow reports whether a line may be logged now, and how many were held
// back since the last one.
func (g *logGate) allow() (skipped int64, ok bool) {
	now := time.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.last.IsZero() && now.Sub(g.last) < hintLogEvery {
		g.skipped++
		return 0, false
	}
	g.last, skipped, g.skipped = now, g.skipped, 0
	return skipped, true
}

// reply is one replica's answer to a read.
type reply struct {
	id  string
	rec []byte // encoded record; nil when the replica has none
	err error
}

// clusterGet reads key from c's share of its owners, this node first when
// it is one, and returns the newest record. A replica that fails is
// replaced by the next owner. An owner still pulling the key's range
// answers "pending" with the old owners it pulls from, and those are asked
// in its place; its own copy never counts toward the quorum, but a newer
// record in it wins. Replicas that answered with an older record, or none,
// are repaired in the background.
func (n *Node) clusterGet(ctx context.Context, v *View, dst, key []byte, c Consistency) ([]byte, Version, error) {
	owners := v.Ring.KeyOwners(key)
	if len(owners) == 0 {
		return dst, Version{}, &UnavailableError{Op: "get", Needed: 1}
	}
	need := c.Needed(len(owners))
	// Ask this node first, then live owners in ring order; dead ones only
	// as a last resort.
	order := make([]string, 0, len(owners))
	for _, id := range owners {
		if id == n.cfg.NodeID {
			order = append(order, id)
		}
	}
	for _, id := range owners {
		if _, ok := v.reachable(id); ok && id != n.cfg.NodeID {
			order = append(order, id)
		}
	}
	for _, id := range owners {
		if _, ok := v.reachable(id); !ok && id != n.cfg.NodeID {
			order = append(order, id)
		}
	}
	kc := append([]byte(nil), key...)
	deadline := time.Now().Add(n.cfg.RequestTimeout)
	// Room for the owners and as many more as the old owners of a range
	// being moved can add, so that no answer ever blocks.
	replies := make(chan reply, len(order)+n.cfg.Replicas+2)
	next, pending := 0, 0
	extended := false       // order holds successors beyond the owners
	var pendingRepl []reply // answers of owners still pulling key's range
	// also asks id, once, if it can answer and there is room.
	also := func(id string) {
		if _, ok := v.reachable(id); (ok || id == n.cfg.NodeID) && !slices.Contains(order, id) && len(order) < cap(replies) {
			order = append(order, id)
		}
	}
	askID := func(id string) {
		pending++
		if id == n.cfg.NodeID {
			replies <- n.readLocalReply(id, kc)
			return
		}
		mem, ok := v.reachable(id)
		if !ok || n.cfg.Transport == nil {
			replies <- reply{id: id, err: errDown}
			return
		}
		// replies has room for every id order can hold, so got never
		// blocks.
		n.cfg.Transport.ReadAsync(mem.HTTPAddr, kc, deadline, func(rec []byte, err error) {
			replies <- reply{id: id, rec: rec, err: err}
		})
	}
	ask := func() { next++; askID(order[next-1]) }
	// The first round: remote replicas first, so they run while this node
	// reads its own copy.
	first := order[:min(need, len(order))]
	next = len(first)
	for i := len(first) - 1; i >= 0; i-- {
		askID(first[i])
	}
	var got []reply
	var corrupt error // a replica's read met damaged data
	timer := time.NewTimer(n.cfg.RequestTimeout)
	defer timer.Stop()
	// A replica that hangs (paused, or cut off before failure detection
	// notices) must not hold the read: after HedgeAfter, ask one more.
	hedge := time.NewTimer(n.cfg.HedgeAfter)
	defer hedge.Stop()
	for len(got) < need {
		select {
		case <-hedge.C:
			if next < len(order) {
				ask()
				hedge.Reset(n.cfg.HedgeAfter)
			}
		case r := <-replies:
			pending--
			if r.err != nil {
				n.cfg.Logger.Debug("replica read failed", "node", r.id, "err", r.err)
				if errors.Is(r.err, ErrCorruption) && corrupt == nil {
					corrupt = r.err
				}
				if errors.Is(r.err, ErrRangePending) {
					pendingRepl = append(pendingRepl, reply{id: r.id, rec: r.rec})
				}
				var pe *PendingError
				switch {
				case errors.As(r.err, &pe) && len(pe.From) > 0:
					// A new owner still pulling: ask the old owners it
					// pulls from, the ones it displaced among them. Only
					// they (and settled owners) held the key before.
					for _, id := range pe.From {
						also(id)
					}
				case errors.Is(r.err, ErrRangePending) && !extended:
					// One that does not say where from (an older node):
					// ask the owners after the N, in the hope that the
					// displaced one is among them.
					extended = true
					for _, id := range v.Ring.Successors(ring.Token(kc), len(owners)+2)[len(owners):] {
						also(id)
					}
				}
			} else {
				got = append(got, r)
			}
			// Keep as many asks in flight as answers are missing: a
			// pending answer may have added several old owners at once.
			for len(got)+pending < need && next < len(order) {
				ask()
			}
			if len(got) >= need {
				continue
			}
			if pending > 0 {
				// Wait for the asks in flight even when they look too few:
				// one may be a new owner's pending answer that names
				// old owners to ask (the request deadline bounds this).
				continue
			}
			// Nobody left to ask and too few answers: what the copies of
			// owners still pulling the key's range allow. They may lack
			// older writes, but hold every write made since the move began.
			switch {
			case len(pendingRepl) > 0 && len(v.Ring.Nodes()) <= n.cfg.Replicas && coversOwners(owners, got, pendingRepl):
				// Every node is an owner, so the ring grew from fewer than
				// N nodes and the owners that answered are all the old
				// owners there are: every earlier write is among the
				// answers, and the new ones' copies add the later ones
				// (which an old owner that was down may lack).
				got = append(got, pendingRepl...)
			default:
				// No old owner can answer: this node's own copy, if it is
				// an owner still pulling, is the best there is.
				for _, r := range pendingRepl {
					if r.id == n.cfg.NodeID {
						got = append(got, r)
					}
				}
			}
			if len(got) < need {
				if corrupt != nil && len(owners) == 1 {
					// The only replica there is holds the key in a damaged
					// file: say so (and which), rather than "unavailable".
					return dst, Version{}, corrupt
				}
				return dst, Version{}, &UnavailableError{Op: "get", Needed: need, Answered: len(got)}
			}
		case <-timer.C:
			return dst, Version{}, &UnavailableError{Op: "get", Needed: need, Answered: len(got), TimedOut: true}
		case <-ctx.Done():
			return dst, Version{}, ctx.Err()
		}
	}
	newest := newestReply(got)
	// An owner still pulling the key's range holds every write made since
	// its move began, which the old owners that made up the quorum may
	// lack: its copy never counts toward the quorum, but a newer record
	// in it wins (and is repaired onto the others).
	if p := newestReply(pendingRepl); p != nil && newest == nil {
		newest = p
	} else if p != nil {
		if newer, err := memtable.Newer(p, newest); err == nil && newer {
			newest = p
		}
	}
	if newest == nil {
		return dst, Version{}, ErrNotFound
	}
	n.repair(v, kc, newest, got)
	rec, err := memtable.Decode(newest)
	if err != nil {
		return dst, Version{}, fmt.Errorf("cannot decode record of %q: %w", key, err)
	}
	if !rec.Live(n.cfg.Now().UnixMilli()) {
		return dst, Version{}, ErrNotFound
	}
	return append(dst, rec.Value...), rec.Version, nil
}

// coversOwners reports whether every owner but those still pulling
// answered.
func coversOwners(owners []string, got, pending []reply) bool {
	for _, id := range owners {
		has := func(r reply) bool { return r.id == id }
		if !slices.ContainsFunc(pending, has) && !slices.ContainsFunc(got, has) {
			return false
		}
	}
	return true
}

// readLocalReply reads this node's own record of key as a reply.
func (n *Node) readLocalReply(id string, key []byte) reply {
	rec, err := n.ReadLocal(nil, key)
	if errors.Is(err, ErrNotFound) {
		return reply{id: id}
	}
	return reply{id: id, rec: rec, err: err}
}

// newestReply returns the newest record among replies, or nil if none has one.
func newestReply(rs []reply) []byte {
	var best []byte
	for _, r := range rs {
		if r.rec == nil {
			continue
		}
		if best == nil {
			best = r.rec
			continue
		}
		if newer, err := memtable.Newer(r.rec, best); err == nil && newer {
			best = r.rec
		}
	}
	return best
}

// repair writes newest to every replica in rs that answered with an older
// record or none, in the background.
func (n *Node) repair(v *View, key, newest []byte, rs []reply) {
	for _, r := range rs {
		if r.rec != nil {
			if same, err := memtable.Newer(newest, r.rec); err != nil || !same {
				continue // already has newest (or something newer)
			}
		}
		m := Mutation{Key: key, Record: newest}
		id := r.id
		n.readRepairs.Add(1)
		if id == n.cfg.NodeID {
			if err := n.ApplyLocal([]Mutation{m}); err != nil {
				n.cfg.Logger.Warn("read repair failed", "node", id, "err", err)
			}
			continue
		}
		mem, ok := v.reachable(id)
		if !ok {
			continue
		}
		n.bg.Go(func() {
			if err := n.sendApply(mem.HTTPAddr, []Mutation{m}); err != nil {
				if errors.Is(err, ErrNotOwner) || errors.Is(err, ErrClockOffset) {
					// An old owner of a range being moved, past its grace,
					// or a clock refusal: a hint would be refused too.
					n.cfg.Logger.Debug("read repair refused", "node", id, "err", err)
					return
				}
				n.cfg.Logger.Debug("read repair failed; keeping a hint", "node", id, "err", err)
				n.hint(id, m)
			}
		})
	}
}

// ApplyLocal stores records sent by a coordinator (a replica write, read
// repair or hint replay) in one durable batch; the newest version of each
// key wins. A batch with a key this node does not own (nor owned in a ring
// replaced less than applyGrace ago) is refused whole with ErrNotOwner,
// and one with a record stamped beyond the clock bound with
// ErrClockOffset: a replica stores only what is its to store.
func (n *Node) ApplyLocal(ms []Mutation) error {
	if len(ms) == 0 {
		return nil
	}
	b := n.cfg.Engine.NewBatch()
	for _, m := range ms {
		if err := checkKey(m.Key); err != nil {
			return err
		}
		if !n.mayStore(m.Key) {
			n.applyRefused.Add(1)
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
			if err := n.cfg.Clock.Update(v.TS); err != nil {
				return fmt.Errorf("%w: key %q: %v", ErrClockOffset, m.Key, err)
			}
		}
	}
	// A full disk refuses the batch at once (engine.ErrDiskFull), which
	// the coordinator counts as a failed replica and hints. A commit that
	// may block is answered within the request timeout, as writeLocal does.
	e := n.cfg.Engine
	if !e.WriteMayBlock() {
		return e.Commit(b, n.cfg.Sync)
	}
	done := make(chan error, 1)
	n.bg.Go(func() { done <- e.Commit(b, n.cfg.Sync) })
	return n.awaitLocal(context.Background(), done)
}

// ReadLocal appends this node's stored record of key (encoded, tombstones
// and expired records included) to dst, or returns ErrNotFound. For a key
// of a range the node is still pulling it returns a *PendingError (the
// range's old owners), with the record it holds (if any) appended all the
// same.
func (n *Node) ReadLocal(dst, key []byte) ([]byte, error) {
	if err := checkKey(key); err != nil {
		return dst, err
	}
	if from, ok := n.pendingFrom(ring.Token(key)); ok {
		// What it holds may lack older writes, but has every write made
		// since the range became its: the coordinator may still use it.
		out, err := n.readLocal(dst, key)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return dst, err
		}
		return out, &PendingError{From: from}
	}
	return n.readLocal(dst, key)
}

// readLocal is ReadLocal without the pending-range check.
func (n *Node) readLocal(dst, key []byte) ([]byte, error) {
	val, rec, err := n.cfg.Engine.Get(nil, key)
	if err != nil {
		return dst, err
	}
	rec.Value = val
	return rec.Append(dst), nil
}

// ScanLocal answers another node's scan with this node's own records.
func (n *Node) ScanLocal(ctx context.Context, q LocalScan) (LocalPage, error) {
	if q.Limit <= 0 || q.Limit > MaxScanLimit {
		return LocalPage{}, fmt.Errorf("peer: scan limit %d out of range 1..%d", q.Limit, MaxScanLimit)
	}
	ctx, cancel := context.WithTimeout(ctx, n.cfg.RequestTimeout)
	defer cancel()
	var p LocalPage
	budget := maxScanBytes(q.MaxBytes)
	err := n.scanLocal(ctx, q.Prefix, q.After, func(key []byte, r memtable.Record) bool {
		if len(p.Items) == q.Limit || budget <= 0 {
			p.More = true
			return false
		}
		buf := append([]byte(nil), key...)
		buf = r.Append(buf)
		budget -= len(buf)
		p.Items = append(p.Items, Mutation{Key: buf[:len(key):len(key)], Record: buf[len(key):]})
		return true
	})
	return p, err
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

// rememberRing keeps r, just replaced, for applyGrace. REQUIRES: viewMu.
func (n *Node) rememberRing(r *ring.Ring) {
	now := time.Now()
	var keep []pastRing
	if p := n.pastRings.Load(); p != nil {
		for _, pr := range *p {
			if now.Before(pr.until) {
				keep = append(keep, pr)
			}
		}
	}
	keep = append(keep, pastRing{r: r, until: now.Add(applyGrace)})
	n.pastRings.Store(&keep)
}

// mayStore reports whether a replica write of key is this node's to
// store: it owns the key (ranges it is still pulling included) in the
// current ring, or did in a ring replaced less than applyGrace ago.
func (n *Node) mayStore(key []byte) bool {
	tok := ring.Token(key)
	if slices.Contains(n.view.Load().Ring.Owners(tok), n.cfg.NodeID) {
		return true
	}
	p := n.pastRings.Load()
	if p == nil {
		return false
	}
	now := time.Now()
	for _, pr := range *p {
		if now.Before(pr.until) && slices.Contains(pr.r.Owners(tok), n.cfg.NodeID) {
			return true
		}
	}
	return false
}
