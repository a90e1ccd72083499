package peer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ringkv/ringkv/engine"
	"github.com/ringkv/ringkv/memtable"
	"github.com/ringkv/ringkv/peer/kv"
)

// A batch is not a transaction: each item is applied (or not) on its own,
// routed to its own owners. What a batch saves is per-request cost: its
// plain writes are stamped as single writes are but grouped per replica,
// so that this node stores its share in one engine commit (one fsync) and
// each peer gets its share in one transport call; its reads go through
// the read path, whose transport batches them per replica; conditional
// items and serial reads are Paxos rounds, run a few at a time.

// Bounds on the goroutines one batch runs at once: conditional items and
// serial reads (each a round of several messages), and cluster reads.
const (
	batchCASParallel  = 16
	batchReadParallel = 64
)

// Batch runs ops, each on its own, and fills res[i] with the outcome of
// ops[i]; len(res) must be len(ops), and res's Value buffers are reused.
// The items run concurrently, in no particular order; plain writes of one
// key in one batch are stamped in item order, so the later one wins. It
// returns an error matching kv.ErrBadBatch, having applied nothing, when
// an item is malformed or there are more than kv.MaxBatchItems.
func (n *Node) Batch(ctx context.Context, ops []kv.BatchOp, res []kv.BatchResult) error {
	if len(res) != len(ops) {
		return fmt.Errorf("%w: %d results for %d items", kv.ErrBadBatch, len(res), len(ops))
	}
	if err := kv.CheckBatch(ops); err != nil {
		return err
	}
	n.co.batch(ctx, ops, res)
	for i := range res {
		res[i].Err = clientErr(res[i].Err)
	}
	return nil
}

// batch is Node.Batch once the items are checked.
func (c *coordinator) batch(ctx context.Context, ops []kv.BatchOp, res []kv.BatchResult) {
	var plain, reads, rounds []int
	for i := range ops {
		res[i] = kv.BatchResult{Value: res[i].Value[:0]}
		switch op := &ops[i]; {
		case op.Kind == kv.BatchGet && op.Consistency == kv.Serial, op.Condition.Kind != kv.Unconditional:
			rounds = append(rounds, i)
		case op.Kind == kv.BatchGet:
			reads = append(reads, i)
		default:
			plain = append(plain, i)
		}
	}
	v := c.view.Load()
	solo := c.solo(v)
	var wg sync.WaitGroup
	parallel(&wg, rounds, batchCASParallel, func(i int) { c.batchOne(ctx, &ops[i], &res[i]) })
	if !solo {
		parallel(&wg, reads, batchReadParallel, func(i int) { c.batchOne(ctx, &ops[i], &res[i]) })
	}
	if len(plain) > 0 {
		if solo {
			c.soloWrites(ctx, ops, res, plain)
		} else {
			c.clusterWrites(ctx, v, ops, res, plain)
		}
	}
	if solo {
		// Inline, after the writes: a single node reads its engine at
		// memory speed, and a goroutine per read would cost more.
		for _, i := range reads {
			c.batchOne(ctx, &ops[i], &res[i])
		}
	}
	wg.Wait()
}

// parallel runs fn on each of items on at most limit goroutines, added to
// wg.
func parallel(wg *sync.WaitGroup, items []int, limit int, fn func(i int)) {
	var next atomic.Int64
	for range min(len(items), limit) {
		wg.Go(func() {
			for {
				j := int(next.Add(1) - 1)
				if j >= len(items) {
					return
				}
				fn(items[j])
			}
		})
	}
}

// batchOne runs one item through the single-key path: a get, a
// conditional write or a plain write that cannot be grouped.
func (c *coordinator) batchOne(ctx context.Context, op *kv.BatchOp, r *kv.BatchResult) {
	var err error
	switch op.Kind {
	case kv.BatchGet:
		r.Value, r.Version, err = c.Get(ctx, r.Value[:0], op.Key, op.Consistency)
	case kv.BatchPut:
		r.Version, err = c.Put(ctx, op.Key, op.Value, kv.WriteOptions{Consistency: op.Consistency, TTL: op.TTL, Condition: op.Condition})
	case kv.BatchDelete:
		r.Version, err = c.Delete(ctx, op.Key, kv.WriteOptions{Consistency: op.Consistency, Condition: op.Condition})
	}
	r.Err = err
	r.Unprocessed = batchRetryable(op, err)
}

