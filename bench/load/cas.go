package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/ringkv/ringkv/bench/workload"
	"github.com/ringkv/ringkv/client"
)

// DefaultCASKeyPrefix is the cas workload's key prefix when --key-prefix
// is not given: counters apart from the key-N values other workloads
// write, which are not counters.
const DefaultCASKeyPrefix = "counter-"

// CASSummary is a cas run's counters: what the workers did, and the final
// check that the counters hold exactly the increments the nodes
// acknowledged.
type CASSummary struct {
	// Increments are the conditional PUTs answered 204: acknowledged
	// increments of a counter.
	Increments          uint64  `json:"increments"`
	IncrementsPerSecond float64 `json:"increments_per_second"`
	// Conflicts are the conditional PUTs answered 412 (another writer
	// changed the counter since it was read); each is retried.
	Conflicts uint64 `json:"conflicts"`
	// OutcomeUnknown are the conditional PUTs that may or may not have
	// been applied: answered 503 "outcome unknown", or cut short by a
	// failed connection or a timeout. Each is resolved by a serial read of
	// its counter while no other worker writes it; UnknownApplied are
	// those found applied.
	OutcomeUnknown uint64 `json:"outcome_unknown"`
	UnknownApplied uint64 `json:"outcome_unknown_applied"`
	// PutLatency is the conditional PUT's (the "cas" op's) latency.
	PutLatency Latency `json:"put_latency"`
	// Counters is how many counters the run touched; Baseline their sum
	// when the run first read each, Final their sum read at
	// consistency=serial after the run, Expected Baseline + Increments +
	// UnknownApplied.
	Counters int    `json:"counters"`
	Baseline uint64 `json:"baseline_total"`
	Final    uint64 `json:"final_total"`
	Expected uint64 `json:"expected_total"`
	// Match: every counter was read at the end, Final equals Expected,
	// and no resolution of an unknown outcome found more or fewer
	// increments than it could explain.
	Match bool `json:"match"`
	// Problem says why not.
	Problem string `json:"problem,omitempty"`
}

// counter is one counter's bookkeeping. Increments hold mu shared (they
// race each other, which is the point); resolving an unknown outcome
// holds it exclusively, so that the serial read sees no write of this
// run in flight.
type counter struct {
	key  string
	mu   sync.RWMutex
	init atomic.Bool // baseline read
	// baseline is the value before the run's first increment; applied
	// the unknown outcomes found applied (both under mu, exclusive).
	baseline, applied uint64
	acked             atomic.Uint64 // increments answered 204
	pending           atomic.Int64  // unknown outcomes not yet resolved
}

// casRun is one cas run's shared state.
type casRun struct {
	c       *Config
	clients []*client.Client // one per --addr, each with the others to fail over to
	bases   []string
	keys    workload.Chooser
	results chan<- *vegeta.Result

	mu       sync.Mutex
	counters map[uint64]*counter

	increments, conflicts, unknown, unknownApplied atomic.Uint64
	problemMu                                      sync.Mutex
	problem                                        string // the first anomaly or fatal error
	fatal                                          atomic.Bool
}

func (r *casRun) fail(format string, a ...any) {
	r.problemMu.Lock()
	if r.problem == "" {
		r.problem = fmt.Sprintf(format, a...)
	}
	r.problemMu.Unlock()
}

func (r *casRun) counter(n uint64) *counter {
	r.mu.Lock()
	defer r.mu.Unlock()
	ctr := r.counters[n]
	if ctr == nil {
		ctr = &counter{key: workload.Key(r.c.KeyPrefix, n)}
		r.counters[n] = ctr
	}
	return ctr
}

// newCASClients makes one client per --addr, that node first: workers
// spread over the nodes as vegeta's requests go round-robin.
func newCASClients(c *Config) ([]*client.Client, error) {
	out := make([]*client.Client, len(c.Addrs))
	for i := range c.Addrs {
		addrs := append(append([]string{}, c.Addrs[i:]...), c.Addrs[:i]...)
		cl, err := client.Config{Addrs: addrs, Token: c.Token, TLS: c.TLS, Timeout: c.Timeout,
			MaxIdleConnsPerHost: c.Concurrency}.New()
		if err != nil {
			return nil, err
		}
		out[i] = cl
	}
	return out, nil
}

