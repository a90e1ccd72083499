package httpd

import (
	"context"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// History keeps the last minutes of this node's traffic, one sample a
// second, for the status page's sparklines: requests per second, 5xx
// answers and p50/p99 latency per op, answers by status code, and the
// per-second increase of a few counters (read repairs, replica failures,
// bytes pulled).
//
// It samples the metrics httpd and the node already export (a Gather of
// the registry, ringkv_requests_total and ringkv_request_duration_seconds
// among them), so the request path pays nothing for it; latency
// percentiles are therefore interpolated within the histogram's buckets
// (about 2.15x wide), as Prometheus's histogram_quantile does.
//
// A Gather of the whole registry costs about 2 ms, so Run samples only
// while someone reads the history (Window, which GET /v1/overview calls,
// from the page or from another node's page): it starts at the first
// read and stops historyIdle after the last, dropping what it had, so
// that a page opened later shows the seconds it was sampled and no
// stale or invented ones.
//
// Memory is bounded: Seconds samples, each holding only the ops and codes
// that had traffic in its second. History is safe for concurrent use.
type History struct {
	g       prometheus.Gatherer
	seconds int
	// now and newTicker are the clock and the ticker of Run and Window
	// (time's, but in tests).
	now       func() time.Time
	newTicker func(d time.Duration) (c <-chan time.Time, stop func())
	wake      chan struct{} // a read while Run idles (one token)

	mu struct {
		sync.Mutex
		ring     []histSample // ring[(head+i)%len] for i < n: oldest first
		head     int
		n        int
		prev     histTotals // the totals at the last sample
		have     bool       // prev holds a sample
		lastRead time.Time  // the last Window
		active   bool       // Run samples (or has been woken to)
	}
}

// historyIdle is how long Run goes on sampling after the last read of
// the history: the page polls every second, so a minute without a read
// means nobody is looking.
const historyIdle = time.Minute

// DefaultHistorySeconds is the history NewHistory keeps when given 0.
const DefaultHistorySeconds = 300

// historyCounters are the counters whose per-second increase History
// keeps beside the requests.
var historyCounters = []string{
	"ringkv_read_repairs_total",
	"ringkv_replica_failures_total", // both ops summed
	"ringkv_transfer_bytes_total",
	"ringkv_anti_entropy_spans_repaired_total",
	"ringkv_hints_replayed_total",
	"ringkv_disk_full_writes_refused_total",
}

// NewHistory returns a History of seconds samples (DefaultHistorySeconds
// when <= 0) read from g. Nothing is sampled until Sample, or until Run
// runs and Window is called.
func NewHistory(g prometheus.Gatherer, seconds int) *History {
	if seconds <= 0 {
		seconds = DefaultHistorySeconds
	}
	h := &History{g: g, seconds: seconds, now: time.Now, newTicker: realTicker, wake: make(chan struct{}, 1)}
	h.mu.ring = make([]histSample, seconds)
	return h
}

func realTicker(d time.Duration) (<-chan time.Time, func()) {
	t := time.NewTicker(d)
	return t.C, t.Stop
}

// Run samples every second while the history is read (see History),
// until ctx is done. The caller owns the goroutine that runs it.
func (h *History) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-h.wake:
		}
		// A failed Gather (a collector's error) still returns what it
		// could; the sample keeps that. This one is the baseline.
		_ = h.Sample(h.now())
		tick, stop := h.newTicker(time.Second)
		for sampling := true; sampling; {
			select {
			case <-ctx.Done():
				stop()
				return
			case <-tick:
				sampling = h.tick(h.now())
			}
		}
		stop()
	}
}

// tick is one second of Run: it samples while the history was read
// within historyIdle, and otherwise stops sampling, drops the samples and
// reports false.
func (h *History) tick(now time.Time) bool {
	h.mu.Lock()
	if now.Sub(h.mu.lastRead) > historyIdle {
		h.mu.active = false
		h.mu.n, h.mu.head, h.mu.have = 0, 0, false
		clear(h.mu.ring)
		h.mu.prev = histTotals{}
		h.mu.Unlock()
		return false
	}
	h.mu.Unlock()
	_ = h.Sample(now)
	return true
}

// readLocked notes a read of the history at now, waking Run if it idles.
// REQUIRES: h.mu.
func (h *History) readLocked(now time.Time) {
	h.mu.lastRead = now
	if !h.mu.active {
		h.mu.active = true
		select {
		case h.wake <- struct{}{}:
		default:
		}
	}
}

// histTotals are cumulative values at one instant.
type histTotals struct {
	at       time.Time
	ops      map[string]*opTotals
	codes    map[string]uint64 // answers by code, all ops
	counters map[string]float64
}

