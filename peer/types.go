package peer

import (
	"errors"
	"fmt"
	"time"

	"github.com/ringkv/ringkv/engine"
	"github.com/ringkv/ringkv/memtable"
)

// Consistency is how many of a key's replicas must answer a request.
type Consistency uint8

const (
	// Quorum needs a majority of the replicas (the default).
	Quorum Consistency = iota
	// One needs any single replica.
	One
	// All needs every replica.
	All
)

// ParseConsistency parses "one", "quorum" or "all"; "" means Quorum.
func ParseConsistency(s string) (Consistency, error) {
	switch s {
	case "", "quorum":
		return Quorum, nil
	case "one":
		return One, nil
	case "all":
		return All, nil
	}
	return Quorum, fmt.Errorf("invalid consistency %q: want one, quorum or all", s)
}

// String returns the name ParseConsistency accepts.
func (c Consistency) String() string {
	switch c {
	case One:
		return "one"
	case All:
		return "all"
	}
	return "quorum"
}

// Needed returns how many of n replicas must answer at consistency c.
func (c Consistency) Needed(n int) int {
	switch c {
	case One:
		return min(1, n)
	case All:
		return n
	}
	return n/2 + 1
}

// ErrNotFound is returned by reads of a key that is absent, deleted or expired.
var ErrNotFound = engine.ErrNotFound

// ErrDiskFull is matched by errors of writes a node refused because its
// disk is below its free-space floor (engine.DiskFullError names it).
var ErrDiskFull = engine.ErrDiskFull

// Degraded is one reason a node serves less than it should (it answers,
// but refuses some requests): "disk full", "storage failed", and whatever
// Node.Health adds.
type Degraded = engine.Degraded

// ErrUnavailable is matched (errors.Is) by errors of requests that fewer
// replicas answered than their consistency level needs.
var ErrUnavailable = errors.New("peer: not enough replicas answered")

// MaxNodeIDLen bounds a node's id: NewNode refuses a longer one, and so
// does the CLI (--node-id, a usage error). Ids name the hints kept for a
// node (engine.MaxHintTarget) and travel in internode messages, which
// refuse longer ones.
const MaxNodeIDLen = engine.MaxHintTarget

// ErrRangePending is a replica's answer for a key of a range it has just
// been given and is still pulling from the range's old owners: its copy
// may lack older writes, so the coordinator also asks those old owners
// (PendingError names them), and counts the copy only for its newer
// records.
var ErrRangePending = errors.New("peer: the key's range is still being transferred to this node")

// PendingError is the ErrRangePending of a node that names the old owners
// it pulls the key's range from: exactly the nodes that held the key
// before the ring changed. errors.Is(err, ErrRangePending) holds for it.
type PendingError struct {
	From []string
}

func (e *PendingError) Error() string        { return ErrRangePending.Error() }
func (e *PendingError) Is(target error) bool { return target == ErrRangePending }

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

// Version identifies one write; see memtable.Version.
type Version = memtable.Version

// WriteOptions qualify a Put or Delete.
type WriteOptions struct {
	Consistency Consistency
	// TTL, when positive, makes a Put read as absent once it has passed.
	TTL time.Duration
}

// KV is one key and its newest live value.
type KV struct {
	Key     []byte
	Value   []byte
	Version Version
}

// ScanQuery asks for live keys with a prefix, in token order (the order of
// the keys' xxh3 hashes, which is how the cluster places and stores them),
// starting after the key After.
type ScanQuery struct {
	Prefix      []byte
	After       []byte // empty: from the start
	Limit       int    // at most this many items; must be positive
	Consistency Consistency
	// MaxBytes caps the keys and values of the page: it ends once they
	// reach MaxBytes (one item always fits) and Next continues. 0 means
	// DefaultMaxScanBytes.
	MaxBytes int
}

// DefaultMaxScanBytes is the byte cap of a scan page, and of a member's
// answer to a scan, when none is given.
const DefaultMaxScanBytes = 8 << 20

// maxScanBytes returns the cap to apply for a MaxBytes field.
func maxScanBytes(n int) int {
	if n <= 0 {
		return DefaultMaxScanBytes
	}
	return n
}

// ScanPage is one page of a scan. Next is the key to pass as After for the
// following page, or nil when the scan is complete.
type ScanPage struct {
	Items []KV
	Next  []byte
}