// runCAS runs the cas workload closed-loop: c.Concurrency workers, each
// incrementing counters one at a time, for c.Duration or until ctx ends;
// then it reads every counter the run touched at consistency=serial.
// Each request's answer goes through rec as vegeta's do, so that the
// progress, report.json and report.html read as for the other workloads.
func runCAS(ctx context.Context, c *Config, bases []string, keys workload.Chooser, start time.Time, progress io.Writer) (*recorder, time.Duration, bool, *CASSummary, error) {
	clients, err := newCASClients(c)
	if err != nil {
		return nil, 0, false, nil, err
	}
	defer func() {
		for _, cl := range clients {
			cl.CloseIdleConnections()
		}
	}()
	results := make(chan *vegeta.Result, 4*c.Concurrency)
	run := &casRun{c: c, clients: clients, bases: bases, keys: keys, results: results, counters: map[uint64]*counter{}}

	// The run's end stops workers between increments; an interrupt (ctx)
	// also cuts requests in flight, whose outcome is then resolved.
	stop := make(chan struct{})
	timer := time.AfterFunc(c.Duration, func() { close(stop) })
	defer timer.Stop()
	var wg sync.WaitGroup
	for i := range c.Concurrency {
		wg.Go(func() { run.worker(ctx, stop, i) })
	}
	go func() { wg.Wait(); close(results) }()

	rec := newRecorder(start, c.Duration)
	tick := time.NewTicker(c.Interval)
	defer tick.Stop()
	pr := &progressLine{w: progress, tty: c.ProgressTTY, every: c.Interval}
	interrupted := false
	done := ctx.Done()
loop:
	for {
		select {
		case res, ok := <-results:
			if !ok {
				break loop
			}
			rec.addOp(res, opOfCAS(res))
		case now := <-tick.C:
			pr.show(rec, now, false)
		case <-done:
			interrupted = true
			done = nil
		}
	}
	elapsed := time.Since(start)
	pr.show(rec, time.Now(), true)
	pr.end()
	if c.OnRunEnd != nil {
		c.OnRunEnd()
	}
	if run.fatal.Load() {
		return rec, elapsed, interrupted, nil, errors.New(run.problem)
	}
	sum := run.check(progress)
	if elapsed > 0 {
		sum.IncrementsPerSecond = math.Round(float64(sum.Increments)/elapsed.Seconds()*10) / 10
	}
	return rec, elapsed, interrupted, sum, nil
}

// opOfCAS: the workers' results are GETs (serial reads) and PUTs
// (conditional writes).
func opOfCAS(r *vegeta.Result) workload.Op {
	if r.Method == http.MethodPut {
		return workload.CondUpdate
	}
	return workload.Read
}

// worker increments counters until stop or ctx: a counter drawn from the
// key distribution, retried on each conflict until an answer that is not
// one.
func (r *casRun) worker(ctx context.Context, stop <-chan struct{}, i int) {
	rng := rand.New(rand.NewPCG(r.c.Seed+uint64(i), uint64(i)^0x9e3779b97f4a7c15))
	cl := r.clients[i%len(r.clients)]
	base := r.bases[i%len(r.bases)]
	for {
		ctr := r.counter(r.keys.Next(rng))
		for {
			select {
			case <-stop:
				return
			case <-ctx.Done():
				return
			default:
			}
			if r.fatal.Load() {
				return
			}
			again, pause := r.increment(ctx, cl, base, ctr)
			if pause {
				// An error other than a conflict: do not spin on a node
				// that is down.
				select {
				case <-time.After(20 * time.Millisecond):
				case <-stop:
				case <-ctx.Done():
				}
			}
			if !again {
				break
			}
		}
	}
}

