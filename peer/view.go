package peer

import (
	"context"
	"io"
	"slices"
	"time"

	"github.com/ringkv/ringkv/ring"
)

// View is one immutable picture of the cluster: the ring, built from the
// durable member list, and every member's liveness. A node coordinates each
// request with the View current when the request began.
type View struct {
	Ring    *ring.Ring
	Members map[string]Member // by id: the ring's members, and any that left
}

// reachable reports whether requests should be sent to member id: it is
// in the view and not known dead or gone.
func (v *View) reachable(id string) (Member, bool) {
	m, ok := v.Members[id]
	return m, ok && (m.State == Alive || m.State == Suspect)
}

// soloFor reports whether node id alone owns every key of v, so it needs
// no other node.
func (v *View) soloFor(id string) bool {
	nodes := v.Ring.Nodes()
	return len(nodes) == 1 && nodes[0] == id
}

// sortedMembers returns the members ordered by id.
func (v *View) sortedMembers() []Member {
	out := make([]Member, 0, len(v.Members))
	for _, m := range v.Members {
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b Member) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return out
}

// Transport carries a coordinator's calls to other nodes, addressed by
// their HTTP address. Implementations must be safe for concurrent use and
// must not retain the slices they are given past the call's end: the
// return of a synchronous method, the callback of an Async one.
type Transport interface {
	// Apply makes the node at addr store ms durably (as its --sync says),
	// newest version winning. On an error some of ms may be stored: the
	// caller keeps them as hints and sends them again, which is harmless.
	Apply(ctx context.Context, addr string, ms []Mutation) error
	// ApplyAsync is Apply without the wait: done is called once with
	// Apply's outcome, possibly on the transport's own goroutine (so it
	// must not block) or before ApplyAsync returns. ApplyAsync itself must
	// not wait on a slow or dead peer. ms must not change until done.
	ApplyAsync(addr string, ms []Mutation, deadline time.Time, done func(error))
	// ReadAsync asks the node at addr for its stored record of key,
	// tombstones and expired records included, and calls got once with
	// it (nil when the node has none, the caller may keep it) or an
	// error, under the same rules as ApplyAsync's done. key must not
	// change until got.
	ReadAsync(addr string, key []byte, deadline time.Time, got func(rec []byte, err error))
	// Paxos sends one Paxos message of a conditional write or serial read
	// to the node at addr (Replica.Paxos there) and returns its answer.
	Paxos(ctx context.Context, addr string, req PaxosRequest) (PaxosReply, error)
	// Scan returns one page of the node's own records.
	Scan(ctx context.Context, addr string, q LocalScan) (LocalPage, error)
	// OpenSpan asks the node at addr for its records of the token span
	// [lo, hi) and returns the stream (sstable.Send's format) to read them
	// from. Closing it, or ctx ending, stops the transfer.
	OpenSpan(ctx context.Context, addr string, lo, hi uint64) (io.ReadCloser, error)
	// Merkle returns the node at addr's Merkle tree of rg (anti-entropy).
	Merkle(ctx context.Context, addr string, rg ring.Range, depth int) (*Merkle, error)
	// Status returns the node at addr's view of the cluster (GET
	// /v1/cluster), for a leaving node that waits for the others to hold
	// its ranges.
	Status(ctx context.Context, addr string) (ClusterStatus, error)
	// GossipAddrs returns the gossip addresses of the members the node at
	// addr knows, for joining its cluster.
	GossipAddrs(ctx context.Context, addr string) ([]string, error)
}

// Membership is the failure detector and durable member list a Node
// defers to for joining and removing members. membership.Gossip implements it
// with hashicorp/memberlist.
type Membership interface {
	// Join contacts the members at these gossip addresses and joins their
	// cluster.
	Join(addrs []string) error
	// Remove takes a member that is gone for good out of the ring.
	Remove(id string) error
	// Leave takes this node out of the ring while it keeps serving its
	// data to the nodes that pull its ranges.
	Leave() error
	// GossipAddr is this node's own gossip address.
	GossipAddr() string
}