// batchRetryable reports whether an item that ended with err may simply
// be sent again: a read or a plain write that failed (reads change
// nothing, and a plain write repeated is the same write with a newer
// version), or a conditional write of which nothing was applied.
func batchRetryable(op *kv.BatchOp, err error) bool {
	switch {
	case err == nil, errors.Is(err, ErrNotFound), errors.Is(err, kv.ErrConditionFailed):
		return false
	case op.Kind == kv.BatchGet || op.Condition.Kind == kv.Unconditional:
		return true
	}
	var u *UnavailableError
	return errors.As(err, &u) && !errors.Is(err, kv.ErrOutcomeUnknown)
}

// batchRecord is op's record, unstamped.
func (c *coordinator) batchRecord(op *kv.BatchOp) memtable.Record {
	rec := memtable.Record{Version: memtable.Version{Node: c.tag}}
	if op.Kind == kv.BatchDelete {
		rec.Tombstone = true
		return rec
	}
	rec.Value = op.Value
	if op.TTL > 0 {
		rec.ExpiresAt = c.cfg.Now().Add(op.TTL).UnixMilli()
	}
	return rec
}

// soloWrites stores the plain writes idx of a single node in one engine
// commit.
func (c *coordinator) soloWrites(ctx context.Context, ops []kv.BatchOp, res []kv.BatchResult, idx []int) {
	b := c.cfg.Engine.NewBatch()
	for _, i := range idx {
		rec := c.batchRecord(&ops[i])
		rec.TS = c.cfg.Clock.Now()
		if err := b.Write(ops[i].Key, &rec); err != nil {
			res[i].Err, res[i].Unprocessed = err, true
			continue
		}
		res[i].Version = Version(rec.Version)
	}
	if err := c.commitLocal(ctx, b); err != nil {
		for _, i := range idx {
			res[i] = kv.BatchResult{Err: err, Unprocessed: true}
		}
	}
}

// commitLocal commits b to this node's engine, answering within the
// request timeout when the commit may block (as writeLocal).
func (c *coordinator) commitLocal(ctx context.Context, b *engine.Batch) error {
	e := c.cfg.Engine
	if !e.WriteMayBlock() {
		return e.Commit(b, c.cfg.Sync)
	}
	done := make(chan error, 1)
	c.bg.Go(func() { done <- e.Commit(b, c.cfg.Sync) })
	return c.awaitLocal(ctx, done)
}

// batchGroup is one replica's share of a batch's plain writes.
type batchGroup struct {
	id    string
	items []int      // positions in the batch's write list
	ms    []Mutation // their mutations, in the same order
}

// groupAnswer is one replica's outcome for its whole share.
type groupAnswer struct {
	g   int // index in the groups; -1 for this node's own commit
	err error
}