// increment makes one attempt at adding 1 to ctr: a serial read and a
// conditional PUT. again says to retry the counter (a conflict), pause
// that the attempt failed otherwise.
func (r *casRun) increment(ctx context.Context, cl *client.Client, base string, ctr *counter) (again, pause bool) {
	u := base + "/v1/kv/" + url.PathEscape(ctr.key)
	var val []byte
	var ver client.Version
	var err error
	read := func() bool {
		t0 := time.Now()
		val, ver, err = cl.GetVersioned(ctx, ctr.key)
		res := &vegeta.Result{Method: http.MethodGet, URL: u, Timestamp: t0, Latency: time.Since(t0), Code: 200}
		if errors.Is(err, client.ErrNotFound) {
			res.Code, val, ver, err = 404, nil, "", nil
		} else if err != nil {
			setError(res, err)
		}
		if err == nil || ctx.Err() == nil { // a read cut by Ctrl-C is no answer of the node's
			r.results <- res
		}
		return err == nil
	}
	haveRead := false
	if !ctr.init.Load() {
		// The first read of a counter is its baseline, made while no
		// worker of this run can write it.
		ctr.mu.Lock()
		if !ctr.init.Load() {
			if !read() {
				ctr.mu.Unlock()
				return false, true
			}
			b, ok := r.parse(ctr, val, ver)
			if !ok {
				ctr.mu.Unlock()
				return false, false
			}
			ctr.baseline = b
			ctr.init.Store(true)
			haveRead = true
		}
		ctr.mu.Unlock()
	}
	ctr.mu.RLock()
	if !haveRead && !read() {
		ctr.mu.RUnlock()
		return false, true
	}
	n, ok := r.parse(ctr, val, ver)
	if !ok {
		ctr.mu.RUnlock()
		return false, false
	}
	next := []byte(strconv.FormatUint(n+1, 10))
	t0 := time.Now()
	if ver == "" {
		_, err = cl.PutIfAbsent(ctx, ctr.key, next)
	} else {
		_, err = cl.CompareAndSwap(ctx, ctr.key, ver, next)
	}
	res := &vegeta.Result{Method: http.MethodPut, URL: u, Timestamp: t0, Latency: time.Since(t0), Code: 204}
	unknown := false
	switch {
	case err == nil:
		ctr.acked.Add(1)
		r.increments.Add(1)
	case errors.Is(err, client.ErrConditionFailed):
		res.Code = 412
		r.conflicts.Add(1)
		again = true
	case mayHaveApplied(err):
		setError(res, err)
		ctr.pending.Add(1)
		r.unknown.Add(1)
		unknown = true
	default:
		setError(res, err)
		pause = true
	}
	ctr.mu.RUnlock()
	if err == nil || ctx.Err() == nil { // a write cut by Ctrl-C is no answer of the node's (but resolved all the same)
		r.results <- res
	}
	if unknown {
		// Resolve it now, so that the counter's total stays checkable
		// whatever comes next; a read that fails leaves it to the final
		// check.
		r.resolve(ctr, r.clients[0])
		pause = true
	}
	return again, pause
}

// mayHaveApplied reports whether a conditional PUT's error leaves its
// outcome open: the node said so, or the request was cut short after it
// may have reached the node (a failed connection, a timeout).
func mayHaveApplied(err error) bool {
	if errors.Is(err, client.ErrOutcomeUnknown) || errors.Is(err, client.ErrTimeout) {
		return true
	}
	var se *client.StatusError
	return !errors.As(err, &se) // no answer: a NodeError, or the context
}

// setError makes res the failed request err describes: its status and
// message, or a transport error (status 0).
func setError(res *vegeta.Result, err error) {
	var ce *client.ConditionError
	var se *client.StatusError
	switch {
	case errors.As(err, &ce):
		res.Code, res.Body = 412, []byte(ce.Message)
	case errors.As(err, &se):
		res.Code, res.Body = uint16(se.Code), []byte(se.Message)
	default:
		res.Code, res.Error = 0, err.Error()
	}
}

// parse reads a counter's value: absent (no version) is 0. A value that
// is not a decimal counter stops the run: its total could not be checked.
func (r *casRun) parse(ctr *counter, val []byte, ver client.Version) (uint64, bool) {
	if ver == "" && val == nil {
		return 0, true
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(val)), 10, 64)
	if err != nil {
		r.fail("counter %s holds %q, not a decimal counter: give the cas workload a --key-prefix of its own", ctr.key, oneLine(string(val), 40))
		r.fatal.Store(true)
		return 0, false
	}
	return n, true
}

