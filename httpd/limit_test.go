package httpd

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
	"golang.org/x/time/rate"

	"github.com/ringkv/ringkv/peer"
	"github.com/ringkv/ringkv/peer/kv"
	"github.com/ringkv/ringkv/peer/peertest/wait"
	"github.com/ringkv/ringkv/peer/transport"
	"github.com/ringkv/ringkv/ring"
)

// startServer serves store and ops on ln with cfg until the test ends.
func startServer(t testing.TB, cfg Config, store Store, ops Ops, ln net.Listener) *Server {
	t.Helper()
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if local, ok := ops.(transport.Local); ok {
		mountInternode(t, &cfg, local, false)
	}
	s, err := New(cfg, store, ops)
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return s
}

func listenTCP(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Skip("no loopback:", err)
	}
	return ln
}

// flakyListener fails its first fails Accepts with err, then accepts from
// the real listener. Each failure is sent on failed, if it is set, while
// there is room in its buffer (a test waits for as many as it needs).
type flakyListener struct {
	net.Listener
	fails  atomic.Int64
	err    error
	failed chan struct{}
}

func (l *flakyListener) Accept() (net.Conn, error) {
	if l.fails.Add(-1) >= 0 {
		select {
		case l.failed <- struct{}{}:
		default:
		}
		return nil, l.err
	}
	return l.Listener.Accept()
}

// TestAcceptErrorsRetried: EMFILE from accept used to end Serve (and so
// ringkv serve); now the server backs off, counts, and keeps serving.
func TestAcceptErrorsRetried(t *testing.T) {
	emfile := &net.OpError{Op: "accept", Net: "tcp", Err: &osSyscallError{syscall.EMFILE}}
	inner := listenTCP(t)
	ln := &flakyListener{Listener: inner, err: emfile}
	ln.fails.Store(5)
	reg := prometheus.NewRegistry()
	st := newFakeStore()
	var logs syncBuf
	startServer(t, Config{Registry: reg, Logger: slog.New(slog.NewTextHandler(&logs, nil))}, st, &fakeOps{}, ln)
	c, err := net.Dial("tcp", inner.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	resp := roundTripConn(t, c, rawRequest("GET", "/healthz", nil), false)
	if resp.StatusCode() != fasthttp.StatusOK {
		t.Fatalf("healthz after accept errors: %d %s", resp.StatusCode(), resp.Body())
	}
	if got := testutil.ToFloat64(mustCounter(t, reg, "ringkv_http_accept_errors_total")); got != 5 {
		t.Errorf("accept errors counted = %v, want 5", got)
	}
	// Five errors within far less than acceptLogEvery: one line.
	if n := strings.Count(logs.String(), "cannot accept a connection"); n != 1 {
		t.Errorf("%d accept error lines logged, want 1:\n%s", n, logs.String())
	}
}

// osSyscallError is the os.SyscallError an accept4 failure comes in.
type osSyscallError struct{ errno syscall.Errno }

func (e *osSyscallError) Error() string { return "accept4: " + e.errno.Error() }
func (e *osSyscallError) Unwrap() error { return e.errno }

// mustCounter finds the one metric named name on reg.
func mustCounter(t testing.TB, reg *prometheus.Registry, name string) prometheus.Collector {
	t.Helper()
	return collectorFunc(func() float64 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == name {
				total := 0.0
				for _, m := range mf.GetMetric() {
					total += m.GetCounter().GetValue()
				}
				return total
			}
		}
		return 0
	})
}

// collectorFunc is a gauge read through f, for testutil.ToFloat64.
type collectorFunc func() float64

var descTest = prometheus.NewDesc("test_value", "x", nil, nil)

func (f collectorFunc) Describe(ch chan<- *prometheus.Desc) { ch <- descTest }
func (f collectorFunc) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(descTest, prometheus.GaugeValue, f())
}

// TestRetryListenerClose: a listener closed while Accept backs off ends
// Accept promptly with a closed error, which fasthttp takes as the end.
func TestRetryListenerClose(t *testing.T) {
	inner := fasthttputil.NewInmemoryListener()
	const failures = 4 // Accept has backed off, and retried, more than once
	fl := &flakyListener{Listener: inner, err: errors.New("accept: too many open files"), failed: make(chan struct{}, failures)}
	fl.fails.Store(1 << 40)
	ln := newRetryListener(fl, slog.New(slog.DiscardHandler), prometheus.NewCounter(prometheus.CounterOpts{Name: "x"}))
	done := make(chan error, 1)
	go func() {
		_, err := ln.Accept()
		done <- err
	}()
	for range failures {
		select {
		case <-fl.failed:
		case <-time.After(time.Minute): // only a hang gets here
			t.Fatal("Accept does not retry after an error")
		}
	}
	ln.Close()
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close = %v, want net.ErrClosed", err)
	}
}

