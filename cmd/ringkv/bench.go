package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/ringkv/ringkv/bench/load"
	"github.com/ringkv/ringkv/bench/matrix"
	"github.com/ringkv/ringkv/bench/workload"
)

// exitBenchErrors is the exit code of a bench run that completed with
// errors (non-2xx answers other than a GET's 404, or transport errors):
// the report is written all the same.
const exitBenchErrors = 3

const benchUsage = `usage: ringkv bench [flags]              load test nodes over HTTP (vegeta), with live progress and a report
       ringkv bench compaction [flags]   every compaction profile on one write-heavy load (embedded engine)

Writes DIR/report.json and DIR/report.html (--out DIR). Exit 0, 3 when the
run had errors (the report is still written; for batch workloads also an
item that was not 200, 204 or 404), 2 on a bad flag or an unreachable
node, 1 on another failure, and for cas when the counters read at the end
do not total the increments the nodes acknowledged.`

const benchCompactionUsage = `usage: ringkv bench compaction [flags]

Runs the same load on a fresh engine in --out under Pebble's default knobs
and under each compaction profile: up to --writes writes (no fsync) within
--duration/2 (with --writes 0, as many as fit in it), a flush, then
--duration/2 of point reads of the written keys, so each profile takes
about --duration. A profile that runs out of time before --writes is
marked in the table (its reads then see less data). Prints a table and
writes DIR/compaction.json and DIR/compaction.html.`

// bench runs 'ringkv bench' and 'ringkv bench compaction'.
func bench(args []string, env *environ, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "compaction" {
		return benchCompaction(args[1:], stdout, stderr)
	}
	c, err := parseBench(args, env, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "ringkv bench: %v\n", err)
		return exitUsage
	}
	c.Progress = stderr
	c.ProgressTTY = load.IsTerminal(stderr)
	return runBench(c, stdout, stderr)
}

