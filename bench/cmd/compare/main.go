// Command compare is ringkv's measuring driver: it builds the binaries,
// starts the servers on free ports and fresh temp dirs, loads them, runs
// wrk with the scripts of bench/wrk (or `ringkv bench`, on vegeta) in
// alternating rounds, reads each server's CPU time per request from
// /proc, folds the rounds into medians (bench/matrix.Median) and writes
// bench/results/<mode>-<date>.md and .json. It replaces compare.sh,
// cluster.sh, scale.sh, move.sh, tls.sh and commitwait.sh; the result
// files keep their shapes.
//
// Modes:
//
//	compare single   ringkv against bench/baseline and bench/baseline/const
//	compare cluster  a 3-node cluster (N=3, quorum) against one node
//	compare scale    GET throughput and memory by store size
//	compare move     a node joining a loaded one: move time, client latency
//	compare tls      one node over plain HTTP, HTTPS, and HTTPS with a token
//	compare commitwait  3-node PUTs and their commit waits, by build
//	compare api      plain PUT, conditional PUT and batch PUT on 1 and 3 nodes
//
// Every process it starts it stops (SIGTERM, then SIGKILL after 15s), on
// success, error and Ctrl-C alike, and it removes its temp dir unless
// -keep. It measures on Linux only (/proc).
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
	"time"
)

// Exit codes, as the scripts had them.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
	exitBadRuns = 3 // a run had errors or non-2xx answers; results are written
)

const usage = `usage: go run ./bench/cmd/compare MODE [flags]

Modes:
  single   ringkv, bench/baseline and bench/baseline/const, wrk GET and PUT (fsync), alternating rounds
  cluster  a 3-node cluster (--replicas 3, quorum reads and writes) against one node
  scale    GET throughput, CPU and memory of one node at each store size
  move     a node joining a loaded one: time to pull its ranges, client latency before and during
  tls      one node's GET and PUT over plain HTTP, HTTPS, and HTTPS with a bearer token (--auth-file)
  commitwait  3-node PUTs to node 1 and its commit waits, for one or more builds, alternating
  api      plain PUT, conditional PUT (cas) and batch PUT (100 items of 100 bytes) on 1 and 3 nodes: rates, p99, server CPU, ratios to PUT

'go run ./bench/cmd/compare MODE -h' lists a mode's flags. Results go to
bench/results/MODE-<date>.md and .json (single writes compare-<date>.*).`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// mode is one sub-command: it binds its flags into its config and runs.
type mode struct {
	name  string
	flags func(fs *flag.FlagSet) func(ctx context.Context, env *runEnv) error
}

// wrkMode is a mode whose flags are wrkConfig's alone, rounds and
// -ringkv-args' help its own.
func wrkMode(rounds int, ringkvArgs string, body func(context.Context, *runEnv, wrkConfig) error) func(*flag.FlagSet) func(context.Context, *runEnv) error {
	return func(fs *flag.FlagSet) func(context.Context, *runEnv) error {
		c := defaultWrk(rounds)
		c.register(fs, ringkvArgs)
		return func(ctx context.Context, e *runEnv) error { return body(ctx, e, c) }
	}
}

// runEnv is what every mode gets: the module root, the harness and where
// to write.
type runEnv struct {
	root   string
	out    string
	h      *harness
	stdout io.Writer
	stderr io.Writer
	// badRuns is set by a mode whose runs had errors (exit 3).
	badRuns bool
}

// modes are the sub-commands, in the order usage lists them.
func allModes() []mode {
	return []mode{
		{"single", singleFlags},
		{"cluster", clusterFlags},
		{"scale", scaleFlags},
		{"move", moveFlags},
		// tls.sh's variables as flags, one round as tls.sh made.
		{"tls", wrkMode(1, "extra `ringkv serve` flags, space-separated", runTLS)},
		{"commitwait", commitwaitFlags},
		{"api", apiFlags},
	}
}