// TestConnCaps: past MaxConnsPerIP a connection is answered 429 and
// closed; past MaxConns, 503. Connections already open keep working.
func TestConnCaps(t *testing.T) {
	f := func(limits Limits, want int) {
		t.Helper()
		ln := listenTCP(t)
		startServer(t, Config{Limits: limits}, newFakeStore(), &fakeOps{}, ln)
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for range 2 {
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			held = append(held, c)
			// A request through it proves it is being served.
			if _, err := c.Write(rawRequest("GET", "/healthz", nil)); err != nil {
				t.Fatal(err)
			}
			var resp fasthttp.Response
			if err := resp.Read(bufio.NewReader(c)); err != nil || resp.StatusCode() != 200 {
				t.Fatalf("conn %d: %v %d", len(held), err, resp.StatusCode())
			}
		}
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		var resp fasthttp.Response
		if err := resp.Read(bufio.NewReader(c)); err != nil {
			t.Fatalf("reading the refusal: %v", err)
		}
		if resp.StatusCode() != want {
			t.Errorf("third connection: %d %s, want %d", resp.StatusCode(), resp.Body(), want)
		}
		if n, err := c.Read(make([]byte, 1)); err == nil {
			t.Errorf("refused connection still open (read %d bytes)", n)
		}
	}
	f(Limits{MaxConnsPerIP: 2}, fasthttp.StatusTooManyRequests)
	f(Limits{MaxConns: 2, MaxConnsPerIP: -1}, fasthttp.StatusServiceUnavailable)
}

// TestRateLimiter pins the token buckets: burst, refill, one bucket per
// client, and a bounded number of buckets.
func TestRateLimiter(t *testing.T) {
	t0 := time.Unix(1000, 0)
	r := newRateLimiter(rate.Limit(2), 3, 4)
	f := func(key string, at time.Duration, wantOK bool, wantWait time.Duration) {
		t.Helper()
		wait, ok := r.allow(key, t0.Add(at))
		if ok != wantOK || wait != wantWait {
			t.Errorf("allow(%s, +%s) = %s, %v; want %s, %v", key, at, wait, ok, wantWait, wantOK)
		}
	}
	f("a", 0, true, 0)
	f("a", 0, true, 0)
	f("a", 0, true, 0)
	f("a", 0, false, 500*time.Millisecond) // burst spent
	f("b", 0, true, 0)                     // its own bucket
	f("a", 250*time.Millisecond, false, 250*time.Millisecond)
	f("a", 500*time.Millisecond, true, 0) // refilled one
	f("a", 500*time.Millisecond, false, 500*time.Millisecond)
	for i := range 100 {
		r.allow(fmt.Sprint("c", i), t0)
	}
	if n := r.clients(); n > 4 {
		t.Errorf("%d buckets kept, want at most 4", n)
	}
}

