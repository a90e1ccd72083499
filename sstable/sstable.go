// Package sstable moves token ranges between nodes and backs stores up.
//
// Ranges move as verified record streams: a donor streams a span of a
// snapshot (Send), and the receiver stages the records as SSTables of
// merge operands and merges them into its store in one atomic ingest once
// the stream's trailer matched (Receive), so writes the receiver took
// meanwhile are kept. Backups are Pebble checkpoints written as a tar
// archive with a manifest of sizes and hashes (TakeCheckpoint, Extract,
// Restore). Export and Ingest, which replace a span wholesale with
// IngestAndExcise, are kept for a restore of single ranges; no node path
// uses them yet. Spans are token intervals [lo, hi) in the convention of
// ring.Span: hi == 0 means 2^64, and a range that wraps past the largest
// token is moved as its two spans.
//
// Files live on the engine's vfs.FS, so tests run on vfs.NewMem(). Pebble
// types stay in the storage layer: callers see paths, counts and digests.
package sstable

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2/objstorage/objstorageprovider"
	sst "github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/ringkv/ringkv/engine"
	"github.com/zeebo/xxh3"
)

// ErrMismatch reports files that do not hold what their sender described:
// truncated, altered, or missing some. Nothing is ingested.
var ErrMismatch = errors.New("sstable: data does not match its digest")

// DefaultTargetFileSize is the size at which Export starts a new file when
// its caller passes no size.
const DefaultTargetFileSize = 64 << 20

// File is one SSTable written by Export.
type File struct {
	Path  string `json:"path"`  // on the engine's filesystem
	Keys  int64  `json:"keys"`  // records in the file
	Bytes int64  `json:"bytes"` // size of the file
}

// Digest summarizes the records of a span: their number, and the xxh3
// hash of the sequence of (storage key, encoded record) pairs in storage-key
// order, each part prefixed with its length as a uvarint so that no two
// different sequences hash the same bytes. Being order dependent costs
// nothing, as every reader of a span meets its records in that order; two
// stores hold the same span exactly when their digests are equal (up to
// hash collisions).
type Digest struct {
	Keys int64  `json:"keys"`
	Hash uint64 `json:"hash"`
}

// String formats d for logs and errors.
func (d Digest) String() string { return fmt.Sprintf("%d keys, hash %016x", d.Keys, d.Hash) }

// digester computes a Digest incrementally.
type digester struct {
	h   *xxh3.Hasher
	n   int64
	buf []byte
}

func newDigester() *digester { return &digester{h: xxh3.New()} }

func (d *digester) add(k, v []byte) {
	// One Write per record: the hasher's per-call cost exceeded that of
	// copying a record.
	d.buf = binary.AppendUvarint(d.buf[:0], uint64(len(k)))
	d.buf = append(d.buf, k...)
	d.buf = binary.AppendUvarint(d.buf, uint64(len(v)))
	d.buf = append(d.buf, v...)
	d.h.Write(d.buf)
	d.n++
}

func (d *digester) digest() Digest { return Digest{Keys: d.n, Hash: d.h.Sum64()} }

// Source is a store whose spans can be read in storage-key order:
// *engine.Snapshot (one point in time) or *engine.Engine (the live store).
type Source interface {
	ExportSpan(ctx context.Context, lo, hi uint64, fn func(storageKey, value []byte) error) error
}

var (
	_ Source = (*engine.Snapshot)(nil)
	_ Source = (*engine.Engine)(nil)
)

// DigestSpan returns the Digest of the records of src in the span [lo, hi).
func DigestSpan(ctx context.Context, src Source, lo, hi uint64) (Digest, error) {
	d := newDigester()
	err := src.ExportSpan(ctx, lo, hi, func(k, v []byte) error { d.add(k, v); return nil })
	if err != nil {
		return Digest{}, fmt.Errorf("cannot digest span [%016x, %016x): %w", lo, hi, err)
	}
	return d.digest(), nil
}

// Export writes the records of snap in the span [lo, hi) to SSTable files
// in dir (created if needed) on the engine's filesystem, in key order,
// starting a new file once one reaches about targetFileSize bytes
// (DefaultTargetFileSize if it is 0 or less). It returns the files in key
// order, their key ranges disjoint, and the Digest of the span. An empty
// span gives no files. The files and dir are fsynced before it returns; on
// error the files written so far are removed.
//
// The files are named after the span and so are overwritten by another
// export of the same span to the same dir.
func Export(ctx context.Context, snap *engine.Snapshot, lo, hi uint64, dir string, targetFileSize int64) ([]File, Digest, error) {
	e := snap.Engine()
	if targetFileSize <= 0 {
		targetFileSize = DefaultTargetFileSize
	}
	x := exporter{
		fs:     e.FS(),
		dir:    dir,
		prefix: fmt.Sprintf("span-%016x-%016x", lo, hi),
		opts:   e.TableWriterOptions(),
		target: uint64(targetFileSize),
		d:      newDigester(),
	}
	err := x.fs.MkdirAll(dir, 0o755)
	if err == nil {
		err = snap.ExportSpan(ctx, lo, hi, x.add)
	}
	if err == nil && x.w != nil {
		err = x.finish()
	}
	if err == nil && len(x.files) > 0 {
		err = syncDir(x.fs, dir)
	}
	if err != nil {
		x.abort()
		return nil, Digest{}, fmt.Errorf("cannot export span [%016x, %016x) to %s: %w", lo, hi, dir, err)
	}
	return x.files, x.d.digest(), nil
}

