package main

import (
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ringkv/ringkv/bench/matrix"
)

// singleConfig is `compare single` (compare.sh's variables, as flags).
type singleConfig struct {
	wrkConfig
	Targets    string // comma- or space-separated subset of ringkv, baseline, const
	Pin        string // auto, 0 or 1
	ServerCPUs string
	WrkCPUs    string
	Shuffle    bool
	Bins       string // label=path,...: ringkv builds, each its own target
}

var singleTargets = []string{"ringkv", "baseline", "const"}

func singleFlags(fs *flag.FlagSet) func(context.Context, *runEnv) error {
	c := singleConfig{wrkConfig: defaultWrk(3), Targets: "ringkv,baseline,const", Pin: "auto"}
	c.register(fs, "extra `ringkv serve` flags, space-separated, e.g. '--row-cache-size 0'")
	fs.StringVar(&c.Targets, "targets", c.Targets, "any subset of ringkv,baseline,const")
	fs.StringVar(&c.Pin, "pin", c.Pin, "CPU pinning: auto (only with 4+ CPUs), 1 (always) or 0 (never)")
	fs.StringVar(&c.ServerCPUs, "server-cpus", "", "taskset -c list for the server when pinning (default: the first half, or 0)")
	fs.StringVar(&c.WrkCPUs, "wrk-cpus", "", "taskset -c list for wrk and the preload when pinning (default: the second half, or 1)")
	fs.BoolVar(&c.Shuffle, "shuffle", false, "preload the keys in a random order")
	fs.StringVar(&c.Bins, "bins", "", "ringkv binaries to compare, LABEL=PATH or PATH, comma-separated: each is a target ringkv-LABEL in the rotation, in place of the checkout's ringkv")
	return func(ctx context.Context, e *runEnv) error { return runSingle(ctx, e, c) }
}

// targetList parses -targets.
func targetList(s string) ([]string, error) {
	return parseList("targets", s, func(t string) (string, error) {
		if !slices.Contains(singleTargets, t) {
			return "", usageErr("unknown target %q in -targets (want ringkv, baseline, const)", t)
		}
		return t, nil
	})
}

// singleRun is one wrk run: a row of runs.tsv in compare.sh.
type singleRun struct {
	Round       int     `json:"round"`
	Target      string  `json:"target"`
	Workload    string  `json:"workload"`
	Requests    int64   `json:"requests"`
	DurationUS  int64   `json:"duration_us"`
	RPS         float64 `json:"rps"`
	P50US       int64   `json:"p50_us"`
	P99US       int64   `json:"p99_us"`
	Errors      int64   `json:"errors"`
	Non2xx      int64   `json:"non2xx"`
	CPUUSPerReq float64 `json:"cpu_us_per_req"`
	LoadAvg     float64 `json:"loadavg_1m"`
}

// pinning works out -pin: the taskset prefixes and the sentence saying
// what was done.
func pinning(c singleConfig, ncpu int) (server, wrk []string, desc string, err error) {
	if c.Pin != "auto" && c.Pin != "0" && c.Pin != "1" {
		return nil, nil, "", usageErr("-pin must be auto, 0 or 1, got %q", c.Pin)
	}
	if c.Pin == "0" || (c.Pin == "auto" && ncpu < 4) {
		return nil, nil, fmt.Sprintf("none (PIN=%s, %d CPUs): server, wrk and preload share all CPUs", c.Pin, ncpu), nil
	}
	sc, wc := c.ServerCPUs, c.WrkCPUs
	if ncpu >= 4 {
		sc = cmp.Or(sc, fmt.Sprintf("0-%d", ncpu/2-1))
		wc = cmp.Or(wc, fmt.Sprintf("%d-%d", ncpu/2, ncpu-1))
	} else {
		sc, wc = cmp.Or(sc, "0"), cmp.Or(wc, "1")
	}
	return []string{"taskset", "-c", sc}, []string{"taskset", "-c", wc},
		fmt.Sprintf("server on CPUs %s (Go sizes GOMAXPROCS to them), wrk and preload on CPUs %s", sc, wc), nil
}

// singleRunner holds what every round of `compare single` shares.
type singleRunner struct {
	e                 *runEnv
	c                 singleConfig
	addrs             map[string]string // target (and "gossip") -> 127.0.0.1:PORT
	bins              map[string]string // ringkv target -> its binary
	serverPin, wrkPin []string
	wrkEnv            []string
}

