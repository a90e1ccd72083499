package peer

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/ringkv/ringkv/engine"
	"github.com/ringkv/ringkv/memtable"
)

// hintsDroppedMetric reads ringkv_hints_dropped_total{reason} from n's
// collector.
func hintsDroppedMetric(t *testing.T, n *Node, reason string) float64 {
	t.Helper()
	return MetricValue(t, n, "ringkv_hints_dropped_total", reason)
}

// TestHintBoundsPerMember: past MaxHintBytes a member's new hints are
// dropped (others' kept); hints older than MaxHintAge are dropped at the
// next replay pass, and a new hint for an old write is not kept; each drop
// is counted by reason. The clock is the test's.
func TestHintBoundsPerMember(t *testing.T) {
	c := &clock{}
	c.ms.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli())
	lg := slog.New(slog.NewTextHandler(io.Discard, nil))
	e, err := engine.Open(engine.Options{FS: vfs.NewMem(), Logger: lg, GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	val := make([]byte, 1000)
	mut := func(k string) Mutation {
		r := memtable.Record{Version: memtable.Version{TS: memtable.TimestampAt(c.now()), Node: 1}, Value: val}
		return Mutation{Key: []byte(k), Record: r.Append(nil)}
	}
	n, err := NewNode(Config{NodeID: "n1", HTTPAddr: "127.0.0.1:1", Engine: e, Now: c.now, Logger: lg,
		MaxHintBytes: 3500, MaxHintAge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"a", "b", "c", "d", "e"} {
		n.Hints().add("n2", mut(k))
	}
	n.Hints().add("n3", mut("a"))
	if got := e.PendingHints(); got["n2"] != 3 || got["n3"] != 1 {
		t.Fatalf("pending %v, want n2:3 (the bound) n3:1", got)
	}
	if got := hintsDroppedMetric(t, n, "bytes"); got != 2 {
		t.Fatalf("dropped for bytes = %v, want 2", got)
	}

	c.add(30 * time.Minute)
	n.Hints().add("n3", mut("b"))
	n.Hints().Replay()
	if got := e.PendingHints(); got["n2"] != 3 || got["n3"] != 2 {
		t.Fatalf("within the age, pending %v", got)
	}
	c.add(31 * time.Minute) // the first hints are now 61 minutes old
	n.Hints().Replay()
	if got := e.PendingHints(); got["n2"] != 0 || got["n3"] != 1 {
		t.Fatalf("past the age, pending %v, want n3:1 (the younger)", got)
	}
	if got := hintsDroppedMetric(t, n, "age"); got != 4 {
		t.Fatalf("dropped for age = %v, want 4", got)
	}
	// A write stamped over an hour ago is not hinted at all.
	old := mut("old")
	c.add(2 * time.Hour)
	n.Hints().add("n2", old)
	if got := e.PendingHints()["n2"]; got != 0 {
		t.Fatalf("an old write was hinted: %d pending", got)
	}
	if got := hintsDroppedMetric(t, n, "age"); got != 5 {
		t.Fatalf("dropped for age = %v, want 5", got)
	}
}