// TestRateLimit429: past the rate a request gets 429, a JSON error and
// Retry-After, and does not run; internode routes are exempt; RateKey
// can count by another identity.
func TestRateLimit429(t *testing.T) {
	st := newFakeStore()
	s, err := New(Config{Registry: prometheus.NewRegistry(), Limits: Limits{RateLimit: 0.001, RateBurst: 2}}, st, &fakeOps{})
	if err != nil {
		t.Fatal(err)
	}
	do := func(method, target string, body []byte, headers ...string) *fasthttp.RequestCtx {
		ctx := newRequestCtx(t, rawRequest(method, target, body, headers...))
		s.Handler()(ctx)
		return ctx
	}
	for i := range 2 {
		if ctx := do("PUT", "/v1/kv/k", []byte("v")); ctx.Response.StatusCode() != 204 {
			t.Fatalf("PUT %d within the burst: %d", i, ctx.Response.StatusCode())
		}
	}
	ctx := do("PUT", "/v1/kv/other", []byte("v"))
	if ctx.Response.StatusCode() != fasthttp.StatusTooManyRequests {
		t.Fatalf("PUT past the rate: %d, want 429", ctx.Response.StatusCode())
	}
	checkJSONError(t, ctx.Response.Header.ContentType(), ctx.Response.Body())
	if ra := string(ctx.Response.Header.Peek("Retry-After")); ra == "" || ra == "0" {
		t.Errorf("Retry-After = %q, want whole seconds", ra)
	}
	if _, ok := st.snapshot()["other"]; ok {
		t.Error("a rate-limited PUT was applied")
	}
	if ctx := do("GET", "/internal/gossip", nil); ctx.Response.StatusCode() == fasthttp.StatusTooManyRequests {
		t.Error("internode route rate-limited")
	}

	// With auth, each credential has its own bucket whatever its address;
	// anonymous requests share their address's.
	a, err := NewStaticAuth([]byte(testAuthFile()))
	if err != nil {
		t.Fatal(err)
	}
	s3, err := New(Config{Registry: prometheus.NewRegistry(), Auth: a, Limits: Limits{RateLimit: 0.001, RateBurst: 1}}, st, &fakeOps{})
	if err != nil {
		t.Fatal(err)
	}
	codes3 := ""
	for _, tok := range []string{"tok-read", "tok-admin", "tok-read", "", "", "tok-admin"} {
		var hdr []string
		if tok != "" {
			hdr = append(hdr, "Authorization: Bearer "+tok)
		}
		ctx := newRequestCtx(t, rawRequest("GET", "/healthz", nil, hdr...))
		s3.Handler()(ctx)
		codes3 += fmt.Sprint(ctx.Response.StatusCode(), " ")
	}
	if codes3 != "200 200 429 200 429 429 " {
		t.Errorf("codes by credential = %q, want 200 200 429 200 429 429", codes3)
	}

	// Keyed by a header (any identity a RateKey derives): each has its
	// own bucket.
	s2, err := New(Config{Registry: prometheus.NewRegistry(), Limits: Limits{RateLimit: 0.001, RateBurst: 1,
		RateKey: func(ctx *fasthttp.RequestCtx) string { return string(ctx.Request.Header.Peek("X-Who")) }}}, st, &fakeOps{})
	if err != nil {
		t.Fatal(err)
	}
	codes := ""
	for _, who := range []string{"alice", "bob", "alice", ""} {
		ctx := newRequestCtx(t, rawRequest("GET", "/healthz", nil, "X-Who: "+who))
		s2.Handler()(ctx)
		codes += fmt.Sprint(ctx.Response.StatusCode(), " ")
	}
	if codes != "200 200 429 200 " {
		t.Errorf("codes by identity = %q, want 200 200 429 200 (the last exempt)", codes)
	}
}

// blockingStore holds scans until released, to fill the scan slots.
type blockingStore struct {
	*fakeStore
	entered chan kv.ScanQuery
	release chan struct{}
}

func (b *blockingStore) Scan(ctx context.Context, q kv.ScanQuery) (kv.ScanPage, error) {
	b.entered <- q
	<-b.release
	return b.fakeStore.Scan(ctx, q)
}

// TestScanSlots: past MaxConcurrentScans a scan is 429 with Retry-After;
// a freed slot serves the next.
func TestScanSlots(t *testing.T) {
	st := &blockingStore{fakeStore: newFakeStore(), entered: make(chan kv.ScanQuery, 10), release: make(chan struct{})}
	ln := fasthttputil.NewInmemoryListener()
	startServer(t, Config{Limits: Limits{MaxConcurrentScans: 2}}, st, &fakeOps{}, ln)
	var once sync.Once
	release := func() { once.Do(func() { close(st.release) }) }
	defer release()
	scan := func() *fasthttp.Response {
		c, err := ln.Dial()
		if err != nil {
			t.Error(err)
			return nil
		}
		defer c.Close()
		return roundTripConn(t, c, rawRequest("GET", "/v1/kv?prefix=a", nil), false)
	}
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			if resp := scan(); resp != nil && resp.StatusCode() != 200 {
				t.Errorf("scan in a slot: %d %s", resp.StatusCode(), resp.Body())
			}
		})
	}
	<-st.entered
	<-st.entered
	resp := scan()
	if resp.StatusCode() != fasthttp.StatusTooManyRequests || len(resp.Header.Peek("Retry-After")) == 0 {
		t.Errorf("third scan: %d Retry-After=%q, want 429 with Retry-After", resp.StatusCode(), resp.Header.Peek("Retry-After"))
	}
	checkJSONError(t, resp.Header.ContentType(), resp.Body())
	release()
	wg.Wait()
	if resp := scan(); resp.StatusCode() != 200 {
		t.Errorf("scan after the slots freed: %d", resp.StatusCode())
	}
}

