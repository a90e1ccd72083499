// Package batchwire is the binary framing of POST /v1/batch (Content-Type
// application/x-ringkv-batch): the request a client sends and the answer a
// node gives, item by item. The node (httpd) and the Go client both use
// it, so the format is written once. It is pure and imports nothing of
// ringkv but peer/kv, the API's vocabulary (its Version): decoders take
// untrusted bytes and answer a malformed body with an error, never a
// panic.
//
// A request is the magic "RKB\x01", a uvarint item count, then per item:
//
//	op byte           1 get, 2 put, 3 delete
//	consistency byte  0 the batch's default, 1 one, 2 quorum, 3 all, 4 serial
//	condition byte    0 none, 1 if-version (16 version bytes follow),
//	                  2 if-absent, 3 if-present
//	[version]         TS then Node, uint64 big-endian each (if-version only)
//	[ttl]             uvarint milliseconds, 0 for none (put only)
//	key               uvarint length, bytes
//	[value]           uvarint length, bytes (put only)
//
// An answer is the magic, a uvarint result count equal to the item count,
// then per result, in item order:
//
//	status   uvarint HTTP status of the item (200, 204, 404, 412, 503...)
//	flags    byte: bit 0 unprocessed, bit 1 exists, bit 2 outcome unknown
//	[version] 16 bytes when status is 200 or 204, or 412 with exists set
//	[value]  uvarint length, bytes (200 only)
//	[message] uvarint length, bytes (status >= 400 other than 404 and 412)
package batchwire

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/ringkv/ringkv/peer/kv"
)

// ContentType marks a body in this framing.
const ContentType = "application/x-ringkv-batch"

// Magic opens every request and answer; its last byte is the version of
// the framing.
const Magic = "RKB\x01"

// VersionLen is the size of an encoded version.
const VersionLen = 16

// Op is what one item does.
type Op byte

// The operations.
const (
	OpGet    Op = 1
	OpPut    Op = 2
	OpDelete Op = 3
)

// Consistency is an item's consistency; ConsistencyDefault takes the
// batch's.
type Consistency byte

// The consistency levels.
const (
	ConsistencyDefault Consistency = 0
	ConsistencyOne     Consistency = 1
	ConsistencyQuorum  Consistency = 2
	ConsistencyAll     Consistency = 3
	ConsistencySerial  Consistency = 4
)

// Cond is an item's condition.
type Cond byte

// The conditions.
const (
	CondNone      Cond = 0
	CondIfVersion Cond = 1
	CondIfAbsent  Cond = 2
	CondIfPresent Cond = 3
)

// Flags qualify a result.
type Flags byte

// The flags.
const (
	// FlagUnprocessed: the item was certainly not applied (or is safe to
	// repeat); the client may retry it.
	FlagUnprocessed Flags = 1 << 0
	// FlagExists, on a 412: the key exists and the result carries its
	// current version.
	FlagExists Flags = 1 << 1
	// FlagOutcomeUnknown: a conditional write that may or may not have
	// been applied; read the key serially to learn which.
	FlagOutcomeUnknown Flags = 1 << 2
)

// Version is a record version (HLC timestamp and node tag): kv's, whose
// text form is the API's (X-Ringkv-Version).
type Version = kv.Version

// Item is one operation of a request. Decoded Keys and Values alias the
// decoded buffer.
type Item struct {
	Op          Op
	Consistency Consistency
	Cond        Cond
	Version     Version // the expected version of CondIfVersion
	TTLMillis   uint64  // a put's time to live; 0 for none
	Key         []byte
	Value       []byte // a put's
}

// Result is one item's answer. Decoded Values and Messages alias the
// decoded buffer.
type Result struct {
	Status  int
	Flags   Flags
	Version Version // of 200 and 204, and of a 412 with FlagExists
	Value   []byte  // of a 200
	Message []byte  // of a status >= 400 other than 404 and 412
}

// ErrMalformed is matched by every decoding error but ErrTooMany.
var ErrMalformed = errors.New("malformed batch")

// ErrTooMany is matched by the error of a request with more items than
// the decoder's limit; nothing past the count was read.
var ErrTooMany = errors.New("too many batch items")

func hasVersion(status int, f Flags) bool {
	return status == 200 || status == 204 || (status == 412 && f&FlagExists != 0)
}

func hasMessage(status int) bool { return status >= 400 && status != 404 && status != 412 }

// AppendHeader appends the magic and the item (or result) count.
func AppendHeader(dst []byte, n int) []byte {
	dst = append(dst, Magic...)
	return binary.AppendUvarint(dst, uint64(n))
}

// AppendItem appends one request item.
func AppendItem(dst []byte, it *Item) []byte {
	dst = append(dst, byte(it.Op), byte(it.Consistency), byte(it.Cond))
	if it.Cond == CondIfVersion {
		dst = appendVersion(dst, it.Version)
	}
	if it.Op == OpPut {
		dst = binary.AppendUvarint(dst, it.TTLMillis)
	}
	dst = binary.AppendUvarint(dst, uint64(len(it.Key)))
	dst = append(dst, it.Key...)
	if it.Op == OpPut {
		dst = binary.AppendUvarint(dst, uint64(len(it.Value)))
		dst = append(dst, it.Value...)
	}
	return dst
}

// AppendRequest appends a whole request of items.
func AppendRequest(dst []byte, items []Item) []byte {
	dst = AppendHeader(dst, len(items))
	for i := range items {
		dst = AppendItem(dst, &items[i])
	}
	return dst
}

