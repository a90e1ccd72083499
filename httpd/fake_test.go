package httpd

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"maps"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"github.com/ringkv/ringkv/peer/keyring"
	"github.com/ringkv/ringkv/peer/kv"
	"github.com/ringkv/ringkv/peer/peertest/fakelocal"
	"github.com/ringkv/ringkv/peer/transport"
)

// fakeRec is one key of fakeStore.
type fakeRec struct {
	val []byte
	ver kv.Version
	ttl time.Duration
	c   kv.Consistency
}

// fakeStore is an in-memory Store: a map with versions from a counter. It
// records the consistency and TTL of each write so that transcripts can
// show them. It is safe for concurrent use.
type fakeStore struct {
	mu struct {
		sync.Mutex
		m     map[string]fakeRec
		clock uint64
		err   error // returned by every call while set
		// keyErr is returned by every call on its key (setKeyErr).
		keyErr map[string]error
	}
	// block, when non-nil, makes Put signal entered and then wait for
	// block to be closed (or ctx to be done): an in-flight request.
	block   chan struct{}
	entered chan struct{}
}

var _ Store = (*fakeStore)(nil)

func newFakeStore() *fakeStore {
	st := &fakeStore{}
	st.mu.m = map[string]fakeRec{}
	return st
}

// errPanic, set with setErr, makes every call panic: a Store bug.
var errPanic = errors.New("panic")

// errLocked returns the injected error, or panics for errPanic.
// REQUIRES: st.mu.
func (st *fakeStore) errLocked() error {
	if st.mu.err == errPanic {
		panic("fake store: injected panic")
	}
	return st.mu.err
}

func (st *fakeStore) setErr(err error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.mu.err = err
}

// setKeyErr makes every call on key fail with err (nil: succeed again),
// so that one batch can show several outcomes.
func (st *fakeStore) setKeyErr(key string, err error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.mu.keyErr == nil {
		st.mu.keyErr = map[string]error{}
	}
	if err == nil {
		delete(st.mu.keyErr, key)
		return
	}
	st.mu.keyErr[key] = err
}

// keyErrLocked returns the injected error of a call on key, or nil.
// REQUIRES: st.mu.
func (st *fakeStore) keyErrLocked(key []byte) error {
	if err := st.errLocked(); err != nil {
		return err
	}
	return st.mu.keyErr[string(key)]
}

func (st *fakeStore) Get(ctx context.Context, dst, key []byte, c kv.Consistency) ([]byte, kv.Version, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if err := st.keyErrLocked(key); err != nil {
		return dst, kv.Version{}, err
	}
	r, ok := st.mu.m[string(key)]
	if !ok {
		return dst, kv.Version{}, fmt.Errorf("cannot get %q: %w", key, kv.ErrNotFound)
	}
	return append(dst, r.val...), r.ver, nil
}

