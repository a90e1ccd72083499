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
// wrk scripts. The writes go through the client package, as the bench's own
// preload (load.PreloadKeys) does.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/ringkv/ringkv/bench/load"
	"github.com/ringkv/ringkv/client"
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
	if flag.NArg() != 0 || *keys < 0 || *valueSize < 0 || *conc < 1 || *timeout <= 0 {
		fmt.Fprintln(os.Stderr, "preload: bad arguments (see -h)")
		os.Exit(2)
	}
	cl, err := client.Config{Addrs: []string{*addr}, Token: *token, Timeout: *timeout, MaxIdleConnsPerHost: *conc}.New()
	if err != nil {
		fmt.Fprintf(os.Stderr, "preload: %v\n", err)
		os.Exit(2)
	}
	if err := waitListening(*addr, *wait); err != nil {
		fmt.Fprintf(os.Stderr, "preload: %v\n", err)
		os.Exit(1)
	}
	start := time.Now()
	err = load.PreloadKeys(context.Background(), load.PreloadOptions{
		Clients: []*client.Client{cl}, Keys: *keys, KeyPrefix: *prefix,
		Value: bytes.Repeat([]byte("x"), *valueSize), Concurrency: *conc, Shuffle: *shuffle,
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "%v\n", err)
		os.Exit(1)
	}
	d := time.Since(start)
	fmt.Printf("preload: %d keys of %d bytes to %s in %v (%.0f PUT/s)\n",
		*keys, *valueSize, *addr, d.Round(time.Millisecond), float64(*keys)/d.Seconds())
}

// waitListening dials addr until it accepts a connection or d has passed.
func waitListening(addr string, d time.Duration) error {
	if b, err := client.BaseURL(addr); err == nil {
		_, addr, _ = strings.Cut(b, "://") // HOST:PORT, the port defaulted
	}
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
