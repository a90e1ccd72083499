package client

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/ringkv/ringkv/client/batchwire"
	"github.com/ringkv/ringkv/peer/kv"
)

// MaxBatchItems is the most items a node takes in one POST /v1/batch;
// Batch splits longer lists.
const MaxBatchItems = kv.MaxBatchItems

// maxBatchBody is where Batch starts a new request even before
// MaxBatchItems: a node with the default --max-value-size (1 MiB) takes a
// body of about 4 MiB.
const maxBatchBody = 4 << 20

// DefaultBatchRetries is how many times Batch sends again the items a
// node marked unprocessed (each time after a short pause) before it
// returns them with their error.
const DefaultBatchRetries = 3

// BatchOpKind is what one batch item does.
type BatchOpKind uint8

// The operations of a batch.
const (
	BatchGet BatchOpKind = iota + 1
	BatchPut
	BatchDelete
)

// BatchOp is one item of a Batch: a get, put or delete, with the options
// of the single-key calls. A put or delete with IfVersion, IfAbsent or
// IfPresent is a conditional write (as CompareAndSwap, PutIfAbsent).
type BatchOp struct {
	Kind  BatchOpKind
	Key   string
	Value []byte // a put's
	TTL   time.Duration
	// Consistency is the item's; "" takes the batch's (WithConsistency),
	// else the node's default. Serial is for gets only.
	Consistency Consistency
	// IfVersion: apply only if the key is at this version.
	IfVersion Version
	// IfAbsent: apply only if the key is absent; IfPresent: only if it
	// exists.
	IfAbsent, IfPresent bool
}

// BatchResult is one item's outcome, at the item's index.
type BatchResult struct {
	// Err is nil when a write was applied or a get found its key. A get
	// of an absent key gives a *StatusError matching ErrNotFound; a
	// failed condition a *ConditionError; an item the node did not apply
	// (even after Batch's retries) its error, matching ErrUnavailable for
	// example; a conditional write that may or may not be applied an
	// error matching ErrOutcomeUnknown.
	Err     error
	Value   []byte  // a found get's
	Version Version // a write's new version, or a found get's
}

// Batch runs ops against one node, which routes each item to its key's
// owners: far fewer round trips than one call per key. It is not a
// transaction: each item is applied or not on its own, in no promised
// order. Lists longer than MaxBatchItems go as several requests; items a
// node marks unprocessed are sent again (DefaultBatchRetries times). The
// error is non-nil only when a request failed as a whole (a refused
// body, no node reachable); results then holds what earlier requests
// answered, and nil errors for none of the rest.
func (c *Client) Batch(ctx context.Context, ops []BatchOp, opts ...Option) ([]BatchResult, error) {
	o := apply(opts)
	items := make([]batchwire.Item, len(ops))
	for i := range ops {
		it, err := batchItem(&ops[i])
		if err != nil {
			return nil, fmt.Errorf("ringkv: batch item %d: %w", i, err)
		}
		items[i] = it
	}
	results := make([]BatchResult, len(ops))
	pending := make([]int, len(ops)) // indices still to send
	for i := range pending {
		pending[i] = i
	}
	for try := 0; ; try++ {
		var retry []int
		for len(pending) > 0 {
			n := batchChunk(items, pending)
			again, err := c.batchOnce(ctx, items, pending[:n], results, o)
			if err != nil {
				return results, err
			}
			retry = append(retry, again...)
			pending = pending[n:]
		}
		if len(retry) == 0 || try == DefaultBatchRetries {
			return results, nil
		}
		select {
		case <-ctx.Done():
			return results, nil // the unprocessed keep their errors
		case <-time.After(time.Duration(25<<try) * time.Millisecond):
		}
		pending = retry
	}
}

// batchChunk returns how many of pending go in the next request.
func batchChunk(items []batchwire.Item, pending []int) int {
	size := 0
	for n, i := range pending {
		size += len(items[i].Key) + len(items[i].Value) + 32
		if n == MaxBatchItems || (n > 0 && size > maxBatchBody) {
			return n
		}
	}
	return len(pending)
}

