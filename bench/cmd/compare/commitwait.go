package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/ringkv/ringkv/bench/matrix"
)

// commitwaitConfig is `compare commitwait` (commitwait.sh's BIN and
// LABEL, for several builds at once, and its constants as flags; one
// round, as commitwait.sh made).
type commitwaitConfig struct {
	wrkConfig
	Bins string // label=path,...; empty: the checkout's ringkv
}

func commitwaitFlags(fs *flag.FlagSet) func(context.Context, *runEnv) error {
	c := commitwaitConfig{wrkConfig: defaultWrk(1)}
	c.register(fs, "extra `ringkv serve` flags for every node, space-separated")
	fs.StringVar(&c.Bins, "bins", "", "ringkv binaries to compare, LABEL=PATH or PATH, comma-separated, run alternating; ratios are to the first (default: the checkout's, built)")
	return func(ctx context.Context, e *runEnv) error { return runCommitwait(ctx, e, c) }
}

// cwBuild is one binary under test.
type cwBuild struct {
	Label, Path string
}

// parseBins parses -bins. A path without a label is its own label, as
// commitwait.sh's LABEL defaulted to BIN; paths are made absolute, since
// the nodes run in the temp dir.
func parseBins(s string) ([]cwBuild, error) {
	var out []cwBuild
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		label, path, ok := strings.Cut(f, "=")
		if !ok {
			label, path = f, f
		}
		abs, err := filepath.Abs(path)
		if err != nil || label == "" || path == "" {
			return nil, usageErr("bad build %q in -bins (want LABEL=PATH or PATH)", f)
		}
		if slices.ContainsFunc(out, func(b cwBuild) bool { return b.Label == label }) {
			return nil, usageErr("label %q twice in -bins", label)
		}
		out = append(out, cwBuild{label, abs})
	}
	return out, nil
}

// cwRun is one build's run: wrk's figures, the three nodes' CPU per
// request and node 1's commit-wait and clock metrics after it.
type cwRun struct {
	RPS            float64
	P50US, P99US   int64
	CPU            float64
	Requests       int64
	Failed         int64 // non-2xx answers and errors
	Waits, WaitSec float64
	MaxOffsetSec   float64 // the largest |ringkv_clock_offset_seconds|
	Exceeded       bool    // ringkv_clock_offset_exceeded was 1
}

func runCommitwait(ctx context.Context, e *runEnv, c commitwaitConfig) error {
	builds, err := parseBins(c.Bins)
	if err != nil {
		return err
	}
	if err := c.check(); err != nil {
		return err
	}
	h := e.h
	var pkgs []string
	if len(builds) == 0 {
		pkgs, builds = []string{"./cmd/ringkv"}, []cwBuild{{gitCommit(e.root, true), filepath.Join(h.bin, "ringkv")}}
	}
	if err := h.buildWithWrk(ctx, pkgs...); err != nil {
		return err
	}
	ports := map[int]bool{}
	results := map[string][]cwRun{}
	bad := 0
	for r := 1; r <= c.Rounds; r++ {
		order := slices.Clone(builds)
		if r%2 == 0 {
			slices.Reverse(order)
		}
		for _, b := range order {
			h.logf("round %d: %s", r, b.Label)
			run, err := c.measure(ctx, h, b, fmt.Sprintf("%d-%d", slices.Index(builds, b), r), ports)
			if err != nil {
				return fmt.Errorf("%s, round %d: %w", b.Label, r, err)
			}
			if run.Failed > 0 {
				fmt.Fprintf(e.stderr, "WARNING: %s round %d: %d non-2xx answers or errors\n", b.Label, r, run.Failed)
				bad++
			}
			results[b.Label] = append(results[b.Label], run)
		}
	}
	rep := cwReport{Date: stamp(time.Now()), Config: c, Builds: builds, CPUs: runtime.NumCPU(), Commit: gitCommit(e.root, false), Results: results}
	md, js, err := rep.render()
	if err != nil {
		return err
	}
	if err := e.writeResults("commitwait-"+rep.Date, md, js); err != nil {
		return err
	}
	e.badRuns = bad > 0
	return nil
}

// measure starts a fresh 3-node cluster of b, waits until node 1 has
// measured both peers' clocks (what the commit wait waits on), sends it
// wrk's PUTs and reads its metrics.
func (c commitwaitConfig) measure(ctx context.Context, h *harness, b cwBuild, name string, ports map[int]bool) (cwRun, error) {
	ps, addr, err := startNodes(ctx, h, b.Path, name, 3, c.ringkvArgs(), ports)
	defer func() {
		for _, p := range ps {
			h.stop(p)
		}
		removeGlob(filepath.Join(h.work, "data-*"))
	}()
	if err != nil {
		return cwRun{}, err
	}
	measured := func() bool {
		page, err := getBody(ctx, addr, "/metrics")
		return err == nil && len(metricSamples(page, "ringkv_clock_offset_seconds")) >= 2
	}
	if err := waitFor(ctx, ps[0], 30*time.Second, "node 1's clock offsets to both peers", measured); err != nil {
		return cwRun{}, err
	}
	res, cpu, err := h.measureWrk(ctx, c.run("put", addr, c.env()), ps)
	if err != nil {
		return cwRun{}, err
	}
	appendFile(filepath.Join(h.work, "wrk-"+name+".txt"), res.Output)
	page, err := getBody(ctx, addr, "/metrics")
	if err != nil {
		return cwRun{}, err
	}
	run := cwRun{RPS: round2(res.RPS), P50US: res.P50US, P99US: res.P99US, CPU: cpu, Requests: res.Requests,
		Failed: res.Non2xx + res.Errors}
	run.Waits, err = metricValue(page, "ringkv_commit_waits_total")
	if err != nil {
		return run, err
	}
	if run.WaitSec, err = metricValue(page, "ringkv_commit_wait_seconds_total"); err != nil {
		return run, err
	}
	for _, v := range metricSamples(page, "ringkv_clock_offset_seconds") {
		run.MaxOffsetSec = max(run.MaxOffsetSec, math.Abs(v))
	}
	ex, err := metricValue(page, "ringkv_clock_offset_exceeded")
	if err != nil {
		return run, err
	}
	run.Exceeded = ex == 1
	h.logf("%s: %.2f req/s, p99 %s, CPU %.2f us/req (3 nodes), %.0f of %d writes waited %.1fms in all, max clock offset %.3fms",
		b.Label, run.RPS, p99ms(run.P99US), run.CPU, run.Waits, run.Requests, run.WaitSec*1000, run.MaxOffsetSec*1000)
	return run, nil
}

