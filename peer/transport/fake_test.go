package transport

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/ringkv/ringkv/memtable"
	"github.com/ringkv/ringkv/peer"
	"github.com/ringkv/ringkv/ring"
)

// fakeLocal is an in-memory Local: a record store (last writer wins, as
// a replica's) with knobs that make its calls fail or wait. It is safe for
// concurrent use.
type fakeLocal struct {
	mu struct {
		sync.Mutex
		recs     map[string][]byte // key -> encoded record
		applies  int               // ApplyLocal calls
		applied  int               // mutations ApplyLocal received
		applyErr error             // returned by ApplyLocal while set
		// apply and read, when set, make ApplyLocal and ReadLocal wait:
		// a slow fsync or disk (see blockApply).
		apply, read *fakeBlock
		// spanBody and spanErr are what ServeSpan streams and returns;
		// spanReqs the spans it was asked for.
		spanBody []byte
		spanErr  error
		spanReqs [][2]uint64
		// pendingKeys are keys ReadLocal answers ErrRangePending for.
		pendingKeys map[string]bool
		// damagedKeys are keys ReadLocal answers ErrCorruption for.
		damagedKeys map[string]bool
	}
}

var _ Local = (*fakeLocal)(nil)

func newFakeLocal() *fakeLocal {
	c := &fakeLocal{}
	c.mu.recs = map[string][]byte{}
	return c
}

// fakeBlock holds calls until released.
type fakeBlock struct {
	entered chan int // each held call sends its size (mutations, or 1)
	release chan struct{}
}

func (b *fakeBlock) wait(n int) {
	if b != nil {
		b.entered <- n
		<-b.release
	}
}

func newFakeBlock() (*fakeBlock, func()) {
	b := &fakeBlock{entered: make(chan int, 100000), release: make(chan struct{})}
	var once sync.Once
	return b, func() { once.Do(func() { close(b.release) }) }
}

// blockApply makes ApplyLocal calls wait until release is called (which
// the test's cleanup also does). Each call sends the number of its
// mutations on entered first.
func (c *fakeLocal) blockApply(t testing.TB) (entered <-chan int, release func()) {
	b, release := newFakeBlock()
	t.Cleanup(release)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mu.apply = b
	return b.entered, release
}

// blockRead is blockApply for ReadLocal; each call sends 1.
func (c *fakeLocal) blockRead(t testing.TB) (entered <-chan int, release func()) {
	b, release := newFakeBlock()
	t.Cleanup(release)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mu.read = b
	return b.entered, release
}

func (c *fakeLocal) setApplyErr(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mu.applyErr = err
}

// ApplyLocal stores copies of ms (they alias the request), the newest
// version of each key winning.
func (c *fakeLocal) ApplyLocal(ms []peer.Mutation) error {
	c.mu.Lock()
	b := c.mu.apply
	c.mu.Unlock()
	b.wait(len(ms))
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mu.applies++
	if c.mu.applyErr != nil {
		return c.mu.applyErr
	}
	for _, m := range ms {
		if len(m.Key) == 0 || len(m.Key) > peer.MaxKeySize {
			return fmt.Errorf("%w: length %d", peer.ErrInvalidKey, len(m.Key))
		}
		if _, err := memtable.Decode(m.Record); err != nil {
			return fmt.Errorf("BUG: the handler passed on an undecodable record: %w", err)
		}
	}
	for _, m := range ms {
		c.mu.applied++
		if old, ok := c.mu.recs[string(m.Key)]; ok {
			if newer, _ := memtable.Newer(old, m.Record); newer {
				continue
			}
		}
		c.mu.recs[string(m.Key)] = bytes.Clone(m.Record)
	}
	return nil
}

func (c *fakeLocal) ReadLocal(dst, key []byte) ([]byte, error) {
	c.mu.Lock()
	b := c.mu.read
	c.mu.Unlock()
	b.wait(1)
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.mu.recs[string(key)]
	if c.mu.damagedKeys[string(key)] {
		return dst, fmt.Errorf("cannot read %q: %w", key, peer.ErrCorruption)
	}
	if c.mu.pendingKeys[string(key)] {
		// What a node still pulling holds, if anything, comes along.
		return append(dst, r...), &peer.PendingError{From: []string{"node-1", "node-4"}}
	}
	if !ok {
		return dst, peer.ErrNotFound
	}
	return append(dst, r...), nil
}

