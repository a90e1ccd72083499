package transport

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/ringkv/ringkv/peer"
	"github.com/ringkv/ringkv/peer/keyring"
	"github.com/ringkv/ringkv/peer/kv"
)

// Config configures a Transport: the client fields, then the server's.
// The zero value of every field means its default (EnsureDefaults).
type Config struct {
	// NodeID is this node's id, which every call names (NodeHeader).
	NodeID string
	// Secrets, when it holds a secret, signs every internode call with
	// its primary (sign.go), and makes the handler refuse (401) a call
	// without a signature by one of its keys. The default is none: calls
	// go unsigned and the handler takes unsigned calls.
	Secrets *keyring.Keyring
	// TLS, when set, makes calls HTTPS with it (httpd.NodeTLS.Transport).
	TLS *tls.Config
	// PeerAddr, when set, maps a member's HTTP address to the address
	// internode calls go to (its --peer-addr); "" keeps the address. The
	// default is the identity.
	PeerAddr func(httpAddr string) string
	// Senders is how many apply requests may be in flight to one peer;
	// replica writes that arrive meanwhile queue and go out together in
	// the next request, so the peer does one fsync for them all (as
	// Pebble's own WAL has one fsync in flight). The default value is 1:
	// on the 2-core bench machine, 3-node PUTs ran at 10.1k-10.6k/s with
	// one sender, 8.9k-9.4k with two and 6.5k-7k with four.
	Senders int
	// MaxConnsPerHost bounds connections to one peer; calls past it wait
	// for a free connection until their deadline. The default is 64.
	MaxConnsPerHost int
	// MaxBatchBytes bounds the body of one apply request: calls are
	// batched, and a large call split, up to this size; one mutation
	// larger than it goes alone. A node accepts bodies up to
	// 2*--max-value-size + 64KiB, so ringkv serve sets --max-value-size +
	// 64KiB, which holds for every node with the same --max-value-size.
	// The default, 63KiB, fits any node.
	MaxBatchBytes int
	// MaxQueued bounds the apply calls waiting for one peer. Past it,
	// calls fail at once (the coordinator keeps hints) rather than hold
	// the requests that made them. The default is 8192.
	MaxQueued int

	// Local is the node the handler answers for (peer.Node.Local()). Without
	// it the handler answers 501.
	Local Local
	// RequirePeerCert makes the handler refuse (401) a call without a
	// TLS client certificate (the listener's TLS config has verified it
	// against the cluster CA) that names the node the call claims to
	// come from (NodeHeader), as its Common Name or a DNS name.
	RequirePeerCert bool
	// SignatureWindow is how far a signed call's time may be from this
	// node's clock. The default is DefaultSignatureWindow.
	SignatureWindow time.Duration
	// WriteTimeout bounds a range stream's wait for its reader: the
	// stream is cut once a write has waited that long. The default is
	// DefaultWriteTimeout, the HTTP server's own.
	WriteTimeout time.Duration
	// MaxScanBytes caps one scan answer (peer.LocalScan.MaxBytes). The
	// default is kv.DefaultMaxScanBytes.
	MaxScanBytes int
	// MaxConcurrentScans caps the scans the handler runs at once for
	// other nodes; one more waits up to its coordinator's request
	// timeout for a slot, then is answered 429. The default is
	// max(2, GOMAXPROCS), as for client scans.
	MaxConcurrentScans int
	// MerkleTimeout bounds building one Merkle tree for another node.
	// The default is DefaultMerkleTimeout.
	MerkleTimeout time.Duration
	// Logger receives the handler's errors (5xx causes, streams cut
	// short). nil means slog.Default().
	Logger *slog.Logger
}

// Defaults of Config, as documented on its fields.
const (
	DefaultSenders         = 1
	DefaultMaxConnsPerHost = 64
	DefaultMaxBatchBytes   = 63 << 10
	DefaultMaxQueued       = 8192
	DefaultWriteTimeout    = 30 * time.Second
	DefaultMerkleTimeout   = 2 * time.Minute
)

// maxBatchBytesLimit bounds MaxBatchBytes: no node accepts a larger
// body (httpd caps --max-value-size so that its body limit stays below it).
const maxBatchBytesLimit = 1 << 30

