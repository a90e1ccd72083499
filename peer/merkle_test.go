package peer

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/ringkv/ringkv/engine"
	"github.com/ringkv/ringkv/memtable"
	"github.com/ringkv/ringkv/ring"
)

const maxTok = math.MaxUint64

// merkleRec is a record with a token chosen by the test, fed through add:
// placing a key at a given token needs no xxh3 preimage.
type merkleRec struct {
	tok uint64
	key []byte
	rec memtable.Record
}

// merkleRanges are the ranges most tests run over: the whole ring, a plain
// vnode-sized range, one that wraps past MaxUint64, and a tiny wrapping one
// whose depth is clamped.
var merkleRanges = []struct {
	name string
	rg   ring.Range
}{
	{"whole", ring.Range{Start: 7, End: 7}},
	{"plain", ring.Range{Start: 0x3000_0000_0000_0000, End: 0x3200_0000_0000_0007}},
	{"wrapping", ring.Range{Start: maxTok - 1<<60, End: 1 << 59}},
	{"tiny wrapping", ring.Range{Start: maxTok - 10, End: 10}},
	{"top", ring.Range{Start: maxTok - 1<<61, End: maxTok}},
	{"bottom", ring.Range{Start: maxTok, End: 1 << 58}},
}

// randTok returns a random token in rg.
func randTok(rng *rand.Rand, rg ring.Range) uint64 {
	if rg.Start == rg.End {
		return rng.Uint64()
	}
	return rg.Start + 1 + rng.Uint64N(rg.End-rg.Start)
}

// randRecs returns n records with distinct keys and random tokens in rg:
// values of 0 to 64 bytes, some tombstones, some expiries.
func randRecs(rng *rand.Rand, rg ring.Range, n int) []merkleRec {
	recs := make([]merkleRec, n)
	for i := range recs {
		r := memtable.Record{Version: memtable.Version{TS: rng.Uint64N(1<<50) + 1, Node: rng.Uint64N(8)}}
		switch {
		case i%7 == 6:
			r.Tombstone = true
		default:
			r.Value = make([]byte, rng.IntN(65))
			for j := range r.Value {
				r.Value[j] = byte(rng.Uint32())
			}
		}
		if i%11 == 10 {
			r.ExpiresAt = 1_700_000_000_000 + int64(rng.IntN(1e9))
		}
		recs[i] = merkleRec{tok: randTok(rng, rg), key: fmt.Appendf(nil, "key-%d", i), rec: r}
	}
	return recs
}

func buildMerkle(tb testing.TB, rg ring.Range, depth int, recs []merkleRec) *Merkle {
	tb.Helper()
	t := NewMerkle(rg, depth)
	for i := range recs {
		if err := t.add(recs[i].tok, recs[i].key, &recs[i].rec); err != nil {
			tb.Fatal(err)
		}
	}
	return t
}

func sameMerkle(a, b *Merkle) bool {
	return a.rg == b.rg && a.first == b.first && a.width == b.width && a.depth == b.depth &&
		slices.Equal(a.leaves, b.leaves)
}

// The oracle recomputes leaf geometry with big integers, straight from the
// definition: a range of w tokens from first, leaf i holding the offsets
// from ceil(i·w/2^d) up to ceil((i+1)·w/2^d).

var two64 = new(big.Int).Lsh(big.NewInt(1), 64)

func oracleShape(rg ring.Range) (first uint64, w *big.Int) {
	if rg.Start == rg.End {
		return 0, two64
	}
	return rg.Start + 1, new(big.Int).SetUint64(rg.End - rg.Start)
}

func oracleStart(w *big.Int, depth, i int) *big.Int {
	d := new(big.Int).Lsh(big.NewInt(1), uint(depth))
	x := new(big.Int).Mul(big.NewInt(int64(i)), w)
	x.Add(x, d).Sub(x, big.NewInt(1))
	return x.Quo(x, d)
}

// oracleLeaf returns the leaf of tok, or -1 if tok is outside rg.
func oracleLeaf(rg ring.Range, depth int, tok uint64) int {
	first, w := oracleShape(rg)
	off := new(big.Int).SetUint64(tok - first)
	if off.Cmp(w) >= 0 {
		return -1
	}
	off.Lsh(off, uint(depth))
	return int(off.Quo(off, w).Int64())
}

