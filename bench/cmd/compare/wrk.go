package main

import (
	"bytes"
	"cmp"
	"context"
	"flag"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// wrkResult is the RESULT line the wrk scripts print (bench/wrk/common.lua).
type wrkResult struct {
	Requests   int64
	DurationUS int64
	RPS        float64
	P50US      int64
	P99US      int64
	Errors     int64
	Non2xx     int64
	// Spread is the requests sent to each node, in ADDRS order, from the
	// SPREAD line a run with ADDRS prints (nil without).
	Spread []nodeCount
	Output string // wrk's whole output
}

// nodeCount is one node's share of a spread run.
type nodeCount struct {
	Addr string
	Sent int64
}

// parseWrk finds the last RESULT line in out.
func parseWrk(out string) (wrkResult, error) {
	r := wrkResult{Output: out}
	var line, spread string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "RESULT ") {
			line = l
		}
		if strings.HasPrefix(l, "SPREAD ") {
			spread = l
		}
	}
	for _, kv := range strings.Fields(strings.TrimPrefix(spread, "SPREAD ")) {
		i := strings.LastIndexByte(kv, '=')
		n, err := strconv.ParseInt(kv[i+1:], 10, 64)
		if i < 0 || err != nil {
			return r, fmt.Errorf("bad SPREAD line %q", spread)
		}
		r.Spread = append(r.Spread, nodeCount{kv[:i], n})
	}
	if line == "" {
		return r, fmt.Errorf("no RESULT line from wrk: %s", strings.TrimSpace(out))
	}
	for _, kv := range strings.Fields(strings.TrimPrefix(line, "RESULT ")) {
		k, v, _ := strings.Cut(kv, "=")
		var err error
		switch k {
		case "requests":
			r.Requests, err = strconv.ParseInt(v, 10, 64)
		case "duration_us":
			r.DurationUS, err = strconv.ParseInt(v, 10, 64)
		case "rps":
			r.RPS, err = strconv.ParseFloat(v, 64)
		case "p50_us":
			r.P50US, err = strconv.ParseInt(v, 10, 64)
		case "p99_us":
			r.P99US, err = strconv.ParseInt(v, 10, 64)
		case "errors":
			r.Errors, err = strconv.ParseInt(v, 10, 64)
		case "non2xx":
			r.Non2xx, err = strconv.ParseInt(v, 10, 64)
		}
		if err != nil {
			return r, fmt.Errorf("bad RESULT line %q: %w", line, err)
		}
	}
	return r, nil
}

// wrkRun is one wrk invocation: the script (get, put or mixed from
// bench/wrk), the node, and the environment the scripts read (KEYS,
// VALUE_SIZE, DISTRIBUTION, SHUFFLE...).
type wrkRun struct {
	Script   string
	Addr     string
	Threads  int
	Conns    int
	Duration time.Duration
	Env      []string
	Prefix   []string // e.g. taskset -c 1
	Scheme   string   // http (when empty) or https
	// Addrs, when set, spreads wrk's threads over these nodes (ADDRS of
	// common.lua: thread i to Addrs[i mod len]); Addr stays the URL.
	Addrs []string
}

// runWrk runs wrk and parses its RESULT line. wrk's own duration bounds
// it; the timeout is a minute beyond, as the scripts had it.
func (h *harness) runWrk(ctx context.Context, w wrkRun) (wrkResult, error) {
	argv := append(append([]string{}, w.Prefix...), "wrk",
		fmt.Sprintf("-t%d", w.Threads), fmt.Sprintf("-c%d", w.Conns), "-d"+wrkDuration(w.Duration), "--latency",
		"-s", filepath.Join(h.root, "bench", "wrk", w.Script+".lua"), cmp.Or(w.Scheme, "http")+"://"+w.Addr)
	env := w.Env
	if len(w.Addrs) > 0 {
		env = append(slices.Clip(env), "ADDRS="+strings.Join(w.Addrs, ","))
	}
	var out bytes.Buffer
	if err := h.runTo(ctx, w.Duration+time.Minute, &out, env, argv...); err != nil {
		return wrkResult{Output: out.String()}, fmt.Errorf("wrk %s against %s: %w\n%s", w.Script, w.Addr, err, strings.TrimSpace(out.String()))
	}
	r, err := parseWrk(out.String())
	if err == nil && r.Requests <= 0 {
		err = fmt.Errorf("wrk %s made no requests against %s", w.Script, w.Addr)
	}
	return r, err
}

// measureWrk runs w and reads the CPU time servers spent in it: the
// figure every mode reports beside wrk's, in µs per request
// (cpuPerRequest).
func (h *harness) measureWrk(ctx context.Context, w wrkRun, servers []*proc) (wrkResult, float64, error) {
	before, err := sumTicks(servers)
	if err != nil {
		return wrkResult{}, 0, err
	}
	res, err := h.runWrk(ctx, w)
	if err != nil {
		return res, 0, err
	}
	after, err := sumTicks(servers)
	if err != nil {
		return res, 0, err
	}
	return res, cpuPerRequest(after-before, h.hz, res.Requests), nil
}

