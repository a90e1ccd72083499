package peer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/ringkv/ringkv/ring"
)

// ClusterStatus is the JSON of GET /v1/cluster.
type ClusterStatus struct {
	Self     string   `json:"self"`
	Replicas int      `json:"replicas"`
	VNodes   int      `json:"vnodes"`
	Members  []Member `json:"members"`
	// Transfers lists the range pulls in flight on this node; empty when
	// it holds every range of the ring.
	Transfers []Transfer `json:"transfers"`
	// Settled says this node holds every range the current ring gives it.
	Settled bool `json:"settled"`
	// AntiEntropyClean is the HLC timestamp at which this node's last
	// complete anti-entropy pass began (0: none yet): every record older
	// than it that another owner held, this node holds. While the node
	// keeps ranges it gave away, it is no later than the last such pass
	// before it gave them.
	AntiEntropyClean uint64 `json:"anti_entropy_clean"`
	// Leave is the progress of this node's graceful leave, if one began:
	// "handing ranges over: ...", "left", or why it stopped.
	Leave string `json:"leave,omitempty"`
	// HintsPending counts the hints this node holds, per owner.
	HintsPending map[string]int64 `json:"hints_pending"`
	// Ownership is each member's share of the token space as primary.
	Ownership map[string]float64 `json:"ownership"`
	// MaxClockOffset is --max-clock-offset.
	MaxClockOffset time.Duration `json:"max_clock_offset_ns,omitempty"`
	// ClockError, when set, says why this node coordinates no writes: its
	// clock is off from a majority of its peers by more than the bound.
	ClockError string `json:"clock_error,omitempty"`
}

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

// RingOwners is the JSON of GET /v1/ring?key=K.
type RingOwners struct {
	Key    string   `json:"key"`
	Token  string   `json:"token"`
	Owners []string `json:"owners"`
	Addrs  []string `json:"http_addrs"`
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

// ErrMemberAlive is returned when removing a member that is still alive.
var ErrMemberAlive = errors.New("peer: member is alive")

// ErrUnknownMember is returned when removing a member the ring does not have.
var ErrUnknownMember = errors.New("peer: no such member")

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
