package httpd

import (
	"bytes"
	"errors"
	"log/slog"
	"math"
	"net"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
	"golang.org/x/time/rate"

	"github.com/ringkv/ringkv/peer/kv"
)

// Limits bound what one client can make a node do: hold its connections,
// spend its requests, fill its memory with scans. The zero value of every
// field means its default (ensureDefaults); RateLimit 0 means no rate limit.
type Limits struct {
	// MaxConns caps the connections served at once, all clients together
	// (fasthttp's Server.Concurrency); one more is answered 503 and
	// closed. The default is DefaultMaxConns; cmd/ derives its flag
	// default from the file-descriptor limit.
	MaxConns int
	// MaxConnsPerIP caps the connections from one IP address, loopback
	// included (fasthttp's MaxConnsPerIP); one more is answered 429 and
	// closed. The default is DefaultMaxConnsPerIP; negative means none.
	MaxConnsPerIP int
	// RateLimit is the requests per second a client may make, as a token
	// bucket of RateBurst; past it a request is answered 429 with
	// Retry-After. 0, the default, means no limit.
	RateLimit float64
	// RateBurst is the bucket's size. The default is RateLimit rounded up
	// (at least 1).
	RateBurst int
	// RateKey names the client a request is counted against; "" exempts
	// the request. It runs before routing, so it must derive the name
	// from the request itself. nil, the default, counts a request with a
	// credential Config.Auth knows (a bearer token, a verified client
	// certificate) against that credential, wherever it comes from, and
	// any other against its IP address (RateKeyIP), exempting the
	// internode routes (/internal/...), which peers call far more often
	// than any client.
	RateKey func(ctx *fasthttp.RequestCtx) string
	// RateClients bounds how many clients' buckets are kept; the least
	// recently seen are forgotten (and start afresh). The default is 65536.
	RateClients int
	// MaxScanBytes caps one scan answer: keys and values of a page stop
	// once they reach it, and next is set so that the client continues.
	// One item always fits, so a page holds at least one. The default is
	// DefaultMaxScanBytes.
	MaxScanBytes int
	// MaxConcurrentScans caps the client scans (GET /v1/kv) a node runs
	// at once; one more waits up to 250ms for a slot, then is answered
	// 429. (Internode scans have slots of their own: peer/transport's
	// Config.MaxConcurrentScans.) The default is max(2, GOMAXPROCS): a
	// scan of a sparse prefix reads the whole store, so more at once than
	// cores starve the other requests.
	MaxConcurrentScans int
}

// Defaults of Limits, as documented on its fields.
const (
	DefaultMaxConns      = 10000
	DefaultMaxConnsPerIP = 1000
	DefaultRateClients   = 1 << 16
	DefaultMaxScanBytes  = kv.DefaultMaxScanBytes
)

// DefaultMaxConcurrentScans returns the default of MaxConcurrentScans.
func DefaultMaxConcurrentScans() int { return max(2, runtime.GOMAXPROCS(0)) }

func (l *Limits) ensureDefaults() {
	if l.MaxConns <= 0 {
		l.MaxConns = DefaultMaxConns
	}
	if l.MaxConnsPerIP == 0 {
		l.MaxConnsPerIP = DefaultMaxConnsPerIP
	}
	if l.RateLimit < 0 {
		l.RateLimit = 0
	}
	if l.RateBurst <= 0 {
		l.RateBurst = max(1, int(math.Ceil(l.RateLimit)))
	}
	if l.RateClients <= 0 {
		l.RateClients = DefaultRateClients
	}
	if l.MaxScanBytes <= 0 {
		l.MaxScanBytes = DefaultMaxScanBytes
	}
	if l.MaxConcurrentScans <= 0 {
		l.MaxConcurrentScans = DefaultMaxConcurrentScans()
	}
}

// maxConnsPerIP is MaxConnsPerIP as fasthttp takes it: 0 for none.
func (l *Limits) maxConnsPerIP() int { return max(0, l.MaxConnsPerIP) }

