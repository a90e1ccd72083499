package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ringkv/ringkv/bench/matrix"
)

// scaleConfig is `compare scale` (scale.sh's variables, as flags).
type scaleConfig struct {
	Sizes        string // comma- or space-separated key counts; ratios are to the first
	Duration     time.Duration
	Warmup       time.Duration
	Rounds       int
	ValueSize    int
	Conns        int
	Threads      int
	Data         string // where the loaded stores go (reused with -keep)
	RingkvArgs   string
	Distribution string
}

func scaleFlags(fs *flag.FlagSet) func(context.Context, *runEnv) error {
	c := scaleConfig{Sizes: "100000,1000000,10000000", Duration: 20 * time.Second, Warmup: 10 * time.Second, Rounds: 3,
		ValueSize: 100, Conns: 64, Threads: 1, Distribution: "uniform"}
	fs.StringVar(&c.Sizes, "sizes", c.Sizes, "key counts, comma-separated; ratios are to the first")
	fs.DurationVar(&c.Duration, "duration", c.Duration, "measured wrk run per size and round")
	fs.DurationVar(&c.Warmup, "warmup", c.Warmup, "unmeasured wrk run before each measured one")
	fs.IntVar(&c.Rounds, "rounds", c.Rounds, "rounds; figures are medians over them")
	fs.IntVar(&c.ValueSize, "value-size", c.ValueSize, "bytes per value")
	fs.IntVar(&c.Conns, "conns", c.Conns, "wrk -c (and the preload's connections)")
	fs.IntVar(&c.Threads, "threads", c.Threads, "wrk -t")
	fs.StringVar(&c.Data, "data", "", "directory for the loaded stores (default: in the temp dir); a store marked loaded there is reused")
	fs.StringVar(&c.RingkvArgs, "ringkv-args", "", "extra `ringkv serve` flags for the measured runs")
	fs.StringVar(&c.Distribution, "distribution", c.Distribution, "uniform or zipf (read by get.lua)")
	return func(ctx context.Context, e *runEnv) error { return runScale(ctx, e, c) }
}

func parseSizes(s string) ([]int, error) {
	return parseList("sizes", s, func(f string) (int, error) {
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return 0, usageErr("bad size %q in -sizes", f)
		}
		return n, nil
	})
}

// scaleRun is one measured run: scale.sh's "rps cpu p99 rss hwm cache mem".
type scaleRun struct {
	RPS        float64
	CPU        float64
	P99        string
	P99MS      float64
	RSS, HWM   int64
	Cache, Mem int64
}

func (r scaleRun) raw() string {
	return fmt.Sprintf("%.2f %.2f %s %d %d %d %d;", r.RPS, r.CPU, r.P99, r.RSS, r.HWM, r.Cache, r.Mem)
}

// lsmField reads the first "name":N of a /v1/lsm answer, as scale.sh did.
func lsmField(body []byte, name string) int64 {
	m := regexp.MustCompile(`"` + regexp.QuoteMeta(name) + `":([0-9]+)`).FindSubmatch(body)
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return v
}

// scaleNode starts and measures the one node of `compare scale`.
type scaleNode struct {
	e            *runEnv
	c            scaleConfig
	addr, gossip string
}

// start runs ringkv on dir (plus extra flags) and waits until it serves.
func (sn *scaleNode) start(ctx context.Context, dir string, extra ...string) (*proc, error) {
	h := sn.e.h
	argv := append([]string{filepath.Join(h.bin, "ringkv"), "serve", "--data-dir", dir, "--http-addr", sn.addr,
		"--gossip-addr", sn.gossip, "--log-level", "warn"}, extra...)
	p, err := h.start("node", nil, argv...)
	if err != nil {
		return nil, err
	}
	return p, waitFor(ctx, p, 60*time.Second, "the node healthy", func() bool { return healthy(ctx, sn.addr) })
}

