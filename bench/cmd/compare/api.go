package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ringkv/ringkv/bench/load"
	"github.com/ringkv/ringkv/bench/matrix"
	"github.com/ringkv/ringkv/bench/workload"
)

// apiConfig is `compare api`: plain PUT, conditional PUT (the cas
// workload) and batch PUT of one build, on each cluster size, through
// `ringkv bench`'s load (bench/load, in process) in alternating rounds.
type apiConfig struct {
	Duration    time.Duration
	Rounds      int
	Keys        int
	ValueSize   int
	BatchSize   int
	Concurrency int
	Nodes       string // cluster sizes, comma-separated
	RingkvArgs  string
	Bin         string // a ringkv binary; empty: the checkout's, built
}

func apiFlags(fs *flag.FlagSet) func(context.Context, *runEnv) error {
	c := apiConfig{Duration: 10 * time.Second, Rounds: 3, Keys: 100000, ValueSize: 100, BatchSize: 100, Concurrency: 64, Nodes: "1,3"}
	fs.DurationVar(&c.Duration, "duration", c.Duration, "load per workload and run")
	fs.IntVar(&c.Rounds, "rounds", c.Rounds, "rounds; figures are medians over them")
	fs.IntVar(&c.Keys, "keys", c.Keys, "key space of every workload (uniform keys): key-N for put and batch-put, counter-N for cas")
	fs.IntVar(&c.ValueSize, "value-size", c.ValueSize, "bytes per value of put and of each batch item")
	fs.IntVar(&c.BatchSize, "batch-size", c.BatchSize, "items per batch-put request, 1 to 1000")
	fs.IntVar(&c.Concurrency, "concurrency", c.Concurrency, "requests in flight (ringkv bench --concurrency; the cas workers)")
	fs.StringVar(&c.Nodes, "nodes", c.Nodes, "cluster sizes to measure, comma-separated (--replicas 3 on each)")
	fs.StringVar(&c.RingkvArgs, "ringkv-args", "", "extra `ringkv serve` flags for every node, space-separated")
	fs.StringVar(&c.Bin, "bin", "", "the ringkv binary to measure (default: the checkout's, built)")
	return func(ctx context.Context, e *runEnv) error {
		return runAPI(ctx, e, c, func(ctx context.Context, lc load.Config) (*load.Report, error) { return load.Run(ctx, lc) })
	}
}

// apiWorkloads are what every setup runs, in this order: the ratios are
// to the first.
var apiWorkloads = []workload.Workload{workload.Put, workload.CAS, workload.BatchPut}

func (c apiConfig) check() ([]int, error) {
	if err := checkRounds(c.Rounds); err != nil {
		return nil, err
	}
	switch {
	case c.Duration < time.Second:
		return nil, usageErr("-duration (%s) must be at least 1s", c.Duration)
	case c.Keys < 1 || c.Concurrency < 1 || c.ValueSize < 0:
		return nil, usageErr("-keys and -concurrency must be positive, -value-size not negative")
	case c.BatchSize < 1 || c.BatchSize > load.MaxBatchSize:
		return nil, usageErr("-batch-size (%d) must be between 1 and %d", c.BatchSize, load.MaxBatchSize)
	}
	return parseList("nodes", c.Nodes, func(s string) (int, error) {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 9 {
			return 0, usageErr("-nodes: %q is not a cluster size of 1 to 9", s)
		}
		return n, nil
	})
}

func (c apiConfig) flagLine() string {
	return fmt.Sprintf("-duration %s -rounds %d -keys %d -value-size %d -batch-size %d -concurrency %d -nodes %s",
		c.Duration, c.Rounds, c.Keys, c.ValueSize, c.BatchSize, c.Concurrency, c.Nodes)
}

// loadConfig is the `ringkv bench` run of w against addrs.
func (c apiConfig) loadConfig(w workload.Workload, addrs []string, out string) load.Config {
	lc := load.DefaultConfig()
	lc.Addrs = addrs
	lc.Workload = w
	lc.Duration = c.Duration
	lc.Concurrency = c.Concurrency
	lc.Keys = c.Keys
	lc.ValueSize = c.ValueSize
	lc.BatchSize = c.BatchSize
	// Uniform keys: the cost of a round, not of conflicts on a hot key.
	lc.Distribution = workload.Uniform
	lc.Preload = load.PreloadNever
	lc.Out = out
	if w == workload.CAS {
		lc.KeyPrefix = load.DefaultCASKeyPrefix
	}
	return lc
}

// apiRun is one workload's run on one setup. Ops is the workload's unit
// per second: PUTs answered 2xx (put), acknowledged increments (cas),
// items answered 204 (batch-put); CPU is the setup's server CPU µs per
// such unit.
type apiRun struct {
	Ops      float64 // units per second
	Units    int64   // units in the run
	RPS      float64 // requests per second (batches for batch-put)
	P99MS    float64 // put: PUT; cas: the conditional PUT; batch-put: a batch
	CPU      float64 // server CPU µs per unit, all nodes
	Failed   int64   // errors, and for batch-put the items not applied
	Problem  string  // cas: a failed counter check
	Conflict int64   // cas: 412s
}