// oracleSpans returns the token spans of leaves i..j-1, in token order.
func oracleSpans(rg ring.Range, depth, i, j int) []ring.Span {
	first, w := oracleShape(rg)
	f := new(big.Int).SetUint64(first)
	lo := new(big.Int).Add(oracleStart(w, depth, i), f)
	hi := new(big.Int).Add(oracleStart(w, depth, j), f)
	if new(big.Int).Sub(hi, lo).Cmp(two64) == 0 {
		return []ring.Span{{Lo: 0, Hi: 0}}
	}
	mod := func(x *big.Int) uint64 { return new(big.Int).Mod(x, two64).Uint64() }
	if lo.Cmp(two64) < 0 && hi.Cmp(two64) > 0 {
		return []ring.Span{{Lo: 0, Hi: mod(hi)}, {Lo: mod(lo), Hi: 0}}
	}
	return []ring.Span{{Lo: mod(lo), Hi: mod(hi)}}
}

// oracleDiff returns what Diff must answer when exactly the given leaves differ.
func oracleDiff(rg ring.Range, depth int, leaves []int) []ring.Span {
	leaves = slices.Compact(slices.Sorted(slices.Values(leaves)))
	var out []ring.Span
	for k := 0; k < len(leaves); {
		j := k + 1
		for j < len(leaves) && leaves[j] == leaves[j-1]+1 {
			j++
		}
		out = append(out, oracleSpans(rg, depth, leaves[k], leaves[j-1]+1)...)
		k = j
	}
	slices.SortFunc(out, func(a, b ring.Span) int { return cmp.Compare(a.Lo, b.Lo) })
	return out
}

func TestMerkleDepthClamp(t *testing.T) {
	for _, tc := range []struct {
		rg          ring.Range
		depth, want int
	}{
		{ring.Range{Start: 3, End: 3}, DefaultMerkleDepth, DefaultMerkleDepth},
		{ring.Range{Start: 3, End: 3}, MaxMerkleDepth + 1, MaxMerkleDepth},
		{ring.Range{Start: 3, End: 3}, -1, 0},
		{ring.Range{Start: 0, End: 1 << 20}, 100, MaxMerkleDepth},
		{ring.Range{Start: 0, End: 1024}, 12, 10},
		{ring.Range{Start: 0, End: 1023}, 12, 9},
		{ring.Range{Start: maxTok - 10, End: 10}, 10, 4}, // 21 tokens
		{ring.Range{Start: 5, End: 6}, 10, 0},
		{ring.Range{Start: maxTok, End: 0}, 10, 0},           // token 0 alone
		{ring.Range{Start: 0, End: maxTok}, 16, 16},          // all but token 0
		{ring.Range{Start: maxTok, End: maxTok - 1}, 16, 16}, // all but MaxUint64
	} {
		m := NewMerkle(tc.rg, tc.depth)
		if m.Depth() != tc.want || len(m.Leaves()) != 1<<tc.want {
			t.Errorf("NewMerkle(%s, %d): depth %d with %d leaves, want %d", tc.rg, tc.depth, m.Depth(), len(m.Leaves()), tc.want)
		}
	}
	if got := NewMerkle(ring.Range{Start: 5, End: 5}, 3).Range(); got != (ring.Range{Start: maxTok, End: maxTok}) {
		t.Errorf("a whole-ring range becomes %s, want (ffffffffffffffff, ffffffffffffffff]", got)
	}
}

