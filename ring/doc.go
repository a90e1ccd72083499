// Package ring maps keys to nodes with a consistent-hash ring. It does no
// I/O, reads no clock and holds no locks: a Ring is a pure function of its
// member list, vnode count and replica count, so every node that knows the
// same members computes the same placement.
//
// # Placement
//
// The token space is the 64-bit unsigned integers, seen as a circle.
//
//   - A key's token is xxh3.Hash(key) (Token), the same hash that engine/
//     puts in front of every stored key, so a ring range is one contiguous
//     span of the store.
//   - Each node places vnodes tokens (default DefaultVNodes): vnode i of node id has
//     token xxh3.HashString(id + "#" + strconv.Itoa(i)), i = 0..vnodes-1.
//     Vnodes are ordered by (token, node id); the id breaks the tie of two
//     equal tokens so that the order never depends on input order.
//   - A token t belongs to the first vnode whose token is >= t, wrapping past
//     the largest vnode to the smallest one. Vnode i thus owns the range
//     (token[i-1], token[i]], and the smallest vnode also owns everything
//     above the largest. Of several vnodes sharing one token, the first in
//     order owns it; the rest own nothing.
//   - The owners of t are the first N distinct nodes met walking clockwise
//     from t's vnode, the primary first, where N = min(replicas, nodes).
//
// Golden files under testdata/ pin this scheme: changing any step above
// moves data in every running cluster.
//
// # Use
//
// A Ring is immutable and safe for concurrent use. A membership change
// builds a new Ring; the owner of the view publishes it with an
// atomic.Pointer and moves the ranges that Diff reports:
//
//	next := ring.New(members, vnodes, replicas)
//	for _, mv := range ring.Diff(cur.Load(), next) {
//		// ship mv.Range from mv.From to mv.To (Range.Spans gives the
//		// half-open token spans to scan)
//	}
//	cur.Store(next)
//
// The lookup on the request path, Owners and KeyOwners, is a binary search
// that returns a precomputed, shared slice and allocates nothing.
package ring
