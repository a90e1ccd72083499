package sstable

import "testing"

// BenchmarkDigest is the cost of digesting one record, which both ends of
// a transfer pay for every record of the span.
func BenchmarkDigest(b *testing.B) {
	k, v := []byte("d01234567key-00000001"), []byte(value(0))
	d := newDigester()
	b.SetBytes(int64(len(k) + len(v)))
	for b.Loop() {
		d.add(k, v)
	}
}
