package load

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/ringkv/ringkv/bench/workload"
)

// specItem is one item of a binary batch request, as /work's batch
// format spells it out.
type specItem struct {
	op, consistency, cond byte
	ttl                   uint64
	key, value            []byte
}

// decodeSpecRequest decodes a binary batch request by the agreed format,
// written apart from the encoder so that the two are checked against the
// spec, not against each other.
func decodeSpecRequest(b []byte) ([]specItem, error) {
	if !bytes.HasPrefix(b, []byte("RKB\x01")) {
		return nil, errors.New("no magic")
	}
	b = b[4:]
	uv := func() (uint64, error) {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return 0, errors.New("bad varint")
		}
		b = b[n:]
		return v, nil
	}
	take := func(n uint64) ([]byte, error) {
		if n > uint64(len(b)) {
			return nil, errors.New("length beyond the body")
		}
		s := b[:n]
		b = b[n:]
		return s, nil
	}
	count, err := uv()
	if err != nil || count > 1000 {
		return nil, fmt.Errorf("count %d: %v", count, err)
	}
	var out []specItem
	for range count {
		hdr, err := take(3)
		if err != nil {
			return nil, err
		}
		it := specItem{op: hdr[0], consistency: hdr[1], cond: hdr[2]}
		if it.op < 1 || it.op > 3 || it.consistency > 4 || it.cond > 3 {
			return nil, fmt.Errorf("bad item header %v", hdr)
		}
		if it.cond == 1 {
			if _, err := take(16); err != nil {
				return nil, err
			}
		}
		if it.op == 2 {
			if it.ttl, err = uv(); err != nil {
				return nil, err
			}
		}
		n, err := uv()
		if err != nil {
			return nil, err
		}
		if it.key, err = take(n); err != nil {
			return nil, err
		}
		if it.op == 2 {
			if n, err = uv(); err != nil {
				return nil, err
			}
			if it.value, err = take(n); err != nil {
				return nil, err
			}
		}
		out = append(out, it)
	}
	if len(b) != 0 {
		return nil, errors.New("trailing bytes")
	}
	return out, nil
}

// specResult is one result of a binary batch answer.
type specResult struct {
	status int
	flags  byte
	value  []byte
	msg    string
}

func encodeSpecResponse(rs []specResult) []byte {
	b := binary.AppendUvarint([]byte("RKB\x01"), uint64(len(rs)))
	for _, r := range rs {
		b = binary.AppendUvarint(b, uint64(r.status))
		b = append(b, r.flags)
		if r.status == 200 || r.status == 204 || (r.status == 412 && r.flags&2 != 0) {
			b = append(b, make([]byte, 16)...) // the version: TS and Node
		}
		if r.status == 200 {
			b = binary.AppendUvarint(b, uint64(len(r.value)))
			b = append(b, r.value...)
		}
		if r.status >= 400 && r.status != 404 && r.status != 412 {
			b = binary.AppendUvarint(b, uint64(len(r.msg)))
			b = append(b, r.msg...)
		}
	}
	return b
}

// TestBatchTargets: a batch-put target is a POST /v1/batch in the binary
// framing that decodes by the spec into --batch-size puts of the run's
// value to keys of the key space, with the batch default consistency, no
// condition and no TTL; a batch-get one into as many gets.
func TestBatchTargets(t *testing.T) {
	c := DefaultConfig()
	c.Keys = 50
	c.BatchSize = 7
	c.Token = "tok"
	keys, _ := workload.NewChooser(workload.Uniform, 50, 0.99)
	value := makeValue(100, 1)
	for _, w := range []workload.Workload{workload.BatchPut, workload.BatchGet} {
		c.Workload = w
		tg := newTargets(&c, []string{"http://n1:1", "http://n2:2"}, keys, 1, value)
		next := tg.Targeter()
		var bodies [][]byte
		for i := range 4 {
			var tgt vegeta.Target
			if err := next(&tgt); err != nil {
				t.Fatal(err)
			}
			if tgt.Method != "POST" || tgt.URL != []string{"http://n1:1", "http://n2:2"}[i%2]+"/v1/batch" {
				t.Fatalf("%s target %s %s", w, tgt.Method, tgt.URL)
			}
			if tgt.Header.Get("Content-Type") != "application/x-ringkv-batch" || tgt.Header.Get("Authorization") != "Bearer tok" {
				t.Fatalf("%s header %v", w, tgt.Header)
			}
			items, err := decodeSpecRequest(tgt.Body)
			if err != nil {
				t.Fatalf("%s body does not decode: %v", w, err)
			}
			if len(items) != 7 {
				t.Fatalf("%s: %d items, want --batch-size 7", w, len(items))
			}
			for _, it := range items {
				var n int
				if _, err := fmt.Sscanf(string(it.key), "key-%d", &n); err != nil || n >= 50 || it.consistency != 0 || it.cond != 0 || it.ttl != 0 {
					t.Fatalf("%s item %+v", w, it)
				}
				if w == workload.BatchPut && (it.op != 2 || !bytes.Equal(it.value, value)) {
					t.Fatalf("batch-put item op %d value %q", it.op, it.value)
				}
				if w == workload.BatchGet && (it.op != 1 || it.value != nil) {
					t.Fatalf("batch-get item %+v", it)
				}
			}
			bodies = append(bodies, tgt.Body)
		}
		// Each target has a body of its own: vegeta sends them at once.
		if &bodies[0][0] == &bodies[1][0] {
			t.Errorf("%s: two targets share a body", w)
		}
		if got := opOf("POST", "http://n1:1/v1/batch", w.Next(nil)); got != w.Next(nil) {
			t.Errorf("opOf(batch) = %s", got)
		}
	}
}

