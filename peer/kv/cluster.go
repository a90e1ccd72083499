package kv

import "time"

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

// RingOwners is the JSON of GET /v1/ring?key=K.
type RingOwners struct {
	Key    string   `json:"key"`
	Token  string   `json:"token"`
	Owners []string `json:"owners"`
	Addrs  []string `json:"http_addrs"`
}

// MemberState is what failure detection last said of a member.
type MemberState string

// Member states, as GET /v1/cluster shows them.
const (
	Alive   MemberState = "alive"
	Suspect MemberState = "suspect"
	Dead    MemberState = "dead"
	Left    MemberState = "left"
)

// Member is one node of the cluster.
type Member struct {
	ID         string      `json:"id"`
	HTTPAddr   string      `json:"http_addr"`
	GossipAddr string      `json:"gossip_addr"`
	State      MemberState `json:"state"`
	// Since is when this node's failure detection last changed its word
	// on the member (for this node itself: when it started); zero for a
	// member that left.
	Since time.Time `json:"since,omitzero"`
	// Joined orders the members' joins (the stamp of the member-list
	// entry that added it): a node that has never held its ranges pulls
	// them from the members that joined before it.
	Joined uint64 `json:"-"`
	// Leaving: out of the ring, handing its ranges over (see peer.Rebalancer.Leave).
	Leaving bool `json:"leaving,omitempty"`
	// Clock is the member's clock offset from this node's, as last
	// measured (ClusterStatus fills it in; nil if never measured).
	Clock *PeerOffset `json:"clock,omitempty"`
	// PeerAddr is where the member takes internode calls, when not at
	// HTTPAddr (its --peer-addr).
	PeerAddr string `json:"peer_addr,omitempty"`
	// NoClock: the member does not answer clock comparisons (a release
	// before --max-clock-offset): it is left out of the majority whose
	// word on this node's clock a write needs.
	NoClock bool `json:"-"`
}

// PeerOffset is one peer's measured clock offset.
type PeerOffset struct {
	// Offset is the peer's clock minus this node's.
	Offset time.Duration `json:"offset_ns"`
	// RTT is the round trip of the probe that measured it: the offset is
	// known to within half of it.
	RTT time.Duration `json:"rtt_ns"`
	// At is when it was measured (this node's clock).
	At time.Time `json:"at,omitzero"`
	// Refused: no probe measured this, the peer refused a write as
	// stamped more than the bound ahead of its clock (Offset is then the
	// bound, negated); the next probe replaces it.
	Refused bool `json:"refused,omitempty"`
}

// Transfer is this node's pulling of the ranges a new ring gave it, as
// GET /v1/cluster lists it: the range being pulled now, and the progress
// of the whole move.
type Transfer struct {
	Range string `json:"range"` // being pulled now
	From  string `json:"from"`  // the old owner it is pulled from
	To    string `json:"to"`    // this node
	// RangesDone and RangesTotal count the ranges of this move.
	RangesDone  int `json:"ranges_done"`
	RangesTotal int `json:"ranges_total"`
	// BytesDone counts the bytes received in this move; Rate is them
	// over its time so far, and ETA the time left at the pace of the
	// ranges done (0 until one is).
	BytesDone int64 `json:"bytes_done"`
	// BytesTotal estimates the move's size from the ranges done so far
	// (0 until one is): a donor's range size is known only once it has
	// streamed it.
	BytesTotal int64   `json:"bytes_total_estimate"`
	Rate       float64 `json:"bytes_per_second"`
	ETASeconds float64 `json:"eta_seconds"`
	Started    string  `json:"started"`
	// Attempts counts failed tries of the current range; LastError is the
	// latest failure's reason, cleared when the range is in.
	Attempts  int    `json:"attempts"`
	LastError string `json:"last_error,omitempty"`
}
