package matrix

import (
	"bytes"
	"context"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ringkv/ringkv/compaction"
)

// TestRunMatrix runs the four cases for a second each and checks the
// files and their shape.
func TestRunMatrix(t *testing.T) {
	c := DefaultConfig()
	c.Out = filepath.Join(t.TempDir(), "out")
	// 2000 writes take a few ms; half a second leaves a slow machine
	// (and -race) room to make them all.
	c.Duration = time.Second
	c.Writes = 2000
	c.Keys = 5000
	c.ValueSize = 64
	c.Concurrency = 2
	c.Seed = 1
	var progress bytes.Buffer
	c.Progress = &progress
	res, err := Run(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(c.Out, "compaction.json"))
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Reference string           `json:"reference"`
		Rows      []map[string]any `json:"rows"`
	}
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Rows) != 4 || got.Reference != PebbleDefaultsName {
		t.Fatalf("compaction.json: %d rows, reference %q; want 4 and %s", len(got.Rows), got.Reference, PebbleDefaultsName)
	}
	var names []string
	for _, r := range got.Rows {
		names = append(names, r["name"].(string))
		for _, k := range []string{"write_ops_per_second", "write_p99_ms", "read_ops_per_second", "read_p99_ms", "write_amp",
			"read_amp", "stalls", "stall_seconds", "disk_bytes", "write_amp_vs_reference"} {
			if _, ok := r[k]; !ok {
				t.Errorf("row %s lacks %q", r["name"], k)
			}
		}
	}
	if want := []string{"pebble-defaults", "balanced", "write-heavy", "read-heavy"}; !slices.Equal(names, want) {
		t.Errorf("rows %v, want %v", names, want)
	}
	for _, r := range res.Rows {
		// Every case writes the same data.
		if r.WriteOps != uint64(c.Writes) || r.WritesCut {
			t.Errorf("row %s: %d writes, want %d", r.Name, r.WriteOps, c.Writes)
		}
		if r.WriteOps == 0 || r.ReadOps == 0 || r.DiskBytes == 0 || r.WALBytes == 0 || len(r.LevelBytes) != 7 {
			t.Errorf("row %s: %+v", r.Name, r)
		}
		// Sequence writes then reads of written keys: every read hits.
		if r.ReadHitRatio != 1 {
			t.Errorf("row %s: read hit ratio %v", r.Name, r.ReadHitRatio)
		}
		if r.WriteAmp > 0 && res.Rows[0].WriteAmp > 0 && r.WriteAmpVsReference <= 0 {
			t.Errorf("row %s: no ratio to the reference", r.Name)
		}
	}
	// The engine directories are gone.
	if m, _ := filepath.Glob(filepath.Join(c.Out, "engine-*")); len(m) != 0 {
		t.Errorf("left behind: %v", m)
	}
	html, err := os.ReadFile(filepath.Join(c.Out, "compaction.html"))
	if err != nil {
		t.Fatal(err)
	}
	if regexp.MustCompile(`(?i)(src|href)\s*=\s*["']?\s*(https?:)?//|<script|<link`).Match(html) {
		t.Error("compaction.html is not self-contained")
	}
	for _, want := range []string{"<svg", "write amplification", "write-heavy", "memtable-size"} {
		if !bytes.Contains(html, []byte(want)) {
			t.Errorf("compaction.html lacks %q", want)
		}
	}
	// The reference row's profile knob says what it is (it once said
	// "balanced", the profile its Tuning carries inside).
	if k := res.Rows[0].Knobs[0]; k.Name != "compaction-profile" || k.Value != pebbleDefaultsLabel {
		t.Errorf("pebble-defaults knob %+v, want compaction-profile %q", k, pebbleDefaultsLabel)
	}
	if k := res.Rows[1].Knobs[0]; k.Value != "balanced" {
		t.Errorf("balanced knob %+v", k)
	}
	checkTablesScroll(t, string(html))
	var table bytes.Buffer
	res.WriteTable(&table)
	if n := strings.Count(table.String(), "\n| "); n != 6 { // header, separator, 4 rows
		t.Errorf("table has %d rows:\n%s", n, table.String())
	}
	if !strings.Contains(progress.String(), "write-heavy") {
		t.Errorf("progress:\n%s", progress.String())
	}
}

