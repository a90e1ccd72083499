// Package peer is everything between nodes: the coordinator that serves
// client reads and writes, membership, hinted handoff, read repair, data
// movement and anti-entropy; the internode protocol that carries them is
// its sub-package transport.
//
// The coordinator is Node. It stamps each write with the node's hybrid
// logical clock, finds the key's N owners on the ring of its current View,
// writes to all of them at once (itself directly, the others through a
// Transport) and answers once the consistency level's share of them has
// the record durably; owners that are down or fail get a durable hint,
// replayed when membership sees them alive. A read asks as many owners as
// its consistency needs, returns the newest record and rewrites stale
// replicas. A node alone in its ring skips all of that and uses its engine
// directly.
//
// When the ring changes, each node pulls the ranges the new ring gives it
// from a quorum of their old owners (transfer.go: verified streams merged
// atomically, resumable, paced by TransferRate), answers reads of ranges
// it is still pulling as pending, naming the old owners (PendingError) so
// that coordinators read those too, and drops the ranges it gave away once
// every member holds its own; a leave (leave.go) is a ring change the
// leaving node waits out. Anti-entropy (antientropy.go, merkle.go)
// compares Merkle trees of each shared range with the other owners and
// pulls what differs; the start of each node's last clean pass sets the
// GC horizon below which tombstones may be collected.
//
// Gossip is the membership layer: hashicorp/memberlist for failure
// detection, and a durable member list, spread by memberlist's push/pull
// exchange, from which every node builds the same ring. Transport is
// implemented over HTTP in peer/transport (both its client and the
// handlers that answer it, which call the Node as transport.Local), and
// in memory, with partitions and drops, in peer/peertest.
package peer
