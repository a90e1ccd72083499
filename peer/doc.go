// Package peer is everything between nodes: the coordinator that serves
// client reads and writes, hinted handoff, read repair, data movement and
// anti-entropy. Two sub-packages carry the rest: transport, the internode
// protocol (codec, client, and the handlers that answer it, calling the
// Node as transport.Local), and membership, failure detection and the
// durable member list on hashicorp/memberlist. peer imports neither; the
// binary wires them to a Node through the Transport and Membership
// interfaces, and peertest implements Transport in memory, with
// partitions and drops. Two leaves hold what the client-facing side
// shares with it, so that httpd needs none of the rest: kv, the client
// API's types and errors (re-exported here under the same names; the
// client-facing methods' errors match kv's sentinels as well as the
// storage's), and keyring, the cluster's secrets.
//
// Node is the facade a server holds: the client API (httpd's Store), the
// cluster and operations endpoints, the view and the node's lifecycle.
// Each subsystem behind it owns its state and goroutines, and what they
// share is the published View and the engine; Node.Local, AntiEntropy,
// Hints and Rebalancer hand the subsystems themselves to the internode
// handlers, the binary and tests, so Node does not repeat their methods:
//
//   - the coordinator (coord.go) stamps each write with the node's hybrid
//     logical clock, finds the key's N owners on the ring of the current
//     View and writes to all of them at once, answering once the
//     consistency level's share has the record durably; a read asks as
//     many owners as its consistency needs, returns the newest record and
//     rewrites stale replicas. The decisions are pure state machines, the
//     write plan (writeplan.go) and the read plan (readplan.go: whom to
//     ask, when to hedge, when the read is done), driven by short I/O
//     loops and an injected TimeSource. A node alone in its ring uses its
//     engine directly. The replica side of the same requests, what
//     other nodes call, is the Replica (replica.go) that Node.Local
//     returns.
//   - hints (hints.go) keeps a durable hint for each owner that is down or
//     fails a write, within bounds, and replays them when it is alive.
//   - the rebalancer (publish.go, rebalance.go, transfer.go, leave.go,
//     verify.go) publishes views, and on a ring change plans (a pure
//     function of the stored state and the new view) the ranges to pull
//     from a quorum of their old owners (verified streams merged
//     atomically, resumable, paced by TransferRate); reads of ranges still
//     being pulled answer a PendingError naming the old owners, so that
//     coordinators read those too; ranges given away are dropped once
//     their new owners are shown to hold them. A leave is a ring change
//     the leaving node waits out. Publishing a view never waits on
//     storage.
//   - anti-entropy (antientropy.go, merkle.go, corrupt.go) compares Merkle
//     trees of each shared range with the other owners and pulls what
//     differs, repairs damaged spans from the other replicas, and sets the
//     GC horizon below which tombstones may be collected: the start of
//     each node's last clean pass.
package peer
