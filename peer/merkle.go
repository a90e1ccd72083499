package peer

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"

	"github.com/ringkv/ringkv/engine"
	"github.com/ringkv/ringkv/memtable"
	"github.com/ringkv/ringkv/ring"
	"github.com/zeebo/xxh3"
)

const (
	// DefaultMerkleDepth is the depth anti-entropy uses: 1024 leaves, about
	// 10KiB on the wire for a range that holds data in every leaf.
	DefaultMerkleDepth = 10
	// MaxMerkleDepth bounds a tree's depth: 65536 leaves, 1MiB in memory.
	MaxMerkleDepth = 16

	// maxMerkleCount bounds a decoded leaf's count (a trillion records) so
	// that the sums of counts in Root and Coarsen never overflow.
	maxMerkleCount = 1 << 40
)

// ErrMerkleMismatch is matched by the error of Diff on two trees that do not
// cover the same range at the same depth, which therefore cannot be compared.
var ErrMerkleMismatch = errors.New("peer: Merkle trees of different ranges or depths")

// MerkleNode is the digest of the records in a part of a Merkle tree's
// range: how many there are, and the sum of their hashes mod 2^64.
type MerkleNode struct {
	Hash  uint64
	Count uint64
}

// Merkle is a digest of one replica's records in a token range, for
// anti-entropy: the replicas of a range each build one from a snapshot,
// exchange them (peer/transport carries them), and stream only the spans
// that Diff reports.
//
// The range is cut into 2^depth leaves of equal width, to within a token.
// A leaf sums the hashes of the records whose token falls in it: a sum does
// not depend on the order the records came in, and unlike xor a hash added
// twice does not cancel out. The tree keeps only its leaves; a node above
// them is the sum of its children rather than a hash of them, so a tree
// coarsened to a smaller depth (Coarsen) is exactly the tree built at that
// depth, and a first round of an exchange can compare Coarsen(0), the root
// alone, before paying for the leaves. A difference goes unnoticed only if
// the sums of two replicas' leaves meet by chance, with odds of 2^-64 like
// a 64-bit hash of the children.
//
// A tree is built by one goroutine with Add, from the records of each span
// of its range:
//
//	t := peer.NewMerkle(rg, peer.DefaultMerkleDepth)
//	for _, sp := range t.Range().Spans() {
//		if err := snap.ScanTokens(ctx, sp.Lo, sp.Hi, t.Add); err != nil {
//			return err
//		}
//	}
//
// Once built it is read only and safe for concurrent use. The zero Merkle
// is not usable: make one with NewMerkle or NewMerkleFrom.
type Merkle struct {
	rg     ring.Range
	first  uint64 // the range's first token, rg.Start+1: offsets count from it
	width  uint64 // the number of tokens in the range; 0 stands for 2^64
	depth  int
	leaves []MerkleNode
}

// NewMerkle returns an empty tree of rg with 2^depth leaves. depth is
// clamped to 0..MaxMerkleDepth, and lowered so that every leaf holds at
// least one token (a range of 100 tokens gets 64 leaves at most); Depth
// says the depth in force. Every whole-ring range (Start == End) is the
// same set of tokens, so they share one form, Range{MaxUint64, MaxUint64},
// whose leaves start at token 0.
func NewMerkle(rg ring.Range, depth int) *Merkle {
	t := merkleShape(rg, depth)
	t.leaves = make([]MerkleNode, 1<<t.depth)
	return t
}

// merkleShape returns a tree of rg without its leaves.
func merkleShape(rg ring.Range, depth int) *Merkle {
	if rg.Start == rg.End {
		rg = ring.Range{Start: math.MaxUint64, End: math.MaxUint64}
	}
	t := &Merkle{rg: rg, first: rg.Start + 1, width: rg.End - rg.Start}
	t.depth = min(max(depth, 0), maxMerkleDepth(t.width))
	return t
}

// maxMerkleDepth returns the greatest depth at which a range of width
// tokens (0 for 2^64) has no empty leaf.
func maxMerkleDepth(width uint64) int {
	if width == 0 {
		return MaxMerkleDepth
	}
	return min(MaxMerkleDepth, bits.Len64(width)-1)
}

// Range returns the token range t covers.
func (t *Merkle) Range() ring.Range { return t.rg }

// Depth returns the depth of t: it has 2^Depth leaves.
func (t *Merkle) Depth() int { return t.depth }

// Leaves returns the leaves of t in range order, from the one holding the
// range's first token. The slice is shared with t and must not be modified.
func (t *Merkle) Leaves() []MerkleNode { return t.leaves }

// Root returns the digest of the whole range: equal roots mean, but for a
// 2^-64 chance, that the replicas hold the same records.
func (t *Merkle) Root() MerkleNode {
	var r MerkleNode
	for _, l := range t.leaves {
		r.Hash += l.Hash
		r.Count += l.Count
	}
	return r
}

// Add adds one record of key to its leaf. It has the signature of
// engine.ScanFunc so that a scan feeds a tree directly; it always asks for
// more, and fails only for a key whose token is outside the range. It
// allocates nothing.
func (t *Merkle) Add(key []byte, r memtable.Record) (more bool, err error) {
	return true, t.add(engine.Token(key), key, &r)
}

// add is Add for a key whose token is known.
func (t *Merkle) add(tok uint64, key []byte, r *memtable.Record) error {
	off := tok - t.first
	if t.width != 0 && off >= t.width {
		return fmt.Errorf("peer: key %q has token %016x, outside the Merkle range %s", key, tok, t.rg)
	}
	l := &t.leaves[t.leafOf(off)]
	l.Hash += recordHash(tok, r)
	l.Count++
	return nil
}

