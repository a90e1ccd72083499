package peer

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/ringkv/ringkv/memtable"
	"github.com/ringkv/ringkv/peer/kv"
)

// This file is the coordinator's side of conditional writes and serial
// reads: a short I/O loop around casPlan (paxos.go), one attempt after
// another until one ends, each message sent to every owner of the key at
// once (this node's own acceptor included) and the answers fed to the
// plan as they come.

// casMaxAttempts bounds the attempts of one operation: contention retries
// pause in between, and the request timeout bounds them too.
const casMaxAttempts = 16

// casAnswer is one owner's answer to one message of one attempt.
type casAnswer struct {
	attempt int
	id      string
	kind    PaxosKind
	rep     PaxosReply
	err     error
}

// conditional is Put and Delete with a condition: rec (unstamped) is
// written only if the key's current record meets cond.
func (c *coordinator) conditional(ctx context.Context, key []byte, rec memtable.Record, cond kv.Condition) (Version, error) {
	now := c.cfg.Now().UnixMilli()
	decide := func(cur []byte) (memtable.Record, bool) {
		present, v := liveVersion(cur, now)
		return rec, cond.Holds(present, v)
	}
	res, err := c.runCAS(ctx, "conditional write", key, decide)
	if err != nil {
		return Version{}, err
	}
	switch res.Outcome {
	case casApplied:
		v, err := memtable.DecodeVersion(res.Written)
		if err != nil {
			return Version{}, err
		}
		return Version(v), nil
	case casFailed:
		present, v := liveVersion(res.Current, now)
		return Version{}, &kv.ConditionError{Exists: present, Current: v}
	}
	return Version{}, fmt.Errorf("conditional write of %q ended %s", key, res.Outcome)
}

// serialGet is Get at consistency Serial: the quorum's newest record once
// any round in flight is finished.
func (c *coordinator) serialGet(ctx context.Context, dst, key []byte) ([]byte, Version, error) {
	res, err := c.runCAS(ctx, "serial read", key, nil)
	if err != nil {
		return dst, Version{}, err
	}
	if res.Current == nil {
		return dst, Version{}, fmt.Errorf("%q: %w", key, kv.ErrNotFound)
	}
	r, err := memtable.Decode(res.Current)
	if err != nil {
		return dst, Version{}, err
	}
	if !r.Live(c.cfg.Now().UnixMilli()) {
		return dst, Version{}, fmt.Errorf("%q: %w", key, kv.ErrNotFound)
	}
	return append(dst, r.Value...), Version(r.Version), nil
}

// liveVersion reports whether the encoded record cur is a live value at
// nowMillis, and its version.
func liveVersion(cur []byte, nowMillis int64) (bool, Version) {
	if cur == nil {
		return false, Version{}
	}
	r, err := memtable.Decode(cur)
	if err != nil || !r.Live(nowMillis) {
		return false, Version{}
	}
	return true, Version(r.Version)
}