// TestMerkleLeafGeometry checks leafOf and leafStart against the big
// integer oracle, at each leaf's edges.
func TestMerkleLeafGeometry(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	ranges := append(slices.Clone(merkleRanges), []struct {
		name string
		rg   ring.Range
	}{
		{"all but 0", ring.Range{Start: 0, End: maxTok}},
		{"all but max", ring.Range{Start: maxTok, End: maxTok - 1}},
		{"odd width", ring.Range{Start: 12345, End: 12345 + 1_000_003}},
		{"one token", ring.Range{Start: 41, End: 42}},
	}...)
	for _, rc := range ranges {
		for _, depth := range []int{0, 1, 3, 10, 16} {
			m := NewMerkle(rc.rg, depth)
			first, w := oracleShape(rc.rg)
			n := len(m.leaves)
			leaves := []int{0, n - 1}
			for range 64 {
				leaves = append(leaves, rng.IntN(n))
			}
			for _, i := range leaves {
				s, e := oracleStart(w, m.depth, i), oracleStart(w, m.depth, i+1)
				if got := m.leafStart(i); got != new(big.Int).Mod(s, two64).Uint64() {
					t.Fatalf("%s depth %d: leafStart(%d) = %d, want %s", rc.name, m.depth, i, got, s)
				}
				if e.Cmp(s) <= 0 {
					t.Fatalf("%s depth %d: leaf %d is empty", rc.name, m.depth, i)
				}
				lastOff := new(big.Int).Sub(e, big.NewInt(1)).Uint64()
				for _, off := range []uint64{s.Uint64(), lastOff} {
					tok := first + off
					if got, want := m.leafOf(off), oracleLeaf(rc.rg, m.depth, tok); got != i || want != i {
						t.Fatalf("%s depth %d: token %016x in leaf %d, oracle %d, want %d", rc.name, m.depth, tok, got, want, i)
					}
				}
			}
			if got := m.leafStart(n); got != new(big.Int).Mod(w, two64).Uint64() {
				t.Fatalf("%s depth %d: leafStart(%d) = %d, want the width", rc.name, m.depth, n, got)
			}
		}
	}
}

