// Package matrix is the compaction-tuning matrix of `ringkv bench
// compaction`: it runs one write-heavy-then-read-back load on a fresh
// embedded engine (engine.Open on the real disk) under each compaction
// profile, plus Pebble's own defaults as the reference row, and compares
// throughput, p99 latency, write and read amplification, write stalls and
// disk bytes.
//
// Each case gets a new engine directory under the output directory. The
// write phase has --concurrency writers calling engine.Write without
// fsync, as fast as they go, until they have made --writes writes between
// them or half of --duration has passed, whichever comes first (with
// --writes 0, for half of --duration): the matrix takes about --duration
// per case. A case that reaches --writes writes the same data as every
// other that does, so their read phases compare like with like; a case
// stopped by the clock first is marked (Row.WritesCut) and the table says
// so. The engine's
// memtable is then flushed, so that every case pays for what it wrote; the
// read phase (half of --duration) has as many readers doing point reads of
// keys written in the first phase, while compactions catch up. Write
// amplification is measured at the end, so it includes the compactions
// that ran during the reads; the compaction debt left is reported beside
// it. The row cache is off so that reads see the LSM the profile built.
package matrix

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ringkv/ringkv/bench/workload"
	"github.com/ringkv/ringkv/compaction"
	"github.com/ringkv/ringkv/engine"
	"github.com/ringkv/ringkv/memtable"
)

// Case is one row of the matrix: a name and the tuning it runs with.
type Case struct {
	Name      string
	Reference bool // the row the others are compared against
	Tuning    compaction.Tuning
}

// PebbleDefaultsName names the reference case.
const PebbleDefaultsName = "pebble-defaults"

// PebbleDefaults returns the tuning that reproduces Pebble's own defaults
// (pebble.Options.EnsureDefaults in v2): 4MB memtables, 2 of them before
// writes stop, L0 compaction at 4 and stop at 12 sublevels, 64MB Lbase,
// 2MB files, one compaction at a time, an 8MB block cache and no bloom
// filters. One difference remains: Tuning gives Lbase the L0 file size
// (2MB) where Pebble doubles it (4MB); the levels below double from there.
// Tuning.Profile must name a real profile, so the reference carries
// "balanced" inside, but none of balanced's values; Case.Knobs labels it.
func PebbleDefaults() compaction.Tuning {
	return compaction.Tuning{
		Profile:                  compaction.Balanced,
		MemTableSize:             4 << 20,
		MemTableStopWrites:       2,
		L0CompactionThreshold:    4,
		L0StopWritesThreshold:    12,
		LBaseMaxBytes:            64 << 20,
		TargetFileSize:           2 << 20,
		MaxConcurrentCompactions: 1,
		BlockCacheSize:           8 << 20,
		BloomBitsPerKey:          0,
	}
}

// pebbleDefaultsLabel is the reference row's compaction-profile knob.
const pebbleDefaultsLabel = "none (Pebble's defaults)"

// Knobs returns cs's settings for display. The reference row's profile
// knob says it is Pebble's defaults, not the profile its Tuning names.
func (cs Case) Knobs() []compaction.Knob {
	ks := cs.Tuning.Knobs()
	if cs.Name == PebbleDefaultsName {
		for i := range ks {
			if ks[i].Name == "compaction-profile" {
				ks[i].Value = pebbleDefaultsLabel
			}
		}
	}
	return ks
}

// Cases returns the default rows: Pebble's defaults, then every profile.
func Cases() []Case {
	cs := []Case{{Name: PebbleDefaultsName, Reference: true, Tuning: PebbleDefaults()}}
	for _, p := range compaction.Profiles() {
		t, _ := compaction.ProfileTuning(p)
		cs = append(cs, Case{Name: string(p), Tuning: t})
	}
	return cs
}

// SelectCases returns the cases named in names (comma-separated; "all" or
// "" for every one), in the matrix's order.
func SelectCases(names string) ([]Case, error) {
	all := Cases()
	if s := strings.TrimSpace(names); s == "" || s == "all" {
		return all, nil
	}
	want := map[string]bool{}
	for _, n := range strings.Split(names, ",") {
		n = strings.ToLower(strings.TrimSpace(n))
		ok := false
		for _, c := range all {
			ok = ok || c.Name == n
		}
		if !ok {
			return nil, fmt.Errorf("--profiles: unknown %q, want %s", n, caseNames(all))
		}
		want[n] = true
	}
	var out []Case
	for _, c := range all {
		if want[c.Name] {
			out = append(out, c)
		}
	}
	return out, nil
}

