package httpd

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/ringkv/ringkv/peer"
	"github.com/ringkv/ringkv/peer/peertest"
)

// newRequestCtx returns a RequestCtx holding a request parsed from raw, as
// the server would hand it to the handler.
func newRequestCtx(t testing.TB, raw []byte) *fasthttp.RequestCtx {
	t.Helper()
	var req fasthttp.Request
	if err := req.Read(bufio.NewReader(bytes.NewReader(raw))); err != nil {
		t.Fatalf("parsing %q: %v", raw, err)
	}
	var ctx fasthttp.RequestCtx
	ctx.Init(&req, nil, nil)
	return &ctx
}

// checkJSONError fails unless body is a JSON object with a string "error".
func checkJSONError(t testing.TB, contentType, body []byte) {
	t.Helper()
	if string(contentType) != "application/json" {
		t.Errorf("error Content-Type = %q, want application/json", contentType)
	}
	var e struct {
		Error *string `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Error == nil {
		t.Errorf("error body %q is not {\"error\":\"...\"}: %v", body, err)
	}
}

// TestGarbage sends bytes that are not HTTP on raw connections: each must
// get a JSON 4xx or a clean close, and the server must go on serving.
func TestGarbage(t *testing.T) {
	ts := newTestServer(t, Config{ReadTimeout: 300 * time.Millisecond})
	rng := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 4096)
	for i := range random {
		random[i] = byte(rng.UintN(256))
	}
	inputs := [][]byte{
		[]byte("\x00\x01\x02\x03\xff\xfe\r\n\r\n"),
		[]byte("GET\r\n\r\n"),
		[]byte("GET / HTTP/1.1\r\n\r\n"), // no Host
		[]byte("GET /v1/kv/a HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n"),
		[]byte("PUT /v1/kv/a HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999\r\n\r\n"),
		[]byte("PUT /v1/kv/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
		[]byte("GET /v1/kv/a\x00b HTTP/1.1\r\nHost: x\r\n\r\n"),
		[]byte("GET /v1/kv/a HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n"),
		[]byte("GET /v1/kv/a HTTP/1.1\r\nHost: x\r\n" + strings.Repeat("X-Big: "+strings.Repeat("b", 1000)+"\r\n", 40) + "\r\n"),
		[]byte("GET /v1/kv/a HTTP/1.1\r\nHo"), // cut short: read timeout
		random,
		append(append([]byte{}, random...), "\r\n\r\n"...),
	}
	for i, in := range inputs {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			c, err := ts.ln.Dial()
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			go func() { _, _ = c.Write(in) }()
			out, err := io.ReadAll(c)
			if err != nil && !errors.Is(err, io.EOF) {
				t.Fatalf("reading: %v", err)
			}
			if len(out) == 0 {
				return // a clean close
			}
			var resp fasthttp.Response
			resp.Header.SetNoDefaultContentType(true)
			if err := resp.Read(bufio.NewReader(bytes.NewReader(out))); err != nil {
				t.Fatalf("answer %q is not HTTP: %v", out, err)
			}
			if code := resp.StatusCode(); code < 400 || code > 499 {
				t.Errorf("status %d, want 4xx; answer %q", code, out)
			}
			checkJSONError(t, resp.Header.ContentType(), resp.Body())
		})
	}
	resp := ts.roundTrip(t, rawRequest("GET", "/healthz", nil), false)
	if resp.StatusCode() != 200 {
		t.Fatalf("after garbage, /healthz = %d %q", resp.StatusCode(), resp.Body())
	}
	if st := ts.st.len(); st != 0 {
		t.Errorf("garbage wrote %d keys", st)
	}
}

// TestShutdown checks that Shutdown lets an in-flight request finish with
// its 2xx, answers /healthz with 503 meanwhile, refuses new connections,
// and returns once the request is done.
func TestShutdown(t *testing.T) {
	ts := newTestServer(t, Config{})
	ts.st.block = make(chan struct{})
	ts.st.entered = make(chan struct{}, 1)

	type result struct {
		resp *fasthttp.Response
		err  error
	}
	inflight := make(chan result, 1)
	c, err := ts.ln.Dial()
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		defer c.Close()
		if _, err := c.Write(rawRequest("PUT", "/v1/kv/slow", []byte("value"))); err != nil {
			inflight <- result{err: err}
			return
		}
		resp := &fasthttp.Response{}
		err := resp.Read(bufio.NewReader(c))
		inflight <- result{resp, err}
	}()
	<-ts.st.entered // the PUT is inside the store

	shutdown := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		shutdown <- ts.Shutdown(ctx)
	}()

	// New connections are refused once Shutdown has closed the listener.
	peertest.WaitFor(t, time.Minute, func() bool {
		c, err := ts.ln.Dial()
		if err != nil {
			return true
		}
		c.Close()
		return false
	}, "Dial to fail after Shutdown")

	// /healthz answers 503 from the moment Shutdown began.
	hc := newRequestCtx(t, rawRequest("GET", "/healthz", nil))
	ts.Handler()(hc)
	if hc.Response.StatusCode() != fasthttp.StatusServiceUnavailable {
		t.Errorf("/healthz during Shutdown = %d, want 503", hc.Response.StatusCode())
	}
	checkJSONError(t, hc.Response.Header.ContentType(), hc.Response.Body())
	// /livez does not: the process is alive until it exits.
	lc := newRequestCtx(t, rawRequest("GET", "/livez", nil))
	ts.Handler()(lc)
	if lc.Response.StatusCode() != fasthttp.StatusOK {
		t.Errorf("/livez during Shutdown = %d, want 200", lc.Response.StatusCode())
	}

	select {
	case err := <-shutdown:
		t.Fatalf("Shutdown returned (%v) with a request in flight", err)
	case r := <-inflight:
		t.Fatalf("in-flight request answered before the store returned: %v", r.err)
	default:
	}

	close(ts.st.block)
	r := <-inflight
	if r.err != nil {
		t.Fatalf("in-flight request: %v", r.err)
	}
	if r.resp.StatusCode() != fasthttp.StatusNoContent {
		t.Errorf("in-flight PUT = %d %q, want 204", r.resp.StatusCode(), r.resp.Body())
	}
	if err := <-shutdown; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if got := ts.st.dump(); !strings.Contains(got, `"slow" "value"`) {
		t.Errorf("in-flight PUT not stored: %s", got)
	}
	if err := ts.Serve(ts.ln); !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve after Shutdown = %v, want ErrServerClosed", err)
	}
}

// TestShutdownTimeout checks that a Shutdown that gives up cancels the
// store calls of the requests still running, which then answer 503.
func TestShutdownTimeout(t *testing.T) {
	ts := newTestServer(t, Config{})
	ts.st.block = make(chan struct{}) // never closed
	ts.st.entered = make(chan struct{}, 1)
	c, err := ts.ln.Dial()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan *fasthttp.Response, 1)
	go func() {
		done <- roundTripConn(t, c, rawRequest("PUT", "/v1/kv/stuck", []byte("v")), false)
	}()
	<-ts.st.entered
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := ts.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown = %v, want DeadlineExceeded", err)
	}
	resp := <-done
	if resp.StatusCode() != fasthttp.StatusServiceUnavailable {
		t.Errorf("cancelled PUT = %d, want 503", resp.StatusCode())
	}
	if ts.st.len() != 0 {
		t.Errorf("cancelled PUT was stored")
	}
}

// TestTwoServers runs two servers in one process, each with its own
// registry: nothing is global.
func TestTwoServers(t *testing.T) {
	a := newTestServer(t, Config{NodeID: "a"})
	b := newTestServer(t, Config{NodeID: `b"quoted"`})
	for _, ts := range []*testServer{a, b} {
		resp := ts.roundTrip(t, rawRequest("GET", "/healthz", nil), false)
		want := fmt.Sprintf(`{"status":"ok","node":%q}`+"\n", ts.cfg.NodeID)
		if string(resp.Body()) != want {
			t.Errorf("healthz = %q, want %q", resp.Body(), want)
		}
	}
	// A registry serves one Server only: the metric names would collide.
	if _, err := New(Config{Registry: a.reg}, a.st, a.ops); err == nil {
		t.Error("New with a registry already in use succeeded")
	}
}

func TestNewErrors(t *testing.T) {
	st, ops := newFakeStore(), &fakeOps{}
	if _, err := New(Config{}, st, ops); err == nil {
		t.Error("New without a Registry succeeded")
	}
	if _, err := New(Config{Registry: prometheus.NewRegistry()}, nil, ops); err == nil {
		t.Error("New without a Store succeeded")
	}
	var c Config
	c.EnsureDefaults()
	if c.Addr != DefaultAddr || c.MaxValueSize != 1<<20 || c.MaxKeySize != 4096 || c.Logger == nil ||
		c.ReadTimeout != 30*time.Second || c.WriteTimeout != 30*time.Second || c.IdleTimeout != 2*time.Minute {
		t.Errorf("EnsureDefaults: %+v", c)
	}
}

// TestListenAndServe serves on a real loopback port once.
func TestListenAndServe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Skip("no loopback:", err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s, err := New(Config{Addr: addr, Registry: prometheus.NewRegistry()}, newFakeStore(), &fakeOps{})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.ListenAndServe() }()
	var resp fasthttp.Response
	var lastErr error // logged if no attempt succeeds
	defer func() {
		if lastErr != nil {
			t.Logf("last attempt: %v", lastErr)
		}
	}()
	peertest.WaitFor(t, time.Minute, func() bool {
		req := fasthttp.AcquireRequest()
		defer fasthttp.ReleaseRequest(req)
		req.SetRequestURI("http://" + addr + "/healthz")
		lastErr = fasthttp.Do(req, &resp)
		return lastErr == nil
	}, "ListenAndServe to answer /healthz")
	if resp.StatusCode() != 200 {
		t.Errorf("healthz = %d", resp.StatusCode())
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != nil {
		t.Errorf("ListenAndServe = %v", err)
	}
}

func TestStatusOf(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{nil, 200},
		{peer.ErrNotFound, 404},
		{fmt.Errorf("x: %w", peer.ErrNotFound), 404},
		{&peer.UnavailableError{Op: "get", Needed: 2, Answered: 0}, 503},
		{fmt.Errorf("x: %w", peer.ErrUnavailable), 503},
		{context.DeadlineExceeded, 504},
		{context.Canceled, 503},
		{errors.New("boom"), 500},
	} {
		if got := statusOf(tc.err); got != tc.want {
			t.Errorf("statusOf(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

// TestAppendJSONString checks the hand-rolled escaper against
// encoding/json: the same string once decoded, and valid JSON always.
func TestAppendJSONString(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	inputs := []string{"", "plain", `"\`, "\x00\x1f\x7f", "\n\r\t", "é€😀", "\xff", "a\xc3", "\xed\xa0\x80", "</script>"}
	for range 2000 {
		b := make([]byte, rng.IntN(12))
		for i := range b {
			b[i] = byte(rng.UintN(256))
		}
		inputs = append(inputs, string(b))
	}
	for _, in := range inputs {
		got := appendJSONString(nil, []byte(in))
		if !json.Valid(got) {
			t.Fatalf("appendJSONString(%q) = %s: invalid JSON", in, got)
		}
		var back, want string
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatal(err)
		}
		wantJSON, _ := json.Marshal(in)
		_ = json.Unmarshal(wantJSON, &want)
		if back != want {
			t.Errorf("appendJSONString(%q) decodes to %q, encoding/json's to %q", in, back, want)
		}
		if s := appendJSONString(nil, in); !bytes.Equal(s, got) {
			t.Errorf("string and []byte forms differ for %q", in)
		}
	}
}

