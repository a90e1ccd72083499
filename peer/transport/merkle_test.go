package transport

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"

	"github.com/ringkv/ringkv/peer"
	"github.com/ringkv/ringkv/ring"
)

const maxTok = math.MaxUint64

// randMerkle returns a tree of rg at depth (as peer.NewMerkle clamps it)
// whose leaves hold random digests, n of them not empty: the codec
// carries leaves, whatever records made them.
func randMerkle(tb testing.TB, rng *rand.Rand, rg ring.Range, depth, n int) *peer.Merkle {
	tb.Helper()
	leaves := make([]peer.MerkleNode, 1<<peer.NewMerkle(rg, depth).Depth())
	for range n {
		l := &leaves[rng.IntN(len(leaves))]
		l.Count += 1 + rng.Uint64N(1000)
		l.Hash += rng.Uint64()
	}
	m, err := peer.NewMerkleFrom(rg, leaves)
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// withLeaf returns an empty tree of rg at depth with leaf i set to l.
func withLeaf(tb testing.TB, rg ring.Range, depth, i int, l peer.MerkleNode) *peer.Merkle {
	tb.Helper()
	leaves := slices.Clone(peer.NewMerkle(rg, depth).Leaves())
	leaves[i] = l
	m, err := peer.NewMerkleFrom(rg, leaves)
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

func sameMerkle(a, b *peer.Merkle) bool {
	return a.Range() == b.Range() && a.Depth() == b.Depth() && slices.Equal(a.Leaves(), b.Leaves())
}

var (
	plainRange    = ring.Range{Start: 1 << 60, End: 1<<60 + 1<<50}
	wrappingRange = ring.Range{Start: maxTok - 1<<60, End: 1 << 59}
	tinyWrapping  = ring.Range{Start: maxTok - 10, End: 10}
)

func merkleSamples(tb testing.TB) map[string]*peer.Merkle {
	rng := rand.New(rand.NewPCG(8, 9))
	return map[string]*peer.Merkle{
		"empty root":     peer.NewMerkle(ring.Range{}, 0),
		"empty default":  peer.NewMerkle(ring.Range{}, peer.DefaultMerkleDepth),
		"sparse":         randMerkle(tb, rng, plainRange, peer.DefaultMerkleDepth, 20),
		"dense":          randMerkle(tb, rng, plainRange, peer.DefaultMerkleDepth, 20000),
		"max depth":      randMerkle(tb, rng, ring.Range{}, peer.MaxMerkleDepth, 1000),
		"wrapping":       randMerkle(tb, rng, wrappingRange, 7, 300),
		"tiny wrapping":  randMerkle(tb, rng, tinyWrapping, 10, 50),
		"one token":      randMerkle(tb, rng, ring.Range{Start: 5, End: 6}, 10, 3),
		"largest count":  withLeaf(tb, plainRange, 3, 5, peer.MerkleNode{Hash: maxTok, Count: maxMerkleCount}),
		"zero hash":      withLeaf(tb, plainRange, 2, 1, peer.MerkleNode{Hash: 0, Count: 3}),
		"through max":    randMerkle(tb, rng, ring.Range{Start: 1, End: maxTok}, 4, 40),
		"whole as Start": peer.NewMerkle(ring.Range{Start: 42, End: 42}, 1),
	}
}

func TestMerkleRoundTrip(t *testing.T) {
	for name, m := range merkleSamples(t) {
		t.Run(name, func(t *testing.T) {
			msg := AppendMerkle(nil, m)
			got, err := DecodeMerkle(msg)
			if err != nil {
				t.Fatalf("DecodeMerkle: %v", err)
			}
			if !sameMerkle(got, m) {
				t.Fatal("decoded tree differs")
			}
			if again := AppendMerkle(nil, got); !bytes.Equal(again, msg) {
				t.Fatal("re-encoding differs")
			}
			prefixed := AppendMerkle([]byte("prefix"), m)
			if !bytes.Equal(prefixed[6:], msg) || string(prefixed[:6]) != "prefix" {
				t.Fatal("AppendMerkle with a non-empty dst")
			}
		})
	}
	if n := len(AppendMerkle(nil, peer.NewMerkle(ring.Range{}, peer.DefaultMerkleDepth))); n != 2+8+8+1+1024 {
		t.Errorf("an empty default tree takes %d bytes", n)
	}
}

func TestMerkleDecodeRejects(t *testing.T) {
	rng := rand.New(rand.NewPCG(10, 11))
	plain := ring.Range{Start: 100, End: 1 << 40}
	good := AppendMerkle(nil, randMerkle(t, rng, plain, 3, 30))
	head := func(start, end, depth uint64) []byte {
		b := binary.BigEndian.AppendUint64([]byte{'M', 1}, start)
		return uv(binary.BigEndian.AppendUint64(b, end), depth)
	}
	cases := map[string][]byte{
		"nil":                nil,
		"kind only":          {'M'},
		"header only":        {'M', 1},
		"wrong kind":         append([]byte{'A'}, good[1:]...),
		"version 0":          append([]byte{'M', 0}, good[2:]...),
		"version 2":          append([]byte{'M', 2}, good[2:]...),
		"trailing byte":      append(bytes.Clone(good), 0),
		"two joined":         append(bytes.Clone(good), good...),
		"no depth":           head(0, 0, 0)[:18],
		"depth 17":           append(head(0, 0, peer.MaxMerkleDepth+1), make([]byte, 1<<17)...),
		"depth overflow":     append(head(0, 0, 0)[:18], bytes.Repeat([]byte{0xff}, 11)...),
		"deeper than range":  append(head(0, 5, 3), make([]byte, 8)...), // 5 tokens: depth 2 at most
		"one token, depth 1": append(head(5, 6, 1), 0, 0),
		"leaves absent":      head(0, 0, peer.MaxMerkleDepth),
		"one leaf short":     append(head(0, 0, peer.MaxMerkleDepth), make([]byte, 1<<16-1)...),
		"a leaf short":       append(head(0, 0, 3), make([]byte, 7)...),
		"count too big":      uv(head(0, 0, 0), maxMerkleCount+1),
		"count overflow":     append(head(0, 0, 0), bytes.Repeat([]byte{0xff}, 11)...),
		"hash truncated":     append(uv(head(0, 0, 0), 1), 1, 2, 3),
		"hash missing":       uv(head(0, 0, 0), 1),
		"apply message":      AppendApply(nil, wireMuts(1)),
	}
	for i := range len(good) {
		cases[fmt.Sprintf("truncated to %d", i)] = good[:i]
	}
	for name, msg := range cases {
		m, err := DecodeMerkle(msg)
		if err == nil {
			t.Errorf("%s: DecodeMerkle(%q) = a tree of depth %d, want an error", name, clipBytes(msg), m.Depth())
			continue
		}
		if m != nil {
			t.Errorf("%s: a tree with the error", name)
		}
		if !errors.Is(err, peer.ErrBadMessage) {
			t.Errorf("%s: error %v does not match ErrBadMessage", name, err)
		}
	}
}

// TestMerkleDecodeBounded: a header claiming 65536 leaves (1MiB) over a
// few bytes is refused before the leaves are allocated.
func TestMerkleDecodeBounded(t *testing.T) {
	msg := uv(append([]byte{'M', 1}, make([]byte, 16)...), peer.MaxMerkleDepth)
	msg = append(msg, 0, 0, 0)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 10 {
		if _, err := DecodeMerkle(msg); err == nil {
			t.Fatal("no error")
		}
	}
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > 10<<14 {
		t.Errorf("10 decodes of a %d-byte message allocated %d bytes", len(msg), n)
	}
}

// fuzzSeedsMerkle are valid Merkle messages, and a few near misses.
func fuzzSeedsMerkle(tb testing.TB) [][]byte {
	// Small trees: the fuzzer minimizes each new input, slowly for large ones.
	var seeds [][]byte
	samples := merkleSamples(tb)
	for _, name := range []string{"empty root", "tiny wrapping", "one token", "largest count", "zero hash", "whole as Start"} {
		seeds = append(seeds, AppendMerkle(nil, samples[name]))
	}
	rng := rand.New(rand.NewPCG(17, 18))
	for _, rg := range []ring.Range{{Start: 7, End: 7}, plainRange, wrappingRange, tinyWrapping} {
		seeds = append(seeds, AppendMerkle(nil, randMerkle(tb, rng, rg, 3, 5)))
	}
	return append(seeds,
		[]byte{'M', 1},
		append([]byte{'M', 1}, make([]byte, 18)...),               // whole ring, depth 0, one empty leaf
		append(append([]byte{'M', 1}, make([]byte, 16)...), 1, 0), // depth 1, one leaf short
		// Non-minimal varint depth (0x81 0x00 = 1): valid, not canonical.
		append(append([]byte{'M', 1}, make([]byte, 16)...), 0x81, 0x00, 0, 0),
	)
}

func FuzzDecodeMerkle(f *testing.F) {
	for _, s := range fuzzSeedsMerkle(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		orig := bytes.Clone(msg)
		m, err := DecodeMerkle(msg)
		if !bytes.Equal(msg, orig) {
			t.Fatal("DecodeMerkle modified its input")
		}
		if err != nil {
			if !errors.Is(err, peer.ErrBadMessage) {
				t.Fatalf("error %v does not match ErrBadMessage", err)
			}
			return
		}
		if d := m.Depth(); d < 0 || peer.NewMerkle(m.Range(), d).Depth() != d || len(m.Leaves()) != 1<<d {
			t.Fatalf("decoded depth %d with %d leaves over %s", d, len(m.Leaves()), m.Range())
		}
		if len(msg) < len(m.Leaves()) {
			t.Fatalf("%d leaves from %d bytes", len(m.Leaves()), len(msg))
		}
		for i, l := range m.Leaves() {
			if l.Count > maxMerkleCount || (l.Count == 0 && l.Hash != 0) {
				t.Fatalf("leaf %d: %+v", i, l)
			}
		}
		if d, err := m.Diff(m); err != nil || len(d) != 0 {
			t.Fatalf("Diff with itself = %v, %v", d, err)
		}
		if !sameMerkle(m.Coarsen(m.Depth()), m) {
			t.Fatal("Coarsen to its own depth changes the tree")
		}
		again := AppendMerkle(nil, m)
		m2, err := DecodeMerkle(again)
		if err != nil {
			t.Fatalf("re-encoded tree does not decode: %v", err)
		}
		if !sameMerkle(m, m2) {
			t.Fatal("re-encoded tree decodes differently")
		}
		if !bytes.Equal(AppendMerkle(nil, m2), again) {
			t.Fatal("encoding is not a fixed point")
		}
	})
}

func BenchmarkDecodeMerkle(b *testing.B) {
	rng := rand.New(rand.NewPCG(15, 16))
	rg := ring.Range{Start: 1 << 60, End: 1 << 62}
	msg := AppendMerkle(nil, randMerkle(b, rng, rg, peer.DefaultMerkleDepth, 20000))
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeMerkle(msg); err != nil {
			b.Fatal(err)
		}
	}
}