func (st *fakeStore) Put(ctx context.Context, key, value []byte, o kv.WriteOptions) (kv.Version, error) {
	if st.block != nil {
		st.entered <- struct{}{}
		select {
		case <-st.block:
		case <-ctx.Done():
			return kv.Version{}, ctx.Err()
		}
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if err := st.keyErrLocked(key); err != nil {
		return kv.Version{}, err
	}
	if err := st.checkLocked(key, o.Condition); err != nil {
		return kv.Version{}, err
	}
	st.mu.clock++
	v := kv.Version{TS: st.mu.clock, Node: 1}
	st.mu.m[string(key)] = fakeRec{val: bytes.Clone(value), ver: v, ttl: o.TTL, c: o.Consistency}
	return v, nil
}

// checkLocked checks a write's condition against the stored record, as
// the real coordinator's consensus round would.
func (st *fakeStore) checkLocked(key []byte, c kv.Condition) error {
	r, ok := st.mu.m[string(key)]
	if !c.Holds(ok, r.ver) {
		return &kv.ConditionError{Exists: ok, Current: r.ver}
	}
	return nil
}

func (st *fakeStore) Delete(ctx context.Context, key []byte, o kv.WriteOptions) (kv.Version, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if err := st.keyErrLocked(key); err != nil {
		return kv.Version{}, err
	}
	if err := st.checkLocked(key, o.Condition); err != nil {
		return kv.Version{}, err
	}
	st.mu.clock++
	delete(st.mu.m, string(key))
	return kv.Version{TS: st.mu.clock, Node: 1}, nil
}

// Scan pages through the keys in byte order (the real store uses token
// order; httpd does not care).
func (st *fakeStore) Scan(ctx context.Context, q kv.ScanQuery) (kv.ScanPage, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if err := st.errLocked(); err != nil {
		return kv.ScanPage{}, err
	}
	if q.Limit <= 0 {
		return kv.ScanPage{}, errors.New("BUG: scan limit must be positive")
	}
	keys := slices.Sorted(maps.Keys(st.mu.m))
	var page kv.ScanPage
	for _, k := range keys {
		if !strings.HasPrefix(k, string(q.Prefix)) || (len(q.After) > 0 && k <= string(q.After)) {
			continue
		}
		if len(page.Items) == q.Limit {
			page.Next = bytes.Clone(page.Items[len(page.Items)-1].Key)
			break
		}
		r := st.mu.m[k]
		page.Items = append(page.Items, kv.KV{Key: []byte(k), Value: bytes.Clone(r.val), Version: r.ver})
	}
	return page, nil
}

// Batch runs each item through Get, Put or Delete, in item order, after
// the checks the coordinator makes, and marks unprocessed what it would.
func (st *fakeStore) Batch(ctx context.Context, ops []kv.BatchOp, res []kv.BatchResult) error {
	if len(res) != len(ops) {
		return fmt.Errorf("%w: %d results for %d items", kv.ErrBadBatch, len(res), len(ops))
	}
	if err := kv.CheckBatch(ops); err != nil {
		return err
	}
	for i := range ops {
		op, r := &ops[i], &res[i]
		*r = kv.BatchResult{Value: r.Value[:0]}
		var err error
		switch op.Kind {
		case kv.BatchGet:
			r.Value, r.Version, err = st.Get(ctx, r.Value, op.Key, op.Consistency)
		case kv.BatchPut:
			r.Version, err = st.Put(ctx, op.Key, op.Value, kv.WriteOptions{Consistency: op.Consistency, TTL: op.TTL, Condition: op.Condition})
		case kv.BatchDelete:
			r.Version, err = st.Delete(ctx, op.Key, kv.WriteOptions{Consistency: op.Consistency, Condition: op.Condition})
		}
		r.Err = err
		// As peer's batchRetryable: reads and plain writes may be sent
		// again; a conditional write only if certainly not applied.
		switch {
		case err == nil, errors.Is(err, kv.ErrNotFound), errors.Is(err, kv.ErrConditionFailed):
		case op.Kind == kv.BatchGet, op.Condition.Kind == kv.Unconditional:
			r.Unprocessed = true
		default:
			r.Unprocessed = errors.Is(err, kv.ErrUnavailable) && !errors.Is(err, kv.ErrOutcomeUnknown)
		}
	}
	return nil
}

// snapshot returns the store's content, to compare before and after a
// rejected write.
func (st *fakeStore) snapshot() map[string]fakeRec {
	st.mu.Lock()
	defer st.mu.Unlock()
	return maps.Clone(st.mu.m)
}

func sameContent(a, b map[string]fakeRec) bool {
	return maps.EqualFunc(a, b, func(x, y fakeRec) bool {
		return bytes.Equal(x.val, y.val) && x.ver == y.ver && x.ttl == y.ttl && x.c == y.c
	})
}

// dump prints the store one key a line: key, value, version, options.
func (st *fakeStore) dump() string {
	st.mu.Lock()
	defer st.mu.Unlock()
	var b strings.Builder
	keys := make([]string, 0, len(st.mu.m))
	for k := range st.mu.m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		r := st.mu.m[k]
		if len(k) > 40 {
			k = fmt.Sprintf("<%d bytes>", len(k))
		}
		v := string(r.val)
		if len(v) > 40 {
			v = fmt.Sprintf("<%d bytes>", len(r.val))
		} else {
			v = fmt.Sprintf("%q", v)
		}
		if !strings.HasPrefix(k, "<") {
			k = strconv.Quote(k)
		}
		fmt.Fprintf(&b, "%s %s %s consistency=%s", k, v, r.ver, r.c)
		if r.ttl > 0 {
			fmt.Fprintf(&b, " ttl=%s", r.ttl)
		}
		b.WriteByte('\n')
	}
	if b.Len() == 0 {
		return "empty\n"
	}
	return b.String()
}

