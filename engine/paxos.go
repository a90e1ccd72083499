package engine

import (
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
