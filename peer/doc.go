// Package peer is everything between nodes: the coordinator that serves
// client reads and writes, and (as the cluster grows) membership, the
// internode transport, hinted handoff, read repair and data movement.
//
// The coordinator is Node. With one node it stamps each write with the
// node's hybrid logical clock and applies it to the local engine; the
// consistency level of a request is validated and then trivially met, since
// the one node is every replica.
package peer
