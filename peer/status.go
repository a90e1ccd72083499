package peer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/ringkv/ringkv/ring"
)

// ClusterStatus returns the node's view of the cluster.
func (n *Node) ClusterStatus() ClusterStatus {
	v := n.view.Load()
	st := ClusterStatus{
		Self:             n.cfg.NodeID,
		Replicas:         v.Ring.Replicas(),
		VNodes:           v.Ring.VNodes(),
		Members:          v.sortedMembers(),
		Transfers:        n.reb.Transfers(),
		Settled:          n.reb.Settled(),
		Leave:            n.reb.leaveStatus(),
		AntiEntropyClean: n.ae.cleanSince(),
		HintsPending:     n.cfg.Engine.PendingHints(),
		Ownership:        v.Ring.Ownership(),
	}
	st.MaxClockOffset = n.cfg.Clocks.Bound()
	if err := n.co.clockError(v); err != nil {
		st.ClockError = err.Error()
	}
	offs := n.cfg.Clocks.Offsets()
	for i := range st.Members {
		if o, ok := offs[st.Members[i].ID]; ok {
			st.Members[i].Clock = &o
		}
	}
	if ml := n.membership.get(); ml != nil {
		for i := range st.Members {
			if st.Members[i].ID == n.cfg.NodeID && st.Members[i].GossipAddr == "" {
				st.Members[i].GossipAddr = ml.GossipAddr()
			}
		}
	}
	return st
}

// Owners returns the owners of key, the primary first.
func (n *Node) Owners(key []byte) (RingOwners, error) {
	if err := checkKey(key); err != nil {
		return RingOwners{}, err
	}
	v := n.view.Load()
	ids := v.Ring.KeyOwners(key)
	out := RingOwners{
		Key:    string(key),
		Token:  fmt.Sprintf("%016x", ring.Token(key)),
		Owners: slices.Clone(ids),
		Addrs:  make([]string, 0, len(ids)),
	}
	for _, id := range ids {
		out.Addrs = append(out.Addrs, v.Members[id].HTTPAddr)
	}
	return out, nil
}

// AddNode joins the cluster that the node at httpAddr belongs to, as
// go-kvstore's /add-node did: it asks that node for its members' gossip
// addresses and joins them.
func (n *Node) AddNode(ctx context.Context, httpAddr string) error {
	ml := n.membership.get()
	if ml == nil {
		return ErrNoMembership
	}
	if n.cfg.Transport == nil {
		return errors.New("peer: no transport")
	}
	addrs, err := n.cfg.Transport.GossipAddrs(ctx, httpAddr)
	if err != nil {
		return fmt.Errorf("cannot reach %s: %w", httpAddr, err)
	}
	if len(addrs) == 0 {
		return fmt.Errorf("the node at %s runs without membership", httpAddr)
	}
	return ml.Join(addrs)
}

// ErrGossipAddr is matched by membership.Start's errors that come from the
// address it was given (it does not parse, or cannot be listened on).
var ErrGossipAddr = errors.New("peer: cannot gossip on")

// ErrLeftMember is returned by membership.Start for a node whose stored member
// list says it left the cluster or was removed from it.
var ErrLeftMember = errors.New("peer: this node is no longer a member")

// RemoveNode takes a member that is gone for good out of the ring. Its
// hints are dropped; its ranges fall to the next nodes on the ring.
func (n *Node) RemoveNode(id string) error {
	ml := n.membership.get()
	if ml == nil {
		return ErrNoMembership
	}
	v := n.view.Load()
	m, ok := v.Members[id]
	if !ok || !v.Ring.Has(id) {
		return fmt.Errorf("%w: %s", ErrUnknownMember, strconv.Quote(id))
	}
	if m.State == Alive || id == n.cfg.NodeID {
		return fmt.Errorf("%w: %s is %s; remove only a node that is gone for good", ErrMemberAlive, id, m.State)
	}
	return ml.Remove(id)
}