// RateKeyIP is the default Limits.RateKey: the client's IP address, and ""
// (exempt) for the internode routes.
func RateKeyIP(ctx *fasthttp.RequestCtx) string {
	if bytes.HasPrefix(ctx.URI().PathOriginal(), []byte("/internal/")) {
		return ""
	}
	return ctx.RemoteIP().String()
}

// rateKeyOfCredential is the default RateKey: the credential of the
// request if Config.Auth knows it, else RateKeyIP. A token is named by
// its hash, never itself.
func (s *Server) rateKeyOfCredential(ctx *fasthttp.RequestCtx) string {
	if a := s.cfg.Auth; a != nil && !bytes.HasPrefix(ctx.URI().PathOriginal(), []byte("/internal/")) {
		if id, ok := a.identify(ctx); ok && id != nil {
			// Stable across reloads of the file, unlike its line numbers.
			if id.cn != "" {
				return "cn:" + id.cn
			}
			return "token:" + string(id.hash[:])
		}
	}
	return RateKeyIP(ctx)
}

// limiter holds what the limits need at run time.
type limiter struct {
	scans        chan struct{} // slots, one per scan running
	rate         *rateLimiter  // nil without a rate limit
	acceptErrors prometheus.Counter
	rejected     *prometheus.CounterVec // by reason
}

func newLimiter(l Limits, reg prometheus.Registerer) (*limiter, error) {
	lim := &limiter{
		scans: make(chan struct{}, l.MaxConcurrentScans),
		acceptErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ringkv_http_accept_errors_total",
			Help: "Errors accepting a connection (EMFILE, ENFILE, ...), each retried after a backoff, since start.",
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ringkv_http_limited_total",
			Help: "Requests refused by a limit (reason rate or scans), or stopped because their client hung up (client_gone), since start.",
		}, []string{"reason"}),
	}
	if l.RateLimit > 0 {
		lim.rate = newRateLimiter(rate.Limit(l.RateLimit), l.RateBurst, l.RateClients)
	}
	for _, c := range []prometheus.Collector{lim.acceptErrors, lim.rejected} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return lim, nil
}

// limitRequests wraps h with the rate limit, when there is one.
func (s *Server) limitRequests(h fasthttp.RequestHandler) fasthttp.RequestHandler {
	if s.lim.rate == nil {
		return h
	}
	key := s.cfg.Limits.RateKey
	if key == nil {
		key = s.rateKeyOfCredential
	}
	return func(ctx *fasthttp.RequestCtx) {
		k := key(ctx)
		if k == "" {
			h(ctx)
			return
		}
		if wait, ok := s.lim.rate.allow(k, time.Now()); !ok {
			s.lim.rejected.WithLabelValues("rate").Inc()
			tooMany(ctx, wait, "request rate above "+strconv.FormatFloat(s.cfg.Limits.RateLimit, 'g', -1, 64)+" per second for this client")
			o := s.classify(ctx, ctx.URI().PathOriginal())
			s.m.observe(o, fasthttp.StatusTooManyRequests, 0)
			return
		}
		h(ctx)
	}
}

// tooMany answers 429 with a Retry-After of wait, in whole seconds (at
// least 1, as the header cannot say less).
func tooMany(ctx *fasthttp.RequestCtx, wait time.Duration, msg string) {
	secs := max(1, int64(math.Ceil(wait.Seconds())))
	writeError(ctx, fasthttp.StatusTooManyRequests, msg)
	ctx.Response.Header.Set(fasthttp.HeaderRetryAfter, strconv.FormatInt(secs, 10))
}

// rateLimiter keeps a token bucket per client, at most max of them: two
// generations of maps, the older dropped when the newer fills, so that
// clients seen recently keep their buckets and memory stays bounded
// whatever the number of clients.
type rateLimiter struct {
	limit rate.Limit
	burst int
	max   int
	mu    sync.Mutex // protects cur and prev
	cur   map[string]*rate.Limiter
	prev  map[string]*rate.Limiter
}

func newRateLimiter(limit rate.Limit, burst, maxClients int) *rateLimiter {
	return &rateLimiter{limit: limit, burst: burst, max: max(2, maxClients), cur: map[string]*rate.Limiter{}}
}