func run(args []string, stdout, stderr io.Writer) int {
	modes := allModes()
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(stderr, usage)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	var m *mode
	for i := range modes {
		if modes[i].name == args[0] {
			m = &modes[i]
		}
	}
	if m == nil {
		fmt.Fprintf(stderr, "compare: unknown mode %q\n%s\n", args[0], usage)
		return exitUsage
	}
	fs := flag.NewFlagSet("compare "+m.name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "directory for the results (default bench/results of the checkout)")
	keep := fs.Bool("keep", false, "keep the temp dir: binaries, data, server logs, raw wrk output")
	body := m.flags(fs)
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "compare %s: unexpected argument %q\n", m.name, fs.Arg(0))
		return exitUsage
	}
	fail := func(code int, err error) int {
		fmt.Fprintf(stderr, "compare %s: %v\n", m.name, err)
		return code
	}
	cwd, err := os.Getwd()
	if err != nil {
		return fail(exitFailure, err)
	}
	root, err := moduleRoot(cwd)
	if err != nil {
		return fail(exitFailure, err)
	}
	env := &runEnv{root: root, out: *out, stdout: stdout, stderr: stderr}
	if env.out == "" {
		env.out = filepath.Join(root, "bench", "results")
	}
	h, err := newHarness(root, m.name, *keep, stderr)
	if err != nil {
		return fail(exitFailure, err)
	}
	env.h = h
	// Ctrl-C or SIGTERM ends the run: the mode returns, close stops what
	// it started and removes the temp dir.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err = body(ctx, env)
	h.close()
	switch {
	case err != nil && ctx.Err() != nil:
		fmt.Fprintf(stderr, "compare %s: interrupted; every process it started is stopped\n", m.name)
		return 130
	case errors.Is(err, errUsage):
		return fail(exitUsage, err)
	case err != nil:
		return fail(exitFailure, err)
	case env.badRuns:
		return exitBadRuns
	}
	return exitOK
}

// errUsage marks a bad flag value found after parsing.
var errUsage = errors.New("bad flag")

func usageErr(format string, a ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, a...))
}

// checkRounds is the scripts' bound on rounds.
func checkRounds(n int) error {
	if n < 1 || n > 99 {
		return usageErr("-rounds (%d) must be 1..99", n)
	}
	return nil
}

func checkDuration(name string, d time.Duration) error {
	if d < time.Second {
		return usageErr("-%s (%s) must be at least 1s (wrk counts whole seconds)", name, d)
	}
	return nil
}

// parseList parses a comma- or space-separated flag value with parse; an
// empty list is a usage error.
func parseList[T any](name, s string, parse func(string) (T, error)) ([]T, error) {
	var out []T
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
		v, err := parse(f)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if len(out) == 0 {
		return nil, usageErr("-%s is empty", name)
	}
	return out, nil
}

// stamp is the results' file date, UTC.
func stamp(t time.Time) string { return t.UTC().Format("20060102T150405Z") }

func round2(v float64) float64 { return math.Round(v*100) / 100 }
func round3(v float64) float64 { return math.Round(v*1000) / 1000 }

// ratio is a/b rounded to 3 places, NaN when it has no meaning.
func ratio(a, b float64) float64 {
	if math.IsNaN(a) || math.IsNaN(b) || b == 0 {
		return math.NaN()
	}
	return round3(a / b)
}

// writeResults writes name.md and name.json under out and says so.
func (e *runEnv) writeResults(name string, md string, json []byte) error {
	if err := os.MkdirAll(e.out, 0o755); err != nil {
		return err
	}
	mdPath, jsonPath := filepath.Join(e.out, name+".md"), filepath.Join(e.out, name+".json")
	if err := os.WriteFile(mdPath, []byte(md), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(jsonPath, json, 0o644); err != nil {
		return err
	}
	fmt.Fprint(e.stdout, md)
	fmt.Fprintf(e.stdout, "\nwrote %s and %s\n", jsonPath, mdPath)
	return nil
}
