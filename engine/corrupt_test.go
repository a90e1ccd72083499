package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/ringkv/ringkv/memtable"
)

// corruptKeys is how many keys the corruption tests write: enough for an
// SSTable of many blocks.
const corruptKeys = 2000

func corruptKey(i int) []byte { return fmt.Appendf(nil, "key-%05d", i) }

// openDisk opens an engine on the OS filesystem at dir.
func openOSDir(t *testing.T, dir string) (*Engine, error) {
	t.Helper()
	return Open(Options{Dir: dir, FS: vfs.Default, Logger: quiet(), GCInterval: -1, SkipRowCacheWarm: true, RowCacheSize: -1})
}

// writeFlushed fills a store at dir with corruptKeys keys and a metadata
// value, flushed to one SSTable, and closes it.
func writeFlushed(t *testing.T, dir string) {
	t.Helper()
	e, err := openOSDir(t, dir)
	must(t, err)
	must(t, e.SetMeta("node-id", []byte("n1")))
	for i := range corruptKeys {
		must(t, e.Write(corruptKey(i), rec(uint64(i+1), 1, strings.Repeat("v", 100)), false))
	}
	must(t, e.Flush())
	must(t, e.Close())
}

// largestTable returns the path and size of the largest .sst in dir.
func largestTable(t *testing.T, dir string) (string, int64) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	must(t, err)
	var path string
	var size int64
	for _, en := range ents {
		fi, err := en.Info()
		must(t, err)
		if strings.HasSuffix(en.Name(), ".sst") && fi.Size() > size {
			path, size = filepath.Join(dir, en.Name()), fi.Size()
		}
	}
	if path == "" {
		t.Fatalf("no .sst in %s", dir)
	}
	return path, size
}

// flipAt overwrites 16 bytes of the file at path at off (negative: from
// the end).
func flipAt(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	must(t, err)
	defer f.Close()
	if off < 0 {
		fi, err := f.Stat()
		must(t, err)
		off += fi.Size()
	}
	b := make([]byte, 16)
	_, err = f.ReadAt(b, off)
	must(t, err)
	for i := range b {
		b[i] ^= 0x5a
	}
	_, err = f.WriteAt(b, off)
	must(t, err)
}

// corruptStore writes a store and flips a block in the middle of its
// SSTable; it returns the table's path.
func corruptStore(t *testing.T, dir string) string {
	t.Helper()
	writeFlushed(t, dir)
	path, size := largestTable(t, dir)
	flipAt(t, path, size/2)
	return path
}

