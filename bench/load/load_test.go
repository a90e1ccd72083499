package load

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/ringkv/ringkv/bench/internal/chart/charttest"
	"github.com/ringkv/ringkv/bench/workload"
)

// fakeCluster mimics ringkv's /v1/kv and /v1/lsm on several HTTP servers
// that share one store, as the nodes of a cluster do.
type fakeCluster struct {
	mu      sync.Mutex
	kv      map[string][]byte
	puts    atomic.Int64
	failPut int64 // every failPut-th PUT is a 503; 0 never
	lsm     atomic.Int64
	servers []*httptest.Server
	hits    []atomic.Int64 // requests of the attack (vegeta's header) per server
	token   string         // when set, requests without it as a bearer token get 401
	unauth  atomic.Int64   // requests refused for the token
}

func newFakeCluster(t *testing.T, nodes int, failPut int64) *fakeCluster {
	f := &fakeCluster{kv: map[string][]byte{}, failPut: failPut, hits: make([]atomic.Int64, nodes)}
	for i := range nodes {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { f.serve(i, w, r) }))
		t.Cleanup(srv.Close)
		f.servers = append(f.servers, srv)
	}
	return f
}

func (f *fakeCluster) addrs() []string {
	var a []string
	for _, s := range f.servers {
		a = append(a, s.Listener.Addr().String())
	}
	return a
}

func jsonError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	fmt.Fprintf(w, `{"error":%q}`+"\n", msg)
}

func (f *fakeCluster) serve(node int, w http.ResponseWriter, r *http.Request) {
	if f.token != "" && r.Header.Get("Authorization") != "Bearer "+f.token {
		f.unauth.Add(1)
		jsonError(w, 401, "credential required")
		return
	}
	if r.Header.Get("X-Vegeta-Seq") != "" {
		f.hits[node].Add(1)
	}
	p := r.URL.EscapedPath()
	switch {
	case p == "/v1/lsm":
		n := f.lsm.Add(1)
		fmt.Fprintf(w, `{"profile":"balanced","write_amp":1.5,"read_amp":%d,"l0_sublevels":%d,"compaction_debt_bytes":%d,`+
			`"compactions":%d,"compactions_in_progress":1,"flushes":%d,"memtable_bytes":1048576,"memtable_count":2,`+
			`"disk_usage_bytes":4096,"stalls":{"count":%d,"duration_ns":%d,"by_reason":{}},"pebble_options":"[Options]"}`,
			n%5+1, n%4, n<<20, n, n, n/3, (n/3)*int64(time.Millisecond))
	case p == "/v1/kv":
		limit := 100
		fmt.Sscan(r.URL.Query().Get("limit"), &limit)
		prefix, after := r.URL.Query().Get("prefix"), r.URL.Query().Get("after")
		type item struct {
			Key   string `json:"key"`
			Value string `json:"value"`
		}
		out := struct {
			Items []item `json:"items"`
			Next  any    `json:"next"`
		}{Items: []item{}}
		f.mu.Lock()
		for k, v := range f.kv {
			if strings.HasPrefix(k, prefix) && k > after && len(out.Items) < limit {
				out.Items = append(out.Items, item{k, string(v)})
			}
		}
		f.mu.Unlock()
		json.NewEncoder(w).Encode(out)
	case strings.HasPrefix(p, "/v1/kv/"):
		key, err := url.PathUnescape(strings.TrimPrefix(p, "/v1/kv/"))
		if err != nil || key == "" {
			jsonError(w, 400, "bad key")
			return
		}
		switch r.Method {
		case http.MethodGet:
			f.mu.Lock()
			v, ok := f.kv[key]
			f.mu.Unlock()
			if !ok {
				jsonError(w, 404, "not found")
				return
			}
			w.Write(v)
		case http.MethodPut:
			if n := f.puts.Add(1); f.failPut > 0 && r.Header.Get("X-Vegeta-Seq") != "" && n%f.failPut == 0 {
				jsonError(w, 503, "too few replicas")
				return
			}
			var buf bytes.Buffer
			buf.ReadFrom(r.Body)
			f.mu.Lock()
			f.kv[key] = buf.Bytes()
			f.mu.Unlock()
			w.WriteHeader(http.StatusNoContent)
		default:
			jsonError(w, 405, "method not allowed")
		}
	default:
		jsonError(w, 404, "no such endpoint")
	}
}

