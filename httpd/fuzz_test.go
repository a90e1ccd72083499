package httpd

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/ringkv/ringkv/peer/kv"
)

// fuzzSeeds are representative requests, one per route and error.
var fuzzSeeds = []string{
	"GET /v1/kv/a HTTP/1.1\r\nHost: x\r\n\r\n",
	"HEAD /v1/kv/a HTTP/1.1\r\nHost: x\r\n\r\n",
	"PUT /v1/kv/a%2Fb?consistency=one&ttl=1s HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
	"PUT /v1/kv/x/../y HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nv",
	"PUT /v1/kv/bad%zz HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nv",
	"PUT /v1/kv/k?ttl=-1s HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nv",
	"PUT /v1/kv/k?consistency=two HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nv",
	"PUT /v1/kv/big HTTP/1.1\r\nHost: x\r\nContent-Length: 65\r\n\r\n" + strings.Repeat("v", 65),
	"PUT /v1/kv/" + strings.Repeat("k", 17) + " HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nv",
	"PUT /v1/kv/k HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
	"DELETE /v1/kv/a?consistency=all HTTP/1.1\r\nHost: x\r\n\r\n",
	"POST /v1/kv/a HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nv",
	"GET /v1/kv?prefix=k&limit=2&after=a&encoding=base64 HTTP/1.1\r\nHost: x\r\n\r\n",
	"GET /v1/kv?limit=0 HTTP/1.1\r\nHost: x\r\n\r\n",
	"GET /kvstore?key=a HTTP/1.1\r\nHost: x\r\n\r\n",
	"POST /kvstore HTTP/1.1\r\nHost: x\r\nContent-Length: 25\r\n\r\n{\"key\":\"k\",\"value\":\"v\"}\n",
	"PUT /kvstore HTTP/1.1\r\nHost: x\r\nContent-Length: 22\r\n\r\n{\"key\":\"\",\"value\":\"v\"}",
	"POST /kvstore HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nnull",
	"DELETE /kvstore?key=a HTTP/1.1\r\nHost: x\r\n\r\n",
	"PATCH /kvstore HTTP/1.1\r\nHost: x\r\n\r\n",
	"GET /list-nodes HTTP/1.1\r\nHost: x\r\n\r\n",
	"GET /add-node?address=h:1 HTTP/1.1\r\nHost: x\r\n\r\n",
	"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
	"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
	"GET /v1/lsm HTTP/1.1\r\nHost: x\r\n\r\n",
	"POST /v1/admin/compact HTTP/1.1\r\nHost: x\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
	"GET /debug/pprof/ HTTP/1.1\r\nHost: x\r\n\r\n",
	"GET http://x/v1/kv/a?consistency=one HTTP/1.1\r\nHost: y\r\n\r\n",
	"GET /nope HTTP/1.0\r\n\r\n",
	"POST /v1/batch HTTP/1.1\r\nHost: x\r\nContent-Length: 44\r\n\r\n{\"ops\":[{\"op\":\"put\",\"key\":\"b\",\"value\":\"v\"}]}",
	"POST /v1/batch HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\r\n{\"ops\":[]}",
}

// FuzzRequest parses arbitrary bytes as an HTTP request and serves it.
// Whatever the input: no panic, a status from the expected set, a JSON
// {"error":...} body on every 4xx/5xx and valid JSON on every JSON answer,
// and a store left unchanged by every request that did not succeed; a
// successful PUT stores its body under the decoded key.
func FuzzRequest(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	st, ops := newFakeStore(), &fakeOps{}
	// Small limits, so that the fuzzer reaches both sides of them.
	srv, err := New(Config{
		Registry:     prometheus.NewRegistry(),
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
		MaxValueSize: 64,
		MaxKeySize:   16,
	}, st, ops)
	if err != nil {
		f.Fatal(err)
	}
	h := srv.Handler()
	allowed := map[int]bool{200: true, 201: true, 204: true, 400: true, 403: true, 404: true, 405: true, 413: true, 415: true, 501: true}

	f.Fuzz(func(t *testing.T, data []byte) {
		var req fasthttp.Request
		if err := req.ReadLimitBody(bufio.NewReader(bytes.NewReader(data)), 1<<16); err != nil {
			return // the server answers these itself (see TestGarbage)
		}
		st.mu.Lock()
		st.mu.m = map[string]fakeRec{
			"a":   {val: []byte("1"), ver: kv.Version{TS: 1, Node: 1}},
			"k/x": {val: []byte("v"), ver: kv.Version{TS: 2, Node: 1}},
		}
		st.mu.Unlock()
		before := st.snapshot()

		var ctx fasthttp.RequestCtx
		ctx.Init(&req, nil, nil)
		h(&ctx)

		code := ctx.Response.StatusCode()
		body := ctx.Response.Body()
		ct := ctx.Response.Header.ContentType()
		if !allowed[code] {
			t.Fatalf("status %d for %q; body %q", code, data, body)
		}
		if code >= 400 {
			checkJSONError(t, ct, body)
		} else if string(ct) == "application/json" && !json.Valid(body) {
			t.Fatalf("invalid JSON answer %q for %q", body, data)
		}
		if code >= 300 && !sameContent(before, st.snapshot()) {
			t.Fatalf("request %q answered %d but changed the store", data, code)
		}
		path := ctx.URI().PathOriginal()
		if code == fasthttp.StatusNoContent && ctx.IsPut() && bytes.HasPrefix(path, []byte(kvPrefix)) {
			key, err := percentDecode(nil, path[len(kvPrefix):])
			if err != nil {
				t.Fatalf("PUT %q succeeded with a malformed key", path)
			}
			r, ok := st.snapshot()[string(key)]
			if !ok || !bytes.Equal(r.val, ctx.Request.Body()) {
				t.Fatalf("PUT %q answered 204 but stored %q, want %q", path, r.val, ctx.Request.Body())
			}
		}
	})
}
