package peer

import (
	"context"
	"io"
	"sync/atomic"

	"github.com/ringkv/ringkv/ring"
)

// Replica is the side of a node that other nodes call, through the
// internode handlers (transport.Local): replica writes and reads, scans of
// its own records, range streams, Merkle trees, and the gossip addresses
// a joining node asks for. Node.Local returns it. It holds no state of its
// own: each call is answered by the subsystem that owns what it asks.
type Replica struct {
	co         *coordinator
	reb        *Rebalancer
	ae         *AntiEntropy
	self       string
	view       *atomic.Pointer[View]
	membership *membershipSlot
}

// ApplyLocal stores records sent by a coordinator (a replica write, read
// repair or hint replay) in one durable batch; the newest version of each
// key wins. A batch with a key this node does not own (nor owned in a ring
// replaced less than applyGrace ago) is refused whole with ErrNotOwner,
// and one with a record stamped beyond the clock bound with
// ErrClockOffset: a replica stores only what is its to store.
func (r *Replica) ApplyLocal(ms []Mutation) error { return r.co.ApplyLocal(ms) }

// ReadLocal appends this node's stored record of key (encoded as stored,
// tombstones and expired records included) to dst, or returns ErrNotFound.
// For a key of a range the node is still pulling it returns a
// *PendingError (the range's old owners), with the record it holds (if
// any) appended all the same.
func (r *Replica) ReadLocal(dst, key []byte) ([]byte, error) { return r.co.ReadLocal(dst, key) }

// Paxos answers a coordinator's Paxos message of a conditional write or
// serial read (paxos.go): its prepare, proposal or commit, each durable
// before the answer. A key this node does not own is refused with
// ErrNotOwner, as ApplyLocal refuses it.
func (r *Replica) Paxos(req PaxosRequest) (PaxosReply, error) { return r.co.paxosLocal(req) }

// ScanLocal answers another node's scan with this node's own records.
func (r *Replica) ScanLocal(ctx context.Context, q LocalScan) (LocalPage, error) {
	return r.co.ScanLocal(ctx, q)
}

// ServeSpan is Rebalancer.ServeSpan: the donor side of a pull.
func (r *Replica) ServeSpan(ctx context.Context, lo, hi uint64, w io.Writer) error {
	return r.reb.ServeSpan(ctx, lo, hi, w)
}

// LocalMerkle is AntiEntropy.LocalMerkle, for another owner comparing
// its tree of rg.
func (r *Replica) LocalMerkle(ctx context.Context, rg ring.Range, depth int) (*Merkle, error) {
	return r.ae.LocalMerkle(ctx, rg, depth)
}

// GossipAddrs returns the gossip addresses of the members this node knows
// alive, itself first, for a node that asks to join.
func (r *Replica) GossipAddrs() []string {
	m := r.membership.get()
	if m == nil {
		return nil
	}
	out := []string{m.GossipAddr()}
	v := r.view.Load()
	for _, mem := range v.sortedMembers() {
		if mem.ID != r.self && mem.State == Alive && mem.GossipAddr != "" {
			out = append(out, mem.GossipAddr)
		}
	}
	return out
}
