package sstable

import (
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

// TestDigestSpan: equal spans digest equally, and any difference in keys
// or records changes the digest.
func TestDigestSpan(t *testing.T) {
	ctx := context.Background()
	ts := memtable.TimestampAt(time.Now())
	fs := vfs.NewMem()
	base := openEngine(t, fs, "base")
	defer base.Close()
	donor(t, base, 500, ts)
	want, err := digestSpan(ctx, base, 0, 0)
	must(t, err)
	if want.Keys != 500 {
		t.Fatalf("digest of %d keys, want 500", want.Keys)
	}
	empty := openEngine(t, fs, "empty")
	defer empty.Close()
	none, err := digestSpan(ctx, empty, 0, 0)
	must(t, err)
	f := func(name string, same bool, change func(e *engine.Engine)) {
		t.Helper()
		e := openEngine(t, fs, name)
		defer e.Close()
		donor(t, e, 500, ts)
		change(e)
		got, err := digestSpan(ctx, e, 0, 0)
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
	if got, err := digestSpan(ctx, snap, 0, 0); err != nil || got != want {
		t.Fatalf("snapshot digest %v (%v), want %v", got, err, want)
	}
	if _, err := digestSpan(ctx, base, upper, 1); !errors.Is(err, engine.ErrWrappingSpan) {
		t.Fatalf("wrapping span: %v", err)
	}
}

// digestSpan returns the Digest of the records of src in [lo, hi), as
// Send and Receive compute it: what a transfer's two ends are checked
// against.
func digestSpan(ctx context.Context, src source, lo, hi uint64) (Digest, error) {
	d := newDigester()
	if err := src.ExportSpan(ctx, lo, hi, func(k, v []byte) error { d.add(k, v); return nil }); err != nil {
		return Digest{}, err
	}
	return d.digest(), nil
}

// source is a store whose spans can be read in storage-key order:
// *engine.Snapshot or *engine.Engine.
type source interface {
	ExportSpan(ctx context.Context, lo, hi uint64, fn func(storageKey, value []byte) error) error
}
