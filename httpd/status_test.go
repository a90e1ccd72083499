package httpd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/ringkv/ringkv/peer/keyring"
	"github.com/ringkv/ringkv/peer/kv"
)

// TestStatusPageSelfContained: GET / is the embedded page, whose every
// byte is its own: no script, style, font or image from anywhere, and a
// Content-Security-Policy that lets it load nothing but its own data.
func TestStatusPageSelfContained(t *testing.T) {
	ts := newTestServer(t, Config{})
	resp := ts.roundTrip(t, rawRequest("GET", "/", nil), false)
	if resp.StatusCode() != 200 || !strings.HasPrefix(string(resp.Header.ContentType()), "text/html") {
		t.Fatalf("GET / = %d %s", resp.StatusCode(), resp.Header.ContentType())
	}
	body := string(resp.Body())
	if body != string(statusHTML) {
		t.Fatal("GET / is not the embedded page")
	}
	csp := string(resp.Header.Peek("Content-Security-Policy"))
	for _, want := range []string{"default-src 'none'", "connect-src 'self'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("Content-Security-Policy %q lacks %q", csp, want)
		}
	}
	// The SVG namespace is a name, not a fetch.
	urls := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}[^"' )]*`).FindAllString(body, -1)
	for _, u := range urls {
		if u != "http://www.w3.org/2000/svg" {
			t.Errorf("the page names an outside address: %s", u)
		}
	}
	for _, bad := range []string{"<script src", "<link", "@import", "url(", "<img", "<iframe"} {
		if strings.Contains(strings.ToLower(body), bad) {
			t.Errorf("the page loads something (%s)", bad)
		}
	}
	if !strings.Contains(body, `fetch("/v1/overview"`) {
		t.Error("the page does not poll /v1/overview")
	}
	if resp := ts.roundTrip(t, rawRequest("POST", "/", nil), false); resp.StatusCode() != fasthttp.StatusMethodNotAllowed {
		t.Errorf("POST / = %d", resp.StatusCode())
	}
}

// fakePeers answers NodeOverview from a table; an address listed in hang
// never answers, whatever its context says (a peer whose transport
// overstays its deadline), until the test ends.
type fakePeers struct {
	answers map[string]string
	hang    map[string]bool
	release chan struct{}
	mu      sync.Mutex
	calls   []string
}

func (p *fakePeers) NodeOverview(ctx context.Context, addr string) (json.RawMessage, error) {
	p.mu.Lock()
	p.calls = append(p.calls, addr)
	hang := p.hang[addr]
	a, ok := p.answers[addr]
	p.mu.Unlock()
	if hang {
		<-p.release
		return nil, fmt.Errorf("released")
	}
	if a == "old" {
		return nil, fmt.Errorf("%w: status 404", ErrNoOverview)
	}
	if ok {
		return json.RawMessage(a), nil
	}
	return nil, fmt.Errorf("dial tcp %s: connect: connection refused", addr)
}

func newFakePeers(t *testing.T) *fakePeers {
	p := &fakePeers{answers: map[string]string{}, hang: map[string]bool{}, release: make(chan struct{})}
	t.Cleanup(func() { close(p.release) })
	return p
}

func getOverview(t *testing.T, ts *testServer, target string) []byte {
	t.Helper()
	resp := ts.roundTrip(t, rawRequest("GET", target, nil), false)
	if resp.StatusCode() != 200 || string(resp.Header.ContentType()) != "application/json" {
		t.Fatalf("GET %s = %d %s %s", target, resp.StatusCode(), resp.Header.ContentType(), resp.Body())
	}
	return resp.Body()
}

