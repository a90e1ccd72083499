package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ringkv/ringkv/bench/load"
)

func TestParseWrk(t *testing.T) {
	out := "Running 2s test @ http://127.0.0.1:1\n  Latency 1ms\nRESULT requests=120 duration_us=2000000 rps=60.00 p50_us=900 p99_us=4100 errors=1 non2xx=2\n"
	r, err := parseWrk(out)
	if err != nil {
		t.Fatal(err)
	}
	want := wrkResult{Requests: 120, DurationUS: 2000000, RPS: 60, P50US: 900, P99US: 4100, Errors: 1, Non2xx: 2, Output: out}
	if !reflect.DeepEqual(r, want) {
		t.Errorf("got %+v\nwant %+v", r, want)
	}
	// A spread run's SPREAD line: each node's requests, in ADDRS order.
	spread, err := parseWrk(out + "SPREAD 127.0.0.1:2=70 127.0.0.1:1=50\n")
	if err != nil || !reflect.DeepEqual(spread.Spread, []nodeCount{{"127.0.0.1:2", 70}, {"127.0.0.1:1", 50}}) {
		t.Errorf("SPREAD: %+v, %v", spread.Spread, err)
	}
	if _, err := parseWrk(out + "SPREAD 127.0.0.1:2=x\n"); err == nil {
		t.Error("a bad SPREAD line parsed")
	}
	if _, err := parseWrk("wrk: connection refused\n"); err == nil || !strings.Contains(err.Error(), "no RESULT line") {
		t.Errorf("no RESULT line: %v", err)
	}
	if _, err := parseWrk("RESULT requests=x\n"); err == nil {
		t.Error("a bad number parsed")
	}
	if got := p99ms(4100); got != "4.10ms" {
		t.Errorf("p99ms(4100) = %q", got)
	}
	if got := wrkDuration(1500 * time.Millisecond); got != "2s" {
		t.Errorf("wrkDuration(1.5s) = %q", got)
	}
}

func TestParseStatTicks(t *testing.T) {
	// comm may hold spaces and parentheses: fields count from its last ')'.
	stat := "4242 (my (odd) server) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 75 0 0 20 0 8 0 100 1000000 500 18446744073709551615"
	n, err := parseStatTicks(stat)
	if err != nil || n != 325 {
		t.Errorf("parseStatTicks = %d, %v; want 325", n, err)
	}
	if _, err := parseStatTicks("4242 (x) S 1"); err == nil {
		t.Error("a short line parsed")
	}
	self, err := cpuTicks(os.Getpid())
	if err != nil || self < 0 {
		t.Errorf("cpuTicks(self) = %d, %v", self, err)
	}
	// 250 ticks of 100Hz over 100k requests: 25µs each.
	if got := cpuPerRequest(250, 100, 100000); got != 25 {
		t.Errorf("cpuPerRequest = %v", got)
	}
}

func TestFreeAddr(t *testing.T) {
	taken := map[int]bool{}
	seen := map[string]bool{}
	for range 5 {
		a, err := freeAddr(taken)
		if err != nil {
			t.Fatal(err)
		}
		if seen[a] {
			t.Fatalf("%s handed out twice", a)
		}
		seen[a] = true
	}
}