func TestPebbleDefaults(t *testing.T) {
	d := PebbleDefaults()
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	if d.MemTableSize != 4<<20 || d.BloomBitsPerKey != 0 || d.MaxConcurrentCompactions != 1 || d.BlockCacheSize != 8<<20 {
		t.Errorf("%+v", d)
	}
	cs, err := SelectCases("write-heavy, pebble-defaults")
	if err != nil || len(cs) != 2 || cs[0].Name != PebbleDefaultsName || cs[1].Tuning.Profile != compaction.WriteHeavy {
		t.Errorf("SelectCases: %+v, %v", cs, err)
	}
	if _, err := SelectCases("fast"); err == nil || !strings.Contains(err.Error(), "--profiles") {
		t.Errorf("unknown profile: %v", err)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		mod  func(*Config)
		want string
	}{
		{func(c *Config) { c.Out = "" }, "--out"},
		{func(c *Config) { c.Duration = 0 }, "--duration"},
		{func(c *Config) { c.Keys = 0 }, "--keys"},
		{func(c *Config) { c.ValueSize = -1 }, "--value-size"},
		{func(c *Config) { c.Concurrency = 0 }, "--concurrency"},
		{func(c *Config) { c.Order = "latest" }, "--distribution"},
		{func(c *Config) { c.Cases = nil }, "--profiles"},
		{func(c *Config) { c.Runs = 0 }, "--runs"},
	} {
		c := DefaultConfig()
		tc.mod(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("want an error naming %s, got %v", tc.want, err)
		}
	}
}

// TestHist: quantiles within the bucket error of the exact ones.
func TestHist(t *testing.T) {
	var h, a, b hist
	r := rand.New(rand.NewPCG(1, 1))
	var vals []time.Duration
	for i := range 20000 {
		v := time.Duration(r.ExpFloat64() * float64(200*time.Microsecond))
		vals = append(vals, v)
		h.add(v)
		if i%2 == 0 {
			a.add(v)
		} else {
			b.add(v)
		}
	}
	a.merge(&b)
	slices.Sort(vals)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		exact := vals[int(q*float64(len(vals)))-1]
		for _, x := range []*hist{&h, &a} {
			got := x.quantile(q)
			if d := float64(got-exact) / float64(exact); d > 0.07 || d < -0.07 {
				t.Errorf("q%v: %v, exact %v", q, got, exact)
			}
		}
	}
	if h.quantile(1) != vals[len(vals)-1] || h.n != 20000 {
		t.Errorf("max %v, want %v", h.quantile(1), vals[len(vals)-1])
	}
	// Every bucket a Duration can reach (below 2^63).
	for i := range 64 * 16 {
		lo, hi := histBounds(i)
		if lo >= 1<<63 {
			break
		}
		if lo >= hi || histIndex(lo) != i || histIndex(hi-1) != i {
			t.Fatalf("bucket %d: [%d, %d)", i, lo, hi)
		}
	}
}

// TestMedianRow: each figure is its own median, the runs are kept, and
// one run is returned as it is.
func TestMedianRow(t *testing.T) {
	runs := []Row{
		{Name: "write-heavy", ReadP99: 1.5, WriteAmp: 1.4, Stalls: 0, DiskBytes: 700, LevelBytes: []int64{7}},
		{Name: "write-heavy", ReadP99: 0.7, WriteAmp: 1.5, Stalls: 2, DiskBytes: 500, LevelBytes: []int64{5}},
		{Name: "write-heavy", ReadP99: 0.9, WriteAmp: 1.3, Stalls: 1, DiskBytes: 600, LevelBytes: []int64{6}},
	}
	m := medianRow(runs)
	if m.Name != "write-heavy" || m.ReadP99 != 0.9 || m.WriteAmp != 1.4 || m.Stalls != 1 || m.DiskBytes != 600 ||
		!slices.Equal(m.LevelBytes, []int64{6}) || len(m.Runs) != 3 {
		t.Errorf("median: %+v", m)
	}
	// Even count: the lower middle, a figure that was measured.
	if m := medianRow(runs[:2]); m.ReadP99 != 0.7 || m.Stalls != 0 {
		t.Errorf("median of two: %+v", m)
	}
	if m := medianRow(runs[:1]); m.ReadP99 != 1.5 || m.Runs != nil {
		t.Errorf("one run: %+v", m)
	}
}

