package ring_test

import (
	"fmt"

	"github.com/ringkv/ringkv/ring"
)

func Example() {
	r := ring.New([]string{"node-1", "node-2", "node-3", "node-4"}, ring.DefaultVNodes, 3)
	fmt.Println(r.KeyOwners([]byte("user:42")))

	// node-5 joins: Diff lists the ranges whose owners change, which is
	// what must be copied before the new ring takes over. With N=3 of 5
	// nodes, node-5 becomes an owner of about 3/5 of the token space.
	next := ring.New([]string{"node-1", "node-2", "node-3", "node-4", "node-5"}, ring.DefaultVNodes, 3)
	var share float64
	for _, mv := range ring.Diff(r, next) {
		share += mv.Fraction()
	}
	fmt.Printf("%.2f of the token space changes owners\n", share)
	fmt.Printf("node-5 is primary for %.2f\n", next.Ownership()["node-5"])
	// Output:
	// [node-4 node-3 node-1]
	// 0.59 of the token space changes owners
	// node-5 is primary for 0.21
}
