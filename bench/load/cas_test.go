package load

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ringkv/ringkv/bench/workload"
)

// fakeCASNode keeps versioned records in memory and answers conditional
// PUTs with real compare-and-set semantics (If-Match: "<version>",
// If-None-Match: *), as a ringkv node's /v1/kv does.
type fakeCASNode struct {
	mu   sync.Mutex
	kv   map[string]casRecord
	next int
	// unknownOnce answers the next conditional PUT 503 "outcome unknown",
	// having applied it when unknownApplies is set.
	unknownOnce    atomic.Bool
	unknownApplies bool
	// loseOnce answers the next conditional PUT 204 without applying it:
	// the lost update the final check is there to catch.
	loseOnce atomic.Bool

	puts, applied, conflicts, serialReads atomic.Int64
}

type casRecord struct {
	value   []byte
	version string
}

func newFakeCASNode() *fakeCASNode { return &fakeCASNode{kv: map[string]casRecord{}} }

func (f *fakeCASNode) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.URL.Path, "/v1/kv/") {
		jsonError(w, 404, "no such endpoint")
		return
	}
	key := strings.TrimPrefix(r.URL.Path, "/v1/kv/")
	switch r.Method {
	case http.MethodGet:
		if r.URL.Query().Get("consistency") == "serial" {
			f.serialReads.Add(1)
		}
		f.mu.Lock()
		rec, ok := f.kv[key]
		f.mu.Unlock()
		if !ok {
			jsonError(w, 404, "not found")
			return
		}
		w.Header().Set("X-Ringkv-Version", rec.version)
		w.Write(rec.value)
	case http.MethodPut:
		body, _ := io.ReadAll(r.Body)
		ifMatch, ifNone := r.Header.Get("If-Match"), r.Header.Get("If-None-Match")
		if ifMatch == "" && ifNone == "" {
			jsonError(w, 400, "the cas workload sent a plain PUT")
			return
		}
		f.puts.Add(1)
		f.mu.Lock()
		cur, exists := f.kv[key]
		if (ifNone == "*" && exists) || (ifMatch != "" && (!exists || `"`+cur.version+`"` != ifMatch)) {
			f.mu.Unlock()
			f.conflicts.Add(1)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(412)
			fmt.Fprintf(w, `{"error":"condition failed","exists":%v,"version":%q}`, exists, cur.version)
			return
		}
		unknown := f.unknownOnce.CompareAndSwap(true, false)
		lose := !unknown && f.loseOnce.CompareAndSwap(true, false)
		f.next++
		ver := "v" + strconv.Itoa(f.next)
		if (!unknown || f.unknownApplies) && !lose {
			f.kv[key] = casRecord{value: body, version: ver}
			f.applied.Add(1)
		}
		f.mu.Unlock()
		if unknown {
			jsonError(w, 503, "outcome unknown: the round was cut short")
			return
		}
		w.Header().Set("X-Ringkv-Version", ver)
		w.WriteHeader(204)
	default:
		jsonError(w, 405, "method not allowed")
	}
}

func (f *fakeCASNode) total() (sum uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.kv {
		n, _ := strconv.ParseUint(string(r.value), 10, 64)
		sum += n
	}
	return sum
}

func casConfig(t *testing.T, addrs ...string) Config {
	c := testConfig(t, addrs)
	c.Workload = workload.CAS
	c.KeyPrefix = DefaultCASKeyPrefix
	c.Keys = 5 // hot counters: workers conflict
	c.Concurrency = 8
	c.Duration = 400 * time.Millisecond
	c.Interval = 100 * time.Millisecond
	return c
}

