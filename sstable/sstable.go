// Package sstable moves token ranges between nodes and backs stores up.
//
// Ranges move as verified record streams: a donor streams a span of a
// snapshot (Send), and the receiver stages the records as SSTables of
// merge operands and merges them into its store in one atomic ingest once
// the stream's trailer matched (Receive), so writes the receiver took
// meanwhile are kept. Backups are Pebble checkpoints written as a tar
// archive with a manifest of sizes and hashes (TakeCheckpoint, Extract,
// Restore). Spans are token intervals [lo, hi) in the convention of
// ring.Span: hi == 0 means 2^64, and a range that wraps past the largest
// token is moved as its two spans.
//
// Files live on the engine's vfs.FS, so tests run on vfs.NewMem(). Pebble
// types stay in the storage layer: callers see paths, counts and digests.
package sstable

import (
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

// DefaultTargetFileSize is the size at which Receive starts a new file when
// its caller passes no size.
const DefaultTargetFileSize = 64 << 20

// tableFile is one SSTable written by Receive.
type tableFile struct {
	Path  string // on the engine's filesystem
	Keys  int64  // records in the file
	Bytes int64  // size of the file
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

// exporter writes the records of one span to files of MERGE operands
// (merged into the receiver's newer writes).
type exporter struct {
	fs     vfs.FS
	dir    string
	prefix string
	opts   sst.WriterOptions
	target uint64
	d      *digester
	// dataDigest is d's Digest after the last record frame, which the
	// files must match; paxos the states of the paxos frames after them
	// (ReceivePaxos).
	dataDigest Digest
	paxos      []PaxosEntry
	files      []tableFile
	w          *sst.Writer // the file being written, or nil
	cur        tableFile
}

func (x *exporter) add(k, v []byte) error {
	if x.w == nil {
		path := x.fs.PathJoin(x.dir, fmt.Sprintf("%s-%04d.sst", x.prefix, len(x.files)))
		f, err := x.fs.Create(path, vfs.WriteCategoryUnspecified)
		if err != nil {
			return err
		}
		x.w = sst.NewWriter(objstorageprovider.NewFileWritable(f), x.opts)
		x.cur = tableFile{Path: path}
	}
	if err := x.w.Merge(k, v); err != nil {
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

// verifier checks the records MergeSpan reads against a Digest.
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
