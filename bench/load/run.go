package load

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/ringkv/ringkv/bench/workload"
)

// UnreachableError is returned by Run when a node does not accept
// connections before the run starts.
type UnreachableError struct {
	Addr string
	Err  error
}

func (e *UnreachableError) Error() string { return fmt.Sprintf("cannot reach %s: %v", e.Addr, e.Err) }
func (e *UnreachableError) Unwrap() error { return e.Err }

// Run validates c, preloads the keys if c.Preload says so, runs the
// workload for c.Duration (or until ctx ends, which stops it early and
// still reports), and writes report.json and report.html to c.Out.
func Run(ctx context.Context, c Config) (*Report, error) {
	bases, err := prepare(ctx, &c)
	if err != nil {
		return nil, err
	}
	keys, err := workload.NewChooser(c.Distribution, uint64(c.Keys), c.ZipfTheta)
	if err != nil {
		return nil, err
	}
	value := makeValue(c.ValueSize, c.Seed)
	progress := c.Progress
	if progress == nil {
		progress = io.Discard
	}

	r := &Report{Tool: "ringkv bench", Config: reportConfig(&c)}
	r.Preload, err = doPreload(ctx, &c, bases, value, progress)
	if err != nil {
		return nil, err
	}

	// The LSM samplers run beside the attack, one per node.
	start := time.Now()
	r.Started = start.UTC()
	samplers, stopSampling := startSamplers(&c, bases, start)
	var rec *recorder
	var elapsed time.Duration
	var interrupted bool
	if c.Workload == workload.CAS {
		rec, elapsed, interrupted, r.CAS, err = runCAS(ctx, &c, bases, keys, start, progress)
		if err != nil {
			stopSampling()
			return nil, err
		}
	} else {
		tg := newTargets(&c, bases, keys, c.Seed, value)
		rec, elapsed, interrupted = attack(ctx, &c, tg, start, progress)
		if c.OnRunEnd != nil {
			c.OnRunEnd()
		}
	}
	stopSampling()

	r.Interrupted = interrupted
	r.Elapsed = elapsed.Seconds()
	r.Summary, r.Ops, r.Series, r.Histogram = rec.build(elapsed)
	r.Batch = rec.batchSummary(c.BatchSize, elapsed)
	if r.CAS != nil {
		for _, o := range r.Ops {
			if o.Op == workload.CondUpdate.String() {
				r.CAS.PutLatency = o.Latency
			}
		}
	}
	for _, s := range samplers {
		r.LSM = append(r.LSM, s.report())
	}
	if err := WriteFiles(c.Out, r); err != nil {
		return r, err
	}
	return r, nil
}

