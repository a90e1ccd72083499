package transport

import (
	"encoding/binary"

	"github.com/ringkv/ringkv/peer"
	"github.com/ringkv/ringkv/ring"
)

// The Merkle message (kind byte, then fixed-width big-endian tokens and
// hashes, which are random and would take 10 bytes as uvarints):
//
//	merkle:    'M' 1 | start (8) | end (8) | depth | 2^depth × (count | hash (8), only when count > 0)
//
// An empty leaf is one byte. The leaves' hashes are peer's recordHash
// sums: changing that hash needs a new kind byte, or replicas would see
// every leaf differ.
const kindMerkle = 'M'

// maxMerkleCount bounds a decoded leaf's count, as peer.NewMerkleFrom
// does (a trillion records): checked while reading, so that a bad count
// fails as a malformed message.
const maxMerkleCount = 1 << 40

// AppendMerkle appends the Merkle message carrying t to dst.
func AppendMerkle(dst []byte, t *peer.Merkle) []byte {
	rg := t.Range()
	dst = append(dst, kindMerkle, wireV1)
	dst = binary.BigEndian.AppendUint64(dst, rg.Start)
	dst = binary.BigEndian.AppendUint64(dst, rg.End)
	dst = binary.AppendUvarint(dst, uint64(t.Depth()))
	for _, l := range t.Leaves() {
		dst = binary.AppendUvarint(dst, l.Count)
		if l.Count != 0 {
			dst = binary.BigEndian.AppendUint64(dst, l.Hash)
		}
	}
	return dst
}

// DecodeMerkle parses a Merkle message. It rejects a depth greater than
// peer.NewMerkle would give the range, and a leaf with more than 2^40
// records; it allocates at most 16 bytes per byte of b.
func DecodeMerkle(b []byte) (*peer.Merkle, error) {
	r := reader{b: b}
	r.header(kindMerkle)
	start := merkleUint64(&r, "range start")
	end := merkleUint64(&r, "range end")
	depth := r.uvarint(peer.MaxMerkleDepth, "depth")
	if r.err != nil {
		return nil, r.err
	}
	// Each leaf takes a byte at least: don't trust depth for the allocation.
	n := 1 << depth
	if len(r.b) < n {
		r.fail("%d leaves in %d bytes", n, len(r.b))
		return nil, r.err
	}
	leaves := make([]peer.MerkleNode, n)
	for i := range leaves {
		if c := r.uvarint(maxMerkleCount, "count"); c != 0 {
			leaves[i] = peer.MerkleNode{Hash: merkleUint64(&r, "hash"), Count: c}
		}
	}
	r.end()
	if r.err != nil {
		return nil, r.err
	}
	t, err := peer.NewMerkleFrom(ring.Range{Start: start, End: end}, leaves)
	if err != nil {
		r.fail("%v", err)
		return nil, r.err
	}
	return t, nil
}

// merkleUint64 reads a fixed-width big-endian uint64 field.
func merkleUint64(r *reader, what string) uint64 {
	if r.err != nil {
		return 0
	}
	if len(r.b) < 8 {
		r.fail("%s truncated", what)
		return 0
	}
	v := binary.BigEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}