// apiRunOf reads a run's figures from its report and the setup's CPU
// ticks over it.
func apiRunOf(w workload.Workload, r *load.Report, ticks int64, hz float64) apiRun {
	s := r.Summary
	run := apiRun{RPS: s.RPS, P99MS: s.Latency.P99, Failed: int64(s.Errors)}
	switch {
	case w == workload.CAS && r.CAS != nil:
		run.Ops, run.Units, run.P99MS = r.CAS.IncrementsPerSecond, int64(r.CAS.Increments), r.CAS.PutLatency.P99
		run.Conflict = int64(r.CAS.Conflicts)
		if !r.CAS.Match {
			run.Problem = r.CAS.Problem
		}
	case w.Batch() && r.Batch != nil:
		run.Ops, run.Units = r.Batch.ItemsPerSecond, int64(r.Batch.OK)
		if r.Elapsed > 0 {
			run.Ops = round2(float64(r.Batch.OK) / r.Elapsed)
		}
		run.Failed += int64(r.Batch.Errors + r.Batch.Unprocessed)
	default:
		run.Units = int64(s.OK)
		run.Ops = s.RPS
		if r.Elapsed > 0 {
			run.Ops = round2(float64(s.OK) / r.Elapsed)
		}
	}
	run.CPU = cpuPerRequest(ticks, hz, run.Units)
	return run
}

func runAPI(ctx context.Context, e *runEnv, c apiConfig, runLoad func(context.Context, load.Config) (*load.Report, error)) error {
	sizes, err := c.check()
	if err != nil {
		return err
	}
	h := e.h
	bin := c.Bin
	if bin == "" {
		if err := h.build(ctx, "./cmd/ringkv"); err != nil {
			return err
		}
		bin = filepath.Join(h.bin, "ringkv")
	} else if bin, err = filepath.Abs(bin); err != nil {
		return usageErr("-bin: %v", err)
	}
	ports := map[int]bool{}
	results := map[string][]apiRun{} // "n,workload" -> rounds
	bad := 0
	for r := 1; r <= c.Rounds; r++ {
		order := slices.Clone(sizes)
		if r%2 == 0 {
			slices.Reverse(order)
		}
		for _, n := range order {
			name := fmt.Sprintf("%d-%d", n, r)
			ps, addrs, err := startNodeAddrs(ctx, h, bin, name, n, strings.Fields(c.RingkvArgs), ports)
			if err != nil {
				for _, p := range ps {
					h.stop(p)
				}
				return err
			}
			for _, w := range apiWorkloads {
				h.logf("round %d: %d node(s), %s", r, n, w)
				before, err := sumTicks(ps)
				if err != nil {
					return err
				}
				// The CPU is read as the requests end: cas then reads its
				// counters back, which is no part of the measure.
				lc := c.loadConfig(w, addrs, filepath.Join(h.work, "bench-"+name+"-"+string(w)))
				var after int64
				var afterErr error
				lc.OnRunEnd = func() { after, afterErr = sumTicks(ps) }
				rep, err := runLoad(ctx, lc)
				if err != nil {
					return fmt.Errorf("%d node(s), %s: %w", n, w, err)
				}
				if afterErr != nil {
					return afterErr
				}
				run := apiRunOf(w, rep, after-before, h.hz)
				if run.Failed > 0 || run.Problem != "" {
					fmt.Fprintf(e.stderr, "WARNING: %d node(s) %s round %d: %d failed %s %s\n", n, w, r, run.Failed, unitOf(w), run.Problem)
					bad++
				}
				h.logf("%d node(s) %s: %.2f %s/s, p99 %.3fms, server CPU %.2f us per %s", n, w, run.Ops, unitOf(w), run.P99MS, run.CPU, unitOf(w))
				key := strconv.Itoa(n) + "," + string(w)
				results[key] = append(results[key], run)
			}
			for _, p := range ps {
				h.stop(p)
			}
			removeGlob(filepath.Join(h.work, "data-*"))
		}
	}
	rep := apiReport{Date: stamp(time.Now()), Config: c, Sizes: sizes, CPUs: runtime.NumCPU(), Commit: gitCommit(e.root, true), Results: results}
	md, js, err := rep.render()
	if err != nil {
		return err
	}
	if err := e.writeResults("api-"+rep.Date, md, js); err != nil {
		return err
	}
	e.badRuns = bad > 0
	return nil
}

// unitOf names a workload's unit.
func unitOf(w workload.Workload) string {
	switch w {
	case workload.CAS:
		return "increments"
	case workload.BatchPut:
		return "items"
	}
	return "PUTs"
}

