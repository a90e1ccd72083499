package kv

import (
	"fmt"
	"time"
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
	// Serial, for reads only, is a quorum read that first finishes any
	// conditional write in flight on the key (a Paxos round): it returns
	// the linearizable value of conditional writes.
	Serial
)

// ParseConsistency parses "one", "quorum", "all" or "serial"; "" means
// Quorum.
func ParseConsistency(s string) (Consistency, error) {
	switch s {
	case "", "quorum":
		return Quorum, nil
	case "one":
		return One, nil
	case "all":
		return All, nil
	case "serial":
		return Serial, nil
	}
	return Quorum, fmt.Errorf("invalid consistency %q: want one, quorum, all or serial", s)
}

// String returns the name ParseConsistency accepts.
func (c Consistency) String() string {
	switch c {
	case One:
		return "one"
	case All:
		return "all"
	case Serial:
		return "serial"
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

// MaxKeySize is the longest key ringkv stores.
const MaxKeySize = 4096

// MaxNodeIDLen bounds a node's id: peer.NewNode refuses a longer one, and
// so does the CLI (--node-id, a usage error). Ids name the hints kept for
// a node (peer checks that engine.MaxHintTarget holds them) and travel in
// internode messages, which refuse longer ones.
const MaxNodeIDLen = 255

// WriteOptions qualify a Put or Delete.
type WriteOptions struct {
	// Consistency is how many replicas must store a plain write; a
	// conditional one is always decided by a quorum.
	Consistency Consistency
	// TTL, when positive, makes a Put read as absent once it has passed.
	TTL time.Duration
	// Condition, when set, makes the write a compare-and-set.
	Condition Condition
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

// MaxScanLimit is the largest page a scan returns.
const MaxScanLimit = 10000

// ScanPage is one page of a scan. Next is the key to pass as After for the
// following page, or nil when the scan is complete.
type ScanPage struct {
	Items []KV
	Next  []byte
}

// Degraded is one reason a node serves less than it should: it still
// answers, but refuses some requests. Reason is short and stable ("disk
// full", "storage failed", "clock offset", "corruption"); Detail says what
// to do, for people. engine.Degraded has the same layout.
type Degraded struct {
	Reason string `json:"reason"`
	Detail string `json:"detail,omitempty"`
	// RefusesWrites: because of it the node takes no writes (/healthz
	// then answers 503, so load balancers route writes elsewhere).
	RefusesWrites bool `json:"refuses_writes,omitempty"`
}
