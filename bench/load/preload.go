package load

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ringkv/ringkv/client"
)

// preloadSample is how many keys PreloadAuto reads to decide whether the
// keys are already there.
const preloadSample = 8

// PreloadOptions says what PreloadKeys writes: KeyPrefix0 .. KeyPrefix(Keys-1),
// each with Value.
type PreloadOptions struct {
	// Clients take the writes, each worker using one in turn (give one
	// per node, each failing over to the others, to spread the load).
	Clients     []*client.Client
	Keys        int
	KeyPrefix   string
	Value       []byte
	Concurrency int // writers at once (at least 1)
	// Shuffle writes the keys in a seeded random order rather than
	// key-0, key-1, ...: sequential keys land next to their neighbours
	// in a store ordered by key (like the baseline's), which flatters its
	// memtable reads; real clients write in no such order.
	Shuffle bool
}

// PreloadKeys PUTs every key of o, Concurrency at a time, and stops at the
// first failure (an error answer or a node that cannot be reached), which
// it returns naming the key.
func PreloadKeys(ctx context.Context, o PreloadOptions) error {
	if len(o.Clients) == 0 || o.Concurrency < 1 {
		return errors.New("load: PreloadKeys needs a client and a concurrency of at least 1")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		next     atomic.Int64
		errOnce  sync.Once
		firstErr error
		wg       sync.WaitGroup
	)
	order := func(n int64) int64 { return n }
	if o.Shuffle {
		perm := rand.New(rand.NewPCG(1, 2)).Perm(o.Keys)
		order = func(n int64) int64 { return int64(perm[n]) }
	}
	for w := range min(o.Concurrency, max(o.Keys, 1)) {
		cl := o.Clients[w%len(o.Clients)]
		wg.Go(func() {
			for ctx.Err() == nil {
				n := next.Add(1) - 1
				if n >= int64(o.Keys) {
					return
				}
				key := o.KeyPrefix + strconv.FormatInt(order(n), 10)
				if _, err := cl.Put(ctx, key, o.Value); err != nil {
					errOnce.Do(func() { firstErr = fmt.Errorf("preload: PUT %s: %s", key, oneLine(err.Error(), 200)) })
					cancel()
					return
				}
			}
		})
	}
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		return fmt.Errorf("preload interrupted: %w", context.Cause(ctx))
	}
	return firstErr
}

// keysPresent reads the first key, the last key and a few random ones from
// the first node: all there means a previous run or preload wrote them.
func keysPresent(ctx context.Context, hc *http.Client, base string, c *Config, seed uint64) (bool, error) {
	cl, err := client.Config{Addrs: []string{base}, Transport: hc.Transport, Timeout: c.Timeout}.New()
	if err != nil {
		return false, err
	}
	r := rand.New(rand.NewPCG(seed, 7))
	nums := []uint64{0, uint64(c.Keys - 1)}
	for len(nums) < preloadSample {
		nums = append(nums, r.Uint64N(uint64(c.Keys)))
	}
	for _, n := range nums {
		key := c.KeyPrefix + strconv.FormatUint(n, 10)
		_, _, err := cl.Get(ctx, key)
		switch {
		case errors.Is(err, client.ErrNotFound):
			return false, nil
		case err != nil:
			return false, fmt.Errorf("cannot check whether the keys exist: GET %s: %w", key, err)
		}
	}
	return true, nil
}

// preload PUTs every key, over c.Concurrency connections spread
// round-robin over the nodes, and stops at the first failure.
func preload(ctx context.Context, hc *http.Client, bases []string, c *Config, value []byte) error {
	o := PreloadOptions{Keys: c.Keys, KeyPrefix: c.KeyPrefix, Value: value, Concurrency: c.Concurrency}
	for i := range bases {
		// Each node first, the others behind it.
		addrs := append(append([]string(nil), bases[i:]...), bases[:i]...)
		cl, err := client.Config{Addrs: addrs, Transport: hc.Transport, Timeout: c.Timeout}.New()
		if err != nil {
			return err
		}
		o.Clients = append(o.Clients, cl)
	}
	return PreloadKeys(ctx, o)
}

// tlsOf returns c's TLS configuration, a verifying one when it has none.
func tlsOf(c *Config) *tls.Config {
	if c.TLS == nil {
		return &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return c.TLS
}

// newClient returns the HTTP client whose transport (the token, TLS,
// idle connections for c.Concurrency) the preload and the key check go
// through.
func newClient(c *Config) *http.Client {
	return &http.Client{
		Timeout: c.Timeout,
		Transport: tokenTransport{token: c.Token, base: &http.Transport{
			Proxy:               nil,
			MaxIdleConnsPerHost: c.Concurrency,
			IdleConnTimeout:     30 * time.Second,
			TLSClientConfig:     tlsOf(c),
		}},
		// A redirect must not carry the token elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