func caseNames(cs []Case) string {
	var s []string
	for _, c := range cs {
		s = append(s, c.Name)
	}
	return strings.Join(s, ", ")
}

// KeyOrder is how the write phase picks key numbers.
type KeyOrder string

// The key orders of --distribution.
const (
	// Sequence gives each write the next key number, wrapping at Keys:
	// inserts first, then overwrites. The engine stores keys by their
	// xxh3 token, so consecutive key numbers land at random places in the
	// LSM, as random keys would.
	Sequence KeyOrder = "sequence"
	// Uniform and Zipf draw key numbers from bench/workload's choosers:
	// a mix of inserts and overwrites.
	Uniform KeyOrder = KeyOrder(workload.Uniform)
	Zipf    KeyOrder = KeyOrder(workload.Zipf)
)

// Config is one run of the matrix. The comment on each field names its flag.
type Config struct {
	Out         string        // --out: compaction.json, compaction.html and the engine directories go here
	Duration    time.Duration // --duration: per case, the read phase is half of it (and so is the write phase with Writes 0)
	Writes      int           // --writes: writes per case at most; the write phase also ends at half of Duration (0: write for half of Duration)
	Keys        int           // --keys: the key space
	ValueSize   int           // --value-size
	Concurrency int           // --concurrency: writers, then readers
	Order       KeyOrder      // --distribution
	Cases       []Case        // --profiles
	Runs        int           // --runs: rounds over the cases; each row is the per-figure median
	Keep        bool          // --keep: keep each engine's directory
	Seed        uint64        // --seed
	Progress    io.Writer     // one line per phase (nil: none)
}

// DefaultConfig returns the defaults of `ringkv bench compaction`.
func DefaultConfig() Config {
	return Config{
		Out:         "ringkv-bench",
		Duration:    30 * time.Second,
		Writes:      1_000_000,
		Keys:        50_000_000,
		ValueSize:   100,
		Concurrency: 4,
		Order:       Sequence,
		Cases:       Cases(),
		Runs:        1,
	}
}

// Validate returns the first bad setting as one line naming its flag.
func (c *Config) Validate() error {
	switch {
	case c.Out == "":
		return fmt.Errorf("--out must name a directory")
	case c.Duration <= 0:
		return fmt.Errorf("--duration (%s) must be positive", c.Duration)
	case c.Writes < 0:
		return fmt.Errorf("--writes (%d) must not be negative", c.Writes)
	case c.Keys < 1:
		return fmt.Errorf("--keys (%d) must be at least 1", c.Keys)
	case c.ValueSize < 0 || c.ValueSize > 1<<20:
		return fmt.Errorf("--value-size (%d) must be between 0 and 1MiB", c.ValueSize)
	case c.Concurrency < 1 || c.Concurrency > 1024:
		return fmt.Errorf("--concurrency (%d) must be between 1 and 1024", c.Concurrency)
	case c.Order != Sequence && c.Order != Uniform && c.Order != Zipf:
		return fmt.Errorf("--distribution %q: want sequence, uniform or zipf", c.Order)
	case len(c.Cases) == 0:
		return fmt.Errorf("--profiles selects no profile")
	case c.Runs < 1 || c.Runs > 99:
		return fmt.Errorf("--runs (%d) must be between 1 and 99", c.Runs)
	}
	if fi, err := os.Stat(c.Out); err == nil && !fi.IsDir() {
		return fmt.Errorf("--out %q is a file, not a directory", c.Out)
	}
	for _, cs := range c.Cases {
		if err := cs.Tuning.Validate(); err != nil {
			return fmt.Errorf("profile %s: %w", cs.Name, err)
		}
	}
	return nil
}

