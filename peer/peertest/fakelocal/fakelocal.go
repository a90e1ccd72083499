// Package fakelocal is an in-memory peer/transport.Local for the tests of
// the internode handler (peer/transport) and of httpd, which mounts it: a
// record store with knobs that make its calls fail or wait. It is a
// package of its own, apart from peertest, because peertest imports
// peer/transport, whose own tests could then not import it.
package fakelocal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/ringkv/ringkv/memtable"
	"github.com/ringkv/ringkv/peer"
	"github.com/ringkv/ringkv/ring"
)

// Local is an in-memory record store (last writer wins, as a replica's)
// serving the internode calls. It is safe for concurrent use.
type Local struct {
	mu struct {
		sync.Mutex
		recs     map[string][]byte // key -> encoded record
		applies  int               // ApplyLocal calls
		applied  int               // mutations ApplyLocal received
		applyErr error             // returned by ApplyLocal while set
		// apply and read, when set, make ApplyLocal and ReadLocal wait:
		// a slow fsync or disk (see BlockApply).
		apply, read *block
		// spanBody and spanErr are what ServeSpan streams and returns;
		// spanReqs the spans it was asked for.
		spanBody []byte
		spanErr  error
		spanReqs [][2]uint64
		// pendingKeys are keys ReadLocal answers ErrRangePending for.
		pendingKeys map[string]bool
		// damagedKeys are keys ReadLocal answers ErrCorruption for.
		damagedKeys map[string]bool
		// paxosReply and paxosErr are what Paxos answers; paxosReqs the
		// messages it received (copied).
		paxosReply peer.PaxosReply
		paxosErr   error
		paxosReqs  []peer.PaxosRequest
	}
}

// SetPaxos sets what Paxos answers.
func (c *Local) SetPaxos(rep peer.PaxosReply, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mu.paxosReply, c.mu.paxosErr = rep, err
}

// PaxosReqs returns the Paxos messages received.
func (c *Local) PaxosReqs() []peer.PaxosRequest {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.mu.paxosReqs)
}

// Paxos records req and answers what SetPaxos set.
func (c *Local) Paxos(req peer.PaxosRequest) (peer.PaxosReply, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	req.Key, req.Record = bytes.Clone(req.Key), bytes.Clone(req.Record)
	c.mu.paxosReqs = append(c.mu.paxosReqs, req)
	return c.mu.paxosReply, c.mu.paxosErr
}

// New returns an empty Local.
func New() *Local {
	c := &Local{}
	c.mu.recs = map[string][]byte{}
	return c
}

// block holds calls until released.
type block struct {
	entered chan int // each held call sends its size (mutations, or 1)
	release chan struct{}
}

func (b *block) wait(n int) {
	if b != nil {
		b.entered <- n
		<-b.release
	}
}

func newBlock() (*block, func()) {
	b := &block{entered: make(chan int, 100000), release: make(chan struct{})}
	var once sync.Once
	return b, func() { once.Do(func() { close(b.release) }) }
}

// BlockApply makes ApplyLocal calls wait until release is called (which
// the test's cleanup also does). Each call sends the number of its
// mutations on entered first.
func (c *Local) BlockApply(t testing.TB) (entered <-chan int, release func()) {
	return c.blockOn(t, &c.mu.apply)
}

// BlockRead is BlockApply for ReadLocal; each call sends 1.
func (c *Local) BlockRead(t testing.TB) (entered <-chan int, release func()) {
	return c.blockOn(t, &c.mu.read)
}

// blockOn sets *at, c.mu.apply or c.mu.read, to a new block.
func (c *Local) blockOn(t testing.TB, at **block) (entered <-chan int, release func()) {
	b, release := newBlock()
	t.Cleanup(release)
	c.mu.Lock()
	defer c.mu.Unlock()
	*at = b
	return b.entered, release
}

// SetApplyErr makes ApplyLocal fail with err (nil: succeed again).
func (c *Local) SetApplyErr(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mu.applyErr = err
}

// SetSpanBody sets what ServeSpan streams.
func (c *Local) SetSpanBody(body []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mu.spanBody = body
}

// SetSpanErr sets what ServeSpan returns after streaming its body.
func (c *Local) SetSpanErr(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mu.spanErr = err
}

// SpanReqs returns the spans ServeSpan was asked for, [lo, hi) each.
func (c *Local) SpanReqs() [][2]uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.mu.spanReqs)
}

