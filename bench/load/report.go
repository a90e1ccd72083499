package load

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/ringkv/ringkv/bench/workload"
	"github.com/ringkv/ringkv/compaction"
)

// Report is everything a run measured; it is written as report.json.
// Latencies are in milliseconds.
type Report struct {
	Tool        string       `json:"tool"` // "ringkv bench"
	Config      ReportConfig `json:"config"`
	Started     time.Time    `json:"started"`
	Elapsed     float64      `json:"elapsed_seconds"` // the attack, from its start to the last answer
	Interrupted bool         `json:"interrupted"`     // stopped early (SIGINT)
	Preload     PreloadInfo  `json:"preload"`
	Summary     Summary      `json:"summary"`
	Ops         []OpSummary  `json:"ops"`       // one per operation the workload sent
	Series      []Second     `json:"series"`    // one per second of the run
	Histogram   []Bucket     `json:"histogram"` // latency distribution
	LSM         []NodeLSM    `json:"lsm"`       // one per --addr
	// Batch counts the items of a batch-put or batch-get run's answers.
	Batch *BatchSummary `json:"batch,omitempty"`
	// CAS is a cas run's counters and their final check.
	CAS *CASSummary `json:"cas,omitempty"`
}

// BatchSummary is what the answers of a batch run said of their items.
// Requests, latency and the per-second figures of the report are per
// batch; these are per item.
type BatchSummary struct {
	BatchSize      int               `json:"batch_size"`
	Items          uint64            `json:"items"` // in the answers of the batches that were answered 200
	ItemsPerSecond float64           `json:"items_per_second"`
	OK             uint64            `json:"ok"`          // 204 (put) or 200 (get)
	Misses         uint64            `json:"misses"`      // 404 of a get
	Errors         uint64            `json:"errors"`      // any other status, unprocessed ones apart
	Unprocessed    uint64            `json:"unprocessed"` // marked unprocessed: not applied, to retry (the bench does not)
	ByStatus       map[string]uint64 `json:"errors_by_status"`
	ErrorSample    string            `json:"error_sample,omitempty"` // the first item error
}

// ReportConfig is the run's configuration as the report records it.
type ReportConfig struct {
	Addrs        []string `json:"addrs"`
	Workload     string   `json:"workload"`
	ReadFraction float64  `json:"read_fraction"`
	Duration     float64  `json:"duration_seconds"`
	Rate         int      `json:"rate"` // 0: as fast as the clients go
	Concurrency  int      `json:"concurrency"`
	Keys         int      `json:"keys"`
	KeyPrefix    string   `json:"key_prefix"`
	ValueSize    int      `json:"value_size"`
	Distribution string   `json:"distribution"`
	ZipfTheta    float64  `json:"zipf_theta,omitempty"`
	ScanLimit    int      `json:"scan_limit,omitempty"`
	BatchSize    int      `json:"batch_size,omitempty"`
	Seed         uint64   `json:"seed"`
	Timeout      float64  `json:"timeout_seconds"`
}

// PreloadInfo says whether and how the keys were written before the run.
type PreloadInfo struct {
	Mode    string  `json:"mode"`
	Done    bool    `json:"done"`
	Keys    int     `json:"keys,omitempty"`
	Seconds float64 `json:"seconds,omitempty"`
	Reason  string  `json:"reason"`
}

// Summary holds the figures of the whole run.
type Summary struct {
	Requests      uint64            `json:"requests"`
	RPS           float64           `json:"requests_per_second"`
	OK            uint64            `json:"ok"`     // 2xx
	Misses        uint64            `json:"misses"` // 404 on a GET of a key
	Errors        uint64            `json:"errors"` // everything else
	SuccessRatio  float64           `json:"success_ratio"`
	ErrorsByCode  map[string]uint64 `json:"errors_by_status"` // "0" is a transport error (refused, timeout)
	ErrorSamples  []string          `json:"error_samples"`    // the first answer of each error status
	Latency       Latency           `json:"latency"`
	BytesIn       uint64            `json:"bytes_in"`
	BytesOut      uint64            `json:"bytes_out"`
	StatusCodes   map[string]uint64 `json:"status_codes"`
	LatencyMethod string            `json:"latency_method"`
}