// TestDecodeBatchResponse counts every kind of result as the report does,
// and refuses malformed answers.
func TestDecodeBatchResponse(t *testing.T) {
	body := encodeSpecResponse([]specResult{
		{status: 204}, {status: 200, value: []byte("v")}, {status: 404},
		{status: 503, flags: 1, msg: "too few replicas"}, {status: 507, msg: "disk full"},
		{status: 412, flags: 2}, {status: 503, flags: 4, msg: "outcome unknown: cut short"},
	})
	tl, err := decodeBatchResponse(body)
	if err != nil {
		t.Fatal(err)
	}
	if tl.items != 7 || tl.ok != 2 || tl.misses != 1 || tl.unprocessed != 1 || tl.errors != 3 {
		t.Errorf("tally %+v", tl)
	}
	if tl.byStatus["503"] != 2 || tl.byStatus["507"] != 1 || tl.byStatus["412"] != 1 || !strings.Contains(tl.sample, "too few replicas (unprocessed)") {
		t.Errorf("by status %v, sample %q", tl.byStatus, tl.sample)
	}
	for name, bad := range map[string][]byte{
		"no magic":   []byte(`{"results":[]}`),
		"truncated":  body[:len(body)-3],
		"trailing":   append(append([]byte{}, body...), 0),
		"too many":   binary.AppendUvarint([]byte("RKB\x01"), 1001),
		"no flags":   binary.AppendUvarint(binary.AppendUvarint([]byte("RKB\x01"), 1), 204),
		"long value": append(binary.AppendUvarint([]byte("RKB\x01"), 1), 0xc8, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9),
	} {
		if _, err := decodeBatchResponse(bad); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// FuzzDecodeBatchResponse: any bytes a node may send are an answer or an
// error, never a panic, and the counts add up.
func FuzzDecodeBatchResponse(f *testing.F) {
	f.Add(encodeSpecResponse([]specResult{{status: 204}, {status: 200, value: []byte("v")}, {status: 503, flags: 1, msg: "x"}}))
	f.Add([]byte("RKB\x01\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		tl, err := decodeBatchResponse(b)
		if err == nil && tl.ok+tl.misses+tl.errors+tl.unprocessed != tl.items {
			t.Fatalf("tally %+v does not add up", tl)
		}
	})
}

// fakeBatchNode answers /v1/batch in the binary framing from an in-memory
// store (and /v1/kv for the preload); every unprocessedEvery-th put is
// answered 503 unprocessed and every errorEvery-th 507.
type fakeBatchNode struct {
	mu                           sync.Mutex
	kv                           map[string][]byte
	items, batches               atomic.Int64
	unprocessedEvery, errorEvery int64
	bad                          error // the first request that did not decode
}

func (f *fakeBatchNode) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	switch {
	case r.URL.Path == "/v1/batch" && r.Method == http.MethodPost:
		items, err := decodeSpecRequest(body)
		if err != nil || r.Header.Get("Content-Type") != "application/x-ringkv-batch" {
			f.mu.Lock()
			if f.bad == nil {
				f.bad = fmt.Errorf("%v (content type %q)", err, r.Header.Get("Content-Type"))
			}
			f.mu.Unlock()
			jsonError(w, 400, "bad batch")
			return
		}
		f.batches.Add(1)
		var rs []specResult
		f.mu.Lock()
		for _, it := range items {
			n := f.items.Add(1)
			switch {
			case it.op == 2 && f.unprocessedEvery > 0 && n%f.unprocessedEvery == 0:
				rs = append(rs, specResult{status: 503, flags: 1, msg: "too few replicas"})
			case it.op == 2 && f.errorEvery > 0 && n%f.errorEvery == 0:
				rs = append(rs, specResult{status: 507, msg: "disk full"})
			case it.op == 2:
				f.kv[string(it.key)] = it.value
				rs = append(rs, specResult{status: 204})
			default:
				if v, ok := f.kv[string(it.key)]; ok {
					rs = append(rs, specResult{status: 200, value: v})
				} else {
					rs = append(rs, specResult{status: 404})
				}
			}
		}
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/x-ringkv-batch")
		w.Write(encodeSpecResponse(rs))
	case strings.HasPrefix(r.URL.Path, "/v1/kv/") && r.Method == http.MethodPut:
		f.mu.Lock()
		f.kv[strings.TrimPrefix(r.URL.Path, "/v1/kv/")] = body
		f.mu.Unlock()
		w.WriteHeader(204)
	case strings.HasPrefix(r.URL.Path, "/v1/kv/"):
		f.mu.Lock()
		v, ok := f.kv[strings.TrimPrefix(r.URL.Path, "/v1/kv/")]
		f.mu.Unlock()
		if !ok {
			jsonError(w, 404, "not found")
			return
		}
		w.Write(v)
	default:
		jsonError(w, 404, "no such endpoint")
	}
}

// TestRunBatch: batch-put against a node that leaves some items
// unprocessed and fails others counts them apart, and items/s is
// --batch-size times the batches answered; batch-get preloads first, so
// every item is found.
func TestRunBatch(t *testing.T) {
	f := &fakeBatchNode{kv: map[string][]byte{}, unprocessedEvery: 50, errorEvery: 70}
	srv := httptest.NewServer(f)
	defer srv.Close()
	c := testConfig(t, []string{srv.Listener.Addr().String()})
	c.Workload = workload.BatchPut
	c.BatchSize = 10
	c.Duration = 500 * time.Millisecond
	r, err := Run(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	b := r.Batch
	if f.bad != nil {
		t.Fatalf("a request did not decode: %v", f.bad)
	}
	if b == nil || r.Summary.Requests == 0 || b.Items != 10*r.Summary.OK || b.Items != uint64(f.items.Load()) {
		t.Fatalf("batch %+v of %d requests (%d ok); the node saw %d items", b, r.Summary.Requests, r.Summary.OK, f.items.Load())
	}
	if b.Unprocessed == 0 || b.Errors == 0 || b.ByStatus["507"] != b.Errors || b.ByStatus["503"] != b.Unprocessed || b.OK+b.Errors+b.Unprocessed != b.Items {
		t.Errorf("item counts %+v", b)
	}
	if b.ItemsPerSecond < 9*r.Summary.RPS || b.ItemsPerSecond > 11*r.Summary.RPS {
		t.Errorf("items/s %.1f against %.1f batches/s of 10", b.ItemsPerSecond, r.Summary.RPS)
	}
	if r.Config.BatchSize != 10 || r.Ops[0].Op != "batch-put" {
		t.Errorf("config %+v, ops %+v", r.Config, r.Ops)
	}
	var sum strings.Builder
	r.WriteSummary(&sum)
	if !strings.Contains(sum.String(), "in batches of 10") || !strings.Contains(sum.String(), fmt.Sprintf("unprocessed %d", b.Unprocessed)) {
		t.Errorf("summary:\n%s", sum.String())
	}

	if html, err := os.ReadFile(filepath.Join(c.Out, "report.html")); err != nil || !strings.Contains(string(html), fmt.Sprintf("Batches of 10 items: %d items", b.Items)) {
		t.Errorf("report.html lacks the items: %v", err)
	}

	f.unprocessedEvery, f.errorEvery = 0, 0
	c.Workload = workload.BatchGet
	c.Preload = PreloadAlways
	c.Out = t.TempDir()
	r, err = Run(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if b := r.Batch; !r.Preload.Done || b == nil || b.Items == 0 || b.OK != b.Items || b.Misses != 0 {
		t.Errorf("batch-get after the preload: %+v, preload %+v", b, r.Preload)
	}
}