// wrkDuration writes d as wrk's -d wants it: whole seconds, at least 1.
func wrkDuration(d time.Duration) string {
	return strconv.FormatInt(max(int64((d+time.Second/2)/time.Second), 1), 10) + "s"
}

// buildWithWrk builds pkgs (none: nothing) and makes sure wrk is there:
// what a mode that runs wrk needs before it starts.
func (h *harness) buildWithWrk(ctx context.Context, pkgs ...string) error {
	if len(pkgs) > 0 {
		if err := h.build(ctx, pkgs...); err != nil {
			return err
		}
	}
	return h.ensureWrk(ctx)
}

// ensureWrk makes sure wrk is on PATH, installing Debian's package when
// it is missing (as the scripts did).
func (h *harness) ensureWrk(ctx context.Context) error {
	if _, err := exec.LookPath("wrk"); err == nil {
		return nil
	}
	h.logf("installing wrk")
	apt := []string{"apt-get", "install", "-y", "wrk"}
	if out, err := exec.Command("id", "-u").Output(); err != nil || strings.TrimSpace(string(out)) != "0" {
		apt = append([]string{"sudo"}, apt...)
	}
	var out bytes.Buffer
	if err := h.runTo(ctx, 10*time.Minute, &out, nil, apt...); err != nil {
		return fmt.Errorf("wrk is missing and could not be installed (apt-get install wrk): %w", err)
	}
	if _, err := exec.LookPath("wrk"); err != nil {
		return fmt.Errorf("wrk not found after installing it")
	}
	return nil
}

// p99ms writes a p99 in µs as the reports did: milliseconds, 2 places.
func p99ms(us int64) string { return fmt.Sprintf("%.2fms", float64(us)/1000) }

// wrkConfig is what the modes that run wrk over a key space share
// (single, cluster, tls, commitwait): the scripts' variables as flags,
// their checks, and the runs and preloads made of them.
type wrkConfig struct {
	Duration   time.Duration
	Rounds     int
	Keys       int
	ValueSize  int
	Conns      int
	Threads    int
	RingkvArgs string // extra `ringkv serve` flags, space-separated
}

// defaultWrk is the scripts' defaults: wrk -t1 -c64 for 10s over 100k
// keys of 100 bytes.
func defaultWrk(rounds int) wrkConfig {
	return wrkConfig{Duration: 10 * time.Second, Rounds: rounds, Keys: 100000, ValueSize: 100, Conns: 64, Threads: 1}
}

// register binds the flags; ringkvArgs is -ringkv-args' help.
func (c *wrkConfig) register(fs *flag.FlagSet, ringkvArgs string) {
	fs.DurationVar(&c.Duration, "duration", c.Duration, "wrk duration per run")
	fs.IntVar(&c.Rounds, "rounds", c.Rounds, "rounds; figures are medians over them")
	fs.IntVar(&c.Keys, "keys", c.Keys, "the key space: key-0 .. key-(N-1), preloaded where a mode reads")
	fs.IntVar(&c.ValueSize, "value-size", c.ValueSize, "bytes per value")
	fs.IntVar(&c.Conns, "conns", c.Conns, "wrk -c (and the preload's connections)")
	fs.IntVar(&c.Threads, "threads", c.Threads, "wrk -t")
	fs.StringVar(&c.RingkvArgs, "ringkv-args", "", ringkvArgs)
}

func (c wrkConfig) check() error {
	if err := checkRounds(c.Rounds); err != nil {
		return err
	}
	if err := checkDuration("duration", c.Duration); err != nil {
		return err
	}
	if c.Keys < 1 || c.ValueSize < 0 || c.Conns < 1 || c.Threads < 1 {
		return usageErr("-keys, -conns and -threads must be positive, -value-size not negative")
	}
	return nil
}

// flagLine is the flags as a result file's command line shows them.
func (c wrkConfig) flagLine() string {
	return fmt.Sprintf("-duration %s -rounds %d -keys %d -value-size %d -conns %d -threads %d",
		wrkDuration(c.Duration), c.Rounds, c.Keys, c.ValueSize, c.Conns, c.Threads)
}

// env is the scripts' environment (KEYS, VALUE_SIZE), plus extra.
func (c wrkConfig) env(extra ...string) []string {
	return append([]string{"KEYS=" + strconv.Itoa(c.Keys), "VALUE_SIZE=" + strconv.Itoa(c.ValueSize)}, extra...)
}

// run is a wrk run of script against addr with these flags.
func (c wrkConfig) run(script, addr string, env []string) wrkRun {
	return wrkRun{Script: script, Addr: addr, Threads: c.Threads, Conns: c.Conns, Duration: c.Duration, Env: env}
}

// preload writes the key space to addr before a mode reads it.
func (c wrkConfig) preload(addr string) preloadSpec {
	return preloadSpec{Addr: addr, Keys: c.Keys, ValueSize: c.ValueSize, Conns: c.Conns}
}

func (c wrkConfig) ringkvArgs() []string { return strings.Fields(c.RingkvArgs) }