type opTotals struct {
	count   uint64
	errs    uint64    // 5xx answers
	bounds  []float64 // bucket upper bounds (seconds), +Inf excluded
	buckets []uint64  // cumulative counts per bound
}

// histSample is what happened in one interval between two samples.
type histSample struct {
	// start and end are the Unix seconds the interval covers: one,
	// unless ticks were missed.
	start    int64
	end      int64
	secs     float64 // its length
	ops      map[string]opSecond
	codes    map[string]float64 // answers per second, non-2xx codes only
	counters map[string]float64 // increase per second
}

type opSecond struct {
	rate     float64 // requests per second
	errRate  float64 // 5xx per second
	p50, p99 float64 // seconds; 0 when no request finished
}

// Sample reads the totals at now and records the interval since the
// previous Sample. The first call only sets the baseline. It returns the
// Gather error, if any (what could be gathered is still used).
func (h *History) Sample(now time.Time) error {
	mfs, err := h.g.Gather()
	cur := histTotals{at: now, ops: map[string]*opTotals{}, codes: map[string]uint64{}, counters: map[string]float64{}}
	op := func(name string) *opTotals {
		o := cur.ops[name]
		if o == nil {
			o = &opTotals{}
			cur.ops[name] = o
		}
		return o
	}
	// NB: the metric types are client_model's, named only by inference
	// here: that module is not a direct dependency.
	for _, mf := range mfs {
		switch name := mf.GetName(); name {
		case "ringkv_requests_total":
			for _, m := range mf.GetMetric() {
				o, code := labelValue(m.GetLabel(), "op"), labelValue(m.GetLabel(), "code")
				n := uint64(m.GetCounter().GetValue())
				cur.codes[code] += n
				if len(code) == 3 && code[0] == '5' {
					op(o).errs += n
				}
			}
		case "ringkv_request_duration_seconds":
			for _, m := range mf.GetMetric() {
				o := op(labelValue(m.GetLabel(), "op"))
				hg := m.GetHistogram()
				o.count = hg.GetSampleCount()
				for _, b := range hg.GetBucket() {
					if math.IsInf(b.GetUpperBound(), 1) {
						continue
					}
					o.bounds = append(o.bounds, b.GetUpperBound())
					o.buckets = append(o.buckets, b.GetCumulativeCount())
				}
			}
		default:
			if slices.Contains(historyCounters, name) {
				var v float64
				for _, m := range mf.GetMetric() {
					v += m.GetCounter().GetValue() + m.GetGauge().GetValue() + m.GetUntyped().GetValue()
				}
				cur.counters[name] = v
			}
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.mu.have && now.After(h.mu.prev.at) {
		h.pushLocked(diffTotals(h.mu.prev, cur))
	}
	h.mu.prev, h.mu.have = cur, true
	return err
}

// REQUIRES: h.mu.
func (h *History) pushLocked(s histSample) {
	ring := h.mu.ring
	if h.mu.n < len(ring) {
		ring[(h.mu.head+h.mu.n)%len(ring)] = s
		h.mu.n++
		return
	}
	ring[h.mu.head] = s
	h.mu.head = (h.mu.head + 1) % len(ring)
}

// maxGap bounds the seconds one sample fills (ticks missed for longer
// leave the rest at zero).
const maxGap = 60

// diffTotals is the interval from a to b. A counter that went down (a
// series that is new, or was reset) counts from zero.
func diffTotals(a, b histTotals) histSample {
	secs := b.at.Sub(a.at).Seconds()
	s := histSample{start: min(a.at.Unix()+1, b.at.Unix()), end: b.at.Unix(), secs: secs}
	s.start = max(s.start, s.end-maxGap+1)
	for name, o := range b.ops {
		p := a.ops[name]
		if p == nil || p.count > o.count || len(p.buckets) != len(o.buckets) {
			p = &opTotals{}
		}
		n := o.count - p.count
		if n == 0 {
			continue
		}
		if s.ops == nil {
			s.ops = map[string]opSecond{}
		}
		os := opSecond{rate: float64(n) / secs}
		if o.errs >= p.errs {
			os.errRate = float64(o.errs-p.errs) / secs
		}
		// The interval's count per bucket: the increase of each
		// cumulative count, less the increase of the one below it.
		d := make([]uint64, len(o.buckets))
		var below uint64
		for i := range d {
			var prev uint64
			if i < len(p.buckets) {
				prev = p.buckets[i]
			}
			var cum uint64
			if o.buckets[i] >= prev {
				cum = o.buckets[i] - prev
			}
			if cum >= below {
				d[i] = cum - below
			}
			below = max(below, cum)
		}
		os.p50 = bucketQuantile(0.5, o.bounds, d, n)
		os.p99 = bucketQuantile(0.99, o.bounds, d, n)
		s.ops[name] = os
	}
	for code, n := range b.codes {
		if len(code) > 0 && code[0] == '2' {
			continue
		}
		if p := a.codes[code]; n > p {
			if s.codes == nil {
				s.codes = map[string]float64{}
			}
			s.codes[code] = float64(n-p) / secs
		}
	}
	for name, v := range b.counters {
		if p, ok := a.counters[name]; ok && v > p {
			if s.counters == nil {
				s.counters = map[string]float64{}
			}
			s.counters[name] = (v - p) / secs
		}
	}
	return s
}

// bucketQuantile estimates the q-quantile of total observations whose
// counts per bucket (not cumulative; an observation past the last bound
// is in none) are counts, by linear interpolation within the bucket that
// holds it, as histogram_quantile does. Past the last bound it answers
// the last bound.
func bucketQuantile(q float64, bounds []float64, counts []uint64, total uint64) float64 {
	if total == 0 || len(bounds) == 0 {
		return 0
	}
	rank := q * float64(total)
	var cum float64
	lower := 0.0
	for i, c := range counts {
		if c > 0 && cum+float64(c) >= rank {
			return lower + (bounds[i]-lower)*(rank-cum)/float64(c)
		}
		cum += float64(c)
		lower = bounds[i]
	}
	return bounds[len(bounds)-1]
}

// labelPair is client_model's LabelPair, by its methods.
type labelPair interface {
	GetName() string
	GetValue() string
}

// labelValue returns the value of a metric's label name ("" if none).
func labelValue[L labelPair](ls []L, name string) string {
	for _, l := range ls {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// HistoryWindow is the JSON of the last seconds of a History: one value a
// second, oldest first, for the Unix seconds End-Seconds+1 to End. A
// second without a sample (the node was not sampling) reads 0.
type HistoryWindow struct {
	End     int64 `json:"end"`
	Seconds int   `json:"seconds"`
	// Ops holds, per op with traffic in the window, requests per second
	// ("rate"), 5xx answers per second ("errors"), and the p50 and p99
	// latency in milliseconds (0 in a second without requests).
	Ops map[string]map[string][]float64 `json:"ops"`
	// Codes holds non-2xx answers per second by status code, all ops.
	Codes map[string][]float64 `json:"codes"`
	// Counters holds the increase per second of historyCounters.
	Counters map[string][]float64 `json:"counters"`
}

// Window returns the last seconds up to the latest sample: at most what
// History keeps, and no further back than its oldest sample. It is a read
// of the history: Run samples for historyIdle after it.
func (h *History) Window(seconds int) HistoryWindow {
	if seconds <= 0 || seconds > h.seconds {
		seconds = h.seconds
	}
	w := HistoryWindow{Seconds: seconds, Ops: map[string]map[string][]float64{}, Codes: map[string][]float64{}, Counters: map[string][]float64{}}
	now := h.now()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.readLocked(now)
	if h.mu.n == 0 {
		if h.mu.have {
			w.End = h.mu.prev.at.Unix()
		}
		return w
	}
	ring := h.mu.ring
	w.End = ring[(h.mu.head+h.mu.n-1)%len(ring)].end
	// No older than the oldest sample: a node that just started has no
	// idle past to show.
	if span := w.End - ring[h.mu.head].start + 1; span < int64(seconds) {
		seconds = int(max(span, 2))
		w.Seconds = seconds
	}
	first := w.End - int64(seconds) + 1
	series := func(m map[string][]float64, k string) []float64 {
		s := m[k]
		if s == nil {
			s = make([]float64, seconds)
			m[k] = s
		}
		return s
	}
	for i := range h.mu.n {
		s := &ring[(h.mu.head+i)%len(ring)]
		for sec := max(s.start, first); sec <= s.end; sec++ {
			fillSecond(&w, series, s, sec-first)
		}
	}
	return w
}

// fillSecond writes sample s into second at of w.
func fillSecond(w *HistoryWindow, series func(map[string][]float64, string) []float64, s *histSample, at int64) {
	for name, o := range s.ops {
		m := w.Ops[name]
		if m == nil {
			m = map[string][]float64{}
			w.Ops[name] = m
		}
		// Two samples in one second (a late tick): the later wins.
		series(m, "rate")[at] = round3(o.rate)
		series(m, "errors")[at] = round3(o.errRate)
		series(m, "p50_ms")[at] = round3(o.p50 * 1e3)
		series(m, "p99_ms")[at] = round3(o.p99 * 1e3)
	}
	for code, v := range s.codes {
		series(w.Codes, code)[at] = round3(v)
	}
	for name, v := range s.counters {
		series(w.Counters, name)[at] = round3(v)
	}
}

// round3 keeps three decimals: the page shows no more, and the JSON is
// polled every second from every node.
func round3(v float64) float64 { return math.Round(v*1e3) / 1e3 }
