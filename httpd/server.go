package httpd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
)

// ErrServerClosed is returned by Serve and ListenAndServe once Shutdown has
// been called.
var ErrServerClosed = errors.New("httpd: server closed")

// Server serves ringkv's HTTP API over fasthttp: the client API, the
// go-kvstore compatibility routes, and the operations endpoints; it
// mounts the internode protocol (Config.Internode) under /internal/. It is safe
// for concurrent use. Several Servers may run in one process, each with its
// own Registry.
type Server struct {
	cfg   Config
	store Store
	ops   Ops
	// cluster is ops as a Cluster, or nil.
	cluster Cluster
	lg      *slog.Logger
	m       *metrics
	lim     *limiter
	srv     *fasthttp.Server
	// peerSrv serves the peer listener (ServePeer).
	peerSrv *fasthttp.Server
	// internodeHandler is Config.Internode's handler, or nil.
	internodeHandler fasthttp.RequestHandler

	handler        fasthttp.RequestHandler
	metricsHandler fasthttp.RequestHandler
	statusPage     *statusState
	healthOK       []byte // the /healthz body, built once
	started        time.Time

	// storeCtx is the context of every Store and Ops call. It is not the
	// request's RequestCtx: fasthttp closes that one's Done channel as soon
	// as Shutdown begins, which would abort the very in-flight requests a
	// graceful shutdown means to let finish. Shutdown cancels storeCtx only
	// once it has stopped waiting for them.
	storeCtx    context.Context
	cancelStore context.CancelFunc

	// closing is set when Shutdown begins; /healthz then answers 503 so
	// that load balancers stop sending traffic.
	closing atomic.Bool
	// backupBusy is set while a GET /v1/admin/backup holds a checkpoint.
	backupBusy atomic.Bool

	mu struct {
		sync.Mutex
		closed bool
		lns    []net.Listener // listeners passed to Serve
	}

	// keyBufs holds *[]byte buffers for keys that need percent-decoding:
	// a Store call makes its arguments escape, so a stack buffer would be
	// a heap allocation per request.
	keyBufs sync.Pool
}

// New returns a Server for cfg (defaults filled in) that serves store and
// ops. It registers the request metrics and ringkv_build_info on
// cfg.Registry. Both store and ops are required.
func New(cfg Config, store Store, ops Ops) (*Server, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if store == nil || ops == nil {
		return nil, errors.New("httpd: New needs a Store and an Ops")
	}
	m, err := newMetrics(cfg.Registry)
	if err != nil {
		return nil, fmt.Errorf("httpd: %w", err)
	}
	lim, err := newLimiter(cfg.Limits, cfg.Registry)
	if err != nil {
		return nil, fmt.Errorf("httpd: %w", err)
	}
	if err := registerBuildInfo(cfg.Registry, cfg.Build); err != nil {
		return nil, fmt.Errorf("httpd: %w", err)
	}
	s := &Server{
		cfg:        cfg,
		store:      store,
		ops:        ops,
		cluster:    clusterOf(ops),
		lg:         cfg.Logger,
		m:          m,
		lim:        lim,
		statusPage: &statusState{},
		started:    time.Now(),
		metricsHandler: fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{
			ErrorLog:      slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelError),
			ErrorHandling: promhttp.ContinueOnError,
		})),
	}
	s.storeCtx, s.cancelStore = context.WithCancel(context.Background())
	s.keyBufs.New = func() any { b := make([]byte, 0, 256); return &b }
	s.healthOK = appendJSONString([]byte(`{"status":"ok","node":`), cfg.NodeID)
	s.healthOK = append(s.healthOK, "}\n"...)
	if cfg.Internode != nil {
		// Its refusals count with the server's own.
		s.internodeHandler = cfg.Internode.Handler(func(reason string) { lim.rejected.WithLabelValues(reason).Inc() })
	}
	// Without a peer listener of its own, the client listener serves
	// the internode routes too.
	client := bothPorts
	if cfg.SeparatePeer {
		client = clientPort
	}
	// The peer listener is not rate-limited: it serves only peers.
	s.handler = s.limitRequests(s.handlerOn(client))
	s.srv = s.newFastServer(s.handler)
	s.peerSrv = s.newFastServer(s.handlerOn(peerPort))
	return s, nil
}

// newFastServer returns the fasthttp server of one listener of s.
func (s *Server) newFastServer(h fasthttp.RequestHandler) *fasthttp.Server {
	cfg := &s.cfg
	return &fasthttp.Server{
		Handler:      h,
		ErrorHandler: s.serveParseError,
		Name:         "ringkv",
		// A MaxValueSize value, raw or JSON-escaped; the routes enforce
		// MaxValueSize exactly and answer 413 themselves.
		MaxRequestBodySize:           cfg.maxRequestBodySize(),
		ReadBufferSize:               cfg.readBufferSize(),
		DisablePreParseMultipartForm: true,
		NoDefaultContentType:         true,
		ReadTimeout:                  cfg.ReadTimeout,
		WriteTimeout:                 cfg.WriteTimeout,
		IdleTimeout:                  cfg.IdleTimeout,
		// Keeping per-connection buffers costs memory per idle connection
		// but saves a pool round trip per request.
		ReduceMemoryUsage: false,
		CloseOnShutdown:   true,
		Logger:            fasthttpLogger{cfg.Logger},
		Concurrency:       cfg.Limits.MaxConns,
		MaxConnsPerIP:     cfg.Limits.maxConnsPerIP(),
	}
}