// Latency is a latency distribution's summary, in milliseconds.
type Latency struct {
	Mean float64 `json:"mean_ms"`
	P50  float64 `json:"p50_ms"`
	P90  float64 `json:"p90_ms"`
	P99  float64 `json:"p99_ms"`
	P999 float64 `json:"p999_ms"`
	Max  float64 `json:"max_ms"`
}

// OpSummary is one operation's share of the run.
type OpSummary struct {
	Op       string  `json:"op"` // get, put or scan
	Requests uint64  `json:"requests"`
	OK       uint64  `json:"ok"`
	Misses   uint64  `json:"misses"`
	Errors   uint64  `json:"errors"`
	Latency  Latency `json:"latency"`
}

// Second is one second of the run, by when requests were sent.
type Second struct {
	T        float64 `json:"t"` // start of the second, since the run began
	Requests uint64  `json:"requests"`
	RPS      float64 `json:"requests_per_second"`
	OK       uint64  `json:"ok"`
	Misses   uint64  `json:"misses"`
	Errors   uint64  `json:"errors"`
	P50      float64 `json:"p50_ms"`
	P99      float64 `json:"p99_ms"`
	Max      float64 `json:"max_ms"`
	// Items and ItemsPerSecond: a batch run's items in the answers of
	// the batches sent in this second.
	Items          uint64  `json:"items,omitempty"`
	ItemsPerSecond float64 `json:"items_per_second,omitempty"`
}

// Bucket is one bar of the latency distribution: requests that took at
// least From and less than To milliseconds (To is null for the last).
type Bucket struct {
	From  float64  `json:"from_ms"`
	To    *float64 `json:"to_ms"`
	Count uint64   `json:"count"`
}

// histogramBuckets are the bounds of the latency distribution: 1-2-5 steps
// from 50µs to 10s.
var histogramBuckets = func() vegeta.Buckets {
	b := vegeta.Buckets{0}
	for d := 10 * time.Microsecond; d <= 10*time.Second; d *= 10 {
		for _, m := range []time.Duration{1, 2, 5} {
			if v := d * m; v >= 50*time.Microsecond && v <= 10*time.Second {
				b = append(b, v)
			}
		}
	}
	return b
}()

// counts are the outcome tallies shared by the run, each op and each second.
type counts struct{ requests, ok, misses, errors uint64 }

type opRec struct {
	counts
	lat vegeta.LatencyMetrics
}

type secRec struct {
	counts
	items uint64
	lat   vegeta.LatencyMetrics
}

// recorder folds vegeta results into the report's figures. It is used
// from one goroutine.
type recorder struct {
	start   time.Time
	lastSec int // index of the run's last second
	metrics vegeta.Metrics
	all     counts
	byCode  map[string]uint64
	samples map[string]string
	ops     map[workload.Op]*opRec
	secs    []*secRec
	// batchOp is the operation of the run's POST /v1/batch requests, and
	// batch what their answers said of the items (batch runs only).
	batchOp workload.Op
	batch   *batchTally
	// progress: requests and errors at the last progress line
	lastReq uint64
	lastAt  time.Time
	// window holds the latencies of the answers received since the last
	// progress line, so that the live p99 is that interval's, not the
	// run's: a cumulative p99 hides a spike while it happens.
	window []time.Duration
}

func newRecorder(start time.Time, d time.Duration) *recorder {
	return &recorder{
		start:   start,
		lastSec: max(int((d+time.Second-1)/time.Second)-1, 0),
		metrics: vegeta.Metrics{Histogram: &vegeta.Histogram{Buckets: histogramBuckets}},
		byCode:  map[string]uint64{},
		samples: map[string]string{},
		ops:     map[workload.Op]*opRec{},
		lastAt:  start,
	}
}

// add counts one result of vegeta's.
func (rec *recorder) add(r *vegeta.Result) { rec.addOp(r, opOf(r.Method, r.URL, rec.batchOp)) }