// TestOverviewGathersEveryMember: the node asks every member but itself
// at once, and a member that never answers costs the page PeerTimeout and
// is shown as not answering, with why; one that refuses says so.
func TestOverviewGathersEveryMember(t *testing.T) {
	peers := newFakePeers(t)
	peers.answers["127.0.0.1:8081"] = `{"id":"node-2","version":"v9"}`
	peers.hang["127.0.0.1:8082"] = true // node-3, dead in the view
	ts := newClusterTestServer(t, Config{NodeID: "node-1", Status: StatusConfig{Version: "v1", Peers: peers, PeerTimeout: time.Second}})
	var ov Overview
	if err := json.Unmarshal(getOverview(t, ts, "/v1/overview"), &ov); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, n := range ov.Nodes {
		got = append(got, fmt.Sprintf("%s %s asked=%v err=%q snapshot=%v", n.ID, n.State, n.Asked, n.Error, n.Snapshot != nil))
	}
	want := []string{
		`node-1 alive asked=true err="" snapshot=true`,
		`node-2 alive asked=true err="" snapshot=true`,
		`node-3 dead asked=true err="no answer within 1s" snapshot=true`,
	}
	want[2] = strings.Replace(want[2], "snapshot=true", "snapshot=false", 1)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("overview nodes:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if ov.Node != "node-1" || ov.TimeoutSeconds != 1 {
		t.Errorf("overview of %q, timeout %v", ov.Node, ov.TimeoutSeconds)
	}
	if string(ov.Nodes[1].Snapshot) != `{"id":"node-2","version":"v9"}` {
		t.Errorf("node-2's snapshot = %s", ov.Nodes[1].Snapshot)
	}
	var self NodeSnapshot
	if err := json.Unmarshal(ov.Nodes[0].Snapshot, &self); err != nil {
		t.Fatal(err)
	}
	if self.ID != "node-1" || self.Version != "v1" || self.Cluster == nil || len(self.Cluster.Members) != 3 {
		t.Errorf("own snapshot: %+v", self)
	}

	// An older release, without /v1/overview, answers but has nothing
	// to say: not shown as down.
	peers.mu.Lock()
	peers.answers["127.0.0.1:8081"] = "old"
	peers.mu.Unlock()
	ts.statusPage.mu.Lock()
	ts.statusPage.last = nil // no reuse of the last gathering
	ts.statusPage.mu.Unlock()
	ov = Overview{}
	if err := json.Unmarshal(getOverview(t, ts, "/v1/overview"), &ov); err != nil {
		t.Fatal(err)
	}
	if n := ov.Nodes[1]; !n.Unsupported || n.Error != "" || n.Snapshot != nil {
		t.Errorf("node-2 of an older release: %+v", n)
	}

	// A refusal is told as it is.
	peers.mu.Lock()
	delete(peers.hang, "127.0.0.1:8082")
	peers.mu.Unlock()
	ts.statusPage.mu.Lock()
	ts.statusPage.last = nil // no reuse of the last gathering
	ts.statusPage.mu.Unlock()
	ov = Overview{}
	if err := json.Unmarshal(getOverview(t, ts, "/v1/overview"), &ov); err != nil {
		t.Fatal(err)
	}
	if e := ov.Nodes[2].Error; !strings.Contains(e, "connection refused") {
		t.Errorf("node-3's error = %q", e)
	}
}

// TestOverviewShared: requests while a gathering is under way wait for
// it, and those within overviewReuse of it get its answer: N open pages
// cost the members one snapshot each, not N.
func TestOverviewShared(t *testing.T) {
	peers := newFakePeers(t)
	peers.answers["127.0.0.1:8081"] = `{"id":"node-2"}`
	peers.hang["127.0.0.1:8082"] = true // holds each gathering for PeerTimeout
	ts := newClusterTestServer(t, Config{NodeID: "node-1", Status: StatusConfig{Peers: peers, PeerTimeout: 200 * time.Millisecond}})
	var mu sync.Mutex
	clock := time.Unix(1_000_000, 0)
	ts.statusPage.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	calls := func() int {
		peers.mu.Lock()
		defer peers.mu.Unlock()
		n := 0
		for _, c := range peers.calls {
			if c == "127.0.0.1:8081" {
				n++
			}
		}
		return n
	}
	var wg sync.WaitGroup
	bodies := make([]string, 4)
	for i := range bodies {
		wg.Go(func() { bodies[i] = string(getOverview(t, ts, "/v1/overview")) })
	}
	wg.Wait()
	if n := calls(); n != 1 {
		t.Errorf("4 requests asked node-2 %d times, want 1", n)
	}
	for i := range bodies {
		if bodies[i] != bodies[0] {
			t.Errorf("request %d got another gathering", i)
		}
	}
	mu.Lock()
	clock = clock.Add(overviewReuse)
	mu.Unlock()
	getOverview(t, ts, "/v1/overview")
	if n := calls(); n != 2 {
		t.Errorf("a request %s after the last gathering: node-2 asked %d times in all, want 2", overviewReuse, n)
	}
}

