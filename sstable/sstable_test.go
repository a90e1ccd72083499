package sstable

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/ringkv/ringkv/engine"
	"github.com/ringkv/ringkv/memtable"
	"github.com/ringkv/ringkv/ring"
)

const upper = uint64(1) << 63

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func openEngine(t testing.TB, fs vfs.FS, dir string) *engine.Engine {
	t.Helper()
	e, err := engine.Open(engine.Options{FS: fs, Dir: dir, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), GCInterval: -1})
	must(t, err)
	return e
}

func rec(ts uint64, val string) *memtable.Record {
	return &memtable.Record{Version: memtable.Version{TS: ts, Node: 1}, Value: []byte(val)}
}

func inSpans(tok uint64, spans []ring.Span) bool {
	for _, s := range spans {
		if tok >= s.Lo && (s.Hi == 0 || tok < s.Hi) {
			return true
		}
	}
	return false
}

// value returns the 100-byte value of key i: random letters, so that
// tables compress about as much as real data.
func value(i int) string {
	rng := rand.New(rand.NewPCG(uint64(i), 7))
	v := make([]byte, 100)
	for j := range v {
		v[j] = 'a' + byte(rng.IntN(26))
	}
	return string(v)
}

// donor fills e with n keys "key-i" of 100-byte values, with overwrites,
// late (older, merged) writes, tombstones and expiring records.
func donor(t *testing.T, e *engine.Engine, n int, ts uint64) {
	t.Helper()
	b := e.NewBatch()
	for i := 0; i < n; i++ {
		k := []byte(fmt.Sprint("key-", i))
		r := rec(ts, value(i))
		must(t, b.Write(k, r))
		switch {
		case i%13 == 0:
			must(t, b.Write(k, &memtable.Record{Version: memtable.Version{TS: ts + 2, Node: 1}, Tombstone: true}))
		case i%11 == 0:
			must(t, b.Write(k, rec(ts-1, "late and older")))
		case i%7 == 0:
			must(t, b.Write(k, rec(ts+1, "overwritten")))
		case i%17 == 0:
			r.ExpiresAt = memtable.TimestampTime(ts).Add(time.Hour).UnixMilli()
			r.TS += 3
			must(t, b.Write(k, r))
		}
		if b.Len() >= 512 {
			must(t, e.Commit(b, false))
			b = e.NewBatch()
		}
		if i == n/2 {
			must(t, e.Flush()) // half in tables, half in the memtable
		}
	}
	must(t, e.Commit(b, false))
}

// receiver fills e with stale and newer versions of some of the donor's
// keys, and keys of its own, all over the ring.
func receiver(t *testing.T, e *engine.Engine, n int, ts uint64) {
	t.Helper()
	b := e.NewBatch()
	for i := 0; i < n; i += 3 {
		must(t, b.Write([]byte(fmt.Sprint("key-", i)), rec(ts-10+uint64(i%20), "receiver's")))
		must(t, b.Write([]byte(fmt.Sprint("own-", i)), rec(ts, "own")))
	}
	must(t, e.Commit(b, false))
}

type state map[string][]byte // user key → encoded record, absent if none

func read(t *testing.T, e *engine.Engine, keys [][]byte) state {
	t.Helper()
	s := state{}
	for _, k := range keys {
		_, r, err := e.Get(nil, k)
		if errors.Is(err, engine.ErrNotFound) {
			continue
		}
		must(t, err)
		s[string(k)] = r.Append(nil)
	}
	return s
}

