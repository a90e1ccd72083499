package main

import (
	"bytes"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/ringkv/ringkv/engine"
	"github.com/ringkv/ringkv/memtable"
)

// TestRun: pointread reads a loaded store in both distributions and
// reports a time a read and the LSM's shape; --compact leaves everything
// in the bottom level; a key the store lacks (--keys larger than what was
// loaded) fails naming it; each bad flag is named.
func TestRun(t *testing.T) {
	dir := t.TempDir()
	e, err := engine.Open(engine.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 500 {
		rec := memtable.Record{Version: memtable.Version{TS: uint64(i + 1), Node: 1}, Value: []byte("v")}
		if err := e.Write([]byte("key-"+strconv.Itoa(i)), &rec, false); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	base := config{dir: dir, keys: 500, reads: 1000, dist: "uniform", blockMiB: 8, warmRows: true}
	timing := regexp.MustCompile(`(?m)^500 keys, (uniform|zipf) reads: [0-9.]+µs a read warming, [0-9.]+µs timed; block cache 8MiB, row cache (0|32)MiB\n`)
	for _, c := range []config{base, {dir: dir, keys: 500, reads: 1000, dist: "zipf", blockMiB: 8, rowMiB: 32, warmRows: true}} {
		var out bytes.Buffer
		if err := run(c, &out); err != nil || !timing.MatchString(out.String()) {
			t.Fatalf("%+v: %v\n%s", c, err, out.String())
		}
		// With a row cache, its warm runs first and caches the whole store.
		if warmed := strings.HasPrefix(out.String(), "row cache warmed: 500 records in "); warmed != (c.rowMiB > 0) {
			t.Fatalf("%+v: row cache warm reported %v\n%s", c, warmed, out.String())
		}
	}
	compacted := base
	compacted.compact = true
	var out bytes.Buffer
	if err := run(compacted, &out); err != nil {
		t.Fatal(err)
	}
	if levels := regexp.MustCompile(`(?m)^L\d+: `).FindAllString(out.String(), -1); !strings.HasPrefix(out.String(), "compacted in ") ||
		len(levels) != 1 || levels[0] != "L6: " {
		t.Fatalf("--compact: want everything in L6\n%s", out.String())
	}

	missing := base
	missing.keys = 100000
	if err := run(missing, &out); err == nil || !strings.Contains(err.Error(), "reading key-") {
		t.Fatalf("reading keys that were never loaded: %v", err)
	}
	for want, mut := range map[string]func(*config){
		"--distribution":  func(c *config) { c.dist = "pareto" },
		"--row-cache-mib": func(c *config) { c.rowMiB = 8 },
		"--reads":         func(c *config) { c.reads = 0 },
		"--data-dir":      func(c *config) { c.dir = dir + "/none" },
	} {
		c := base
		mut(&c)
		if err := run(c, &out); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("bad %s: %v", want, err)
		}
	}
}