// ScanLocal pages through the records in key order (the real store uses
// token order).
func (c *fakeLocal) ScanLocal(ctx context.Context, q peer.LocalScan) (peer.LocalPage, error) {
	if q.Limit <= 0 {
		return peer.LocalPage{}, errors.New("BUG: scan limit must be positive")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var p peer.LocalPage
	for _, k := range slices.Sorted(maps.Keys(c.mu.recs)) {
		if !strings.HasPrefix(k, string(q.Prefix)) || (len(q.After) > 0 && k <= string(q.After)) {
			continue
		}
		if len(p.Items) == q.Limit {
			p.More = true
			break
		}
		p.Items = append(p.Items, peer.Mutation{Key: []byte(k), Record: bytes.Clone(c.mu.recs[k])})
	}
	return p, nil
}

// LocalMerkle builds the tree of the fake's records that fall in rg.
func (c *fakeLocal) LocalMerkle(ctx context.Context, rg ring.Range, depth int) (*peer.Merkle, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := peer.NewMerkle(rg, depth)
	for k, b := range c.mu.recs {
		if !rg.Contains(ring.Token([]byte(k))) {
			continue
		}
		r, err := memtable.Decode(b)
		if err != nil {
			return nil, err
		}
		if _, err := t.Add([]byte(k), r); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// ServeSpan streams the span's bytes as the fake's spanBody, or fails.
func (c *fakeLocal) ServeSpan(ctx context.Context, lo, hi uint64, w io.Writer) error {
	c.mu.Lock()
	body, err := c.mu.spanBody, c.mu.spanErr
	c.mu.spanReqs = append(c.mu.spanReqs, [2]uint64{lo, hi})
	c.mu.Unlock()
	if _, werr := w.Write(body); werr != nil {
		return werr
	}
	return err
}

func (c *fakeLocal) GossipAddrs() []string {
	return []string{"127.0.0.1:7946", "127.0.0.1:7947"}
}

// record returns the stored record of key, or nil.
func (c *fakeLocal) record(key string) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.recs[key]
}

// counts returns the number of ApplyLocal calls and of mutations received.
func (c *fakeLocal) counts() (applies, applied int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.applies, c.mu.applied
}

// testServer is a Transport's handler serving a fakeLocal on a loopback
// TCP port, as httpd mounts it.
type testServer struct {
	cl   *fakeLocal
	tr   *Transport // the serving side
	addr string
}

// defaultMaxBody is the body limit httpd gives its server by default
// (2 × --max-value-size + 64KiB).
const defaultMaxBody = 2<<20 + 64<<10

// newTestServer serves a fakeLocal with cfg until the test ends.
func newTestServer(t testing.TB, cfg Config) *testServer {
	return newTestServerBody(t, cfg, defaultMaxBody)
}

// newTestServerBody is newTestServer with a request body limit.
func newTestServerBody(t testing.TB, cfg Config, maxBody int) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Skip("no loopback:", err)
	}
	ts := &testServer{cl: newFakeLocal(), addr: ln.Addr().String()}
	cfg.Local = ts.cl
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	ts.tr = New(cfg)
	srv := &fasthttp.Server{Handler: ts.tr.Handler(nil), MaxRequestBodySize: maxBody, CloseOnShutdown: true,
		DisablePreParseMultipartForm: true, NoDefaultContentType: true}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.ShutdownWithContext(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
		ts.tr.Close()
	})
	return ts
}

// roundTrip writes raw to a new connection and reads one response. head
// says whether the request was a HEAD (whose response has no body).
func (ts *testServer) roundTrip(t testing.TB, raw []byte, head bool) *fasthttp.Response {
	t.Helper()
	c, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	// Write concurrently: the server may answer (413) before reading the
	// whole of a large body.
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(raw)
		werr <- err
	}()
	resp := &fasthttp.Response{}
	resp.SkipBody = head
	resp.Header.SetNoDefaultContentType(true)
	if err := resp.Read(bufio.NewReader(c)); err != nil {
		t.Fatalf("reading response: %v", err)
	}
	_ = c.Close()
	<-werr
	return resp
}

// post sends one POST with a binary body.
func (ts *testServer) post(t testing.TB, target string, body []byte, headers ...string) *fasthttp.Response {
	t.Helper()
	return ts.roundTrip(t, rawRequest("POST", target, body, headers...), false)
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

func wantStatus(t testing.TB, what string, resp *fasthttp.Response, code int) {
	t.Helper()
	if resp.StatusCode() != code {
		t.Fatalf("%s: status %d, want %d; body %q", what, resp.StatusCode(), code, resp.Body())
	}
}

// checkJSONError checks that an error answer is httpd's JSON error.
func checkJSONError(t testing.TB, contentType, body []byte) {
	t.Helper()
	if string(contentType) != "application/json" {
		t.Errorf("error with Content-Type %q", contentType)
	}
	if !bytes.HasPrefix(body, []byte(`{"error":"`)) || !bytes.HasSuffix(body, []byte("\"}\n")) {
		t.Errorf("error body %q is not {\"error\":...}", body)
	}
}

// testRecord returns a valid encoded record.
func testRecord(ts uint64, value string) []byte {
	r := memtable.Record{Version: memtable.Version{TS: ts, Node: 3}, Value: []byte(value)}
	return r.Append(nil)
}

func testMutations(prefix string, n int, ts uint64) []peer.Mutation {
	ms := make([]peer.Mutation, n)
	for i := range ms {
		ms[i] = peer.Mutation{Key: fmt.Appendf(nil, "%s%04d", prefix, i), Record: testRecord(ts, fmt.Sprint("v", i))}
	}
	return ms
}

// newTransportPair starts a server with a fakeLocal and a Transport to
// it; the Transport is closed before the server stops.
func newTransportPair(t *testing.T, scfg, tcfg Config) (*testServer, string, *Transport) {
	t.Helper()
	return newTransportPairBody(t, scfg, tcfg, defaultMaxBody)
}

// newTransportPairBody is newTransportPair with a request body limit.
func newTransportPairBody(t *testing.T, scfg, tcfg Config, maxBody int) (*testServer, string, *Transport) {
	t.Helper()
	ts := newTestServerBody(t, scfg, maxBody)
	tr := New(tcfg)
	t.Cleanup(tr.Close)
	return ts, ts.addr, tr
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