func (st *fakeStore) len() int {
	st.mu.Lock()
	defer st.mu.Unlock()
	return len(st.mu.m)
}

// fakeOps is an Ops with a fixed LSM report and member list.
type fakeOps struct {
	mu         sync.Mutex
	compactErr error
	compacts   int
	health     []kv.Degraded
	notReady   []kv.Degraded
	// asked counts the calls of Health and NotReady.
	asked int
}

func (o *fakeOps) setNotReady(h ...kv.Degraded) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.notReady = h
}

func (o *fakeOps) NotReady() []kv.Degraded {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.asked++
	return o.notReady
}

func (o *fakeOps) askedCount() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.asked
}

var _ Readiness = (*fakeOps)(nil)

func (o *fakeOps) setHealth(h ...kv.Degraded) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.health = h
}

func (o *fakeOps) Health() []kv.Degraded {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.asked++
	return o.health
}

var _ Ops = (*fakeOps)(nil)

type fakeLevel struct {
	Level int    `json:"level"`
	Files int    `json:"files"`
	Bytes uint64 `json:"bytes"`
}

type fakeLSM struct {
	Profile  string      `json:"profile"`
	Levels   []fakeLevel `json:"levels"`
	WriteAmp float64     `json:"write_amp"`
	Stalls   int         `json:"stalls"`
	Note     string      `json:"note"`
}

func (o *fakeOps) LSM() any {
	return fakeLSM{
		Profile:  "balanced",
		Levels:   []fakeLevel{{0, 2, 4096}, {6, 1, 1 << 20}},
		WriteAmp: 1.5,
		Note:     "<b>escaped</b>",
	}
}

func (o *fakeOps) setCompactErr(err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.compactErr = err
}

func (o *fakeOps) Compact(ctx context.Context) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.compacts++
	return o.compactErr
}

func (o *fakeOps) Members() []string {
	return []string{"127.0.0.1:8080", "127.0.0.1:8081"}
}

// fakeCluster is a fakeOps that also implements Cluster: a fixed status
// and ring, membership changes that it records, and an in-memory record
// store (last writer wins, as a replica's) for the /internal/ endpoints.
// It is safe for concurrent use.
type fakeCluster struct {
	*fakeOps
	// Local is the record store behind the /internal/ endpoints.
	*fakelocal.Local
	mu struct {
		sync.Mutex
		added   []string // AddNode addresses
		removed []string // RemoveNode ids that succeeded
		leaves  int      // StartLeave calls
	}
}

var (
	_ Cluster         = (*fakeCluster)(nil)
	_ transport.Local = (*fakeCluster)(nil)
)

func newFakeCluster(ops *fakeOps) *fakeCluster {
	return &fakeCluster{fakeOps: ops, Local: fakelocal.New()}
}

// fakeMembers are the members of fakeCluster's ring: node-1 (this node)
// and node-2 are alive, node-3 is dead.
var fakeMembers = []kv.Member{
	{ID: "node-1", HTTPAddr: "127.0.0.1:8080", GossipAddr: "127.0.0.1:7946", State: kv.Alive},
	{ID: "node-2", HTTPAddr: "127.0.0.1:8081", GossipAddr: "127.0.0.1:7947", State: kv.Alive},
	{ID: "node-3", HTTPAddr: "127.0.0.1:8082", GossipAddr: "127.0.0.1:7948", State: kv.Dead},
}

func (c *fakeCluster) ClusterStatus() kv.ClusterStatus {
	return kv.ClusterStatus{
		Self:         "node-1",
		Replicas:     3,
		VNodes:       128,
		Members:      slices.Clone(fakeMembers),
		Transfers:    []kv.Transfer{},
		Settled:      true,
		HintsPending: map[string]int64{"node-3": 12},
		Ownership:    map[string]float64{"node-1": 0.25, "node-2": 0.5, "node-3": 0.25},
	}
}

// Owners places key by an FNV hash (the real ring uses xxh3; httpd does
// not care).
func (c *fakeCluster) Owners(key []byte) (kv.RingOwners, error) {
	if len(key) == 0 || len(key) > kv.MaxKeySize {
		return kv.RingOwners{}, fmt.Errorf("%w: length %d", kv.ErrInvalidKey, len(key))
	}
	h := fnv.New64a()
	h.Write(key)
	tok := h.Sum64()
	o := kv.RingOwners{Key: string(key), Token: fmt.Sprintf("%016x", tok)}
	for i := range 2 {
		m := fakeMembers[(int(tok%3)+i)%3]
		o.Owners = append(o.Owners, m.ID)
		o.Addrs = append(o.Addrs, m.HTTPAddr)
	}
	return o, nil
}

