// Package membership is a ringkv node's membership layer: hashicorp/memberlist
// for failure detection, and the durable member list (the roster) that
// defines the ring, kept in the engine's metadata and spread by
// memberlist's push/pull exchange and broadcasts.
//
// The roster's rules (which entry of a relayed list a node takes, a
// member's own word on itself, removals and their proofs, the bound on
// stamps, the refusal of a node that left) are pure functions over values
// in roster.go, tested by the transcripts in testdata/members. gossip.go
// is the I/O around them: memberlist's delegates, persistence, the
// reconnect loop that heals partitions, and the clock pings of clock.go.
// join.go is how a node joins (Config.Join's names resolved at each
// attempt, backoff) and how a brand-new cluster bootstraps into one ring
// (Entry.Joining, Config.BootstrapExpect); delegates.go's mergeGate
// refuses to merge two rings that never met. addr.go works out the
// addresses a node advertises (never 0.0.0.0).
//
// Package peer does not import this one: a Gossip satisfies
// peer.Membership and hands each new peer.View to a callback, and
// cmd/ringkv wires the two together.
package membership
