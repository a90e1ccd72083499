// Command preload writes the keys that the wrk scripts in bench/wrk read, so
// their GETs hit: it PUTs key-0 .. key-(N-1), each with a value of
// --value-size bytes, over --concurrency connections to one ringkv (or
// baseline) node, and exits non-zero on the first error or non-2xx answer.
//
// Usage:
//
//	preload --addr 127.0.0.1:8080 --keys 100000 --value-size 100 --concurrency 64
//
// --keys and --value-size default to $KEYS and $VALUE_SIZE when set, like the
// wrk scripts.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "host:port of the node")
	keys := flag.Int("keys", envInt("KEYS", 100000), "number of keys (key-0 .. key-(N-1))")
	valueSize := flag.Int("value-size", envInt("VALUE_SIZE", 100), "value size in bytes")
	conc := flag.Int("concurrency", 64, "concurrent connections")
	prefix := flag.String("prefix", "key-", "key prefix")
	timeout := flag.Duration("timeout", 10*time.Second, "per-request timeout")
	wait := flag.Duration("wait", 0, "first wait up to this long for --addr to accept connections")
	token := flag.String("token", os.Getenv("TOKEN"), "bearer token of a node with --auth-file (default $TOKEN, as the wrk scripts)")
	shuffle := flag.Bool("shuffle", envBool("SHUFFLE"), "write the keys in a random order (default $SHUFFLE) rather than key-0, key-1, ...")
	flag.Parse()
	if flag.NArg() != 0 || *keys < 0 || *valueSize < 0 || *conc < 1 {
		fmt.Fprintln(os.Stderr, "preload: bad arguments (see -h)")
		os.Exit(2)
	}
	if err := waitListening(*addr, *wait); err != nil {
		fmt.Fprintf(os.Stderr, "preload: %v\n", err)
		os.Exit(1)
	}

	client := &fasthttp.HostClient{Addr: *addr, MaxConns: *conc}
	value := bytes.Repeat([]byte("x"), *valueSize)
	path := "/v1/kv/" + url.PathEscape(*prefix)
	var (
		next     atomic.Int64
		failed   atomic.Bool
		errOnce  sync.Once
		firstErr error
		wg       sync.WaitGroup
	)
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err })
		failed.Store(true)
	}
	// order maps the n-th write to its key number: identity, or a seeded
	// permutation. Sequential writes of key-0, key-1, ... land next to their
	// neighbours in a store ordered by key (like the baseline's), which
	// flatters its memtable reads; real clients write in no such order.
	order := func(n int64) int64 { return n }
	if *shuffle {
		perm := rand.New(rand.NewPCG(1, 2)).Perm(*keys)
		order = func(n int64) int64 { return int64(perm[n]) }
	}
	start := time.Now()
	for range *conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := fasthttp.AcquireRequest()
			resp := fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			uri := make([]byte, 0, len(path)+20)
			for !failed.Load() {
				n := next.Add(1) - 1
				if n >= int64(*keys) {
					return
				}
				uri = strconv.AppendInt(append(uri[:0], path...), order(n), 10)
				req.Reset()
				req.Header.SetMethod(fasthttp.MethodPut)
				req.SetRequestURIBytes(uri)
				req.Header.SetHost(*addr)
				if *token != "" {
					req.Header.Set("Authorization", "Bearer "+*token)
				}
				req.SetBody(value)
				if err := client.DoTimeout(req, resp, *timeout); err != nil {
					fail(fmt.Errorf("PUT %s: %w", uri, err))
					return
				}
				if c := resp.StatusCode(); c < 200 || c > 299 {
					fail(fmt.Errorf("PUT %s: status %d: %.200s", uri, c, resp.Body()))
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		fmt.Fprintf(os.Stderr, "preload: %v\n", firstErr)
		os.Exit(1)
	}
	d := time.Since(start)
	fmt.Printf("preload: %d keys of %d bytes to %s in %v (%.0f PUT/s)\n",
		*keys, *valueSize, *addr, d.Round(time.Millisecond), float64(*keys)/d.Seconds())
}

// waitListening dials addr until it accepts a connection or d has passed.
func waitListening(addr string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			return c.Close()
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("%s not accepting connections: %w", addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

func envBool(name string) bool {
	v, _ := strconv.ParseBool(os.Getenv(name))
	return v
}