func runSingle(ctx context.Context, e *runEnv, c singleConfig) error {
	targets, err := targetList(c.Targets)
	if err != nil {
		return err
	}
	if err := c.check(); err != nil {
		return err
	}
	builds, err := parseBins(c.Bins)
	if err != nil {
		return err
	}
	ncpu := runtime.NumCPU()
	sr := &singleRunner{e: e, c: c, addrs: map[string]string{}, bins: map[string]string{"ringkv": filepath.Join(e.h.bin, "ringkv")},
		wrkEnv: c.env("SHUFFLE=" + boolEnv(c.Shuffle))}
	if len(builds) > 0 {
		// -bins: the ringkv target is each build, in their order.
		if i := slices.Index(targets, "ringkv"); i >= 0 {
			targets = slices.Replace(targets, i, i+1, buildTargets(builds)...)
		} else {
			return usageErr("-bins needs ringkv in -targets")
		}
		sr.bins = map[string]string{}
		for i, b := range builds {
			sr.bins[buildTargets(builds)[i]] = b.Path
		}
	}
	var pinDesc string
	if sr.serverPin, sr.wrkPin, pinDesc, err = pinning(c, ncpu); err != nil {
		return err
	}
	h := e.h
	pkgs := []string{"./bench/baseline", "./bench/baseline/const", "./bench/cmd/preload"}
	if slices.Contains(targets, "ringkv") && len(builds) == 0 {
		pkgs = append(pkgs, "./cmd/ringkv")
	}
	if err := h.build(ctx, pkgs...); err != nil {
		return fmt.Errorf("%w (to compare the yardsticks only: -targets baseline,const)", err)
	}
	if err := h.ensureWrk(ctx); err != nil {
		return err
	}
	ports := map[int]bool{}
	for _, t := range append([]string{"gossip"}, targets...) {
		if sr.addrs[t], err = freeAddr(ports); err != nil {
			return err
		}
	}
	setup := fmt.Sprintf("KEYS=%d VALUE_SIZE=%d SHUFFLE=%s DURATION=%s ROUNDS=%d wrk -t%d -c%d",
		c.Keys, c.ValueSize, boolEnv(c.Shuffle), wrkDuration(c.Duration), c.Rounds, c.Threads, c.Conns)
	h.logf("%s; pinning: %s", setup, pinDesc)

	rep := singleReport{Setup: setup, Pinning: pinDesc, Rounds: c.Rounds, Targets: targets, CPUs: ncpu, Builds: builds,
		Params: singleParams{Keys: c.Keys, ValueSize: c.ValueSize, Duration: wrkDuration(c.Duration), Rounds: c.Rounds,
			Threads: c.Threads, Connections: c.Conns, Sync: true}}
	bad := 0
	for r := 1; r <= c.Rounds; r++ {
		for i := range targets {
			// The order rotates from round to round, so that drift on a
			// shared machine spreads over every target.
			t := targets[(i+r-1)%len(targets)]
			h.logf("round %d/%d: %s", r, c.Rounds, t)
			runs, err := sr.target(ctx, t, r)
			if err != nil {
				return err
			}
			for _, run := range runs {
				if run.Errors > 0 || run.Non2xx > 0 {
					msg := fmt.Sprintf("%s %s round %d: errors=%d non2xx=%d", t, run.Workload, r, run.Errors, run.Non2xx)
					rep.Warnings = append(rep.Warnings, msg)
					bad++
					fmt.Fprintf(e.stderr, "WARNING: %s\n", msg)
				}
			}
			rep.Runs = append(rep.Runs, runs...)
		}
	}
	return e.finishSingle(&rep, bad)
}

// finishSingle folds the runs, writes the files and repeats the warnings;
// bad runs make the exit status 3.
func (e *runEnv) finishSingle(rep *singleReport, bad int) error {
	rep.Date, rep.Commit, rep.Go = stamp(time.Now()), gitCommit(e.root, true), goVersion(e.root)
	rep.fold()
	md, js, err := rep.render()
	if err != nil {
		return err
	}
	if err := e.writeResults("compare-"+rep.Date, md, js); err != nil {
		return err
	}
	for _, w := range rep.Warnings {
		fmt.Fprintf(e.stderr, "WARNING: %s\n", w)
	}
	if bad > 0 {
		fmt.Fprintf(e.stderr, "compare single: %d run(s) had errors or non-2xx answers\n", bad)
		e.badRuns = true
	}
	return nil
}

