package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ringkv/ringkv/bench/load"
	"github.com/ringkv/ringkv/bench/workload"
)

// moveConfig is `compare move` (move.sh's variables, as flags).
type moveConfig struct {
	Keys         int
	ValueSize    int
	Rate         int
	Before       time.Duration
	TransferRate string // --transfer-rate of node 1, e.g. 32MiB
	Settle       time.Duration
}

func moveFlags(fs *flag.FlagSet) func(context.Context, *runEnv) error {
	c := moveConfig{Keys: 1000000, ValueSize: 1000, Rate: 1000, Before: 20 * time.Second, TransferRate: "32MiB", Settle: time.Hour}
	fs.IntVar(&c.Keys, "keys", c.Keys, "keys node 1 holds before node 2 joins")
	fs.IntVar(&c.ValueSize, "value-size", c.ValueSize, "bytes per value")
	fs.IntVar(&c.Rate, "rate", c.Rate, "client requests per second (ringkv bench, workload b, uniform keys)")
	fs.DurationVar(&c.Before, "before", c.Before, "client load measured before node 2 joins")
	fs.StringVar(&c.TransferRate, "transfer-rate", c.TransferRate, "node 1's --transfer-rate")
	fs.DurationVar(&c.Settle, "settle", c.Settle, "how long node 2 may take to settle")
	return func(ctx context.Context, e *runEnv) error { return runMove(ctx, e, c) }
}

// movePhase is a phase's client figures, as move-<date>.json keeps them.
type movePhase struct {
	Requests uint64       `json:"requests"`
	RPS      float64      `json:"requests_per_second"`
	Errors   uint64       `json:"errors"`
	Misses   uint64       `json:"misses"`
	Latency  load.Latency `json:"latency"`
}

func phaseOf(r *load.Report) movePhase {
	s := r.Summary
	return movePhase{Requests: s.Requests, RPS: s.RPS, Errors: s.Errors, Misses: s.Misses, Latency: s.Latency}
}

// moveResult is move-<date>.json.
type moveResult struct {
	Keys          int       `json:"keys"`
	ValueSize     int       `json:"value_size"`
	Rate          int       `json:"rate"`
	TransferRate  string    `json:"transfer_rate"`
	DataDirBytes  int64     `json:"data_dir_bytes"`
	MovedBytes    int64     `json:"moved_bytes"`
	MoveSeconds   float64   `json:"move_seconds"`
	MovedMiBPerS  float64   `json:"moved_mib_per_second"`
	Commit        string    `json:"commit"`
	Before        movePhase `json:"before"`
	During        movePhase `json:"during"`
	date, command string
}

// clientLoad runs `ringkv bench`'s load (bench/load, in process) against
// addr until d has passed or ctx ends; its report goes to out.
func (c moveConfig) clientLoad(ctx context.Context, addr, out string, d time.Duration) (*load.Report, error) {
	lc := load.DefaultConfig()
	lc.Addrs = []string{addr}
	lc.Workload = workload.B
	lc.Rate = c.Rate
	lc.Duration = d
	lc.Keys = c.Keys
	lc.ValueSize = c.ValueSize
	lc.Distribution = workload.Uniform
	lc.Preload = load.PreloadNever
	lc.Out = out
	return load.Run(ctx, lc)
}

// metricValue reads an unlabelled sample from a Prometheus text page.
func metricValue(page []byte, name string) (float64, error) {
	for _, s := range metricLines(page, name) {
		if s.labelled {
			continue
		}
		return s.v, s.err
	}
	return 0, fmt.Errorf("no %s in /metrics", name)
}

// metricSamples returns the values of every sample of name, labelled or
// not, that parse.
func metricSamples(page []byte, name string) []float64 {
	var out []float64
	for _, s := range metricLines(page, name) {
		if s.err == nil {
			out = append(out, s.v)
		}
	}
	return out
}

type metricSample struct {
	labelled bool
	v        float64
	err      error
}

