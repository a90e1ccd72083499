package engine

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/ringkv/ringkv/memtable"
)

// tablesOf opens the store at dir read-only and returns each live table's
// file name and the keyspaces its bounds cover.
func tablesOf(t *testing.T, dir string) map[string][]string {
	t.Helper()
	db, err := pebble.Open(dir, &pebble.Options{ReadOnly: true, FS: vfs.Default, Merger: memtable.NewMerger(), Logger: pebbleLogger{log: quiet(), fs: vfs.Default}})
	must(t, err)
	defer db.Close()
	_, backs, err := liveBackings(db)
	must(t, err)
	out := map[string][]string{}
	for name, ts := range backs {
		sp := tableSpan(name, filepath.Join(dir, name), ts, errors.New("-"), timeNow())
		var spaces []string
		if sp.Data {
			spaces = append(spaces, "data")
		}
		out[name] = append(spaces, sp.Other...)
	}
	return out
}

// writeMixed fills a store at dir with data, hints for two targets and
// metadata, and compacts it all into the bottom level.
func writeMixed(t *testing.T, dir string) {
	t.Helper()
	e, err := openOSDir(t, dir)
	must(t, err)
	must(t, e.SetMeta("node-id", []byte("n1")))
	for i := range corruptKeys {
		must(t, e.Write(corruptKey(i), rec(uint64(i+1), 1, strings.Repeat("v", 100)), false))
		if i%4 == 0 {
			must(t, e.AddHint("n2", corruptKey(i), rec(uint64(i+1), 1, "h").Append(nil)))
		}
	}
	must(t, e.Compact(context.Background()))
	must(t, e.Close())
}

// TestKeyspacesInTheirOwnTables: flushes and compactions never write a
// table that spans two keyspaces, so damage to one keyspace's table
// leaves the others readable.
func TestKeyspacesInTheirOwnTables(t *testing.T) {
	dir := t.TempDir()
	writeMixed(t, dir)
	tables := tablesOf(t, dir)
	seen := map[string]bool{}
	for name, spaces := range tables {
		if len(spaces) != 1 {
			t.Errorf("table %s spans keyspaces %v", name, spaces)
		}
		for _, s := range spaces {
			seen[s] = true
		}
	}
	if !seen["data"] || !seen["hints"] || !seen["metadata"] {
		t.Fatalf("tables %v: want data, hints and metadata among them", tables)
	}
}

// tableWith returns the path of the table in dir whose only keyspace is
// space.
func tableWith(t *testing.T, dir, space string) string {
	t.Helper()
	for name, spaces := range tablesOf(t, dir) {
		if len(spaces) == 1 && spaces[0] == space {
			return filepath.Join(dir, name)
		}
	}
	t.Fatalf("no table of %s alone in %s", space, dir)
	return ""
}

func openKeeping(t *testing.T, dir string) (*Engine, error) {
	t.Helper()
	return Open(Options{Dir: dir, FS: vfs.Default, Logger: quiet(), GCInterval: -1, SkipRowCacheWarm: true, RowCacheSize: -1, KeepDamaged: true})
}

// TestUnreadableDataTableIsKept: with KeepDamaged, a data table whose
// footer is damaged opens as a damaged span out of service (reads of it
// fail with ErrCorruption, never a wrong "not found"), the rest of the
// store serves, and an excise takes the file out of the store.
func TestUnreadableDataTableIsKept(t *testing.T) {
	dir := t.TempDir()
	writeMixed(t, dir)
	path := tableWith(t, dir, "data")
	flipAt(t, path, -20)

	e, err := openKeeping(t, dir)
	must(t, err)
	defer e.Close()
	spans := e.Corruption()
	if len(spans) != 1 || spans[0].File != filepath.Base(path) || !spans[0].Unreadable || spans[0].State != CorruptDamaged || !spans[0].Data {
		t.Fatalf("Corruption() = %+v, want %s unreadable", spans, filepath.Base(path))
	}
	for i := range corruptKeys {
		if _, _, err := e.Get(nil, corruptKey(i)); !errors.Is(err, ErrCorruption) {
			t.Fatalf("read of key %d in the unreadable table: %v, want ErrCorruption", i, err)
		}
	}
	if v, err := e.GetMeta("node-id"); err != nil || string(v) != "n1" {
		t.Fatalf("GetMeta = %q, %v", v, err)
	}
	if n := e.PendingHints()["n2"]; n != corruptKeys/4 {
		t.Fatalf("%d hints for n2, want %d", n, corruptKeys/4)
	}
	if health := e.Health(); len(health) != 0 {
		// Corruption is the peer layer's report (it knows whether it can
		// repair); the engine's own health is disk and fatal errors.
		t.Logf("engine health: %+v", health)
	}
	// Writes keep working while the span is out of service.
	must(t, e.Write([]byte("fresh"), rec(1<<40, 1, "x"), true))

	sp, err := e.ExciseCorrupt(context.Background(), path)
	must(t, err)
	if sp.State != CorruptExcised {
		t.Fatalf("after excise: state %s", sp.State)
	}
	e.Repaired(path)
	if _, _, err := e.Get(nil, corruptKey(0)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("read after excise and repair: %v, want not found (nothing was pulled back)", err)
	}
	must(t, e.Close())
	rep, err := Check(dir, vfs.Default)
	must(t, err)
	if len(rep.Damaged) != 0 {
		t.Fatalf("Check after the excise: %+v", rep.Damaged)
	}
}

// TestUnreadableHintsTable: a hints table that cannot be read is excised
// whole, and the hint counts are taken again.
func TestUnreadableHintsTable(t *testing.T) {
	dir := t.TempDir()
	writeMixed(t, dir)
	path := tableWith(t, dir, "hints")
	flipAt(t, path, -20)
	e, err := openKeeping(t, dir)
	must(t, err)
	defer e.Close()
	spans := e.Corruption()
	if len(spans) != 1 || spans[0].Data || !slices.Equal(spans[0].Other, []string{"hints"}) {
		t.Fatalf("Corruption() = %+v, want one hints table", spans)
	}
	if _, _, err := e.Get(nil, corruptKey(0)); err != nil {
		t.Fatalf("data read beside a damaged hints table: %v", err)
	}
	if _, err := e.ExciseCorrupt(context.Background(), path); err != nil {
		t.Fatal(err)
	}
	if n := e.PendingHints()["n2"]; n != 0 {
		t.Fatalf("%d hints counted after the excise, want 0", n)
	}
	hs, err := e.Hints(context.Background(), "n2", 10)
	if err != nil || len(hs) != 0 {
		t.Fatalf("Hints after the excise: %d, %v", len(hs), err)
	}
}

// TestUnreadableMetadataFailsOpen: no replica gives metadata back, so a
// damaged metadata table stops the open with one line naming it.
func TestUnreadableMetadataFailsOpen(t *testing.T) {
	dir := t.TempDir()
	writeMixed(t, dir)
	path := tableWith(t, dir, "metadata")
	flipAt(t, path, -20)
	e, err := openKeeping(t, dir)
	if err == nil {
		e.Close()
		t.Fatal("Open with a damaged metadata table succeeded")
	}
	msg := err.Error()
	if !errors.Is(err, ErrCorruption) || !strings.Contains(msg, filepath.Base(path)) || !strings.Contains(msg, "metadata") || strings.Contains(msg, "\n") {
		t.Fatalf("Open: %q", msg)
	}
}