func TestCorruptBlockFailsReadsNotTheProcess(t *testing.T) {
	dir := t.TempDir()
	path := corruptStore(t, dir)
	e, err := openOSDir(t, dir)
	must(t, err)
	defer e.Close()

	var failed int
	for i := range corruptKeys {
		_, _, err := e.Get(nil, corruptKey(i))
		if err == nil {
			continue
		}
		failed++
		if !errors.Is(err, ErrCorruption) {
			t.Fatalf("read of key %d: %v, want ErrCorruption", i, err)
		}
		if !strings.Contains(err.Error(), filepath.Base(path)) || strings.Contains(err.Error(), "\n") {
			t.Fatalf("error %q does not name %s in one line", err, filepath.Base(path))
		}
	}
	// The keys of the damaged block fail; those of the file's other
	// blocks still read (Pebble checks each block it reads).
	if failed == 0 || failed > corruptKeys/4 {
		t.Fatalf("%d of %d reads failed; want those of one block", failed, corruptKeys)
	}
	if lsm := e.LSM(); lsm.Corruption.Events != int64(failed) {
		t.Fatalf("%d corruption events for %d failed reads", lsm.Corruption.Events, failed)
	}
	spans := e.Corruption()
	if len(spans) != 1 || spans[0].File != filepath.Base(path) || spans[0].State != CorruptDamaged || !spans[0].Data {
		t.Fatalf("Corruption() = %+v, want %s damaged", spans, filepath.Base(path))
	}
	if sp := spans[0]; sp.Lo > Token(corruptKey(0)) || (sp.Hi != 0 && sp.Hi <= Token(corruptKey(0))) {
		t.Fatalf("span %s misses the table's keys", sp.TokenSpan())
	}
	// The flush wrote the metadata to a table of its own (keyspacePolicy).
	if got := spans[0].Other; len(got) != 0 {
		t.Fatalf("other keyspaces %v, want none: a data table holds only data", got)
	}
	lsm := e.LSM()
	if lsm.Corruption.Events < 1 || len(lsm.Corruption.Spans) != 1 {
		t.Fatalf("LSM corruption = %+v", lsm.Corruption)
	}
	reg := prometheus.NewRegistry()
	must(t, reg.Register(e.Collector()))
	if n, err := testutil.GatherAndCount(reg, "ringkv_corruption_errors_total"); err != nil || n != 1 {
		t.Fatalf("ringkv_corruption_errors_total series = %d, %v", n, err)
	}
	mfs, err := reg.Gather()
	must(t, err)
	for _, mf := range mfs {
		if mf.GetName() == "ringkv_corruption_errors_total" {
			if v := mf.GetMetric()[0].GetCounter().GetValue(); v < 1 {
				t.Fatalf("ringkv_corruption_errors_total = %v", v)
			}
		}
	}
	// Metadata, in its own table, still reads.
	if v, err := e.GetMeta("node-id"); err != nil || string(v) != "n1" {
		t.Fatalf("GetMeta = %q, %v", v, err)
	}
	// A scan over the damage fails with the same error.
	err = e.Scan(context.Background(), nil, func([]byte, memtable.Record) (bool, error) { return true, nil })
	if !errors.Is(err, ErrCorruption) {
		t.Fatalf("scan: %v, want ErrCorruption", err)
	}
}

func TestCorruptCompactionDoesNotKill(t *testing.T) {
	dir := t.TempDir()
	corruptStore(t, dir)
	e, err := openOSDir(t, dir)
	must(t, err)
	defer e.Close()
	// The manual compaction reads every block: it fails, the process lives.
	if err := e.Compact(context.Background()); err == nil {
		t.Fatal("compaction over a damaged block succeeded")
	}
	if e.LSM().Corruption.Events < 1 {
		t.Fatal("the damage met by the compaction was not reported")
	}
	// Pebble does not retry a failed manual compaction by itself: the
	// background errors stay few.
	time.Sleep(300 * time.Millisecond)
	if n := e.LSM().BackgroundErrs; n > 5 {
		t.Fatalf("%d background errors: a compaction spins on the damaged file", n)
	}
}

func TestExciseCorrupt(t *testing.T) {
	dir := t.TempDir()
	path := corruptStore(t, dir)
	e, err := openOSDir(t, dir)
	must(t, err)
	defer e.Close()
	for i := range corruptKeys {
		e.Get(nil, corruptKey(i))
	}
	sp, err := e.ExciseCorrupt(context.Background(), path)
	must(t, err)
	if sp.State != CorruptExcised {
		t.Fatalf("state %q after excise", sp.State)
	}
	// Until repaired, the span stays out of service.
	if _, _, err := e.Get(nil, corruptKey(7)); !errors.Is(err, ErrCorruption) || !strings.Contains(err.Error(), "repaired") {
		t.Fatalf("read after excise: %v, want ErrCorruption (being repaired)", err)
	}
	// The damaged data is gone: a full compaction now succeeds, and the
	// metadata kept in the same file survived.
	must(t, e.Compact(context.Background()))
	if v, err := e.GetMeta("node-id"); err != nil || string(v) != "n1" {
		t.Fatalf("GetMeta after excise = %q, %v", v, err)
	}
	// Repaired: a write (as anti-entropy would pull it) reads back.
	must(t, e.Write(corruptKey(7), rec(1<<40, 2, "back"), true))
	e.Repaired(path)
	if v, _, err := e.Get(nil, corruptKey(7)); err != nil || string(v) != "back" {
		t.Fatalf("read after repair = %q, %v", v, err)
	}
	if _, _, err := e.Get(nil, corruptKey(8)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("read of an excised key not yet pulled back: %v, want ErrNotFound", err)
	}
	spans := e.Corruption()
	if len(spans) != 1 || spans[0].State != CorruptRepaired {
		t.Fatalf("Corruption() after repair = %+v", spans)
	}
	// Clean now, as Check sees it once closed.
	must(t, e.Close())
	rep, err := Check(dir, vfs.Default)
	must(t, err)
	if len(rep.Damaged) != 0 {
		t.Fatalf("Check after excise: %+v", rep.Damaged)
	}
}

