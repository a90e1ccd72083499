package ring

import (
	"cmp"
	"slices"
	"strconv"

	"github.com/zeebo/xxh3"
)

// DefaultVNodes is the number of tokens each node places on the ring when New
// is given vnodes <= 0.
const DefaultVNodes = 128

// DefaultReplicas is the replica count N used when New is given
// replicas <= 0.
const DefaultReplicas = 3

// Ring is a consistent-hash ring: sorted vnode tokens, each with its owner
// list computed once by New. A Ring is immutable and safe for concurrent use.
type Ring struct {
	nodes    []string // sorted, distinct
	vnodes   int      // tokens per node
	replicas int      // effective N: min(requested, len(nodes))

	// tokens holds the distinct vnode tokens in ascending order; owners[i*N :
	// (i+1)*N] is the owner list of the vnode at tokens[i]. Precomputing the
	// lists lets Owners return a subslice instead of walking the ring; one
	// flat array keeps New to a few allocations.
	tokens []uint64
	owners []string
}

// New builds the ring of nodes with vnodes tokens per node and replicas owners
// per key. The order of nodes and any duplicates in it do not matter; empty
// ids are ignored. vnodes <= 0 means DefaultVNodes and replicas <= 0 means
// DefaultReplicas; replicas above the number of nodes is capped. With no
// nodes the ring is empty and Owners returns nil.
func New(nodes []string, vnodes, replicas int) *Ring {
	var buf []byte
	return build(nodes, vnodes, replicas, func(id string, i int) uint64 {
		// xxh3.HashString(id + "#" + strconv.Itoa(i)), built in one buffer
		// to spare an allocation per vnode.
		buf = append(append(buf[:0], id...), '#')
		buf = strconv.AppendInt(buf, int64(i), 10)
		return xxh3.Hash(buf)
	})
}

