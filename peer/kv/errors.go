package kv

import (
	"errors"
	"fmt"
)

// The errors a client request can meet. Match them with errors.Is: the
// errors carry detail around them.
var (
	// ErrNotFound: the key is absent, deleted or expired.
	ErrNotFound = errors.New("not found")
	// ErrDiskFull: a node refused the write because its disk is below
	// its free-space floor.
	ErrDiskFull = errors.New("disk full")
	// ErrCorruption: a node's stored data is damaged where the request
	// read it.
	ErrCorruption = errors.New("corruption")
	// ErrUnavailable: fewer replicas answered than the request's
	// consistency level needs (UnavailableError says how many).
	ErrUnavailable = errors.New("peer: not enough replicas answered")
	// ErrInvalidKey: the key is empty or longer than MaxKeySize.
	ErrInvalidKey = errors.New("peer: invalid key")
	// ErrNoMembership: a cluster change on a node run without
	// membership (a single node).
	ErrNoMembership = errors.New("peer: this node runs without membership (no --gossip-addr)")
	// ErrOnlyMember: a leave of the only member of a ring; nobody would
	// hold its data.
	ErrOnlyMember = errors.New("peer: the only member of the ring cannot leave it")
	// ErrMemberAlive: a removal of a member that is still alive.
	ErrMemberAlive = errors.New("peer: member is alive")
	// ErrUnknownMember: a removal of a member the ring does not have.
	ErrUnknownMember = errors.New("peer: no such member")
	// ErrNoOverview is matched by a peer's error for a node that answers
	// but serves no /v1/overview: an older release, which the status
	// page shows as such rather than as down.
	ErrNoOverview = errors.New("the node serves no /v1/overview")
)

// NodeOverviewURI is the request for a node's own snapshot of the status
// page (httpd serves it; peer/transport asks it of other nodes).
const NodeOverviewURI = "/v1/overview?scope=node"

// UnavailableError says how many replicas answered a request and how many it needed.
type UnavailableError struct {
	Op       string
	Needed   int
	Answered int
	TimedOut bool // the others did not answer within the request timeout
	// Cause, if set, is why some replicas refused (a clock offset, say).
	Cause error
}

func (e *UnavailableError) Error() string {
	s := fmt.Sprintf("%s needs %d replicas, %d answered", e.Op, e.Needed, e.Answered)
	if e.TimedOut {
		s += " before the request timeout"
	}
	if e.Cause != nil {
		s += "; refused: " + e.Cause.Error()
	}
	return s
}

// Is makes errors.Is(err, ErrUnavailable) true.
func (e *UnavailableError) Is(target error) bool { return target == ErrUnavailable }

// Unwrap returns the Cause.
func (e *UnavailableError) Unwrap() error { return e.Cause }