func testConfig(t *testing.T, addrs []string) Config {
	c := DefaultConfig()
	c.Addrs = addrs
	c.Duration = 1500 * time.Millisecond
	c.Concurrency = 4
	c.Keys = 300
	c.ValueSize = 32
	c.Seed = 42
	c.Interval = 250 * time.Millisecond
	c.Out = filepath.Join(t.TempDir(), "out")
	return c
}

// TestRunToken: with --token every request of a run (the key check, the
// preload, the attack, the LSM samples) carries the bearer token.
func TestRunToken(t *testing.T) {
	f := newFakeCluster(t, 1, 0)
	f.token = "s3cret"
	c := testConfig(t, f.addrs())
	c.Duration = 300 * time.Millisecond
	c.Keys = 50
	c.Token = "s3cret"
	r, err := Run(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if n := f.unauth.Load(); n != 0 || r.Summary.Errors != 0 || r.Summary.OK == 0 || f.lsm.Load() == 0 {
		t.Errorf("with the token: %d refused, %d errors, %d ok, %d LSM samples", n, r.Summary.Errors, r.Summary.OK, f.lsm.Load())
	}
	c.Token = ""
	c.Preload = PreloadNever
	c.Out = filepath.Join(t.TempDir(), "out2")
	r, err = Run(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if r.Summary.OK != 0 || f.unauth.Load() == 0 {
		t.Errorf("without the token: %d ok, %d refused", r.Summary.OK, f.unauth.Load())
	}
}

// TestRunEndToEnd runs workload b at full speed against two fake nodes for
// 1.5s and checks that every figure of the report adds up.
func TestRunEndToEnd(t *testing.T) {
	f := newFakeCluster(t, 2, 20)
	c := testConfig(t, f.addrs())
	var progress bytes.Buffer
	c.Progress = &progress
	r, err := Run(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	s := r.Summary
	if s.Requests < 50 {
		t.Fatalf("only %d requests in 1.5s", s.Requests)
	}
	if s.OK+s.Misses+s.Errors != s.Requests {
		t.Errorf("ok %d + misses %d + errors %d != requests %d", s.OK, s.Misses, s.Errors, s.Requests)
	}
	if !r.Preload.Done || r.Preload.Keys != c.Keys {
		t.Errorf("preload %+v: want the keys written first", r.Preload)
	}
	if s.Misses != 0 {
		t.Errorf("%d misses after the preload", s.Misses)
	}
	// Round-robin: the two nodes got the same number of requests, give or take one.
	a, b := f.hits[0].Load(), f.hits[1].Load()
	if uint64(a+b) != s.Requests || a-b > 1 || b-a > 1 {
		t.Errorf("nodes got %d and %d requests for %d results", a, b, s.Requests)
	}
	// About 5% PUTs, of which every 20th failed with 503.
	var ops, opErr uint64
	for _, o := range r.Ops {
		ops += o.Requests
		opErr += o.Errors
		if o.OK+o.Misses+o.Errors != o.Requests {
			t.Errorf("op %+v does not add up", o)
		}
	}
	if ops != s.Requests || opErr != s.Errors {
		t.Errorf("ops sum to %d requests, %d errors; summary %d, %d", ops, opErr, s.Requests, s.Errors)
	}
	if s.Errors > 0 && (s.ErrorsByCode["503"] != s.Errors || len(s.ErrorSamples) != 1 || !strings.Contains(s.ErrorSamples[0], "too few replicas")) {
		t.Errorf("errors by code %v, samples %q", s.ErrorsByCode, s.ErrorSamples)
	}
	var codes uint64
	for _, n := range s.StatusCodes {
		codes += n
	}
	var series, hist uint64
	for _, x := range r.Series {
		series += x.Requests
		if x.OK+x.Misses+x.Errors != x.Requests {
			t.Errorf("second %+v does not add up", x)
		}
	}
	for _, h := range r.Histogram {
		hist += h.Count
	}
	if codes != s.Requests || series != s.Requests || hist != s.Requests {
		t.Errorf("status codes %d, series %d, histogram %d; want %d each", codes, series, hist, s.Requests)
	}
	if n := len(r.Series); n < 1 || n > 3 {
		t.Errorf("%d seconds in the series of a 1.5s run", n)
	}
	l := s.Latency
	if !(l.P50 > 0 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.P999 && l.P999 <= l.Max) {
		t.Errorf("latency quantiles out of order: %+v", l)
	}
	if len(r.LSM) != 2 {
		t.Fatalf("%d LSM series for 2 nodes", len(r.LSM))
	}
	for _, n := range r.LSM {
		if len(n.Samples) < 3 || n.Profile != "balanced" || n.Error != "" {
			t.Errorf("node %s: %d samples, profile %q, error %q", n.Addr, len(n.Samples), n.Profile, n.Error)
		}
		if n.Summary.Flushes <= 0 || n.Summary.MaxCompactionDebt == 0 || n.Summary.WriteAmp != 1.5 {
			t.Errorf("node %s: summary %+v", n.Addr, n.Summary)
		}
	}
	if !strings.Contains(progress.String(), "preload: writing 300 keys") || !strings.Contains(progress.String(), "req/s") ||
		strings.Contains(progress.String(), "\r") {
		t.Errorf("progress output:\n%s", progress.String())
	}

	// The files.
	raw, err := os.ReadFile(filepath.Join(c.Out, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"config", "summary", "ops", "series", "histogram", "lsm", "preload", "elapsed_seconds"} {
		if _, ok := m[k]; !ok {
			t.Errorf("report.json lacks %q", k)
		}
	}
	sum := m["summary"].(map[string]any)
	for _, k := range []string{"requests", "requests_per_second", "ok", "misses", "errors", "success_ratio", "errors_by_status", "latency", "bytes_in", "bytes_out"} {
		if _, ok := sum[k]; !ok {
			t.Errorf("report.json summary lacks %q", k)
		}
	}
	lat := sum["latency"].(map[string]any)
	for _, k := range []string{"p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms"} {
		if _, ok := lat[k]; !ok {
			t.Errorf("report.json latency lacks %q", k)
		}
	}
	sample := m["lsm"].([]any)[0].(map[string]any)["samples"].([]any)[0].(map[string]any)
	for _, k := range []string{"t", "l0_sublevels", "compaction_debt_bytes", "stalls", "stall_seconds", "flushes", "memtable_count", "compactions", "write_amp"} {
		if _, ok := sample[k]; !ok {
			t.Errorf("report.json LSM sample lacks %q", k)
		}
	}
	html, err := os.ReadFile(filepath.Join(c.Out, "report.html"))
	if err != nil {
		t.Fatal(err)
	}
	checkSelfContained(t, string(html))
	for _, want := range []string{"L0 sublevels", "compaction debt", "write stalls", "flushes", "latency per second", "throughput", "latency distribution", "503"} {
		if !strings.Contains(string(html), want) {
			t.Errorf("report.html lacks %q", want)
		}
	}

	var out bytes.Buffer
	r.WriteSummary(&out)
	for _, want := range []string{"req/s", "p99.9", "errors     503:", "lsm        127.0.0.1:"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, out.String())
		}
	}
}

// checkSelfContained fails if the page loads anything: no scripts or
// stylesheets by reference, no src or href to the network.
func checkSelfContained(t *testing.T, html string) {
	t.Helper()
	if regexp.MustCompile(`(?i)(src|href)\s*=\s*["']?\s*(https?:)?//`).MatchString(html) {
		t.Error("report.html references the network")
	}
	if regexp.MustCompile(`(?i)<script[^>]*\ssrc|<link|@import|url\(`).MatchString(html) {
		t.Error("report.html loads an external resource")
	}
	if !strings.Contains(html, "<svg") {
		t.Error("report.html has no inline chart")
	}
}

// TestRunFixedRateAndMisses: --rate paces the requests, a GET of an absent
// key is a miss and not an error, and --preload never skips the writes.
func TestRunFixedRateAndMisses(t *testing.T) {
	f := newFakeCluster(t, 1, 0)
	c := testConfig(t, f.addrs())
	c.Workload = workload.Get
	c.Preload = PreloadNever
	c.Rate = 100
	c.Duration = time.Second
	c.Distribution = workload.Uniform
	r, err := Run(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	s := r.Summary
	if s.Requests < 90 || s.Requests > 102 {
		t.Errorf("%d requests at 100/s for 1s", s.Requests)
	}
	if s.Misses != s.Requests || s.Errors != 0 || s.SuccessRatio != 1 || r.Preload.Done {
		t.Errorf("summary %+v, preload %+v: want every request a miss", s, r.Preload)
	}
	if len(r.Ops) != 1 || r.Ops[0].Op != "get" {
		t.Errorf("ops %+v", r.Ops)
	}
}

// TestRunScanAndUnreachable: the scan workload, and a node that is not there.
func TestRunScanAndUnreachable(t *testing.T) {
	f := newFakeCluster(t, 1, 0)
	c := testConfig(t, f.addrs())
	c.Workload = workload.ScanAll
	c.Keys = 50
	c.Duration = 500 * time.Millisecond
	c.ScanLimit = 10
	r, err := Run(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if r.Summary.Errors != 0 || r.Summary.OK != r.Summary.Requests || r.Ops[0].Op != "scan" || r.Summary.BytesIn == 0 {
		t.Errorf("scan run: %+v, ops %+v", r.Summary, r.Ops)
	}
	// Preloaded now: a second read run finds the keys and skips the preload.
	c.Workload = workload.C
	r, err = Run(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if r.Preload.Done || !strings.Contains(r.Preload.Reason, "already there") || r.Summary.Misses != 0 {
		t.Errorf("second run: preload %+v, misses %d", r.Preload, r.Summary.Misses)
	}

	srv := httptest.NewServer(http.NotFoundHandler())
	addr := srv.Listener.Addr().String()
	srv.Close()
	c.Addrs = []string{addr}
	_, err = Run(context.Background(), c)
	var ue *UnreachableError
	if !errors.As(err, &ue) || ue.Addr != addr {
		t.Fatalf("run against a closed port: %v", err)
	}
}

// TestRunInterrupted: ending the context stops the run early and still
// writes the report.
func TestRunInterrupted(t *testing.T) {
	f := newFakeCluster(t, 1, 0)
	c := testConfig(t, f.addrs())
	c.Workload = workload.Put
	c.Duration = time.Minute
	ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	r, err := Run(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Interrupted || time.Since(t0) > 10*time.Second || r.Summary.Requests == 0 || r.Preload.Done {
		t.Errorf("interrupted %v after %s, %d requests, preload %+v", r.Interrupted, time.Since(t0), r.Summary.Requests, r.Preload)
	}
	if _, err := os.Stat(filepath.Join(c.Out, "report.html")); err != nil {
		t.Error(err)
	}
}

// TestTargeter: URLs, methods and bodies of each operation, and the
// round-robin over nodes.
func TestTargeter(t *testing.T) {
	c := DefaultConfig()
	c.Workload = workload.A
	c.Keys = 10
	c.KeyPrefix = "k y/"
	c.ScanLimit = 7
	keys, _ := workload.NewChooser(workload.Uniform, 10, 0.99)
	bases := []string{"http://n1:1", "http://n2:2"}
	value := makeValue(5, 1)
	tg := newTargets(&c, bases, keys, 1, value)
	var tgt vegeta.Target
	tg.fill(&tgt, workload.Read, bases[0], 3)
	if tgt.Method != "GET" || tgt.URL != "http://n1:1/v1/kv/k%20y%2F3" || tgt.Body != nil {
		t.Errorf("read target %+v", tgt)
	}
	tg.fill(&tgt, workload.Update, bases[1], 9)
	if tgt.Method != "PUT" || tgt.URL != "http://n2:2/v1/kv/k%20y%2F9" || !bytes.Equal(tgt.Body, value) || len(value) != 5 {
		t.Errorf("update target %+v", tgt)
	}
	tg.fill(&tgt, workload.Scan, bases[0], 4)
	if tgt.Method != "GET" || tgt.URL != "http://n1:1/v1/kv?prefix=k+y%2F&after=k+y%2F4&limit=7" || tgt.Body != nil {
		t.Errorf("scan target %+v", tgt)
	}
	u, _ := url.Parse(tgt.URL)
	if q := u.Query(); q.Get("prefix") != "k y/" || q.Get("after") != "k y/4" || q.Get("limit") != "7" {
		t.Errorf("scan query %v", q)
	}
	for _, op := range []workload.Op{workload.Read, workload.Update, workload.Scan} {
		tg.fill(&tgt, op, bases[0], 1)
		if got := opOf(tgt.Method, tgt.URL, workload.BatchWrite); got != op {
			t.Errorf("opOf(%s %s) = %s", tgt.Method, tgt.URL, got)
		}
	}

	// Through the Targeter: alternating nodes, about half PUTs, keys in range.
	next := tg.Targeter()
	var puts int
	for i := range 2000 {
		if err := next(&tgt); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(tgt.URL, bases[i%2]+"/v1/kv/k%20y%2F") {
			t.Fatalf("request %d went to %s", i, tgt.URL)
		}
		if tgt.Method == "PUT" {
			puts++
		}
		var n int
		if _, err := fmt.Sscanf(tgt.URL[len(bases[0])+len("/v1/kv/k%20y%2F"):], "%d", &n); err != nil || n < 0 || n >= 10 {
			t.Fatalf("key out of range: %s", tgt.URL)
		}
	}
	if puts < 900 || puts > 1100 {
		t.Errorf("%d PUTs of 2000 in workload a", puts)
	}
	if v := makeValue(64, 1); !regexp.MustCompile(`^[A-Za-z0-9]{64}$`).Match(v) {
		t.Errorf("value %q", v)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		mod  func(*Config)
		want string
	}{
		{func(c *Config) { c.Addrs = nil }, "--addr"},
		{func(c *Config) { c.Addrs = []string{"ftp://h:1"} }, "--addr"},
		{func(c *Config) { c.Addrs = []string{"http://h:1/path"} }, "--addr"},
		{func(c *Config) { c.Workload = "z" }, "--workload"},
		{func(c *Config) { c.Distribution = "latest" }, "--distribution"},
		{func(c *Config) { c.Preload = "maybe" }, "--preload"},
		{func(c *Config) { c.Duration = 0 }, "--duration"},
		{func(c *Config) { c.Rate = -1 }, "--rate"},
		{func(c *Config) { c.Concurrency = 0 }, "--concurrency"},
		{func(c *Config) { c.Keys = 0 }, "--keys"},
		{func(c *Config) { c.ValueSize = -1 }, "--value-size"},
		{func(c *Config) { c.ZipfTheta = 1 }, "--zipf-theta"},
		{func(c *Config) { c.ScanLimit = 10001 }, "--scan-limit"},
		{func(c *Config) { c.KeyPrefix = "" }, "--key-prefix"},
		{func(c *Config) { c.Timeout = 0 }, "--timeout"},
		{func(c *Config) { c.Out = "" }, "--out"},
	} {
		c := DefaultConfig()
		tc.mod(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("want one line naming %s, got %v", tc.want, err)
		}
	}
	c := DefaultConfig()
	c.Distribution, c.ZipfTheta = workload.Uniform, 0 // theta only matters for zipf
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
	for in, want := range map[string]string{"h:1": "http://h:1", "http://h:1/": "http://h:1", " https://h:2 ": "https://h:2", "localhost": "http://localhost:8080", "http://h": "http://h:8080"} {
		if got, err := BaseURL(in); err != nil || got != want {
			t.Errorf("BaseURL(%q) = %q, %v", in, got, err)
		}
	}
}

// TestLSMSamplerNoEndpoint: a node without /v1/lsm (bench/baseline) is
// asked once, and the report says why it has no samples.
func TestLSMSamplerNoEndpoint(t *testing.T) {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		http.NotFound(w, r)
	}))
	defer srv.Close()
	s := newSampler("x", srv.URL, time.Now(), time.Second, "")
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Millisecond)
	defer cancel()
	s.run(ctx, 20*time.Millisecond)
	n := s.report()
	if calls.Load() != 1 || len(n.Samples) != 0 || !strings.Contains(n.Error, "404") {
		t.Errorf("%d calls, report %+v", calls.Load(), n)
	}
}

// TestHTMLSelfContained renders a hand-made report with hostile strings.
func TestHTMLSelfContained(t *testing.T) {
	r := &Report{Config: ReportConfig{Addrs: []string{"<b>h</b>:1"}, Workload: "b", Duration: 2, Keys: 5, Distribution: "zipf", ZipfTheta: 0.99}}
	r.Elapsed = 2
	r.Summary = Summary{Requests: 3, OK: 1, Misses: 1, Errors: 1, ErrorsByCode: map[string]uint64{"0": 1},
		ErrorSamples: []string{`transport: <script src="https://x">`}}
	r.Series = []Second{{T: 0, Requests: 2, OK: 1, Misses: 1, P50: 1, P99: 2}, {T: 1, Requests: 1, Errors: 1, P50: 3, P99: 3}}
	to := 1.0
	r.Histogram = []Bucket{{From: 0, To: &to, Count: 2}, {From: 1, Count: 1}}
	r.LSM = []NodeLSM{{Addr: "<b>h</b>:1", Samples: []LSMSample{{T: 0}, {T: 1, L0Sublevels: 3, Stalls: 1, StallSeconds: 0.2, Flushes: 2}}}}
	var b strings.Builder
	if err := writeHTML(&b, r); err != nil {
		t.Fatal(err)
	}
	html := b.String()
	checkSelfContained(t, html)
	if strings.Contains(html, "<b>h</b>") || strings.Contains(html, "<script") {
		t.Error("report.html does not escape its data")
	}
}

// TestLiveP99IsTheLastIntervals: the progress line's p99 is that of the
// answers received since the previous line, so a spike shows while it
// happens; a cumulative p99 would still show the fast second's.
func TestLiveP99IsTheLastIntervals(t *testing.T) {
	start := time.Unix(1000, 0)
	rec := newRecorder(start, 10*time.Second)
	add := func(n int, at time.Time, lat time.Duration) {
		for range n {
			rec.add(&vegeta.Result{Method: "GET", URL: "http://n/v1/kv/key-1", Code: 200, Timestamp: at, Latency: lat})
		}
	}
	var out bytes.Buffer
	p := &progressLine{w: &out} // a line a second, the default
	add(10000, start, time.Millisecond)
	p.show(rec, start.Add(time.Second), false)
	// The next second: half of its answers take 90ms, 0.5% of the run's.
	add(50, start.Add(time.Second), time.Millisecond)
	add(50, start.Add(time.Second), 90*time.Millisecond)
	p.show(rec, start.Add(2*time.Second), false)
	p.show(rec, start.Add(3*time.Second), false) // nothing answered
	p.show(rec, start.Add(3*time.Second), true)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("progress:\n%s", out.String())
	}
	for i, want := range []string{"p99 (last 1s) 1ms", "p99 (last 1s) 90ms", "p99 (last 1s) -"} {
		if !strings.HasSuffix(lines[i], want) {
			t.Errorf("line %d %q does not end in %q", i+1, lines[i], want)
		}
	}
	// The final line is the run's, a t-digest estimate well under the spike.
	if !strings.Contains(lines[3], "p99 (whole run) ") || strings.HasSuffix(lines[3], "90ms") {
		t.Errorf("final line %q", lines[3])
	}
}

// TestReportLegendsStayInside renders the report's charts for 1, 3 and 8
// nodes and checks that every legend entry is inside its chart (with 3
// nodes the flush/memtable chart once drew 3 of its 6 entries at x < 0).
func TestReportLegendsStayInside(t *testing.T) {
	for _, nodes := range []int{1, 3, 8} {
		r := &Report{Config: ReportConfig{Duration: 10}, Elapsed: 10}
		for i := range nodes {
			n := NodeLSM{Addr: fmt.Sprintf("127.0.0.1:%d", 18080+i)}
			for s := range 11 {
				n.Samples = append(n.Samples, LSMSample{T: float64(s), L0Sublevels: int32(s % 4), Flushes: int64(s), MemTableCount: 2})
			}
			r.LSM = append(r.LSM, n)
		}
		for j, row := range charts(r) {
			for side, svg := range []template.HTML{row.Left, row.Right} {
				es, err := charttest.Legends(string(svg))
				if err != nil {
					t.Fatal(err)
				}
				if err := charttest.CheckLegends(string(svg), len(es)); err != nil {
					t.Errorf("%d nodes, row %d, chart %d: %v", nodes, j, side, err)
				}
				if j == 3 && side == 1 && len(es) != 2*nodes {
					t.Errorf("%d nodes: the flush chart has %d legend entries, want %d", nodes, len(es), 2*nodes)
				}
			}
		}
	}
}

// TestReportTablesScroll: every table of report.html sits in a div that
// scrolls sideways, so a wide one scrolls inside a narrow window instead
// of running off the page.
func TestReportTablesScroll(t *testing.T) {
	r := &Report{Config: ReportConfig{Duration: 1, Addrs: []string{"127.0.0.1:1"}}, Elapsed: 1,
		LSM: []NodeLSM{{Addr: "127.0.0.1:1"}}}
	var b strings.Builder
	if err := writeHTML(&b, r); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	n := strings.Count(page, "<table")
	if n < 3 || strings.Count(page, `<div class="scroll"><table`) != n {
		t.Errorf("%d tables, %d in a scrolling div", n, strings.Count(page, `<div class="scroll"><table`))
	}
	if !regexp.MustCompile(`\.scroll\{[^}]*overflow-x:auto`).MatchString(page) {
		t.Error("no overflow-x:auto rule for .scroll")
	}
}
