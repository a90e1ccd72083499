package main

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
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
	Output     string // wrk's whole output
}

// parseWrk finds the last RESULT line in out.
func parseWrk(out string) (wrkResult, error) {
	r := wrkResult{Output: out}
	var line string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "RESULT ") {
			line = l
		}
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
}

// runWrk runs wrk and parses its RESULT line. wrk's own duration bounds
// it; the timeout is a minute beyond, as the scripts had it.
func (h *harness) runWrk(ctx context.Context, w wrkRun) (wrkResult, error) {
	argv := append(append([]string{}, w.Prefix...), "wrk",
		fmt.Sprintf("-t%d", w.Threads), fmt.Sprintf("-c%d", w.Conns), "-d"+wrkDuration(w.Duration), "--latency",
		"-s", filepath.Join(h.root, "bench", "wrk", w.Script+".lua"), cmpOr(w.Scheme, "http")+"://"+w.Addr)
	var out bytes.Buffer
	if err := h.runTo(ctx, w.Duration+time.Minute, &out, w.Env, argv...); err != nil {
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