// TestHistoryRunStops: Run returns when its context ends.
func TestHistoryRunStops(t *testing.T) {
	h := NewHistory(prometheus.NewRegistry(), 0)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); h.Run(ctx) }()
	cancel()
	<-done
}

// TestOverviewLeftMemberNotAsked: a member that left the ring is listed
// and not asked; without OverviewPeers no member is.
func TestOverviewLeftMemberNotAsked(t *testing.T) {
	ts := newClusterTestServer(t, Config{NodeID: "node-1"})
	var ov Overview
	if err := json.Unmarshal(getOverview(t, ts, "/v1/overview"), &ov); err != nil {
		t.Fatal(err)
	}
	if len(ov.Nodes) != 3 || ov.Nodes[1].Asked || ov.Nodes[2].Asked || ov.Nodes[1].Error != "" {
		t.Fatalf("without peers: %+v", ov.Nodes)
	}
}

// TestOverviewNodeScope: ?scope=node is this node's own snapshot: its
// view, health, metrics, request counts, history and LSM report.
func TestOverviewNodeScope(t *testing.T) {
	ts := newClusterTestServer(t, Config{NodeID: "node-1", Status: StatusConfig{Version: "v1.2.3"}})
	ts.ops.setHealth(kv.Degraded{Reason: "disk full", RefusesWrites: true})
	ts.roundTrip(t, rawRequest("GET", "/v1/kv/absent", nil), false)
	var ns struct {
		NodeSnapshot
		LSM fakeLSM `json:"lsm"`
	}
	b := getOverview(t, ts, NodeScopeURI)
	if err := json.Unmarshal(b, &ns); err != nil {
		t.Fatal(err)
	}
	if ns.ID != "node-1" || ns.Version != "v1.2.3" || ns.Cluster == nil || ns.Cluster.Self != "node-1" {
		t.Errorf("snapshot: %s", b)
	}
	if len(ns.Health) != 1 || ns.Health[0].Reason != "disk full" {
		t.Errorf("health = %+v", ns.Health)
	}
	if ns.LSM.Profile != "balanced" || len(ns.LSM.Levels) != 2 {
		t.Errorf("lsm = %+v", ns.LSM)
	}
	found := false
	for _, r := range ns.Requests {
		found = found || r == requestCount{Op: "get", Code: "404", Count: 1}
	}
	if !found {
		t.Errorf("requests = %+v, want get 404 1", ns.Requests)
	}
	if ns.History != nil {
		t.Error("a history without StatusConfig.History")
	}
	if _, ok := ns.Metrics["ringkv_disk_free_bytes"]; ok {
		t.Error("a metric the registry does not have")
	}
}

// TestOverviewWithoutCluster: a node without clustering shows itself and
// its member list.
func TestOverviewWithoutCluster(t *testing.T) {
	ts := newTestServer(t, Config{NodeID: "solo"})
	var ov Overview
	if err := json.Unmarshal(getOverview(t, ts, "/v1/overview"), &ov); err != nil {
		t.Fatal(err)
	}
	var ns NodeSnapshot
	if len(ov.Nodes) != 1 || json.Unmarshal(ov.Nodes[0].Snapshot, &ns) != nil || ns.Cluster != nil || len(ns.Members) != 2 {
		t.Fatalf("overview: %+v", ov)
	}
}

