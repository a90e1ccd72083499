package load

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
)

// The binary framing of POST /v1/batch (Content-Type
// application/x-ringkv-batch): what the batch-put and batch-get workloads
// send, and the answer they count item by item.
const (
	batchContentType = "application/x-ringkv-batch"
	batchMagic       = "RKB\x01"
	// MaxBatchSize is the most items a node takes in one batch
	// (kv.MaxBatchItems).
	MaxBatchSize = 1000

	batchOpGet = 1
	batchOpPut = 2

	batchFlagUnprocessed    = 1 << 0
	batchFlagExists         = 1 << 1
	batchFlagOutcomeUnknown = 1 << 2

	batchVersionLen = 16 // TS and Node, uint64 big-endian each
)

// appendBatchItem appends one item of a binary batch request: op, the
// batch's default consistency, no condition, no TTL (puts), the key, and
// for a put its value.
func appendBatchItem(dst []byte, op byte, key, value []byte) []byte {
	dst = append(dst, op, 0, 0)
	if op == batchOpPut {
		dst = binary.AppendUvarint(dst, 0) // ttl: none
	}
	dst = binary.AppendUvarint(dst, uint64(len(key)))
	dst = append(dst, key...)
	if op == batchOpPut {
		dst = binary.AppendUvarint(dst, uint64(len(value)))
		dst = append(dst, value...)
	}
	return dst
}

// batchTally is what one batch answer says of its items.
type batchTally struct {
	items       uint64
	ok          uint64            // 200 and 204
	misses      uint64            // 404
	errors      uint64            // any other status, unprocessed ones apart
	unprocessed uint64            // flagged unprocessed: certainly not applied
	byStatus    map[string]uint64 // errors and unprocessed by status
	sample      string            // the first error's message
}

// decodeBatchResponse counts the results of a binary batch answer. It
// takes the node's bytes as they come: a malformed answer is an error,
// never a panic.
func decodeBatchResponse(b []byte) (batchTally, error) {
	t := batchTally{byStatus: map[string]uint64{}}
	if len(b) < len(batchMagic) || string(b[:len(batchMagic)]) != batchMagic {
		return t, errors.New("batch answer: no RKB\\x01 magic")
	}
	b = b[len(batchMagic):]
	uv := func(what string) (uint64, error) {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return 0, fmt.Errorf("batch answer: bad %s varint", what)
		}
		b = b[n:]
		return v, nil
	}
	skip := func(what string, n uint64) ([]byte, error) {
		if n > uint64(len(b)) {
			return nil, fmt.Errorf("batch answer: %s of %d bytes beyond the body", what, n)
		}
		s := b[:n]
		b = b[n:]
		return s, nil
	}
	count, err := uv("count")
	if err != nil {
		return t, err
	}
	if count > MaxBatchSize {
		return t, fmt.Errorf("batch answer: %d results, more than %d", count, MaxBatchSize)
	}
	for range count {
		status, err := uv("status")
		if err != nil {
			return t, err
		}
		if len(b) == 0 {
			return t, errors.New("batch answer: result without flags")
		}
		flags := b[0]
		b = b[1:]
		if status == 200 || status == 204 || (status == 412 && flags&batchFlagExists != 0) {
			if _, err := skip("version", batchVersionLen); err != nil {
				return t, err
			}
		}
		if status == 200 {
			n, err := uv("value length")
			if err != nil {
				return t, err
			}
			if _, err := skip("value", n); err != nil {
				return t, err
			}
		}
		var msg []byte
		if status >= 400 && status != 404 && status != 412 {
			n, err := uv("message length")
			if err != nil {
				return t, err
			}
			if msg, err = skip("message", n); err != nil {
				return t, err
			}
		}
		t.items++
		switch {
		case status == 200 || status == 204:
			t.ok++
		case status == 404:
			t.misses++
		default:
			if flags&batchFlagUnprocessed != 0 {
				t.unprocessed++
			} else {
				t.errors++
			}
			code := strconv.FormatUint(status, 10)
			t.byStatus[code]++
			if t.sample == "" {
				t.sample = code + ": " + oneLine(string(msg), 200)
				if flags&batchFlagUnprocessed != 0 {
					t.sample += " (unprocessed)"
				}
				if flags&batchFlagOutcomeUnknown != 0 {
					t.sample += " (outcome unknown)"
				}
			}
		}
	}
	if len(b) != 0 {
		return t, fmt.Errorf("batch answer: %d bytes after the last result", len(b))
	}
	return t, nil
}