// AddNode records httpAddr. "unreachable:1" fails as an unreachable node
// does, "nomembership:1" as a node without --gossip-addr.
func (c *fakeCluster) AddNode(ctx context.Context, httpAddr string) error {
	switch httpAddr {
	case "unreachable:1":
		return fmt.Errorf("cannot reach %s: connection refused", httpAddr)
	case "nomembership:1":
		return kv.ErrNoMembership
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mu.added = append(c.mu.added, httpAddr)
	return nil
}

func (c *fakeCluster) RemoveNode(id string) error {
	i := slices.IndexFunc(fakeMembers, func(m kv.Member) bool { return m.ID == id })
	if i < 0 {
		return fmt.Errorf("%w: %q", kv.ErrUnknownMember, id)
	}
	if fakeMembers[i].State == kv.Alive {
		return fmt.Errorf("%w: %q", kv.ErrMemberAlive, id)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mu.removed = append(c.mu.removed, id)
	return nil
}

// StartLeave records the call.
func (c *fakeCluster) StartLeave() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mu.leaves++
	return nil
}

// counts returns the number of ApplyLocal calls and of mutations received.
func (c *fakeCluster) counts() (applies, applied int) { return c.Counts() }

// log prints the membership changes the cluster was asked for.
func (c *fakeCluster) log() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return fmt.Sprintf("added: %q\nremoved: %q\n", c.mu.added, c.mu.removed)
}

// testServer is a Server on an in-memory listener, serving a fakeStore.
type testServer struct {
	*Server
	st    *fakeStore
	ops   *fakeOps
	cl    *fakeCluster // nil unless the server runs clustering
	reg   *prometheus.Registry
	ln    *fasthttputil.InmemoryListener
	serve chan error
}

// newTestServer starts a server whose Ops is a fakeOps, which does not
// implement Cluster: the cluster endpoints answer 501.
func newTestServer(t testing.TB, cfg Config) *testServer {
	t.Helper()
	ln := fasthttputil.NewInmemoryListener()
	ts := startTestServer(t, cfg, ln, false)
	ts.ln = ln
	return ts
}

// newClusterTestServer starts a server whose Ops is a fakeCluster.
func newClusterTestServer(t testing.TB, cfg Config) *testServer {
	t.Helper()
	ln := fasthttputil.NewInmemoryListener()
	ts := startTestServer(t, cfg, ln, true)
	ts.ln = ln
	return ts
}

// newTCPClusterTestServer starts a server with a fakeCluster on a loopback
// TCP port and returns it with its address.
func newTCPClusterTestServer(t testing.TB, cfg Config) (*testServer, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Skip("no loopback:", err)
	}
	return startTestServer(t, cfg, ln, true), ln.Addr().String()
}

// newTCPClusterTestServerPeerCert is newTCPClusterTestServer whose
// internode protocol requires a certificate naming the caller
// (transport.Config.RequirePeerCert).
func newTCPClusterTestServerPeerCert(t testing.TB, cfg Config, requirePeerCert bool) (*testServer, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Skip("no loopback:", err)
	}
	return startTestServerWith(t, cfg, ln, true, requirePeerCert), ln.Addr().String()
}

func startTestServer(t testing.TB, cfg Config, ln net.Listener, cluster bool) *testServer {
	t.Helper()
	return startTestServerWith(t, cfg, ln, cluster, false)
}

// mountInternode sets cfg.Internode, unless set, to a transport serving
// local with cfg's cluster secret, as ringkv serve mounts it.
func mountInternode(t testing.TB, cfg *Config, local transport.Local, requirePeerCert bool) {
	if cfg.Internode != nil {
		return
	}
	tr := mustTransport(t, transport.Config{NodeID: cfg.NodeID, Local: local, Secrets: cfg.Secrets, RequirePeerCert: requirePeerCert,
		MaxScanBytes: cfg.Limits.MaxScanBytes, MaxConcurrentScans: cfg.Limits.MaxConcurrentScans, Logger: cfg.Logger})
	t.Cleanup(tr.Close)
	cfg.Internode = tr
}