// target runs round r of target t: start the server on a fresh data dir,
// preload (not const), wrk get and put (const: get only), stop it and
// delete its data.
func (sr *singleRunner) target(ctx context.Context, t string, r int) ([]singleRun, error) {
	h, c, addr := sr.e.h, sr.c, sr.addrs[t]
	file := fileSafe(t) // a label may be a path
	dir := filepath.Join(h.work, fmt.Sprintf("data-%s-%d", file, r))
	defer os.RemoveAll(dir)
	var argv []string
	switch t {
	default: // ringkv, or a build of -bins
		argv = append([]string{sr.bins[t], "serve", "--http-addr", addr, "--gossip-addr", sr.addrs["gossip"],
			"--data-dir", dir, "--sync=true"}, c.ringkvArgs()...)
	case "baseline":
		argv = []string{filepath.Join(h.bin, "baseline"), "--addr", addr, "--data-dir", dir, "--sync=true"}
	case "const":
		argv = []string{filepath.Join(h.bin, "const"), "--addr", addr}
	}
	if listening(addr) {
		return nil, fmt.Errorf("something is already listening on %s", addr)
	}
	p, err := h.start(fmt.Sprintf("server-%s-%d", file, r), sr.serverPin, argv...)
	if err != nil {
		return nil, err
	}
	defer h.stop(p)
	if err := waitFor(ctx, p, 30*time.Second, t+" listening on "+addr, func() bool { return listening(addr) }); err != nil {
		return nil, err
	}
	workloads := []string{"get", "put"}
	if t == "const" {
		workloads = workloads[:1]
	} else if err := h.preload(ctx, c.preloadPinned(addr, sr.wrkPin)); err != nil {
		return nil, err
	}
	var runs []singleRun
	for _, w := range workloads {
		load, _ := strconv.ParseFloat(loadAvg(), 64) // other users of the machine skew every figure
		wr := c.run(w, addr, sr.wrkEnv)
		wr.Prefix = sr.wrkPin
		res, cpu, err := h.measureWrk(ctx, wr, []*proc{p})
		if err != nil {
			return nil, fmt.Errorf("%s (%s, round %d): %w", t, w, r, err)
		}
		os.WriteFile(filepath.Join(h.work, fmt.Sprintf("wrk-%s-%s-%d.txt", file, w, r)), []byte(res.Output), 0o644)
		run := singleRun{Round: r, Target: t, Workload: w, Requests: res.Requests, DurationUS: res.DurationUS,
			RPS: res.RPS, P50US: res.P50US, P99US: res.P99US, Errors: res.Errors, Non2xx: res.Non2xx,
			CPUUSPerReq: cpu, LoadAvg: load}
		fmt.Fprintf(sr.e.stderr, "   %-8s %-3s round %d: %8.0f req/s %7.2f us CPU/req  p50 %6d us  p99 %7d us  (load %.2f)\n",
			t, w, r, run.RPS, run.CPUUSPerReq, run.P50US, run.P99US, load)
		runs = append(runs, run)
	}
	return runs, nil
}

// preloadPinned is the preload of the key space, shuffled with
// -shuffle, on wrk's CPUs.
func (c singleConfig) preloadPinned(addr string, pin []string) preloadSpec {
	s := c.preload(addr)
	s.Shuffle, s.Prefix = c.Shuffle, pin
	return s
}

// buildTargets names the builds' targets: ringkv-LABEL.
func buildTargets(builds []cwBuild) []string {
	var out []string
	for _, b := range builds {
		out = append(out, "ringkv-"+b.Label)
	}
	return out
}

// fileSafe makes a target name fit in a file name.
func fileSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '-' || r == '.' || r == '_' || (r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') {
			return r
		}
		return '_'
	}, s)
}

