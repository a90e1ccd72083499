package main

import (
	"strconv"
	"strings"
	"testing"

	"github.com/ringkv/ringkv/engine"
	"github.com/ringkv/ringkv/memtable"
)

// TestRun: pointread reads a loaded store in both distributions, with and
// without compacting it, and fails naming a key the store lacks (a
// --keys larger than what was loaded).
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
	for _, dist := range []string{"uniform", "zipf"} {
		if err := run(dir, 500, 1000, dist, 8, 0, dist == "zipf", ""); err != nil {
			t.Fatalf("%s: %v", dist, err)
		}
	}
	if err := run(dir, 100000, 1000, "uniform", 8, 32, false, ""); err == nil || !strings.Contains(err.Error(), "reading key-") {
		t.Fatalf("reading keys that were never loaded: %v", err)
	}
	if err := run(dir, 500, 1000, "pareto", 8, 0, false, ""); err == nil {
		t.Fatal("an unknown distribution was accepted")
	}
}
