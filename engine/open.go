package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// openPebble opens Pebble on e.opts.Dir and reads every table's footer and
// properties, so that a damaged file stops the start with an error naming
// it rather than a panic, or a node that serves and then fails on it.
// With keep, a damaged table that holds no metadata is returned in
// damaged instead (see Options.KeepDamaged). Pebble can panic inside Open
// on some damage; the panic is recovered here (no engine lock is held,
// and nothing was opened yet that must be closed) and returned as an
// error.
func (e *Engine) openPebble(po *pebble.Options, keep bool) (db *pebble.DB, damaged []CorruptSpan, err error) {
	dir := e.opts.Dir
	defer func() {
		if r := recover(); r != nil {
			db, damaged = nil, nil
			err = fmt.Errorf("cannot open engine at %q: pebble failed reading the store: %s; run `ringkv check --data-dir %s` to list damaged files", dir, firstLine(fmt.Sprint(r)), dir)
		}
	}()
	db, err = pebble.Open(dir, po)
	if err != nil {
		return nil, nil, e.openError(err)
	}
	// Opening every table reads its footer, index and properties: what
	// Pebble's table-stats collection does in the background at start
	// anyway, done before the node serves.
	_, err = db.SSTables(pebble.WithProperties())
	if err == nil {
		return db, nil, nil
	}
	if keep {
		damaged, lerr := e.unreadableTables(db, po)
		if lerr == nil && len(damaged) > 0 {
			for _, sp := range damaged {
				if slices.Contains(sp.Other, "metadata") {
					db.Close()
					return nil, nil, &openError{msg: fmt.Sprintf("cannot open engine at %q: damaged file %s holds this node's metadata (its identity, member list and clock ceiling), which no replica can give back: %s; restore the data dir from a backup (`ringkv check --data-dir %s` lists every damaged file)",
						dir, sp.File, sp.Error, dir), err: err, corrupt: true}
				}
			}
			return db, damaged, nil
		}
	}
	db.Close()
	return nil, nil, e.openError(err)
}

// unreadableTables opens each live table's file (footer, metaindex,
// properties) and returns those that fail, with their key spans.
func (e *Engine) unreadableTables(db *pebble.DB, po *pebble.Options) ([]CorruptSpan, error) {
	order, backs, err := liveBackings(db)
	if err != nil {
		return nil, err
	}
	fs, dir := po.FS, e.opts.Dir
	ropts := po.MakeReaderOptions()
	now := e.now()
	var out []CorruptSpan
	for _, name := range order {
		path := fs.PathJoin(dir, name)
		if err := openTable(fs, path, ropts); err != nil {
			out = append(out, tableSpan(name, path, backs[name], err, now))
		}
	}
	return out, nil
}

// liveBackings groups the live tables by the local file backing them (a
// virtual table, what an excise leaves of a file, uses only part of its
// backing), in LSM order.
func liveBackings(db *pebble.DB) ([]string, map[string][]pebble.SSTableInfo, error) {
	levels, err := db.SSTables()
	if err != nil {
		return nil, nil, err
	}
	var order []string
	backs := map[string][]pebble.SSTableInfo{}
	for _, level := range levels {
		for _, t := range level {
			if t.BackingType != pebble.BackingTypeLocal {
				continue
			}
			name := fmt.Sprintf("%s.sst", t.BackingSSTNum)
			if _, ok := backs[name]; !ok {
				order = append(order, name)
			}
			backs[name] = append(backs[name], t)
		}
	}
	return order, backs, nil
}

// openTable opens the SSTable at path, which reads and checks its footer,
// metaindex and properties, and closes it.
func openTable(fs vfs.FS, path string, ropts sstable.ReaderOptions) error {
	r, err := newTableReader(context.Background(), fs, path, ropts)
	if err != nil {
		return err
	}
	return r.Close()
}

