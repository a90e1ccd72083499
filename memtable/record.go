// Package memtable owns ringkv's write path into Pebble's memtable: the
// on-disk record format, the last-writer-wins merge operator, the hybrid
// logical clock that stamps writes, and memtable sizing.
//
// Every value ringkv stores is a Record: an HLC timestamp, the tag of the node
// that wrote it, a tombstone flag, an optional expiry and the value bytes.
// A Record is stored as a Pebble SET when the engine can prove it is the
// newest of its key, and as a Pebble MERGE otherwise; the merge operator
// keeps the newest by (timestamp, node). Either way a write never reads
// first, and an old write replayed late can never overwrite a newer one or
// resurrect a delete.
package memtable

import (
	"encoding/binary"
	"errors"
)

// Record layout, version 1 (all integers big-endian):
//
//	+---------+-------+-----------+----------+--------------------+---------+
//	| version | flags | timestamp | node tag | expiry (if flagExp) | value   |
//	| 1 byte  | 1 byte| 8 bytes   | 8 bytes  | 8 bytes             | rest    |
//	+---------+-------+-----------+----------+--------------------+---------+
//
// The fixed header keeps decoding branch-free on the read path; the version
// byte lets a later format coexist with this one.
const (
	formatV1 = 1

	flagTombstone = 1 << 0
	flagExpiry    = 1 << 1
	knownFlags    = flagTombstone | flagExpiry

	headerLen = 18
	expiryLen = 8
)

// ErrCorrupt reports bytes that are not a valid record.
var ErrCorrupt = errors.New("memtable: corrupt record")

// Version identifies one write: its HLC timestamp and the tag of the node that
// coordinated it. Versions are totally ordered; the greater one wins. Its
// text form (the X-Ringkv-Version header) is peer/kv.Version's, which has
// the same layout.
type Version struct {
	TS   uint64 // hybrid logical clock timestamp (see Clock)
	Node uint64 // NodeTag of the writing node
}

// Less reports whether v is older than w.
func (v Version) Less(w Version) bool {
	if v.TS != w.TS {
		return v.TS < w.TS
	}
	return v.Node < w.Node
}

// IsZero reports whether v is the zero Version (no write).
func (v Version) IsZero() bool { return v.TS == 0 && v.Node == 0 }

// Record is one stored version of a key. A decoded Record's Value aliases
// the bytes it was decoded from.
type Record struct {
	Version
	Tombstone bool
	// ExpiresAt is the wall time, in Unix milliseconds, after which the
	// record reads as absent; 0 means never.
	ExpiresAt int64
	Value     []byte
}

// Expired reports whether r has an expiry at or before nowMillis.
func (r *Record) Expired(nowMillis int64) bool {
	return r.ExpiresAt != 0 && r.ExpiresAt <= nowMillis
}

// Live reports whether r is a value that reads as present at nowMillis.
func (r *Record) Live(nowMillis int64) bool { return !r.Tombstone && !r.Expired(nowMillis) }

// EncodedLen returns the length of r's encoding.
func (r *Record) EncodedLen() int {
	n := headerLen + len(r.Value)
	if r.ExpiresAt != 0 {
		n += expiryLen
	}
	return n
}

// Append appends the encoding of r to dst and returns the result.
// A tombstone's value is not encoded.
func (r *Record) Append(dst []byte) []byte {
	var flags byte
	if r.Tombstone {
		flags |= flagTombstone
	}
	if r.ExpiresAt != 0 {
		flags |= flagExpiry
	}
	dst = append(dst, formatV1, flags)
	dst = binary.BigEndian.AppendUint64(dst, r.TS)
	dst = binary.BigEndian.AppendUint64(dst, r.Node)
	if r.ExpiresAt != 0 {
		dst = binary.BigEndian.AppendUint64(dst, uint64(r.ExpiresAt))
	}
	if !r.Tombstone {
		dst = append(dst, r.Value...)
	}
	return dst
}

// Decode parses b into a Record whose Value aliases b.
func Decode(b []byte) (Record, error) {
	var r Record
	if len(b) < headerLen || b[0] != formatV1 || b[1]&^knownFlags != 0 {
		return r, ErrCorrupt
	}
	flags := b[1]
	r.TS = binary.BigEndian.Uint64(b[2:])
	r.Node = binary.BigEndian.Uint64(b[10:])
	r.Tombstone = flags&flagTombstone != 0
	rest := b[headerLen:]
	if flags&flagExpiry != 0 {
		if len(rest) < expiryLen {
			return r, ErrCorrupt
		}
		exp := binary.BigEndian.Uint64(rest)
		if exp == 0 || exp > 1<<62 {
			return r, ErrCorrupt
		}
		r.ExpiresAt = int64(exp)
		rest = rest[expiryLen:]
	}
	if r.Tombstone {
		if len(rest) != 0 {
			return r, ErrCorrupt
		}
		rest = nil
	}
	r.Value = rest
	return r, nil
}

// DecodeVersion reads only the version of an encoded record, for comparing
// records without decoding them.
func DecodeVersion(b []byte) (Version, error) {
	if len(b) < headerLen || b[0] != formatV1 {
		return Version{}, ErrCorrupt
	}
	return Version{TS: binary.BigEndian.Uint64(b[2:]), Node: binary.BigEndian.Uint64(b[10:])}, nil
}

// Newer reports whether encoded record a beats encoded record b under
// last-writer-wins: the greater (timestamp, node) wins; on an exact tie (the
// same write seen twice, or a corrupt duplicate) a tombstone wins, then the
// greater bytes, so every replica picks the same record.
func Newer(a, b []byte) (bool, error) {
	va, err := DecodeVersion(a)
	if err != nil {
		return false, err
	}
	vb, err := DecodeVersion(b)
	if err != nil {
		return false, err
	}
	if va != vb {
		return vb.Less(va), nil
	}
	ta, tb := a[1]&flagTombstone != 0, b[1]&flagTombstone != 0
	if ta != tb {
		return ta, nil
	}
	return string(a) > string(b), nil
}
