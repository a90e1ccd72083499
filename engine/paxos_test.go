package engine

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/ringkv/ringkv/memtable"
)

// TestPaxosStateSurvivesCrash: a Paxos state written (alone, or with the
// record it commits) is there after a crash that loses every unsynced
// byte, together with the record; a key never written has none.
func TestPaxosStateSurvivesCrash(t *testing.T) {
	fs := vfs.NewCrashableMem()
	e := openMem(t, fs, nil, nil)
	for i := range 100 {
		k := []byte(fmt.Sprint("k", i))
		if i%2 == 0 {
			must(t, e.WritePaxos(k, []byte(fmt.Sprint("promise-", i)), nil))
		} else {
			must(t, e.WritePaxos(k, []byte(fmt.Sprint("commit-", i)), rec(uint64(i+1), 1, fmt.Sprint("v", i))))
		}
	}
	crashed := fs.CrashClone(vfs.CrashCloneCfg{})
	must(t, e.Close())
	e = openMem(t, crashed, nil, nil)
	defer e.Close()
	for i := range 100 {
		k := []byte(fmt.Sprint("k", i))
		st, err := e.PaxosState(nil, k)
		want := fmt.Sprint("promise-", i)
		if i%2 == 1 {
			want = fmt.Sprint("commit-", i)
		}
		if err != nil || string(st) != want {
			t.Fatalf("after crash, the paxos state of k%d = %q, %v; want %q", i, st, err, want)
		}
		_, r, err := e.Get(nil, k)
		switch {
		case i%2 == 0 && !errors.Is(err, ErrNotFound):
			t.Fatalf("k%d: a state alone wrote a record: %q, %v", i, r.Value, err)
		case i%2 == 1 && (err != nil || string(r.Value) != fmt.Sprint("v", i)):
			t.Fatalf("after crash, k%d = %q, %v", i, r.Value, err)
		}
	}
	if _, err := e.PaxosState(nil, []byte("never")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a key never prepared has a state: %v", err)
	}
}

// TestPaxosCommitIsAWrite: the record a commit writes is merged as any
// write (an older one loses to what is stored) and read back through the
// row cache; the state stays apart from the data (a scan sees none).
func TestPaxosCommitIsAWrite(t *testing.T) {
	e := openMem(t, vfs.NewMem(), func(o *Options) { o.RowCacheSize = DefaultRowCacheSize }, nil)
	defer e.Close()
	k := []byte("key")
	must(t, e.Write(k, rec(10, 1, "plain"), true))
	must(t, e.WritePaxos(k, []byte("s1"), rec(5, 2, "older")))
	if _, r, err := e.Get(nil, k); err != nil || string(r.Value) != "plain" {
		t.Fatalf("an older commit overwrote a newer write: %q, %v", r.Value, err)
	}
	must(t, e.WritePaxos(k, []byte("s2"), rec(20, 2, "newer")))
	if _, r, err := e.Get(nil, k); err != nil || string(r.Value) != "newer" {
		t.Fatalf("after a newer commit: %q, %v", r.Value, err)
	}
	if st, err := e.PaxosState(nil, k); err != nil || string(st) != "s2" {
		t.Fatalf("state %q, %v", st, err)
	}
	n := 0
	must(t, e.Scan(t.Context(), nil, func(key []byte, _ memtable.Record) (bool, error) { n++; return true, nil }))
	if n != 1 {
		t.Fatalf("a scan saw %d records, want the one key", n)
	}
}

// TestPaxosStatesMoveBySpan: states written in one batch survive a crash
// that loses every unsynced byte; a snapshot exports exactly the states
// of a span's keys, with keys PaxosKey reads back, and none of the data.
func TestPaxosStatesMoveBySpan(t *testing.T) {
	fs := vfs.NewCrashableMem()
	e := openMem(t, fs, nil, nil)
	var keys, states [][]byte
	for i := range 100 {
		keys = append(keys, []byte(fmt.Sprint("k", i)))
		states = append(states, []byte(fmt.Sprint("state-", i)))
		must(t, e.Write(keys[i], rec(uint64(i+1), 1, "v"), false))
	}
	must(t, e.WritePaxosStates(keys, states))
	crashed := fs.CrashClone(vfs.CrashCloneCfg{})
	must(t, e.Close())
	e = openMem(t, crashed, nil, nil)
	defer e.Close()
	const lo, hi = 1 << 62, 3 << 62
	want := map[string]string{}
	for i, k := range keys {
		if tok := Token(k); tok >= lo && tok < hi {
			want[string(k)] = string(states[i])
		}
	}
	snap, err := e.NewSnapshot()
	must(t, err)
	defer snap.Close()
	got := map[string]string{}
	must(t, snap.ExportPaxosSpan(context.Background(), lo, hi, func(k, v []byte) error {
		u, tok, ok := PaxosKey(k)
		if !ok || tok < lo || tok >= hi {
			t.Fatalf("exported key %x: %q %x %v", k, u, tok, ok)
		}
		got[string(u)] = string(v)
		return nil
	}))
	if len(want) == 0 || len(got) != len(want) {
		t.Fatalf("exported %d states of the span, want %d", len(got), len(want))
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("state of %s = %q after a crash, want %q", k, got[k], v)
		}
	}
}
