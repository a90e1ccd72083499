package peer

import (
	"context"
	"testing"

	"github.com/ringkv/ringkv/ring"
)

// TestKeptRangesHoldCleanPass: while a node keeps ranges it gave away, the
// clean anti-entropy pass it reports (and so every node's GC horizon)
// stays at its last one from before it gave them away, however many
// passes it completes since, through an abandoned drop and the next
// settle; once the ranges are dropped it reports its newest pass again.
// Were the ring to give a range back before the drop, the tombstones of
// the deletes its copy missed must still be on the other owners.
func TestKeptRangesHoldCleanPass(t *testing.T) {
	n, _ := newNode(t)
	r := func(ids ...string) *ring.Ring { return ring.New(ids, 16, 2) }
	r1, r2, r3 := r("n1", "n2", "n3"), r("n1", "n2", "n3", "n4"), r("n1", "n2", "n3", "n4", "n5")
	reported := func() uint64 { return n.ClusterStatus().AntiEntropyClean }
	settle := func(r *ring.Ring, st rebalanceState) error {
		p := plan(st, &View{Ring: r, Members: map[string]Member{}}, n.cfg.NodeID, n.cfg.Replicas)
		return n.reb.settle(st, p, r.Nodes())
	}
	if got := reported(); got != 0 {
		t.Fatalf("before any pass: %d", got)
	}

	n.ae.clean.Store(100) // the last clean pass before the move
	must(t, settle(r2, rebalanceState{Settled: r1.Nodes()}))
	st := n.reb.loadState()
	if len(st.Drop) == 0 || st.KeptSince != 100 {
		t.Fatalf("after giving ranges to n4: drop %d ranges, kept since %d; want some, 100", len(st.Drop), st.KeptSince)
	}
	n.ae.clean.Store(200) // passes go on while the drop waits
	if got := reported(); got != 100 {
		t.Fatalf("reports a clean pass at %d while it keeps ranges; want 100", got)
	}

	// The ring changes before the drop: it is abandoned, the hold stays.
	n.view.Store(&View{Ring: r3, Members: map[string]Member{}})
	must(t, n.reb.dropGivenAway(context.Background()))
	if st = n.reb.loadState(); !st.Orphans || len(st.Drop) != 0 || reported() != 100 {
		t.Fatalf("abandoned drop: orphans %v, drop %d, reported %d; want true, 0, 100", st.Orphans, len(st.Drop), reported())
	}
	// The next settle drops every range n1 does not own, still held back.
	n.ae.clean.Store(300)
	must(t, settle(r3, st))
	st = n.reb.loadState()
	if want := unowned(r3, "n1"); len(st.Drop) != len(want) || st.KeptSince != 100 || reported() != 100 {
		t.Fatalf("settle after the abandoned drop: drop %d ranges (want %d), kept since %d, reported %d; want 100", len(st.Drop), len(want), st.KeptSince, reported())
	}
	// Dropped: the newest pass counts again.
	must(t, n.reb.storeState(rebalanceState{Settled: r3.Nodes()}))
	if got := reported(); got != 300 {
		t.Fatalf("after the drop: reports %d, want 300", got)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
