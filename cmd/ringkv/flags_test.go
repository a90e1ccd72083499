package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ringkv/ringkv/compaction"
	"github.com/ringkv/ringkv/engine"
	"github.com/ringkv/ringkv/httpd"
	"github.com/ringkv/ringkv/peer"
)

// TestServeFlagErrors: a bad value stops serve with one line naming the
// flag (and the variable it came from) and exit code 2, before anything
// is opened.
func TestServeFlagErrors(t *testing.T) {
	t.Chdir(t.TempDir()) // no stray .env, and no data dir left behind
	f := func(env map[string]string, wantInMsg string, args ...string) {
		t.Helper()
		for k, v := range env {
			t.Setenv(k, v)
		}
		var out, errb bytes.Buffer
		code := run(append([]string{"serve"}, args...), nil, &out, &errb)
		msg := errb.String()
		if code != exitUsage || strings.Count(msg, "\n") != 1 || !strings.Contains(msg, wantInMsg) || out.Len() != 0 {
			t.Fatalf("serve %v (env %v): exit %d, stderr %q, stdout %d bytes; want exit 2, one line containing %q and nothing on stdout",
				args, env, code, msg, out.Len(), wantInMsg)
		}
		for k := range env {
			os.Unsetenv(k)
		}
		if _, err := os.Stat("ringkv-data"); err == nil {
			t.Fatalf("serve %v created a data directory despite the bad flag", args)
		}
	}
	f(nil, "--memtable-size", "--memtable-size", "lots")
	f(nil, "--memtable-size", "--memtable-size", "-1MiB")
	f(nil, "--memtable-size", "--memtable-size", "512KiB")
	f(nil, "--l0-stop-writes-threshold", "--l0-compaction-threshold", "8", "--l0-stop-writes-threshold", "8")
	f(nil, "--compaction-profile", "--compaction-profile", "fast")
	f(nil, "--node-id", "--node-id", strings.Repeat("n", 256)) // NewNode's limit: a usage error, not exit 1
	f(nil, "--sync", "--sync=maybe")
	f(nil, "--row-cache-warm", "--row-cache-warm=maybe")
	f(nil, "--replicas", "--replicas", "0")
	f(nil, "--http-addr", "--http-addr", "localhost")
	f(nil, "--request-timeout", "--request-timeout", "0s")
	f(nil, "--max-clock-offset", "--max-clock-offset", "0s")
	f(nil, "--max-clock-offset", "--max-clock-offset", "2m")
	f(nil, "--max-clock-offset", "--max-clock-offset", "soon")
	f(nil, "--tombstone-grace", "--tombstone-grace", "soon")
	f(nil, "--log-level", "--log-level", "loud")
	f(nil, "--join", "--join", "127.0.0.1:7946,nohost")
	f(nil, "--advertise-http-addr", "--advertise-http-addr", "0.0.0.0:8080")
	f(nil, "--advertise-http-addr", "--advertise-http-addr", "[::]")
	f(nil, "--advertise-gossip-addr", "--advertise-gossip-addr", "host:0")
	f(nil, "--advertise-gossip-addr", "--advertise-gossip-addr", "a b:7946")
	f(map[string]string{"RINGKV_ADVERTISE_HTTP_ADDR": "0.0.0.0"}, "--advertise-http-addr", "--node-id", "n")
	f(nil, "--bootstrap-expect", "--bootstrap-expect", "-1", "--join", "127.0.0.1:7946")
	f(nil, "--bootstrap-expect 3 needs --join", "--bootstrap-expect", "3")
	f(nil, "--join-timeout", "--join-timeout", "-1s")
	f(nil, "--row-cache-size", "--row-cache-size", "1MiB")
	f(nil, "--node-id", "--node-id", strings.Repeat("n", 1025))
	f(nil, "--mutex-profile-fraction", "--mutex-profile-fraction", "-1")
	f(nil, "--block-profile-rate", "--block-profile-rate", "-1s")
	f(nil, "--profile-on-stall", "--profile-on-stall", "/proc/no/such/dir")
	f(nil, "--cluster-secret-file", "--cluster-secret-file", "/no/such/secrets")
	f(nil, "--cluster-name", "--cluster-name", "")
	f(nil, "nope", "--nope")
	f(nil, "unexpected argument", "extra")
	f(map[string]string{"RINGKV_MEMTABLE_SIZE": "huge"}, "RINGKV_MEMTABLE_SIZE")
	f(map[string]string{"RINGKV_BLOOM_BITS_PER_KEY": "99"}, "--bloom-bits-per-key")
	f(map[string]string{"NODE_ADDRESS": "not an address"}, "NODE_ADDRESS")
}