// TestRunCAS: eight workers on five zipfian counters conflict, retry, and
// end with counters that total exactly the acknowledged increments, read
// at consistency=serial; the report's figures are the node's.
func TestRunCAS(t *testing.T) {
	f := newFakeCASNode()
	srv := httptest.NewServer(f)
	defer srv.Close()
	c := casConfig(t, srv.Listener.Addr().String(), srv.Listener.Addr().String())
	var atEnd int64 = -1
	c.OnRunEnd = func() { atEnd = f.serialReads.Load() }
	r, err := Run(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	x := r.CAS
	// OnRunEnd came before the check's serial read of every counter
	// (compare api reads the servers' CPU there).
	if atEnd < 0 || f.serialReads.Load()-atEnd != int64(x.Counters) {
		t.Errorf("%d serial reads at OnRunEnd, %d in all, %d counters", atEnd, f.serialReads.Load(), x.Counters)
	}
	if x == nil || x.Increments == 0 || x.Conflicts == 0 {
		t.Fatalf("cas %+v: want increments and conflicts", x)
	}
	if !x.Match || x.Final != x.Increments || x.Expected != x.Increments || x.Final != f.total() || x.Baseline != 0 {
		t.Errorf("cas %+v; the node's counters total %d", x, f.total())
	}
	if x.Increments != uint64(f.applied.Load()) || x.Conflicts != uint64(f.conflicts.Load()) || x.OutcomeUnknown != 0 {
		t.Errorf("cas %+v; the node applied %d and refused %d", x, f.applied.Load(), f.conflicts.Load())
	}
	if x.Counters < 1 || x.Counters > 5 || x.PutLatency.P99 <= 0 {
		t.Errorf("counters %d, put latency %+v", x.Counters, x.PutLatency)
	}
	if r.Summary.Errors != 0 {
		t.Errorf("summary %+v", r.Summary)
	}
	var cas *OpSummary
	for i := range r.Ops {
		if r.Ops[i].Op == "cas" {
			cas = &r.Ops[i]
		}
	}
	// The conditional PUTs are the "cas" op, their 412s misses, not errors.
	if cas == nil || cas.Requests != uint64(f.puts.Load()) || cas.OK != x.Increments || cas.Misses != x.Conflicts || cas.Errors != 0 {
		t.Errorf("ops %+v; the node had %d conditional PUTs", r.Ops, f.puts.Load())
	}
	var sum strings.Builder
	r.WriteSummary(&sum)
	if !strings.Contains(sum.String(), fmt.Sprintf("total %d, expected %d", x.Final, x.Expected)) || !strings.Contains(sum.String(), ": match") {
		t.Errorf("summary:\n%s", sum.String())
	}

	if html, err := os.ReadFile(filepath.Join(c.Out, "report.html")); err != nil || !strings.Contains(string(html), fmt.Sprintf("total %d, expected %d: match", x.Final, x.Expected)) {
		t.Errorf("report.html lacks the check: %v", err)
	}

	// A second run over the same counters starts from their values: the
	// baseline, not zero.
	before := f.total()
	c.Out = t.TempDir()
	r, err = Run(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if x := r.CAS; !x.Match || x.Baseline == 0 || x.Baseline > before || x.Final != f.total() || x.Final-x.Baseline != x.Increments {
		t.Errorf("second run %+v (the node had %d before it, %d after)", x, before, f.total())
	}
}

// TestRunCASOutcomeUnknown: a conditional PUT answered "outcome unknown"
// is counted apart and resolved by a serial read, whether the node had
// applied it or not, and the totals still check.
func TestRunCASOutcomeUnknown(t *testing.T) {
	for _, applies := range []bool{true, false} {
		f := newFakeCASNode()
		f.unknownApplies = applies
		f.unknownOnce.Store(true)
		srv := httptest.NewServer(f)
		c := casConfig(t, srv.Listener.Addr().String())
		r, err := Run(context.Background(), c)
		srv.Close()
		if err != nil {
			t.Fatal(err)
		}
		x := r.CAS
		want := uint64(0)
		if applies {
			want = 1
		}
		if x.OutcomeUnknown != 1 || x.UnknownApplied != want || !x.Match || x.Final != f.total() || x.Final != x.Increments+want {
			t.Errorf("applied %v: cas %+v, the node's total %d", applies, x, f.total())
		}
		if r.Summary.ErrorsByCode["503"] != 1 {
			t.Errorf("applied %v: errors %v", applies, r.Summary.ErrorsByCode)
		}
	}
}

// TestRunCASLostUpdate: a node that acknowledges an increment it did not
// apply makes the check fail, and says by how much.
func TestRunCASLostUpdate(t *testing.T) {
	f := newFakeCASNode()
	f.loseOnce.Store(true)
	srv := httptest.NewServer(f)
	defer srv.Close()
	r, err := Run(context.Background(), casConfig(t, srv.Listener.Addr().String()))
	if err != nil {
		t.Fatal(err)
	}
	if x := r.CAS; x.Match || x.Final+1 != x.Expected || !strings.Contains(x.Problem, "not the") {
		t.Errorf("cas %+v: want a mismatch of one", x)
	}
}

// TestRunCASNotACounter: a counter holding something else stops the run
// with an error naming it, since its total could not be checked.
func TestRunCASNotACounter(t *testing.T) {
	f := newFakeCASNode()
	f.kv[DefaultCASKeyPrefix+"0"] = casRecord{value: []byte("abc"), version: "v0"}
	srv := httptest.NewServer(f)
	defer srv.Close()
	c := casConfig(t, srv.Listener.Addr().String())
	c.Keys = 1
	_, err := Run(context.Background(), c)
	if err == nil || !strings.Contains(err.Error(), `counter-0 holds "abc"`) {
		t.Fatalf("Run = %v", err)
	}
}