// Result is the whole matrix; it is written as compaction.json.
type Result struct {
	Tool        string    `json:"tool"` // "ringkv bench compaction"
	Started     time.Time `json:"started"`
	Duration    float64   `json:"duration_seconds"` // per case
	Writes      int       `json:"writes"`           // per case at most, within half of Duration; 0: for half of Duration
	Keys        int       `json:"keys"`
	ValueSize   int       `json:"value_size"`
	Concurrency int       `json:"concurrency"`
	Order       string    `json:"distribution"`
	CPUs        int       `json:"cpus"`
	GoVersion   string    `json:"go_version"`
	Reference   string    `json:"reference"`
	Runs        int       `json:"runs"` // rounds over the cases; with more than one, each row holds medians
	Rows        []Row     `json:"rows"`
}

// Row is one case's figures. Latencies are in milliseconds.
type Row struct {
	Name      string            `json:"name"`
	Reference bool              `json:"reference"`
	Knobs     []compaction.Knob `json:"knobs"`

	WriteOps uint64 `json:"write_ops"`
	// WritesCut is set when half of --duration ended the write phase
	// before it had made --writes writes (in any run, with --runs).
	WritesCut      bool    `json:"writes_cut,omitempty"`
	WriteOpsPerSec float64 `json:"write_ops_per_second"`
	WriteP50       float64 `json:"write_p50_ms"`
	WriteP99       float64 `json:"write_p99_ms"`
	WriteMax       float64 `json:"write_max_ms"`
	FlushSeconds   float64 `json:"flush_seconds"` // the flush between the phases
	ReadOps        uint64  `json:"read_ops"`
	ReadOpsPerSec  float64 `json:"read_ops_per_second"`
	ReadP50        float64 `json:"read_p50_ms"`
	ReadP99        float64 `json:"read_p99_ms"`
	ReadMax        float64 `json:"read_max_ms"`
	ReadHitRatio   float64 `json:"read_hit_ratio"`

	WALBytes            uint64  `json:"wal_bytes"`
	WriteAmp            float64 `json:"write_amp"`              // flushed and compacted bytes per WAL byte, at the end
	WriteAmpVsReference float64 `json:"write_amp_vs_reference"` // WriteAmp / the reference row's (0 when there is none)
	ReadAmp             float64 `json:"read_amp"`               // mean during the read phase (L0 sublevels + non-empty levels)
	ReadAmpMax          int     `json:"read_amp_max"`
	MaxL0Sublevels      int32   `json:"max_l0_sublevels"`
	MaxCompactionDebt   uint64  `json:"max_compaction_debt_bytes"`
	CompactionDebtEnd   uint64  `json:"compaction_debt_end_bytes"`
	Stalls              int64   `json:"stalls"`
	StallSeconds        float64 `json:"stall_seconds"`
	Flushes             int64   `json:"flushes"`
	Compactions         int64   `json:"compactions"`
	DiskBytes           uint64  `json:"disk_bytes"`  // engine.LSM().DiskUsage at the end
	LevelBytes          []int64 `json:"level_bytes"` // L0..L6 at the end
	// LoadAvg is the host's 1-minute load average before the case
	// started (Linux; 0 elsewhere): other work on the host skews ops/s.
	LoadAvg float64 `json:"load_avg_1m"`

	// Runs holds each round's row when there was more than one; the
	// figures above are then the median of each figure on its own.
	Runs []Row `json:"runs,omitempty"`
}