// leafOf returns the leaf of the token at offset off from the range's
// first token: floor(off·2^depth / width).
func (t *Merkle) leafOf(off uint64) int {
	d := uint(t.depth)
	if t.width == 0 {
		return int(off >> (64 - d))
	}
	// off < width, so the high word of off·2^depth is below width and the
	// division cannot overflow.
	q, _ := bits.Div64(off>>(64-d), off<<d, t.width)
	return int(q)
}

// leafStart returns the offset from the range's first token of the first
// token of leaf i, ceil(i·width / 2^depth), for i in 0..2^depth: leaf i
// holds the offsets from leafStart(i) up to leafStart(i+1), and
// leafStart(2^depth) is the width (0 for the whole ring, as 2^64 wraps).
func (t *Merkle) leafStart(i int) uint64 {
	d := uint(t.depth)
	if t.width == 0 {
		return uint64(i) << (64 - d)
	}
	// i·width < 2^(64+depth), so the quotient fits in 64 bits.
	hi, lo := bits.Mul64(uint64(i), t.width)
	q := hi<<(64-d) | lo>>d
	if lo&(1<<d-1) != 0 {
		q++
	}
	return q
}

// recordHash is a record's share of its leaf: a hash of what tells one
// stored version of a key from another. It is part of the wire format of
// Merkle trees: changing it needs a new message kind in peer/transport, or
// replicas would see every leaf differ. The key is known by its token;
// keys that share a token still differ unless their records are identical,
// which distinct writes, each with its own version, never are. The value
// is hashed apart so that the fixed part fits on the stack, whatever the
// value's size.
func recordHash(tok uint64, r *memtable.Record) uint64 {
	var b [41]byte
	binary.LittleEndian.PutUint64(b[0:], tok)
	binary.LittleEndian.PutUint64(b[8:], r.TS)
	binary.LittleEndian.PutUint64(b[16:], r.Node)
	binary.LittleEndian.PutUint64(b[24:], uint64(r.ExpiresAt))
	if r.Tombstone {
		b[40] = 1 // and no value: a tombstone stores none
	} else {
		binary.LittleEndian.PutUint64(b[32:], xxh3.Hash(r.Value))
	}
	return xxh3.Hash(b[:])
}

// Coarsen returns the tree of t's range at a smaller depth, equal to the
// tree built at that depth from the same records; depth is clamped to
// 0..t.Depth().
func (t *Merkle) Coarsen(depth int) *Merkle {
	depth = min(max(depth, 0), t.depth)
	c := &Merkle{rg: t.rg, first: t.first, width: t.width, depth: depth, leaves: make([]MerkleNode, 1<<depth)}
	shift := uint(t.depth - depth)
	for i, l := range t.leaves {
		p := &c.leaves[i>>shift]
		p.Hash += l.Hash
		p.Count += l.Count
	}
	return c
}

// Diff returns the token spans of the leaves whose digests differ between
// t and u, adjacent leaves merged, in token order (a run of leaves that
// crosses from MaxUint64 to 0 gives two spans, as ring.Range.Spans does).
// Equal trees give none. Trees that cover different ranges or depths
// cannot be compared: the error then matches ErrMerkleMismatch.
func (t *Merkle) Diff(u *Merkle) ([]ring.Span, error) {
	if t.rg != u.rg || t.depth != u.depth || len(t.leaves) != len(u.leaves) {
		return nil, fmt.Errorf("%w: %s at depth %d against %s at depth %d", ErrMerkleMismatch, t.rg, t.depth, u.rg, u.depth)
	}
	var out []ring.Span
	for i, n := 0, len(t.leaves); i < n; {
		if t.leaves[i] == u.leaves[i] {
			i++
			continue
		}
		j := i + 1
		for j < n && t.leaves[j] != u.leaves[j] {
			j++
		}
		// Leaves i..j-1 differ. Hi == 0 is 2^64, as in ring.Span; lo == hi
		// only for every leaf of the whole ring, which starts at token 0.
		lo, hi := t.first+t.leafStart(i), t.first+t.leafStart(j)
		if lo < hi || hi == 0 {
			out = append(out, ring.Span{Lo: lo, Hi: hi})
		} else {
			out = append(out, ring.Span{Lo: 0, Hi: hi}, ring.Span{Lo: lo, Hi: 0})
		}
		i = j
	}
	// Runs are in range order; after a wrap the tokens start again at 0.
	slices.SortFunc(out, func(a, b ring.Span) int { return cmp.Compare(a.Lo, b.Lo) })
	return out, nil
}

// NewMerkleFrom returns the tree of rg whose leaves are leaves, which it
// keeps: the constructor of a decoder (peer/transport's DecodeMerkle).
// It refuses a number of leaves other than 2^Depth of NewMerkle(rg, d)
// for some depth d, a leaf of more than 2^40 records (so that the sums of
// Root and Coarsen never overflow), and a hash without records.
func NewMerkleFrom(rg ring.Range, leaves []MerkleNode) (*Merkle, error) {
	n := len(leaves)
	if n == 0 || n&(n-1) != 0 {
		return nil, fmt.Errorf("peer: %d Merkle leaves, not a power of 2", n)
	}
	depth := bits.Len(uint(n)) - 1
	t := merkleShape(rg, depth)
	if t.depth != depth {
		return nil, fmt.Errorf("peer: depth %d for a range of %d tokens", depth, t.width)
	}
	for i, l := range leaves {
		if l.Count > maxMerkleCount || (l.Count == 0 && l.Hash != 0) {
			return nil, fmt.Errorf("peer: Merkle leaf %d: %d records, hash %016x", i, l.Count, l.Hash)
		}
	}
	t.leaves = leaves
	return t, nil
}
