package load

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// preloadSample is how many keys PreloadAuto reads to decide whether the
// keys are already there.
const preloadSample = 8

// keysPresent reads the first key, the last key and a few random ones from
// the first node: all there (200) means a previous run or preload wrote them.
func keysPresent(ctx context.Context, hc *http.Client, base string, c *Config, seed uint64) (bool, error) {
	r := rand.New(rand.NewPCG(seed, 7))
	nums := []uint64{0, uint64(c.Keys - 1)}
	for len(nums) < preloadSample {
		nums = append(nums, r.Uint64N(uint64(c.Keys)))
	}
	for _, n := range nums {
		u := base + "/v1/kv/" + url.PathEscape(c.KeyPrefix) + strconv.FormatUint(n, 10)
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return false, err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return false, fmt.Errorf("cannot check whether the keys exist: %w", err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusOK:
		case http.StatusNotFound:
			return false, nil
		default:
			return false, fmt.Errorf("cannot check whether the keys exist: GET %s: %s", u, resp.Status)
		}
	}
	return true, nil
}

// preload PUTs every key, over c.Concurrency connections spread
// round-robin over the nodes, and stops at the first failure.
func preload(ctx context.Context, hc *http.Client, bases []string, c *Config, value []byte) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		next     atomic.Int64
		errOnce  sync.Once
		firstErr error
		wg       sync.WaitGroup
	)
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err })
		cancel()
	}
	prefix := url.PathEscape(c.KeyPrefix)
	workers := min(c.Concurrency, c.Keys)
	for w := range workers {
		wg.Go(func() {
			base := bases[w%len(bases)]
			for ctx.Err() == nil {
				n := next.Add(1) - 1
				if n >= int64(c.Keys) {
					return
				}
				u := base + "/v1/kv/" + prefix + strconv.FormatInt(n, 10)
				req, err := http.NewRequestWithContext(ctx, http.MethodPut, u, bytes.NewReader(value))
				if err != nil {
					fail(err)
					return
				}
				resp, err := hc.Do(req)
				if err != nil {
					fail(fmt.Errorf("preload: PUT %s: %w", u, err))
					return
				}
				body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
				resp.Body.Close()
				if resp.StatusCode/100 != 2 {
					fail(fmt.Errorf("preload: PUT %s: %s %s", u, resp.Status, oneLine(string(body), 200)))
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

// tlsOf returns c's TLS configuration, a verifying one when it has none.
func tlsOf(c *Config) *tls.Config {
	if c.TLS == nil {
		return &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return c.TLS
}

// newClient returns the HTTP client of the preload and the key check.
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
