package httpd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringkv/ringkv/peer/keyring"
	"github.com/ringkv/ringkv/peer/kv"
)

// Config configures the HTTP server. The zero value of every field but
// Registry means its default; EnsureDefaults fills them in.
type Config struct {
	// Addr is the TCP address ListenAndServe listens on.
	// The default is "127.0.0.1:8080".
	Addr string
	// MaxValueSize is the largest value, in bytes, that a write accepts;
	// larger ones get 413 and nothing is written. The default is 1 MiB.
	MaxValueSize int
	// MaxKeySize is the longest key, in bytes after percent-decoding, that
	// any request accepts; longer ones get 400. The default, and the
	// largest value Validate accepts, is kv.MaxKeySize: the coordinator
	// refuses longer keys, so a larger limit here would turn a client's
	// mistake into a 500.
	MaxKeySize int
	// ReadTimeout bounds reading one whole request, body included, so that
	// a slow client cannot hold a connection forever. The default is 30s.
	ReadTimeout time.Duration
	// WriteTimeout bounds writing one response. The default is 30s.
	WriteTimeout time.Duration
	// IdleTimeout is how long a keep-alive connection may wait for its next
	// request. The default is 2m.
	IdleTimeout time.Duration
	// Pprof serves /debug/pprof/ (fasthttp's pprofhandler) when true;
	// otherwise those paths answer 404. The default is false: the flag
	// default of --pprof lives in cmd/.
	Pprof bool
	// Registry is required. httpd registers its request metrics on it and
	// serves it at /metrics; the caller registers the engine's collectors on
	// the same registry. Each Server needs its own registry, since the
	// metric names would collide.
	Registry *prometheus.Registry
	// Build names the binary's build, exported as ringkv_build_info
	// (see BuildInfo). The default is empty labels.
	Build BuildInfo
	// Logger receives server errors (5xx causes, panics, fasthttp's own
	// messages). nil means slog.Default().
	Logger *slog.Logger
	// NodeID names this node on the status page and in /healthz.
	// The default is "" (shown as is).
	NodeID string
	// Secrets, when it holds a secret, makes /add-node's target prove
	// membership with the Join key before it is called, and
	// /internal/hello answers such proofs (hello.go). (The internode
	// protocol's own credential is Internode's.) The default is none.
	Secrets *keyring.Keyring
	// Internode is the internode protocol that the server mounts under
	// /internal/ (peer/transport.Transport); it also decides which GET
	// /v1/cluster reads are peers'. nil answers /internal/ with 501.
	Internode Internode
	// TLS, when set, makes Serve serve TLS (LoadNodeTLS builds it).
	TLS *tls.Config
	// PeerTLS, when set, makes ServePeer serve TLS.
	PeerTLS *tls.Config
	// SeparatePeer says that internode calls come to their own listener
	// (ServePeer): the listener of Serve then answers /internal/ with 404.
	SeparatePeer bool
	// Backup, when set, serves GET /v1/admin/backup: it takes a consistent
	// copy of the node's store and returns the function that streams it
	// (called once, then done with the copy). An error from Backup itself
	// is answered 500; once streaming has begun, an error can only cut
	// the stream short, which the archive's trailing manifest reveals.
	// nil answers 501.
	Backup func(ctx context.Context) (stream func(w io.Writer) error, err error)

	// Auth, when set, authenticates clients (bearer tokens, verified TLS
	// client certificates) and gives every operation a required role (see
	// auth.go and route.go's need). nil serves everything to anyone, as a
	// node without --auth-file does. The caller owns it (Close).
	Auth *Auth
	// MetricsOpen serves /metrics without a credential although Auth is
	// set (--metrics-open); otherwise it needs the metrics or admin role.
	MetricsOpen bool
	// StatusOpen serves the status page, GET /, its data, GET
	// /v1/overview, and /v1/lsm without a credential although Auth is
	// set (--status-open); otherwise / and /v1/overview need admin and
	// /v1/lsm read.
	StatusOpen bool
	// KVStoreAddNodeGet accepts GET /add-node as go-kvstore sent it
	// (--kvstore-add-node-get). The default is POST only: a GET can be
	// fired by an <img> tag.
	KVStoreAddNodeGet bool
	// JoinTLS, when set, is the client TLS configuration /add-node asks
	// its target's membership proof with (NodeTLS.Transport, as internode
	// calls): over HTTPS, verifying the target's certificate. nil asks
	// over plain HTTP.
	JoinTLS *tls.Config
	// Cmdline is the command line /debug/pprof/cmdline shows, with the
	// values of secret and token flags replaced. nil means os.Args.
	Cmdline []string
	// Limits bound connections, request rates and scans (see Limits).
	Limits Limits
	// Status configures the status page and GET /v1/overview (see
	// StatusConfig).
	Status StatusConfig
}

// Defaults of Config, as documented on its fields.
const (
	DefaultAddr         = "127.0.0.1:8080"
	DefaultMaxValueSize = 1 << 20
	DefaultMaxKeySize   = kv.MaxKeySize
	DefaultReadTimeout  = 30 * time.Second
	DefaultWriteTimeout = 30 * time.Second
	DefaultIdleTimeout  = 2 * time.Minute
)

// EnsureDefaults replaces every zero (or negative) field but Registry with
// its default.
func (c *Config) EnsureDefaults() {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.MaxValueSize <= 0 {
		c.MaxValueSize = DefaultMaxValueSize
	}
	if c.MaxKeySize <= 0 {
		c.MaxKeySize = DefaultMaxKeySize
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = DefaultReadTimeout
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	c.Limits.ensureDefaults()
	c.Status.ensureDefaults()
}

// maxBodySizeLimit keeps maxRequestBodySize within an int32-sized buffer,
// whatever MaxValueSize says.
const maxBodySizeLimit = 1 << 30

// Validate reports a Config that New cannot serve with. It expects
// EnsureDefaults to have run.
func (c *Config) Validate() error {
	if c.Registry == nil {
		return errors.New("httpd: Config.Registry is required")
	}
	if c.MaxValueSize > maxBodySizeLimit/4 {
		return fmt.Errorf("httpd: MaxValueSize %d is above the limit of %d", c.MaxValueSize, maxBodySizeLimit/4)
	}
	if c.MaxKeySize > kv.MaxKeySize {
		return fmt.Errorf("httpd: MaxKeySize %d is above the store's limit of %d", c.MaxKeySize, kv.MaxKeySize)
	}
	return nil
}

// maxRequestBodySize is the body limit given to fasthttp: room for a
// batch (maxBatchBodySize), which is more than a MaxValueSize value sent
// to /v1/kv or JSON-escaped to /kvstore needs. The routes then enforce
// their own limits exactly, answering 413 with a JSON body.
func (c *Config) maxRequestBodySize() int {
	return c.maxBatchBodySize()
}

// maxBatchBodySize bounds the body of POST /v1/batch: 4 × MaxValueSize,
// and room for the framing, keys and options of its items.
func (c *Config) maxBatchBodySize() int {
	return 4*c.MaxValueSize + batchBodySlack
}

// readBufferSize bounds a request's header, and so its request line:
// a MaxKeySize key, percent-encoded (3 bytes a byte), must fit beside
// ordinary headers.
func (c *Config) readBufferSize() int {
	return max(4096, 3*c.MaxKeySize+8192)
}
