package main

import (
	"net/url"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/valyala/fasthttp"
)

// TestKeysAsRingkvTakesThem: the baseline stores a PUT under the key
// ringkv would (the strict percent-decoding of the path after /v1/kv/,
// which url.PathUnescape also is, '+' staying '+'), for the keys the bench
// sends and for escaped ones, and answers a GET of it with the value.
func TestKeysAsRingkvTakesThem(t *testing.T) {
	db, err := pebble.Open("", &pebble.Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	h := &handler{db: db, wo: pebble.NoSync}
	do := func(method, raw, body string) *fasthttp.RequestCtx {
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.SetMethod(method)
		ctx.Request.SetRequestURI(kvPrefix + raw)
		ctx.Request.SetBodyString(body)
		h.serve(&ctx)
		return &ctx
	}
	for _, raw := range []string{"key-0", "key-99999", "a%20b", "%41%7e", "a+b", "caf%C3%A9", "100%25"} {
		want, err := url.PathUnescape(raw)
		if err != nil {
			t.Fatal(err)
		}
		if ctx := do("PUT", raw, "v-"+raw); ctx.Response.StatusCode() != fasthttp.StatusNoContent {
			t.Fatalf("PUT %s: %d", raw, ctx.Response.StatusCode())
		}
		v, closer, err := db.Get([]byte(want))
		if err != nil {
			t.Errorf("PUT %s: no key %q in Pebble: %v", raw, want, err)
			continue
		}
		if string(v) != "v-"+raw {
			t.Errorf("PUT %s: %q holds %q", raw, want, v)
		}
		closer.Close()
		if ctx := do("GET", raw, ""); ctx.Response.StatusCode() != fasthttp.StatusOK || string(ctx.Response.Body()) != "v-"+raw {
			t.Errorf("GET %s: %d %q", raw, ctx.Response.StatusCode(), ctx.Response.Body())
		}
	}
	if ctx := do("GET", "", ""); ctx.Response.StatusCode() != fasthttp.StatusBadRequest {
		t.Errorf("GET of the empty key: %d, want 400", ctx.Response.StatusCode())
	}
	if ctx := do("GET", "nope", ""); ctx.Response.StatusCode() != fasthttp.StatusNotFound {
		t.Errorf("GET of an absent key: %d, want 404", ctx.Response.StatusCode())
	}
}