type cwReport struct {
	Date, Commit string
	Config       commitwaitConfig
	Builds       []cwBuild
	CPUs         int
	Results      map[string][]cwRun // by label
}

// cwSummary is a build's figures over its rounds: medians of the rates,
// latencies and CPU (matrix.Median), sums of the counts, the largest
// offset.
type cwSummary struct {
	RPS, P50US, P99US, CPU    float64
	Requests, Failed          int64
	Waits, WaitSec, MaxOffset float64
	Exceeded                  bool
	Raw                       string
}

func summarize(rs []cwRun) cwSummary {
	var s cwSummary
	var rps, p50, p99, cpu []float64
	var raw strings.Builder
	for _, x := range rs {
		rps, p50, p99, cpu = append(rps, x.RPS), append(p50, float64(x.P50US)), append(p99, float64(x.P99US)), append(cpu, x.CPU)
		s.Requests, s.Failed, s.Waits, s.WaitSec = s.Requests+x.Requests, s.Failed+x.Failed, s.Waits+x.Waits, s.WaitSec+x.WaitSec
		s.MaxOffset, s.Exceeded = max(s.MaxOffset, x.MaxOffsetSec), s.Exceeded || x.Exceeded
		fmt.Fprintf(&raw, "%.2f %.2f %s %.0f;", x.RPS, x.CPU, p99ms(x.P99US), x.Waits)
	}
	s.RPS, s.P50US, s.P99US, s.CPU = matrix.Median(rps), matrix.Median(p50), matrix.Median(p99), matrix.Median(cpu)
	s.Raw = raw.String()
	return s
}

func (r *cwReport) render() (string, []byte, error) {
	c := r.Config
	var md strings.Builder
	fmt.Fprintf(&md, "# Commit wait: 3-node PUTs by build (%s)\n\n", r.Date)
	command := "go run ./bench/cmd/compare commitwait"
	if c.Bins != "" {
		command += " -bins " + c.Bins
	}
	var builds []string
	for _, b := range r.Builds {
		builds = append(builds, fmt.Sprintf("%s (%s)", b.Label, b.Path))
	}
	fmt.Fprintf(&md, "`%s %s`, %d CPUs, commit %s; builds %s; medians over %d rounds, the order reversed every other round. Each run is a fresh 3-node cluster of the build on this machine (--replicas 3, quorum writes, fsync), wrk put.lua sent to node 1; CPU is the three nodes' per request; commit waits (`ringkv_commit_waits_total`, `ringkv_commit_wait_seconds_total`) and the clock offset are node 1's after the run, summed and maxed over the rounds.\n\n",
		command, c.flagLine(), r.CPUs, r.Commit, strings.Join(builds, ", "), c.Rounds)
	md.WriteString("| build | PUT req/s | vs first | p50 ms | p99 ms | CPU µs/req (3 nodes) | writes | commit waits | mean wait ms | max clock offset ms | offset exceeded | non-2xx + errors |\n")
	md.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|\n")
	var doc ordered
	var first float64
	for i, b := range r.Builds {
		s := summarize(r.Results[b.Label])
		if i == 0 {
			first = s.RPS
		}
		q := ratio(s.RPS, first)
		mean := math.NaN()
		if s.Waits > 0 {
			mean = s.WaitSec / s.Waits * 1000
		}
		fmt.Fprintf(&md, "| %s | %.2f | **%s** | %.2f | %.2f | %.2f | %d | %.0f | %s | %.3f | %v | %d |\n",
			b.Label, s.RPS, fmtRatio(q), s.P50US/1000, s.P99US/1000, s.CPU, s.Requests, s.Waits, fmtMS(mean), s.MaxOffset*1000, s.Exceeded, s.Failed)
		doc.add(b.Label, ordered{{"path", b.Path}, {"rps", jnum(s.RPS)}, {"ratio", jnum(q)}, {"p50_us", jnum(s.P50US)},
			{"p99_us", jnum(s.P99US)}, {"cpu_us", jnum(s.CPU)}, {"requests", s.Requests}, {"failed", s.Failed},
			{"commit_waits", s.Waits}, {"commit_wait_seconds", s.WaitSec}, {"max_clock_offset_seconds", s.MaxOffset},
			{"clock_offset_exceeded", s.Exceeded}, {"raw", s.Raw}})
	}
	md.WriteString("\nMedians are bench/matrix.Median's: with an even number of rounds, the lower middle. raw in the JSON: req/s, CPU µs/req, p99 and commit waits of each round.\n")
	js, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return "", nil, err
	}
	return md.String(), append(js, '\n'), nil
}

func fmtMS(v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	return fmt.Sprintf("%.3f", v)
}