func TestCorruptFooterFailsOpen(t *testing.T) {
	dir := t.TempDir()
	writeFlushed(t, dir)
	path, _ := largestTable(t, dir)
	flipAt(t, path, -20)
	e, err := openOSDir(t, dir)
	if err == nil {
		e.Close()
		t.Fatal("Open of a store with a damaged footer succeeded")
	}
	msg := err.Error()
	if !errors.Is(err, ErrCorruption) || !strings.Contains(msg, filepath.Base(path)) || strings.Contains(msg, "\n") || !strings.Contains(msg, "ringkv check") {
		t.Fatalf("Open: %q; want one line naming %s and ringkv check", msg, filepath.Base(path))
	}
}

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	writeFlushed(t, dir)
	rep, err := Check(dir, vfs.Default)
	must(t, err)
	if len(rep.Damaged) != 0 || rep.Tables == 0 {
		t.Fatalf("Check of a clean store: %+v", rep)
	}
	path, size := largestTable(t, dir)
	before, err := os.ReadFile(path)
	must(t, err)
	flipAt(t, path, size/2)
	after, err := os.ReadFile(path)
	must(t, err)
	rep, err = Check(dir, vfs.Default)
	must(t, err)
	if len(rep.Damaged) != 1 || rep.Damaged[0].File != filepath.Base(path) || rep.Damaged[0].Kind != "table" || rep.Damaged[0].Error == "" {
		t.Fatalf("Check: %+v, want %s damaged", rep.Damaged, filepath.Base(path))
	}
	if !rep.Damaged[0].Data || rep.Damaged[0].Smallest == "" {
		t.Fatalf("Check names no span: %+v", rep.Damaged[0])
	}
	// Read-only: the file is as it was left, nothing was rewritten.
	now, err := os.ReadFile(path)
	must(t, err)
	if string(now) != string(after) || string(now) == string(before) {
		t.Fatal("Check changed the table")
	}
	// A store held open by a live engine is refused.
	flipAt(t, path, size/2) // undo
	e, err := openOSDir(t, dir)
	must(t, err)
	defer e.Close()
	if _, err := Check(dir, vfs.Default); !errors.Is(err, ErrLocked) {
		t.Fatalf("Check of a live store: %v, want ErrLocked", err)
	}
}

// copyDir copies the files of a live store, as a crash would leave them
// (every acknowledged write is fsynced in them).
func copyDir(t *testing.T, from string) string {
	t.Helper()
	to := t.TempDir()
	ents, err := os.ReadDir(from)
	must(t, err)
	for _, en := range ents {
		if en.Name() == "LOCK" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(from, en.Name()))
		must(t, err)
		must(t, os.WriteFile(filepath.Join(to, en.Name()), b, 0o644))
	}
	return to
}

// capture is a slog handler that keeps the records it gets.
type capture struct {
	mu   sync.Mutex
	recs []string
}

func (c *capture) Enabled(context.Context, slog.Level) bool { return true }
func (c *capture) Handle(_ context.Context, r slog.Record) error {
	s := r.Level.String() + " " + r.Message
	r.Attrs(func(a slog.Attr) bool { s += " " + a.String(); return true })
	c.mu.Lock()
	c.recs = append(c.recs, s)
	c.mu.Unlock()
	return nil
}
func (c *capture) WithAttrs([]slog.Attr) slog.Handler { return c }
func (c *capture) WithGroup(string) slog.Handler      { return c }

func (c *capture) find(s string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range c.recs {
		if strings.Contains(r, s) {
			return r
		}
	}
	return ""
}

