package client_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/ringkv/ringkv/client"
	"github.com/ringkv/ringkv/client/batchwire"
)

// batchNode is a node's POST /v1/batch in miniature: it keeps a map,
// answers in the binary framing, and marks unprocessed the items its
// refuse hook names, so Batch's splitting and retries can be watched.
type batchNode struct {
	mu       sync.Mutex
	data     map[string]string
	requests []int                          // items per request
	refuse   func(key string, try int) bool // answer 503 unprocessed
	tries    map[string]int
	query    string
}

func (b *batchNode) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/v1/batch" || r.Header.Get("Content-Type") != batchwire.ContentType {
		http.Error(w, `{"error":"bad"}`, http.StatusBadRequest)
		return
	}
	body, _ := io.ReadAll(r.Body)
	items, err := batchwire.DecodeRequest(body, client.MaxBatchItems, nil)
	if err != nil {
		http.Error(w, `{"error":"`+err.Error()+`"}`, http.StatusBadRequest)
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.query = r.URL.RawQuery
	b.requests = append(b.requests, len(items))
	out := batchwire.AppendHeader(nil, len(items))
	v := batchwire.Version{TS: 1, Node: 2}
	for _, it := range items {
		k := string(it.Key)
		b.tries[k]++
		var res batchwire.Result
		cur, ok := b.data[k]
		switch {
		case b.refuse != nil && b.refuse(k, b.tries[k]):
			res = batchwire.Result{Status: 503, Flags: batchwire.FlagUnprocessed, Message: []byte("too few replicas")}
		case it.Cond == batchwire.CondIfAbsent && ok:
			res = batchwire.Result{Status: 412, Flags: batchwire.FlagExists, Version: v}
		case it.Cond == batchwire.CondIfVersion && it.Version != v:
			res = batchwire.Result{Status: 503, Flags: batchwire.FlagOutcomeUnknown, Message: []byte("round cut short")}
		case it.Op == batchwire.OpGet && !ok:
			res = batchwire.Result{Status: 404}
		case it.Op == batchwire.OpGet:
			res = batchwire.Result{Status: 200, Version: v, Value: []byte(cur)}
		case it.Op == batchwire.OpPut:
			b.data[k] = string(it.Value)
			res = batchwire.Result{Status: 204, Version: v}
		default:
			delete(b.data, k)
			res = batchwire.Result{Status: 204, Version: v}
		}
		out = batchwire.AppendResult(out, &res)
	}
	w.Header().Set("Content-Type", batchwire.ContentType)
	w.Write(out)
}

func newBatchNode(t *testing.T) (*batchNode, *client.Client) {
	b := &batchNode{data: map[string]string{"x": "old"}, tries: map[string]int{}}
	srv := httptest.NewServer(b)
	t.Cleanup(srv.Close)
	return b, newClient(t, srv.URL)
}

// TestBatchResults: every kind of item comes back at its index with the
// error a single call would give.
func TestBatchResults(t *testing.T) {
	_, c := newBatchNode(t)
	res, err := c.Batch(context.Background(), []client.BatchOp{
		{Kind: client.BatchPut, Key: "a", Value: []byte("1")},
		{Kind: client.BatchGet, Key: "x"},
		{Kind: client.BatchGet, Key: "missing"},
		{Kind: client.BatchPut, Key: "x", Value: []byte("2"), IfAbsent: true},
		{Kind: client.BatchPut, Key: "x", Value: []byte("3"), IfVersion: "0000000000000009-0000000000000002"},
		{Kind: client.BatchDelete, Key: "x"},
	})
	if err != nil {
		t.Fatal(err)
	}
	const v = client.Version("0000000000000001-0000000000000002")
	var ce *client.ConditionError
	switch {
	case res[0].Err != nil || res[0].Version != v:
		t.Fatalf("put: %+v", res[0])
	case res[1].Err != nil || string(res[1].Value) != "old" || res[1].Version != v:
		t.Fatalf("get: %+v", res[1])
	case !errors.Is(res[2].Err, client.ErrNotFound):
		t.Fatalf("get of a missing key: %+v", res[2])
	case !errors.As(res[3].Err, &ce) || !ce.Exists || ce.Current != v || !errors.Is(res[3].Err, client.ErrConditionFailed):
		t.Fatalf("a failed if-absent: %+v", res[3])
	case !errors.Is(res[4].Err, client.ErrOutcomeUnknown) || !errors.Is(res[4].Err, client.ErrUnavailable):
		t.Fatalf("an outcome unknown: %+v", res[4])
	case res[5].Err != nil:
		t.Fatalf("delete: %+v", res[5])
	}
}