func startTestServerWith(t testing.TB, cfg Config, ln net.Listener, cluster, requirePeerCert bool) *testServer {
	t.Helper()
	ts := &testServer{
		st:    newFakeStore(),
		ops:   &fakeOps{},
		reg:   prometheus.NewRegistry(),
		serve: make(chan error, 1),
	}
	var ops Ops = ts.ops
	if cluster {
		ts.cl = newFakeCluster(ts.ops)
		ops = ts.cl
	}
	cfg.Registry = ts.reg
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if cfg.NodeID == "" {
		cfg.NodeID = "node-1"
	}
	if cluster {
		mountInternode(t, &cfg, ts.cl, requirePeerCert)
	}
	var err error
	if ts.Server, err = New(cfg, ts.st, ops); err != nil {
		ln.Close()
		t.Fatal(err)
	}
	go func() { ts.serve <- ts.Serve(ln) }()
	t.Cleanup(func() { ts.stop(t) })
	return ts
}

// stop shuts the server down (if not yet) and checks that Serve returned.
func (ts *testServer) stop(t testing.TB) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ts.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	select {
	case err := <-ts.serve:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
		ts.serve <- nil // for a second stop
	case <-ctx.Done():
		t.Errorf("Serve did not return after Shutdown")
	}
}

// roundTrip writes raw to a new connection and reads one response. head
// says whether the request was a HEAD (whose response has no body).
func (ts *testServer) roundTrip(t testing.TB, raw []byte, head bool) *fasthttp.Response {
	t.Helper()
	c, err := ts.ln.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return roundTripConn(t, c, raw, head)
}

// roundTripFrom is roundTrip on a connection whose remote address, as the
// server sees it, is ip.
func (ts *testServer) roundTripFrom(t testing.TB, ip string, raw []byte, head bool) *fasthttp.Response {
	t.Helper()
	c, err := ts.ln.DialWithLocalAddr(&net.TCPAddr{IP: net.ParseIP(ip), Port: 40000})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return roundTripConn(t, c, raw, head)
}

func roundTripConn(t testing.TB, c net.Conn, raw []byte, head bool) *fasthttp.Response {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	// Write concurrently: the server may answer (413) before reading the
	// whole of a large body, and an in-memory pipe blocks the writer.
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(raw)
		werr <- err
	}()
	resp := &fasthttp.Response{}
	resp.SkipBody = head
	// Show the Content-Type the server sent, not fasthttp's default.
	resp.Header.SetNoDefaultContentType(true)
	if err := resp.Read(bufio.NewReader(c)); err != nil {
		t.Fatalf("reading response: %v", err)
	}
	_ = c.Close()
	<-werr // a write cut short by the server's close is fine
	return resp
}

// rawRequest builds an HTTP/1.1 request with a Content-Length.
func rawRequest(method, target string, body []byte, headers ...string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: ringkv.test\r\n", method, target)
	for _, h := range headers {
		b.WriteString(h)
		b.WriteString("\r\n")
	}
	if len(body) > 0 || method == "PUT" || method == "POST" {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(body))
	}
	b.WriteString("\r\n")
	b.Write(body)
	return b.Bytes()
}

// The internode protocol's names, as the tests of the routes that mount
// it (and those older than its package) use them.
const (
	NodeHeader             = transport.NodeHeader
	TimeHeader             = transport.TimeHeader
	SignatureHeader        = transport.SignatureHeader
	DefaultSignatureWindow = transport.DefaultSignatureWindow
)

type (
	Transport       = transport.Transport
	TransportConfig = transport.Config
)

// signature is the headers of a signed internode call.
type signature struct{ node, time, sig string }

// sign signs an internode call as a node's transport does.
func sign(secrets *keyring.Keyring, node, method, uri string, body []byte, now time.Time) (signature, bool) {
	s, ok := transport.Sign(secrets, node, method, uri, body, now)
	return signature{s.Node, s.Time, s.Sig}, ok
}

// verifySignature is transport.VerifySignature.
func verifySignature(keys []keyring.Keys, method, uri, node, timeHdr, sigHdr, body []byte, now time.Time, window time.Duration) error {
	return transport.VerifySignature(keys, method, uri, node, timeHdr, sigHdr, body, now, window)
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// mustTransport is transport.New for a Config the test knows to be valid.
func mustTransport(t testing.TB, cfg transport.Config) *transport.Transport {
	t.Helper()
	tr, err := transport.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}