// TestRunMatrixRuns: with --runs 2 each case runs twice, alternating,
// and its row carries both runs.
func TestRunMatrixRuns(t *testing.T) {
	c := DefaultConfig()
	c.Out = t.TempDir()
	c.Duration = 200 * time.Millisecond
	c.Writes = 5000
	c.Keys = 2000
	c.Concurrency = 1
	c.Runs = 2
	c.Seed = 1
	var err error
	if c.Cases, err = SelectCases("pebble-defaults,write-heavy"); err != nil {
		t.Fatal(err)
	}
	var progress bytes.Buffer
	c.Progress = &progress
	res, err := Run(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if res.Runs != 2 || len(res.Rows) != 2 || len(res.Rows[0].Runs) != 2 || len(res.Rows[1].Runs) != 2 {
		t.Fatalf("runs %d, rows %+v", res.Runs, res.Rows)
	}
	if res.Rows[1].WriteAmpVsReference <= 0 {
		t.Errorf("no ratio to the reference: %+v", res.Rows[1])
	}
	// Alternating: defaults, write-heavy, defaults, write-heavy.
	var order []string
	for _, l := range strings.Split(progress.String(), "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[1] == "writing" {
			order = append(order, f[0])
		}
	}
	if want := []string{"pebble-defaults", "write-heavy", "pebble-defaults", "write-heavy"}; !slices.Equal(order, want) {
		t.Errorf("order %v, want %v", order, want)
	}
	if !strings.Contains(res.Phases(), "medians of 2") {
		t.Errorf("phases: %s", res.Phases())
	}
}

// checkTablesScroll: every table of page sits in a div that scrolls
// sideways, so a wide table scrolls inside a narrow window (a 1400px one
// cut the matrix's table off) instead of widening the page.
func checkTablesScroll(t *testing.T, page string) {
	t.Helper()
	n := strings.Count(page, "<table")
	if n == 0 || strings.Count(page, `<div class="scroll"><table`) != n {
		t.Errorf("%d tables, %d in a scrolling div", n, strings.Count(page, `<div class="scroll"><table`))
	}
	if !regexp.MustCompile(`\.scroll\{[^}]*overflow-x:auto`).MatchString(page) {
		t.Error("no overflow-x:auto rule for .scroll")
	}
}

// TestDurationBoundsWrites: --duration bounds the write phase even when
// --writes asks for more than fits in it (4M writes once took 116s of a
// --duration 10s), and the row and the table say the writes were cut.
func TestDurationBoundsWrites(t *testing.T) {
	c := DefaultConfig()
	c.Out = filepath.Join(t.TempDir(), "out")
	c.Duration = 400 * time.Millisecond
	c.Writes = 1 << 40 // far more than any machine makes in 200ms
	c.Keys = 5000
	c.ValueSize = 64
	c.Concurrency = 2
	c.Seed = 1
	c.Cases, _ = SelectCases(PebbleDefaultsName)
	type out struct {
		res *Result
		err error
	}
	done := make(chan out, 1)
	go func() {
		res, err := Run(context.Background(), c)
		done <- out{res, err}
	}()
	var o out
	select {
	case o = <-done:
	case <-time.After(5 * time.Minute): // a bound no machine misses for a 0.4s run; the old code never returned
		t.Fatal("Run ignored --duration")
	}
	if o.err != nil {
		t.Fatal(o.err)
	}
	r := o.res.Rows[0]
	if r.WriteOps == 0 || r.WriteOps >= uint64(c.Writes) || !r.WritesCut {
		t.Errorf("row: %d writes, cut %v; want some, fewer than %d, cut", r.WriteOps, r.WritesCut, c.Writes)
	}
	var table bytes.Buffer
	o.res.WriteTable(&table)
	if !strings.Contains(table.String(), "Note: pebble-defaults reached half of --duration") {
		t.Errorf("table does not say the writes were cut:\n%s", table.String())
	}
}

func TestMedian(t *testing.T) {
	f := func(in []float64, want float64) {
		t.Helper()
		orig := slices.Clone(in)
		if got := Median(in); got != want {
			t.Errorf("Median(%v) = %v, want %v", in, got, want)
		}
		if !slices.Equal(in, orig) {
			t.Errorf("Median changed its input: %v", in)
		}
	}
	f(nil, 0)
	f([]float64{3}, 3)
	f([]float64{3, 1, 2}, 2)
	f([]float64{4, 1, 3, 2}, 2) // the lower middle: a measured figure
	if got := Median([]string{"b", "a", "c"}); got != "b" {
		t.Errorf("strings: %q", got)
	}
}