// allow takes a token of key's bucket at now, or reports how long until
// one is there.
func (r *rateLimiter) allow(key string, now time.Time) (wait time.Duration, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := r.cur[key]
	if l == nil {
		if l = r.prev[key]; l == nil {
			l = rate.NewLimiter(r.limit, r.burst)
		}
		if len(r.cur) >= r.max/2 {
			r.prev, r.cur = r.cur, make(map[string]*rate.Limiter, r.max/2)
		}
		r.cur[key] = l
	}
	res := l.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return d, false
	}
	return 0, true
}

// clients returns how many buckets are kept.
func (r *rateLimiter) clients() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.cur) + len(r.prev)
}

// scanQueueWait is how long a client scan waits for a slot before its
// 429: a dense-prefix page takes a millisecond or two, so short scans
// queue behind each other rather than fail, while scans that hold their
// slots (sparse prefixes read the whole store) still turn the rest away
// promptly.
const scanQueueWait = 250 * time.Millisecond

// acquireScan takes a client scan slot, waiting up to scanQueueWait, or
// answers 429 and reports false. The caller releases it with releaseScan.
func (s *Server) acquireScan(ctx *fasthttp.RequestCtx) bool {
	if s.acquireSlot(s.lim.scans, scanQueueWait) {
		return true
	}
	tooMany(ctx, time.Second, "this node runs "+strconv.Itoa(cap(s.lim.scans))+" scans at once already; retry later")
	return false
}

func (s *Server) releaseScan() { <-s.lim.scans }

// acquireSlot takes a slot of slots, waiting at most wait for one; a
// refusal is counted.
func (s *Server) acquireSlot(slots chan struct{}, wait time.Duration) bool {
	select {
	case slots <- struct{}{}:
		return true
	default:
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case slots <- struct{}{}:
		return true
	case <-t.C:
	case <-s.storeCtx.Done():
		return false
	}
	s.lim.rejected.WithLabelValues("scans").Inc()
	return false
}

// Accept backoff bounds, as net/http's Server.Serve.
const (
	acceptBackoffMin = 5 * time.Millisecond
	acceptBackoffMax = time.Second
	// acceptLogEvery is the shortest time between two accept error lines.
	acceptLogEvery = 5 * time.Second
)

// retryListener retries failed Accepts with a backoff instead of returning
// the error: fasthttp's Serve returns on any accept error but a timeout,
// so one EMFILE (a client holding every file descriptor) would stop the
// server for good. Only closing the listener ends Accept.
type retryListener struct {
	net.Listener
	lg       *slog.Logger
	errors   prometheus.Counter
	done     chan struct{}
	once     sync.Once
	failures atomic.Int64 // accept errors since the last line logged
	lastLog  atomic.Int64 // unix nanos of the last line logged
}

func newRetryListener(ln net.Listener, lg *slog.Logger, errs prometheus.Counter) *retryListener {
	return &retryListener{Listener: ln, lg: lg, errors: errs, done: make(chan struct{})}
}

func (l *retryListener) Accept() (net.Conn, error) {
	var delay time.Duration
	for {
		c, err := l.Listener.Accept()
		if err == nil {
			return c, nil
		}
		select {
		case <-l.done:
			// Closed on purpose: say so, whatever the failed Accept
			// reported (Serve ends quietly only on net.ErrClosed).
			return nil, net.ErrClosed
		default:
		}
		if errors.Is(err, net.ErrClosed) {
			return nil, err
		}
		// Anything else (EMFILE, ENFILE, ENOBUFS, ECONNABORTED, ...) is
		// taken as temporary: the next Accept may well succeed.
		l.errors.Inc()
		n := l.failures.Add(1)
		if now := time.Now().UnixNano(); now-l.lastLog.Load() >= int64(acceptLogEvery) {
			l.lastLog.Store(now)
			l.failures.Store(0)
			l.lg.Warn("cannot accept a connection; retrying", "err", err, "errors_since_last_logged", n)
		}
		delay = min(max(2*delay, acceptBackoffMin), acceptBackoffMax)
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-l.done:
			t.Stop()
			return nil, net.ErrClosed
		}
	}
}

func (l *retryListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}