// Handler returns the request handler of s, for tests and fuzzing that
// drive it without a listener.
func (s *Server) Handler() fasthttp.RequestHandler { return s.handler }

// Serve serves HTTP on ln (HTTPS with Config.TLS) until Shutdown, which
// closes ln, then returns nil. A failed Accept (EMFILE, ...) is retried
// after a backoff, never returned. It returns ErrServerClosed (and closes
// ln) if Shutdown was called before.
func (s *Server) Serve(ln net.Listener) error {
	return s.serve(s.srv, ln, s.cfg.TLS)
}

// ServePeer serves the internode routes on ln (HTTPS with
// Config.PeerTLS), as Serve does the client API: the peer listener of
// Config.SeparatePeer.
func (s *Server) ServePeer(ln net.Listener) error {
	return s.serve(s.peerSrv, ln, s.cfg.PeerTLS)
}

func (s *Server) serve(srv *fasthttp.Server, ln net.Listener, tc *tls.Config) error {
	ln = newRetryListener(ln, s.lg, s.lim.acceptErrors)
	s.mu.Lock()
	if s.mu.closed {
		s.mu.Unlock()
		_ = ln.Close()
		return ErrServerClosed
	}
	s.mu.lns = append(s.mu.lns, ln)
	s.mu.Unlock()
	if tc != nil {
		// The handshake runs on the connection's own goroutine, on its
		// first read, so a slow client holds up no one else.
		ln = tls.NewListener(ln, tc)
	}
	return srv.Serve(ln)
}

// ListenAndServe listens on cfg.Addr and serves until Shutdown.
func (s *Server) ListenAndServe() error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("cannot listen on %s: %w", s.cfg.Addr, err)
	}
	return s.Serve(ln)
}

// Shutdown stops accepting connections, closes idle ones, and waits until
// the requests in flight have been answered or ctx is done, whichever is
// first; /healthz answers 503 from the moment it is called. When it
// returns, the Store calls of any request still running are cancelled
// (they answer 503). It returns ctx.Err() if it stopped waiting early.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closing.Store(true)
	s.mu.Lock()
	s.mu.closed = true
	lns := s.mu.lns
	s.mu.lns = nil
	s.mu.Unlock()

	// Both servers at once: either may hold requests until ctx ends.
	peerErr := make(chan error, 1)
	go func() { peerErr <- s.peerSrv.ShutdownWithContext(ctx) }()
	err := s.srv.ShutdownWithContext(ctx)
	if perr := <-peerErr; err == nil {
		err = perr
	}
	// NB: a listener whose Serve call had not yet reached fasthttp when
	// Shutdown began is unknown to fasthttp; close it here. Closing one
	// that fasthttp closed already fails harmlessly.
	for _, ln := range lns {
		_ = ln.Close()
	}
	s.cancelStore()
	return err
}

// serveParseError answers a request that fasthttp could not read or parse
// (the ErrorHandler): 413 for a body over the limit, 431 for a header that
// does not fit the read buffer, 408 for a read timeout, 400 otherwise.
// fasthttp closes the connection afterwards.
func (s *Server) serveParseError(ctx *fasthttp.RequestCtx, err error) {
	code := fasthttp.StatusBadRequest
	msg := "cannot parse request: " + err.Error()
	var small *fasthttp.ErrSmallBuffer
	var netErr net.Error
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		code = fasthttp.StatusRequestEntityTooLarge
		msg = fmt.Sprintf("request body larger than %d bytes", s.cfg.maxRequestBodySize())
	case errors.As(err, &small):
		code = fasthttp.StatusRequestHeaderFieldsTooLarge
		msg = "request header too large"
	case errors.As(err, &netErr) && netErr.Timeout():
		code = fasthttp.StatusRequestTimeout
		msg = "timed out reading the request"
	}
	// fasthttp's messages go on to quote its whole read buffer; the
	// client sent it, so keep only the diagnosis.
	if i := strings.Index(msg, ": buffer size="); i >= 0 {
		msg = msg[:i]
	}
	if len(msg) > 256 {
		msg = msg[:256] + "..."
	}
	ctx.Response.ResetBody()
	writeError(ctx, code, msg)
	s.m.observe(opInvalid, code, 0)
}

// fasthttpLogger sends fasthttp's own messages to slog. Most are about a
// client's broken request, already answered (4xx) and counted under
// op="invalid"; they go to Debug, so that a client sending garbage cannot
// flood the log. The rest (accept errors, ...) stay warnings.
type fasthttpLogger struct{ lg *slog.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	// fasthttp quotes up to its whole read buffer.
	if len(msg) > 512 {
		msg = msg[:512] + "..."
	}
	level := slog.LevelWarn
	if strings.HasPrefix(msg, "error when serving connection") {
		level = slog.LevelDebug
	}
	l.lg.Log(context.Background(), level, msg, "component", "fasthttp")
}

func clusterOf(ops Ops) Cluster {
	c, _ := ops.(Cluster)
	return c
}