func TestExportIngest(t *testing.T) {
	for _, c := range []struct {
		name   string
		spans  []ring.Span
		keys   int
		target int64
		multi  bool // expect more than one file per span
	}{
		{"small span as a batch", []ring.Span{{Lo: upper, Hi: 0}}, 300, 0, false},
		{"one span", []ring.Span{{Lo: upper, Hi: 0}}, 4000, 64 << 10, true},
		{"whole ring", ring.Range{Start: 7, End: 7}.Spans(), 4000, 64 << 10, true},
		{"wrapping range", ring.Range{Start: 3 << 62, End: 1 << 62}.Spans(), 4000, 32 << 10, true},
		{"empty span", []ring.Span{{Lo: 12345, Hi: 12346}}, 1000, 0, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			fs := vfs.NewMem()
			a, b := openEngine(t, fs, "a"), openEngine(t, fs, "b")
			defer a.Close()
			defer b.Close()
			ts := memtable.TimestampAt(time.Now())
			donor(t, a, c.keys, ts)
			receiver(t, b, c.keys, ts)
			var keys [][]byte
			for i := 0; i < c.keys; i++ {
				keys = append(keys, []byte(fmt.Sprint("key-", i)), []byte(fmt.Sprint("own-", i)))
			}
			wantA, before := read(t, a, keys), read(t, b, keys)

			snap, err := a.NewSnapshot()
			must(t, err)
			defer snap.Close()
			must(t, a.Write([]byte("key-1"), rec(ts+100, "after the snapshot"), false))
			for _, s := range c.spans {
				files, d, err := Export(ctx, snap, s.Lo, s.Hi, "xfer", c.target)
				must(t, err)
				if want, err := DigestSpan(ctx, snap, s.Lo, s.Hi); err != nil || d != want {
					t.Fatalf("export digest %v, DigestSpan %v (%v)", d, want, err)
				}
				var n int64
				for _, f := range files {
					n += f.Keys
				}
				if n != d.Keys || (len(files) > 1) != c.multi || (d.Keys == 0) != (len(files) == 0) {
					t.Fatalf("%d files with %d keys for a digest of %v", len(files), n, d)
				}
				must(t, Ingest(ctx, b, s.Lo, s.Hi, files, d))
				if got, err := DigestSpan(ctx, b, s.Lo, s.Hi); err != nil || got != d {
					t.Fatalf("receiver's span digests to %v (%v), want %v", got, err, d)
				}
			}
			got := read(t, b, keys)
			for _, k := range keys {
				want := before[string(k)]
				if inSpans(engine.Token(k), c.spans) {
					want = wantA[string(k)]
				}
				if !bytes.Equal(got[string(k)], want) {
					t.Fatalf("%s: receiver has %x, want %x", k, got[string(k)], want)
				}
			}
			if left, _ := fs.List("xfer"); len(left) != 0 {
				t.Fatalf("files left after ingest: %v", left)
			}
		})
	}
}

// TestIngestDetectsTampering: files that differ from what the donor sent
// are refused with ErrMismatch before anything is ingested.
func TestIngestDetectsTampering(t *testing.T) {
	ctx := context.Background()
	ts := memtable.TimestampAt(time.Now())
	for _, c := range []struct {
		name   string
		tamper func(t *testing.T, fs vfs.FS, files []File, d *Digest, other []File) []File
	}{
		{"truncated", func(t *testing.T, fs vfs.FS, files []File, d *Digest, other []File) []File {
			truncate(t, fs, files[1].Path, files[1].Bytes/2)
			return files
		}},
		{"truncated, size updated", func(t *testing.T, fs vfs.FS, files []File, d *Digest, other []File) []File {
			files[1].Bytes /= 2
			truncate(t, fs, files[1].Path, files[1].Bytes)
			return files
		}},
		{"bit flip", func(t *testing.T, fs vfs.FS, files []File, d *Digest, other []File) []File {
			data := readFile(t, fs, files[0].Path)
			data[len(data)/3] ^= 1
			writeFile(t, fs, files[0].Path, data)
			return files
		}},
		{"file missing", func(t *testing.T, fs vfs.FS, files []File, d *Digest, other []File) []File {
			return append(files[:1:1], files[2:]...)
		}},
		{"out of order", func(t *testing.T, fs vfs.FS, files []File, d *Digest, other []File) []File {
			files[0], files[1] = files[1], files[0]
			return files
		}},
		{"another donor's file", func(t *testing.T, fs vfs.FS, files []File, d *Digest, other []File) []File {
			// A valid table of the same keys with one value changed.
			return append([]File{other[0]}, files[1:]...)
		}},
		{"wrong digest", func(t *testing.T, fs vfs.FS, files []File, d *Digest, other []File) []File {
			d.Hash ^= 1
			return files
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			fs := vfs.NewMem()
			a, a2, b := openEngine(t, fs, "a"), openEngine(t, fs, "a2"), openEngine(t, fs, "b")
			defer a.Close()
			defer a2.Close()
			defer b.Close()
			donor(t, a, 3000, ts)
			donor(t, a2, 3000, ts)
			// Change the first key, so the first file differs.
			first := 0
			for i := range 3000 {
				if engine.Token([]byte(fmt.Sprint("key-", i))) < engine.Token([]byte(fmt.Sprint("key-", first))) {
					first = i
				}
			}
			must(t, a2.Write([]byte(fmt.Sprint("key-", first)), rec(ts+50, value(first+1)), false))
			receiver(t, b, 3000, ts)
			before, err := DigestSpan(ctx, b, 0, 0)
			must(t, err)

			export := func(e *engine.Engine, dir string) ([]File, Digest) {
				snap, err := e.NewSnapshot()
				must(t, err)
				defer snap.Close()
				files, d, err := Export(ctx, snap, 0, 0, dir, 32<<10)
				must(t, err)
				if len(files) < 3 {
					t.Fatalf("only %d files", len(files))
				}
				return files, d
			}
			files, d := export(a, "xfer")
			other, _ := export(a2, "other")
			files = c.tamper(t, fs, files, &d, other)

			err = Ingest(ctx, b, 0, 0, files, d)
			if !errors.Is(err, ErrMismatch) {
				t.Fatalf("Ingest = %v, want ErrMismatch", err)
			}
			t.Log(err)
			if after, err := DigestSpan(ctx, b, 0, 0); err != nil || after != before {
				t.Fatalf("receiver changed by a refused ingest: %v, want %v (%v)", after, before, err)
			}
			for _, f := range files {
				if _, err := fs.Stat(f.Path); err != nil {
					t.Fatalf("file of a refused ingest: %v", err)
				}
			}
		})
	}
}