// SetPending makes ReadLocal answer keys as a node still pulling their
// range does (a *peer.PendingError naming node-1 and node-4).
func (c *Local) SetPending(keys ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mu.pendingKeys = setOf(keys)
}

// SetDamaged makes ReadLocal answer keys with peer.ErrCorruption.
func (c *Local) SetDamaged(keys ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mu.damagedKeys = setOf(keys)
}

func setOf(keys []string) map[string]bool {
	m := make(map[string]bool, len(keys))
	for _, k := range keys {
		m[k] = true
	}
	return m
}

// Record returns the stored record of key, or nil.
func (c *Local) Record(key string) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.recs[key]
}

// Counts returns the number of ApplyLocal calls and of mutations received.
func (c *Local) Counts() (applies, applied int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.applies, c.mu.applied
}

// ApplyLocal stores copies of ms (they alias the request), the newest
// version of each key winning.
func (c *Local) ApplyLocal(ms []peer.Mutation) error {
	c.mu.Lock()
	b := c.mu.apply
	c.mu.Unlock()
	b.wait(len(ms))
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mu.applies++
	if c.mu.applyErr != nil {
		return c.mu.applyErr
	}
	for _, m := range ms {
		if len(m.Key) == 0 || len(m.Key) > peer.MaxKeySize {
			return fmt.Errorf("%w: length %d", peer.ErrInvalidKey, len(m.Key))
		}
		if _, err := memtable.Decode(m.Record); err != nil {
			return fmt.Errorf("BUG: the internode handler passed on an undecodable record: %w", err)
		}
	}
	for _, m := range ms {
		c.mu.applied++
		if old, ok := c.mu.recs[string(m.Key)]; ok {
			if newer, _ := memtable.Newer(old, m.Record); newer {
				continue
			}
		}
		c.mu.recs[string(m.Key)] = bytes.Clone(m.Record)
	}
	return nil
}

// ReadLocal appends key's stored record to dst.
func (c *Local) ReadLocal(dst, key []byte) ([]byte, error) {
	c.mu.Lock()
	b := c.mu.read
	c.mu.Unlock()
	b.wait(1)
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.mu.recs[string(key)]
	if c.mu.damagedKeys[string(key)] {
		return dst, fmt.Errorf("cannot read %q: %w", key, peer.ErrCorruption)
	}
	if c.mu.pendingKeys[string(key)] {
		// What a node still pulling holds, if anything, comes along.
		return append(dst, r...), &peer.PendingError{From: []string{"node-1", "node-4"}}
	}
	if !ok {
		return dst, peer.ErrNotFound
	}
	return append(dst, r...), nil
}

// ScanLocal pages through the records in key order (the real store uses
// token order).
func (c *Local) ScanLocal(ctx context.Context, q peer.LocalScan) (peer.LocalPage, error) {
	if q.Limit <= 0 {
		return peer.LocalPage{}, errors.New("BUG: scan limit must be positive")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var p peer.LocalPage
	for _, k := range slices.Sorted(maps.Keys(c.mu.recs)) {
		if !strings.HasPrefix(k, string(q.Prefix)) || (len(q.After) > 0 && k <= string(q.After)) {
			continue
		}
		if len(p.Items) == q.Limit {
			p.More = true
			break
		}
		p.Items = append(p.Items, peer.Mutation{Key: []byte(k), Record: bytes.Clone(c.mu.recs[k])})
	}
	return p, nil
}

// LocalMerkle builds the tree of the records that fall in rg.
func (c *Local) LocalMerkle(ctx context.Context, rg ring.Range, depth int) (*peer.Merkle, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := peer.NewMerkle(rg, depth)
	for k, b := range c.mu.recs {
		if !rg.Contains(ring.Token([]byte(k))) {
			continue
		}
		r, err := memtable.Decode(b)
		if err != nil {
			return nil, err
		}
		if _, err := t.Add([]byte(k), r); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// ServeSpan records the span asked for, writes SetSpanBody's body and
// returns SetSpanErr's error.
func (c *Local) ServeSpan(ctx context.Context, lo, hi uint64, w io.Writer) error {
	c.mu.Lock()
	body, err := c.mu.spanBody, c.mu.spanErr
	c.mu.spanReqs = append(c.mu.spanReqs, [2]uint64{lo, hi})
	c.mu.Unlock()
	if _, werr := w.Write(body); werr != nil {
		return werr
	}
	return err
}

// GossipAddrs returns two fixed addresses.
func (c *Local) GossipAddrs() []string {
	return []string{"127.0.0.1:7946", "127.0.0.1:7947"}
}