// Run runs every case in turn and writes compaction.json and
// compaction.html to c.Out. ctx ending stops the matrix between phases.
func Run(ctx context.Context, c Config) (*Result, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if c.Seed == 0 {
		c.Seed = uint64(time.Now().UnixNano())
	}
	if err := os.MkdirAll(c.Out, 0o755); err != nil {
		return nil, fmt.Errorf("--out: %w", err)
	}
	progress := c.Progress
	if progress == nil {
		progress = io.Discard
	}
	res := &Result{
		Tool: "ringkv bench compaction", Started: time.Now().UTC(), Duration: c.Duration.Seconds(),
		Writes: c.Writes, Keys: c.Keys, ValueSize: c.ValueSize, Concurrency: c.Concurrency, Order: string(c.Order),
		CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), Rows: []Row{},
	}
	// Rounds alternate over the cases, so that a slow minute on a shared
	// host lands on one run of every case rather than on all runs of one.
	runs := make([][]Row, len(c.Cases))
	for round := 0; round < c.Runs; round++ {
		if c.Runs > 1 {
			fmt.Fprintf(progress, "round %d of %d\n", round+1, c.Runs)
		}
		for i, cs := range c.Cases {
			if err := ctx.Err(); err != nil {
				return res, err
			}
			row, err := runCase(ctx, &c, cs, progress)
			if err != nil {
				return res, fmt.Errorf("profile %s: %w", cs.Name, err)
			}
			runs[i] = append(runs[i], row)
		}
	}
	res.Runs = c.Runs
	for _, rs := range runs {
		row := medianRow(rs)
		for _, r := range rs {
			row.WritesCut = row.WritesCut || r.WritesCut
		}
		res.Rows = append(res.Rows, row)
	}
	for _, r := range res.Rows {
		if r.Reference {
			res.Reference = r.Name
			for i := range res.Rows {
				if r.WriteAmp > 0 {
					res.Rows[i].WriteAmpVsReference = round(res.Rows[i].WriteAmp/r.WriteAmp, 3)
				}
			}
		}
	}
	return res, WriteFiles(c.Out, res)
}

// runCase runs one case on a fresh engine.
func runCase(ctx context.Context, c *Config, cs Case, progress io.Writer) (Row, error) {
	row := Row{Name: cs.Name, Reference: cs.Reference, Knobs: cs.Knobs(), LoadAvg: loadAvg()}
	dir, err := os.MkdirTemp(c.Out, "engine-"+cs.Name+"-")
	if err != nil {
		return row, err
	}
	if !c.Keep {
		defer os.RemoveAll(dir)
	}
	e, err := engine.Open(engine.Options{
		Dir:          dir,
		Tuning:       cs.Tuning,
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
		RowCacheSize: -1, // reads go to the LSM the profile built
		GCInterval:   -1,
	})
	if err != nil {
		return row, err
	}
	closed := false
	defer func() {
		if !closed {
			e.Close()
		}
	}()

	half := c.Duration / 2
	mon := startMonitor(e, 250*time.Millisecond)
	w, err := writeCase(ctx, e, c, cs, &row, half, progress)
	if err != nil {
		mon.stop()
		return row, err
	}

	// Read phase.
	written := uint64(c.Keys)
	if c.Order == Sequence {
		written = min(w.n, uint64(c.Keys))
	}
	fmt.Fprintf(progress, "%-16s wrote %d (%.0f/s, p99 %.3fms), reading for %s with %d readers...\n",
		cs.Name, w.n, row.WriteOpsPerSec, row.WriteP99, half, c.Concurrency)
	mon.readPhase()
	rd, err := readPhase(ctx, e, c, half, written)
	mon.stop()
	if err != nil {
		return row, err
	}
	row.ReadOps = rd.n
	row.ReadOpsPerSec = round(float64(rd.n)/rd.elapsed.Seconds(), 0)
	row.ReadP50, row.ReadP99, row.ReadMax = msOf(rd.h.quantile(0.5)), msOf(rd.h.quantile(0.99)), msOf(time.Duration(rd.h.max))
	if rd.n > 0 {
		row.ReadHitRatio = round(float64(rd.hits)/float64(rd.n), 4)
	}
	row.setLSM(e.LSM(), mon)
	closed = true
	if err := e.Close(); err != nil {
		return row, err
	}
	fmt.Fprintf(progress, "%-16s read %d (%.0f/s, p99 %.3fms); write amp %.2f, read amp %.1f, %d stalls (%.2fs), disk %s\n",
		cs.Name, rd.n, row.ReadOpsPerSec, row.ReadP99, row.WriteAmp, row.ReadAmp, row.Stalls, row.StallSeconds, compaction.FormatBytes(row.DiskBytes))
	return row, nil
}

