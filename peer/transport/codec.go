package transport

import (
	"encoding/binary"
	"fmt"
	"math/bits"

	"github.com/ringkv/ringkv/memtable"
	"github.com/ringkv/ringkv/peer"
)

// Internode messages are small binary frames: a kind byte, a format
// version byte, then uvarint-length-prefixed fields. Records travel in
// their storage encoding (memtable.Record), so a replica stores exactly the
// bytes the coordinator stamped, and every record is checked on arrival.
//
//	apply:     'A' 1 | n | n × (len key | key | len rec | rec)
//	scan:      'S' 1 | limit | len prefix | prefix | len after | after
//	scan page: 'P' 1 | more (0/1) | n | n × (len key | key | len rec | rec)
//	read:      'R' 1 | n | n × (len key | key)
//	records:   'V' 1 | n | n × (len rec | rec)    (len 0: the node has none)
const (
	kindApply    = 'A'
	kindScan     = 'S'
	kindScanPage = 'P'
	kindRead     = 'R'
	kindRecords  = 'V'
	wireV1       = 1

	// MaxBatch is the most mutations one apply message carries.
	MaxBatch = 4096
	// MaxReadBatch is the most keys one read message asks for: with
	// values up to --max-value-size, it bounds the answer too.
	MaxReadBatch = 64
)

func appendBytes(dst, b []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

func appendMutations(dst []byte, ms []peer.Mutation) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(ms)))
	for _, m := range ms {
		dst = appendBytes(dst, m.Key)
		dst = appendBytes(dst, m.Record)
	}
	return dst
}

// AppendApply appends the apply message carrying ms to dst.
func AppendApply(dst []byte, ms []peer.Mutation) []byte {
	return appendMutations(append(dst, kindApply, wireV1), ms)
}

// AppendScan appends the scan message for q to dst.
func AppendScan(dst []byte, q peer.LocalScan) []byte {
	dst = append(dst, kindScan, wireV1)
	dst = binary.AppendUvarint(dst, uint64(q.Limit))
	dst = appendBytes(dst, q.Prefix)
	return appendBytes(dst, q.After)
}

// AppendScanPage appends the scan answer p to dst.
func AppendScanPage(dst []byte, p peer.LocalPage) []byte {
	more := byte(0)
	if p.More {
		more = 1
	}
	return appendMutations(append(dst, kindScanPage, wireV1, more), p.Items)
}

// AppendRead appends the read message asking for keys to dst.
func AppendRead(dst []byte, keys [][]byte) []byte {
	dst = binary.AppendUvarint(append(dst, kindRead, wireV1), uint64(len(keys)))
	for _, k := range keys {
		dst = appendBytes(dst, k)
	}
	return dst
}

// AppendRecordsHeader starts the answer to a read of n keys; append each
// record, in the order of the keys, with AppendRecord.
func AppendRecordsHeader(dst []byte, n int) []byte {
	return binary.AppendUvarint(append(dst, kindRecords, wireV1), uint64(n))
}

// AppendRecord appends one encoded record of a read answer to dst; nil or
// empty says the node has none.
func AppendRecord(dst, rec []byte) []byte { return appendBytes(dst, rec) }

// Marks that lead a read answer for a key whose range the node is still
// pulling. No encoded record starts with either (they start with their
// format, 1).
const (
	// pendingMark: then the node's record of the key, if it has one. Sent
	// by nodes that did not name the range's old owners; still decoded.
	pendingMark = 0xff
	// pendingFromMark: then the old owners (a count, then each id), then
	// the node's record of the key, if it has one.
	pendingFromMark = 0xfe
	// failedMark: then an error message, for a key the node could not
	// read (a damaged file): the coordinator asks another replica for it,
	// and the batch's other keys keep their answers. A node older than
	// the mark fails the whole batch on it, as it failed the whole batch
	// on the error before.
	failedMark = 0xfd
)

// maxFailedMsg bounds the error message of a failed answer.
const maxFailedMsg = 1024

// AppendFailed appends, in place of a record, the answer for a key the
// node could not read, with why (cut to maxFailedMsg bytes).
func AppendFailed(dst []byte, msg string) []byte {
	if len(msg) > maxFailedMsg {
		msg = msg[:maxFailedMsg]
	}
	dst = binary.AppendUvarint(dst, uint64(1+len(msg)))
	dst = append(dst, failedMark)
	return append(dst, msg...)
}