// exporter writes the records of one span to files.
type exporter struct {
	fs     vfs.FS
	dir    string
	prefix string
	opts   sst.WriterOptions
	target uint64
	d      *digester
	files  []File
	w      *sst.Writer // the file being written, or nil
	cur    File
	// merge writes records as MERGE operands (a transfer, merged into the
	// receiver's newer writes) rather than SETs (an export that replaces).
	merge bool
}

func (x *exporter) add(k, v []byte) error {
	if x.w == nil {
		path := x.fs.PathJoin(x.dir, fmt.Sprintf("%s-%04d.sst", x.prefix, len(x.files)))
		f, err := x.fs.Create(path, vfs.WriteCategoryUnspecified)
		if err != nil {
			return err
		}
		x.w = sst.NewWriter(objstorageprovider.NewFileWritable(f), x.opts)
		x.cur = File{Path: path}
	}
	put := x.w.Set
	if x.merge {
		put = x.w.Merge
	}
	if err := put(k, v); err != nil {
		return err
	}
	x.cur.Keys++
	x.d.add(k, v)
	// The estimate is not free: look at it every 64 records, which
	// overshoots the target by a few KiB at most.
	if x.cur.Keys%64 == 0 && x.w.Raw().EstimatedSize() >= x.target {
		return x.finish()
	}
	return nil
}

// finish closes the current file, which flushes and fsyncs it.
func (x *exporter) finish() error {
	w := x.w
	x.w = nil
	if err := w.Close(); err != nil {
		x.fs.Remove(x.cur.Path)
		return err
	}
	meta, err := w.Metadata()
	if err != nil {
		x.fs.Remove(x.cur.Path)
		return err
	}
	x.cur.Bytes = int64(meta.Size)
	x.files = append(x.files, x.cur)
	return nil
}

// abort removes every file of a failed export.
func (x *exporter) abort() {
	if x.w != nil {
		x.w.Close()
		x.fs.Remove(x.cur.Path)
		x.w = nil
	}
	for _, f := range x.files {
		x.fs.Remove(f.Path)
	}
	x.files = nil
}

func syncDir(fs vfs.FS, dir string) error {
	d, err := fs.OpenDir(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}

// Ingest atomically replaces the records of e in the span [lo, hi) with
// those of files (as Export returned them, in order), once it has checked
// that the files hold exactly what want describes: their sizes, then the
// digest of every record, all before anything is applied. A mismatch
// returns an error wrapping ErrMismatch and leaves the store and the files
// untouched. On success the files are consumed. See engine.IngestSpan for
// what happens to writes to the span meanwhile.
func Ingest(ctx context.Context, e *engine.Engine, lo, hi uint64, files []File, want Digest) error {
	fs := e.FS()
	paths := make([]string, len(files))
	var keys int64
	for i, f := range files {
		st, err := fs.Stat(f.Path)
		if err != nil {
			return fmt.Errorf("cannot ingest %s: %w", f.Path, err)
		}
		if st.Size() != f.Bytes {
			return fmt.Errorf("cannot ingest %s: it has %d bytes, not %d: %w", f.Path, st.Size(), f.Bytes, ErrMismatch)
		}
		keys += f.Keys
		paths[i] = f.Path
	}
	if keys != want.Keys {
		return fmt.Errorf("cannot ingest span [%016x, %016x): files list %d keys, the digest %d: %w", lo, hi, keys, want.Keys, ErrMismatch)
	}
	err := e.IngestSpan(ctx, lo, hi, paths, &verifier{d: newDigester(), want: want})
	if errors.Is(err, engine.ErrInvalidTable) && !errors.Is(err, ErrMismatch) {
		// A corrupt file is a mismatch to a caller: send it again.
		err = fmt.Errorf("%w: %w", err, ErrMismatch)
	}
	return err
}

// verifier checks the records IngestSpan reads against a Digest.
type verifier struct {
	d    *digester
	want Digest
}

var _ engine.SpanCheck = (*verifier)(nil)

func (v *verifier) Add(k, val []byte) error { v.d.add(k, val); return nil }

func (v *verifier) Verify() error {
	if got := v.d.digest(); got != v.want {
		return fmt.Errorf("%w: the files hold %s, the sender's digest is %s", ErrMismatch, got, v.want)
	}
	return nil
}