// writeCase runs the write phase of case cs for half the run, then
// flushes, and records both in row.
func writeCase(ctx context.Context, e *engine.Engine, c *Config, cs Case, row *Row, half time.Duration, progress io.Writer) (*phase, error) {
	if c.Writes > 0 {
		fmt.Fprintf(progress, "%-16s writing %d keys (for %s at most) with %d writers (load average %.2f)...\n", cs.Name, c.Writes, half, c.Concurrency, row.LoadAvg)
	} else {
		fmt.Fprintf(progress, "%-16s writing for %s with %d writers (load average %.2f)...\n", cs.Name, half, c.Concurrency, row.LoadAvg)
	}
	w, err := writePhase(ctx, e, c, half)
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	if err := e.Flush(); err != nil {
		return nil, err
	}
	row.FlushSeconds = round(time.Since(t0).Seconds(), 3)
	row.WriteOps = w.n
	row.WritesCut = c.Writes > 0 && w.n < uint64(c.Writes)
	row.WriteOpsPerSec = round(float64(w.n)/w.elapsed.Seconds(), 0)
	row.WriteP50, row.WriteP99, row.WriteMax = msOf(w.h.quantile(0.5)), msOf(w.h.quantile(0.99)), msOf(time.Duration(w.h.max))
	return w, nil
}

// setLSM records in r the engine's LSM at the end of the case, m, and
// what mon saw of it during the case.
func (r *Row) setLSM(m engine.LSMReport, mon *monitor) {
	r.WALBytes = m.WALBytesWritten
	r.WriteAmp = round(m.WriteAmp, 3)
	r.ReadAmp = round(mon.readAmpMean(), 2)
	r.ReadAmpMax = mon.readAmpMax
	r.MaxL0Sublevels = mon.maxL0
	r.MaxCompactionDebt = mon.maxDebt
	r.CompactionDebtEnd = m.CompactionDebt
	r.Stalls = m.Stalls.Count
	r.StallSeconds = round(m.Stalls.Duration.Seconds(), 3)
	r.Flushes = m.Flushes
	r.Compactions = m.Compactions
	r.DiskBytes = m.DiskUsage
	for _, l := range m.Levels {
		r.LevelBytes = append(r.LevelBytes, l.Bytes)
	}
}

type phase struct {
	n, hits uint64
	elapsed time.Duration
	h       hist
}

// keySource hands out key numbers for the write phase.
type keySource struct {
	order KeyOrder
	keys  uint64
	next  atomic.Uint64
	ch    workload.Chooser
}

func (k *keySource) key(r *rand.Rand) uint64 {
	if k.order == Sequence {
		return (k.next.Add(1) - 1) % k.keys
	}
	return k.ch.Next(r)
}

func writePhase(ctx context.Context, e *engine.Engine, c *Config, d time.Duration) (*phase, error) {
	ks := &keySource{order: c.Order, keys: uint64(c.Keys)}
	if c.Order != Sequence {
		ch, err := workload.NewChooser(workload.Distribution(c.Order), uint64(c.Keys), workload.DefaultZipfTheta)
		if err != nil {
			return nil, err
		}
		ks.ch = ch
	}
	value := make([]byte, c.ValueSize)
	vr := rand.New(rand.NewPCG(c.Seed, 3))
	for i := range value {
		value[i] = byte('a' + vr.IntN(26))
	}
	clock := memtable.NewClock(nil)
	// With a write count, the phase ends when the writers have made it
	// between them or at d, whichever comes first: --duration bounds the
	// run (4M writes once took 116s of a --duration 10s).
	var left atomic.Int64
	left.Store(int64(c.Writes))
	return workers(ctx, c, d, func(i int, deadline time.Time, p *phase) error {
		r := rand.New(rand.NewPCG(c.Seed, uint64(i)+10))
		key := make([]byte, 0, 32)
		rec := memtable.Record{Version: memtable.Version{Node: 1}, Value: value}
		for p.n%256 != 0 || ctx.Err() == nil {
			if c.Writes > 0 && left.Add(-1) < 0 {
				break
			}
			key = workload.AppendKey(key[:0], workload.DefaultKeyPrefix, ks.key(r))
			rec.TS = clock.Now()
			t := time.Now()
			if err := e.Write(key, &rec, false); err != nil {
				return err
			}
			now := time.Now()
			p.h.add(now.Sub(t))
			p.n++
			if now.After(deadline) {
				break
			}
		}
		return nil
	})
}