// addOp counts one result of op. A cas's 412 is a conflict, counted
// among the misses; a batch answered 200 has its items counted, and is an
// error only when its body is not a batch answer.
func (rec *recorder) addOp(r *vegeta.Result, op workload.Op) {
	var out *uint64
	var c counts
	var items uint64
	bad := false // a 200 whose body is not a batch answer
	if rec.batch != nil && (op == workload.BatchWrite || op == workload.BatchRead) && r.Code == 200 {
		t, err := decodeBatchResponse(r.Body)
		if err != nil {
			bad, r.Body = true, []byte(err.Error())
		} else {
			rec.batch.addTally(t)
			items = t.items
		}
	}
	switch {
	case bad:
		out = &c.errors
		rec.byCode["200"]++
		if _, ok := rec.samples["200"]; !ok {
			rec.samples["200"] = errorSample(r)
		}
	case r.Code >= 200 && r.Code < 300:
		out = &c.ok
	case r.Code == 404 && op == workload.Read:
		out = &c.misses
	case r.Code == 412 && op == workload.CondUpdate:
		out = &c.misses
	default:
		out = &c.errors
		code := strconv.Itoa(int(r.Code))
		rec.byCode[code]++
		if _, ok := rec.samples[code]; !ok {
			rec.samples[code] = errorSample(r)
		}
	}
	*out = 1
	c.requests = 1
	rec.all.add(c)
	o := rec.ops[op]
	if o == nil {
		o = &opRec{}
		rec.ops[op] = o
	}
	o.add(c)
	o.lat.Add(r.Latency)
	// By the second the request was sent; the few sent in the instant
	// after the last full second count in the last second.
	i := int(r.Timestamp.Sub(rec.start) / time.Second)
	i = min(max(i, 0), rec.lastSec)
	for len(rec.secs) <= i {
		rec.secs = append(rec.secs, &secRec{})
	}
	s := rec.secs[i]
	s.add(c)
	s.items += items
	s.lat.Add(r.Latency)
	// vegeta.Metrics keeps every distinct error string; transport errors
	// name the URL, so they would pile up: this report keeps its own.
	r.Error = ""
	rec.metrics.Add(r)
	rec.window = append(rec.window, r.Latency)
}

// windowP99 returns the p99 of the answers received since the last call
// (the nearest rank, exact) and starts a new window; ok is false when none
// came.
func (rec *recorder) windowP99() (p99 time.Duration, ok bool) {
	w := rec.window
	if len(w) == 0 {
		return 0, false
	}
	slices.Sort(w)
	p99 = w[(len(w)*99+99)/100-1]
	rec.window = w[:0]
	return p99, true
}

func (t *batchTally) addTally(d batchTally) {
	t.items += d.items
	t.ok += d.ok
	t.misses += d.misses
	t.errors += d.errors
	t.unprocessed += d.unprocessed
	for k, v := range d.byStatus {
		t.byStatus[k] += v
	}
	if t.sample == "" {
		t.sample = d.sample
	}
}

// batchSummary is the run's item counts; nil when it sent no batches.
func (rec *recorder) batchSummary(size int, elapsed time.Duration) *BatchSummary {
	t := rec.batch
	if t == nil {
		return nil
	}
	b := &BatchSummary{BatchSize: size, Items: t.items, OK: t.ok, Misses: t.misses, Errors: t.errors,
		Unprocessed: t.unprocessed, ByStatus: t.byStatus, ErrorSample: t.sample}
	if elapsed > 0 {
		b.ItemsPerSecond = math.Round(float64(t.items)/elapsed.Seconds()*10) / 10
	}
	return b
}

func (c *counts) add(d counts) {
	c.requests += d.requests
	c.ok += d.ok
	c.misses += d.misses
	c.errors += d.errors
}

// errorSample describes a failed result in one line: the status and the
// JSON error of the body, or the transport error.
func errorSample(r *vegeta.Result) string {
	if r.Code == 0 {
		return "transport: " + oneLine(r.Error, 200)
	}
	msg := strings.TrimSpace(string(r.Body))
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(r.Body, &e) == nil && e.Error != "" {
		msg = e.Error
	}
	return fmt.Sprintf("%d %s %s: %s", r.Code, r.Method, pathOf(r.URL), oneLine(msg, 200))
}

func pathOf(u string) string {
	if i := strings.Index(u, "://"); i >= 0 {
		if j := strings.IndexByte(u[i+3:], '/'); j >= 0 {
			return u[i+3+j:]
		}
	}
	return u
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = s[:n] + "..."
	}
	return s
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }

func latencyOf(l *vegeta.LatencyMetrics, count uint64) Latency {
	if count == 0 {
		return Latency{}
	}
	// t-digest interpolates: keep its quantiles within what was seen.
	q := func(p float64) float64 { return ms(min(max(l.Quantile(p), l.Min), l.Max)) }
	return Latency{
		Mean: ms(time.Duration(float64(l.Total) / float64(count))),
		P50:  q(0.50),
		P90:  q(0.90),
		P99:  q(0.99),
		P999: q(0.999),
		Max:  ms(l.Max),
	}
}