// resolve settles ctr's unknown outcomes with a serial read while no
// worker of the run writes it: what the counter holds beyond its baseline,
// its acknowledged increments and the unknowns already found applied is
// how many of the pending ones were applied. Anything outside 0..pending
// is a lost or an invented increment.
func (r *casRun) resolve(ctr *counter, cl *client.Client) (value uint64, ok bool) {
	ctr.mu.Lock()
	defer ctr.mu.Unlock()
	val, ver, err := readSerial(cl, ctr.key)
	if err != nil {
		return 0, false
	}
	v, ok := r.parse(ctr, val, ver)
	if !ok {
		return 0, false
	}
	p := ctr.pending.Load()
	if p == 0 {
		return v, true
	}
	diff := int64(v) - int64(ctr.baseline) - int64(ctr.acked.Load()) - int64(ctr.applied)
	if diff < 0 || diff > p {
		r.fail("counter %s holds %d: its baseline %d, %d acknowledged and %d found applied, with %d of unknown outcome, cannot make it",
			ctr.key, v, ctr.baseline, ctr.acked.Load(), ctr.applied, p)
		diff = min(max(diff, 0), p)
	}
	ctr.applied += uint64(diff)
	r.unknownApplied.Add(uint64(diff))
	ctr.pending.Store(0)
	return v, true
}

// readSerial reads key at consistency=serial, a few times over a failure:
// the check must not fail for one lost connection.
func readSerial(cl *client.Client, key string) ([]byte, client.Version, error) {
	var err error
	for attempt := range 3 {
		if attempt > 0 {
			time.Sleep(100 * time.Millisecond << attempt)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		var val []byte
		var ver client.Version
		val, ver, err = cl.GetVersioned(ctx, key)
		cancel()
		if errors.Is(err, client.ErrNotFound) {
			return nil, "", nil
		}
		if err == nil {
			return val, ver, nil
		}
	}
	return nil, "", err
}

// check reads every counter the run touched at consistency=serial
// (resolving the unknown outcomes still pending) and sums them.
func (r *casRun) check(progress io.Writer) *CASSummary {
	s := &CASSummary{Increments: r.increments.Load(), Conflicts: r.conflicts.Load(), OutcomeUnknown: r.unknown.Load()}
	var ctrs []*counter
	for _, ctr := range r.counters {
		if ctr.init.Load() {
			ctrs = append(ctrs, ctr)
		}
	}
	s.Counters = len(ctrs)
	fmt.Fprintf(progress, "cas: reading %d counters at consistency=serial...\n", len(ctrs))
	var mu sync.Mutex
	var unread int
	var firstErr string
	work := make(chan *counter)
	var wg sync.WaitGroup
	for i := range min(r.c.Concurrency, max(len(ctrs), 1)) {
		cl := r.clients[i%len(r.clients)]
		wg.Go(func() {
			for ctr := range work {
				v, ok := r.resolve(ctr, cl)
				mu.Lock()
				if ok {
					s.Final += v
				} else {
					unread++
					if firstErr == "" {
						firstErr = ctr.key
					}
				}
				mu.Unlock()
			}
		})
	}
	for _, ctr := range ctrs {
		work <- ctr
	}
	close(work)
	wg.Wait()
	for _, ctr := range ctrs {
		s.Baseline += ctr.baseline
		s.Expected += ctr.baseline + ctr.acked.Load() + ctr.applied
	}
	s.UnknownApplied = r.unknownApplied.Load()
	switch {
	case unread > 0:
		s.Problem = fmt.Sprintf("%d counters could not be read at consistency=serial (the first: %s)", unread, firstErr)
	case r.problem != "":
		s.Problem = r.problem
	case s.Final != s.Expected:
		s.Problem = fmt.Sprintf("the counters total %d, not the %d their increments make", s.Final, s.Expected)
	}
	s.Match = s.Problem == ""
	return s
}