func readFile(t *testing.T, fs vfs.FS, path string) []byte {
	t.Helper()
	f, err := fs.Open(path)
	must(t, err)
	defer f.Close()
	data, err := io.ReadAll(f)
	must(t, err)
	return data
}

func writeFile(t *testing.T, fs vfs.FS, path string, data []byte) {
	t.Helper()
	f, err := fs.Create(path, vfs.WriteCategoryUnspecified)
	must(t, err)
	_, err = f.Write(data)
	must(t, err)
	must(t, f.Close())
}

func truncate(t *testing.T, fs vfs.FS, path string, n int64) {
	t.Helper()
	writeFile(t, fs, path, readFile(t, fs, path)[:n])
}

// TestDigestSpan: equal spans digest equally, and any difference in keys
// or records changes the digest.
func TestDigestSpan(t *testing.T) {
	ctx := context.Background()
	ts := memtable.TimestampAt(time.Now())
	fs := vfs.NewMem()
	base := openEngine(t, fs, "base")
	defer base.Close()
	donor(t, base, 500, ts)
	want, err := DigestSpan(ctx, base, 0, 0)
	must(t, err)
	if want.Keys != 500 {
		t.Fatalf("digest of %d keys, want 500", want.Keys)
	}
	empty := openEngine(t, fs, "empty")
	defer empty.Close()
	none, err := DigestSpan(ctx, empty, 0, 0)
	must(t, err)
	f := func(name string, same bool, change func(e *engine.Engine)) {
		t.Helper()
		e := openEngine(t, fs, name)
		defer e.Close()
		donor(t, e, 500, ts)
		change(e)
		got, err := DigestSpan(ctx, e, 0, 0)
		must(t, err)
		if (got == want) != same || got == none {
			t.Fatalf("%s: digest %v, base %v, same=%v", name, got, want, same)
		}
	}
	f("equal", true, func(e *engine.Engine) {})
	f("older write", true, func(e *engine.Engine) { must(t, e.Write([]byte("key-3"), rec(ts-5, "lost"), false)) })
	f("newer write", false, func(e *engine.Engine) { must(t, e.Write([]byte("key-3"), rec(ts+5, "won"), false)) })
	f("extra key", false, func(e *engine.Engine) { must(t, e.Write([]byte("extra"), rec(ts, ""), false)) })
	f("dropped", false, func(e *engine.Engine) { must(t, e.DropSpan(ctx, upper, 0)) })
	snap, err := base.NewSnapshot()
	must(t, err)
	defer snap.Close()
	if got, err := DigestSpan(ctx, snap, 0, 0); err != nil || got != want {
		t.Fatalf("snapshot digest %v (%v), want %v", got, err, want)
	}
	if _, err := DigestSpan(ctx, base, upper, 1); !errors.Is(err, engine.ErrWrappingSpan) {
		t.Fatalf("wrapping span: %v", err)
	}
}
