package load

import (
	"fmt"
	"strconv"

	"github.com/ringkv/ringkv/client"
	"github.com/ringkv/ringkv/client/batchwire"
)

// The binary framing of POST /v1/batch is client/batchwire's: what the
// batch-put and batch-get workloads send, and the answer they count item
// by item.
const (
	batchContentType = batchwire.ContentType
	// MaxBatchSize is the most items a node takes in one batch.
	MaxBatchSize = client.MaxBatchItems
)

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
	res, err := batchwire.DecodeResponse(b, MaxBatchSize, nil)
	if err != nil {
		return t, fmt.Errorf("batch answer: %w", err)
	}
	for _, r := range res {
		t.items++
		switch {
		case r.Status == 200 || r.Status == 204:
			t.ok++
		case r.Status == 404:
			t.misses++
		default:
			unprocessed := r.Flags&batchwire.FlagUnprocessed != 0
			if unprocessed {
				t.unprocessed++
			} else {
				t.errors++
			}
			code := strconv.Itoa(r.Status)
			t.byStatus[code]++
			if t.sample == "" {
				t.sample = code + ": " + oneLine(string(r.Message), 200)
				if unprocessed {
					t.sample += " (unprocessed)"
				}
				if r.Flags&batchwire.FlagOutcomeUnknown != 0 {
					t.sample += " (outcome unknown)"
				}
			}
		}
	}
	return t, nil
}
