package peer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/ringkv/ringkv/memtable"
	"github.com/ringkv/ringkv/ring"
)

// A node that gives ranges away (a join took them, or it leaves) deletes
// its copy only once it has checked, itself, that every owner the new
// ring gives each range holds every record of it that this node holds:
// it never takes a member's word for it (a member that says it is settled
// may be lying, or wrong). The check compares the Merkle tree of each
// range with each new owner's, over an authenticated internode call; the
// leaves that differ are checked record by record (the owner's record
// must be the same version or newer: it takes writes this node no longer
// sees, so equal roots are not to be expected), and records the owner
// lacks are sent to it, to be checked again on the next round. A range
// is let go only when all of its new owners pass: the copies it had are
// never traded for fewer verified ones.

// verifyKeysPerRound bounds the records one round checks and sends per
// owner and range: a new owner that lacks more than that has not pulled
// the range, and sending the whole range is its pull's work, not a
// donor's.
const verifyKeysPerRound = 1024

// verifyDepth is the depth of the trees compared: leaves of 1/1024 of a
// range keep the record-by-record part small.
const verifyDepth = DefaultMerkleDepth

// handover remembers, across the rounds of one caller (a leave, or the
// rebalance loop's drops), the ranges of a ring already shown held, so a
// round checks only the rest; the last round checks them all again
// before the caller acts. The zero value is ready; it is not safe for
// concurrent use.
type handover struct {
	ring []string
	held map[ring.Range]bool
}

// handedOver reports why this node may not yet delete its copy of the
// token spans (hi 0 meaning 2^64) that it does not own in v's ring: ""
// once every owner of every range of v's ring that meets them holds every
// record of it this node holds. h (nil: no memory) spares the ranges
// shown held in earlier rounds but the last.
func (r *Rebalancer) handedOver(ctx context.Context, v *View, spans []ring.Span, h *handover) string {
	if h == nil {
		h = &handover{}
	}
	if !slices.Equal(h.ring, v.Ring.Nodes()) || h.held == nil {
		h.ring, h.held = slices.Clone(v.Ring.Nodes()), map[ring.Range]bool{}
	}
	var todo []ring.OwnedRange
	for _, or := range v.Ring.Ranges() {
		if !slices.Contains(or.Owners, r.cfg.NodeID) && slices.ContainsFunc(spans, func(sp ring.Span) bool { return overlaps(or.Range, sp.Lo, sp.Hi) }) {
			todo = append(todo, or)
		}
	}
	remembered := false
	for _, or := range todo {
		if h.held[or.Range] {
			remembered = true
			continue
		}
		if why := r.rangeHeld(ctx, v, or); why != "" {
			r.dropsWithheld.Add(1)
			return why
		}
		h.held[or.Range] = true
	}
	if remembered {
		// Ranges shown held rounds ago may have taken records since (a
		// late write, a repair): before the caller acts, all again.
		for _, or := range todo {
			if why := r.rangeHeld(ctx, v, or); why != "" {
				delete(h.held, or.Range)
				r.dropsWithheld.Add(1)
				return why
			}
		}
	}
	return ""
}

// rangeHeld reports why not every owner of or holds this node's records
// of its range; "" when they all do.
func (r *Rebalancer) rangeHeld(ctx context.Context, v *View, or ring.OwnedRange) string {
	local, err := localMerkle(ctx, r.cfg.Engine, r.deps.gc(), or.Range, verifyDepth)
	if err != nil {
		return fmt.Sprintf("cannot build this node's tree of %s: %v", or.Range, err)
	}
	if local.Root().Count == 0 {
		return "" // nothing of it here to lose
	}
	for _, id := range or.Owners {
		m, ok := v.reachable(id)
		if !ok {
			return fmt.Sprintf("%s, an owner of %s, is down", id, or.Range)
		}
		remote, err := r.cfg.Transport.Merkle(ctx, m.HTTPAddr, or.Range, verifyDepth)
		if err != nil {
			return fmt.Sprintf("%s cannot show its tree of %s: %v", id, or.Range, err)
		}
		spans, err := local.Diff(remote)
		if err != nil {
			return fmt.Sprintf("%s's tree of %s: %v", id, or.Range, err)
		}
		if len(spans) == 0 {
			continue
		}
		missing, err := r.checkRecords(ctx, m.HTTPAddr, spans)
		switch {
		case err != nil:
			return fmt.Sprintf("cannot check %s's records of %s: %v", id, or.Range, err)
		case missing > 0:
			return fmt.Sprintf("%s lacked %d records of %s that this node holds (sent to it)", id, missing, or.Range)
		}
	}
	return ""
}

// errTooManyMissing is checkRecords' "the owner lacks more than a round
// checks".
var errTooManyMissing = errors.New("it lacks more records than one round checks; it has not pulled the range")

// checkRecords reads, for every record this node holds in spans (leaving
// out those garbage collection may delete, as the trees do), the owner's
// record of its key at addr, and sends the owner the ones it lacks or
// holds an older version of. It returns how many it lacked.
func (r *Rebalancer) checkRecords(ctx context.Context, addr string, spans []ring.Span) (int, error) {
	snap, err := r.cfg.Engine.NewSnapshot()
	if err != nil {
		return 0, err
	}
	defer snap.Close()
	gc := r.deps.gc()
	var send []Mutation
	checked := 0
	var readErr error
	for _, sp := range spans {
		err := snap.ScanTokens(ctx, sp.Lo, sp.Hi, func(key []byte, rec memtable.Record) (bool, error) {
			if gc.Drop(&rec) {
				return true, nil
			}
			if checked++; checked > verifyKeysPerRound {
				return false, errTooManyMissing
			}
			ours := rec.Append(nil)
			theirs, err := r.readFrom(ctx, addr, key)
			if err != nil {
				readErr = err
				return false, nil
			}
			if theirs != nil {
				if newer, err := memtable.Newer(ours, theirs); err != nil || !newer {
					return true, err
				}
			}
			k := append([]byte(nil), key...)
			send = append(send, Mutation{Key: k, Record: ours})
			return true, nil
		})
		if err != nil {
			return 0, err
		}
		if readErr != nil {
			return 0, readErr
		}
	}
	if len(send) > 0 {
		if err := r.cfg.Transport.Apply(ctx, addr, send); err != nil {
			return len(send), fmt.Errorf("sending the %d records it lacks: %w", len(send), err)
		}
	}
	return len(send), nil
}

// readFrom returns the node at addr's record of key (nil: none), waiting
// at most the request timeout. A node still pulling the key's range
// answers an error: its copy is not yet whole. The read may outlive a
// cancelled ctx, so it gets its own copy of key (the caller's is a scan's
// buffer, reused at once).
func (r *Rebalancer) readFrom(ctx context.Context, addr string, key []byte) ([]byte, error) {
	key = bytes.Clone(key)
	type answer struct {
		rec []byte
		err error
	}
	ch := make(chan answer, 1)
	r.cfg.Transport.ReadAsync(addr, key, time.Now().Add(r.cfg.RequestTimeout), func(rec []byte, err error) {
		ch <- answer{rec, err}
	})
	select {
	case a := <-ch:
		return a.rec, a.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// DropsWithheld counts the times this node kept ranges it gave away
// because a new owner could not be shown to hold them
// (ringkv_transfer_drops_withheld_total).
func (r *Rebalancer) DropsWithheld() int64 { return r.dropsWithheld.Load() }