// TestBatchSplitsAndRetries: 2,500 items go as requests of at most 1,000,
// and the items a node marks unprocessed are sent again until they are
// taken, or come back with their error once the retries are spent.
func TestBatchSplitsAndRetries(t *testing.T) {
	b, c := newBatchNode(t)
	b.refuse = func(key string, try int) bool {
		return key == "never" || (strings.HasPrefix(key, "k1") && try < 3)
	}
	ops := make([]client.BatchOp, 2500)
	for i := range ops {
		ops[i] = client.BatchOp{Kind: client.BatchPut, Key: fmt.Sprintf("k%04d", i), Value: []byte("v")}
	}
	ops[2499].Key = "never"
	res, err := c.Batch(context.Background(), ops, client.WithConsistency(client.All))
	if err != nil {
		t.Fatal(err)
	}
	if b.query != "consistency=all" {
		t.Fatalf("the batch's consistency went as %q", b.query)
	}
	for i, r := range res[:2499] {
		if r.Err != nil {
			t.Fatalf("item %d (%s): %v after retries", i, ops[i].Key, r.Err)
		}
	}
	if !errors.Is(res[2499].Err, client.ErrUnavailable) {
		t.Fatalf("an item never taken: %v", res[2499].Err)
	}
	if len(b.data) != 2500 { // "x" and 2,499 puts
		t.Fatalf("%d keys stored", len(b.data))
	}
	if b.requests[0] != 1000 || b.requests[1] != 1000 || b.requests[2] != 500 {
		t.Fatalf("requests of %v items", b.requests)
	}
	if got := b.tries["never"]; got != client.DefaultBatchRetries+1 {
		t.Fatalf("an unprocessed item sent %d times", got)
	}
}

// TestBatchRefusesBadItems: what the client can tell is wrong goes
// nowhere.
func TestBatchRefusesBadItems(t *testing.T) {
	b, c := newBatchNode(t)
	for _, op := range []client.BatchOp{
		{Kind: 9, Key: "k"},
		{Kind: client.BatchPut, Key: "k", IfAbsent: true, IfPresent: true},
		{Kind: client.BatchPut, Key: "k", IfVersion: "nope"},
		{Kind: client.BatchGet, Key: "k", Consistency: "most"},
		{Kind: client.BatchDelete, Key: "k", TTL: 1},
	} {
		if _, err := c.Batch(context.Background(), []client.BatchOp{op}); err == nil {
			t.Fatalf("%+v was sent", op)
		}
	}
	if len(b.requests) != 0 {
		t.Fatalf("%d requests reached the node", len(b.requests))
	}
}

// TestBatchRealNode: 1,500 puts through a real node go as two requests
// and each lands; a batch of gets and conditional writes answers each
// item as the single calls would.
func TestBatchRealNode(t *testing.T) {
	n := newNode(t, nil)
	c := newClient(t, n.addr)
	ctx := context.Background()
	ops := make([]client.BatchOp, 1500)
	for i := range ops {
		ops[i] = client.BatchOp{Kind: client.BatchPut, Key: fmt.Sprintf("k%d", i), Value: []byte(fmt.Sprint(i))}
	}
	res, err := c.Batch(ctx, ops)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r.Err != nil || r.Version == "" {
			t.Fatalf("put %d: %+v", i, r)
		}
	}
	val, v, err := c.Get(ctx, "k1499")
	if err != nil || string(val) != "1499" || v != res[1499].Version {
		t.Fatalf("Get after the batch: %q %q %v (batch said %q)", val, v, err, res[1499].Version)
	}
	res, err = c.Batch(ctx, []client.BatchOp{
		// Not k7, which the next item writes: items run concurrently.
		{Kind: client.BatchGet, Key: "k6", Consistency: client.Serial},
		{Kind: client.BatchPut, Key: "k7", Value: []byte("eight"), IfVersion: res[7].Version},
		{Kind: client.BatchPut, Key: "k8", Value: []byte("x"), IfAbsent: true},
		{Kind: client.BatchDelete, Key: "nothing", IfPresent: true},
		{Kind: client.BatchGet, Key: "nothing"},
	})
	if err != nil {
		t.Fatal(err)
	}
	var ce *client.ConditionError
	switch {
	case res[0].Err != nil || string(res[0].Value) != "6":
		t.Fatalf("serial get: %+v", res[0])
	case res[1].Err != nil:
		t.Fatalf("compare-and-swap at the put's version: %v", res[1].Err)
	case !errors.As(res[2].Err, &ce) || !ce.Exists:
		t.Fatalf("if-absent of a present key: %v", res[2].Err)
	case !errors.As(res[3].Err, &ce) || ce.Exists:
		t.Fatalf("if-present of an absent key: %v", res[3].Err)
	case !errors.Is(res[4].Err, client.ErrNotFound):
		t.Fatalf("get of an absent key: %v", res[4].Err)
	}
	if val, _, _ := c.Get(ctx, "k7"); string(val) != "eight" {
		t.Fatalf("k7 = %q after the compare-and-swap", val)
	}
}