func boolEnv(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// singleParams is compare-<date>.json's "params".
type singleParams struct {
	Keys        int    `json:"keys"`
	ValueSize   int    `json:"value_size"`
	Duration    string `json:"duration"`
	Rounds      int    `json:"rounds"`
	Threads     int    `json:"threads"`
	Connections int    `json:"connections"`
	Sync        bool   `json:"sync"`
}

// singleMedian is one target and workload's medians.
type singleMedian struct {
	RPS, CPU, P50, P99 float64
}

type singleRatio struct {
	Name     string
	RPS, CPU float64
}

// singleReport is everything compare-<date>.{md,json} hold.
type singleReport struct {
	Date, Commit, Go string
	CPUs             int
	Setup, Pinning   string
	Rounds           int
	Targets          []string
	Builds           []cwBuild // -bins; nil: the one target ringkv
	Params           singleParams
	Runs             []singleRun
	Warnings         []string

	// Filled by fold.
	MaxLoad float64
	Rows    []string // "ringkv.get", in compare.sh's order
	Median  map[string]singleMedian
	Ratios  []singleRatio
}

// fold computes the medians (matrix.Median: each figure on its own, the
// lower middle of an even count), the ratios and the load warning.
func (r *singleReport) fold() {
	r.Median = map[string]singleMedian{}
	r.Rows = nil
	for _, t := range r.order() {
		if !slices.Contains(r.Targets, t) {
			continue
		}
		for _, w := range []string{"get", "put"} {
			if t == "const" && w == "put" {
				continue
			}
			var rps, cpu, p50, p99 []float64
			for _, x := range r.Runs {
				if x.Target == t && x.Workload == w {
					rps, cpu = append(rps, x.RPS), append(cpu, x.CPUUSPerReq)
					p50, p99 = append(p50, float64(x.P50US)), append(p99, float64(x.P99US))
				}
			}
			m := singleMedian{math.NaN(), math.NaN(), math.NaN(), math.NaN()}
			if len(rps) > 0 {
				m = singleMedian{matrix.Median(rps), matrix.Median(cpu), matrix.Median(p50), matrix.Median(p99)}
			}
			r.Median[t+"."+w] = m
			r.Rows = append(r.Rows, t+"."+w)
		}
	}
	get := func(k string) singleMedian {
		if m, ok := r.Median[k]; ok {
			return m
		}
		return singleMedian{math.NaN(), math.NaN(), math.NaN(), math.NaN()}
	}
	r.Ratios = nil
	var pairs [][3]string
	names := r.ringkvNames()
	for _, n := range names {
		pairs = append(pairs, [][3]string{
			{n + "/baseline GET", n + ".get", "baseline.get"},
			{n + "/baseline PUT", n + ".put", "baseline.put"},
			{n + " GET/const GET", n + ".get", "const.get"},
		}...)
	}
	pairs = append(pairs, [3]string{"baseline GET/const GET", "baseline.get", "const.get"})
	// Each later build against the first: after/before per figure.
	for _, n := range names[1:] {
		pairs = append(pairs, [][3]string{
			{n + "/" + names[0] + " GET", n + ".get", names[0] + ".get"},
			{n + "/" + names[0] + " PUT", n + ".put", names[0] + ".put"},
		}...)
	}
	for _, x := range pairs {
		a, b := get(x[1]), get(x[2])
		q := singleRatio{x[0], ratio(a.RPS, b.RPS), ratio(a.CPU, b.CPU)}
		if math.IsNaN(q.RPS) && math.IsNaN(q.CPU) {
			continue
		}
		r.Ratios = append(r.Ratios, q)
	}
	r.MaxLoad = 0
	for _, x := range r.Runs {
		r.MaxLoad = max(r.MaxLoad, x.LoadAvg)
	}
	if r.MaxLoad > float64(r.CPUs)*1.75 {
		r.Warnings = append(r.Warnings, fmt.Sprintf("1-minute load average reached %.2f on %d CPUs before a run: the machine was busy, figures are noisy", r.MaxLoad, r.CPUs))
	}
}

// ringkvNames are the ringkv targets: ringkv, or one per build.
func (r *singleReport) ringkvNames() []string {
	if len(r.Builds) == 0 {
		return []string{"ringkv"}
	}
	return buildTargets(r.Builds)
}

// order is every target in the table's order: ringkv (or the builds),
// baseline, const.
func (r *singleReport) order() []string { return append(r.ringkvNames(), singleTargets[1:]...) }

// jnum is a JSON number, null for NaN.
type jnum float64

func (n jnum) MarshalJSON() ([]byte, error) {
	if math.IsNaN(float64(n)) || math.IsInf(float64(n), 0) {
		return []byte("null"), nil
	}
	return json.Marshal(float64(n))
}

// ordered is a JSON object whose keys keep their order.
type ordered []struct {
	K string
	V any
}

func (o ordered) MarshalJSON() ([]byte, error) {
	var b strings.Builder
	b.WriteByte('{')
	for i, kv := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(kv.K)
		v, err := json.Marshal(kv.V)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return []byte(b.String()), nil
}

func (o *ordered) add(k string, v any) {
	*o = append(*o, struct {
		K string
		V any
	}{k, v})
}

func (r *singleReport) table() string {
	var b strings.Builder
	b.WriteString("| target | workload | req/s | CPU us/req | p50 us | p99 us |\n| --- | --- | ---: | ---: | ---: | ---: |\n")
	for _, row := range r.Rows {
		t, w, _ := strings.Cut(row, ".")
		m := r.Median[row]
		fmt.Fprintf(&b, "| %s | %s | %.0f | %.2f | %.0f | %.0f |\n", t, w, m.RPS, m.CPU, m.P50, m.P99)
	}
	b.WriteString("\n| ratio | req/s | CPU us/req |\n| --- | ---: | ---: |\n")
	for _, q := range r.Ratios {
		fmt.Fprintf(&b, "| %s | %s | %s |\n", q.Name, fmtRatio(q.RPS), fmtRatio(q.CPU))
	}
	return b.String()
}

func fmtRatio(v float64) string {
	if math.IsNaN(v) {
		return "nan"
	}
	return fmt.Sprintf("%.3f", v)
}

// render writes compare.sh's markdown and JSON.
func (r *singleReport) render() (string, []byte, error) {
	setup := fmt.Sprintf("%s, PUT with fsync (--sync=true), %d CPUs, %s, commit %s, highest 1-min load average before a run %.2f",
		r.Setup, r.CPUs, r.Go, r.Commit, r.MaxLoad)
	var md strings.Builder
	fmt.Fprintf(&md, "# ringkv vs baseline (%s)\n\n%s.\nPinning: %s.\nMedians of %d rounds; CPU us/req is the server's utime+stime per request.\n\n",
		r.Date, setup, r.Pinning, r.Rounds)
	if len(r.Builds) > 0 {
		var bs []string
		for i, b := range r.Builds {
			bs = append(bs, fmt.Sprintf("%s (%s)", r.ringkvNames()[i], b.Path))
		}
		fmt.Fprintf(&md, "Builds (-bins), each a target of the rotation: %s.\n\n", strings.Join(bs, ", "))
	}
	md.WriteString(r.table())
	if len(r.Warnings) > 0 {
		md.WriteString("\nWarnings:\n")
		for _, w := range r.Warnings {
			fmt.Fprintf(&md, "- %s\n", w)
		}
	}
	var median, ratios ordered
	for _, row := range r.Rows {
		m := r.Median[row]
		median.add(row, ordered{{"rps", jnum(m.RPS)}, {"cpu_us_per_req", jnum(m.CPU)}, {"p50_us", jnum(m.P50)}, {"p99_us", jnum(m.P99)}})
	}
	for _, q := range r.Ratios {
		ratios.add(q.Name, ordered{{"rps", jnum(q.RPS)}, {"cpu_us_per_req", jnum(q.CPU)}})
	}
	if len(r.Builds) > 0 {
		// A reader of the files without -bins finds ringkv's keys: the
		// first build's figures, under ringkv's names.
		first := r.ringkvNames()[0]
		for _, row := range r.Rows {
			if t, w, _ := strings.Cut(row, "."); t == first {
				m := r.Median[row]
				median.add("ringkv."+w, ordered{{"rps", jnum(m.RPS)}, {"cpu_us_per_req", jnum(m.CPU)}, {"p50_us", jnum(m.P50)}, {"p99_us", jnum(m.P99)}})
			}
		}
		for _, q := range r.Ratios {
			if rest, ok := strings.CutPrefix(q.Name, first); ok && (strings.HasPrefix(rest, "/baseline") || strings.HasPrefix(rest, " GET/const")) {
				ratios.add("ringkv"+rest, ordered{{"rps", jnum(q.RPS)}, {"cpu_us_per_req", jnum(q.CPU)}})
			}
		}
	}
	runs := r.Runs
	if runs == nil {
		runs = []singleRun{}
	}
	warnings := r.Warnings
	if warnings == nil {
		warnings = []string{}
	}
	doc := ordered{
		{"date", r.Date}, {"commit", r.Commit}, {"go", r.Go}, {"cpus", r.CPUs}, {"max_loadavg_1m", round2(r.MaxLoad)},
		{"params", r.Params}, {"pinning", r.Pinning}, {"median", median}, {"ratios", ratios},
		{"runs", runs}, {"warnings", warnings},
	}
	if len(r.Builds) > 0 {
		var builds []ordered
		for i, b := range r.Builds {
			builds = append(builds, ordered{{"label", b.Label}, {"path", b.Path}, {"target", r.ringkvNames()[i]}})
		}
		doc.add("builds", builds)
	}
	js, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return "", nil, err
	}
	return md.String(), append(js, '\n'), nil
}