func runScale(ctx context.Context, e *runEnv, c scaleConfig) error {
	sizes, err := parseSizes(c.Sizes)
	if err != nil {
		return err
	}
	if err := checkRounds(c.Rounds); err != nil {
		return err
	}
	if err := checkDuration("duration", c.Duration); err != nil {
		return err
	}
	if err := checkDuration("warmup", c.Warmup); err != nil {
		return err
	}
	if c.Distribution != "uniform" && c.Distribution != "zipf" {
		return usageErr("-distribution must be uniform or zipf")
	}
	h := e.h
	if c.Data == "" {
		c.Data = filepath.Join(h.work, "data")
	}
	if err := os.MkdirAll(c.Data, 0o755); err != nil {
		return err
	}
	if err := h.buildWithWrk(ctx, "./cmd/ringkv", "./bench/cmd/preload"); err != nil {
		return err
	}
	sn := &scaleNode{e: e, c: c}
	ports := map[int]bool{}
	if sn.addr, err = freeAddr(ports); err != nil {
		return err
	}
	if sn.gossip, err = freeAddr(ports); err != nil {
		return err
	}
	for _, n := range sizes {
		if err := sn.load(ctx, n); err != nil {
			return err
		}
	}
	results := map[int][]scaleRun{}
	for r := 1; r <= c.Rounds; r++ {
		order := slices.Clone(sizes)
		if r%2 == 0 {
			slices.Reverse(order)
		}
		for _, n := range order {
			h.logf("round %d: %d keys", r, n)
			run, err := sn.measure(ctx, n)
			if err != nil {
				return err
			}
			results[n] = append(results[n], run)
		}
	}
	rep := scaleReport{Date: stamp(time.Now()), Config: c, Sizes: sizes, CPUs: runtime.NumCPU(), Commit: gitCommit(e.root, false), Results: results}
	md, js, err := rep.render()
	if err != nil {
		return err
	}
	return e.writeResults("scale-"+rep.Date, md, js)
}

// load fills the store of n keys once (--sync=false), unless it is
// marked loaded already.
func (sn *scaleNode) load(ctx context.Context, n int) error {
	h := sn.e.h
	dir := filepath.Join(sn.c.Data, fmt.Sprintf("keys-%d", n))
	if _, err := os.Stat(filepath.Join(dir, "loaded")); err == nil {
		h.logf("%d keys: already loaded in %s", n, dir)
		return nil
	}
	os.RemoveAll(dir)
	h.logf("%d keys: loading (--sync=false)", n)
	t0 := time.Now()
	p, err := sn.start(ctx, dir, "--sync=false")
	if err != nil {
		return err
	}
	if err := h.preload(ctx, preloadSpec{Addr: sn.addr, Keys: n, ValueSize: sn.c.ValueSize, Conns: 64}); err != nil {
		return err
	}
	h.stop(p)
	if err := os.WriteFile(filepath.Join(dir, "loaded"), nil, 0o644); err != nil {
		return err
	}
	h.logf("%d keys: loaded in %s, %d MiB on disk", n, time.Since(t0).Round(time.Second), dirBytes(dir)>>20)
	return nil
}

// measure starts the node on the store of n keys, waits for its row
// cache warm, runs wrk unmeasured then measured, and reads its memory.
func (sn *scaleNode) measure(ctx context.Context, n int) (scaleRun, error) {
	h, c, addr := sn.e.h, sn.c, sn.addr
	var run scaleRun
	p, err := sn.start(ctx, filepath.Join(c.Data, fmt.Sprintf("keys-%d", n)), strings.Fields(c.RingkvArgs)...)
	if err != nil {
		return run, err
	}
	defer h.stop(p)
	// Every size is measured with its row cache as full as it will get.
	warm := func() bool {
		b, err := getBody(ctx, addr, "/v1/lsm")
		return err == nil && !bytes.Contains(b, []byte(`"warming":true`))
	}
	if err := waitFor(ctx, p, 10*time.Minute, "the end of the row cache warm", warm); err != nil {
		return run, err
	}
	env := []string{"KEYS=" + strconv.Itoa(n), "VALUE_SIZE=" + strconv.Itoa(c.ValueSize), "DISTRIBUTION=" + c.Distribution}
	w := wrkRun{Script: "get", Addr: addr, Threads: c.Threads, Conns: c.Conns, Duration: c.Warmup, Env: env}
	if _, err := h.runWrk(ctx, w); err != nil {
		return run, err
	}
	w.Duration = c.Duration
	res, cpu, err := h.measureWrk(ctx, w, []*proc{p})
	if err != nil {
		return run, err
	}
	if res.Non2xx > 0 {
		return run, fmt.Errorf("%d keys: %d non-2xx answers", n, res.Non2xx)
	}
	run = scaleRun{RPS: round2(res.RPS), CPU: cpu, P99: p99ms(res.P99US),
		P99MS: float64(res.P99US) / 1000}
	if run.RSS, run.HWM, err = procStatusBytes(p.pid()); err != nil {
		return run, err
	}
	lsm, err := getBody(ctx, addr, "/v1/lsm")
	if err != nil {
		return run, err
	}
	run.Cache, run.Mem = lsmField(lsm, "block_cache_bytes"), lsmField(lsm, "memtable_bytes")
	h.logf("%d keys: %.2f req/s, p99 %s, CPU %.2f us/req, RSS %dMiB (peak %dMiB), block cache %dMiB, memtables %dMiB",
		n, run.RPS, run.P99, run.CPU, run.RSS>>20, run.HWM>>20, run.Cache>>20, run.Mem>>20)
	return run, nil
}