// IsFailed reports whether a record of DecodeRecords is a failed answer;
// its message is FailedMessage(rec).
func IsFailed(rec []byte) bool { return len(rec) >= 1 && rec[0] == failedMark }

// FailedMessage returns the message of a failed answer (IsFailed).
func FailedMessage(rec []byte) string { return string(rec[1:]) }

// maxPendingFrom bounds the old owners in a pending answer (--replicas is
// at most 16).
const maxPendingFrom = 64

// AppendPending appends, in place of a record, the answer of a node still
// pulling the key's range from its old owners from: what it holds of the
// key (rec, possibly empty), marked as possibly incomplete.
func AppendPending(dst, rec []byte, from []string) []byte {
	// Written straight into dst, its length first: no temporary copy.
	size := 1 + uvarintLen(len(from)) + len(rec)
	for _, id := range from {
		size += uvarintLen(len(id)) + len(id)
	}
	dst = binary.AppendUvarint(dst, uint64(size))
	dst = append(dst, pendingFromMark)
	dst = binary.AppendUvarint(dst, uint64(len(from)))
	for _, id := range from {
		dst = binary.AppendUvarint(dst, uint64(len(id)))
		dst = append(dst, id...)
	}
	return append(dst, rec...)
}

// uvarintLen is the length of n's uvarint encoding.
func uvarintLen(n int) int { return (bits.Len64(uint64(n)|1) + 6) / 7 }

// IsPending reports whether a record of DecodeRecords is a pending answer.
func IsPending(rec []byte) bool {
	return len(rec) >= 1 && (rec[0] == pendingMark || rec[0] == pendingFromMark)
}

// DecodePending splits a pending answer (IsPending) into the record it
// carries (nil if none) and the old owners it names (nil if none).
func DecodePending(rec []byte) (inner []byte, from []string, err error) {
	if len(rec) == 0 || !IsPending(rec) {
		return nil, nil, fmt.Errorf("%w: not a pending answer", peer.ErrBadMessage)
	}
	r := reader{b: rec[1:]}
	if rec[0] == pendingFromMark {
		n := r.uvarint(maxPendingFrom, "old owner count")
		for i := uint64(0); i < n && r.err == nil; i++ {
			if id := r.bytes(peer.MaxNodeIDLen, "old owner"); r.err == nil {
				from = append(from, string(id))
			}
		}
	}
	if r.err != nil {
		return nil, nil, r.err
	}
	if len(r.b) > 0 {
		inner = r.b
	}
	return inner, from, nil
}

// DecodeRead parses a read message; the keys alias b.
func DecodeRead(b []byte) ([][]byte, error) {
	r := reader{b: b}
	r.header(kindRead)
	n := r.uvarint(MaxReadBatch, "count")
	// Each key needs 2 bytes at least: don't trust n for the allocation.
	keys := make([][]byte, 0, min(n, uint64(len(r.b)/2)))
	for i := uint64(0); i < n && r.err == nil; i++ {
		k := r.bytes(peer.MaxKeySize, "key")
		if r.err == nil && len(k) == 0 {
			r.fail("empty key")
		}
		keys = append(keys, k)
	}
	r.end()
	if r.err == nil && len(keys) == 0 {
		r.fail("no keys")
	}
	return keys, r.err
}

// DecodeRecords parses the answer to a read of n keys: one record per key,
// nil where the node has none, a pending answer (IsPending, split by
// DecodePending), or a failed one (IsFailed). The records alias b; each has been checked to decode.
func DecodeRecords(b []byte, n int) ([][]byte, error) {
	r := reader{b: b}
	r.header(kindRecords)
	if got := r.uvarint(MaxReadBatch, "count"); r.err == nil && got != uint64(n) {
		r.fail("%d records for %d keys", got, n)
	}
	recs := make([][]byte, 0, n)
	for i := 0; i < n && r.err == nil; i++ {
		rec := r.bytes(maxRecord, "record")
		if len(rec) == 0 {
			rec = nil
		} else if IsFailed(rec) {
			if len(rec)-1 > maxFailedMsg {
				r.fail("record %d: failed answer of %d bytes", i, len(rec)-1)
			}
		} else if IsPending(rec) {
			// Kept as is, for the caller to map to a PendingError.
			inner, _, err := DecodePending(rec)
			if err != nil {
				r.err = fmt.Errorf("record %d: %w", i, err) // err names peer.ErrBadMessage already
			} else if inner != nil {
				if _, err := memtable.Decode(inner); err != nil {
					r.fail("record %d: %v", i, err)
				}
			}
		} else if _, err := memtable.Decode(rec); err != nil {
			r.fail("record %d: %v", i, err)
		}
		recs = append(recs, rec)
	}
	r.end()
	return recs, r.err
}