type apiReport struct {
	Date, Commit string
	Config       apiConfig
	Sizes        []int
	CPUs         int
	Results      map[string][]apiRun
}

// apiSummary is a workload's medians over its rounds (matrix.Median).
type apiSummary struct {
	Ops, RPS, P99MS, CPU float64
	Units, Failed        int64
	Conflicts            int64
	Problems             []string
	Raw                  string
}

func summarizeAPI(rs []apiRun) apiSummary {
	var s apiSummary
	var ops, rps, p99, cpu []float64
	var raw strings.Builder
	for _, x := range rs {
		ops, rps, p99, cpu = append(ops, x.Ops), append(rps, x.RPS), append(p99, x.P99MS), append(cpu, x.CPU)
		s.Units, s.Failed, s.Conflicts = s.Units+x.Units, s.Failed+x.Failed, s.Conflicts+x.Conflict
		if x.Problem != "" {
			s.Problems = append(s.Problems, x.Problem)
		}
		fmt.Fprintf(&raw, "%.2f %.3f %.2f;", x.Ops, x.P99MS, x.CPU)
	}
	s.Ops, s.RPS, s.P99MS, s.CPU = matrix.Median(ops), matrix.Median(rps), matrix.Median(p99), matrix.Median(cpu)
	s.Raw = raw.String()
	return s
}

func (r *apiReport) render() (string, []byte, error) {
	c := r.Config
	var md strings.Builder
	fmt.Fprintf(&md, "# Plain PUT, conditional PUT and batch PUT (%s)\n\n", r.Date)
	fmt.Fprintf(&md, "`go run ./bench/cmd/compare api %s`, %d CPUs, commit %s; medians over %d rounds, the cluster sizes' order reversed every other round. Each setup is a fresh cluster of the build on this machine (--replicas 3, quorum, fsync), loaded by `ringkv bench` (in process, uniform keys, requests round-robin over the nodes, --concurrency %d) with, in turn: put; cas (a serial GET and a conditional PUT per increment, its p99 the conditional PUT's); batch-put (%d items of %d bytes a request, its p99 a batch's). CPU is every node's utime+stime over the run (/proc/PID/stat) per unit: per PUT, per increment, per item.\n\n",
		c.flagLine(), r.CPUs, r.Commit, c.Rounds, c.Concurrency, c.BatchSize, c.ValueSize)
	md.WriteString("| nodes | workload | unit/s | vs put | req/s | p99 ms | p99 vs put | CPU µs/unit | CPU vs put | units | conflicts | failed |\n")
	md.WriteString("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	var doc ordered
	var problems []string
	for _, n := range r.Sizes {
		var setup ordered
		base := summarizeAPI(r.Results[strconv.Itoa(n)+","+string(workload.Put)])
		for _, w := range apiWorkloads {
			s := summarizeAPI(r.Results[strconv.Itoa(n)+","+string(w)])
			q, qp, qc := ratio(s.Ops, base.Ops), ratio(s.P99MS, base.P99MS), ratio(s.CPU, base.CPU)
			fmt.Fprintf(&md, "| %d | %s | %.2f %s/s | **%s** | %.2f | %.3f | %s | %.2f | %s | %d | %d | %d |\n",
				n, w, s.Ops, unitOf(w), fmtRatio(q), s.RPS, s.P99MS, fmtRatio(qp), s.CPU, fmtRatio(qc), s.Units, s.Conflicts, s.Failed)
			for _, p := range s.Problems {
				problems = append(problems, fmt.Sprintf("%d node(s) %s: %s", n, w, p))
			}
			setup.add(string(w), ordered{{"unit", unitOf(w)}, {"per_second", jnum(s.Ops)}, {"ratio_to_put", jnum(q)},
				{"requests_per_second", jnum(s.RPS)}, {"p99_ms", jnum(s.P99MS)}, {"p99_ratio_to_put", jnum(qp)},
				{"cpu_us_per_unit", jnum(s.CPU)}, {"cpu_ratio_to_put", jnum(qc)}, {"units", s.Units},
				{"conflicts", s.Conflicts}, {"failed", s.Failed}, {"raw", s.Raw}})
		}
		doc.add(strconv.Itoa(n)+"_nodes", setup)
	}
	md.WriteString("\nvs put: the ratio to plain PUT on the same number of nodes (cas: increments/s over PUTs/s; batch-put: item writes/s over PUTs/s). Medians are bench/matrix.Median's: with an even number of rounds, the lower middle. raw in the JSON: unit/s, p99 ms and CPU µs/unit of each round.\n")
	for _, p := range problems {
		fmt.Fprintf(&md, "\n**Counter check failed**: %s\n", p)
	}
	doc.add("config", ordered{{"flags", c.flagLine()}, {"cpus", r.CPUs}, {"commit", r.Commit}})
	js, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return "", nil, err
	}
	return md.String(), append(js, '\n'), nil
}