// build assembles the report; elapsed is the attack's wall time.
func (rec *recorder) build(elapsed time.Duration) (Summary, []OpSummary, []Second, []Bucket) {
	m := &rec.metrics
	m.Close()
	s := Summary{
		Requests:      rec.all.requests,
		OK:            rec.all.ok,
		Misses:        rec.all.misses,
		Errors:        rec.all.errors,
		ErrorsByCode:  rec.byCode,
		ErrorSamples:  []string{},
		Latency:       latencyOf(&m.Latencies, m.Requests),
		BytesIn:       m.BytesIn.Total,
		BytesOut:      m.BytesOut.Total,
		StatusCodes:   map[string]uint64{},
		LatencyMethod: "vegeta t-digest quantiles; per-second figures by the second each request was sent",
	}
	if elapsed > 0 {
		s.RPS = math.Round(float64(s.Requests)/elapsed.Seconds()*10) / 10
	}
	if s.Requests > 0 {
		s.SuccessRatio = float64(s.OK+s.Misses) / float64(s.Requests)
	}
	for code, n := range m.StatusCodes {
		s.StatusCodes[code] = uint64(n)
	}
	codes := make([]string, 0, len(rec.samples))
	for c := range rec.samples {
		codes = append(codes, c)
	}
	sort.Strings(codes)
	for _, c := range codes {
		s.ErrorSamples = append(s.ErrorSamples, rec.samples[c])
	}

	ops := []OpSummary{}
	for _, op := range []workload.Op{workload.Read, workload.Update, workload.Scan, workload.CondUpdate, workload.BatchWrite, workload.BatchRead} {
		o := rec.ops[op]
		if o == nil {
			continue
		}
		ops = append(ops, OpSummary{Op: op.String(), Requests: o.requests, OK: o.ok, Misses: o.misses,
			Errors: o.errors, Latency: latencyOf(&o.lat, o.requests)})
	}

	secs := make([]Second, len(rec.secs))
	for i, x := range rec.secs {
		width := 1.0
		if i == len(rec.secs)-1 {
			// The last second may be cut short (interrupted) or run over
			// by the requests of its final instant.
			if w := elapsed.Seconds() - float64(i); w > 0.05 {
				width = min(w, 1)
			}
		}
		secs[i] = Second{T: float64(i), Requests: x.requests, OK: x.ok, Misses: x.misses, Errors: x.errors,
			RPS: math.Round(float64(x.requests)/width*10) / 10, Items: x.items,
			ItemsPerSecond: math.Round(float64(x.items)/width*10) / 10}
		if x.requests > 0 {
			l := latencyOf(&x.lat, x.requests)
			secs[i].P50, secs[i].P99, secs[i].Max = l.P50, l.P99, l.Max
		}
	}

	h := m.Histogram
	if len(h.Counts) != len(h.Buckets) {
		h.Counts = make([]uint64, len(h.Buckets))
	}
	buckets := make([]Bucket, len(h.Buckets))
	for i, b := range h.Buckets {
		buckets[i] = Bucket{From: ms(b), Count: h.Counts[i]}
		if i+1 < len(h.Buckets) {
			to := ms(h.Buckets[i+1])
			buckets[i].To = &to
		}
	}
	return s, ops, secs, buckets
}

