package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/ringkv/ringkv/memtable"
)

// ErrLocked is returned by Check for a data directory that a running node
// (or another Check) holds open.
var ErrLocked = errors.New("engine: the data directory is in use (Pebble's LOCK is held): stop the node first, or check a copy")

// CheckReport is what Check found.
type CheckReport struct {
	Dir string `json:"dir"`
	// Tables and Bytes count the SSTables whose every block was verified;
	// Files names every live SSTable, damaged or not (files in the
	// directory not named here are obsolete, awaiting deletion).
	Tables int      `json:"tables"`
	Bytes  int64    `json:"bytes"`
	Files  []string `json:"files"`
	// WALTails lists WALs whose replay stopped before bytes that do not
	// read as records: a write torn by a crash, or damage (see WALTail).
	// They do not make the store damaged: Pebble opens it without them.
	WALTails []WALTail `json:"wal_tails,omitempty"`
	// Damaged lists each damaged file (Kind "table", or "store" when the
	// store itself cannot be opened: its MANIFEST, a WAL, or a file the
	// MANIFEST names); empty when the store is clean.
	Damaged []CorruptSpan `json:"damaged"`
}

// Check verifies a data directory offline: it opens the store read-only
// (which reads the MANIFEST and replays the WALs, changing nothing on
// disk), then reads every block of every live SSTable against its
// checksum, as `pebble sstable check` does. It refuses a directory whose
// LOCK is held (ErrLocked). A damaged store is a report, not an error:
// errors are for a directory that cannot be checked at all.
func Check(dir string, fs vfs.FS) (rep CheckReport, err error) {
	rep.Dir = dir
	if fs == nil {
		fs = vfs.Default
	}
	if _, err := fs.Stat(dir); err != nil {
		return rep, fmt.Errorf("cannot check %s: %w", dir, err)
	}
	if names, _ := fs.List(dir); manifestIn(names) == "" {
		return rep, fmt.Errorf("cannot check %s: not a ringkv data directory (no MANIFEST)", dir)
	}
	lock, err := pebble.LockDirectory(dir, fs)
	if err != nil {
		if who := lockHolder(fs.PathJoin(dir, "LOCK")); who != "" && fs == vfs.Default {
			return rep, fmt.Errorf("cannot check %s: %w: held by %s (%v)", dir, ErrLocked, who, err)
		}
		return rep, fmt.Errorf("cannot check %s: %w (%v)", dir, ErrLocked, err)
	}
	defer lock.Close()

	c := checker{rep: &rep}
	po := &pebble.Options{
		FS: fs, ReadOnly: true, Lock: lock, Merger: memtable.NewMerger(),
		Logger:        pebbleLogger{log: slog.New(slog.NewTextHandler(io.Discard, nil)), fs: fs, onTail: c.walTail},
		EventListener: &pebble.EventListener{DataCorruption: c.corruption},
	}
	po.EnsureDefaults()
	e := &Engine{opts: Options{Dir: dir, FS: fs}, now: timeNow}
	db, _, err := e.openPebble(po, true)
	if err != nil {
		return rep, c.unopened(fs, dir, err)
	}
	defer db.Close()
	if err := c.tables(db, fs, dir, po.MakeReaderOptions()); err != nil {
		return rep, err
	}
	// Damage Pebble met on its own (table stats) in a file not seen above.
	c.mu.Lock()
	for _, f := range c.found {
		if !containsFile(rep.Damaged, f.File) {
			rep.Damaged = append(rep.Damaged, f)
		}
	}
	c.mu.Unlock()
	return rep, nil
}

// checker gathers what one Check finds: from Pebble's listeners, which may
// call it on Pebble's goroutines, and from its own reads.
type checker struct {
	rep   *CheckReport
	mu    sync.Mutex
	found []CorruptSpan // DataCorruption events
}

func (c *checker) corruption(info pebble.DataCorruptionInfo) {
	c.mu.Lock()
	c.found = append(c.found, spanOfCorruption(info, timeNow()))
	c.mu.Unlock()
}

func (c *checker) walTail(t WALTail) {
	c.mu.Lock()
	c.rep.WALTails = append(c.rep.WALTails, t)
	c.mu.Unlock()
}

// unopened reports the store that does not open: that is the damage found
// (an error only when there is no store at all).
func (c *checker) unopened(fs vfs.FS, dir string, err error) error {
	var oe *openError
	if errors.As(err, &oe) && errors.Is(err, pebble.ErrDBDoesNotExist) {
		return fmt.Errorf("cannot check %s: %w", dir, err)
	}
	sp := CorruptSpan{Kind: "store", State: CorruptDamaged, Error: err.Error()}
	if info := pebble.ExtractDataCorruptionInfo(err); info != nil {
		sp = spanOfCorruption(*info, timeNow())
	} else if m := manifestName(fs, dir); m != "" {
		sp.File, sp.Path = m, fs.PathJoin(dir, m)
	}
	c.rep.Damaged = append(c.rep.Damaged, sp)
	return nil
}

// tables verifies every live SSTable of db.
func (c *checker) tables(db *pebble.DB, fs vfs.FS, dir string, ropts sstable.ReaderOptions) error {
	order, backs, err := liveBackings(db)
	if err != nil {
		return fmt.Errorf("cannot list the tables of %s: %w", dir, err)
	}
	rep := c.rep
	for _, name := range order {
		tables := backs[name]
		path := fs.PathJoin(dir, name)
		rep.Files = append(rep.Files, name)
		size, bad, verr := validateTable(fs, path, ropts, tables)
		if verr == nil {
			rep.Tables++
			rep.Bytes += size
			continue
		}
		rep.Damaged = append(rep.Damaged, tableSpan(name, path, []pebble.SSTableInfo{bad}, verr, timeNow()))
	}
	return nil
}

// validateTable verifies the SSTable at path, which backs tables: every
// block against its checksum when one of them is the whole file, else
// (virtual tables only) the index and every data block within their
// bounds, read through an iterator (each block read is checksummed). It
// returns the file's size and, on damage, the table that met it.
func validateTable(fs vfs.FS, path string, ropts sstable.ReaderOptions, tables []pebble.SSTableInfo) (int64, pebble.SSTableInfo, error) {
	bad := tables[0]
	st, err := fs.Stat(path)
	if err != nil {
		return 0, bad, err
	}
	r, err := newTableReader(context.Background(), fs, path, ropts)
	if err != nil {
		return 0, bad, err
	}
	defer r.Close()
	for _, t := range tables {
		if !t.Virtual {
			return st.Size(), t, r.ValidateBlockChecksums()
		}
	}
	for _, t := range tables {
		upper := append(bytes.Clone(t.Largest.UserKey), 0)
		it, err := r.NewIter(sstable.NoTransforms, t.Smallest.UserKey, upper, sstable.AssertNoBlobHandles)
		if err != nil {
			return st.Size(), t, err
		}
		for kv := it.First(); kv != nil; kv = it.Next() {
		}
		err = it.Error()
		if cerr := it.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return st.Size(), t, err
		}
	}
	return st.Size(), bad, nil
}

func containsFile(spans []CorruptSpan, file string) bool {
	for _, s := range spans {
		if s.File == file {
			return true
		}
	}
	return false
}

// manifestIn returns the MANIFEST a directory listing's marker names, or "".
func manifestIn(names []string) string {
	for _, n := range names {
		if len(n) > len("MANIFEST-") && n[:len("MANIFEST-")] == "MANIFEST-" {
			return n
		}
	}
	return ""
}

func timeNow() time.Time { return time.Now() }
