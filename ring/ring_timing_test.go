package ring

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

var sink []string

// BenchmarkOwners is the request path: one lookup per read or write.
func BenchmarkOwners(b *testing.B) {
	for _, n := range []int{3, 16, 64} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			r := New(nodeIDs(n), DefaultVNodes, 3)
			rng := rand.New(rand.NewPCG(1, 2))
			toks := make([]uint64, 1024)
			for i := range toks {
				toks[i] = rng.Uint64()
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				sink = r.Owners(toks[i&1023])
			}
		})
	}
}

// BenchmarkOwnersParallel checks that readers share the ring without
// contention: there is nothing to contend on.
func BenchmarkOwnersParallel(b *testing.B) {
	r := New(nodeIDs(16), DefaultVNodes, 3)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var t uint64
		var s []string
		for pb.Next() {
			t += 0x9e3779b97f4a7c15
			s = r.Owners(t)
		}
		_ = s
	})
}

// BenchmarkKeyOwners adds hashing a 16-byte key.
func BenchmarkKeyOwners(b *testing.B) {
	r := New(nodeIDs(16), DefaultVNodes, 3)
	keys := randomKeys(rand.New(rand.NewPCG(1, 2)), 1024)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		sink = r.KeyOwners(keys[i&1023])
	}
}

// BenchmarkNew is the cost of a membership change.
func BenchmarkNew(b *testing.B) {
	for _, n := range []int{3, 16, 64} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			nodes := nodeIDs(n)
			b.ReportAllocs()
			for range b.N {
				_ = New(nodes, DefaultVNodes, 3)
			}
		})
	}
}

// BenchmarkDiff is the planning cost of one node joining.
func BenchmarkDiff(b *testing.B) {
	prev, next := New(nodeIDs(15), DefaultVNodes, 3), New(nodeIDs(16), DefaultVNodes, 3)
	b.ReportAllocs()
	for range b.N {
		_ = Diff(prev, next)
	}
}
