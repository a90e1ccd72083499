package httpd

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"github.com/ringkv/ringkv/peer/kv"
)

// benchStore is a Store that allocates nothing, so that the benchmarks
// count the handler's allocations only.
type benchStore struct{ val []byte }

var _ Store = benchStore{}

func (s benchStore) Get(ctx context.Context, dst, key []byte, c kv.Consistency) ([]byte, kv.Version, error) {
	return append(dst, s.val...), kv.Version{TS: 1 << 40, Node: 7}, nil
}

func (s benchStore) Put(ctx context.Context, key, value []byte, o kv.WriteOptions) (kv.Version, error) {
	return kv.Version{TS: 1 << 40, Node: 7}, nil
}

func (s benchStore) Delete(ctx context.Context, key []byte, o kv.WriteOptions) (kv.Version, error) {
	return kv.Version{TS: 1 << 40, Node: 7}, nil
}

func (s benchStore) Scan(ctx context.Context, q kv.ScanQuery) (kv.ScanPage, error) {
	return kv.ScanPage{}, nil
}

func (s benchStore) Batch(ctx context.Context, ops []kv.BatchOp, res []kv.BatchResult) error {
	for i := range ops {
		res[i] = kv.BatchResult{Version: kv.Version{TS: 1 << 40, Node: 7}}
		if ops[i].Kind == kv.BatchGet {
			res[i].Value = s.val
		}
	}
	return nil
}

func newBenchServer(b *testing.B) *Server {
	b.Helper()
	srv, err := New(Config{
		Registry: prometheus.NewRegistry(),
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	}, benchStore{val: make([]byte, 100)}, &fakeOps{})
	if err != nil {
		b.Fatal(err)
	}
	return srv
}

// benchRequest runs h on the request raw b.N times, resetting the
// response in between as the server does.
func benchRequest(b *testing.B, h fasthttp.RequestHandler, raw string, want int) {
	ctx := newRequestCtx(b, []byte(raw))
	h(ctx)
	if got := ctx.Response.StatusCode(); got != want {
		b.Fatalf("status %d, want %d: %q", got, want, ctx.Response.Body())
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		ctx.Response.Reset()
		h(ctx)
	}
}

// BenchmarkGet is GET /v1/kv/{key} of a 100-byte value through the
// handler: routing, key and argument parsing, the store call, headers and
// metrics.
func BenchmarkGet(b *testing.B) {
	b.Run("plain", func(b *testing.B) {
		benchRequest(b, newBenchServer(b).Handler(), "GET /v1/kv/user:12345 HTTP/1.1\r\nHost: x\r\n\r\n", 200)
	})
	b.Run("escaped", func(b *testing.B) {
		benchRequest(b, newBenchServer(b).Handler(), "GET /v1/kv/user%2F12345?consistency=one HTTP/1.1\r\nHost: x\r\n\r\n", 200)
	})
}

// BenchmarkPut is PUT /v1/kv/{key} of a 100-byte value through the handler.
func BenchmarkPut(b *testing.B) {
	body := string(make([]byte, 100))
	b.Run("plain", func(b *testing.B) {
		benchRequest(b, newBenchServer(b).Handler(), "PUT /v1/kv/user:12345 HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"+body, 204)
	})
	b.Run("ttl", func(b *testing.B) {
		benchRequest(b, newBenchServer(b).Handler(), "PUT /v1/kv/user:12345?ttl=90s&consistency=all HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"+body, 204)
	})
}

// BenchmarkBareGet is the floor BenchmarkGet is measured against: a bare
// fasthttp handler that calls the same store and writes the value, with
// no routing, validation, headers or metrics.
func BenchmarkBareGet(b *testing.B) {
	st := benchStore{val: make([]byte, 100)}
	bg := context.Background()
	h := func(ctx *fasthttp.RequestCtx) {
		buf := ctx.Response.SwapBody(nil)[:0]
		val, _, err := st.Get(bg, buf, ctx.Path()[len(kvPrefix):], kv.Quorum)
		if err != nil {
			ctx.SetStatusCode(500)
		}
		ctx.Response.SwapBody(val)
	}
	benchRequest(b, h, "GET /v1/kv/user:12345 HTTP/1.1\r\nHost: x\r\n\r\n", 200)
}

// BenchmarkServerGet is a GET through a whole fasthttp server on an
// in-memory connection, request after request, against the same bare
// handler as BenchmarkBareGet: the cost of httpd's routing, checks,
// headers and metrics next to fasthttp's own parsing and writing.
func BenchmarkServerGet(b *testing.B) {
	st := benchStore{val: make([]byte, 100)}
	bg := context.Background()
	bare := func(ctx *fasthttp.RequestCtx) {
		buf := ctx.Response.SwapBody(nil)[:0]
		val, _, _ := st.Get(bg, buf, ctx.Path()[len(kvPrefix):], kv.Quorum)
		ctx.Response.SwapBody(val)
	}
	for _, tc := range []struct {
		name string
		h    fasthttp.RequestHandler
	}{
		{"ringkv", newBenchServer(b).Handler()},
		{"bare", bare},
	} {
		b.Run(tc.name, func(b *testing.B) {
			ln := fasthttputil.NewInmemoryListener()
			srv := &fasthttp.Server{Handler: tc.h}
			go func() { _ = srv.Serve(ln) }()
			defer func() { _ = srv.Shutdown() }()
			c, err := ln.Dial()
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			req := []byte("GET /v1/kv/user:12345 HTTP/1.1\r\nHost: x\r\n\r\n")
			br := bufio.NewReader(c)
			var resp fasthttp.Response
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, err := c.Write(req); err != nil {
					b.Fatal(err)
				}
				if err := resp.Read(br); err != nil || resp.StatusCode() != 200 {
					b.Fatalf("%v %d", err, resp.StatusCode())
				}
			}
		})
	}
}