// TestScanByteCap: a page stops once its encoded answer reaches
// MaxScanBytes, with next set to continue from; the store is given the
// cap; paging with next visits every key once.
func TestScanByteCap(t *testing.T) {
	st := &capStore{fakeStore: newFakeStore()}
	val := strings.Repeat("\x01", 100) // JSON-escaped sixfold: \u0001
	for i := range 50 {
		if _, err := st.Put(context.Background(), fmt.Appendf(nil, "k%02d", i), []byte(val), kv.WriteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	const capBytes = 2000
	ln := fasthttputil.NewInmemoryListener()
	startServer(t, Config{Limits: Limits{MaxScanBytes: capBytes}}, st, &fakeOps{}, ln)
	seen := map[string]bool{}
	after := ""
	pages := 0
	for {
		c, err := ln.Dial()
		if err != nil {
			t.Fatal(err)
		}
		resp := roundTripConn(t, c, rawRequest("GET", "/v1/kv?limit=1000&after="+after, nil), false)
		if resp.StatusCode() != 200 {
			t.Fatalf("scan: %d %s", resp.StatusCode(), resp.Body())
		}
		// One item past the cap at most.
		if n := len(resp.Body()); n > capBytes+700 {
			t.Errorf("page of %d bytes, cap %d", n, capBytes)
		}
		var page struct {
			Items []struct{ Key string }
			Next  *string
		}
		if err := json.Unmarshal(resp.Body(), &page); err != nil {
			t.Fatal(err)
		}
		if len(page.Items) == 0 {
			t.Fatal("empty page")
		}
		for _, it := range page.Items {
			if seen[it.Key] {
				t.Errorf("key %s twice", it.Key)
			}
			seen[it.Key] = true
		}
		pages++
		if page.Next == nil {
			break
		}
		after = *page.Next
	}
	if len(seen) != 50 || pages < 10 {
		t.Errorf("%d keys in %d pages, want 50 keys in 10 or more", len(seen), pages)
	}
	if got := st.maxBytes.Load(); got != capBytes {
		t.Errorf("store asked with MaxBytes %d, want %d", got, capBytes)
	}
}

type capStore struct {
	*fakeStore
	maxBytes atomic.Int64
}

func (c *capStore) Scan(ctx context.Context, q kv.ScanQuery) (kv.ScanPage, error) {
	c.maxBytes.Store(int64(q.MaxBytes))
	return c.fakeStore.Scan(ctx, q)
}

// stallCluster is a fakeCluster whose Merkle trees and span streams run
// until their context ends, counting how many are still running.
type stallCluster struct {
	*fakeCluster
	running atomic.Int64
	started chan struct{}
}

func (c *stallCluster) stall(ctx context.Context) error {
	c.running.Add(1)
	defer c.running.Add(-1)
	c.started <- struct{}{}
	<-ctx.Done()
	return ctx.Err()
}

func (c *stallCluster) LocalMerkle(ctx context.Context, rg ring.Range, depth int) (*peer.Merkle, error) {
	return nil, c.stall(ctx)
}

func (c *stallCluster) ServeSpan(ctx context.Context, lo, hi uint64, w io.Writer) error {
	if _, err := w.Write([]byte("begin")); err != nil {
		return err
	}
	return c.stall(ctx)
}

// TestWorkStopsWithClient: a Merkle tree, a span stream and a backup whose
// client hangs up stop (their context ends), and a Merkle tree that runs
// past MerkleTimeout stops too.
func TestWorkStopsWithClient(t *testing.T) {
	cl := &stallCluster{fakeCluster: newFakeCluster(&fakeOps{}), started: make(chan struct{}, 10)}
	backups := atomic.Int64{}
	cfg := Config{
		Internode: mustTransport(t, transport.Config{Local: cl, MerkleTimeout: time.Hour}),
		Backup: func(ctx context.Context) (func(io.Writer) error, error) {
			return func(w io.Writer) error {
				backups.Add(1)
				defer backups.Add(-1)
				if _, err := w.Write([]byte("begin")); err != nil {
					return err
				}
				// As a checkpoint read paced by the disk: only the
				// context stops it.
				return cl.stall(ctx)
			}, nil
		},
	}
	ln := listenTCP(t)
	startServer(t, cfg, newFakeStore(), cl, ln)
	for _, target := range []string{"/internal/merkle?start=0&end=0&depth=4", "/internal/span?lo=0&hi=0", "/v1/admin/backup"} {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write(rawRequest("GET", target, nil)); err != nil {
			t.Fatal(err)
		}
		<-cl.started
		c.Close()
		wait.For(t, time.Minute, func() bool { return cl.running.Load() == 0 && backups.Load() == 0 }, target+" to stop after its client left")
	}

	// A deadline, with the client still there.
	cl2 := &stallCluster{fakeCluster: newFakeCluster(&fakeOps{}), started: make(chan struct{}, 10)}
	ln2 := fasthttputil.NewInmemoryListener()
	startServer(t, Config{Internode: mustTransport(t, transport.Config{Local: cl2, MerkleTimeout: 50 * time.Millisecond})}, newFakeStore(), cl2, ln2)
	c, err := ln2.Dial()
	if err != nil {
		t.Fatal(err)
	}
	resp := roundTripConn(t, c, rawRequest("GET", "/internal/merkle?start=0&end=0&depth=4", nil), false)
	if resp.StatusCode() < 500 {
		t.Errorf("merkle past its deadline: %d, want 5xx", resp.StatusCode())
	}
}
