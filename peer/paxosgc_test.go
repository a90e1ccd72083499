package peer

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/ringkv/ringkv/engine"
	"github.com/ringkv/ringkv/memtable"
)

// TestPaxosSweep: the sweep deletes a settled state older than the
// horizon, keeps one with a proposal in flight and one too recent, and
// leaves the key's data alone; a ballot the deleted state had outranked
// is refused, also after a crash and restart, while a new round goes on.
func TestPaxosSweep(t *testing.T) {
	fs := vfs.NewCrashableMem()
	open := func() (*engine.Engine, *acceptor) {
		e, err := engine.Open(engine.Options{FS: fs, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), GCInterval: engine.Off, SkipRowCacheWarm: true})
		if err != nil {
			t.Fatal(err)
		}
		a := &acceptor{eng: e, clock: func(uint64) error { return nil }}
		if err := a.loadFloor(); err != nil {
			t.Fatal(err)
		}
		return e, a
	}
	eng, acc := open()
	ms := func(t time.Time) uint64 { return memtable.TimestampAt(t) }
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	old, recent := Ballot{TS: ms(t0), Node: 1}, Ballot{TS: ms(t0.Add(2 * time.Hour)), Node: 1}
	rec := func(v string, b Ballot) []byte { return (&memtable.Record{Value: []byte(v), Version: b}).Append(nil) }
	round := func(key string, b Ballot, commit bool) {
		t.Helper()
		if pr, err := acc.prepare([]byte(key), b); err != nil || !pr.OK {
			t.Fatalf("prepare %s: %+v %v", key, pr, err)
		}
		if ok, _, err := acc.propose([]byte(key), b, rec(key, b)); err != nil || !ok {
			t.Fatalf("propose %s: %v %v", key, ok, err)
		}
		if commit {
			if err := acc.commit([]byte(key), b, rec(key, b)); err != nil {
				t.Fatal(err)
			}
		}
	}
	round("settled", old, true)
	round("inflight", old, false)
	round("recent", recent, true)
	// More settled old states than one sweep batch holds.
	var many, states [][]byte
	for i := range 2*sweepBatch + 7 {
		many = append(many, []byte(fmt.Sprintf("bulk-%d", i)))
		states = append(states, acceptorState{Promised: old, Committed: old}.append(nil))
	}
	if err := eng.WritePaxosStates(many, states); err != nil {
		t.Fatal(err)
	}

	now := ms(t0.Add(25 * time.Hour)) // the floor goes to t0 + 1h
	n, err := acc.sweep(context.Background(), now, 24*time.Hour)
	if want := 1 + len(many); err != nil || n != want || acc.swept.Load() != uint64(want) {
		t.Fatalf("sweep = %d, %v (swept %d); want the %d settled old states", n, err, acc.swept.Load(), want)
	}
	for _, k := range many {
		if _, err := eng.PaxosState(nil, k); err == nil {
			t.Fatalf("%s: a settled old state was kept", k)
		}
	}
	for key, want := range map[string]bool{"settled": false, "inflight": true, "recent": true} {
		_, err := eng.PaxosState(nil, []byte(key))
		if has := err == nil; has != want {
			t.Errorf("%s: state kept %v, want %v (%v)", key, has, want, err)
		}
	}
	if _, _, err := eng.GetStored(nil, []byte("settled")); err != nil {
		t.Fatalf("the swept key's record: %v", err)
	}

	stale := Ballot{TS: old.TS - 1, Node: 9} // below the deleted promise
	check := func(when string) {
		t.Helper()
		if pr, err := acc.prepare([]byte("settled"), stale); err != nil || pr.OK || !stale.Less(pr.Promised) {
			t.Fatalf("%s: a stale prepare of a swept key: %+v %v; want refused above it", when, pr, err)
		}
		if ok, _, err := acc.propose([]byte("settled"), stale, rec("late", stale)); err != nil || ok {
			t.Fatalf("%s: a stale proposal of a swept key was accepted (%v)", when, err)
		}
	}
	check("after the sweep")
	// The floor is durable before anything is deleted.
	crashed := fs.CrashClone(vfs.CrashCloneCfg{})
	eng.Close()
	fs = crashed
	eng, acc = open()
	defer eng.Close()
	check("after a crash")
	fresh := Ballot{TS: now, Node: 2}
	if pr, err := acc.prepare([]byte("settled"), fresh); err != nil || !pr.OK || pr.Current == nil {
		t.Fatalf("a new round on a swept key: %+v %v", pr, err)
	}
	// Deletions are not fsynced: what the crash brought back the next
	// sweep deletes again (not the key a new round just promised), and
	// then nothing is left to delete.
	if n, err := acc.sweep(context.Background(), now, 24*time.Hour); err != nil || n > len(many) {
		t.Fatalf("sweep after the crash = %d, %v; want at most the %d bulk states", n, err, len(many))
	}
	if n, err := acc.sweep(context.Background(), now, 24*time.Hour); err != nil || n != 0 {
		t.Fatalf("a second sweep = %d, %v", n, err)
	}
}

// TestPaxosHorizonConfig: Off is the only non-positive horizon.
func TestPaxosHorizonConfig(t *testing.T) {
	for h, ok := range map[time.Duration]bool{Off: true, time.Hour: true, -5: false} {
		c := Config{NodeID: "n", PaxosHorizon: h}
		c.EnsureDefaults()
		if err := c.Validate(); (err == nil) != ok {
			t.Errorf("PaxosHorizon %v: %v", h, err)
		}
	}
	c := Config{NodeID: "n"}
	c.EnsureDefaults()
	if c.PaxosHorizon != DefaultPaxosHorizon {
		t.Errorf("default horizon %v", c.PaxosHorizon)
	}
}