// Validate reports a Config that New cannot run with, naming the field.
// It expects EnsureDefaults to have run.
func (c *Config) Validate() error {
	switch {
	case len(c.NodeID) > kv.MaxNodeIDLen:
		return fmt.Errorf("transport: NodeID is %d bytes, more than %d", len(c.NodeID), kv.MaxNodeIDLen)
	case c.MaxBatchBytes > maxBatchBytesLimit:
		return fmt.Errorf("transport: MaxBatchBytes %d is above the limit of %d", c.MaxBatchBytes, maxBatchBytesLimit)
	case c.Senders > c.MaxConnsPerHost:
		return fmt.Errorf("transport: Senders %d is above MaxConnsPerHost %d: a sender would wait for a connection", c.Senders, c.MaxConnsPerHost)
	case c.MaxScanBytes > maxBatchBytesLimit:
		return fmt.Errorf("transport: MaxScanBytes %d is above the limit of %d", c.MaxScanBytes, maxBatchBytesLimit)
	}
	return nil
}

// DefaultMaxConcurrentScans returns the default of MaxConcurrentScans.
func DefaultMaxConcurrentScans() int { return max(2, runtime.GOMAXPROCS(0)) }

// EnsureDefaults replaces every zero (or negative) field with its default.
func (c *Config) EnsureDefaults() {
	if c.Senders <= 0 {
		c.Senders = DefaultSenders
	}
	if c.MaxConnsPerHost <= 0 {
		c.MaxConnsPerHost = DefaultMaxConnsPerHost
	}
	if c.MaxBatchBytes <= 0 {
		c.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if c.MaxQueued <= 0 {
		c.MaxQueued = DefaultMaxQueued
	}
	if c.SignatureWindow <= 0 {
		c.SignatureWindow = DefaultSignatureWindow
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.MaxScanBytes <= 0 {
		c.MaxScanBytes = kv.DefaultMaxScanBytes
	}
	if c.MaxConcurrentScans <= 0 {
		c.MaxConcurrentScans = DefaultMaxConcurrentScans()
	}
	if c.MerkleTimeout <= 0 {
		c.MerkleTimeout = DefaultMerkleTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Transport is the internode protocol of one node, both ways, as etcd's
// rafthttp.Transport is: the peer.Transport its coordinator calls other
// nodes through, and the handler (Handler) that answers theirs, which
// httpd mounts under /internal/. Calls go over fasthttp: persistent
// connections, binary framed bodies (codec.go), and replica writes and
// reads to one peer batched while earlier ones are in flight, so a busy
// coordinator sends one request (and the replica does one fsync) for many
// writes, and one request for many reads. Range streams use the same
// client, their body streamed.
type Transport struct {
	cfg    Config
	client *fasthttp.Client

	// mu guards lanes and closed; calls hold it shared while they queue,
	// so once Close has set closed nothing more is queued.
	mu        sync.RWMutex
	lanes     map[laneKey]*lane
	closed    bool
	wg        sync.WaitGroup
	stop      chan struct{} // closed by Close: senders stop
	closeOnce sync.Once
	// callPool recycles calls once answered (newCall, release), so that
	// queueing one allocates nothing.
	callPool sync.Pool

	// The server side (server.go).
	scans  chan struct{}      // internode scan slots, one per scan running
	ctx    context.Context    // of every Local call; Close cancels it
	cancel context.CancelFunc //

	tlsErrs tlsErrs // the last TLS error of each peer address (tlsconn.go)
}

// New returns a Transport for cfg (defaults filled in), or Validate's
// error; Close stops its senders.
func New(cfg Config) (*Transport, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	t := &Transport{
		cfg: cfg,
		client: &fasthttp.Client{
			Name:            "ringkv-peer",
			MaxConnsPerHost: cfg.MaxConnsPerHost,
			// Past MaxConnsPerHost a call waits for a connection, bounded
			// by its own deadline (fasthttp takes the smaller).
			MaxConnWaitTimeout:            time.Minute,
			MaxIdleConnDuration:           time.Minute,
			NoDefaultUserAgentHeader:      true,
			DisableHeaderNamesNormalizing: true,
			DisablePathNormalizing:        true,
			MaxResponseBodySize:           2<<30 - 1,
			TLSConfig:                     cfg.TLS,
			// Range streams have no deadline: their reads have one of
			// spanIdle each instead (span.go).
			RetryIfErr: retryIfErr,
		},
		lanes: map[laneKey]*lane{},
		stop:  make(chan struct{}),
		scans: make(chan struct{}, cfg.MaxConcurrentScans),
	}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	t.client.DialTimeout = t.dial
	return t, nil
}

// Close stops the senders once the requests in flight are answered, and
// fails the calls still queued; calls after Close fail at once.
func (t *Transport) Close() {
	t.closeOnce.Do(func() {
		t.mu.Lock()
		t.closed = true
		close(t.stop)
		t.mu.Unlock()
		t.wg.Wait()
		for _, l := range t.lanes {
			for len(l.calls) > 0 {
				t.failCall(<-l.calls, errTransportClosed)
			}
		}
		t.client.CloseIdleConnections()
		t.cancel()
	})
}

var (
	errTransportClosed = errors.New("transport closed")
	errPeerBusy        = errors.New("too many calls queued for this peer")
)

// laneKind is what a lane carries: replica writes or point reads.
type laneKind uint8

const (
	laneApply laneKind = iota
	laneRead
)

type laneKey struct {
	addr string
	kind laneKind
}

// lane is the queue of one kind of call to one peer, and its senders.
type lane struct {
	laneKey
	calls chan *call
}

// call is one apply (ms, done) or read (key, got) waiting for its batch.
type call struct {
	ms       []peer.Mutation
	key      []byte
	size     int // bytes in the request body
	deadline time.Time
	done     func(error)
	got      func([]byte, error)
}

func (c *call) fail(err error) {
	if c.got != nil {
		c.got(nil, err)
	} else {
		c.done(err)
	}
}

// newCall returns an empty call, recycled if one is.
func (t *Transport) newCall() *call {
	if c, _ := t.callPool.Get().(*call); c != nil {
		return c
	}
	return &call{}
}

// release recycles c, once answered and out of every batch: nothing
// refers to it any more.
func (t *Transport) release(c *call) {
	*c = call{}
	t.callPool.Put(c)
}

// failCall fails c and recycles it.
func (t *Transport) failCall(c *call, err error) {
	c.fail(err)
	t.release(c)
}

// lane returns the lane to addr for kind, starting its senders the first
// time, with t.mu held shared; ok is false once t is closed (the lock is
// then released).
func (t *Transport) lane(addr string, kind laneKind) (l *lane, ok bool) {
	k := laneKey{addr, kind}
	t.mu.RLock()
	if l = t.lanes[k]; l == nil && !t.closed {
		t.mu.RUnlock()
		t.mu.Lock()
		if l = t.lanes[k]; l == nil && !t.closed {
			// A variable of its own for the senders: captured, the
			// result l would be moved to the heap on every call.
			nl := &lane{laneKey: k, calls: make(chan *call, t.cfg.MaxQueued)}
			t.lanes[k] = nl
			for range t.cfg.Senders {
				t.wg.Go(func() { t.send(nl) })
			}
			l = nl
		}
		t.mu.Unlock()
		t.mu.RLock()
	}
	if t.closed {
		t.mu.RUnlock()
		return nil, false
	}
	return l, true
}

// enqueue queues c on l, or fails it at once when l is full.
func (t *Transport) enqueue(l *lane, c *call) {
	select {
	case l.calls <- c:
	default:
		t.failCall(c, errPeerBusy)
	}
}

// Apply sends ms to addr, batched with other calls to the same peer, and
// waits for the outcome (see ApplyAsync).
func (t *Transport) Apply(ctx context.Context, addr string, ms []peer.Mutation) error {
	ch := make(chan error, 1)
	t.ApplyAsync(addr, ms, deadlineOf(ctx), func(err error) { ch <- err })
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		// The batch may still land; the caller keeps a hint, and replay
		// is idempotent.
		return ctx.Err()
	}
}

// ApplyAsync queues ms for addr, batched with other calls to the same
// peer, and returns without waiting: done is called once with the outcome,
// on a sender goroutine (so it must not block), or before ApplyAsync
// returns when the call fails at once. A call larger than MaxBatchBytes or
// MaxBatch goes in several requests; if it fails, some of them may
// have been stored (replica writes are idempotent: the caller keeps a hint
// and resends them all). ms must not change until done is called.
func (t *Transport) ApplyAsync(addr string, ms []peer.Mutation, deadline time.Time, done func(error)) {
	if len(ms) == 0 {
		done(nil)
		return
	}
	l, ok := t.lane(addr, laneApply)
	if !ok {
		done(errTransportClosed)
		return
	}
	defer t.mu.RUnlock()
	if n, size := t.chunk(ms); n == len(ms) {
		// One request, as most calls (one replica write) are: no split.
		c := t.newCall()
		c.ms, c.size, c.deadline, c.done = ms, size, deadline, done
		t.enqueue(l, c)
		return
	}
	chunks := t.split(ms)
	done = joinDone(len(chunks), done)
	for _, c := range chunks {
		c.deadline, c.done = deadline, done
		t.enqueue(l, c)
	}
}

// Read returns addr's record of key, or peer.ErrNotFound (see ReadAsync).
func (t *Transport) Read(ctx context.Context, addr string, key []byte) ([]byte, error) {
	type answer struct {
		rec []byte
		err error
	}
	ch := make(chan answer, 1)
	t.ReadAsync(addr, key, deadlineOf(ctx), func(rec []byte, err error) { ch <- answer{rec, err} })
	select {
	case a := <-ch:
		if a.err == nil && a.rec == nil {
			a.err = peer.ErrNotFound
		}
		return a.rec, a.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// ReadAsync queues a read of key on addr, batched with other reads of the
// same peer (up to MaxReadBatch keys), and returns without waiting:
// got is called once, on a sender goroutine or before ReadAsync returns,
// with the node's encoded record (nil when it has none), which the callee
// may keep, or an error. key must not change until got is called.
func (t *Transport) ReadAsync(addr string, key []byte, deadline time.Time, got func([]byte, error)) {
	l, ok := t.lane(addr, laneRead)
	if !ok {
		got(nil, errTransportClosed)
		return
	}
	defer t.mu.RUnlock()
	c := t.newCall()
	c.key, c.size, c.deadline, c.got = key, len(key)+binary.MaxVarintLen32, deadline, got
	t.enqueue(l, c)
}

// split cuts ms into calls of at most MaxBatch mutations and
// MaxBatchBytes (or one mutation).
func (t *Transport) split(ms []peer.Mutation) []*call {
	var out []*call
	for len(ms) > 0 {
		n, size := t.chunk(ms)
		c := t.newCall()
		c.ms, c.size = ms[:n], size
		out = append(out, c)
		ms = ms[n:]
	}
	return out
}

// chunk returns how many of ms (at least one) the first call of a split
// takes, and their size: at most MaxBatch mutations and MaxBatchBytes.
func (t *Transport) chunk(ms []peer.Mutation) (n, size int) {
	for n < len(ms) && n < MaxBatch {
		sz := mutationSize(ms[n])
		if n > 0 && size+sz > t.cfg.MaxBatchBytes {
			break
		}
		size += sz
		n++
	}
	return n, size
}

// joinDone returns a done for n calls that calls done once, when all n
// have finished, with the first error.
func joinDone(n int, done func(error)) func(error) {
	var mu sync.Mutex
	var first error
	return func(err error) {
		mu.Lock()
		if first == nil {
			first = err
		}
		n--
		last, err := n == 0, first
		mu.Unlock()
		if last {
			done(err)
		}
	}
}

// mutationSize is m's share of an apply body, framing included.
func mutationSize(m peer.Mutation) int { return len(m.Key) + len(m.Record) + 2*binary.MaxVarintLen32 }

// items is how many entries c adds to a batch.
func (c *call) items() int {
	if c.got != nil {
		return 1
	}
	return len(c.ms)
}

// send is one sender of l: it takes the next call, adds whatever else is
// queued while the batch stays within the lane's count limit and
// MaxBatchBytes, and sends them as one request. A call that does not fit
// starts the next batch.
func (t *Transport) send(l *lane) {
	s := &sender{t: t, l: l, maxItems: MaxBatch, path: "/internal/apply"}
	if l.kind == laneRead {
		s.maxItems, s.path = MaxReadBatch, "/internal/read"
	}
	for s.gather() {
		if deadline := s.keepLive(); len(s.live) > 0 {
			if l.kind == laneRead {
				s.sendReads(deadline)
			} else {
				s.sendApplies(deadline)
			}
		}
		clear(s.batch)
		clear(s.live)
		if cap(s.body) > 4<<20 {
			s.body = nil
		}
	}
}

// sender is one sender goroutine's state: its lane and the buffers it
// reuses from batch to batch.
type sender struct {
	t           *Transport
	l           *lane
	maxItems    int
	path        string
	batch, live []*call
	carry       *call // the call that did not fit the last batch
	body        []byte
	ms          []peer.Mutation
	keys        [][]byte
}

// gather waits for the next call (false once the transport stops) and
// adds whatever else is queued while the batch stays within the lane's
// count limit and MaxBatchBytes; a call that does not fit is carried to
// the next batch.
func (s *sender) gather() bool {
	s.batch = s.batch[:0]
	if s.carry != nil {
		s.batch, s.carry = append(s.batch, s.carry), nil
	} else {
		select {
		case <-s.t.stop:
			return false
		case c := <-s.l.calls:
			s.batch = append(s.batch, c)
		}
	}
	n, size := s.batch[0].items(), s.batch[0].size
	for n < s.maxItems && size < s.t.cfg.MaxBatchBytes {
		select {
		case c := <-s.l.calls:
			if n+c.items() > s.maxItems || size+c.size > s.t.cfg.MaxBatchBytes {
				s.carry = c
				return true
			}
			s.batch = append(s.batch, c)
			n += c.items()
			size += c.size
		default:
			return true
		}
	}
	return true
}

// keepLive answers the calls of the batch past their deadline and keeps
// the others in s.live; it returns the latest of their deadlines.
func (s *sender) keepLive() time.Time {
	now := time.Now()
	var deadline time.Time
	s.live = s.live[:0]
	for _, c := range s.batch {
		if now.Before(c.deadline) {
			s.live = append(s.live, c)
			deadline = later(deadline, c.deadline)
		} else {
			s.t.failCall(c, context.DeadlineExceeded)
		}
	}
	return deadline
}

// sendReads sends the live reads as one request and answers each.
func (s *sender) sendReads(deadline time.Time) {
	s.keys = s.keys[:0]
	for _, c := range s.live {
		s.keys = append(s.keys, c.key)
	}
	s.body = AppendRead(s.body[:0], s.keys)
	var out []byte // the callees keep the records: a new buffer
	err := s.t.post(s.l.addr, s.path, s.body, deadline, fasthttp.StatusOK, &out)
	var recs [][]byte
	if err == nil {
		recs, err = DecodeRecords(out, len(s.keys))
	}
	for i, c := range s.live {
		switch {
		case err != nil:
			c.got(nil, err)
		case IsFailed(recs[i]):
			c.got(nil, &peer.ReplicaReadError{Msg: FailedMessage(recs[i])})
		case IsPending(recs[i]):
			// DecodeRecords has checked it.
			rec, from, _ := DecodePending(recs[i])
			c.got(rec, &peer.PendingError{From: from})
		default:
			c.got(recs[i], nil)
		}
		s.t.release(c)
	}
	clear(s.keys)
}

// sendApplies sends the live applies as one request and answers each.
func (s *sender) sendApplies(deadline time.Time) {
	s.ms = s.ms[:0]
	for _, c := range s.live {
		s.ms = append(s.ms, c.ms...)
	}
	s.body = AppendApply(s.body[:0], s.ms)
	err := s.t.post(s.l.addr, s.path, s.body, deadline, fasthttp.StatusNoContent, nil)
	for _, c := range s.live {
		c.done(err)
		s.t.release(c)
	}
	clear(s.ms) // drop references to the callers' buffers
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// post sends body to addr's path and checks the status; with out, the
// response body is appended to *out.
func (t *Transport) post(addr, path string, body []byte, deadline time.Time, want int, out *[]byte) error {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(fasthttp.MethodPost)
	var u [128]byte
	req.SetRequestURIBytes(t.appendURL(u[:0], addr, path))
	t.sign(&req.Header, fasthttp.MethodPost, path, body)
	req.SetBodyRaw(body)
	if err := t.client.DoDeadline(req, resp, deadline); err != nil {
		return fmt.Errorf("%s%s: %w", addr, path, t.explain(addr, err))
	}
	code := resp.StatusCode()
	if code == fasthttp.StatusConflict && (path == "/internal/apply" || path == "/internal/paxos") {
		return fmt.Errorf("%s%s: %w: %s", addr, path, peer.ErrClockOffset, clip(resp.Body()))
	}
	if code == fasthttp.StatusForbidden && (path == "/internal/apply" || path == "/internal/paxos") {
		return fmt.Errorf("%s%s: %w: %s", addr, path, peer.ErrNotOwner, clip(resp.Body()))
	}
	if code != want {
		return fmt.Errorf("%s%s: status %d: %s", addr, path, code, clip(resp.Body()))
	}
	if out != nil {
		*out = append(*out, resp.Body()...)
	}
	return nil
}

// url returns the URL of uri (a path and query) on the node at addr, at
// its internode address, in the scheme of the transport.
func (t *Transport) url(addr, uri string) string {
	var b [128]byte
	return string(t.appendURL(b[:0], addr, uri))
}

// appendURL appends url's URL to dst, for a request that copies it
// (SetRequestURIBytes): a call a batch allocates no string for it.
func (t *Transport) appendURL(dst []byte, addr, uri string) []byte {
	if t.cfg.TLS != nil {
		dst = append(dst, "https://"...)
	} else {
		dst = append(dst, "http://"...)
	}
	return append(append(dst, t.dialAddr(addr)...), uri...)
}

// dialAddr is the internode address of the member at addr.
func (t *Transport) dialAddr(addr string) string {
	if t.cfg.PeerAddr != nil {
		if a := t.cfg.PeerAddr(addr); a != "" {
			return a
		}
	}
	return addr
}

// sign sets the node and signature headers (sign.go) of a call of method
// to uri with body on h.
func (t *Transport) sign(h *fasthttp.RequestHeader, method, uri string, body []byte) {
	sig, ok := Sign(t.cfg.Secrets, t.cfg.NodeID, method, uri, body, time.Now())
	if sig.Node != "" {
		h.Set(NodeHeader, sig.Node)
	}
	if ok {
		h.Set(TimeHeader, sig.Time)
		h.Set(SignatureHeader, sig.Sig)
	}
}

func clip(b []byte) string {
	if len(b) > 200 {
		b = b[:200]
	}
	return string(b)
}

func deadlineOf(ctx context.Context) time.Time {
	if d, ok := ctx.Deadline(); ok {
		return d
	}
	return time.Now().Add(5 * time.Second)
}

// Scan asks addr for one page of its records.
func (t *Transport) Scan(ctx context.Context, addr string, q peer.LocalScan) (peer.LocalPage, error) {
	var out []byte
	if err := t.post(addr, "/internal/scan", AppendScan(nil, q), deadlineOf(ctx), fasthttp.StatusOK, &out); err != nil {
		return peer.LocalPage{}, err
	}
	return DecodeScanPage(out)
}

// Status asks addr for its view of the cluster (GET /v1/cluster).
func (t *Transport) Status(ctx context.Context, addr string) (peer.ClusterStatus, error) {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(t.url(addr, "/v1/cluster"))
	// Signed, so that a peer with --auth-file answers it (httpd's peer reads, Authentic).
	t.sign(&req.Header, fasthttp.MethodGet, "/v1/cluster", nil)
	var st peer.ClusterStatus
	if err := t.client.DoDeadline(req, resp, deadlineOf(ctx)); err != nil {
		return st, t.explain(addr, err)
	}
	if resp.StatusCode() != fasthttp.StatusOK {
		return st, fmt.Errorf("status %d: %s", resp.StatusCode(), clip(resp.Body()))
	}
	if err := json.Unmarshal(resp.Body(), &st); err != nil {
		return st, fmt.Errorf("bad answer: %w", err)
	}
	return st, nil
}

// GossipAddrs asks addr for its members' gossip addresses.
func (t *Transport) GossipAddrs(ctx context.Context, addr string) ([]string, error) {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(t.url(addr, "/internal/gossip"))
	t.sign(&req.Header, fasthttp.MethodGet, "/internal/gossip", nil)
	if err := t.client.DoDeadline(req, resp, deadlineOf(ctx)); err != nil {
		return nil, t.explain(addr, err)
	}
	if resp.StatusCode() != fasthttp.StatusOK {
		return nil, fmt.Errorf("status %d: %s", resp.StatusCode(), clip(resp.Body()))
	}
	var addrs []string
	if err := json.Unmarshal(resp.Body(), &addrs); err != nil {
		return nil, fmt.Errorf("bad answer: %w", err)
	}
	return addrs, nil
}

var _ peer.Transport = (*Transport)(nil)
