package peer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/ringkv/ringkv/engine"
	"github.com/ringkv/ringkv/memtable"
	"github.com/ringkv/ringkv/ring"
	"github.com/ringkv/ringkv/sstable"
)

// acceptor is a replica's side of per-key Paxos (paxos.go): it keeps each
// key's acceptorState in the engine's Paxos keyspace, and applies the
// rules to it under the key's lock, so two rounds never interleave their
// read and write of one key's state. Every change is fsynced before the
// answer: a promise forgotten in a crash could let two values be chosen.
type acceptor struct {
	eng   *engine.Engine
	clock func(ts uint64) error // the node clock's Update: refuses records from too far ahead
	locks [acceptorStripes]sync.Mutex

	// floor: ballots below it are refused, as states below it may have
	// been swept (paxosgc.go). swept counts the states deleted.
	floor   atomic.Uint64
	swept   atomic.Uint64
	sweepMu sync.Mutex // one sweep at a time
	// written, when set, is called after each write of a state (it
	// starts the node's sweep loop).
	written func()
}

// wrote tells the node a state was written.
func (a *acceptor) wrote() {
	if a.written != nil {
		a.written()
	}
}

// acceptorStripes is the number of key locks; a power of two.
const acceptorStripes = 256

func (a *acceptor) lock(key []byte) *sync.Mutex {
	return &a.locks[ring.Token(key)%acceptorStripes]
}

// state reads key's acceptorState (the zero state when it has none).
func (a *acceptor) state(key []byte) (acceptorState, error) {
	b, err := a.eng.PaxosState(nil, key)
	if errors.Is(err, engine.ErrNotFound) {
		return acceptorState{}, nil
	}
	if err != nil {
		return acceptorState{}, err
	}
	s, err := decodeAcceptorState(b)
	if err != nil {
		return acceptorState{}, fmt.Errorf("key %q: %w", key, err)
	}
	return s, nil
}

// prepare answers a prepare of ballot b for key, with the key's stored
// record (encoded as stored) in the promise.
func (a *acceptor) prepare(key []byte, b Ballot) (PaxosReply, error) {
	if err := checkKey(key); err != nil {
		return PaxosReply{}, err
	}
	if err := a.clock(b.TS); err != nil {
		return PaxosReply{}, fmt.Errorf("%w: key %q: %v", ErrClockOffset, key, err)
	}
	mu := a.lock(key)
	mu.Lock()
	defer mu.Unlock()
	// Under the key's lock: a sweep raises the floor before it takes
	// the locks to delete.
	if f := a.refuses(b); f != 0 {
		return PaxosReply{Promised: Ballot{TS: f}}, nil
	}
	s, err := a.state(key)
	if err != nil {
		return PaxosReply{}, err
	}
	next, pr := s.prepare(b)
	if pr.OK && next.Promised != s.Promised {
		if err := a.eng.WritePaxos(key, next.append(nil), nil); err != nil {
			return PaxosReply{}, err
		}
		a.wrote()
	}
	if pr.OK {
		cur, _, err := a.eng.GetStored(nil, key)
		switch {
		case errors.Is(err, engine.ErrNotFound):
		case err != nil:
			return PaxosReply{}, err
		default:
			pr.Current = cur
		}
	}
	return pr, nil
}

// propose answers a proposal of rec (an encoded record) under ballot b.
func (a *acceptor) propose(key []byte, b Ballot, rec []byte) (ok bool, promised Ballot, err error) {
	if err := checkProposal(key, b, rec); err != nil {
		return false, Ballot{}, err
	}
	mu := a.lock(key)
	mu.Lock()
	defer mu.Unlock()
	// Under the key's lock: a sweep raises the floor before it takes
	// the locks to delete.
	if f := a.refuses(b); f != 0 {
		return false, Ballot{TS: f}, nil
	}
	s, err := a.state(key)
	if err != nil {
		return false, Ballot{}, err
	}
	next, ok, promised := s.propose(b, rec)
	if ok {
		if err := a.eng.WritePaxos(key, next.append(nil), nil); err != nil {
			return false, Ballot{}, err
		}
		a.wrote()
	}
	return ok, promised, nil
}