// runCAS runs attempts of a conditional write (cond) or serial read (nil)
// of key until one ends with an answer; an attempt that met contention
// pauses before the next, one that finished a round in flight goes on at
// once. Its errors are an *UnavailableError (nothing of the operation
// was applied), kv.ErrOutcomeUnknown, or the context's.
func (c *coordinator) runCAS(ctx context.Context, op string, key []byte, cond casCond) (casResult, error) {
	if err := checkKey(key); err != nil {
		return casResult{}, err
	}
	// The messages to owners that have not answered yet outlive the call
	// (sendCAS), and the caller may reuse its buffer once it returns.
	key = bytes.Clone(key)
	ctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	v := c.view.Load()
	if cond != nil && !c.solo(v) {
		// A node whose clock is off coordinates no writes, conditional
		// ones included: its ballots and stamps would be off too.
		var vd ClockVerdict
		if v, vd = c.clockVerdict(ctx, v); vd.Err != nil {
			return casResult{}, &UnavailableError{Op: op, Needed: len(v.Ring.KeyOwners(key))/2 + 1, Cause: vd.Err}
		}
	}
	owners := v.Ring.KeyOwners(key)
	if len(owners) == 0 {
		return casResult{}, &UnavailableError{Op: op, Needed: 1}
	}
	// Room for every answer of every attempt: a goroutine of an attempt
	// that ended never blocks.
	answers := make(chan casAnswer, casMaxAttempts*3*len(owners))
	var above Ballot
	var mines [][]byte // records of earlier attempts some owner may have accepted
	var cause error    // the first owner's error: why an unavailable round fell short
	for attempt := 1; ; attempt++ {
		if !above.IsZero() {
			// Past every ballot met: a refusal names one from a clock
			// ahead of this node's.
			_ = c.cfg.Clock.Update(above.TS)
		}
		p := newCASPlan(owners, Ballot{TS: c.cfg.Clock.Now(), Node: c.tag}, cond, mines)
		c.sendCAS(ctx, v, attempt, key, p.start(), answers)
		for p.phase != casDone {
			select {
			case a := <-answers:
				if a.attempt != attempt {
					continue // an answer to an attempt that ended
				}
				if a.err != nil && cause == nil {
					cause = a.err
				}
				c.sendCAS(ctx, v, attempt, key, feedCAS(p, a), answers)
			case <-ctx.Done():
				p.onTimeout()
			}
		}
		res := p.result
		switch res.Outcome {
		case casApplied, casFailed, casRead:
			return res, nil
		case casUnknown:
			return res, fmt.Errorf("%s of %q: %w", op, key, kv.ErrOutcomeUnknown)
		case casUnavailable:
			return res, &UnavailableError{Op: op, Needed: len(owners)/2 + 1, Answered: res.Answered, TimedOut: ctx.Err() != nil, Cause: cause}
		}
		above = res.RetryAbove
		if res.Proposed != nil {
			mines = append(mines, res.Proposed)
		}
		if attempt == casMaxAttempts && len(mines) > 0 {
			return res, fmt.Errorf("%s of %q: %d rounds met contention: %w", op, key, attempt, kv.ErrOutcomeUnknown)
		}
		if attempt == casMaxAttempts {
			return res, &UnavailableError{Op: op, Needed: len(owners)/2 + 1, Answered: res.Answered,
				Cause: fmt.Errorf("%d rounds met contention on the key", attempt)}
		}
		if res.Outcome == casContended && !c.casPause(ctx, attempt) {
			if len(mines) > 0 {
				return res, fmt.Errorf("%s of %q: %w", op, key, kv.ErrOutcomeUnknown)
			}
			return res, &UnavailableError{Op: op, Needed: len(owners)/2 + 1, Answered: res.Answered, TimedOut: true}
		}
	}
}

// casPause waits before the attempt after a contended one: a random share
// of a window that doubles with each attempt (1ms to 64ms), so contending
// coordinators fall out of step. It reports false if ctx ended first.
func (c *coordinator) casPause(ctx context.Context, attempt int) bool {
	window := time.Millisecond << min(attempt-1, 6)
	t := c.time.NewTimer(time.Duration(rand.Int64N(int64(window)) + 1))
	defer t.Stop()
	select {
	case <-t.C():
		return true
	case <-ctx.Done():
		return false
	}
}

// feedCAS gives the plan one answer and returns what it sends next.
func feedCAS(p *casPlan, a casAnswer) casMsg {
	switch a.kind {
	case PaxosPrepare:
		return p.onPromise(a.id, a.rep, a.err)
	case PaxosPropose:
		return p.onAccept(a.id, a.rep.OK, a.rep.Promised, a.err)
	case PaxosCommit:
		return p.onCommitted(a.id, a.err)
	}
	return casMsg{}
}

// sendCAS sends m to every owner of the plan, each on a goroutine of its
// own (this node's acceptor fsyncs; peers answer over the network), the
// answers going to out. An owner that is down answers at once, failed.
func (c *coordinator) sendCAS(ctx context.Context, v *View, attempt int, key []byte, m casMsg, out chan<- casAnswer) {
	if m.Kind == casNone {
		return
	}
	req := PaxosRequest{Kind: m.Kind, Key: key, Ballot: m.Ballot, Record: m.Record}
	for _, id := range v.Ring.KeyOwners(key) {
		a := casAnswer{attempt: attempt, id: id, kind: m.Kind}
		if id == c.cfg.NodeID {
			c.bg.Go(func() {
				a.rep, a.err = c.paxosLocal(req)
				out <- a
			})
			continue
		}
		mem, ok := v.reachable(id)
		if !ok {
			a.err = fmt.Errorf("%s is down", id)
			out <- a
			continue
		}
		c.bg.Go(func() {
			a.rep, a.err = c.cfg.Transport.Paxos(ctx, mem.HTTPAddr, req)
			out <- a
		})
	}
}