func batchItem(op *BatchOp) (batchwire.Item, error) {
	it := batchwire.Item{Key: []byte(op.Key)}
	switch op.Kind {
	case BatchGet:
		it.Op = batchwire.OpGet
	case BatchPut:
		it.Op, it.Value = batchwire.OpPut, op.Value
	case BatchDelete:
		it.Op = batchwire.OpDelete
	default:
		return it, fmt.Errorf("unknown kind %d", op.Kind)
	}
	var err error
	if it.Consistency, err = wireConsistency(op.Consistency); err != nil {
		return it, err
	}
	conds := 0
	if op.IfVersion != "" {
		conds++
		it.Cond = batchwire.CondIfVersion
		if it.Version, err = kv.ParseVersion(string(op.IfVersion)); err != nil {
			return it, err
		}
	}
	if op.IfAbsent {
		conds++
		it.Cond = batchwire.CondIfAbsent
	}
	if op.IfPresent {
		conds++
		it.Cond = batchwire.CondIfPresent
	}
	if conds > 1 {
		return it, fmt.Errorf("key %q: IfVersion, IfAbsent and IfPresent exclude each other", op.Key)
	}
	if op.TTL < 0 || (op.TTL > 0 && op.Kind != BatchPut) {
		return it, fmt.Errorf("key %q: a TTL is for puts, and positive", op.Key)
	}
	if op.TTL > 0 {
		it.TTLMillis = uint64(max(op.TTL.Milliseconds(), 1))
	}
	return it, nil
}

func wireConsistency(c Consistency) (batchwire.Consistency, error) {
	switch c {
	case "":
		return batchwire.ConsistencyDefault, nil
	case One:
		return batchwire.ConsistencyOne, nil
	case Quorum:
		return batchwire.ConsistencyQuorum, nil
	case All:
		return batchwire.ConsistencyAll, nil
	case Serial:
		return batchwire.ConsistencySerial, nil
	}
	return 0, fmt.Errorf("unknown consistency %q", c)
}

// batchOnce sends the items at idx as one request and fills their
// results; it returns the indices the node marked unprocessed.
func (c *Client) batchOnce(ctx context.Context, items []batchwire.Item, idx []int, results []BatchResult, o options) ([]int, error) {
	body := batchwire.AppendHeader(nil, len(idx))
	conditional := false
	for _, i := range idx {
		body = batchwire.AppendItem(body, &items[i])
		conditional = conditional || items[i].Cond != batchwire.CondNone
	}
	path := "/v1/batch"
	if q := o.query(false); len(q) > 0 {
		path += "?" + q.Encode()
	}
	r := request{method: http.MethodPost, path: path, body: body, contentType: batchwire.ContentType, conditional: conditional}
	a, err := c.do(ctx, r)
	if err != nil {
		return nil, err
	}
	res, err := batchwire.DecodeResponse(a.body, len(idx), nil)
	if err == nil && len(res) != len(idx) {
		err = fmt.Errorf("%d results for %d items", len(res), len(idx))
	}
	if err != nil {
		return nil, fmt.Errorf("malformed batch answer from %s: %w", a.addr, err)
	}
	var again []int
	for k, i := range idx {
		results[i] = batchResult(a.addr, &res[k])
		if res[k].Flags&batchwire.FlagUnprocessed != 0 {
			again = append(again, i)
		}
	}
	return again, nil
}

func batchResult(addr string, r *batchwire.Result) BatchResult {
	status := fmt.Sprintf("%d %s", r.Status, http.StatusText(r.Status))
	switch r.Status {
	case http.StatusOK:
		v := r.Value
		if v == nil {
			v = []byte{}
		}
		return BatchResult{Value: v, Version: Version(r.Version.String())}
	case http.StatusNoContent:
		return BatchResult{Version: Version(r.Version.String())}
	case http.StatusPreconditionFailed:
		e := &ConditionError{StatusError: StatusError{Code: r.Status, Status: status, Message: "condition failed", Addr: addr}}
		if r.Flags&batchwire.FlagExists != 0 {
			e.Exists, e.Current = true, Version(r.Version.String())
		}
		return BatchResult{Err: e}
	}
	msg := string(r.Message)
	if r.Flags&batchwire.FlagOutcomeUnknown != 0 && !strings.Contains(msg, "outcome unknown") {
		msg = "outcome unknown: " + msg // what StatusError.Is matches
	}
	if r.Status == http.StatusNotFound {
		msg = "not found"
	}
	return BatchResult{Err: &StatusError{Code: r.Status, Status: status, Message: msg, Addr: addr}}
}
