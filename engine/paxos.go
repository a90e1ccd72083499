package engine

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"github.com/ringkv/ringkv/memtable"
)

// A key's Paxos acceptor state (peer's, opaque here) lives in its own
// keyspace beside the key's data. A commit writes the state and the
// committed record in one batch, so after a crash a replica never holds
// one without the other. Every write of it is fsynced before it returns:
// a promise or an acceptance forgotten in a crash would let two values be
// chosen.

// PaxosState appends key's stored Paxos state to dst; ErrNotFound when it
// has none.
func (e *Engine) PaxosState(dst, key []byte) ([]byte, error) {
	if e.closed.Load() {
		return dst, ErrClosed
	}
	kb := e.scratch()
	defer e.release(kb)
	*kb = appendPaxosKeyTok((*kb)[:0], Token(key), key)
	v, closer, err := e.db.Get(*kb)
	if errors.Is(err, pebble.ErrNotFound) {
		return dst, ErrNotFound
	}
	if err != nil {
		return dst, fmt.Errorf("cannot read the paxos state of %q: %w", key, e.corruptionOf(err))
	}
	dst = append(dst, v...)
	closer.Close()
	return dst, nil
}

// WritePaxos durably stores state as key's Paxos state and, when r is not
// nil, r as a write of key (the newer of r and what is stored wins, as
// Write), atomically. It is refused as Write is.
func (e *Engine) WritePaxos(key, state []byte, r *memtable.Record) error {
	n := len(key) + len(state)
	if r != nil {
		n += len(key) + r.EncodedLen()
	}
	if err := e.admit(n); err != nil {
		return err
	}
	b := e.db.NewBatch()
	defer b.Close()
	kb, rb := e.scratch(), e.scratch()
	defer e.release(kb)
	defer e.release(rb)
	tok := Token(key)
	*kb = appendPaxosKeyTok((*kb)[:0], tok, key)
	if err := b.Set(*kb, state, nil); err != nil {
		return err
	}
	var err error
	if r == nil {
		err = e.sequence(b, 0, true)
	} else {
		*kb = appendDataKeyTok((*kb)[:0], tok, key)
		*rb = r.Append((*rb)[:0])
		err = e.sequenceOne(e.stripeAt(tok), b, key, *kb, *rb, r.TS, true)
	}
	if err == nil {
		err = b.SyncWait()
	}
	if err != nil {
		return fmt.Errorf("cannot write the paxos state of %q: %w", key, e.diskFull(err))
	}
	return nil
}

// paxosSpan returns the storage-key bounds of the Paxos states of the
// token span [lo, hi), and whether it is empty.
func paxosSpan(lo, hi uint64) (start, end []byte, empty bool, err error) {
	if hi != 0 && lo > hi {
		return nil, nil, false, fmt.Errorf("%w: [%016x, %016x)", ErrWrappingSpan, lo, hi)
	}
	start = appendPaxosKeyTok(nil, lo, nil)
	_, end = spanOf(spacePaxos)
	if hi != 0 {
		end = appendPaxosKeyTok(nil, hi, nil)
	}
	return start, end, hi != 0 && lo == hi, nil
}

// ExportPaxosSpan calls fn with the storage key and stored Paxos state of
// every key whose token is in [lo, hi) and that has one, in storage-key
// order, as of the snapshot: what a range's new owner must merge into
// its own (see peer). Both slices alias iterator memory valid only until
// fn returns; an error from fn stops the export and is returned.
func (s *Snapshot) ExportPaxosSpan(ctx context.Context, lo, hi uint64, fn func(storageKey, state []byte) error) error {
	e := s.e
	if e.closed.Load() {
		return ErrClosed
	}
	start, end, empty, err := paxosSpan(lo, hi)
	if err != nil || empty {
		return err
	}
	it, err := s.snap.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: start, UpperBound: end})
	if err != nil {
		return err
	}
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		if n++; n%1024 == 0 {
			if err = ctx.Err(); err != nil {
				break
			}
		}
		var v []byte
		if v, err = it.ValueAndErr(); err != nil {
			break
		}
		if err = fn(it.Key(), v); err != nil {
			break
		}
	}
	if cerr := it.Close(); err == nil {
		err = cerr
	}
	return e.corruptionOf(err)
}

// PaxosKey returns the user key and token of a storage key of the Paxos
// keyspace (as ExportPaxosSpan gives), or false if k is not a well-formed
// one: its token must be the user key's.
func PaxosKey(k []byte) (user []byte, tok uint64, ok bool) {
	if len(k) <= dataPrefixLen || k[0] != spacePaxos {
		return nil, 0, false
	}
	user, tok = k[dataPrefixLen:], binary.BigEndian.Uint64(k[1:dataPrefixLen])
	return user, tok, Token(user) == tok
}

// WritePaxosStates durably stores states[i] as keys[i]'s Paxos state, for
// every i, in one batch and one fsync. It is refused as Write is.
func (e *Engine) WritePaxosStates(keys, states [][]byte) error {
	if len(keys) != len(states) {
		return fmt.Errorf("engine: %d paxos keys, %d states", len(keys), len(states))
	}
	if len(keys) == 0 {
		return nil
	}
	n := 0
	for i := range keys {
		n += len(keys[i]) + len(states[i])
	}
	if err := e.admit(n); err != nil {
		return err
	}
	b := e.db.NewBatch()
	defer b.Close()
	var kb []byte
	for i, k := range keys {
		kb = appendPaxosKeyTok(kb[:0], Token(k), k)
		if err := b.Set(kb, states[i], nil); err != nil {
			return err
		}
	}
	err := e.sequence(b, 0, true)
	if err == nil {
		err = b.SyncWait()
	}
	if err != nil {
		return fmt.Errorf("cannot write the paxos states of %d keys: %w", len(keys), e.diskFull(err))
	}
	return nil
}

// DeletePaxosStates deletes the Paxos states of keys, in one batch. It is
// not fsynced: a deletion a crash undoes only brings a swept state back,
// which the next sweep deletes again. It is taken even when the disk is
// at its floor, since it frees space.
func (e *Engine) DeletePaxosStates(keys [][]byte) error {
	if e.closed.Load() {
		return ErrClosed
	}
	if len(keys) == 0 {
		return nil
	}
	b := e.db.NewBatch()
	defer b.Close()
	var kb []byte
	for _, k := range keys {
		kb = appendPaxosKeyTok(kb[:0], Token(k), k)
		if err := b.Delete(kb, nil); err != nil {
			return err
		}
	}
	if err := e.sequence(b, 0, false); err != nil {
		return fmt.Errorf("cannot delete the paxos states of %d keys: %w", len(keys), err)
	}
	return nil
}
