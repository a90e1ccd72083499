package main

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"syscall"
	"time"

	"github.com/ringkv/ringkv/compaction"
	"github.com/ringkv/ringkv/httpd"
	"github.com/ringkv/ringkv/peer"
)

// limitFlags are the serve flags that bound what clients can make a node
// do (see httpd.Limits and the hint bounds of peer.Config).
type limitFlags struct {
	maxConns, maxConnsPerIP int
	rateLimit               float64
	rateBurst               int
	maxScanBytes            int64
	maxConcurrentScans      int
	maxHintBytes            int64
	maxHintAge              time.Duration
}

func defaultLimitFlags() limitFlags {
	return limitFlags{
		maxConns:           defaultMaxConns(openFileLimit()),
		maxConnsPerIP:      httpd.DefaultMaxConnsPerIP,
		maxScanBytes:       httpd.DefaultMaxScanBytes,
		maxConcurrentScans: httpd.DefaultMaxConcurrentScans(),
		maxHintBytes:       peer.DefaultMaxHintBytes,
		maxHintAge:         peer.DefaultMaxHintAge,
	}
}

// defaultMaxConns is --max-conns's default for a file-descriptor limit of
// nofile: half of it, leaving the rest to Pebble's tables, the WAL, peer
// connections and transfers; at most httpd.DefaultMaxConns and at least 64.
func defaultMaxConns(nofile uint64) int {
	return int(min(max(nofile/2, 64), httpd.DefaultMaxConns))
}

// openFileLimit is the process's RLIMIT_NOFILE (the Go runtime has raised
// the soft limit to the hard one), or a common 1024 if it cannot be read.
func openFileLimit() uint64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur == 0 {
		return 1024
	}
	return rl.Cur
}

func (l *limitFlags) addFlags(fs *flag.FlagSet) {
	fs.IntVar(&l.maxConns, "max-conns", l.maxConns, fmt.Sprintf("most client and peer connections served at once; one more is answered 503 and closed (default: half the open-file limit, at most %d)", httpd.DefaultMaxConns))
	fs.IntVar(&l.maxConnsPerIP, "max-conns-per-ip", l.maxConnsPerIP, "most connections from one IP address, loopback included; one more is answered 429 and closed (0: no cap)")
	fs.Float64Var(&l.rateLimit, "rate-limit", l.rateLimit, "requests per second one client may make (one credential of --auth-file, else one IP address), internode calls exempt; past it 429 with Retry-After (0: no limit)")
	fs.IntVar(&l.rateBurst, "rate-burst", l.rateBurst, "requests a client may make at once above --rate-limit (default: --rate-limit rounded up)")
	fs.Var(sizeFlag{&l.maxScanBytes}, "max-scan-bytes", "largest scan page: it ends early, with next set, once its keys and values reach this")
	fs.IntVar(&l.maxConcurrentScans, "max-concurrent-scans", l.maxConcurrentScans, "most client scans run at once; one more waits up to 250ms for a slot, then is answered 429")
	fs.Var(sizeFlag{&l.maxHintBytes}, "max-hint-bytes", "most hints kept for one member that is down; past it its writes are not hinted and anti-entropy repairs it (0: no bound)")
	fs.DurationVar(&l.maxHintAge, "max-hint-age", l.maxHintAge, "oldest hint kept; older ones are dropped and anti-entropy repairs their member (0: no bound)")
}

func (l *limitFlags) validate() error {
	switch {
	case l.maxConns < 1:
		return fmt.Errorf("--max-conns (%d) must be positive", l.maxConns)
	case l.maxConnsPerIP < 0:
		return fmt.Errorf("--max-conns-per-ip (%d) must not be negative", l.maxConnsPerIP)
	case l.rateLimit < 0 || math.IsNaN(l.rateLimit) || math.IsInf(l.rateLimit, 0):
		return fmt.Errorf("--rate-limit (%v) must be 0 (off) or a positive number", l.rateLimit)
	case l.rateBurst < 0:
		return fmt.Errorf("--rate-burst (%d) must not be negative", l.rateBurst)
	case l.maxScanBytes < 1<<10 || l.maxScanBytes > 1<<30:
		return fmt.Errorf("--max-scan-bytes (%s) must be 1KiB to 1GiB", compaction.FormatSize(l.maxScanBytes))
	case l.maxConcurrentScans < 1:
		return fmt.Errorf("--max-concurrent-scans (%d) must be positive", l.maxConcurrentScans)
	case l.maxHintBytes < 0:
		return errors.New("--max-hint-bytes must not be negative")
	case l.maxHintAge < 0:
		return fmt.Errorf("--max-hint-age (%s) must not be negative", l.maxHintAge)
	}
	return nil
}

// httpd returns the flags as httpd's Limits.
func (l *limitFlags) httpd() httpd.Limits {
	perIP := l.maxConnsPerIP
	if perIP == 0 {
		perIP = -1 // httpd reads 0 as its default
	}
	return httpd.Limits{
		MaxConns:           l.maxConns,
		MaxConnsPerIP:      perIP,
		RateLimit:          l.rateLimit,
		RateBurst:          l.rateBurst,
		MaxScanBytes:       int(l.maxScanBytes),
		MaxConcurrentScans: l.maxConcurrentScans,
	}
}

// hintBounds returns --max-hint-bytes and --max-hint-age as peer.Config
// reads them: 0 means no bound here, peer.NoLimit there.
func (l *limitFlags) hintBounds() (maxBytes int64, maxAge time.Duration) {
	return zeroMeans(l.maxHintBytes, peer.NoLimit), zeroMeans(l.maxHintAge, peer.NoLimit)
}