// metricLines finds the samples of name on a Prometheus text page (label
// values without spaces, as ringkv's are).
func metricLines(page []byte, name string) []metricSample {
	var out []metricSample
	sc := bufio.NewScanner(bytes.NewReader(page))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || (f[0] != name && !strings.HasPrefix(f[0], name+"{")) {
			continue
		}
		v, err := strconv.ParseFloat(f[1], 64)
		out = append(out, metricSample{labelled: f[0] != name, v: v, err: err})
	}
	return out
}

// settled reports whether a /v1/cluster answer says the node holds its
// ranges in a ring of n members.
func settled(body []byte, n int) bool {
	var st struct {
		Settled bool              `json:"settled"`
		Members []json.RawMessage `json:"members"`
	}
	return json.Unmarshal(body, &st) == nil && st.Settled && len(st.Members) == n
}

func runMove(ctx context.Context, e *runEnv, c moveConfig) error {
	if c.Keys < 1 || c.ValueSize < 0 || c.Rate < 1 {
		return usageErr("-keys and -rate must be positive, -value-size not negative")
	}
	if c.Before <= 0 {
		return usageErr("-before must be positive")
	}
	h := e.h
	if err := h.build(ctx, "./cmd/ringkv", "./bench/cmd/preload"); err != nil {
		return err
	}
	ports := map[int]bool{}
	var addrs [4]string // node 1 HTTP, gossip; node 2 HTTP, gossip
	for i := range addrs {
		var err error
		if addrs[i], err = freeAddr(ports); err != nil {
			return err
		}
	}
	h1, g1 := addrs[0], addrs[1]
	dir1 := filepath.Join(h.work, "n1")
	if err := c.loadNode1(ctx, h, h1, g1, dir1); err != nil {
		return err
	}
	res := moveResult{Keys: c.Keys, ValueSize: c.ValueSize, Rate: c.Rate, TransferRate: c.TransferRate,
		DataDirBytes: dirBytes(dir1), Commit: gitCommit(e.root, false)}

	h.logf("client load before the move: %d req/s for %s", c.Rate, c.Before)
	before, err := c.clientLoad(ctx, h1, filepath.Join(h.work, "before"), c.Before)
	if err != nil {
		return fmt.Errorf("client load before the move: %w", err)
	}
	res.Before = phaseOf(before)
	if err := c.join(ctx, h, addrs, &res); err != nil {
		return err
	}
	res.date = stamp(time.Now())
	res.command = fmt.Sprintf("go run ./bench/cmd/compare move -keys %d -value-size %d -rate %d -before %s -transfer-rate %s",
		c.Keys, c.ValueSize, c.Rate, c.Before, c.TransferRate)
	md, js, err := res.render()
	if err != nil {
		return err
	}
	return e.writeResults("move-"+res.date, md, js)
}

// loadNode1 loads node 1 alone (--sync=false, keys in random order), then
// restarts it with default flags, as the move is measured with them.
func (c moveConfig) loadNode1(ctx context.Context, h *harness, httpAddr, gossip, dir string) error {
	start := func(extra ...string) (*proc, error) {
		p, err := h.start("n1", nil, append([]string{filepath.Join(h.bin, "ringkv"), "serve", "--node-id", "n1",
			"--http-addr", httpAddr, "--gossip-addr", gossip, "--data-dir", dir, "--replicas", "2",
			"--transfer-rate", c.TransferRate}, extra...)...)
		if err != nil {
			return nil, err
		}
		return p, waitFor(ctx, p, 30*time.Second, "node 1 healthy", func() bool { return healthy(ctx, httpAddr) })
	}
	h.logf("loading %d keys of %d bytes into node 1", c.Keys, c.ValueSize)
	n1, err := start("--sync=false")
	if err != nil {
		return err
	}
	t0 := time.Now()
	if err := h.preload(ctx, preloadSpec{Addr: httpAddr, Keys: c.Keys, ValueSize: c.ValueSize, Conns: 64, Shuffle: true}); err != nil {
		return err
	}
	h.logf("loaded in %s", time.Since(t0).Round(time.Second))
	h.stop(n1)
	_, err = start()
	return err
}