// reader decodes one message; the first error sticks.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s", peer.ErrBadMessage, fmt.Sprintf(format, args...))
	}
}

func (r *reader) header(kind byte) {
	if len(r.b) < 2 || r.b[0] != kind || r.b[1] != wireV1 {
		r.fail("want a %q v%d message", kind, wireV1)
		return
	}
	r.b = r.b[2:]
}

func (r *reader) uvarint(max uint64, what string) uint64 {
	return r.uvarintOf(max, what, "")
}

// uvarintOf is uvarint of a field named what+suffix, a name built only
// for the error: concatenating it for every field cost two allocations a
// mutation on the replica's write path.
func (r *reader) uvarintOf(max uint64, what, suffix string) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 || v > max {
		r.fail("bad %s%s", what, suffix)
		return 0
	}
	r.b = r.b[n:]
	return v
}

// bytes returns the next length-prefixed field, aliasing the message.
func (r *reader) bytes(max int, what string) []byte {
	n := r.uvarintOf(uint64(max), what, " length")
	if r.err != nil {
		return nil
	}
	if uint64(len(r.b)) < n {
		r.fail("%s truncated", what)
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) end() {
	if r.err == nil && len(r.b) != 0 {
		r.fail("%d trailing bytes", len(r.b))
	}
}

// maxRecord bounds one encoded record: the largest value ringkv accepts
// (--max-value-size is capped at 1GiB) plus the header.
const maxRecord = 1<<30 + 64

func (r *reader) mutations(max uint64) []peer.Mutation {
	n := r.uvarint(max, "count")
	if r.err != nil {
		return nil
	}
	// Each mutation needs at least 2 bytes: don't trust n for the allocation.
	ms := make([]peer.Mutation, 0, min(n, uint64(len(r.b)/2)))
	for i := uint64(0); i < n && r.err == nil; i++ {
		k := r.bytes(peer.MaxKeySize, "key")
		rec := r.bytes(maxRecord, "record")
		if r.err != nil {
			break
		}
		if len(k) == 0 {
			r.fail("empty key")
			break
		}
		if _, err := memtable.Decode(rec); err != nil {
			r.fail("record of %q: %v", k, err)
			break
		}
		ms = append(ms, peer.Mutation{Key: k, Record: rec})
	}
	return ms
}

// DecodeApply parses an apply message. The mutations alias b; every record
// has been checked to decode.
func DecodeApply(b []byte) ([]peer.Mutation, error) {
	r := reader{b: b}
	r.header(kindApply)
	ms := r.mutations(MaxBatch)
	r.end()
	return ms, r.err
}

// DecodeScan parses a scan message; its slices alias b.
func DecodeScan(b []byte) (peer.LocalScan, error) {
	r := reader{b: b}
	r.header(kindScan)
	q := peer.LocalScan{Limit: int(r.uvarint(peer.MaxScanLimit, "limit"))}
	q.Prefix = r.bytes(peer.MaxKeySize, "prefix")
	q.After = r.bytes(peer.MaxKeySize, "after")
	r.end()
	if r.err == nil && q.Limit == 0 {
		r.fail("zero limit")
	}
	return q, r.err
}

// DecodeScanPage parses a scan answer; its slices alias b.
func DecodeScanPage(b []byte) (peer.LocalPage, error) {
	r := reader{b: b}
	r.header(kindScanPage)
	var p peer.LocalPage
	if r.err == nil {
		if len(r.b) == 0 || r.b[0] > 1 {
			r.fail("bad more flag")
		} else {
			p.More = r.b[0] == 1
			r.b = r.b[1:]
		}
	}
	p.Items = r.mutations(peer.MaxScanLimit)
	r.end()
	return p, r.err
}