// TestHarnessStopsWhatItStarted: close stops every process still running,
// one that ignores SIGTERM too (killed after the grace), and removes the
// temp dir.
func TestHarnessStopsWhatItStarted(t *testing.T) {
	h, err := newHarness(t.TempDir(), "test", false, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	h.grace = 200 * time.Millisecond
	polite, err := h.start("polite", nil, "sleep", "300")
	if err != nil {
		t.Fatal(err)
	}
	stubborn, err := h.start("stubborn", nil, "sh", "-c", `trap "" TERM; echo ready; while :; do sleep 1; done`)
	if err != nil {
		t.Fatal(err)
	}
	// The trap must be in place before the SIGTERM comes.
	if err := waitFor(context.Background(), stubborn, time.Minute, "the trap", func() bool {
		b, _ := os.ReadFile(stubborn.logPath)
		return strings.Contains(string(b), "ready")
	}); err != nil {
		t.Fatal(err)
	}
	stopped, err := h.start("stopped", nil, "sleep", "300")
	if err != nil {
		t.Fatal(err)
	}
	h.stop(stopped)
	if !stopped.exited() || len(h.procs) != 2 {
		t.Fatalf("stop: exited %v, %d left", stopped.exited(), len(h.procs))
	}
	h.close()
	for _, p := range []*proc{polite, stubborn} {
		if !p.exited() {
			t.Errorf("%s still running after close", p.name)
		}
		if err := syscall.Kill(p.pid(), 0); err == nil {
			t.Errorf("%s (pid %d) still exists", p.name, p.pid())
		}
	}
	if _, err := os.Stat(h.work); !os.IsNotExist(err) {
		t.Errorf("temp dir %s left behind: %v", h.work, err)
	}
}

// shape is v's structure: objects by key, arrays by their first element,
// scalars by kind, so that two result files compare by shape alone.
func shape(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			out[k] = shape(e)
		}
		return out
	case []any:
		if len(x) == 0 {
			return "[]"
		}
		return []any{shape(x[0])}
	case float64:
		return "number"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", v)
}

// sameShape reports where got's shape departs from want's; an empty array
// on either side matches any array. got may have keys want lacks: new
// fields keep a file readable by what read the old ones.
func sameShape(t *testing.T, path string, want, got any) {
	t.Helper()
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			t.Errorf("%s: %v, want an object", path, got)
			return
		}
		wk, gk := slices.Sorted(maps.Keys(w)), slices.Sorted(maps.Keys(g))
		if slices.ContainsFunc(wk, func(k string) bool { return !slices.Contains(gk, k) }) {
			t.Errorf("%s: keys %v, want %v and perhaps more", path, gk, wk)
			return
		}
		for _, k := range wk {
			sameShape(t, path+"."+k, w[k], g[k])
		}
	case []any:
		if g, ok := got.([]any); ok {
			sameShape(t, path+"[0]", w[0], g[0])
		} else if got != "[]" {
			t.Errorf("%s: %v, want an array", path, got)
		}
	default:
		if want != got && !(want == "[]" && strings.HasPrefix(fmt.Sprint(got), "[")) {
			t.Errorf("%s: %v, want %v", path, got, want)
		}
	}
}

func readShape(t *testing.T, path string) any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return shape(v)
}

func parseShape(t *testing.T, js []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(js, &v); err != nil {
		t.Fatalf("%v\n%s", err, js)
	}
	return shape(v)
}

// The result files keep the shapes the scripts wrote, so that earlier
// results stay comparable: each test renders a report from made-up runs
// and compares its JSON with a file the script wrote.