func TestPercentDecode(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"abc", "abc"},
		{"a%2Fb", "a/b"},
		{"a%2fb", "a/b"},
		{"%00%ff", "\x00\xff"},
		{"+", "+"},
		{"%25", "%"},
		{"%", "ERR"},
		{"%2", "ERR"},
		{"%zz", "ERR"},
		{"a%g1", "ERR"},
	} {
		got, err := percentDecode(nil, []byte(tc.in))
		if err != nil {
			got = []byte("ERR")
		}
		if string(got) != tc.want {
			t.Errorf("percentDecode(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// A node with a damaged file serves on: /healthz says degraded and why,
// with 200 (it still coordinates every request).
func TestHealthzDegraded(t *testing.T) {
	ts := newTestServer(t, Config{NodeID: "n1"})
	ts.ops.setHealth(peer.Degraded{Reason: "corruption", Detail: "file 000005.sst covering tokens [00, 2^64) damaged, reads that meet the damage fail on this node"})
	resp := ts.roundTrip(t, rawRequest("GET", "/healthz", nil), false)
	want := `{"status":"degraded","reason":"corruption","node":"n1","reasons":[{"reason":"corruption","detail":"file 000005.sst covering tokens [00, 2^64) damaged, reads that meet the damage fail on this node"}]}` + "\n"
	if resp.StatusCode() != fasthttp.StatusOK || string(resp.Body()) != want {
		t.Fatalf("healthz = %d %q, want 200 %q", resp.StatusCode(), resp.Body(), want)
	}
}

// A node still joining its cluster is not ready: /healthz answers 503
// "not ready" with the reason first and the degraded ones after, in the
// shape of "degraded"; once it has joined, 200 again.
func TestHealthzNotReadyWhileJoining(t *testing.T) {
	ts := newTestServer(t, Config{NodeID: "n1"})
	ts.ops.setNotReady(peer.Degraded{Reason: "joining", Detail: "waiting for the initial ring's 3 members (--bootstrap-expect), or a ring to join; 1 seen"})
	ts.ops.setHealth(peer.Degraded{Reason: "corruption", Detail: "d"})
	resp := ts.roundTrip(t, rawRequest("GET", "/healthz", nil), false)
	want := `{"status":"not ready","reason":"joining","node":"n1","reasons":[{"reason":"joining","detail":"waiting for the initial ring's 3 members (--bootstrap-expect), or a ring to join; 1 seen"},{"reason":"corruption","detail":"d"}]}` + "\n"
	if resp.StatusCode() != fasthttp.StatusServiceUnavailable || string(resp.Body()) != want {
		t.Fatalf("healthz while joining = %d %q, want 503 %q", resp.StatusCode(), resp.Body(), want)
	}
	ts.ops.setNotReady()
	ts.ops.setHealth()
	if resp := ts.roundTrip(t, rawRequest("GET", "/healthz", nil), false); resp.StatusCode() != fasthttp.StatusOK {
		t.Fatalf("healthz once joined = %d %q, want 200", resp.StatusCode(), resp.Body())
	}
}

// /livez, the liveness probe, answers 200 whatever the node's state (not
// ready, refusing writes) and asks the node nothing, so that nothing slow
// in it (a long compaction, a stall) can fail the probe.
func TestLivez(t *testing.T) {
	ts := newTestServer(t, Config{NodeID: "n1"})
	ts.ops.setNotReady(peer.Degraded{Reason: "joining"})
	ts.ops.setHealth(peer.Degraded{Reason: "disk full", RefusesWrites: true})
	asked := ts.ops.askedCount()
	resp := ts.roundTrip(t, rawRequest("GET", "/livez", nil), false)
	if resp.StatusCode() != fasthttp.StatusOK || string(resp.Body()) != `{"status":"ok","node":"n1"}`+"\n" {
		t.Fatalf("livez = %d %q", resp.StatusCode(), resp.Body())
	}
	if n := ts.ops.askedCount(); n != asked {
		t.Errorf("livez asked the node %d times, want none", n-asked)
	}
	if resp := ts.roundTrip(t, rawRequest("POST", "/livez", nil), false); resp.StatusCode() != fasthttp.StatusMethodNotAllowed {
		t.Errorf("POST /livez = %d, want 405", resp.StatusCode())
	}
}
