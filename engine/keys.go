package engine

import (
	"encoding/binary"

	"github.com/zeebo/xxh3"
)

// Keyspace prefixes. Each keyspace is a contiguous span of the store, so
// one can be scanned, compacted or dropped without touching the others.
const (
	spaceData = 'd' // user records, in token order
	spaceHint = 'h' // hinted handoff queue (see peer)
	spaceMeta = 'm' // node metadata: identity, ring membership
	// spacePaxos holds each key's Paxos acceptor state (see peer), keyed
	// as data keys are (token, then user key), so a token range of it is
	// one span too.
	spacePaxos = 'p'
)

// tokenLen is the length of the ring token in a data key.
const tokenLen = 8

// dataPrefixLen is the length of a data key before the user key.
const dataPrefixLen = 1 + tokenLen

// Token returns the ring token of a user key: its 64-bit xxh3 hash. The ring
// places keys by this token and the engine stores them in its order.
func Token(key []byte) uint64 { return xxh3.Hash(key) }

// appendDataKey appends the storage key of user key k to dst.
func appendDataKey(dst, k []byte) []byte { return appendDataKeyTok(dst, Token(k), k) }

// appendDataKeyTok is appendDataKey for a key whose token is known.
func appendDataKeyTok(dst []byte, tok uint64, k []byte) []byte {
	dst = append(dst, spaceData)
	dst = binary.BigEndian.AppendUint64(dst, tok)
	return append(dst, k...)
}

// appendPaxosKeyTok appends the storage key of user key k's Paxos state.
func appendPaxosKeyTok(dst []byte, tok uint64, k []byte) []byte {
	dst = append(dst, spacePaxos)
	dst = binary.BigEndian.AppendUint64(dst, tok)
	return append(dst, k...)
}

// dataKeyAt returns the first storage key at token t.
func dataKeyAt(t uint64) []byte {
	b := make([]byte, 0, dataPrefixLen)
	b = append(b, spaceData)
	return binary.BigEndian.AppendUint64(b, t)
}

// userKey returns the user key inside storage key k, or false if k is not a
// well-formed data key.
func userKey(k []byte) ([]byte, bool) {
	if len(k) <= dataPrefixLen || k[0] != spaceData {
		return nil, false
	}
	return k[dataPrefixLen:], true
}

// dataKeyToken returns the token stored in data key k.
// REQUIRES: userKey(k) reports k well formed.
func dataKeyToken(k []byte) uint64 { return binary.BigEndian.Uint64(k[1:dataPrefixLen]) }

// spanOf returns the bounds [lo, hi) of keyspace s.
func spanOf(s byte) (lo, hi []byte) { return []byte{s}, []byte{s + 1} }

func metaKey(name string) []byte { return append([]byte{spaceMeta}, name...) }