// TestHistory: per-second rates, 5xx, status codes and latency
// percentiles from the request metrics, and the per-second increase of a
// counter.
func TestHistory(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := newMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	repairs := prometheus.NewCounter(prometheus.CounterOpts{Name: "ringkv_read_repairs_total", Help: "x"})
	reg.MustRegister(repairs)
	h := NewHistory(reg, 10)
	t0 := time.Unix(1_000_000, 0)
	if err := h.Sample(t0); err != nil {
		t.Fatal(err)
	}
	if w := h.Window(0); len(w.Ops) != 0 || w.End != t0.Unix() {
		t.Fatalf("window after the baseline: %+v", w)
	}
	for range 98 {
		m.observe(opGet, 200, 3*time.Millisecond)
	}
	m.observe(opGet, 503, 2*time.Second)
	m.observe(opGet, 404, 2*time.Second)
	repairs.Add(6)
	if err := h.Sample(t0.Add(2 * time.Second)); err != nil { // a missed tick: two seconds
		t.Fatal(err)
	}
	m.observe(opPut, 204, time.Millisecond)
	if err := h.Sample(t0.Add(3 * time.Second)); err != nil {
		t.Fatal(err)
	}
	w := h.Window(0)
	if w.End != t0.Unix()+3 || w.Seconds != 3 {
		t.Fatalf("window ends %d over %d s", w.End, w.Seconds)
	}
	get := w.Ops["get"]
	if get == nil || get["rate"][1] != 50 || get["errors"][1] != 0.5 || get["rate"][2] != 0 {
		t.Errorf("get: %v", get)
	}
	// 3ms lies in the bucket (2.15ms, 4.64ms]; the p99 (rank 99 of 100)
	// in (1s, 2.15s] with the two slow ones.
	if p := get["p50_ms"][1]; p < 2.1 || p > 4.7 {
		t.Errorf("p50 = %vms", p)
	}
	if p := get["p99_ms"][1]; p < 1000 || p > 2200 {
		t.Errorf("p99 = %vms", p)
	}
	if put := w.Ops["put"]; put == nil || put["rate"][2] != 1 || put["rate"][1] != 0 {
		t.Errorf("put: %v", put)
	}
	if c := w.Codes["503"]; c == nil || c[1] != 0.5 {
		t.Errorf("503s: %v", w.Codes)
	}
	if _, ok := w.Codes["200"]; ok {
		t.Error("2xx counted among the codes")
	}
	if c := w.Counters["ringkv_read_repairs_total"]; c == nil || c[1] != 3 {
		t.Errorf("read repairs: %v", w.Counters)
	}
}

// TestSnapshotReplicaFailures: the node snapshot carries
// ringkv_replica_failures_total (its ops summed) and its per-second
// increase in the history, as the page's traffic section shows them.
func TestSnapshotReplicaFailures(t *testing.T) {
	fails := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ringkv_replica_failures_total", Help: "x"}, []string{"op"})
	// The history samples a registry of its own, holding the same counter:
	// the server's is made by the test server.
	hreg := prometheus.NewRegistry()
	hreg.MustRegister(fails)
	h := NewHistory(hreg, 10)
	ts := newClusterTestServer(t, Config{NodeID: "node-1", Status: StatusConfig{History: h}})
	ts.reg.MustRegister(fails)
	// Present from the first sample, as the node's collector always
	// exports both ops.
	fails.WithLabelValues("write").Add(0)
	fails.WithLabelValues("read").Add(0)
	t0 := time.Unix(1_000_000, 0)
	if err := h.Sample(t0); err != nil {
		t.Fatal(err)
	}
	fails.WithLabelValues("write").Add(3)
	fails.WithLabelValues("read").Add(1)
	if err := h.Sample(t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	var ns NodeSnapshot
	b := getOverview(t, ts, NodeScopeURI)
	if err := json.Unmarshal(b, &ns); err != nil {
		t.Fatal(err)
	}
	if v, ok := ns.Metrics["ringkv_replica_failures_total"]; !ok || v != 4 {
		t.Errorf("metrics: ringkv_replica_failures_total = %v, %v; want 4", v, ok)
	}
	if ns.History == nil {
		t.Fatalf("no history: %s", b)
	}
	if c := ns.History.Counters["ringkv_replica_failures_total"]; len(c) == 0 || c[len(c)-1] != 4 {
		t.Errorf("history: replica failures per second = %v, want 4 last", c)
	}
}

// TestHistoryBounded: a History keeps its Seconds samples and no more.
func TestHistoryBounded(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := newMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	h := NewHistory(reg, 5)
	t0 := time.Unix(2_000_000, 0)
	for i := range 20 {
		m.observe(opGet, 200, time.Millisecond)
		if err := h.Sample(t0.Add(time.Duration(i) * time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	h.mu.Lock()
	n, cap := h.mu.n, len(h.mu.ring)
	h.mu.Unlock()
	if n != 5 || cap != 5 {
		t.Fatalf("%d samples in a ring of %d", n, cap)
	}
	w := h.Window(100)
	if w.Seconds != 5 || w.End != t0.Unix()+19 || len(w.Ops["get"]["rate"]) != 5 {
		t.Fatalf("window: %+v", w)
	}
	for i, r := range w.Ops["get"]["rate"] {
		if r != 1 {
			t.Errorf("second %d: rate %v", i, r)
		}
	}
}

func TestBucketQuantile(t *testing.T) {
	bounds := []float64{1, 2, 4}
	f := func(q float64, counts []uint64, total uint64, want float64) {
		t.Helper()
		if got := bucketQuantile(q, bounds, counts, total); math.Abs(got-want) > 1e-9 {
			t.Errorf("bucketQuantile(%v, %v, %d) = %v, want %v", q, counts, total, got, want)
		}
	}
	f(0.5, []uint64{0, 0, 0}, 0, 0)
	f(0.5, []uint64{10, 0, 0}, 10, 0.5)
	f(0.5, []uint64{0, 10, 0}, 10, 1.5)
	f(0.99, []uint64{50, 0, 50}, 100, 2+2*0.98)
	f(0.5, []uint64{5, 5, 0}, 10, 1)
	// Past the last bound (counted in total, in no bucket): the last bound.
	f(0.99, []uint64{1, 0, 0}, 10, 4)
}

// TestTransportNodeOverview: a peer's signed read of a node's snapshot
// is answered although the node has --auth-file; one signed with another
// secret is refused; a node without /v1/overview (an older release) is
// told apart by ErrNoOverview.
func TestTransportNodeOverview(t *testing.T) {
	_, addr := helloServer(t, "node-b", Config{Auth: authFor(t)}, helloSecret)
	ctx := t.Context()
	tr := mustTransport(t, TransportConfig{NodeID: "node-a", Secrets: keyring.New("test", []byte(helloSecret))})
	defer tr.Close()
	b, err := tr.NodeOverview(ctx, addr)
	var ns NodeSnapshot
	if err != nil || json.Unmarshal(b, &ns) != nil || ns.ID != "node-b" || ns.Cluster == nil {
		t.Fatalf("a peer's signed snapshot read: %s, %v", b, err)
	}
	stranger := mustTransport(t, TransportConfig{NodeID: "node-a", Secrets: keyring.New("test", []byte("not the cluster's secret, 32 by"))})
	defer stranger.Close()
	if _, err := stranger.NodeOverview(ctx, addr); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("a snapshot read signed with another secret: %v, want 401", err)
	}
	// A server that knows no /v1/overview answers 404, as an older
	// release does.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Skip("no loopback:", err)
	}
	old := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) { ctx.Error("no such endpoint", fasthttp.StatusNotFound) }}
	go old.Serve(ln)
	defer old.Shutdown()
	if _, err := tr.NodeOverview(ctx, ln.Addr().String()); !errors.Is(err, ErrNoOverview) {
		t.Errorf("an older release: %v, want ErrNoOverview", err)
	}
}