// WriteSummary prints the run's summary, as `ringkv bench` does on stdout.
func (r *Report) WriteSummary(w io.Writer) {
	c := &r.Config
	rate := "max"
	if c.Rate > 0 {
		rate = strconv.Itoa(c.Rate) + "/s"
	}
	dist := c.Distribution
	if c.Distribution == string(workload.Zipf) {
		dist += fmt.Sprintf(" %g", c.ZipfTheta)
	}
	fmt.Fprintf(w, "workload %s on %s: %s, rate %s, concurrency %d, %d keys (%s), %d-byte values\n",
		c.Workload, strings.Join(c.Addrs, ","), fmtDur(time.Duration(c.Duration*float64(time.Second))),
		rate, c.Concurrency, c.Keys, dist, c.ValueSize)
	if r.Interrupted {
		fmt.Fprintf(w, "interrupted after %s\n", fmtDur(time.Duration(r.Elapsed*float64(time.Second))))
	}
	s := &r.Summary
	fmt.Fprintf(w, "requests   %d in %.1fs, %.1f req/s\n", s.Requests, r.Elapsed, s.RPS)
	fmt.Fprintf(w, "success    %.2f%% (ok %d, misses %d, errors %d)\n", 100*s.SuccessRatio, s.OK, s.Misses, s.Errors)
	if s.Errors > 0 {
		codes := make([]string, 0, len(s.ErrorsByCode))
		for c := range s.ErrorsByCode {
			codes = append(codes, c)
		}
		sort.Strings(codes)
		var parts []string
		for _, c := range codes {
			name := c
			if c == "0" {
				name = "transport"
			}
			parts = append(parts, fmt.Sprintf("%s: %d", name, s.ErrorsByCode[c]))
		}
		fmt.Fprintf(w, "errors     %s\n", strings.Join(parts, ", "))
		for _, e := range s.ErrorSamples {
			fmt.Fprintf(w, "           %s\n", e)
		}
	}
	fmt.Fprintf(w, "latency    %s\n", fmtLatency(s.Latency))
	for _, o := range r.Ops {
		if len(r.Ops) > 1 {
			fmt.Fprintf(w, "  %-8s %d: %s\n", o.Op, o.Requests, fmtLatency(o.Latency))
		}
	}
	if b := r.Batch; b != nil {
		fmt.Fprintf(w, "items      %d in batches of %d, %.1f items/s (ok %d, misses %d, errors %d, unprocessed %d)\n",
			b.Items, b.BatchSize, b.ItemsPerSecond, b.OK, b.Misses, b.Errors, b.Unprocessed)
		if b.ErrorSample != "" {
			fmt.Fprintf(w, "           first item error %s\n", b.ErrorSample)
		}
	}
	if x := r.CAS; x != nil {
		fmt.Fprintf(w, "cas        %d increments, %.1f/s; conflicts %d; outcome unknown %d (%d found applied); conditional PUT p50 %s p99 %s\n",
			x.Increments, x.IncrementsPerSecond, x.Conflicts, x.OutcomeUnknown, x.UnknownApplied, fmtMs(x.PutLatency.P50), fmtMs(x.PutLatency.P99))
		verdict := "match"
		if !x.Match {
			verdict = "MISMATCH: " + x.Problem
		}
		fmt.Fprintf(w, "counters   %d read at consistency=serial: total %d, expected %d (baseline %d + %d increments + %d unknown applied): %s\n",
			x.Counters, x.Final, x.Expected, x.Baseline, x.Increments, x.UnknownApplied, verdict)
	}
	fmt.Fprintf(w, "bytes      in %d, out %d\n", s.BytesIn, s.BytesOut)
	for _, n := range r.LSM {
		if len(n.Samples) == 0 {
			fmt.Fprintf(w, "lsm        %s: no samples (%s)\n", n.Addr, n.Error)
			continue
		}
		sm := &n.Summary
		fmt.Fprintf(w, "lsm        %s: L0 sublevels max %d, read amp max %d, compaction debt max %s, stalls %d (%.2fs), flushes %d, compactions %d, write amp %.2f\n",
			n.Addr, sm.MaxL0Sublevels, sm.MaxReadAmp, compaction.FormatBytes(sm.MaxCompactionDebt), sm.Stalls, sm.StallSeconds,
			sm.Flushes, sm.Compactions, sm.WriteAmp)
	}
}

func fmtLatency(l Latency) string {
	return fmt.Sprintf("p50 %s  p90 %s  p99 %s  p99.9 %s  max %s",
		fmtMs(l.P50), fmtMs(l.P90), fmtMs(l.P99), fmtMs(l.P999), fmtMs(l.Max))
}

func fmtMs(v float64) string { return fmtDur(time.Duration(v * float64(time.Millisecond))) }

// fmtDur writes d with about three significant digits: 812µs, 1.23ms, 4.5s.
func fmtDur(d time.Duration) string {
	switch {
	case d >= 10*time.Second:
		return d.Round(100 * time.Millisecond).String()
	case d >= time.Second:
		return d.Round(10 * time.Millisecond).String()
	case d >= 100*time.Millisecond:
		return d.Round(time.Millisecond).String()
	case d >= 10*time.Millisecond:
		return d.Round(100 * time.Microsecond).String()
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond).String()
	}
	return d.Round(time.Microsecond).String()
}