type scaleReport struct {
	Date    string
	Config  scaleConfig
	Sizes   []int
	CPUs    int
	Commit  string
	Results map[int][]scaleRun
}

// scaleBudget is what the RSS may take beyond the block cache and the
// memtables: 150MiB.
const scaleBudget = 150 << 20

func (r *scaleReport) render() (string, []byte, error) {
	c := r.Config
	col := func(rs []scaleRun, f func(scaleRun) float64) []float64 {
		vs := make([]float64, len(rs))
		for i, x := range rs {
			vs[i] = f(x)
		}
		return vs
	}
	maxOf := func(rs []scaleRun, f func(scaleRun) int64) int64 {
		var m int64
		for _, x := range rs {
			m = max(m, f(x))
		}
		return m
	}
	first := r.Sizes[0]
	base := matrix.Median(col(r.Results[first], func(x scaleRun) float64 { return x.RPS }))
	var md strings.Builder
	fmt.Fprintf(&md, "# GET and memory by store size (%s)\n\n", r.Date)
	extra := ""
	if c.RingkvArgs != "" {
		extra = " plus " + c.RingkvArgs
	}
	fmt.Fprintf(&md, "`go run ./bench/cmd/compare scale -distribution %s -sizes %s -duration %s -warmup %s -rounds %d -value-size %d -conns %d -threads %d`, %d CPUs, commit %s, medians of %d; loaded with --sync=false, measured with default flags%s; wrk get.lua, keys %s.\n\n",
		c.Distribution, strings.Join(strings.Fields(strings.ReplaceAll(c.Sizes, ",", " ")), ","), wrkDuration(c.Duration), wrkDuration(c.Warmup),
		c.Rounds, c.ValueSize, c.Conns, c.Threads, r.CPUs, r.Commit, c.Rounds, extra, c.Distribution)
	fmt.Fprintf(&md, "| keys | GET req/s | vs %d | CPU µs/req | p99 | RSS MiB (max over rounds) | peak RSS MiB | block cache MiB | memtables MiB | budget MiB (cache + memtables + 150) | within |\n", first)
	md.WriteString("|---|---|---|---|---|---|---|---|---|---|---|\n")
	var sizes ordered
	for _, n := range r.Sizes {
		rs := r.Results[n]
		rps := matrix.Median(col(rs, func(x scaleRun) float64 { return x.RPS }))
		cpu := matrix.Median(col(rs, func(x scaleRun) float64 { return x.CPU }))
		p99 := fmt.Sprintf("%.2fms", matrix.Median(col(rs, func(x scaleRun) float64 { return x.P99MS })))
		rss := maxOf(rs, func(x scaleRun) int64 { return x.RSS })
		hwm := maxOf(rs, func(x scaleRun) int64 { return x.HWM })
		cache := maxOf(rs, func(x scaleRun) int64 { return x.Cache })
		mem := maxOf(rs, func(x scaleRun) int64 { return x.Mem })
		q := ratio(rps, base)
		budget := cache + mem + scaleBudget
		within := "no"
		if hwm <= budget {
			within = "yes"
		}
		fmt.Fprintf(&md, "| %d | %.2f | **%s** | %.2f | %s | %d | %d | %d | %d | %d | %s |\n",
			n, rps, fmtRatio(q), cpu, p99, rss>>20, hwm>>20, cache>>20, mem>>20, budget>>20, within)
		var raw strings.Builder
		for _, x := range rs {
			raw.WriteString(x.raw())
		}
		sizes.add(strconv.Itoa(n), ordered{{"rps", jnum(rps)}, {"ratio", jnum(q)}, {"cpu_us", jnum(cpu)}, {"p99", p99},
			{"rss_bytes", rss}, {"peak_rss_bytes", hwm}, {"block_cache_bytes", cache}, {"memtable_bytes", mem},
			{"budget_bytes", budget}, {"raw", raw.String()}})
	}
	md.WriteString("\nRSS is VmRSS after the measured run, peak RSS is VmHWM (the high-water mark since the node started); \"within\" compares the peak with the budget. Medians are bench/matrix.Median's: with an even number of rounds, the lower middle.\n")
	js, err := json.MarshalIndent(ordered{{"sizes", sizes}}, "", "  ")
	if err != nil {
		return "", nil, err
	}
	return md.String(), append(js, '\n'), nil
}