// newTableReader opens a reader of the SSTable at path; closing the
// reader closes the file.
func newTableReader(ctx context.Context, fs vfs.FS, path string, ropts sstable.ReaderOptions) (*sstable.Reader, error) {
	f, err := fs.Open(path)
	if err != nil {
		return nil, err
	}
	readable, err := sstable.NewSimpleReadable(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	r, err := sstable.NewReader(ctx, readable, ropts)
	if err != nil {
		readable.Close()
		return nil, err
	}
	return r, nil
}

// tableSpan describes the damaged file name backing tables: the span of
// the union of their bounds.
func tableSpan(name, path string, tables []pebble.SSTableInfo, err error, now time.Time) CorruptSpan {
	sp := CorruptSpan{File: name, Path: path, Kind: "table", State: CorruptDamaged, Error: oneLine(err.Error()), Detected: now, Changed: now}
	lo, hi := tables[0].Smallest.UserKey, tables[0].Largest.UserKey
	for _, t := range tables[1:] {
		if bytes.Compare(t.Smallest.UserKey, lo) < 0 {
			lo = t.Smallest.UserKey
		}
		if bytes.Compare(t.Largest.UserKey, hi) > 0 {
			hi = t.Largest.UserKey
		}
	}
	sp.setBounds(lo, hi)
	return sp
}

// keyspacePolicy is Pebble's SpanPolicyFunc: it ends a flush's or a
// compaction's output table at the edge of each keyspace (data, hints,
// metadata, paxos), so no table spans two. A table that cannot be read then
// costs one keyspace's part of one span: data, which other replicas give
// back; hints, which anti-entropy makes up for; metadata, which is
// small and rewritten rarely; or Paxos state (peer/paxos.go).
func keyspacePolicy(start []byte) (pebble.SpanPolicy, []byte, error) {
	for _, edge := range [...]byte{spaceHint, spaceMeta, spacePaxos, spacePaxos + 1} {
		if len(start) == 0 || start[0] < edge {
			return pebble.SpanPolicy{}, []byte{edge}, nil
		}
	}
	return pebble.SpanPolicy{}, nil, nil
}

// openError describes an error of opening the store in one line, naming
// the damaged file when Pebble says which, or the process holding the
// directory's lock when the OS says which.
func (e *Engine) openError(err error) error {
	dir := e.opts.Dir
	if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EACCES) {
		if who := lockHolder(filepath.Join(dir, "LOCK")); who != "" {
			return &openError{msg: fmt.Sprintf("cannot open engine at %q: the data directory is in use by %s: stop it first, or use another data directory (%v)", dir, who, err), err: err}
		}
	}
	hint := fmt.Sprintf("; run `ringkv check --data-dir %s` to list damaged files", dir)
	if errors.Is(err, pebble.ErrDBDoesNotExist) || strings.Contains(err.Error(), "lock") {
		hint = ""
	}
	if info := pebble.ExtractDataCorruptionInfo(err); info != nil {
		sp := spanOfCorruption(*info, e.now())
		return &openError{msg: fmt.Sprintf("cannot open engine at %q: damaged file %s (%s, %s): %s%s",
			dir, sp.File, sp.Kind, sp.TokenSpan(), oneLine(sp.Error), hint), err: err, corrupt: true}
	}
	if hint != "" {
		if m := manifestName(e.opts.FS, dir); m != "" {
			hint = fmt.Sprintf("; %s, or a file it names, may be damaged", m) + hint
		}
	}
	return &openError{msg: fmt.Sprintf("cannot open engine at %q: %s%s", dir, oneLine(err.Error()), hint), err: err, corrupt: pebble.IsCorruptionError(err)}
}

// manifestName returns the name of the store's current MANIFEST, or "".
func manifestName(fs vfs.FS, dir string) string {
	names, err := fs.List(dir)
	if err != nil {
		return ""
	}
	const marker = "marker.manifest."
	for _, n := range names {
		if i := strings.Index(n, ".MANIFEST-"); strings.HasPrefix(n, marker) && i >= 0 {
			return n[i+1:]
		}
	}
	return ""
}

// openError is Open's error: one line, Pebble's error wrapped;
// errors.Is(err, ErrCorruption) holds for a damaged store.
type openError struct {
	msg     string
	err     error
	corrupt bool
}

func (e *openError) Error() string        { return e.msg }
func (e *openError) Is(target error) bool { return e.corrupt && target == ErrCorruption }
func (e *openError) Unwrap() error        { return e.err }

// oneLine joins the lines of a Pebble error message, dropping the
// placeholder line of its corruption-detail carrier.
func oneLine(s string) string {
	var parts []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" && l != "<corruption detail carrier>" {
			parts = append(parts, l)
		}
	}
	return strings.Join(parts, "; ")
}

// firstLine returns the first non-empty line of s.
func firstLine(s string) string {
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			return l
		}
	}
	return s
}
