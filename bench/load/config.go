// Package load is the engine of `ringkv bench`: it drives a workload from
// bench/workload against one or more ringkv nodes over the HTTP API with
// the vegeta library (an Attacker fed by a custom Targeter), shows live
// progress, samples each node's Pebble metrics from GET /v1/lsm once a
// second, and writes the run's figures to report.json and a self-contained
// report.html where latency spikes can be read against the LSM series
// (L0 sublevels, compaction debt, write stalls, flushes) on one time axis.
//
// A GET answered 404 is a miss, not an error: a read workload over keys
// that were never written still measures the read path. Every other answer
// outside 2xx, and every transport error, is an error.
package load

import (
	"crypto/tls"
	"fmt"
	"github.com/ringkv/ringkv/client"
	"io"
	"os"
	"strings"
	"time"

	"github.com/ringkv/ringkv/bench/workload"
)

// Preload says whether the keys are written before the measured run.
type Preload string

// The --preload modes.
const (
	// PreloadAuto writes the keys before a workload that reads (every one
	// but put) unless a sample of them is already there.
	PreloadAuto Preload = "auto"
	// PreloadAlways writes every key before the run.
	PreloadAlways Preload = "always"
	// PreloadNever starts the run at once.
	PreloadNever Preload = "never"
)

// ParsePreload returns the mode named s.
func ParsePreload(s string) (Preload, error) {
	switch p := Preload(strings.ToLower(strings.TrimSpace(s))); p {
	case PreloadAuto, PreloadAlways, PreloadNever:
		return p, nil
	}
	return "", fmt.Errorf("--preload %q: want auto, always or never", s)
}

// Config is one run of `ringkv bench`. The comment on each field names its
// flag.
type Config struct {
	Addrs        []string              // --addr: HOST:PORT or http://HOST:PORT, requests go round-robin
	Workload     workload.Workload     // --workload
	Duration     time.Duration         // --duration
	Rate         int                   // --rate: requests per second in all; 0 is as fast as the clients go
	Concurrency  int                   // --concurrency: requests in flight at most (vegeta workers)
	Keys         int                   // --keys: key-0 .. key-(keys-1)
	ValueSize    int                   // --value-size: bytes per PUT
	Distribution workload.Distribution // --distribution
	ZipfTheta    float64               // --zipf-theta
	ScanLimit    int                   // --scan-limit: the limit of each scan request
	BatchSize    int                   // --batch-size: items per POST /v1/batch (batch-put, batch-get)
	KeyPrefix    string                // --key-prefix
	Preload      Preload               // --preload
	Timeout      time.Duration         // --timeout: per request
	Seed         uint64                // --seed: 0 picks one from the clock
	Out          string                // --out: the directory for report.json and report.html
	Token        string                // --token (RINGKV_TOKEN): the bearer token of a node with --auth-file
	// TLS verifies https:// nodes (--cacert) and presents a client
	// certificate (--cert, --key); nil means the system roots.
	TLS *tls.Config

	// Progress receives the live progress lines (nil: none). With
	// ProgressTTY each update rewrites one line with \r.
	Progress    io.Writer
	ProgressTTY bool
	// Interval is how often progress is shown and /v1/lsm sampled
	// (default 1s; tests shorten it).
	Interval time.Duration
	// OnRunEnd, when set, is called once the measured requests are
	// done, before cas reads its counters back: where a driver that
	// measures the servers' CPU over the run reads it (compare api).
	OnRunEnd func()
}

// DefaultConfig returns the defaults of `ringkv bench`.
func DefaultConfig() Config {
	return Config{
		Addrs:        []string{"127.0.0.1:8080"},
		Workload:     workload.B,
		Duration:     30 * time.Second,
		Concurrency:  64,
		Keys:         100000,
		ValueSize:    100,
		Distribution: workload.Zipf,
		ZipfTheta:    workload.DefaultZipfTheta,
		ScanLimit:    100,
		BatchSize:    100,
		KeyPrefix:    workload.DefaultKeyPrefix,
		Preload:      PreloadAuto,
		Timeout:      10 * time.Second,
		Out:          "ringkv-bench",
		Interval:     time.Second,
	}
}

// Limits enforced by Validate.
const (
	maxConcurrency = 100000
	maxValueSize   = 64 << 20
	maxScanLimit   = 10000 // the API's own bound on limit
)

// Validate returns the first bad setting as one line naming its flag.
func (c *Config) Validate() error {
	if len(c.Addrs) == 0 {
		return fmt.Errorf("--addr: want at least one HOST:PORT")
	}
	for _, a := range c.Addrs {
		if _, err := BaseURL(a); err != nil {
			return err
		}
	}
	if _, err := workload.ParseWorkload(string(c.Workload)); err != nil {
		return err
	}
	if _, err := workload.ParseDistribution(string(c.Distribution)); err != nil {
		return err
	}
	if _, err := ParsePreload(string(c.Preload)); err != nil {
		return err
	}
	switch {
	case c.Duration <= 0:
		return fmt.Errorf("--duration (%s) must be positive", c.Duration)
	case c.Rate < 0:
		return fmt.Errorf("--rate (%d) must be 0 (as fast as the clients go) or positive", c.Rate)
	case c.Concurrency < 1 || c.Concurrency > maxConcurrency:
		return fmt.Errorf("--concurrency (%d) must be between 1 and %d", c.Concurrency, maxConcurrency)
	case c.Keys < 1:
		return fmt.Errorf("--keys (%d) must be at least 1", c.Keys)
	case c.ValueSize < 0 || c.ValueSize > maxValueSize:
		return fmt.Errorf("--value-size (%d) must be between 0 and %d", c.ValueSize, maxValueSize)
	case c.Distribution == workload.Zipf && !(c.ZipfTheta > 0 && c.ZipfTheta < 1):
		return fmt.Errorf("--zipf-theta (%g) must be between 0 and 1 (exclusive)", c.ZipfTheta)
	case c.ScanLimit < 1 || c.ScanLimit > maxScanLimit:
		return fmt.Errorf("--scan-limit (%d) must be between 1 and %d", c.ScanLimit, maxScanLimit)
	case c.BatchSize < 1 || c.BatchSize > MaxBatchSize:
		return fmt.Errorf("--batch-size (%d) must be between 1 and %d", c.BatchSize, MaxBatchSize)
	case c.Workload == workload.CAS && c.Rate != 0:
		return fmt.Errorf("--rate (%d): the cas workload runs closed-loop, as fast as its --concurrency workers go; leave --rate at 0", c.Rate)
	case c.Workload == workload.CAS && c.Preload == PreloadAlways:
		return fmt.Errorf("--preload always: the cas workload makes its own counters (preloaded values would not be counters)")
	case c.KeyPrefix == "":
		return fmt.Errorf("--key-prefix must not be empty")
	case c.Timeout <= 0:
		return fmt.Errorf("--timeout (%s) must be positive", c.Timeout)
	case c.Out == "":
		return fmt.Errorf("--out must name a directory")
	}
	if fi, err := os.Stat(c.Out); err == nil && !fi.IsDir() {
		return fmt.Errorf("--out %q is a file, not a directory", c.Out)
	}
	return nil
}

// BaseURL turns an --addr entry (HOST[:PORT] or http(s)://HOST[:PORT]; the
// port defaults to ringkv's 8080, as for every command) into the base URL
// requests are made against, without a trailing slash.
func BaseURL(addr string) (string, error) {
	u, err := client.BaseURL(addr)
	if err != nil {
		return "", fmt.Errorf("--addr %q: want HOST[:PORT] or http://HOST[:PORT]", addr)
	}
	return u, nil
}