// TestStatusPageRendersStates loads the page in headless Chromium (skipped
// without one, unless CI=true) against a node whose peers are fakes: a
// member that never answers, one whose snapshot has a transfer, an
// ongoing write stall with the advisor's advice, and text that would be
// markup if the page did not write it as text. It checks the DOM the
// page's script RENDERED.
func TestStatusPageRendersStates(t *testing.T) {
	browser := chromiumPath(t)
	now := time.Now()
	hostile := `<img src=x onerror="document.title='pwned'">`
	stallAdvice := "writes stalled: L0 reached 12 sublevels (--l0-stop-writes-threshold) because compactions out of L0 are slower than flushes; raise --l0-stop-writes-threshold (e.g. to 24)"
	rate := make([]float64, 60)
	p99 := make([]float64, 60)
	for i := range rate {
		rate[i], p99[i] = float64(100+i*10), float64(1+i%7)
	}
	peerSnap := map[string]any{
		"id": "node-2", "version": "ringkv v9 " + hostile, "time": now, "started": now.Add(-time.Hour),
		"cluster": kv.ClusterStatus{
			Self: "node-2", Replicas: 3, VNodes: 128, Members: fakeMembers,
			Transfers: []kv.Transfer{{Range: "(00, 80]", From: "node-1", To: "node-2", RangesDone: 3, RangesTotal: 10,
				BytesDone: 3 << 20, BytesTotal: 10 << 20, Rate: 1 << 20, ETASeconds: 7, Started: now.Add(-3 * time.Second).UTC().Format(time.RFC3339)}},
			HintsPending: map[string]int64{"node-3": 5}, Ownership: map[string]float64{},
			Leave: "handing ranges over: node-1 is pulling its new ranges (27 of 79 ranges)",
		},
		"health":   []kv.Degraded{},
		"metrics":  map[string]float64{"ringkv_disk_free_bytes": 5 << 30, "ringkv_read_repairs_total": 7, "ringkv_replica_failures_total": 23},
		"requests": []requestCount{{"get", "200", 1000}, {"put", "503", 3}},
		"history": HistoryWindow{End: now.Unix(), Seconds: 60, Ops: map[string]map[string][]float64{
			"get": {"rate": rate, "errors": make([]float64, 60), "p50_ms": p99, "p99_ms": p99}},
			Counters: map[string][]float64{"ringkv_replica_failures_total": p99}},
		"lsm": map[string]any{
			"profile": "balanced", "l0_sublevels": 12, "compaction_debt_bytes": 3 << 30,
			"levels": []map[string]any{{"level": 0, "sublevels": 12, "files": 30, "bytes": 90 << 20, "score": 2.5},
				{"level": 5, "files": 40, "bytes": 2 << 30, "score": 0.4}, {"level": 6, "files": 90, "bytes": 9 << 30}},
			"block_cache_hits": 90, "block_cache_misses": 10,
			"stalls": map[string]any{"count": 1, "duration_ns": 1.5e9, "recent": []map[string]any{{"reason": "L0 file count limit exceeded",
				"start": now.Add(-1500 * time.Millisecond), "duration_ns": 1.5e9, "ongoing": true, "flag": "l0-stop-writes-threshold", "advice": stallAdvice}}},
			"pebble_options": "[Version]\n  pebble_version=0.1\n" + hostile,
		},
	}
	b, err := json.Marshal(peerSnap)
	if err != nil {
		t.Fatal(err)
	}
	peers := newFakePeers(t)
	peers.answers["127.0.0.1:8081"] = string(b)
	peers.hang["127.0.0.1:8082"] = true
	ts, addr := newTCPClusterTestServer(t, Config{NodeID: "node-1", Status: StatusConfig{Version: "v1", Peers: peers, PeerTimeout: 300 * time.Millisecond}})
	ts.ops.setHealth(kv.Degraded{Reason: "disk full", Detail: "free 10MiB < --min-free-space 512MiB", RefusesWrites: true})

	dom := dumpDOM(t, browser, "http://"+addr+"/")
	for _, want := range []string{
		`<tr data-member="node-1" data-state="alive">`,
		`<tr data-member="node-2" data-state="alive">`,
		`<tr data-member="node-3" data-state="dead" class="down">`,
		`data-down="node-3"`, "node-3 does not answer",
		`class="card transfer" data-node="node-2" data-from="node-1"`, "3 / 10", "of ~10.0 MiB",
		`data-leave="node-2"`, "node-2 is leaving", "node-1 is pulling its new ranges (27 of 79 ranges)",
		`data-stall="ongoing"`, "writes stalled now, for 1.5 s", "advice: " + stallAdvice,
		"node-2: writes stalled for 1.5 s",
		"disk full", "(refuses writes)",
		`data-level="0"`, "90.0 MiB · 30 files", "compaction due",
		"<summary>Pebble options</summary>",
		"&lt;img src=x",
		`data-replica-failures="23"`, "<b>23</b><span>replica failures</span>", "<title>replica failures per second</title>",
		`id="script-errors" data-count="0"`,
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("rendered page lacks %q", want)
		}
	}
	if strings.Contains(dom, "<img src") || strings.Contains(dom, "<title>pwned") {
		t.Error("text from a snapshot was rendered as markup")
	}
	if t.Failed() {
		t.Logf("rendered page:\n%s", dom)
	}
}

// chromiumPath finds Debian's chromium; without one the test skips, but
// under CI=true (whose .ci/run installs it) it fails.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("no chromium on PATH: .ci/run installs Debian's chromium")
	}
	t.Skip("no chromium on PATH (apt-get install chromium; CI installs it)")
	return ""
}

// dumpDOM loads url in headless Chromium and returns the DOM after its
// scripts ran for 3 seconds of virtual time (the data here does not
// change, so virtual time is enough: the page renders its first answers).
func dumpDOM(t *testing.T, browser, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--no-first-run", "--user-data-dir="+t.TempDir(), "--window-size=1400,1000", "--virtual-time-budget=3000", "--dump-dom", url)
	var out, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium: %v\n%s", err, stderr.String())
	}
	return out.String()
}