// Bytes flipped in the newest WAL's last fsynced records: Pebble drops
// the writes from there on as a torn tail; the engine says so at WARN,
// naming the file and offset. A clean crash copy says nothing.
func TestWALTailDamageIsLogged(t *testing.T) {
	dir := t.TempDir()
	e, err := openOSDir(t, dir)
	must(t, err)
	defer e.Close()
	const n = 300
	for i := range n {
		must(t, e.Write(corruptKey(i), rec(uint64(i+1), 1, strings.Repeat("v", 100)), true))
	}
	open := func(dir string) (*Engine, *capture) {
		c := &capture{}
		e, err := Open(Options{Dir: dir, FS: vfs.Default, Logger: slog.New(c), GCInterval: -1, SkipRowCacheWarm: true, RowCacheSize: -1})
		must(t, err)
		return e, c
	}
	clean, c := open(copyDir(t, dir))
	if r := c.find("WAL replay stopped"); r != "" {
		t.Fatalf("a clean crash copy warned: %s", r)
	}
	for i := range n {
		if _, _, err := clean.Get(nil, corruptKey(i)); err != nil {
			t.Fatalf("clean copy lacks key %d: %v", i, err)
		}
	}
	must(t, clean.Close())

	// At the tail, and in the middle: Pebble v2.1.7 drops the rest of the
	// newest WAL from the first record it cannot read either way.
	for _, where := range []string{"tail", "middle"} {
		bad := copyDir(t, dir)
		ents, err := os.ReadDir(bad)
		must(t, err)
		var wal string
		for _, en := range ents {
			if strings.HasSuffix(en.Name(), ".log") && en.Name() > wal {
				wal = en.Name()
			}
		}
		st, err := os.Stat(filepath.Join(bad, wal))
		must(t, err)
		off := st.Size() - 200
		if where == "middle" {
			off = st.Size() / 2
		}
		flipAt(t, filepath.Join(bad, wal), off)
		e2, c := open(bad)
		r := c.find("WAL replay stopped")
		if r == "" || !strings.Contains(r, "WARN") || !strings.Contains(r, wal) || !strings.Contains(r, "offset=") {
			t.Fatalf("%s: no WARN naming %s and the offset; logs: %q", where, wal, c.recs)
		}
		missing := 0
		for i := range n {
			if _, _, err := e2.Get(nil, corruptKey(i)); errors.Is(err, ErrNotFound) {
				missing++
			}
		}
		must(t, e2.Close())
		if missing == 0 {
			t.Fatalf("%s: no write was dropped: the flip missed the records", where)
		}
		t.Logf("%s: %d of %d fsynced writes dropped; %s", where, missing, n, r)
	}
}

// A damaged MANIFEST stops Open with one line naming it, never a panic.
func TestCorruptManifestFailsOpen(t *testing.T) {
	dir := t.TempDir()
	writeFlushed(t, dir)
	// A second flush, so the MANIFEST holds edits past its first record.
	e, err := openOSDir(t, dir)
	must(t, err)
	must(t, e.Write(corruptKey(1), rec(1<<40, 1, "again"), false))
	must(t, e.Flush())
	must(t, e.Close())
	ents, err := os.ReadDir(dir)
	must(t, err)
	var manifest string
	for _, en := range ents {
		if strings.HasPrefix(en.Name(), "MANIFEST-") {
			manifest = en.Name()
		}
	}
	st, err := os.Stat(filepath.Join(dir, manifest))
	must(t, err)
	flipAt(t, filepath.Join(dir, manifest), st.Size()/2)
	e, err = openOSDir(t, dir)
	if err == nil {
		// Pebble may read a MANIFEST cut at the damage as a shorter one;
		// then the store it opens must still check.
		e.Close()
		t.Skip("Pebble opened the damaged MANIFEST")
	}
	if msg := err.Error(); !strings.Contains(msg, manifest) || strings.Contains(msg, "\n") || !strings.Contains(msg, "ringkv check") {
		t.Fatalf("Open: %q; want one line naming %s and ringkv check", msg, manifest)
	}
	rep, err := Check(dir, vfs.Default)
	must(t, err)
	if len(rep.Damaged) == 0 {
		t.Fatal("Check found nothing in a store that does not open")
	}
}
