package transport

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/ringkv/ringkv/memtable"
	"github.com/ringkv/ringkv/peer"
	"github.com/ringkv/ringkv/peer/peertest/fakelocal"
)

// fakeLocal is the shared in-memory Local (fakelocal.Local) under the
// names this package's tests have always called it by.
type fakeLocal struct{ *fakelocal.Local }

var _ Local = fakeLocal{}

func newFakeLocal() *fakeLocal { return &fakeLocal{fakelocal.New()} }

func (c *fakeLocal) blockApply(t testing.TB) (<-chan int, func()) { return c.BlockApply(t) }
func (c *fakeLocal) blockRead(t testing.TB) (<-chan int, func())  { return c.BlockRead(t) }
func (c *fakeLocal) setApplyErr(err error)                        { c.SetApplyErr(err) }
func (c *fakeLocal) record(key string) []byte                     { return c.Record(key) }
func (c *fakeLocal) counts() (applies, applied int)               { return c.Counts() }

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
	ts.tr = mustNew(t, cfg)
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
	tr := mustNew(t, tcfg)
	t.Cleanup(tr.Close)
	return ts, ts.addr, tr
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
