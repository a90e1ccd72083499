package httpd

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/ringkv/ringkv/client/batchwire"
	"github.com/ringkv/ringkv/peer/kv"
)

// postBinary sends a batch in batchwire's framing to target.
func postBinary(t *testing.T, ts *testServer, target string, body []byte) *fasthttp.Response {
	t.Helper()
	return ts.roundTrip(t, rawRequest("POST", target, body, "Content-Type: "+batchwire.ContentType), false)
}

// TestBatchBinary sends a batch in the binary framing and reads the answer
// back through batchwire: every kind of result, in item order, and the
// options of each item reaching the store.
func TestBatchBinary(t *testing.T) {
	ts := newTestServer(t, Config{})
	ctx := testCtx(t, 10*time.Second)
	va, err := ts.st.Put(ctx, []byte("a"), []byte("one"), kv.WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ts.st.setKeyErr("u", namedError(t, "unavailable"))
	ts.st.setKeyErr("cas", namedError(t, "unknown"))

	wrong := batchwire.Version{TS: 99, Node: 1}
	items := []batchwire.Item{
		{Op: batchwire.OpPut, Consistency: batchwire.ConsistencyOne, TTLMillis: 1500, Key: []byte("p"), Value: []byte("\x00pv\xff")},
		{Op: batchwire.OpGet, Key: []byte("a")},
		{Op: batchwire.OpGet, Key: []byte("absent")},
		{Op: batchwire.OpPut, Cond: batchwire.CondIfVersion, Version: wrong, Key: []byte("a"), Value: []byte("lost")},
		{Op: batchwire.OpDelete, Cond: batchwire.CondIfPresent, Key: []byte("absent")},
		{Op: batchwire.OpGet, Key: []byte("u")},
		{Op: batchwire.OpPut, Cond: batchwire.CondIfAbsent, Key: []byte("cas"), Value: []byte("v")},
		{Op: batchwire.OpGet, Consistency: batchwire.ConsistencySerial, Key: []byte("p")},
		{Op: batchwire.OpPut, Key: []byte("dflt"), Value: nil},
		{Op: batchwire.OpDelete, Key: []byte("a"), Cond: batchwire.CondIfVersion, Version: batchwire.Version{TS: va.TS, Node: va.Node}},
	}
	resp := postBinary(t, ts, "/v1/batch?consistency=all", batchwire.AppendRequest(nil, items))
	if resp.StatusCode() != 200 || string(resp.Header.ContentType()) != batchwire.ContentType {
		t.Fatalf("answer %d %q: %q", resp.StatusCode(), resp.Header.ContentType(), resp.Body())
	}
	got, err := batchwire.DecodeResponse(resp.Body(), kv.MaxBatchItems, nil)
	if err != nil {
		t.Fatalf("decoding the answer: %v", err)
	}
	// The fake's clock: "a" was 1, then p 2, dflt 3, the delete of "a" 4.
	v := func(ts uint64) batchwire.Version { return batchwire.Version{TS: ts, Node: 1} }
	unavailable := "cannot put: put needs 2 replicas, 1 answered"
	want := []batchwire.Result{
		{Status: 204, Version: v(2)},
		{Status: 200, Version: v(1), Value: []byte("one")},
		{Status: 404},
		{Status: 412, Flags: batchwire.FlagExists, Version: v(1)},
		{Status: 412},
		{Status: 503, Flags: batchwire.FlagUnprocessed, Message: []byte(unavailable)},
		{Status: 503, Flags: batchwire.FlagOutcomeUnknown, Message: []byte(namedError(t, "unknown").Error())},
		{Status: 200, Version: v(2), Value: []byte("\x00pv\xff")},
		{Status: 204, Version: v(3)},
		{Status: 204, Version: v(4)},
	}
	if len(got) != len(want) {
		t.Fatalf("%d results for %d items", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Status != w.Status || g.Flags != w.Flags || g.Version != w.Version || !bytes.Equal(g.Value, w.Value) || !bytes.Equal(g.Message, w.Message) {
			t.Errorf("result %d (%s %q) = %+v, want %+v", i, kv.BatchOpKind(items[i].Op), items[i].Key, g, w)
		}
	}
	snap := ts.st.snapshot()
	if r := snap["p"]; r.ttl != 1500*time.Millisecond || r.c != kv.One {
		t.Errorf("p stored with ttl %v consistency %v, want 1.5s one", r.ttl, r.c)
	}
	if r, ok := snap["dflt"]; !ok || r.c != kv.All || len(r.val) != 0 {
		t.Errorf("dflt stored %v %+v, want an empty value at the query's consistency all", ok, r)
	}
	if _, ok := snap["a"]; ok {
		t.Errorf("a still stored after its conditional delete succeeded")
	}
}

// TestBatchBinaryRefused: a binary batch refused whole answers a JSON error
// and writes nothing, not even its valid first item.
func TestBatchBinaryRefused(t *testing.T) {
	ts := newTestServer(t, Config{MaxValueSize: 8, MaxKeySize: 4})
	first := batchwire.Item{Op: batchwire.OpPut, Key: []byte("w"), Value: []byte("1")}
	req := func(second ...batchwire.Item) []byte {
		return batchwire.AppendRequest(nil, append([]batchwire.Item{first}, second...))
	}
	many := batchwire.AppendHeader(nil, kv.MaxBatchItems+1)
	for range kv.MaxBatchItems + 1 {
		many = batchwire.AppendItem(many, &first)
	}
	tests := []struct {
		name string
		body []byte
		code int
		msg  string
	}{
		{"empty", nil, 400, "no RKB\\x01 magic"},
		{"json magic", []byte(`{"ops":[]}`), 400, "no RKB\\x01 magic"},
		{"truncated", req(first)[:len(req(first))-1], 400, "malformed batch"},
		{"trailing", append(req(), 0), 400, "bytes after the last item"},
		{"unknown op", append(batchwire.AppendItem(batchwire.AppendHeader(nil, 2), &first), 9, 0, 0, 1, 'k'), 400, "item 1: unknown op 9"},
		{"too many", many, 413, "too many batch items: 1001 items, at most 1000"},
		{"empty key", req(batchwire.Item{Op: batchwire.OpGet}), 400, "item 1: empty key"},
		{"long key", req(batchwire.Item{Op: batchwire.OpGet, Key: []byte("12345")}), 400, "item 1: key longer than 4 bytes"},
		{"big value", req(batchwire.Item{Op: batchwire.OpPut, Key: []byte("k"), Value: []byte("123456789")}), 413, "item 1: value larger than 8 bytes"},
		{"serial put", req(batchwire.Item{Op: batchwire.OpPut, Consistency: batchwire.ConsistencySerial, Key: []byte("k")}), 400, "item 1: consistency serial is for gets"},
		{"cond get", req(batchwire.Item{Op: batchwire.OpGet, Cond: batchwire.CondIfAbsent, Key: []byte("k")}), 400, "item 1: a get takes no condition"},
		{"ttl overflow", req(batchwire.Item{Op: batchwire.OpPut, TTLMillis: 1 << 62, Key: []byte("k")}), 400, "item 1: ttl of 4611686018427387904 ms is too long"},
	}
	for _, tt := range tests {
		resp := postBinary(t, ts, "/v1/batch", tt.body)
		checkJSONError(t, resp.Header.ContentType(), resp.Body())
		var e struct{ Error string }
		_ = json.Unmarshal(resp.Body(), &e)
		if resp.StatusCode() != tt.code || !strings.Contains(e.Error, tt.msg) {
			t.Errorf("%s: %d %q, want %d with %q", tt.name, resp.StatusCode(), e.Error, tt.code, tt.msg)
		}
	}
	if n := ts.st.len(); n != 0 {
		t.Errorf("refused batches wrote %d keys: %s", n, ts.st.dump())
	}
	// The serial default is refused for binary bodies too.
	resp := postBinary(t, ts, "/v1/batch?consistency=serial", req())
	if resp.StatusCode() != 400 || ts.st.len() != 0 {
		t.Errorf("consistency=serial default: %d %q, store %s", resp.StatusCode(), resp.Body(), ts.st.dump())
	}
	// And the same body, well formed, is applied.
	resp = postBinary(t, ts, "/v1/batch", req())
	if resp.StatusCode() != 200 || ts.st.len() != 1 {
		t.Errorf("valid batch: %d %q, store %s", resp.StatusCode(), resp.Body(), ts.st.dump())
	}
}

// batchFuzzServer is a server on a fake store with small limits, so that
// the fuzzer reaches both sides of them, and a function that serves one
// batch body of a Content-Type on a store reset to a known content.
func batchFuzzServer(f *testing.F) (st *fakeStore, serve func(ct string, body []byte) *fasthttp.RequestCtx) {
	st = newFakeStore()
	srv, err := New(Config{
		Registry:     prometheus.NewRegistry(),
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
		MaxValueSize: 64,
		MaxKeySize:   16,
	}, st, &fakeOps{})
	if err != nil {
		f.Fatal(err)
	}
	h := srv.Handler()
	return st, func(ct string, body []byte) *fasthttp.RequestCtx {
		st.mu.Lock()
		st.mu.m = map[string]fakeRec{
			"a":   {val: []byte("1"), ver: kv.Version{TS: 1, Node: 1}},
			"k/x": {val: []byte("v"), ver: kv.Version{TS: 2, Node: 1}},
		}
		st.mu.clock = 2
		st.mu.Unlock()
		var req fasthttp.Request
		req.Header.SetMethod(fasthttp.MethodPost)
		req.SetRequestURI("/v1/batch")
		req.Header.SetContentType(ct)
		req.SetBody(body)
		ctx := &fasthttp.RequestCtx{}
		ctx.Init(&req, nil, nil)
		h(ctx)
		return ctx
	}
}

// checkBatchAnswer checks what every answer to a batch body must be: 200,
// or a refusal (400, 413) as a JSON error that left the store unchanged.
func checkBatchAnswer(t *testing.T, st *fakeStore, before map[string]fakeRec, ctx *fasthttp.RequestCtx, data []byte) bool {
	t.Helper()
	code, body := ctx.Response.StatusCode(), ctx.Response.Body()
	switch code {
	case 200:
		return true
	case 400, 413:
		checkJSONError(t, ctx.Response.Header.ContentType(), body)
		if !sameContent(before, st.snapshot()) {
			t.Fatalf("batch %q refused (%d %s) but changed the store", data, code, body)
		}
		return false
	}
	t.Fatalf("status %d for %q: %s", code, data, body)
	return false
}

// checkPutsStored checks that each put answered 204, of a key no other
// write of the batch (ops: its puts and deletes) writes, stored its value.
func checkPutsStored(t *testing.T, st *fakeStore, data []byte, puts []kv.BatchOp, status []int) {
	t.Helper()
	writes := map[string]int{}
	for _, op := range puts {
		if op.Kind != 0 && op.Kind != kv.BatchGet {
			writes[string(op.Key)]++
		}
	}
	snap := st.snapshot()
	for i, op := range puts {
		if op.Kind != kv.BatchPut || status[i] != 204 || writes[string(op.Key)] > 1 {
			continue
		}
		if r, ok := snap[string(op.Key)]; !ok || !bytes.Equal(r.val, op.Value) {
			t.Fatalf("batch %q: item %d put %q answered 204 but stored %q", data, i, op.Key, r.val)
		}
	}
}

var batchJSONSeeds = []string{
	`{"ops":[{"op":"put","key":"k","value":"v"},{"op":"get","key":"a"},{"op":"delete","key":"k/x"}]}`,
	`{"encoding":"base64","consistency":"one","ops":[{"op":"put","key":"AP8=","value":"AAE=","ttl":"1s"},{"op":"get","key":"YQ==","consistency":"serial"}]}`,
	`{"ops":[{"op":"put","key":"a","value":"x","if_match":"0000000000000001-0000000000000001"},{"op":"put","key":"n","value":"x","if_none_match":"*"},{"op":"delete","key":"a","if_match":"*"}]}`,
	`{"ops":[]}`,
	`{"ops":[{"op":"put","key":"w","value":"1"},{"op":"get","key":"k","if_match":"*"}]}`,
	`{"ops":[{"op":"put","key":"w","value":"1"},{"op":"put","key":"kkkkkkkkkkkkkkkkk","value":"v"}]}`,
	`{"ops":[{"op":"put","key":"w","value":"1"},{"op":"put","key":"k","value":"` + strings.Repeat("v", 65) + `"}]}`,
	`{"ops":[{"op":"put","key":"w","value":"1"}],"extra":1}`,
	`{"ops":[{"op":"put","key":"w","value":"1"}`,
	`{"ops":[` + strings.Repeat(`{},`, kv.MaxBatchItems) + `{}]}`,
}

// FuzzBatchJSON serves arbitrary JSON batch bodies: no panic, 200 or a
// JSON 400/413 that wrote nothing; a 200 is valid JSON with one result an
// item, and each put it answered 204 stored its value.
func FuzzBatchJSON(f *testing.F) {
	for _, s := range batchJSONSeeds {
		f.Add([]byte(s))
	}
	st, serve := batchFuzzServer(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		before := map[string]fakeRec{
			"a":   {val: []byte("1"), ver: kv.Version{TS: 1, Node: 1}},
			"k/x": {val: []byte("v"), ver: kv.Version{TS: 2, Node: 1}},
		}
		ctx := serve("application/json", data)
		if !checkBatchAnswer(t, st, before, ctx, data) {
			return
		}
		var ans struct {
			Results []struct {
				Status int `json:"status"`
			} `json:"results"`
			Unprocessed []int `json:"unprocessed"`
		}
		if err := json.Unmarshal(ctx.Response.Body(), &ans); err != nil {
			t.Fatalf("answer %q to %q is not JSON: %v", ctx.Response.Body(), data, err)
		}
		var req struct {
			Encoding string        `json:"encoding"`
			Ops      []batchJSONOp `json:"ops"`
		}
		if err := json.Unmarshal(data, &req); err != nil {
			t.Fatalf("batch %q accepted, but encoding/json refuses it: %v", data, err)
		}
		if len(ans.Results) != len(req.Ops) {
			t.Fatalf("batch %q: %d results for %d items", data, len(ans.Results), len(req.Ops))
		}
		ops := make([]kv.BatchOp, len(req.Ops))
		status := make([]int, len(req.Ops))
		for i, o := range req.Ops {
			status[i] = ans.Results[i].Status
			if o.Key == nil {
				continue
			}
			ops[i] = kv.BatchOp{Kind: kv.BatchDelete, Key: []byte(*o.Key)}
			if o.Op == "put" && o.Value != nil {
				ops[i].Kind, ops[i].Value = kv.BatchPut, []byte(*o.Value)
			}
			if req.Encoding == "base64" {
				ops[i].Key, _ = base64.StdEncoding.DecodeString(*o.Key)
				ops[i].Value, _ = base64.StdEncoding.DecodeString(string(ops[i].Value))
			}
			if o.Op == "get" {
				ops[i].Kind = kv.BatchGet
			}
		}
		checkPutsStored(t, st, data, ops, status)
	})
}

// FuzzBatchBinary serves arbitrary binary batch bodies: no panic, 200 or a
// JSON 400/413 that wrote nothing; a 200 decodes (batchwire) to one result
// an item, and each put it answered 204 stored its value.
func FuzzBatchBinary(f *testing.F) {
	seeds := [][]batchwire.Item{
		{
			{Op: batchwire.OpPut, Consistency: batchwire.ConsistencyOne, TTLMillis: 1000, Key: []byte("k"), Value: []byte("v")},
			{Op: batchwire.OpGet, Key: []byte("a")},
			{Op: batchwire.OpDelete, Key: []byte("k/x")},
		},
		{
			{Op: batchwire.OpPut, Cond: batchwire.CondIfVersion, Version: batchwire.Version{TS: 1, Node: 1}, Key: []byte("a"), Value: []byte("x")},
			{Op: batchwire.OpPut, Cond: batchwire.CondIfAbsent, Key: []byte("n"), Value: []byte("x")},
			{Op: batchwire.OpDelete, Cond: batchwire.CondIfPresent, Key: []byte("a")},
			{Op: batchwire.OpGet, Consistency: batchwire.ConsistencySerial, Key: []byte("a")},
		},
		{},
		{{Op: batchwire.OpPut, Key: []byte("w")}, {Op: batchwire.OpGet, Cond: batchwire.CondIfAbsent, Key: []byte("k")}},
		{{Op: batchwire.OpPut, Key: []byte("w")}, {Op: batchwire.OpPut, Key: []byte("k"), Value: bytes.Repeat([]byte("v"), 65)}},
	}
	for _, s := range seeds {
		f.Add(batchwire.AppendRequest(nil, s))
	}
	f.Add([]byte("RKB\x01\x02\x02\x00\x00"))
	f.Add([]byte("RKB\x01\xe9\x07"))
	st, serve := batchFuzzServer(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		before := map[string]fakeRec{
			"a":   {val: []byte("1"), ver: kv.Version{TS: 1, Node: 1}},
			"k/x": {val: []byte("v"), ver: kv.Version{TS: 2, Node: 1}},
		}
		ctx := serve(batchwire.ContentType, data)
		if !checkBatchAnswer(t, st, before, ctx, data) {
			return
		}
		if ct := string(ctx.Response.Header.ContentType()); ct != batchwire.ContentType {
			t.Fatalf("answer to %q has Content-Type %q", data, ct)
		}
		items, err := batchwire.DecodeRequest(data, kv.MaxBatchItems, nil)
		if err != nil {
			t.Fatalf("batch %q accepted, but batchwire refuses it: %v", data, err)
		}
		res, err := batchwire.DecodeResponse(ctx.Response.Body(), kv.MaxBatchItems, nil)
		if err != nil || len(res) != len(items) {
			t.Fatalf("answer %q to %q: %d results for %d items, %v", ctx.Response.Body(), data, len(res), len(items), err)
		}
		ops := make([]kv.BatchOp, len(items))
		status := make([]int, len(items))
		for i, it := range items {
			status[i] = res[i].Status
			ops[i] = kv.BatchOp{Kind: kv.BatchOpKind(it.Op), Key: it.Key, Value: it.Value}
		}
		checkPutsStored(t, st, data, ops, status)
	})
}

// TestBatchMetrics: a batch counts as op batch.
func TestBatchMetrics(t *testing.T) {
	ts := newTestServer(t, Config{})
	resp := ts.roundTrip(t, rawRequest("POST", "/v1/batch", []byte(`{"ops":[{"op":"put","key":"k","value":"v"}]}`)), false)
	if resp.StatusCode() != 200 {
		t.Fatalf("batch: %d %s", resp.StatusCode(), resp.Body())
	}
	resp = ts.roundTrip(t, rawRequest("GET", "/metrics", nil), false)
	want := `ringkv_requests_total{code="200",op="batch"} 1`
	if !strings.Contains(string(resp.Body()), want) {
		t.Errorf("/metrics lacks %s", want)
	}
}
