package compaction

import (
	"testing"
	"time"

	"github.com/ringkv/ringkv/memtable"
)

func TestGCDrop(t *testing.T) {
	now := time.UnixMilli(1_700_000_000_000)
	const grace = 24 * time.Hour
	ts := func(d time.Duration) uint64 { return memtable.TimestampAt(now.Add(d)) }
	ms := func(d time.Duration) int64 { return now.Add(d).UnixMilli() }
	at := func(d time.Duration) func() uint64 { return func() uint64 { return ts(d) } }

	f := func(name string, r memtable.Record, horizon func() uint64, want bool) {
		t.Helper()
		g := GC{TombstoneGrace: grace, Now: func() time.Time { return now }, Horizon: horizon}
		if got := g.Drop(&r); got != want {
			t.Fatalf("%s: Drop(%+v) = %v, want %v", name, r, got, want)
		}
	}
	tomb := func(age time.Duration) memtable.Record {
		return memtable.Record{Version: memtable.Version{TS: ts(-age), Node: 1}, Tombstone: true}
	}
	val := func(age time.Duration, expiresIn time.Duration) memtable.Record {
		r := memtable.Record{Version: memtable.Version{TS: ts(-age), Node: 1}, Value: []byte("v")}
		if expiresIn != 0 {
			r.ExpiresAt = ms(expiresIn)
		}
		return r
	}

	f("young tombstone", tomb(time.Hour), nil, false)
	f("tombstone exactly at grace", tomb(grace), nil, false)
	f("tombstone just past grace", tomb(grace+time.Millisecond), nil, true)
	f("old tombstone", tomb(48*time.Hour), nil, true)
	f("old tombstone, horizon above", tomb(48*time.Hour), at(-30*time.Hour), true)
	f("old tombstone, horizon equal", tomb(48*time.Hour), at(-48*time.Hour), true)
	f("old tombstone, horizon below", tomb(48*time.Hour), at(-72*time.Hour), false)
	f("young tombstone, horizon above", tomb(time.Hour), at(0), false)

	f("live value", val(72*time.Hour, 0), nil, false)
	f("live value, horizon above", val(72*time.Hour, 0), at(0), false)
	f("TTL not expired", val(72*time.Hour, time.Hour), nil, false)
	f("TTL just expired, within grace", val(72*time.Hour, -time.Hour), nil, false)
	f("TTL expired grace ago", val(72*time.Hour, -grace), nil, true)
	f("TTL expired long ago", val(72*time.Hour, -48*time.Hour), nil, true)
	f("TTL expired long ago, horizon below", val(72*time.Hour, -48*time.Hour), at(-96*time.Hour), false)
	f("expired tombstone still follows its own age", memtable.Record{
		Version: memtable.Version{TS: ts(-time.Hour)}, Tombstone: true, ExpiresAt: ms(-48 * time.Hour),
	}, nil, false)
}

func TestGCDropZeroGrace(t *testing.T) {
	now := time.UnixMilli(1_700_000_000_000)
	g := GC{Now: func() time.Time { return now }}
	f := func(name string, r memtable.Record, want bool) {
		t.Helper()
		if got := g.Drop(&r); got != want {
			t.Fatalf("%s: Drop = %v, want %v", name, got, want)
		}
	}
	v := memtable.Version{TS: memtable.TimestampAt(now.Add(-time.Second))}
	f("tombstone", memtable.Record{Version: v, Tombstone: true}, true)
	f("TTL expired now", memtable.Record{Version: v, ExpiresAt: now.UnixMilli()}, true)
	f("TTL expires next ms", memtable.Record{Version: v, ExpiresAt: now.UnixMilli() + 1}, false)
	f("live", memtable.Record{Version: v, Value: []byte("v")}, false)
}

// TestGCDropDefaultClock checks that a zero Now reads the real clock.
func TestGCDropDefaultClock(t *testing.T) {
	g := GC{TombstoneGrace: time.Hour}
	old := memtable.Record{Version: memtable.Version{TS: memtable.TimestampAt(time.Now().Add(-2 * time.Hour))}, Tombstone: true}
	young := memtable.Record{Version: memtable.Version{TS: memtable.TimestampAt(time.Now())}, Tombstone: true}
	if !g.Drop(&old) || g.Drop(&young) {
		t.Fatalf("Drop(old) = %v, Drop(young) = %v; want true, false", g.Drop(&old), g.Drop(&young))
	}
}