// TestServeConfigSources: flags beat RINGKV_* variables, which beat
// NODE_ADDRESS, which beats .env, which beats the defaults; overrides change
// exactly their knob of the profile.
func TestServeConfigSources(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if err := os.WriteFile(filepath.Join(dir, ".env"), []byte("NODE_ADDRESS=http://127.0.0.1:9999/\nRINGKV_VNODES=64\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	parse := func(args ...string) (serveConfig, compaction.Tuning) {
		t.Helper()
		c, tu, err := parseServe(args, newEnviron(), &bytes.Buffer{})
		if err != nil {
			t.Fatal(err)
		}
		return c, tu
	}
	c, tu := parse()
	if c.httpAddr != "127.0.0.1:9999" || c.vnodes != 64 {
		t.Fatalf(".env not applied: addr %q vnodes %d", c.httpAddr, c.vnodes)
	}
	want, _ := compaction.ProfileTuning(compaction.Balanced)
	if tu != want {
		t.Fatalf("default tuning %+v, want balanced %+v", tu, want)
	}
	t.Setenv("NODE_ADDRESS", ":7000")
	if c, _ = parse(); c.httpAddr != "127.0.0.1:7000" {
		t.Fatalf("NODE_ADDRESS from the environment: %q", c.httpAddr)
	}
	t.Setenv("RINGKV_HTTP_ADDR", "127.0.0.1:7001")
	if c, _ = parse(); c.httpAddr != "127.0.0.1:7001" {
		t.Fatalf("RINGKV_HTTP_ADDR: %q", c.httpAddr)
	}
	if c, _ = parse("--http-addr", "127.0.0.1:7002"); c.httpAddr != "127.0.0.1:7002" {
		t.Fatalf("--http-addr: %q", c.httpAddr)
	}
	t.Setenv("RINGKV_COMPACTION_PROFILE", "write-heavy")
	t.Setenv("RINGKV_MEMTABLE_SIZE", "256MiB")
	_, tu = parse("--block-cache-size", "1GiB")
	wh, _ := compaction.ProfileTuning(compaction.WriteHeavy)
	wh.MemTableSize, wh.BlockCacheSize = 256<<20, 1<<30
	if tu != wh {
		t.Fatalf("tuning %+v, want %+v", tu, wh)
	}
	if c, _ = parse(); c.minFreeSpace != (engine.FreeSpace{}) {
		t.Fatalf("default --min-free-space %+v", c.minFreeSpace)
	}
	t.Setenv("RINGKV_MIN_FREE_SPACE", "5%")
	if c, _ = parse(); c.minFreeSpace != (engine.FreeSpace{Percent: 5}) {
		t.Fatalf("RINGKV_MIN_FREE_SPACE=5%%: %+v", c.minFreeSpace)
	}
	if c, _ = parse("--min-free-space", "64MiB"); c.minFreeSpace != (engine.FreeSpace{Bytes: 64 << 20}) {
		t.Fatalf("--min-free-space 64MiB: %+v", c.minFreeSpace)
	}
}

// TestServeFlagValidate: the values the libraries' Validate refuses are
// refused before serve opens anything, in the flags' names.
func TestServeFlagValidate(t *testing.T) {
	t.Chdir(t.TempDir()) // no stray .env
	f := func(want string, args ...string) {
		t.Helper()
		_, _, err := parseServe(args, newEnviron(), &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("serve %v: %v, want an error containing %q", args, err, want)
		}
	}
	f("--replicas (17) must be 1 to 16", "--replicas", "17")
	f("--vnodes (5000) must be 1 to 4096", "--vnodes", "5000")
	f("--node-id (256 bytes) must be at most 255 bytes", "--node-id", strings.Repeat("n", 256))
	f("--request-timeout (-1s) must be positive", "--request-timeout", "-1s")
	f("--transfer-rate (0B) must be positive", "--transfer-rate", "0")
	f("--anti-entropy-rate (0B) must be positive", "--anti-entropy-rate", "0")
	f("--anti-entropy-interval (0s) must be positive", "--anti-entropy-interval", "0")
	// -1ns is peer.Off as a duration: no flag may turn anti-entropy off
	// with it, nor give tombstones no grace or hints no age bound.
	f("--anti-entropy-interval (-1ns) must be positive", "--anti-entropy-interval", "-1ns")
	f("--tombstone-grace (-1ns) must not be negative", "--tombstone-grace", "-1ns")
	f("--max-hint-age (-1ns) must not be negative", "--max-hint-age", "-1ns")
	// A flag's 0 that means none is taken.
	if _, _, err := parseServe([]string{"--tombstone-grace", "0", "--max-hint-bytes", "0", "--max-hint-age", "0", "--row-cache-size", "0"}, newEnviron(), &bytes.Buffer{}); err != nil {
		t.Errorf("the flags' 0s: %v", err)
	}
}

// TestServeFlagDefaults: each serve flag's default is the library constant
// it comes from, so the two cannot drift apart; and the libraries'
// defaults that must agree do.
func TestServeFlagDefaults(t *testing.T) {
	c := defaultServeConfig()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	c.addFlags(fs)
	size := func(n int64) string { return compaction.FormatSize(n) }
	for name, want := range map[string]string{
		"http-addr":             httpd.DefaultAddr,
		"data-dir":              "./" + engine.DefaultDir,
		"replicas":              strconv.Itoa(peer.DefaultReplicas),
		"vnodes":                strconv.Itoa(peer.DefaultVNodes),
		"request-timeout":       peer.DefaultRequestTimeout.String(),
		"tombstone-grace":       peer.DefaultTombstoneGrace.String(),
		"transfer-rate":         size(peer.DefaultTransferRate),
		"anti-entropy-interval": peer.DefaultAntiEntropyInterval.String(),
		"anti-entropy-rate":     size(peer.DefaultAntiEntropyRate),
		"max-clock-offset":      peer.DefaultMaxClockOffset.String(),
		"cluster-name":          peer.DefaultClusterName,
		"max-value-size":        size(httpd.DefaultMaxValueSize),
		"row-cache-size":        size(engine.DefaultRowCacheSize),
		"compaction-profile":    string(compaction.Balanced),
		"max-hint-bytes":        size(peer.DefaultMaxHintBytes),
		"max-hint-age":          peer.DefaultMaxHintAge.String(),
		"max-conns-per-ip":      strconv.Itoa(httpd.DefaultMaxConnsPerIP),
		"max-scan-bytes":        size(httpd.DefaultMaxScanBytes),
	} {
		f := fs.Lookup(name)
		if f == nil {
			t.Errorf("no flag --%s", name)
			continue
		}
		if f.DefValue != want {
			t.Errorf("--%s defaults to %q, want the library's %q", name, f.DefValue, want)
		}
	}
	if peer.DefaultTombstoneGrace != engine.DefaultTombstoneGrace {
		t.Errorf("peer's tombstone grace %s, the engine's %s", peer.DefaultTombstoneGrace, engine.DefaultTombstoneGrace)
	}
	if !strings.Contains(fs.Lookup("min-free-space").Usage, "smaller of 512MiB and 2%") {
		t.Errorf("--min-free-space's help: %q", fs.Lookup("min-free-space").Usage)
	}
	// The flags' defaults give the libraries their defaults.
	pc := c.peerConfig()
	var want peer.Config
	want.EnsureDefaults()
	if pc.Replicas != want.Replicas || pc.VNodes != want.VNodes || pc.RequestTimeout != want.RequestTimeout ||
		pc.TransferRate != want.TransferRate || pc.AntiEntropyInterval != want.AntiEntropyInterval ||
		pc.AntiEntropyRate != want.AntiEntropyRate || pc.TombstoneGrace != want.TombstoneGrace ||
		pc.MaxHintBytes != want.MaxHintBytes || pc.MaxHintAge != want.MaxHintAge ||
		pc.HedgeAfter != want.HedgeAfter || pc.HintInterval != want.HintInterval {
		t.Errorf("the default flags give peer %+v, want its defaults %+v", pc, want)
	}
	if err := pc.Validate(); err != nil {
		t.Errorf("the default flags' peer.Config: %v", err)
	}
}

// TestServeFlagZeros: where a flag's 0 means none, the library gets its
// explicit off value (its own 0 would be its default), in the engine as
// in peer.
func TestServeFlagZeros(t *testing.T) {
	c := defaultServeConfig()
	c.tombstoneGrace, c.rowCacheSize, c.limits.maxHintBytes, c.limits.maxHintAge = 0, 0, 0, 0
	pc := c.peerConfig()
	if pc.TombstoneGrace != peer.NoGrace || pc.MaxHintBytes != peer.NoLimit || pc.MaxHintAge != peer.NoLimit {
		t.Errorf("peer gets grace %s, hint bounds %d, %s; want NoGrace, NoLimit, NoLimit", pc.TombstoneGrace, pc.MaxHintBytes, pc.MaxHintAge)
	}
	eo := c.engineOptions(compaction.Tuning{})
	if eo.GC.TombstoneGrace != engine.NoGrace || eo.RowCacheSize != engine.Off {
		t.Errorf("engine gets grace %s, row cache %d; want NoGrace, Off", eo.GC.TombstoneGrace, eo.RowCacheSize)
	}
	if err := eo.EnsureDefaults(); err != nil || eo.GC.TombstoneGrace != engine.NoGrace || eo.RowCacheSize != engine.Off {
		t.Errorf("EnsureDefaults turned the off values into %s, %d (%v)", eo.GC.TombstoneGrace, eo.RowCacheSize, err)
	}
	c.tombstoneGrace = time.Hour
	if pc, eo := c.peerConfig(), c.engineOptions(compaction.Tuning{}); pc.TombstoneGrace != time.Hour || eo.GC.TombstoneGrace != time.Hour {
		t.Errorf("--tombstone-grace 1h gives peer %s, the engine %s", pc.TombstoneGrace, eo.GC.TombstoneGrace)
	}
}

func TestMinFreeSpaceFlag(t *testing.T) {
	f := func(in string, want engine.FreeSpace, ok bool) {
		t.Helper()
		var v engine.FreeSpace
		err := freeSpaceFlag{&v}.Set(in)
		if (err == nil) != ok || (ok && v != want) {
			t.Errorf("Set(%q) = %+v, %v; want %+v ok=%v", in, v, err, want, ok)
		}
		if ok && (freeSpaceFlag{&v}).String() != strings.TrimSpace(in) && in != "0%" {
			t.Errorf("Set(%q) prints %q", in, freeSpaceFlag{&v}.String())
		}
	}
	f("512MiB", engine.FreeSpace{Bytes: 512 << 20}, true)
	f("2%", engine.FreeSpace{Percent: 2}, true)
	f(" 0.5% ", engine.FreeSpace{Percent: 0.5}, true)
	f("0", engine.FreeSpace{Off: true}, true)
	f("0%", engine.FreeSpace{Off: true}, true)
	f("100%", engine.FreeSpace{}, false)
	f("-1%", engine.FreeSpace{}, false)
	f("lots", engine.FreeSpace{}, false)
	f("%", engine.FreeSpace{}, false)
}

func TestParseSize(t *testing.T) {
	f := func(in string, want int64, ok bool) {
		t.Helper()
		got, err := parseSize(in)
		if (err == nil) != ok || (ok && got != want) {
			t.Fatalf("parseSize(%q) = %d, %v; want %d ok=%v", in, got, err, want, ok)
		}
	}
	f("64MiB", 64<<20, true)
	f("1.5GiB", 3<<29, true)
	f("100MB", 100_000_000, true)
	f("4096", 4096, true)
	f("4096B", 4096, true)
	f("1K", 1024, true)
	f(" 2 MiB ", 2<<20, true)
	f("", 0, false)
	f("MiB", 0, false)
	f("-1", 0, false)
	f("ten", 0, false)
	f("99999999999TiB", 0, false)
	f("NaN", 0, false)
	// A set size flag prints what parses back to its value.
	var v int64
	for _, in := range []string{"64MiB", "1000B", "2TiB", "1536KiB"} {
		if err := (sizeFlag{&v}).Set(in); err != nil || (sizeFlag{&v}).String() != in {
			t.Fatalf("size flag set to %s prints %q (%v)", in, sizeFlag{&v}.String(), err)
		}
	}
}

func TestRunUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(nil, nil, &out, &errb); code != exitUsage {
		t.Fatalf("no args: exit %d", code)
	}
	if code := run([]string{"frobnicate"}, nil, &out, &errb); code != exitUsage || !strings.Contains(errb.String(), "unknown command") {
		t.Fatalf("unknown command: exit %d %q", code, errb.String())
	}
	out.Reset()
	if code := run([]string{"version"}, nil, &out, &errb); code != exitOK || !strings.HasPrefix(out.String(), "ringkv ") {
		t.Fatalf("version: exit %d %q", code, out.String())
	}
	out.Reset()
	if code := run([]string{"serve", "-h"}, nil, &out, &errb); code != exitOK || !strings.Contains(out.String(), "--memtable-size") && !strings.Contains(out.String(), "-memtable-size") {
		t.Fatalf("serve -h: exit %d %q", code, out.String())
	}
}