// commit stores rec, the record chosen under ballot b, as a write of key
// (the newer of it and what is stored wins), and settles the accepted
// proposal it decides, in one batch.
func (a *acceptor) commit(key []byte, b Ballot, rec []byte) error {
	if err := checkProposal(key, b, rec); err != nil {
		return err
	}
	var r *memtable.Record // none: a no-op (a fence of a key with no record)
	if len(rec) > 0 {
		d, err := memtable.Decode(rec)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrBadMessage, err)
		}
		if err := a.clock(d.TS); err != nil {
			return fmt.Errorf("%w: key %q: %v", ErrClockOffset, key, err)
		}
		r = &d
	}
	mu := a.lock(key)
	mu.Lock()
	defer mu.Unlock()
	s, err := a.state(key)
	if err != nil {
		return err
	}
	if err := a.eng.WritePaxos(key, s.commit(b).append(nil), r); err != nil {
		return err
	}
	a.wrote()
	return nil
}

// mergeStates merges the Paxos states a range's old owner sent with the
// range (sstable.ReceivePaxos) into this replica's, durably, before the
// range counts as here: without them, a quorum of the new owners could
// miss a proposal a quorum of the old ones accepted, and choose another
// value. It holds every key lock while it reads and writes a batch, as
// the rules do for one key; a state that does not decode refuses all.
func (a *acceptor) mergeStates(_ context.Context, es []sstable.PaxosEntry) error {
	remote := make([]acceptorState, len(es))
	for i, e := range es {
		s, err := decodeAcceptorState(e.State)
		if err != nil {
			return fmt.Errorf("%w: the paxos state of %q sent with its range: %v", ErrBadMessage, e.Key, err)
		}
		remote[i] = s
	}
	for len(es) > 0 {
		n := min(len(es), mergeBatch)
		if err := a.mergeSome(es[:n], remote[:n]); err != nil {
			return err
		}
		es, remote = es[n:], remote[n:]
	}
	return nil
}

// mergeBatch bounds the states merged under one hold of the key locks
// and one fsync.
const mergeBatch = 1024

func (a *acceptor) mergeSome(es []sstable.PaxosEntry, remote []acceptorState) error {
	a.lockAll()
	defer a.unlockAll()
	var keys, states [][]byte
	for i, e := range es {
		s, err := a.state(e.Key)
		if err != nil {
			return err
		}
		if m := s.merge(remote[i]); !m.equal(s) {
			keys, states = append(keys, e.Key), append(states, m.append(nil))
		}
	}
	if err := a.eng.WritePaxosStates(keys, states); err != nil {
		return err
	}
	if len(keys) > 0 {
		a.wrote()
	}
	return nil
}

// checkProposal refuses a malformed proposal or commit; an empty record
// is a no-op.
func checkProposal(key []byte, b Ballot, rec []byte) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if b.IsZero() {
		return fmt.Errorf("%w: a zero ballot", ErrBadMessage)
	}
	if len(rec) == 0 {
		return nil
	}
	if _, err := memtable.DecodeVersion(rec); err != nil {
		return fmt.Errorf("%w: the proposed record: %v", ErrBadMessage, err)
	}
	return nil
}

// paxosLocal is Replica.Paxos.
func (c *coordinator) paxosLocal(req PaxosRequest) (PaxosReply, error) {
	if err := checkKey(req.Key); err != nil {
		return PaxosReply{}, err
	}
	if !c.mayStore(req.Key) {
		return PaxosReply{}, fmt.Errorf("%w: key %q (token %016x) is not in a range this node owns", ErrNotOwner, req.Key, ring.Token(req.Key))
	}
	if _, pending := c.pendingFrom(ring.Token(req.Key)); pending {
		// Its copy may lack the latest commit: counted in a quorum, it
		// could let a round decide on a stale record.
		return PaxosReply{}, fmt.Errorf("%w: key %q: no part in conditional writes of it until the range is here", ErrRangePending, req.Key)
	}
	switch req.Kind {
	case PaxosPrepare:
		return c.acc.prepare(req.Key, req.Ballot)
	case PaxosPropose:
		ok, promised, err := c.acc.propose(req.Key, req.Ballot, req.Record)
		return PaxosReply{OK: ok, Promised: promised}, err
	case PaxosCommit:
		err := c.acc.commit(req.Key, req.Ballot, req.Record)
		return PaxosReply{OK: err == nil}, err
	}
	return PaxosReply{}, fmt.Errorf("%w: paxos message kind %d", ErrBadMessage, req.Kind)
}