// AppendResult appends one result. A status that carries no version,
// value or message has them left out, whatever r holds.
func AppendResult(dst []byte, r *Result) []byte {
	dst = binary.AppendUvarint(dst, uint64(r.Status))
	dst = append(dst, byte(r.Flags))
	if hasVersion(r.Status, r.Flags) {
		dst = appendVersion(dst, r.Version)
	}
	if r.Status == 200 {
		dst = binary.AppendUvarint(dst, uint64(len(r.Value)))
		dst = append(dst, r.Value...)
	}
	if hasMessage(r.Status) {
		dst = binary.AppendUvarint(dst, uint64(len(r.Message)))
		dst = append(dst, r.Message...)
	}
	return dst
}

// AppendResponse appends a whole answer.
func AppendResponse(dst []byte, results []Result) []byte {
	dst = AppendHeader(dst, len(results))
	for i := range results {
		dst = AppendResult(dst, &results[i])
	}
	return dst
}

func appendVersion(dst []byte, v Version) []byte {
	dst = binary.BigEndian.AppendUint64(dst, v.TS)
	return binary.BigEndian.AppendUint64(dst, v.Node)
}

// reader walks a body; the first error sticks.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s at byte %d", ErrMalformed, fmt.Sprintf(format, args...), r.off)
	}
}

func (r *reader) uvarint(what string) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("bad %s varint", what)
		return 0
	}
	r.b, r.off = r.b[n:], r.off+n
	return v
}

func (r *reader) byte(what string) byte {
	if r.err != nil {
		return 0
	}
	if len(r.b) == 0 {
		r.fail("no %s byte", what)
		return 0
	}
	c := r.b[0]
	r.b, r.off = r.b[1:], r.off+1
	return c
}

func (r *reader) bytes(what string, n uint64) []byte {
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.fail("%s of %d bytes beyond the body", what, n)
		return nil
	}
	s := r.b[:n:n]
	r.b, r.off = r.b[n:], r.off+int(n)
	return s
}

func (r *reader) lenBytes(what string) []byte {
	return r.bytes(what, r.uvarint(what+" length"))
}

func (r *reader) version() Version {
	b := r.bytes("version", VersionLen)
	if b == nil {
		return Version{}
	}
	return Version{TS: binary.BigEndian.Uint64(b), Node: binary.BigEndian.Uint64(b[8:])}
}

func (r *reader) header(limit int) int {
	if len(r.b) < len(Magic) || string(r.b[:len(Magic)]) != Magic {
		r.fail("no RKB\\x01 magic")
		return 0
	}
	r.b, r.off = r.b[len(Magic):], len(Magic)
	n := r.uvarint("count")
	if r.err == nil && n > uint64(limit) {
		r.err = fmt.Errorf("%w: %d items, at most %d", ErrTooMany, n, limit)
	}
	// Every item takes at least 4 bytes: a count beyond that is a lie,
	// refused before anything is allocated for it.
	if r.err == nil && n > uint64(len(r.b)) {
		r.fail("%d items in %d bytes", n, len(r.b))
	}
	return int(n)
}

func (r *reader) done() {
	if r.err == nil && len(r.b) != 0 {
		r.fail("%d bytes after the last item", len(r.b))
	}
}

// DecodeRequest parses a request of at most limit items, appending them to
// items[:0]. Field values are checked only for being known codes; limits
// on keys and values are the caller's.
func DecodeRequest(b []byte, limit int, items []Item) ([]Item, error) {
	r := reader{b: b}
	n := r.header(limit)
	items = items[:0]
	for i := 0; i < n && r.err == nil; i++ {
		var it Item
		it.Op = Op(r.byte("op"))
		it.Consistency = Consistency(r.byte("consistency"))
		it.Cond = Cond(r.byte("condition"))
		if r.err != nil {
			break
		}
		switch {
		case it.Op < OpGet || it.Op > OpDelete:
			r.fail("item %d: unknown op %d", i, it.Op)
		case it.Consistency > ConsistencySerial:
			r.fail("item %d: unknown consistency %d", i, it.Consistency)
		case it.Cond > CondIfPresent:
			r.fail("item %d: unknown condition %d", i, it.Cond)
		}
		if it.Cond == CondIfVersion {
			it.Version = r.version()
		}
		if it.Op == OpPut {
			it.TTLMillis = r.uvarint("ttl")
		}
		it.Key = r.lenBytes("key")
		if it.Op == OpPut {
			it.Value = r.lenBytes("value")
		}
		items = append(items, it)
	}
	r.done()
	if r.err != nil {
		return items[:0], r.err
	}
	return items, nil
}

// DecodeResponse parses an answer of at most limit results, appending them
// to results[:0].
func DecodeResponse(b []byte, limit int, results []Result) ([]Result, error) {
	r := reader{b: b}
	n := r.header(limit)
	results = results[:0]
	for i := 0; i < n && r.err == nil; i++ {
		var res Result
		st := r.uvarint("status")
		if r.err == nil && (st < 100 || st > 599) {
			r.fail("result %d: status %d", i, st)
		}
		res.Status = int(st)
		res.Flags = Flags(r.byte("flags"))
		if hasVersion(res.Status, res.Flags) {
			res.Version = r.version()
		}
		if res.Status == 200 {
			res.Value = r.lenBytes("value")
		}
		if hasMessage(res.Status) {
			res.Message = r.lenBytes("message")
		}
		results = append(results, res)
	}
	r.done()
	if r.err != nil {
		return results[:0], r.err
	}
	return results, nil
}