// join starts node 2 under the client load and measures until it holds
// every range: the move's time and bytes, and the client's figures
// during it.
func (c moveConfig) join(ctx context.Context, h *harness, addrs [4]string, res *moveResult) error {
	h1, g1, h2, g2 := addrs[0], addrs[1], addrs[2], addrs[3]
	h.logf("node 2 joins; the same load runs until it holds every range")
	lctx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	var (
		wg     sync.WaitGroup
		during *load.Report
		derr   error
	)
	wg.Go(func() { during, derr = c.clientLoad(lctx, h1, filepath.Join(h.work, "during"), 30*time.Minute) })
	// Let the load reach its rate before the join, as move.sh did.
	select {
	case <-ctx.Done():
	case <-time.After(2 * time.Second):
	}
	t0 := time.Now()
	n2, err := h.start("n2", nil, filepath.Join(h.bin, "ringkv"), "serve", "--node-id", "n2", "--http-addr", h2,
		"--gossip-addr", g2, "--data-dir", filepath.Join(h.work, "n2"), "--replicas", "2", "--join", g1)
	if err == nil {
		err = waitFor(ctx, n2, c.Settle, "node 2 settled", func() bool {
			b, err := getBody(ctx, h2, "/v1/cluster")
			return err == nil && settled(b, 2)
		})
	}
	res.MoveSeconds = math.Round(time.Since(t0).Seconds()*100) / 100
	stopLoad()
	wg.Wait()
	switch {
	case err != nil:
		return err
	case derr != nil && during == nil:
		return fmt.Errorf("client load during the move: %w", derr)
	case during == nil:
		return errors.New("client load during the move made no report")
	}
	res.During = phaseOf(during)
	page, err := getBody(ctx, h2, "/metrics")
	if err != nil {
		return err
	}
	moved, err := metricValue(page, "ringkv_transfer_bytes_total")
	if err != nil {
		return err
	}
	res.MovedBytes = int64(moved)
	if res.MoveSeconds > 0 {
		res.MovedMiBPerS = math.Round(moved/(1<<20)/res.MoveSeconds*10) / 10
	}
	return nil
}

func (r *moveResult) render() (string, []byte, error) {
	var md strings.Builder
	fmt.Fprintf(&md, "# Moving ranges to a joining node (%s)\n\n", r.date)
	fmt.Fprintf(&md, "`%s`, commit %s: node 1 alone\n(N=2) holds the keys (%.0fMiB data directory); node 2 joins and pulls every range from it.\n\n",
		r.command, r.Commit, float64(r.DataDirBytes)/(1<<20))
	md.WriteString("| moved | time | throughput |\n| ---: | ---: | ---: |\n")
	fmt.Fprintf(&md, "| %.0fMiB | %gs | %gMiB/s |\n\n", float64(r.MovedBytes)/(1<<20), r.MoveSeconds, r.MovedMiBPerS)
	fmt.Fprintf(&md, "Client load (`ringkv bench --workload b --rate %d`, uniform keys, sent to node 1):\n\n", r.Rate)
	md.WriteString("| phase | requests | req/s | errors | 404s | p50 ms | p99 ms | max ms |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, p := range []struct {
		name string
		s    movePhase
	}{{"before the move", r.Before}, {"during the move", r.During}} {
		l := p.s.Latency
		fmt.Fprintf(&md, "| %s | %d | %.0f | %d | %d | %.2f | %.2f | %.1f |\n", p.name, p.s.Requests, p.s.RPS, p.s.Errors, p.s.Misses, l.P50, l.P99, l.Max)
	}
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return "", nil, err
	}
	return md.String(), append(js, '\n'), nil
}