// TestMerkleEdges places records at the edges of ranges, by hand.
func TestMerkleEdges(t *testing.T) {
	for _, tc := range []struct {
		name  string
		rg    ring.Range
		depth int
		tok   uint64
		leaf  int // -1: outside the range
	}{
		{"ring: token 0", ring.Range{Start: 9, End: 9}, 10, 0, 0},
		{"ring: MaxUint64", ring.Range{Start: 9, End: 9}, 10, maxTok, 1023},
		{"ring: end of leaf 0", ring.Range{Start: 9, End: 9}, 10, 1<<54 - 1, 0},
		{"ring: start of leaf 1", ring.Range{Start: 9, End: 9}, 10, 1 << 54, 1},
		{"ring depth 0", ring.Range{Start: 9, End: 9}, 0, maxTok, 0},
		{"[1000, 2^64): Lo", ring.Range{Start: 999, End: maxTok}, 10, 1000, 0},
		{"[1000, 2^64): MaxUint64", ring.Range{Start: 999, End: maxTok}, 10, maxTok, 1023},
		{"[1000, 2^64): Lo-1", ring.Range{Start: 999, End: maxTok}, 10, 999, -1},
		{"[1000, 2^64): 0", ring.Range{Start: 999, End: maxTok}, 10, 0, -1},
		{"[0, 2^64-1): 0", ring.Range{Start: maxTok, End: maxTok - 1}, 10, 0, 0},
		{"[0, 2^64-1): Hi-1", ring.Range{Start: maxTok, End: maxTok - 1}, 10, maxTok - 1, 1023},
		{"[0, 2^64-1): MaxUint64", ring.Range{Start: maxTok, End: maxTok - 1}, 10, maxTok, -1},
		// One token per leaf: [100, 1124).
		{"unit: Lo", ring.Range{Start: 99, End: 1123}, 10, 100, 0},
		{"unit: Lo+1", ring.Range{Start: 99, End: 1123}, 10, 101, 1},
		{"unit: Hi-1", ring.Range{Start: 99, End: 1123}, 10, 1123, 1023},
		{"unit: Hi", ring.Range{Start: 99, End: 1123}, 10, 1124, -1},
		{"unit: Lo-1", ring.Range{Start: 99, End: 1123}, 10, 99, -1},
		// 21 tokens, 2^64-9 .. 10, in leaves of offsets [0,6) [6,11) [11,16) [16,21).
		{"wrap: Lo", ring.Range{Start: maxTok - 10, End: 10}, 2, maxTok - 9, 0},
		{"wrap: end of leaf 0", ring.Range{Start: maxTok - 10, End: 10}, 2, maxTok - 4, 0},
		{"wrap: start of leaf 1", ring.Range{Start: maxTok - 10, End: 10}, 2, maxTok - 3, 1},
		{"wrap: MaxUint64", ring.Range{Start: maxTok - 10, End: 10}, 2, maxTok, 1},
		{"wrap: 0", ring.Range{Start: maxTok - 10, End: 10}, 2, 0, 1},
		{"wrap: 1", ring.Range{Start: maxTok - 10, End: 10}, 2, 1, 2},
		{"wrap: Hi-1", ring.Range{Start: maxTok - 10, End: 10}, 2, 10, 3},
		{"wrap: Hi", ring.Range{Start: maxTok - 10, End: 10}, 2, 11, -1},
		{"wrap: Lo-1", ring.Range{Start: maxTok - 10, End: 10}, 2, maxTok - 10, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMerkle(tc.rg, tc.depth)
			r := memtable.Record{Version: memtable.Version{TS: 1, Node: 1}, Value: []byte("v")}
			err := m.add(tc.tok, []byte("k"), &r)
			if tc.leaf < 0 {
				if err == nil {
					t.Fatalf("token %016x outside %s was added", tc.tok, tc.rg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for i, l := range m.leaves {
				want := uint64(0)
				if i == tc.leaf {
					want = 1
				}
				if l.Count != want {
					t.Fatalf("leaf %d holds %d records, want the record in leaf %d", i, l.Count, tc.leaf)
				}
			}
		})
	}
}

// TestMerkleAdd feeds real keys through Add, as a scan does.
func TestMerkleAdd(t *testing.T) {
	rg := ring.Range{Start: 1 << 62, End: 1<<63 + 5}
	m := NewMerkle(rg, DefaultMerkleDepth)
	var scan engine.ScanFunc = m.Add // Add is a ScanFunc
	r := memtable.Record{Version: memtable.Version{TS: 3, Node: 4}, Value: []byte("value")}
	want := make([]uint64, len(m.leaves))
	added := 0
	for i := range 2000 {
		key := fmt.Appendf(nil, "user:%d", i)
		tok := engine.Token(key)
		more, err := scan(key, r)
		if leaf := oracleLeaf(rg, m.depth, tok); leaf >= 0 {
			if err != nil || !more {
				t.Fatalf("Add(%q) = %v, %v", key, more, err)
			}
			want[leaf]++
			added++
		} else if err == nil {
			t.Fatalf("Add(%q), token %016x outside %s: no error", key, tok, rg)
		}
	}
	if added < 100 {
		t.Fatalf("only %d of the keys fell in the range", added)
	}
	for i, l := range m.leaves {
		if l.Count != want[i] {
			t.Fatalf("leaf %d: %d records, want %d", i, l.Count, want[i])
		}
	}
	if got := m.Root().Count; got != uint64(added) {
		t.Fatalf("Root().Count = %d, want %d", got, added)
	}
}

func TestMerkleOrderIndependent(t *testing.T) {
	for _, rc := range merkleRanges {
		for _, depth := range []int{0, 4, DefaultMerkleDepth, MaxMerkleDepth} {
			rng := rand.New(rand.NewPCG(uint64(depth), 3))
			recs := randRecs(rng, rc.rg, 1000)
			want := buildMerkle(t, rc.rg, depth, recs)
			for range 3 {
				rng.Shuffle(len(recs), func(i, j int) { recs[i], recs[j] = recs[j], recs[i] })
				got := buildMerkle(t, rc.rg, depth, recs)
				if !sameMerkle(got, want) || got.Root() != want.Root() {
					t.Fatalf("%s depth %d: a different order gives a different tree", rc.name, depth)
				}
				if d, err := got.Diff(want); err != nil || len(d) != 0 {
					t.Fatalf("%s depth %d: Diff of equal trees = %v, %v", rc.name, depth, d, err)
				}
			}
			if want.Root().Count != 1000 {
				t.Fatalf("%s: root count %d", rc.name, want.Root().Count)
			}
		}
	}
}

// TestMerkleDiffOneChange: one replica differs from the other in one
// record; Diff names exactly the leaf of that record's token.
func TestMerkleDiffOneChange(t *testing.T) {
	type change func(rng *rand.Rand, rg ring.Range, recs []merkleRec, k int) ([]merkleRec, uint64)
	set := func(f func(r *memtable.Record)) change {
		return func(_ *rand.Rand, _ ring.Range, recs []merkleRec, k int) ([]merkleRec, uint64) {
			f(&recs[k].rec)
			return recs, recs[k].tok
		}
	}
	changes := []struct {
		name string
		f    change
	}{
		{"longer value", set(func(r *memtable.Record) { r.Tombstone = false; r.Value = append(bytes.Clone(r.Value), 'x') })},
		{"one value byte", set(func(r *memtable.Record) {
			if r.Tombstone, r.Value = false, bytes.Clone(r.Value); len(r.Value) == 0 {
				r.Value = []byte{1}
			} else {
				r.Value[len(r.Value)/2]++
			}
		})},
		{"newer version", set(func(r *memtable.Record) { r.TS++ })},
		{"other node", set(func(r *memtable.Record) { r.Node ^= 1 })},
		{"tombstone flag", set(func(r *memtable.Record) { r.Tombstone, r.Value = !r.Tombstone, nil })},
		{"expiry", set(func(r *memtable.Record) { r.ExpiresAt++ })},
		{"missing key", func(_ *rand.Rand, _ ring.Range, recs []merkleRec, k int) ([]merkleRec, uint64) {
			tok := recs[k].tok
			return slices.Delete(recs, k, k+1), tok
		}},
		{"extra key", func(rng *rand.Rand, rg ring.Range, recs []merkleRec, _ int) ([]merkleRec, uint64) {
			extra := randRecs(rng, rg, 1)[0]
			extra.key = []byte("extra")
			return append(recs, extra), extra.tok
		}},
	}
	rng := rand.New(rand.NewPCG(4, 5))
	for _, rc := range merkleRanges {
		for _, depth := range []int{0, 6, DefaultMerkleDepth} {
			base := randRecs(rng, rc.rg, 1000)
			a := buildMerkle(t, rc.rg, depth, base)
			for _, ch := range changes {
				for _, k := range []int{0, rng.IntN(len(base)), len(base) - 1} {
					other, tok := ch.f(rng, rc.rg, slices.Clone(base), k)
					b := buildMerkle(t, rc.rg, depth, other)
					want := oracleDiff(rc.rg, a.depth, []int{oracleLeaf(rc.rg, a.depth, tok)})
					for _, pair := range [][2]*Merkle{{a, b}, {b, a}} {
						got, err := pair[0].Diff(pair[1])
						if err != nil {
							t.Fatal(err)
						}
						if !slices.Equal(got, want) {
							t.Fatalf("%s depth %d, %s of record %d (token %016x): Diff = %x, want %x", rc.name, a.depth, ch.name, k, tok, got, want)
						}
					}
				}
			}
		}
	}
}

// TestMerkleNoChange: records that store the same bytes hash the same.
func TestMerkleNoChange(t *testing.T) {
	rg := ring.Range{Start: 1, End: 1}
	v := memtable.Version{TS: 10, Node: 2}
	for _, tc := range []struct {
		name string
		a, b memtable.Record
	}{
		{"nil and empty value", memtable.Record{Version: v}, memtable.Record{Version: v, Value: []byte{}}},
		{"tombstone value", memtable.Record{Version: v, Tombstone: true}, memtable.Record{Version: v, Tombstone: true, Value: []byte("dropped")}},
	} {
		a := buildMerkle(t, rg, 10, []merkleRec{{tok: 77, key: []byte("k"), rec: tc.a}})
		b := buildMerkle(t, rg, 10, []merkleRec{{tok: 77, key: []byte("k"), rec: tc.b}})
		if d, err := a.Diff(b); err != nil || len(d) != 0 {
			t.Errorf("%s: Diff = %v, %v, want none", tc.name, d, err)
		}
	}
}

// TestMerkleDiffSpans: which leaves differ decides the spans, merged when
// adjacent and split where they cross MaxUint64. Expected spans by hand.
func TestMerkleDiffSpans(t *testing.T) {
	wrap := ring.Range{Start: maxTok - 10, End: 10} // depth 2: leaves at offsets 0, 6, 11, 16 of 21
	whole := ring.Range{Start: 0, End: 0}           // depth 10: leaves of 2^54 tokens
	const leaf = 1 << 54
	for _, tc := range []struct {
		name   string
		rg     ring.Range
		depth  int
		leaves []int
		want   []ring.Span
	}{
		{"none", whole, 10, nil, nil},
		{"ring: first", whole, 10, []int{0}, []ring.Span{{Lo: 0, Hi: leaf}}},
		{"ring: last", whole, 10, []int{1023}, []ring.Span{{Lo: 1023 * leaf, Hi: 0}}},
		{"ring: adjacent merge", whole, 10, []int{3, 4}, []ring.Span{{Lo: 3 * leaf, Hi: 5 * leaf}}},
		{"ring: gap", whole, 10, []int{3, 5}, []ring.Span{{Lo: 3 * leaf, Hi: 4 * leaf}, {Lo: 5 * leaf, Hi: 6 * leaf}}},
		{"ring: first and last stay apart", whole, 10, []int{0, 1023}, []ring.Span{{Lo: 0, Hi: leaf}, {Lo: 1023 * leaf, Hi: 0}}},
		{"ring: all", whole, 10, seq(1024), []ring.Span{{Lo: 0, Hi: 0}}},
		{"ring depth 0", whole, 0, []int{0}, []ring.Span{{Lo: 0, Hi: 0}}},
		{"wrap: leaf 0", wrap, 2, []int{0}, []ring.Span{{Lo: maxTok - 9, Hi: maxTok - 3}}},
		{"wrap: leaf 1 straddles", wrap, 2, []int{1}, []ring.Span{{Lo: 0, Hi: 1}, {Lo: maxTok - 3, Hi: 0}}},
		{"wrap: leaf 2", wrap, 2, []int{2}, []ring.Span{{Lo: 1, Hi: 6}}},
		{"wrap: leaves 0 and 3", wrap, 2, []int{0, 3}, []ring.Span{{Lo: 6, Hi: 11}, {Lo: maxTok - 9, Hi: maxTok - 3}}},
		{"wrap: leaves 0 and 1", wrap, 2, []int{0, 1}, []ring.Span{{Lo: 0, Hi: 1}, {Lo: maxTok - 9, Hi: 0}}},
		{"wrap: leaves 1 and 2", wrap, 2, []int{1, 2}, []ring.Span{{Lo: 0, Hi: 6}, {Lo: maxTok - 3, Hi: 0}}},
		{"wrap: all", wrap, 2, seq(4), wrap.Spans()},
		{"wrap depth 0", wrap, 0, []int{0}, wrap.Spans()},
		{"top: all", ring.Range{Start: 1 << 63, End: maxTok}, 3, seq(8), []ring.Span{{Lo: 1<<63 + 1, Hi: 0}}},
		{"bottom: all", ring.Range{Start: maxTok, End: 99}, 3, seq(8), []ring.Span{{Lo: 0, Hi: 100}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := NewMerkle(tc.rg, tc.depth), NewMerkle(tc.rg, tc.depth)
			if a.depth != tc.depth {
				t.Fatalf("depth clamped to %d", a.depth)
			}
			for _, i := range tc.leaves {
				b.leaves[i].Count++
			}
			got, err := a.Diff(b)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("Diff = %x, want %x", got, tc.want)
			}
			if o := oracleDiff(tc.rg, tc.depth, tc.leaves); !slices.Equal(o, tc.want) {
				t.Fatalf("the oracle says %x, want %x", o, tc.want)
			}
		})
	}
}

func seq(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

func TestMerkleDiffMismatch(t *testing.T) {
	rg := ring.Range{Start: 100, End: 1 << 40}
	base := NewMerkle(rg, 10)
	for name, other := range map[string]*Merkle{
		"depth":         NewMerkle(rg, 9),
		"start":         NewMerkle(ring.Range{Start: 101, End: 1 << 40}, 10),
		"end":           NewMerkle(ring.Range{Start: 100, End: 1<<40 + 1}, 10),
		"whole ring":    NewMerkle(ring.Range{Start: 5, End: 5}, 10),
		"zero Merkle":   {},
		"coarsened":     base.Coarsen(9),
		"wrapping half": NewMerkle(ring.Range{Start: 1 << 40, End: 100}, 10),
	} {
		if d, err := base.Diff(other); !errors.Is(err, ErrMerkleMismatch) {
			t.Errorf("%s: Diff = %v, %v, want ErrMerkleMismatch", name, d, err)
		}
		if _, err := other.Diff(base); !errors.Is(err, ErrMerkleMismatch) {
			t.Errorf("%s: reverse Diff: %v, want ErrMerkleMismatch", name, err)
		}
	}
	// Whole-ring ranges are all one range.
	if d, err := NewMerkle(ring.Range{Start: 5, End: 5}, 10).Diff(NewMerkle(ring.Range{Start: 9, End: 9}, 10)); err != nil || len(d) != 0 {
		t.Errorf("two whole-ring trees: Diff = %v, %v", d, err)
	}
}

func TestMerkleCoarsen(t *testing.T) {
	rng := rand.New(rand.NewPCG(6, 7))
	for _, rc := range merkleRanges {
		recs := randRecs(rng, rc.rg, 2000)
		full := buildMerkle(t, rc.rg, DefaultMerkleDepth, recs)
		for depth := -1; depth <= full.depth+1; depth++ {
			want := buildMerkle(t, rc.rg, min(max(depth, 0), full.depth), recs)
			if got := full.Coarsen(depth); !sameMerkle(got, want) {
				t.Fatalf("%s: Coarsen(%d) differs from the tree built at that depth", rc.name, depth)
			}
		}
		if root := full.Coarsen(0).leaves[0]; root != full.Root() || root.Count != 2000 {
			t.Fatalf("%s: Coarsen(0) = %+v, Root() = %+v", rc.name, root, full.Root())
		}
	}
}

// merkleSamples are trees for the wire tests.
func TestMerkleAddAllocs(t *testing.T) {
	m := NewMerkle(ring.Range{Start: 1, End: 1}, DefaultMerkleDepth)
	key := []byte("user:000000042")
	r := memtable.Record{Version: memtable.Version{TS: 1, Node: 2}, ExpiresAt: 5, Value: bytes.Repeat([]byte("v"), 300)}
	if allocs := testing.AllocsPerRun(100, func() { _, _ = m.Add(key, r) }); allocs != 0 {
		t.Errorf("Add: %v allocations per record", allocs)
	}
}

// FuzzMerkleDiff builds two replicas' trees that differ in a few records
// and checks Diff against the oracle, and that NewMerkleFrom rebuilds
// both trees from their leaves.
func FuzzMerkleDiff(f *testing.F) {
	f.Add(uint64(7), uint64(7), uint8(10), uint64(1), uint16(100), uint8(3))
	f.Add(uint64(maxTok-10), uint64(10), uint8(2), uint64(2), uint16(50), uint8(2))
	f.Add(uint64(1<<63), uint64(maxTok), uint8(16), uint64(3), uint16(300), uint8(7))
	f.Add(uint64(maxTok), uint64(0), uint8(5), uint64(4), uint16(5), uint8(1))
	f.Fuzz(func(t *testing.T, start, end uint64, depth uint8, seed uint64, n uint16, nchanges uint8) {
		rg := ring.Range{Start: start, End: end}
		rng := rand.New(rand.NewPCG(seed, 12))
		base := randRecs(rng, rg, int(n%500)+1)
		other := slices.Clone(base)
		a := buildMerkle(t, rg, int(depth%(MaxMerkleDepth+2)), base)
		var leaves []int
		for i, k := range rng.Perm(len(base))[:min(int(nchanges%8), len(base))] {
			switch i % 3 {
			case 0:
				other[k].rec.TS++
				leaves = append(leaves, oracleLeaf(rg, a.depth, other[k].tok))
			case 1:
				other[k].rec.Tombstone, other[k].rec.Value = !other[k].rec.Tombstone, nil
				leaves = append(leaves, oracleLeaf(rg, a.depth, other[k].tok))
			default:
				extra := randRecs(rng, rg, 1)[0]
				other = append(other, extra)
				leaves = append(leaves, oracleLeaf(rg, a.depth, extra.tok))
			}
		}
		b := buildMerkle(t, rg, a.depth, other)
		want := oracleDiff(rg, a.depth, leaves)
		got, err := a.Diff(b)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("Diff = %x, want %x", got, want)
		}
		for _, m := range []*Merkle{a, b} {
			m2, err := NewMerkleFrom(m.Range(), slices.Clone(m.Leaves()))
			if err != nil || !sameMerkle(m, m2) {
				t.Fatalf("NewMerkleFrom of the leaves: %v", err)
			}
		}
	})
}

func BenchmarkMerkleAdd(b *testing.B) {
	for _, rc := range []struct {
		name string
		rg   ring.Range
	}{
		{"ring", ring.Range{}},                        // shift
		{"range", ring.Range{Start: 0, End: 1 << 62}}, // division
	} {
		// 4096 keys of 16 bytes, in the range.
		var keys [][]byte
		for i := 0; len(keys) < 4096; i++ {
			k := fmt.Appendf(nil, "user:%011d", i)
			if rc.rg.Contains(engine.Token(k)) {
				keys = append(keys, k)
			}
		}
		for _, vs := range []int{0, 100, 1000} {
			b.Run(fmt.Sprintf("%s/value=%d", rc.name, vs), func(b *testing.B) {
				m := NewMerkle(rc.rg, DefaultMerkleDepth)
				r := memtable.Record{Version: memtable.Version{TS: 1 << 40, Node: 3}, Value: bytes.Repeat([]byte{'v'}, vs)}
				b.ReportAllocs()
				for i := 0; b.Loop(); i++ {
					if _, err := m.Add(keys[i%len(keys)], r); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func BenchmarkMerkleDiff(b *testing.B) {
	rng := rand.New(rand.NewPCG(13, 14))
	for _, depth := range []int{DefaultMerkleDepth, MaxMerkleDepth} {
		for _, differ := range []int{0, 10} {
			b.Run(fmt.Sprintf("depth=%d/differ=%d", depth, differ), func(b *testing.B) {
				rg := ring.Range{Start: 1 << 60, End: 1 << 62}
				recs := randRecs(rng, rg, 20000)
				x := buildMerkle(b, rg, depth, recs)
				for k := range differ {
					recs[k].rec.TS++
				}
				y := buildMerkle(b, rg, depth, recs)
				b.ReportAllocs()
				for b.Loop() {
					if _, err := x.Diff(y); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// TestNewMerkleFrom: the leaves of a tree make the same tree; a number of
// leaves that is not the depth NewMerkle gives the range, a count that
// Root could overflow on, and a hash without records are refused.
func TestNewMerkleFrom(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, rc := range merkleRanges {
		m := buildMerkle(t, rc.rg, 5, randRecs(rng, rc.rg, 40))
		got, err := NewMerkleFrom(rc.rg, slices.Clone(m.Leaves()))
		if err != nil || !sameMerkle(got, m) {
			t.Errorf("%s: NewMerkleFrom(its leaves) = %v, %v", rc.name, got, err)
		}
	}
	tiny := ring.Range{Start: 0, End: 5} // 5 tokens: depth 2 at most
	huge := make([]MerkleNode, 8)
	huge[5] = MerkleNode{Hash: maxTok, Count: maxMerkleCount}
	if _, err := NewMerkleFrom(ring.Range{}, huge); err != nil {
		t.Errorf("a leaf of 2^40 records: %v", err)
	}
	for name, c := range map[string]struct {
		rg     ring.Range
		leaves []MerkleNode
	}{
		"no leaves":         {ring.Range{}, nil},
		"three leaves":      {ring.Range{}, make([]MerkleNode, 3)},
		"deeper than range": {tiny, make([]MerkleNode, 8)},
		"deeper than max":   {ring.Range{}, make([]MerkleNode, 1<<(MaxMerkleDepth+1))},
		"count too big":     {ring.Range{}, []MerkleNode{{Hash: 1, Count: maxMerkleCount + 1}}},
		"hash, no records":  {ring.Range{}, []MerkleNode{{Hash: 1}}},
	} {
		if m, err := NewMerkleFrom(c.rg, c.leaves); err == nil {
			t.Errorf("%s: a tree of depth %d, want an error", name, m.Depth())
		}
	}
}