// parseBench parses bench's command line and environment into a load
// config; -h prints the usage on stdout and returns flag.ErrHelp. Errors
// name the flag.
func parseBench(args []string, env *environ, stdout io.Writer) (load.Config, error) {
	c := load.DefaultConfig()
	addrs := strings.Join(c.Addrs, ",")
	if v, _, ok := env.lookup("RINGKV_ADDR"); ok {
		addrs = v
	} else if v, _, ok := env.lookup("NODE_ADDRESS"); ok {
		addrs = normalizeNodeAddress(v)
	}
	wl, dist, pre := string(c.Workload), string(c.Distribution), string(c.Preload)
	valueSize := int64(c.ValueSize)
	fs := flag.NewFlagSet("ringkv bench", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&addrs, "addr", addrs, "node HTTP addresses, comma-separated; requests go round-robin (also RINGKV_ADDR)")
	fs.StringVar(&wl, "workload", wl, "put, get, a (50% get, 50% put), b (95/5), c (get only), scan, cas (counters: serial read, conditional PUT), batch-put or batch-get (POST /v1/batch)")
	fs.DurationVar(&c.Duration, "duration", c.Duration, "how long to send requests")
	fs.IntVar(&c.Rate, "rate", c.Rate, "requests per second in all; 0 is as fast as --concurrency clients go")
	fs.IntVar(&c.Concurrency, "concurrency", c.Concurrency, "requests in flight at most (vegeta workers)")
	fs.IntVar(&c.Keys, "keys", c.Keys, "key space: key-0 .. key-(N-1)")
	fs.Var(sizeFlag{&valueSize}, "value-size", "bytes per PUT value, e.g. 100 or 4KiB")
	fs.StringVar(&dist, "distribution", dist, "key choice: zipf (YCSB's, key-0 hottest) or uniform")
	fs.Float64Var(&c.ZipfTheta, "zipf-theta", c.ZipfTheta, "zipf constant, between 0 and 1")
	fs.IntVar(&c.ScanLimit, "scan-limit", c.ScanLimit, "scan workload: keys per request (limit=)")
	fs.IntVar(&c.BatchSize, "batch-size", c.BatchSize, "batch-put and batch-get: items per POST /v1/batch, 1 to 1000")
	fs.StringVar(&c.KeyPrefix, "key-prefix", c.KeyPrefix, "key name prefix (cas: "+load.DefaultCASKeyPrefix+" unless given)")
	fs.StringVar(&pre, "preload", pre, "write every key before the run: auto (for reading workloads, unless a sample of keys exists), always or never")
	fs.DurationVar(&c.Timeout, "timeout", c.Timeout, "per-request timeout")
	fs.Uint64Var(&c.Seed, "seed", 0, "random seed of the request sequence (0: from the clock)")
	fs.StringVar(&c.Out, "out", c.Out, "directory for report.json and report.html")
	addTokenFlag(fs, env, &c.Token)
	var tf tlsFlags
	tf.add(fs, env)
	pos, err := parseFlags(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		printUsage(stdout, benchUsage, fs)
		return c, err
	}
	if err != nil {
		return c, err
	}
	if len(pos) != 0 {
		return c, fmt.Errorf("unexpected argument %q (the only subcommand is 'compaction')", pos[0])
	}
	if c.Workload, err = workload.ParseWorkload(wl); err != nil {
		return c, err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if err := workloadFlags(c.Workload, set); err != nil {
		return c, err
	}
	if c.Workload == workload.CAS && !set["key-prefix"] {
		c.KeyPrefix = load.DefaultCASKeyPrefix
	}
	if c.Distribution, err = workload.ParseDistribution(dist); err != nil {
		return c, err
	}
	if c.Preload, err = load.ParsePreload(pre); err != nil {
		return c, err
	}
	if valueSize > math.MaxInt32 {
		return c, fmt.Errorf("--value-size (%d) is too large", valueSize)
	}
	c.ValueSize = int(valueSize)
	if c.TLS, err = tf.config(); err != nil {
		return c, err
	}
	c.Addrs = splitAddrs(addrs)
	return c, c.Validate()
}

// workloadFlags refuses a flag given that the workload w has no use for,
// rather than run something else than was asked.
func workloadFlags(w workload.Workload, set map[string]bool) error {
	refuse := func(name, why string) error {
		if set[name] {
			return fmt.Errorf("--%s: %s", name, why)
		}
		return nil
	}
	var errs []error
	if w.Batch() {
		errs = append(errs, refuse("scan-limit", "only the scan workload sends scans"))
	}
	if !w.Batch() {
		errs = append(errs, refuse("batch-size", "only batch-put and batch-get send batches"))
	}
	if w == workload.CAS {
		errs = append(errs, refuse("scan-limit", "only the scan workload sends scans"),
			refuse("value-size", "the cas workload's values are its counters"),
			refuse("rate", "the cas workload runs closed-loop, as fast as its --concurrency workers go"))
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// splitAddrs splits a comma-separated list of addresses, dropping empty
// ones.
func splitAddrs(s string) []string {
	var out []string
	for _, a := range strings.Split(s, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// runBench runs the load of c until it ends or SIGINT or SIGTERM, prints
// the summary and where the report went, and returns the exit code:
// exitUsage for an unreachable node, exitBenchErrors for a run with
// errors.
func runBench(c load.Config, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	r, err := load.Run(ctx, c)
	var unreachable *load.UnreachableError
	switch {
	case errors.As(err, &unreachable):
		fmt.Fprintf(stderr, "ringkv bench: %v\n", err)
		return exitUsage
	case err != nil && r == nil:
		fmt.Fprintf(stderr, "ringkv bench: %v\n", err)
		return exitFailure
	}
	r.WriteSummary(stdout)
	if err != nil {
		fmt.Fprintf(stderr, "ringkv bench: cannot write the report: %v\n", err)
		return exitFailure
	}
	fmt.Fprintf(stdout, "report     %s, %s\n", filepath.Join(c.Out, "report.json"), filepath.Join(c.Out, "report.html"))
	switch {
	case r.CAS != nil && !r.CAS.Match:
		fmt.Fprintf(stderr, "ringkv bench: cas check failed: %s\n", r.CAS.Problem)
		return exitFailure
	case r.Summary.Errors > 0, r.Batch != nil && r.Batch.Errors+r.Batch.Unprocessed > 0:
		return exitBenchErrors
	}
	return exitOK
}

// benchCompaction runs 'ringkv bench compaction'.
func benchCompaction(args []string, stdout, stderr io.Writer) int {
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "ringkv bench compaction: %s\n", fmt.Sprintf(format, a...))
		return exitUsage
	}
	c := matrix.DefaultConfig()
	order, profiles := string(c.Order), "all"
	valueSize := int64(c.ValueSize)
	fs := flag.NewFlagSet("ringkv bench compaction", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.DurationVar(&c.Duration, "duration", c.Duration, "per profile: the write phase ends within half of it, the read phase takes the other half")
	fs.IntVar(&c.Writes, "writes", c.Writes, "writes per profile at most, the same for each that makes them within --duration/2 (0: as many as fit)")
	fs.StringVar(&c.Out, "out", c.Out, "directory for compaction.json, compaction.html and the engines' data")
	fs.IntVar(&c.Keys, "keys", c.Keys, "key space: key-0 .. key-(N-1)")
	fs.Var(sizeFlag{&valueSize}, "value-size", "bytes per value, e.g. 100 or 1KiB")
	fs.IntVar(&c.Concurrency, "concurrency", c.Concurrency, "writers in the write phase, readers in the read phase")
	fs.StringVar(&order, "distribution", order, "write keys: sequence (each write a new key until --keys, then overwrites), uniform or zipf")
	fs.StringVar(&profiles, "profiles", profiles, "comma-separated: pebble-defaults, balanced, write-heavy, read-heavy, or all")
	fs.IntVar(&c.Runs, "runs", c.Runs, "rounds over the profiles, alternating; each figure is then the median of its runs")
	fs.BoolVar(&c.Keep, "keep", false, "keep each engine's directory under --out")
	fs.Uint64Var(&c.Seed, "seed", 0, "random seed (0: from the clock)")
	pos, err := parseFlags(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return printUsage(stdout, benchCompactionUsage, fs)
	}
	if err != nil {
		return fail("%v", err)
	}
	if len(pos) != 0 {
		return fail("unexpected argument %q", pos[0])
	}
	if valueSize > math.MaxInt32 {
		return fail("--value-size (%d) is too large", valueSize)
	}
	c.ValueSize = int(valueSize)
	c.Order = matrix.KeyOrder(strings.ToLower(strings.TrimSpace(order)))
	if c.Cases, err = matrix.SelectCases(profiles); err != nil {
		return fail("%v", err)
	}
	if err := c.Validate(); err != nil {
		return fail("%v", err)
	}
	c.Progress = stderr

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := matrix.Run(ctx, c)
	if err != nil {
		fmt.Fprintf(stderr, "ringkv bench compaction: %v\n", err)
		return exitFailure
	}
	res.WriteTable(stdout)
	fmt.Fprintf(stdout, "\nreport: %s, %s\n", filepath.Join(c.Out, "compaction.json"), filepath.Join(c.Out, "compaction.html"))
	return exitOK
}