// clusterWrites stores the plain writes idx of a batch on their owners,
// each as clusterWrite would (its own plan, acks counted against its own
// consistency, hints for the owners that miss it), but grouped: one
// transport call per replica, one engine commit for this node's share.
func (c *coordinator) clusterWrites(ctx context.Context, v *View, ops []kv.BatchOp, res []kv.BatchResult, idx []int) {
	v, vd := c.clockVerdict(ctx, v)
	if vd.Err != nil {
		for _, i := range idx {
			res[i].Err = &UnavailableError{Op: ops[i].Kind.String(), Needed: ops[i].Consistency.Needed(len(v.Ring.KeyOwners(ops[i].Key))), Cause: vd.Err}
			res[i].Unprocessed = true
		}
		return
	}
	if !vd.Compared || c.cfg.Transport == nil {
		// Not compared: each own copy waits for a replica's word on the
		// clock (writePlan), which the single-write path does item by item.
		var wg sync.WaitGroup
		parallel(&wg, idx, batchReadParallel, func(i int) { c.batchOne(ctx, &ops[i], &res[i]) })
		wg.Wait()
		return
	}

	// Stamp and encode every write into one buffer, which the replica
	// calls and hints keep until the last of them is done.
	recs := make([]memtable.Record, len(idx))
	size := 0
	for k, i := range idx {
		recs[k] = c.batchRecord(&ops[i])
		size += len(ops[i].Key) + recs[k].EncodedLen()
	}
	buf := make([]byte, 0, size)
	ms := make([]Mutation, len(idx))
	var maxTS uint64
	for k, i := range idx {
		recs[k].TS = c.cfg.Clock.Now()
		maxTS = recs[k].TS
		start := len(buf)
		buf = append(buf, ops[i].Key...)
		mid := len(buf)
		buf = recs[k].Append(buf)
		ms[k] = Mutation{Key: buf[start:mid:mid], Record: buf[mid:len(buf):len(buf)]}
	}

	reachable := func(id string) bool {
		_, ok := v.reachable(id)
		return ok
	}
	plans := make([]writePlan, len(idx))
	var groups []batchGroup
	byID := map[string]int{}
	var local []int
	down := map[string][]int{}
	left := len(idx)
	for k, i := range idx {
		p := &plans[k]
		owners := v.Ring.KeyOwners(ops[i].Key)
		p.reset(writeEnv{
			op: ops[i].Kind.String(), self: c.cfg.NodeID, owners: owners,
			need: ops[i].Consistency.Needed(len(owners)), checked: true, reachable: reachable,
		})
		if len(owners) == 0 {
			p.finish(&UnavailableError{Op: p.env.op, Needed: 1})
		}
		for _, st := range p.start() {
			switch st.act {
			case writeSend:
				g, ok := byID[st.id]
				if !ok {
					g = len(groups)
					byID[st.id] = g
					groups = append(groups, batchGroup{id: st.id})
				}
				groups[g].items = append(groups[g].items, k)
				groups[g].ms = append(groups[g].ms, ms[k])
			case writeLocal:
				local = append(local, k)
			case writeHint:
				c.writeFailures.Add(1)
				down[st.id] = append(down[st.id], k)
				p.onAnswer(false, errDown)
			}
		}
		if p.done {
			left--
		}
	}
	for id, ks := range down {
		c.bg.Go(func() {
			for _, k := range ks {
				c.hint(id, ms[k])
			}
		})
	}

	// Room for every group's answer: a replica that answers after the
	// batch returned never blocks.
	answers := make(chan groupAnswer, len(groups))
	deadline := c.time.Now().Add(c.cfg.RequestTimeout)
	for g := range groups {
		grp := &groups[g]
		mem, _ := v.reachable(grp.id)
		c.bg.Add(1)
		c.cfg.Transport.ApplyAsync(mem.HTTPAddr, grp.ms, deadline, func(err error) {
			if c.replicaWritten(grp.id, err) {
				c.bg.Go(func() {
					for _, m := range grp.ms {
						c.hint(grp.id, m)
					}
				})
			}
			answers <- groupAnswer{g: g, err: err}
			c.bg.Done()
		})
	}
	feed := func(items []int, replica bool, err error) {
		for _, k := range items {
			if p := &plans[k]; !p.done {
				p.onAnswer(replica, err)
				if p.done {
					left--
				}
			}
		}
	}
	if len(local) > 0 {
		// While the replicas store theirs.
		b := c.cfg.Engine.NewBatch()
		var err error
		for _, k := range local {
			if err = b.WriteEncoded(ms[k].Key, ms[k].Record); err != nil {
				break
			}
		}
		if err == nil {
			err = c.commitLocal(ctx, b)
		}
		feed(local, false, err)
	}

	timer := c.time.NewTimer(c.cfg.RequestTimeout)
	defer timer.Stop()
	var cut error // why the wait ended before every item was done
	for pending := len(groups); left > 0 && pending > 0 && cut == nil; {
		select {
		case a := <-answers:
			pending--
			feed(groups[a.g].items, true, a.err)
		case <-timer.C():
			cut = errTimedOut
		case <-ctx.Done():
			cut = ctx.Err()
		}
	}
	var ok bool
	for k, i := range idx {
		p := &plans[k]
		switch {
		case !p.done && cut == errTimedOut:
			p.onTimeout()
		case !p.done:
			p.finish(cut)
		}
		if p.err != nil {
			res[i].Err, res[i].Unprocessed = p.err, true
			continue
		}
		res[i].Version, ok = Version(recs[k].Version), true
	}
	if !ok {
		return
	}
	// As clusterWrite: answered once every peer's clock has passed the
	// newest stamp.
	var wait Timer
	defer func() { stopTimer(wait) }()
	until := memtable.TimestampTime(maxTS).Add(time.Millisecond + vd.Lag)
	if err := c.commitWait(ctx, until, &wait); err != nil {
		for _, i := range idx {
			if res[i].Err == nil {
				res[i] = kv.BatchResult{Err: err, Unprocessed: true}
			}
		}
	}
}

// errTimedOut marks a batch's wait cut by the request timeout.
var errTimedOut = errors.New("request timeout")