// prepare fills in c's Interval and Seed defaults, validates it, checks
// that every node accepts connections, and makes c.Out. It returns the
// nodes' base URLs.
func prepare(ctx context.Context, c *Config) ([]string, error) {
	if c.Interval <= 0 {
		c.Interval = time.Second
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if c.Seed == 0 {
		c.Seed = uint64(time.Now().UnixNano())
	}
	bases := make([]string, len(c.Addrs))
	for i, a := range c.Addrs {
		bases[i], _ = BaseURL(a)
		if err := dialCheck(ctx, bases[i]); err != nil {
			return nil, &UnreachableError{Addr: a, Err: err}
		}
	}
	if err := os.MkdirAll(c.Out, 0o755); err != nil {
		return nil, fmt.Errorf("--out: %w", err)
	}
	return bases, nil
}

// startSamplers starts one LSM sampler per node, each every c.Interval;
// stop ends them and waits for them to return.
func startSamplers(c *Config, bases []string, start time.Time) (samplers []*sampler, stop func()) {
	samplers = make([]*sampler, len(bases))
	sctx, stopSampling := context.WithCancel(context.Background())
	var swg sync.WaitGroup
	for i, b := range bases {
		samplers[i] = newSampler(c.Addrs[i], b, start, min(c.Timeout, 5*time.Second), c.Token)
		samplers[i].client.Transport = tokenTransport{base: &http.Transport{TLSClientConfig: tlsOf(c)}, token: c.Token}
		swg.Go(func() { samplers[i].run(sctx, c.Interval) })
	}
	return samplers, func() { stopSampling(); swg.Wait() }
}

// attack sends tg's requests for c.Duration, or until ctx ends, showing
// progress every c.Interval. It returns what it recorded, how long it
// took, and whether ctx cut it short.
func attack(ctx context.Context, c *Config, tg *targets, start time.Time, progress io.Writer) (rec *recorder, elapsed time.Duration, interrupted bool) {
	atk := vegeta.NewAttacker(
		vegeta.Workers(uint64(c.Concurrency)),
		vegeta.MaxWorkers(uint64(c.Concurrency)),
		vegeta.Connections(c.Concurrency),
		vegeta.Timeout(c.Timeout),
		vegeta.KeepAlive(true),
		vegeta.Redirects(vegeta.NoFollow),
		// Verified: vegeta's own default skips verification.
		vegeta.TLSConfig(tlsOf(c)),
	)
	pace := vegeta.Rate{Freq: c.Rate, Per: time.Second} // Freq 0: no pacing, MaxWorkers bound the load
	rec = newRecorder(start, c.Duration)
	if c.Workload.Batch() {
		rec.batchOp = c.Workload.Next(nil)
		rec.batch = &batchTally{byStatus: map[string]uint64{}}
	}
	results := atk.Attack(tg.Targeter(), pace, c.Duration, "ringkv-bench")
	tick := time.NewTicker(c.Interval)
	defer tick.Stop()
	pr := &progressLine{w: progress, tty: c.ProgressTTY, every: c.Interval}
	done := ctx.Done()
loop:
	for {
		select {
		case res, ok := <-results:
			if !ok {
				break loop
			}
			rec.add(res)
		case now := <-tick.C:
			pr.show(rec, now, false)
		case <-done:
			interrupted = true
			atk.Stop()
			done = nil // keep draining results until vegeta closes the channel
		}
	}
	elapsed = time.Since(start)
	pr.show(rec, time.Now(), true)
	pr.end()
	return rec, elapsed, interrupted
}

func reportConfig(c *Config) ReportConfig {
	rc := ReportConfig{
		Addrs: c.Addrs, Workload: string(c.Workload), ReadFraction: c.Workload.ReadFraction(),
		Duration: c.Duration.Seconds(), Rate: c.Rate, Concurrency: c.Concurrency, Keys: c.Keys,
		KeyPrefix: c.KeyPrefix, ValueSize: c.ValueSize, Distribution: string(c.Distribution),
		Seed: c.Seed, Timeout: c.Timeout.Seconds(),
	}
	if c.Distribution == workload.Zipf {
		rc.ZipfTheta = c.ZipfTheta
	}
	if c.Workload == workload.ScanAll {
		rc.ScanLimit = c.ScanLimit
	}
	if c.Workload.Batch() {
		rc.BatchSize = c.BatchSize
	}
	return rc
}

// doPreload applies c.Preload.
func doPreload(ctx context.Context, c *Config, bases []string, value []byte, progress io.Writer) (PreloadInfo, error) {
	info := PreloadInfo{Mode: string(c.Preload)}
	switch {
	case c.Preload == PreloadNever:
		info.Reason = "--preload never"
		return info, nil
	case c.Preload == PreloadAuto && !c.Workload.Reads():
		info.Reason = "the workload only writes"
		return info, nil
	}
	hc := newClient(c)
	defer hc.CloseIdleConnections()
	if c.Preload == PreloadAuto {
		there, err := keysPresent(ctx, hc, bases[0], c, c.Seed)
		if err != nil {
			return info, err
		}
		if there {
			info.Reason = fmt.Sprintf("a sample of %d keys was already there", preloadSample)
			fmt.Fprintf(progress, "preload: skipped, %s\n", info.Reason)
			return info, nil
		}
		info.Reason = "a sampled key was missing"
	} else {
		info.Reason = "--preload always"
	}
	fmt.Fprintf(progress, "preload: writing %d keys (%s%d .. %s%d, %d bytes each)...\n",
		c.Keys, c.KeyPrefix, 0, c.KeyPrefix, c.Keys-1, len(value))
	t0 := time.Now()
	if err := preload(ctx, hc, bases, c, value); err != nil {
		return info, err
	}
	info.Done, info.Keys, info.Seconds = true, c.Keys, time.Since(t0).Seconds()
	fmt.Fprintf(progress, "preload: %d keys in %.1fs (%.0f/s)\n", c.Keys, info.Seconds, float64(c.Keys)/info.Seconds)
	return info, nil
}

// dialCheck makes sure base accepts TCP connections.
func dialCheck(ctx context.Context, base string) error {
	u, err := url.Parse(base)
	if err != nil {
		return err
	}
	d := net.Dialer{Timeout: 3 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Err != nil {
			return op.Err
		}
		return err
	}
	return conn.Close()
}

// progressLine prints the live progress: one line per interval, or one
// line rewritten in place on a terminal.
type progressLine struct {
	w     io.Writer
	tty   bool
	every time.Duration // the interval between lines (0: a second)
	wrote bool
}

func (p *progressLine) interval() time.Duration {
	if p.every <= 0 {
		return time.Second
	}
	return p.every
}

func (p *progressLine) show(rec *recorder, now time.Time, final bool) {
	if p.w == io.Discard {
		rec.window = rec.window[:0] // nobody reads it: keep it from growing
		return
	}
	elapsed := now.Sub(rec.start)
	// req/s over the last interval; the final line gives the run's mean.
	dt := now.Sub(rec.lastAt).Seconds()
	n := rec.all.requests - rec.lastReq
	if final {
		dt, n = elapsed.Seconds(), rec.all.requests
	}
	rps := 0.0
	if dt > 0 {
		rps = float64(n) / dt
	}
	rec.lastReq, rec.lastAt = rec.all.requests, now
	// The live p99 is the last interval's (answers received in it); the
	// final line gives the whole run's, and says so.
	p99, label := "-", "p99 (last "+fmtDur(p.interval())+")"
	if final {
		label = "p99 (whole run)"
		if rec.metrics.Requests > 0 {
			p99 = fmtDur(rec.metrics.Latencies.Quantile(0.99))
		}
	} else if d, ok := rec.windowP99(); ok {
		p99 = fmtDur(d)
	}
	line := fmt.Sprintf("%6.1fs  requests %9d  req/s %8.0f  errors %6d  misses %6d  %s %s",
		elapsed.Seconds(), rec.all.requests, rps, rec.all.errors, rec.all.misses, label, p99)
	if p.tty {
		fmt.Fprintf(p.w, "\r%s\x1b[K", line)
	} else {
		fmt.Fprintln(p.w, line)
	}
	p.wrote = true
}

func (p *progressLine) end() {
	if p.tty && p.wrote {
		fmt.Fprintln(p.w)
	}
}

// IsTerminal reports whether w is a terminal (a character device), where
// progress is best rewritten in place.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// WriteFiles writes r to dir/report.json and dir/report.html.
func WriteFiles(dir string, r *Report) error {
	j, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "report.json"), append(j, '\n'), 0o644); err != nil {
		return err
	}
	var b strings.Builder
	if err := writeHTML(&b, r); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "report.html"), []byte(b.String()), 0o644)
}
