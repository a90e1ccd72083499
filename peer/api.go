package peer

import (
	"errors"

	"github.com/ringkv/ringkv/engine"
	"github.com/ringkv/ringkv/peer/kv"
)

// The client API's vocabulary lives in peer/kv, a leaf that httpd imports
// without the storage layer; peer's own code and its callers keep the
// names below, which are the same types and values.
type (
	Consistency      = kv.Consistency
	WriteOptions     = kv.WriteOptions
	KV               = kv.KV
	ScanQuery        = kv.ScanQuery
	ScanPage         = kv.ScanPage
	Version          = kv.Version
	Degraded         = kv.Degraded
	UnavailableError = kv.UnavailableError
	ClusterStatus    = kv.ClusterStatus
	RingOwners       = kv.RingOwners
	Member           = kv.Member
	MemberState      = kv.MemberState
	PeerOffset       = kv.PeerOffset
	Transfer         = kv.Transfer
)

// Consistency levels and member states: kv's.
const (
	Quorum  = kv.Quorum
	One     = kv.One
	All     = kv.All
	Alive   = kv.Alive
	Suspect = kv.Suspect
	Dead    = kv.Dead
	Left    = kv.Left
)

// Limits: kv's.
const (
	MaxKeySize          = kv.MaxKeySize
	MaxNodeIDLen        = kv.MaxNodeIDLen
	DefaultMaxScanBytes = kv.DefaultMaxScanBytes
	MaxScanLimit        = kv.MaxScanLimit
)

// Hints are kept per node id, so the engine must take every id NewNode does.
var _ [engine.MaxHintTarget - kv.MaxNodeIDLen]struct{}

// Errors that are kv's (peer's own names for them).
var (
	ErrUnavailable   = kv.ErrUnavailable
	ErrInvalidKey    = kv.ErrInvalidKey
	ErrNoMembership  = kv.ErrNoMembership
	ErrOnlyMember    = kv.ErrOnlyMember
	ErrMemberAlive   = kv.ErrMemberAlive
	ErrUnknownMember = kv.ErrUnknownMember
)

// ParseConsistency is kv.ParseConsistency.
func ParseConsistency(s string) (Consistency, error) { return kv.ParseConsistency(s) }

// errNotFound is the not-found answer of Node.Get: both sentinels, made once.
var errNotFound error = &clientError{err: ErrNotFound, kind: kv.ErrNotFound}

// clientError is a storage error as Node's client-facing methods return
// it: its text and chain, plus the kv sentinel it means.
type clientError struct{ err, kind error }

func (e *clientError) Error() string   { return e.err.Error() }
func (e *clientError) Unwrap() []error { return []error{e.err, e.kind} }

// clientErr makes err, from the storage or a replica, match the kv
// sentinel it means (errors.Is), keeping everything it matched.
func clientErr(err error) error {
	if err == nil {
		return nil
	}
	if err == ErrNotFound {
		return errNotFound
	}
	for _, m := range [...]struct{ storage, client error }{
		{ErrNotFound, kv.ErrNotFound},
		{ErrDiskFull, kv.ErrDiskFull},
		{ErrCorruption, kv.ErrCorruption},
	} {
		if errors.Is(err, m.storage) && !errors.Is(err, m.client) {
			return &clientError{err: err, kind: m.client}
		}
	}
	return err
}
