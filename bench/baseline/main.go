// Command baseline is the yardstick for ringkv's single-node HTTP path: a bare
// fasthttp server written straight onto Pebble, with ringkv's URL scheme and
// nothing else (no records, timestamps, merge operator, ring, coordinator or
// metrics).
//
//	GET    /v1/kv/{key}   200 with the value, 404 when absent
//	PUT    /v1/kv/{key}   body = value, 204
//	DELETE /v1/kv/{key}   204
//
// The key is the part of the path after /v1/kv/, percent-decoded, as
// ringkv takes it (fasthttp's decoding: the same key for every path
// without "//", dot segments or a malformed escape). Pebble is opened with the newest
// format, 10-bit bloom filters on every level and plain Set; with --sync
// (the default) writes use pebble.Sync, so concurrent PUTs share fsyncs
// through Pebble's commit pipeline.
//
// Usage:
//
//	baseline --addr 127.0.0.1:8090 --data-dir ./baseline-data --sync=true \
//	         --cache-size 256MiB --memtable-size 64MiB
//
// SIGINT or SIGTERM shuts the server down and closes Pebble.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"strconv"
	"strings"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/ringkv/ringkv/bench/internal/yardstick"
	"github.com/valyala/fasthttp"
)

const kvPrefix = "/v1/kv/"

func main() {
	addr := flag.String("addr", "127.0.0.1:8090", "HTTP listen address")
	dataDir := flag.String("data-dir", "./baseline-data", "Pebble directory")
	sync := flag.Bool("sync", true, "fsync the WAL before answering a PUT or DELETE (pebble.Sync)")
	cacheSize := sizeFlag(256 << 20)
	memtableSize := sizeFlag(64 << 20)
	flag.Var(&cacheSize, "cache-size", "block cache size (bytes, or with KiB/MiB/GiB)")
	flag.Var(&memtableSize, "memtable-size", "memtable size (bytes, or with KiB/MiB/GiB)")
	flag.Parse()
	if flag.NArg() != 0 {
		fmt.Fprintf(os.Stderr, "baseline: unexpected argument %q\n", flag.Arg(0))
		os.Exit(2)
	}
	if *dataDir == "" {
		fmt.Fprintln(os.Stderr, "baseline: --data-dir must not be empty")
		os.Exit(2)
	}

	cache := pebble.NewCache(int64(cacheSize))
	opts := &pebble.Options{
		Cache:              cache,
		MemTableSize:       uint64(memtableSize),
		FormatMajorVersion: pebble.FormatNewest,
	}
	for i := range opts.Levels {
		opts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	db, err := pebble.Open(*dataDir, opts)
	cache.Unref() // db holds its own reference
	if err != nil {
		log.Fatalf("baseline: open pebble: %v", err)
	}

	h := &handler{db: db, wo: pebble.NoSync}
	if *sync {
		h.wo = pebble.Sync
	}
	log.Printf("baseline: data in %s, sync=%v", *dataDir, *sync)
	code := 0
	if err := yardstick.Serve("baseline", *addr, h.serve); err != nil {
		log.Printf("baseline: serve: %v", err)
		code = 1
	}
	if err := db.Close(); err != nil {
		log.Printf("baseline: close pebble: %v", err)
		code = 1
	}
	os.Exit(code)
}

type handler struct {
	db *pebble.DB
	wo *pebble.WriteOptions
}

func (h *handler) serve(ctx *fasthttp.RequestCtx) {
	// fasthttp has percent-decoded (and normalized) the path while parsing
	// the request line, in ringkv as here, so taking the key from Path()
	// costs nothing more. ringkv decodes the original path itself (it must
	// keep "//" and dot segments, and refuse a bad escape); the keys differ
	// only for such paths, which no bench load sends.
	path := ctx.Path()
	if !bytes.HasPrefix(path, []byte(kvPrefix)) {
		ctx.Error("not found", fasthttp.StatusNotFound)
		return
	}
	key := path[len(kvPrefix):]
	if len(key) == 0 {
		ctx.Error("bad key", fasthttp.StatusBadRequest)
		return
	}
	switch {
	case ctx.IsGet():
		v, closer, err := h.db.Get(key)
		if errors.Is(err, pebble.ErrNotFound) {
			ctx.SetStatusCode(fasthttp.StatusNotFound)
			return
		}
		if err != nil {
			ctx.Error(err.Error(), fasthttp.StatusInternalServerError)
			return
		}
		ctx.SetBody(v) // copies
		closer.Close()
	case ctx.IsPut():
		if err := h.db.Set(key, ctx.PostBody(), h.wo); err != nil {
			ctx.Error(err.Error(), fasthttp.StatusInternalServerError)
			return
		}
		ctx.SetStatusCode(fasthttp.StatusNoContent)
	case ctx.IsDelete():
		if err := h.db.Delete(key, h.wo); err != nil {
			ctx.Error(err.Error(), fasthttp.StatusInternalServerError)
			return
		}
		ctx.SetStatusCode(fasthttp.StatusNoContent)
	default:
		ctx.Response.Header.Set("Allow", "GET, PUT, DELETE")
		ctx.Error("method not allowed", fasthttp.StatusMethodNotAllowed)
	}
}

// sizeFlag is a byte count that also accepts KiB, MiB and GiB suffixes.
type sizeFlag int64

func (s *sizeFlag) String() string { return strconv.FormatInt(int64(*s), 10) }

func (s *sizeFlag) Set(v string) error {
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"B", 1}} {
		if strings.HasSuffix(v, u.suffix) {
			v, mult = strings.TrimSuffix(v, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || n <= 0 {
		return fmt.Errorf("want a positive size such as 64MiB")
	}
	*s = sizeFlag(n * mult)
	return nil
}