// build is New with the vnode token function as a parameter, so that tests
// can force the token ties a 64-bit hash never produces.
func build(nodes []string, vnodes, replicas int, vnodeToken func(id string, i int) uint64) *Ring {
	if vnodes <= 0 {
		vnodes = DefaultVNodes
	}
	if replicas <= 0 {
		replicas = DefaultReplicas
	}
	ids := make([]string, 0, len(nodes))
	for _, id := range nodes {
		if id != "" {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	r := &Ring{nodes: slices.Clip(ids), vnodes: vnodes, replicas: min(replicas, len(ids))}
	if len(ids) == 0 {
		return r
	}

	// Node indexes follow id order, so sorting by (token, node) breaks token
	// ties by id whatever order the caller listed the nodes in.
	type point struct {
		tok  uint64
		node int
	}
	points := make([]point, 0, len(ids)*vnodes)
	for n, id := range ids {
		for i := range vnodes {
			points = append(points, point{vnodeToken(id, i), n})
		}
	}
	slices.SortFunc(points, func(a, b point) int {
		return cmp.Or(cmp.Compare(a.tok, b.tok), cmp.Compare(a.node, b.node))
	})

	// Walk clockwise from the first vnode of each distinct token until N
	// distinct nodes are found. The walk crosses tied vnodes too, so a node
	// whose vnodes all lost ties still appears in other nodes' lists.
	// seen[n] == stamp marks node n as already in the current list.
	n := r.replicas
	r.tokens = make([]uint64, 0, len(points))
	r.owners = make([]string, 0, len(points)*n)
	seen := make([]int, len(ids))
	stamp := 0
	for i, p := range points {
		if i > 0 && p.tok == points[i-1].tok {
			continue
		}
		stamp++
		r.tokens = append(r.tokens, p.tok)
		for j, got := i, 0; got < n; j = (j + 1) % len(points) {
			if nd := points[j].node; seen[nd] != stamp {
				seen[nd] = stamp
				r.owners = append(r.owners, ids[nd])
				got++
			}
		}
	}
	return r
}

// Token returns the ring token of a user key: its 64-bit xxh3 hash, the same
// function as engine.Token, so placement and storage order agree.
func Token(key []byte) uint64 { return xxh3.Hash(key) }

// Owners returns the N nodes that own token t, the primary first, or nil for
// an empty ring. The slice is shared by every caller and must not be
// modified; its capacity is its length, so appending to it copies.
func (r *Ring) Owners(t uint64) []string {
	if len(r.tokens) == 0 {
		return nil
	}
	return r.ownersAt(r.vnodeOf(t))
}

// Successors returns the first k distinct nodes clockwise from t (k capped
// at the number of nodes): Owners(t) when k is N, then the nodes that would
// own t next. After a node joins, the node in place N+1 is the owner it
// displaced, which still holds t's records until the newcomer has pulled
// them; a coordinator reads from it meanwhile. It allocates.
func (r *Ring) Successors(t uint64, k int) []string {
	k = min(k, len(r.nodes))
	if len(r.tokens) == 0 || k <= 0 {
		return nil
	}
	out := make([]string, 0, k)
	out = append(out, r.Owners(t)[:min(k, r.replicas)]...)
	// Each vnode's first owner is the node of that token; walk them on
	// from t's vnode until k distinct nodes are found.
	for i, start := r.vnodeOf(t), r.vnodeOf(t); len(out) < k; {
		if id := r.ownersAt(i)[0]; !slices.Contains(out, id) {
			out = append(out, id)
		}
		if i = (i + 1) % len(r.tokens); i == start {
			break
		}
	}
	return out
}

// KeyOwners returns Owners(Token(key)).
func (r *Ring) KeyOwners(key []byte) []string { return r.Owners(Token(key)) }

// vnodeOf returns the index of the vnode that owns t: the first token >= t,
// or the smallest when t is above them all.
// REQUIRES: len(r.tokens) > 0.
func (r *Ring) vnodeOf(t uint64) int {
	i, _ := slices.BinarySearch(r.tokens, t)
	if i == len(r.tokens) {
		return 0
	}
	return i
}

// ownersAt returns the owner list of vnode i.
func (r *Ring) ownersAt(i int) []string {
	lo, hi := i*r.replicas, (i+1)*r.replicas
	return r.owners[lo:hi:hi]
}

// Nodes returns the ring's node ids, sorted. The slice is shared and must not
// be modified.
func (r *Ring) Nodes() []string { return r.nodes }

// Has reports whether id is a node of the ring.
func (r *Ring) Has(id string) bool {
	_, ok := slices.BinarySearch(r.nodes, id)
	return ok
}

// Replicas returns N, the number of owners of every token: the requested
// replica count capped at the number of nodes (0 for an empty ring).
func (r *Ring) Replicas() int { return r.replicas }

// VNodes returns the number of tokens each node places on the ring.
func (r *Ring) VNodes() int { return r.vnodes }

// OwnedRange is one vnode's range of tokens and its owners, the primary
// first. Owners is shared with the Ring and must not be modified.
type OwnedRange struct {
	Range
	Owners []string
}

// Ranges returns every vnode's range with its owners, in token order (see
// Range for the order and the wrapping first range). Together they cover the
// token space exactly once. An empty ring has none.
func (r *Ring) Ranges() []OwnedRange {
	if len(r.tokens) == 0 {
		return nil
	}
	out := make([]OwnedRange, len(r.tokens))
	for i := range r.tokens {
		out[i] = OwnedRange{r.vnodeRange(i), r.ownersAt(i)}
	}
	return out
}

// vnodeRange returns the range vnode i owns: from the previous token,
// exclusive, to its own, inclusive. With one distinct token it is the whole
// ring.
func (r *Ring) vnodeRange(i int) Range {
	prev := i - 1
	if prev < 0 {
		prev = len(r.tokens) - 1
	}
	return Range{Start: r.tokens[prev], End: r.tokens[i]}
}

// Ownership returns, for each node, the fraction of the token space it is
// the primary owner of. The fractions sum to 1 (up to float rounding); a
// node that is primary for nothing has 0. An empty ring gives an empty map.
func (r *Ring) Ownership() map[string]float64 {
	m := make(map[string]float64, len(r.nodes))
	for _, id := range r.nodes {
		m[id] = 0
	}
	for i := range r.tokens {
		m[r.ownersAt(i)[0]] += r.vnodeRange(i).Fraction()
	}
	return m
}

// ReplicaRanges returns the ranges of tokens for which id is one of the
// owners (primary or not), in token order, with adjacent ranges merged,
// including across the top of the ring. It is nil if id is not a node.
func (r *Ring) ReplicaRanges(id string) []Range {
	if !r.Has(id) {
		return nil
	}
	var out []Range
	for i := range r.tokens {
		if slices.Contains(r.ownersAt(i), id) {
			out = append(out, r.vnodeRange(i))
		}
	}
	return coalesce(out, func(rg *Range) *Range { return rg }, func(a, b *Range) bool { return true })
}