func readPhase(ctx context.Context, e *engine.Engine, c *Config, d time.Duration, written uint64) (*phase, error) {
	var ch workload.Chooser
	var err error
	switch c.Order {
	case Sequence:
		ch, err = workload.NewChooser(workload.Uniform, max(written, 1), 0)
	default:
		ch, err = workload.NewChooser(workload.Distribution(c.Order), uint64(c.Keys), workload.DefaultZipfTheta)
	}
	if err != nil {
		return nil, err
	}
	return workers(ctx, c, d, func(i int, deadline time.Time, p *phase) error {
		r := rand.New(rand.NewPCG(c.Seed, uint64(i)+1000))
		key := make([]byte, 0, 32)
		dst := make([]byte, 0, c.ValueSize+64)
		for p.n%256 != 0 || ctx.Err() == nil {
			key = workload.AppendKey(key[:0], workload.DefaultKeyPrefix, ch.Next(r))
			t := time.Now()
			_, _, err := e.Get(dst[:0], key)
			now := time.Now()
			switch {
			case err == nil:
				p.hits++
			case !errors.Is(err, engine.ErrNotFound):
				return err
			}
			p.h.add(now.Sub(t))
			p.n++
			if now.After(deadline) {
				break
			}
		}
		return nil
	})
}

// workers runs c.Concurrency copies of fn until the deadline and adds up
// their phases.
func workers(ctx context.Context, c *Config, d time.Duration, fn func(i int, deadline time.Time, p *phase) error) (*phase, error) {
	start := time.Now()
	deadline := start.Add(d)
	ps := make([]phase, c.Concurrency)
	errs := make([]error, c.Concurrency)
	var wg sync.WaitGroup
	for i := range ps {
		wg.Go(func() { errs[i] = fn(i, deadline, &ps[i]) })
	}
	wg.Wait()
	out := &phase{elapsed: time.Since(start)}
	for i := range ps {
		if errs[i] != nil {
			return nil, errs[i]
		}
		out.n += ps[i].n
		out.hits += ps[i].hits
		out.h.merge(&ps[i].h)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// monitor samples the LSM while a case runs: the worst L0 and debt, and
// the read amplification the read phase saw.
type monitor struct {
	mu         sync.Mutex
	reading    bool
	maxL0      int32
	maxDebt    uint64
	readAmpSum float64
	readAmpN   int
	readAmpMax int
	done       chan struct{}
	wg         sync.WaitGroup
}

func startMonitor(e *engine.Engine, every time.Duration) *monitor {
	m := &monitor{done: make(chan struct{})}
	m.wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			m.sample(e)
			select {
			case <-m.done:
				m.sample(e)
				return
			case <-t.C:
			}
		}
	})
	return m
}

func (m *monitor) sample(e *engine.Engine) {
	r := e.LSM()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.maxL0 = max(m.maxL0, r.L0Sublevels)
	m.maxDebt = max(m.maxDebt, r.CompactionDebt)
	if m.reading {
		m.readAmpSum += float64(r.ReadAmp)
		m.readAmpN++
		m.readAmpMax = max(m.readAmpMax, r.ReadAmp)
	}
}

func (m *monitor) readPhase() {
	m.mu.Lock()
	m.reading = true
	m.mu.Unlock()
}

func (m *monitor) stop() {
	close(m.done)
	m.wg.Wait()
}

func (m *monitor) readAmpMean() float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.readAmpN == 0 {
		return 0
	}
	return m.readAmpSum / float64(m.readAmpN)
}

// loadAvg returns the 1-minute load average, or 0 when it is unknown.
func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	var v float64
	fmt.Sscan(string(b), &v)
	return v
}

func msOf(d time.Duration) float64 { return round(float64(d)/1e6, 3) }

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

// WriteFiles writes res to dir/compaction.json and dir/compaction.html.
func WriteFiles(dir string, res *Result) error {
	j, err := jsonIndent(res)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "compaction.json"), j, 0o644); err != nil {
		return err
	}
	var b strings.Builder
	if err := writeHTML(&b, res); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "compaction.html"), []byte(b.String()), 0o644)
}