func TestSingleReportShape(t *testing.T) {
	var runs []singleRun
	for r := 1; r <= 3; r++ {
		for _, tw := range [][2]string{{"ringkv", "get"}, {"ringkv", "put"}, {"baseline", "get"}, {"baseline", "put"}, {"const", "get"}} {
			runs = append(runs, singleRun{Round: r, Target: tw[0], Workload: tw[1], Requests: 1000, DurationUS: 1e6,
				RPS: float64(1000 * r), P50US: 100, P99US: int64(1000 * r), CPUUSPerReq: float64(10 + r), LoadAvg: 1})
		}
	}
	rep := singleReport{Date: "20260101T000000Z", Commit: "abc", Go: "go1", CPUs: 2, Setup: "KEYS=1", Pinning: "none",
		Rounds: 3, Targets: singleTargets, Runs: runs, Params: singleParams{Keys: 1, Duration: "1s", Sync: true}}
	rep.fold()
	md, js, err := rep.render()
	if err != nil {
		t.Fatal(err)
	}
	sameShape(t, "compare", readShape(t, "../../results/compare-20261129T061810Z.json"), parseShape(t, js))
	// Medians of each figure on its own (matrix.Median), ratios of them.
	if m := rep.Median["ringkv.get"]; m.RPS != 2000 || m.CPU != 12 || m.P99 != 2000 {
		t.Errorf("ringkv.get medians %+v", m)
	}
	if len(rep.Ratios) != 4 || rep.Ratios[0].RPS != 1 {
		t.Errorf("ratios %+v", rep.Ratios)
	}
	for _, want := range []string{"| ringkv | get | 2000 | 12.00 | 100 | 2000 |", "| ringkv/baseline PUT | 1.000 | 1.000 |", "Medians of 3 rounds"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	// A subset of targets leaves out the ratios it cannot make.
	rep.Targets = []string{"baseline", "const"}
	rep.fold()
	if len(rep.Ratios) != 1 || rep.Ratios[0].Name != "baseline GET/const GET" {
		t.Errorf("yardsticks only: ratios %+v", rep.Ratios)
	}
}

func TestClusterReportShape(t *testing.T) {
	res := map[string][]clusterRun{}
	for _, k := range []string{"single,get", "single,put", "cluster,get", "cluster,put"} {
		for r := range 3 {
			res[k] = append(res[k], clusterRun{RPS: float64(100 * (r + 1)), CPU: 10, P99: "1.00ms"})
		}
	}
	rep := clusterReport{Date: "x", Config: wrkConfig{Duration: time.Second, Rounds: 3}, CPUs: 2, Results: res}
	md, js, err := rep.render()
	if err != nil {
		t.Fatal(err)
	}
	sameShape(t, "cluster", readShape(t, "../../results/cluster-20261129T060740Z.json"), parseShape(t, js))
	if !strings.Contains(md, "| get | 200.00 | 200.00 | **1.000** |") || !strings.Contains(string(js), `"raw_single": "100.00 10.00 1.00ms;200.00 10.00 1.00ms;300.00 10.00 1.00ms;"`) {
		t.Errorf("md:\n%s\njson:\n%s", md, js)
	}
}

func TestScaleReportShape(t *testing.T) {
	res := map[int][]scaleRun{
		100000:  {{RPS: 400, CPU: 20, P99: "8.00ms", P99MS: 8, RSS: 60 << 20, HWM: 70 << 20, Cache: 10 << 20, Mem: 1 << 20}},
		1000000: {{RPS: 300, CPU: 30, P99: "9.00ms", P99MS: 9, RSS: 200 << 20, HWM: 400 << 20, Cache: 100 << 20, Mem: 1 << 20}},
	}
	rep := scaleReport{Date: "x", Config: scaleConfig{Sizes: "100000,1000000", Duration: time.Second, Warmup: time.Second, Rounds: 1},
		Sizes: []int{100000, 1000000}, CPUs: 2, Commit: "abc", Results: res}
	md, js, err := rep.render()
	if err != nil {
		t.Fatal(err)
	}
	old := readShape(t, "../../results/scale-20261129T150219Z.json").(map[string]any)["sizes"].(map[string]any)
	got := parseShape(t, js).(map[string]any)["sizes"].(map[string]any)
	if len(got) != 2 {
		t.Fatalf("sizes %v", got)
	}
	sameShape(t, "scale.sizes.N", old["100000"], got["1000000"])
	for _, want := range []string{"| 100000 | 400.00 | **1.000** |", "| 1000000 | 300.00 | **0.750** |", "| 251 | no |", "| 161 | yes |"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}

func TestMoveReportShape(t *testing.T) {
	r := moveResult{Keys: 1, ValueSize: 1, Rate: 1, TransferRate: "32MiB", DataDirBytes: 1 << 20, MovedBytes: 1 << 20, MoveSeconds: 1,
		MovedMiBPerS: 1, Commit: "abc", date: "x", command: "go run ./bench/cmd/compare move",
		Before: movePhase{Requests: 10, RPS: 1, Latency: load.Latency{P50: 1, P99: 2, Max: 3}}}
	md, js, err := r.render()
	if err != nil {
		t.Fatal(err)
	}
	sameShape(t, "move", readShape(t, "../../results/move-20261129T095040Z.json"), parseShape(t, js))
	if !strings.Contains(md, "| before the move | 10 | 1 | 0 | 0 | 1.00 | 2.00 | 3.0 |") {
		t.Errorf("markdown:\n%s", md)
	}
}

func TestMoveParsers(t *testing.T) {
	page := []byte("# HELP ringkv_transfer_bytes_total x\nringkv_transfer_bytes_total_other 5\nringkv_transfer_bytes_total 1.040893222e+09\n")
	if v, err := metricValue(page, "ringkv_transfer_bytes_total"); err != nil || v != 1040893222 {
		t.Errorf("metricValue = %v, %v", v, err)
	}
	if _, err := metricValue(page, "nope"); err == nil {
		t.Error("a missing metric was found")
	}
	if !settled([]byte(`{"settled":true,"members":[{},{}]}`), 2) || settled([]byte(`{"settled":true,"members":[{}]}`), 2) ||
		settled([]byte(`{"settled":false,"members":[{},{}]}`), 2) {
		t.Error("settled")
	}
	if n := aliveMembers([]byte(`{"members":[{"state":"alive"},{"state":"suspect"},{"state":"alive"}]}`)); n != 2 {
		t.Errorf("aliveMembers = %d", n)
	}
	if v := lsmField([]byte(`{"x":{"block_cache_bytes":15321336},"block_cache_bytes":7}`), "block_cache_bytes"); v != 15321336 {
		t.Errorf("lsmField = %d", v)
	}
}

func TestUsage(t *testing.T) {
	f := func(want int, args ...string) {
		t.Helper()
		var out, errb strings.Builder
		if got := run(args, &out, &errb); got != want {
			t.Errorf("run %v = %d, want %d; stderr %s", args, got, want, errb.String())
		}
	}
	f(exitUsage)
	f(exitUsage, "fast")
	f(exitOK, "-h")
	f(exitOK, "single", "-h")
	f(exitUsage, "single", "extra")
	f(exitUsage, "single", "-rounds", "0")
	f(exitUsage, "single", "-targets", "ringkv,nope")
	f(exitUsage, "cluster", "-duration", "10ms")
	f(exitUsage, "scale", "-sizes", "1,x")
	f(exitUsage, "scale", "-sizes", ", ")
	f(exitUsage, "move", "-rate", "0")
	f(exitOK, "tls", "-h")
	f(exitUsage, "tls", "-rounds", "0")
	f(exitUsage, "commitwait", "-bins", "=x")
	f(exitUsage, "single", "-bins", "a=/x", "-targets", "baseline")
	f(exitUsage, "single", "-bins", "a=")
	f(exitUsage, "cluster", "-bins", "=x")
	f(exitUsage, "cluster", "-conns", "2")
	f(exitUsage, "commitwait", "-duration", "1ms")
	// Nothing of a rejected run is left in the temp dir.
	if m, _ := filepath.Glob(filepath.Join(os.TempDir(), "ringkv-single.*")); len(m) != 0 {
		t.Logf("note: %v exist (another run?)", m)
	}
}

// TestSingleReportBins: with -bins each build is a target of its own,
// with its ratios to the yardsticks and, for a later build, to the first.
func TestSingleReportBins(t *testing.T) {
	builds := []cwBuild{{"before", "/a"}, {"after", "/b"}}
	var runs []singleRun
	for r := 1; r <= 3; r++ {
		for _, tw := range [][3]any{{"ringkv-before", "get", 1000.0}, {"ringkv-before", "put", 500.0}, {"ringkv-after", "get", 1500.0},
			{"ringkv-after", "put", 400.0}, {"baseline", "get", 1000.0}, {"baseline", "put", 1000.0}, {"const", "get", 2000.0}} {
			runs = append(runs, singleRun{Round: r, Target: tw[0].(string), Workload: tw[1].(string), Requests: 1000, DurationUS: 1e6,
				RPS: tw[2].(float64), P50US: 100, P99US: 1000, CPUUSPerReq: 10, LoadAvg: 1})
		}
	}
	rep := singleReport{Date: "20260101T000000Z", Commit: "abc", Go: "go1", CPUs: 2, Setup: "KEYS=1", Pinning: "none", Rounds: 3,
		Targets: []string{"ringkv-before", "ringkv-after", "baseline", "const"}, Builds: builds, Runs: runs,
		Params: singleParams{Keys: 1, Duration: "1s", Sync: true}}
	rep.fold()
	md, js, err := rep.render()
	if err != nil {
		t.Fatal(err)
	}
	got := parseShape(t, js).(map[string]any)
	sameShape(t, "compare", readShape(t, "../../results/compare-20261129T061810Z.json"), got)
	if _, ok := got["builds"]; !ok {
		t.Errorf("no builds in %s", js)
	}
	want := map[string]float64{"ringkv-before/baseline PUT": 0.5, "ringkv-after/baseline GET": 1.5, "ringkv-after GET/const GET": 0.75,
		"baseline GET/const GET": 0.5, "ringkv-after/ringkv-before GET": 1.5, "ringkv-after/ringkv-before PUT": 0.8}
	for _, q := range rep.Ratios {
		if w, ok := want[q.Name]; ok && q.RPS != w {
			t.Errorf("%s = %v, want %v", q.Name, q.RPS, w)
		}
		delete(want, q.Name)
	}
	if len(want) != 0 || len(rep.Ratios) != 9 {
		t.Errorf("missing ratios %v; got %+v", want, rep.Ratios)
	}
	for _, s := range []string{"| ringkv-after | put | 400 |", "| ringkv-after/ringkv-before PUT | 0.800 |", "ringkv-before (/a), ringkv-after (/b)"} {
		if !strings.Contains(md, s) {
			t.Errorf("markdown lacks %q:\n%s", s, md)
		}
	}
	if fileSafe("ringkv-/tmp/x") != "ringkv-_tmp_x" {
		t.Errorf("fileSafe = %q", fileSafe("ringkv-/tmp/x"))
	}
}

// TestClusterReportBins: the top level stays the first build's; builds
// holds each with its ratios to the first; spread runs note each node's
// share.
func TestClusterReportBins(t *testing.T) {
	mk := func(rps float64) map[string][]clusterRun {
		res := map[string][]clusterRun{}
		for _, k := range []string{"single,get", "single,put", "cluster,get", "cluster,put"} {
			run := clusterRun{RPS: rps, CPU: 10, P99: "1.00ms"}
			if strings.HasPrefix(k, "cluster") {
				run.Spread = []nodeCount{{"a", 1}, {"b", 1}, {"c", 2}}
			}
			res[k] = []clusterRun{run}
		}
		return res
	}
	by := map[string]map[string][]clusterRun{"before": mk(100), "after": mk(150)}
	rep := clusterReport{Date: "x", Config: wrkConfig{Duration: time.Second, Rounds: 1, Threads: 3, Conns: 63}, Spread: true, CPUs: 2,
		Results: by["before"], Bins: "before=/a,after=/b", Builds: []cwBuild{{"before", "/a"}, {"after", "/b"}}, ByBuild: by}
	md, js, err := rep.render()
	if err != nil {
		t.Fatal(err)
	}
	got := parseShape(t, js).(map[string]any)
	sameShape(t, "cluster", readShape(t, "../../results/cluster-20261129T060740Z.json"), got)
	for _, s := range []string{"| after | get | 150.00 | 150.00 | **1.000** |", "| after | **1.500** | **1.500** | **1.500** | **1.500** | 1.000 |",
		"-bins before=/a,after=/b", "-spread=true", "wrk -t3 spreads", "after: cluster put requests sent to nodes 1/2/3, by round: 25.0/25.0/50.0%."} {
		if !strings.Contains(md, s) {
			t.Errorf("markdown lacks %q:\n%s", s, md)
		}
	}
	for _, s := range []string{`"cluster_rps_vs_first": 1.5`, `"cluster_node_shares": "25.0/25.0/50.0%;"`, `"spread": true`, `"path": "/b"`} {
		if !strings.Contains(string(js), s) {
			t.Errorf("json lacks %s:\n%s", s, js)
		}
	}
}

func TestSpreadWrk(t *testing.T) {
	c := clusterConfig{wrkConfig: defaultWrk(1), Spread: true}
	if err := c.spreadWrk(3); err != nil || c.Threads != 3 || c.Conns != 63 {
		t.Errorf("spread: -t%d -c%d, %v; want -t3 -c63", c.Threads, c.Conns, err)
	}
	c = clusterConfig{wrkConfig: defaultWrk(1)}
	if err := c.spreadWrk(3); err != nil || c.Threads != 1 || c.Conns != 64 {
		t.Errorf("no spread: -t%d -c%d, %v", c.Threads, c.Conns, err)
	}
	c = clusterConfig{wrkConfig: defaultWrk(1), Spread: true}
	c.Conns = 2
	if err := c.spreadWrk(3); !errors.Is(err, errUsage) {
		t.Errorf("-conns 2: %v", err)
	}
}
